"""One small training loop, reused by every notebook: Adam, step decay, progress bar, history.

Models here take one shape at a time (batch size 1, per-shape operators), so a "batch" is an
item of a list; ``loss_fn(model, item)`` returns the scalar loss of one item.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .diffusion import input_features, random_rotation
from .operators import compute_operators


@dataclass
class History:
    """Per-epoch mean training loss (and anything ``on_epoch`` records)."""

    loss: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    seconds: float = 0.0

    def log(self, key: str, value) -> None:
        self.extra.setdefault(key, []).append(value)


def check_clip_mode(mode: str) -> str:
    """``mode`` if it is a gradient-clipping mode of :func:`clip_gradients`, else a ValueError naming it."""
    if mode not in ("norm", "value"):
        raise ValueError(f"clip_mode must be 'norm' or 'value', got {mode!r}.")
    return mode


def clip_gradients(parameters, limit: float, mode: str = "norm") -> None:
    """Clip gradients in place: their joint norm to ``limit`` (``"norm"``) or every entry to
    ``[-limit, limit]`` (``"value"``)."""
    if check_clip_mode(mode) == "norm":
        torch.nn.utils.clip_grad_norm_(parameters, limit)
    else:
        torch.nn.utils.clip_grad_value_(parameters, limit)


def lr_factor(epoch: int, decay_every: int | None = None, decay: float = 0.5, lr: float | None = None,
              min_lr: float | None = None) -> float:
    """The factor on the initial learning rate ``lr`` during epoch ``epoch`` (0-based) of :func:`fit`
    with these settings: ``decay ** (epoch // decay_every)``, never below ``min_lr / lr``."""
    if not decay_every:
        return 1.0
    factor = decay ** (epoch // decay_every)
    if min_lr:
        if not lr:
            raise ValueError("lr_factor: min_lr needs the initial lr (the floor is min_lr / lr).")
        factor = max(factor, min_lr / lr)
    return factor


def lr_drops(config: dict, epochs_done: int) -> list[int]:
    """The epochs (0-based, before ``epochs_done``) at whose start :func:`fit` lowered the learning
    rate, for a training config with fit's keys (``decay_every``, ``decay`` (default 0.5), ``lr``,
    ``min_lr``); [] without a schedule. E.g. ``decay_every=11`` over 22 epochs: ``[11]``."""
    args = dict(decay_every=config.get("decay_every"), decay=config.get("decay", 0.5), lr=config.get("lr"),
                min_lr=config.get("min_lr"))
    return [e for e in range(1, int(epochs_done)) if lr_factor(e, **args) < lr_factor(e - 1, **args)]


def _advance(sched, epochs: int) -> None:
    """Step ``sched`` through ``epochs`` epochs without training (a run resumed from its weights,
    whose scheduler state was not kept): the learning rate becomes the one the schedule has at ``epochs``."""
    with warnings.catch_warnings():   # "lr_scheduler.step() before optimizer.step()": intended here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(epochs):
            sched.step()


def fit(model: torch.nn.Module, items: Sequence, loss_fn: Callable, epochs: int, lr: float = 1e-3,
        weight_decay: float = 0.0, decay_every: int | None = None, decay: float = 0.5, grad_clip: float | None = None,
        seed: int = 0, desc: str = "train", on_epoch: Callable | None = None, progress: bool = True,
        resume: dict | None = None, checkpoint: Callable | None = None, batch_size: int = 1,
        min_lr: float | None = None, epoch_size: int | None = None, epoch_start: Callable | None = None,
        betas: Sequence[float] = (0.9, 0.999), clip_mode: str = "norm", world=None) -> History:
    """Train ``model`` for ``epochs`` passes over ``items`` in a seeded random order.

    loss_fn(model, item) -> scalar tensor. ``batch_size`` items are averaged into one step
    (their gradients accumulated). ``decay_every`` epochs the learning rate is multiplied by
    ``decay`` (DiffusionNet: ×0.5 every 50 of 200 epochs), never below ``min_lr`` (MEPS: ×0.5
    every 480 epochs, clipped at 1e-4). ``on_epoch(epoch, history)`` runs after each epoch
    (evaluation, logging). Returns the :class:`History`.

    ``epoch_size``: an epoch is that many items drawn without replacement from a fresh seeded
    permutation (for item lists too long to pass over, e.g. the 6,320 ordered pairs of 80 shapes).
    ``epoch_start(epoch)`` runs before each epoch (e.g. a loss whose weights follow a schedule).
    ``grad_clip`` with ``clip_mode`` ``"norm"`` (the joint gradient norm) or ``"value"`` (every
    entry); ``betas``: Adam's.

    Resumable runs (``make train``): ``checkpoint(state) -> bool`` is called after every epoch
    with ``state = {"epoch", "optimizer", "scheduler", "loss"}`` (the model holds its own
    weights) and stops training when it returns True; ``resume=state`` continues such a run
    where it stopped. A state whose ``optimizer`` is None (a run resumed from its saved weights
    alone) starts Adam's moment estimates from zero at ``epoch``, at the learning rate the
    schedule has reached there. In that mode torch's RNG is re-seeded at every epoch (``seed + epoch``) and
    the item order replays the same seeded sequence, so a resumed run takes the same steps as
    an uninterrupted one.

    ``world``: data-parallel training, one of several processes
    (:class:`shapelib.experiments.distributed.World`, ``make train NPROC=k``): this process
    backpropagates its ``world.shard(batch)`` of each step's items (each still ``loss / len(batch)``),
    ``world.reduce_gradients(model)`` sums the gradients over the processes before the step (the
    whole batch's gradient, as one process has it), ``world.sum`` the epoch's loss, and torch's RNG is
    seeded per process (``world.seed``) at every epoch. None: one process, as above.
    """

    if len(items) == 0:
        raise ValueError("fit() got no training items.")
    check_clip_mode(clip_mode)   # before any work, not at the first clipped step
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay,
                           betas=tuple(betas))
    if decay_every and min_lr:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, decay_every, decay, lr, min_lr))
    else:
        sched = torch.optim.lr_scheduler.StepLR(opt, decay_every, decay) if decay_every else None
    rng = np.random.default_rng(seed)
    hist = History()
    start = 0
    if resume is not None:
        start = int(resume["epoch"])
        if resume.get("optimizer") is not None:
            opt.load_state_dict(resume["optimizer"])
        if sched is not None and resume.get("scheduler") is not None:
            sched.load_state_dict(resume["scheduler"])
        elif sched is not None:         # no scheduler state (a run resumed from its weights): advance it
            _advance(sched, start)
        hist.loss = list(resume.get("loss", []))
        for _ in range(start):          # replay the item order of the epochs already done
            rng.permutation(len(items))
    resumable = resume is not None or checkpoint is not None
    t0 = time.perf_counter()
    bar = tqdm(range(start, epochs), desc=desc, disable=not progress, leave=False, initial=start, total=epochs)
    for epoch in bar:
        if world is not None:
            torch.manual_seed(world.seed(seed + epoch))
        elif resumable:
            torch.manual_seed(seed + epoch)
        model.train()
        total = 0.0
        order = rng.permutation(len(items))[:epoch_size]
        if epoch_start is not None:
            epoch_start(epoch)
        for b in range(0, len(order), batch_size):
            batch = order[b:b + batch_size]
            opt.zero_grad()
            for idx in batch if world is None else world.shard(batch):
                loss = loss_fn(model, items[idx])
                (loss / len(batch)).backward()
                total += float(loss.detach())
            if world is not None:
                world.reduce_gradients(model)
            if grad_clip:
                clip_gradients(model.parameters(), grad_clip, clip_mode)
            opt.step()
        hist.loss.append((total if world is None else world.sum(total)) / len(order))
        if sched:
            sched.step()
        if on_epoch:
            on_epoch(epoch, hist)
        bar.set_postfix(loss=f"{hist.loss[-1]:.3f}")
        if checkpoint is not None and checkpoint({"epoch": epoch + 1, "optimizer": opt.state_dict(),
                                                  "scheduler": sched.state_dict() if sched else None,
                                                  "loss": list(hist.loss)}):
            break
    hist.seconds = time.perf_counter() - t0
    model.eval()
    return hist


# ----------------------------------------------------------------------------- per-vertex labelling
# Protocol shared by the per-vertex models of shapelib (DiffusionNet, the pointwise MLP baseline,
# MEPS): ``model(x, ops, rows=None) -> (n or len(rows), n_labels)`` logits. A prepared item is a
# dict with ``x (n, C)``, ``ops`` (whatever the model needs) and optional labels ``y (n,)``.


def prepare(items, labels=None, kind: str = "xyz", k: int = 128, method: str = "auto", device=None,
            progress: bool = True, desc: str = "operators", *, transform=None, gradient_eps: float = 0.0,
            normalize_xyz: bool = True) -> list[dict]:
    """Precompute operators and input features for a list of `Shape` or data `Item` objects.

    labels : None, an attribute name of the items (``'template_index'``, ``'parts'``) or a
        function ``item -> (n,) int``. kind : input features, ``'xyz'`` or ``'hks'``.
    method : Laplacian (``'auto'``; ``'graph'`` for the connectivity-only baseline).
    transform : ``shape -> shape`` applied to each shape first (e.g. another normalisation); the
        returned ``shape`` is the transformed one, labels are still read from the item.
    gradient_eps : regularisation of the gradient solve (:func:`~shapelib.operators.compute_operators`).
    normalize_xyz : ``False`` takes the (transformed) coordinates as the xyz inputs as they are,
        instead of centring them and scaling them into the unit sphere.
    Returns dicts with ``shape``, ``item``, ``x``, ``ops`` (torch), ``y`` (long tensor or None).
    """
    out = []
    for it in tqdm(items, desc=desc, disable=not progress, leave=False):
        shape = getattr(it, "shape", it)
        if transform is not None:
            shape = transform(shape)
        ops = compute_operators(shape, k=k, method=method, gradient_eps=gradient_eps)
        if kind == "xyz" and not normalize_xyz:
            x = torch.as_tensor(shape.vertices, dtype=torch.float32, device=device)
        else:
            x = input_features(shape if kind == "xyz" else ops, kind, device=device)
        if labels is None:
            y = None
        else:
            y = labels(it) if callable(labels) else getattr(it, labels)
            y = torch.as_tensor(np.asarray(y), dtype=torch.long, device=device)
        out.append({"shape": shape, "item": it, "x": x, "ops": ops.to_torch(device), "y": y, "kind": kind})
    return out


def labelling_loss(model, item: dict, n_rows: int | None = None, rotate: bool = False,
                   generator: torch.Generator | None = None, axis: int | None = None) -> torch.Tensor:
    """Cross-entropy of per-vertex labels on ``n_rows`` random vertices (all if None), with an
    optional random rotation of xyz inputs (augmentation for rotation-invariant tasks): of SO(3),
    or about coordinate ``axis`` only (``axis=1``: about the vertical of FAUST, as DiffusionNet's
    Table 5 trains)."""
    x = item["x"]
    if rotate:
        if item["kind"] != "xyz":
            raise ValueError("rotate=True only makes sense for xyz inputs.")
        x = x @ random_rotation(generator, axis=axis).to(x).T
    y = item["y"]
    rows = None if n_rows is None or n_rows >= len(y) else torch.randperm(len(y), generator=generator)[:n_rows].to(y.device)
    logits = model(x, item["ops"], rows=rows)
    return torch.nn.functional.cross_entropy(logits, y if rows is None else y[rows])


@torch.no_grad()
def _eval_outputs(model, item: dict) -> torch.Tensor:
    """The model's per-vertex outputs on ``item``: one forward pass in eval mode; the model's previous
    train/eval mode is restored, so a caller's training loop keeps its dropout."""
    was_training = model.training
    model.eval()
    try:
        return model(item["x"], item["ops"])
    finally:
        model.train(was_training)


def predict_labels(model, item: dict) -> np.ndarray:
    """``(n,) int`` arg-max label of every vertex (:func:`_eval_outputs`)."""
    return _eval_outputs(model, item).argmax(1).cpu().numpy()


def accuracy(model, items: list[dict]) -> float:
    """Fraction of vertices whose predicted label equals ``y``, pooled over ``items``."""
    hits = [np.mean(predict_labels(model, it) == it["y"].cpu().numpy()) * len(it["y"]) for it in items]
    return float(np.sum(hits) / sum(len(it["y"]) for it in items))


def face_labels(faces, vertex_labels) -> np.ndarray:
    """``(m,) int`` label of each face from per-vertex labels: the label at least two of its three
    vertices share; ``-1`` where all three differ (such faces are not scored)."""
    F = np.asarray(faces)
    y = np.asarray(vertex_labels)
    if F.ndim != 2 or F.shape[1] != 3:
        raise ValueError(f"faces must be (m, 3) triangles, got shape {F.shape}; point clouds have no faces to label.")
    a, b, c = y[F[:, 0]], y[F[:, 1]], y[F[:, 2]]
    return np.where((a == b) | (a == c), a, np.where(b == c, b, -1))


def predict_face_labels(model, item: dict) -> np.ndarray:
    """``(m,) int`` arg-max label of every face of ``item["shape"]``: the network's per-vertex
    outputs averaged over the face's three vertices, as DiffusionNet's ``outputs_at='faces'`` does
    (reference ``src/diffusion_net/layers.py`` l. 386-391 @ b1019b0; its log-softmax comes after the
    average, l. 400-401, and does not move the arg-max)."""
    shape = item["shape"]
    if shape.faces is None:
        raise ValueError("predict_face_labels needs a mesh: this item's shape has no faces.")
    out = _eval_outputs(model, item)
    F = torch.as_tensor(np.asarray(shape.faces), dtype=torch.long, device=out.device)
    return out[F].mean(1).argmax(1).cpu().numpy()


def face_accuracy(model, items: list[dict]) -> float:
    """Fraction of correctly labelled faces, pooled over ``items`` — DiffusionNet's segmentation
    yardstick (reference ``experiments/human_segmentation_original/human_segmentation_original.py``
    @ b1019b0: ``outputs_at='faces'`` l. 74, ``test()`` l. 155-197: correct / total over every face of
    every test mesh). Ground truth: ``item["y_faces"]`` when given (datasets that label faces), else
    :func:`face_labels` of the vertex labels ``y``; faces labelled ``-1`` are not scored."""
    hits, total = 0, 0
    for it in items:
        yf = it.get("y_faces")
        yf = face_labels(it["shape"].faces, it["y"].cpu().numpy()) if yf is None else np.asarray(yf)
        keep = yf >= 0
        hits += int(np.sum(predict_face_labels(model, it)[keep] == yf[keep]))
        total += int(keep.sum())
    if total == 0:
        raise ValueError("no labelled face to score: pass meshes with labels (y or y_faces).")
    return hits / total


def farthest_point_sampling(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``(k,) int`` indices of ``k`` well-spread points (greedy farthest-point sampling, Euclidean)."""
    points = np.asarray(points, dtype=np.float64)
    k = min(k, len(points))
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = np.random.default_rng(seed).integers(len(points))
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for i in range(1, k):
        chosen[i] = int(np.argmax(dist))
        dist = np.minimum(dist, np.linalg.norm(points - points[chosen[i]], axis=1))
    return chosen


def template_patches(reference, n_labels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Coarse vertex labelling: ``n_labels`` patches of a template shape.

    Returns ``centers (K,) int`` (farthest-point samples) and ``patch (n,) int`` (the nearest
    center of each template vertex). With ``n_labels >= n`` every vertex is its own label — the
    exact vertex-labelling task; fewer labels make the task learnable on a small budget, at
    the price of an error floor of about the patch radius.
    """
    from scipy.spatial import cKDTree

    v = reference.vertices
    if n_labels >= len(v):
        idx = np.arange(len(v))
        return idx, idx
    centers = farthest_point_sampling(v, n_labels, seed)
    _, patch = cKDTree(v[centers]).query(v)
    return centers, patch.astype(np.int64)
