"""Deep implicit feature matching (Chen et al., ICML 2021), Table 1 chair, on real ShapeNet chairs.

Protocol ``difm_chairs_autodecoder`` (``python -m shapelib.experiments train difm_chairs_autodecoder``):
an IM-Net-layout occupancy auto-decoder self-fitted on all 25 real ShapeNetCore.v2 chair meshes of
``shapenet_chairs`` (one latent code per chair), then the Table 1 deformation protocol (Sec. 4.2)
on every ordered pair of the six chairs that carry ShapeNetPart part labels
(``shapenet_chairs/part_labels``, :mod:`shapelib.data.shapenetpart`): 30 pairs, 5 of them arm
chair → the one armless chair (the Fig. 9 scenario).

For each pair (A → B), four transformations ``T`` of A's surface samples (area-uniform, labelled by
the face they lie on) are scored against B's labelled samples:

* ``none`` — no deformation;
* ``free`` — cross-fit: per-vertex offsets minimising the Chamfer distance to B (ShapeFlow-like);
* ``rigid`` — the same with an edge-preservation term (MeshODE-like rigidity);
* ``ours`` — implicit feature matching along ``z_t = (1−t) z_A + t z_B``, feature layer 3 + 0.1 ×
  layer 6, 50 steps × 3 Gauss–Newton iterations, λ = 0.01 (the paper's settings), applied to the
  sample points themselves.

Whole shape: bidirectional CD and EMD of ``T(A)`` and ``B``; part level: ``CD_part = (1/N_c) Σ_c
CD(T(A_c), B_c)`` over the parts present in both (:func:`shapelib.metrics.part_distances`), the same
for EMD. The runner's per-item loop trains the auto-decoder as it is: one "item" is one Adam step
on ``points_per_shape`` samples of every chair (all codes and the network together); the codes'
larger learning rate is a re-parametrisation (``codes = code_scale × raw``, :class:`CodeScaledAutoDecoder`),
since :func:`shapelib.train.fit` has one learning rate.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import implicit as im, metrics
from ..cache import disk_cache
from ..data import registry as data_registry, shapenet, shapenetpart
from ..data.shapenetpart import PART_IDS, PART_NAMES
from . import checkpoints, report
from .registry import Protocol, register

NAME = "difm_chairs_autodecoder"
METHODS = ("none", "free", "rigid", "ours")
METHOD_TITLES = {"none": "no deformation", "free": "free cross-fit (ShapeFlow-like)",
                 "rigid": "cross-fit + rigidity (MeshODE-like)", "ours": "ours (layer 3 + 0.1·layer 6)"}
#: Table 1 of the paper, chair: (whole CD×1e3, whole EMD×1e2, part CD×1e3, part EMD×1e2)
PAPER = {"ours": (1.565, 7.167, 4.202, 3.117), "rigid": (1.011, 7.286, 4.243, 5.069),
         "free": (1.338, 6.809, 4.287, 5.917)}
PAPER_NAMES = {"rigid": "MeshODE", "free": "ShapeFlow", "ours": "ours"}

#: How Table 1's numbers are computed (Sec. 4.2): the bidirectional Chamfer distance (×1e3) and Earth
#: mover's distance (×1e2) between the transformed source T(A) and the target B, whole shape and
#: part-averaged, CD_part = (1/N_c) Σ_c CD(T(A_c), B_c), the same for EMD, on 100 random ShapeNetPart
#: test pairs in the frame of IM-Net's preprocessing. The text leaves open whether the distances are
#: squared, how the two directions combine, the number of points and the EMD solver; ours
#: (:func:`shapelib.metrics.chamfer_distance`, ``earth_movers_distance``, ``part_distances``): mean
#: squared nearest-neighbour distance each way, the two summed; exact optimal assignment, mean
#: Euclidean distance; parts present in both shapes; shapes with their longest side 0.9 (IM-Net's cube).
DIFM_YARDSTICK = ("; yardstick: the paper's definitions (bidirectional CD ×1e3 and EMD ×1e2 of the deformed source "
                  "and the target, whole shape and averaged over part categories); conventions the text leaves open "
                  "are ours (squared distances, mean each way, the two directions summed; exact EMD by optimal "
                  "assignment, mean Euclidean distance; parts present in both shapes; longest side 0.9), so absolute "
                  "values may differ from the paper's by convention as well as by model")
#: Figs. 5 and 7 are pictures; notebook 05 puts a number on them.
DIFM_FIGURE_YARDSTICK = ("; yardstick: ours (Fig. 7: the Chamfer distance, conventions as in the Table 1 rows; Fig. 5: "
                         "silhouette score of the raw layer features) — the paper shows these as pictures, without a number")
#: Table 2 (Sec. 4.3): OFlow's released evaluation (``eval_step_corr_l2``) — for every source mesh
#: vertex the Euclidean (not squared) distance between its predicted position and its ground-truth
#: position on the target, averaged over the vertices, then over the test sequences; DIFM's prediction
#: is the matched point snapped to the nearest point of the target; D-FAUST first → last frame.
DIFM_CORR_YARDSTICK = ("; yardstick: the paper's reduction (OFlow's evaluation: mean Euclidean, not squared, distance "
                       "between each source vertex's matched point, snapped to the target, and its true counterpart, "
                       "averaged over vertices, then over pairs) — differs from the paper's in units and points: "
                       "FAUST pairs with longest side 0.9 and a random subset of the vertices, instead of all vertices "
                       "of D-FAUST's first and last frames in OFlow's frame")

#: the 25 real chair meshes of ``shapenet_chairs`` (v2_normalized, then deep_cage; sorted)
TRAIN_IDS = (
    "341a2d3df9800314fa260f4362cac599", "341c9b0583d31770492d9da2668ec34c", "341e18eafb46f892a6fee8e2140acec9",
    "341e24df542e0676d42b9650f19dd425", "341fcdd8a40a2612456cbf78e1e89022", "353bbd3b916426d24502f857a1cf320e",
    "356fc758685e9054347185e772ead5bd", "357e2dd1512b96168e2b488ea5fa466a", "360b02dcfeabe768492d9da2668ec34c",
    "362f53ee8de161fac653c0205ce8ff57", "10a1783f635b3fc181dff5c2e57ad46e", "1aa07508b731af79814e2be0234da26c",
    "1f8e18d42ddded6a4b3c42e318f3affc", "200324d0bafb1c2e19fb4103277a6b93", "36843ea8984df5a63719086e0b4ab8be",
    "50afe00f341993ae7d63360731b4227a", "6621723f7af35f2dcd344c2b2cefcda6", "81276e5b6c8871634af957103f4767ac",
    "8979c1aaa6675009bf80985a99195eb8", "92373022868b812fe9aa238b4bc8322e", "a09091780fcf3af2e9777a9dc292bbd2",
    "d4edd167061dac5f52a3901fa1436b1a", "e6408c4be8e6502837a346dba83c013b", "eaf231f17fccb96d81dff5c2e57ad46e",
    "fe6b3c001a86d844d5767a0de8dd037e")

CONFIG = {
    "paper": "Chen et al. 2021 Sec. 4.2 / Table 1 chair: IM-Net decoder (gf 128, 256-d code) trained on ShapeNet(Part) "
             "chairs; deformation by feature matching, layer 3 + 0.1 x layer 6, dt 0.02 x 50 steps, N = 3, lambda 0.01; "
             "100 random test pairs; CD / EMD whole and part-averaged",
    "dataset": "shapenet_chairs", "train_ids": list(TRAIN_IDS), "n_train": len(TRAIN_IDS),
    "latent_dim": 64, "widths": (256, 256, 256, 128, 64, 32),
    "n_surface": 8192, "n_uniform": 8192, "sigmas": (0.01, 0.04), "thicken": 0.01,
    "points_per_shape": 512, "coarse_fraction": 0.3, "near_weight": 3.0,
    "epochs": 200, "epoch_size": 50, "batch_size": 1,
    "lr": 2e-3, "decay_every": 50, "decay": 0.5, "code_scale": 10.0, "code_init_std": 0.01, "code_reg": 1e-4,
    "seed": 0,
    "match": {"n_steps": 50, "n_iters": 3, "lam": 0.01, "max_step": 0.05, "layers": (3, 6), "weights": (1.0, 0.1)},
    "n_eval": 1024, "n_emd_part": 512, "crossfit_steps": 400, "rigidity": 30.0,
    "pairs": "all ordered pairs of the chairs with ShapeNetPart labels (shapenet_chairs/part_labels)",
    "data": {"train": "shapenet_chairs: 10 v2_normalized + 15 deep_cage meshes (cleaned, unit cube)",
             "test": "shapenet_chairs/part_labels: 6 labelled v2 meshes, 30 ordered pairs"},
}


# ----------------------------------------------------------------------------- model


class CodeScaledAutoDecoder(im.AutoDecoder):
    """:class:`shapelib.implicit.AutoDecoder` whose codes are ``code_scale × raw_codes``: with Adam
    (steps ≈ lr in parameter units) the codes move ``code_scale`` times faster than the weights —
    DeepSDF's separate code learning rate, inside one optimiser (:func:`shapelib.train.fit`)."""

    def __init__(self, n_shapes: int, latent_dim: int, widths, code_scale: float = 10.0, init_std: float = 0.01):
        nn.Module.__init__(self)
        if not code_scale > 0:
            raise ValueError(f"code_scale={code_scale}: must be > 0.")
        self.net = im.ImplicitNet(latent_dim, widths)
        self.code_scale = float(code_scale)
        self.raw_codes = nn.Parameter(init_std / code_scale * torch.randn(n_shapes, latent_dim))

    @property
    def codes(self) -> torch.Tensor:
        return self.code_scale * self.raw_codes


def _build(cfg):
    torch.manual_seed(cfg["seed"])
    return CodeScaledAutoDecoder(cfg["n_train"], cfg["latent_dim"], cfg["widths"], cfg["code_scale"],
                                 cfg["code_init_std"])


# ----------------------------------------------------------------------------- training data and loss

_DATA: dict = {}


def training_data(cfg) -> im.ImplicitData:
    """The occupancy samples of the training chairs (:func:`shapelib.implicit.prepare_implicit`,
    thickened by ``cfg['thicken']``, cached on disk), in ``cfg['train_ids']`` order."""
    key = json.dumps(checkpoints.jsonable({k: cfg[k] for k in ("train_ids", "n_surface", "n_uniform", "sigmas",
                                                                "thicken", "seed")}), sort_keys=True)
    if key not in _DATA:
        folder = dict((i, fo) for fo, i in shapenet.chair_ids())
        missing = [i for i in cfg["train_ids"] if i not in folder]
        if missing:
            raise FileNotFoundError(f"training chairs {missing} are not under {data_registry.get('shapenet_chairs').path()} "
                                    "(python -m shapelib.data status).")
        items = [shapenet.read_chair(i, folder[i]) for i in cfg["train_ids"]]
        _DATA[key] = im.prepare_implicit(items, n_surface=cfg["n_surface"], n_uniform=cfg["n_uniform"],
                                         sigmas=cfg["sigmas"], seed=cfg["seed"], thicken=cfg["thicken"], progress=False)
        _DATA[key].meta["ids"] = list(cfg["train_ids"])
    return _DATA[key]


def _train_items(cfg, device):
    training_data(cfg)
    return list(range(cfg["epoch_size"]))   # one item = one step on every chair


def _loss(cfg):
    """BCE on occupancy logits of ``points_per_shape`` random samples of every chair + ``code_reg ‖z‖²``;
    the first ``coarse_fraction`` of the epochs draw uniformly from all samples, the rest weight the
    near-surface samples ``near_weight``:1 (coarse to fine)."""
    data = training_data(cfg)
    S, m = data.occupancy.shape
    w_fine = torch.where(data.near, float(cfg["near_weight"]), 1.0)
    state = {"fine": False}

    def loss_fn(model, item):
        dev = model.raw_codes.device
        n = cfg["points_per_shape"]
        if state["fine"]:
            cols = torch.multinomial(w_fine.expand(S, m), n, replacement=True)
        else:
            cols = torch.randint(0, m, (S, n))
        rows = torch.arange(S)[:, None]
        x, y = data.points[rows, cols].to(dev), data.occupancy[rows, cols].to(dev)
        codes = model.codes
        logit = model.net(x, codes[:, None, :])
        return nn.functional.binary_cross_entropy_with_logits(logit, y) + cfg["code_reg"] * (codes ** 2).sum(1).mean()

    def start_epoch(epoch: int):
        state["fine"] = epoch >= cfg["coarse_fraction"] * cfg["epochs"]

    loss_fn.start_epoch = start_epoch
    return loss_fn


# ----------------------------------------------------------------------------- the deformation protocol

_TEST: dict = {}


def test_chairs(cfg=CONFIG) -> list:
    """The labelled chairs (:func:`shapelib.data.shapenetpart.labelled_chairs`) with ``meta['unit']``
    the chair normalised to the unit cube exactly as in training and ``meta['train_index']`` its code."""
    if "items" not in _TEST:
        items = shapenetpart.labelled_chairs()
        for it in items:
            mid = it.meta["model_id"]
            if mid not in cfg["train_ids"]:
                raise ValueError(f"labelled chair {mid} is not among the training chairs, so it has no code.")
            it.meta["train_index"] = cfg["train_ids"].index(mid)
            it.meta["unit"] = im.normalize_to_unit_cube(it.shape)
        _TEST["items"] = items
    return _TEST["items"]


def pair_key(a, b) -> str:
    return f"{a.meta['model_id'][:8]}->{b.meta['model_id'][:8]}"


def all_pairs(items) -> list[tuple[int, int]]:
    """Every ordered pair ``(i, j)``, ``i ≠ j``, of ``items``."""
    return [(i, j) for i in range(len(items)) for j in range(len(items)) if i != j]


def labelled_samples(item, n: int, seed: int):
    """``(points (n, 3), part ids (n,), face (n,), bary (n, 3))``: area-uniform samples of the chair's
    unit-cube mesh, each labelled by the part of the face it lies on."""
    s = item.meta["unit"]
    p, f, b = s.sample_surface(n, seed)
    return p, item.meta["face_parts"][f], f, b


def scores(x, lab_x, y, lab_y, n_emd_part: int, seed: int = 0) -> dict:
    """Whole-shape CD / EMD and part-averaged CD / EMD of ``x`` against ``y`` (labels: part ids)."""
    part = metrics.part_distances(x, lab_x, y, lab_y, n_emd=n_emd_part, seed=seed)
    return {"cd": metrics.chamfer_distance(x, y), "emd": metrics.earth_movers_distance(x, y),
            "cd_part": part["cd"], "emd_part": part["emd"]}


def deform_pair(model, a, b, cfg=CONFIG, seed: int = 0, methods=METHODS) -> dict:
    """The four transformations of A's labelled samples towards B: ``{method: points (n, 3)}``, plus
    ``'labels'`` (A's sample labels), ``'target'`` and ``'target_labels'`` (B's samples)."""
    n = cfg["n_eval"]
    x, lab_x, f, bary = labelled_samples(a, n, seed)
    y, lab_y, _, _ = labelled_samples(b, n, seed + 1000)
    src = a.meta["unit"]
    out = {"labels": lab_x, "target": y, "target_labels": lab_y}
    for m in methods:
        if m == "none":
            out[m] = x
        elif m in ("free", "rigid"):
            out[m] = im.points_from_bary(_cross_fit_cached(src, y, 0.0 if m == "free" else cfg["rigidity"],
                                                           cfg["crossfit_steps"], seed), src.faces, f, bary)
        elif m == "ours":
            mt = dict(cfg["match"])
            out[m] = im.deform(model, x, a.meta["train_index"], b.meta["train_index"], layers=tuple(mt.pop("layers")),
                               weights=tuple(mt.pop("weights")), **mt)
        else:
            raise ValueError(f"unknown method {m!r}; choose from {METHODS}.")
    return out


def _cross_fit_cached(src, y, rigidity: float, steps: int, seed: int) -> np.ndarray:
    """:func:`shapelib.implicit.cross_fit` of ``src`` onto ``y``, cached on disk (it does not depend on
    the auto-decoder, so re-evaluating a new checkpoint reuses the baselines)."""
    key = src.content_hash() + hashlib.sha1(np.ascontiguousarray(y, dtype=np.float64).tobytes()).hexdigest()[:16]
    return disk_cache("difm_cross_fit", key, {"rigidity": float(rigidity), "steps": int(steps), "seed": int(seed)},
                      lambda: {"V": im.cross_fit(src, y, rigidity=rigidity, steps=steps, seed=seed)})["V"]


def evaluate_pair(model, a, b, cfg=CONFIG, seed: int = 0, keep_points: bool = False) -> dict:
    """Scores of the four methods on one pair: ``{f'{score}_{method}': float}`` (score ∈ cd, emd,
    cd_part, emd_part) plus ``arm_to_noarm`` and ``parts`` (the parts present in both)."""
    d = deform_pair(model, a, b, cfg, seed)
    row = {"arm_to_noarm": bool(a.meta["has_arms"] and not b.meta["has_arms"]),
           "parts": int(len(set(d["labels"].tolist()) & set(d["target_labels"].tolist())))}
    for m in METHODS:
        for k, v in scores(d[m], d["labels"], d["target"], d["target_labels"], cfg["n_emd_part"], seed).items():
            row[f"{k}_{m}"] = round(float(v), 7)
    if keep_points:
        row["points"] = d
    return row


def summarise(per_pair: dict) -> dict:
    """Mean and standard deviation over pairs of every score and method, for all pairs and for the
    arm → no-arm pairs: ``{'all'|'arm_to_noarm': {f'{score}_{method}': {'mean', 'std', 'n'}}}``."""
    out = {}
    for group, keep in (("all", lambda r: True), ("arm_to_noarm", lambda r: r["arm_to_noarm"])):
        rows = [r for r in per_pair.values() if keep(r)]
        if not rows:
            continue
        out[group] = {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows])),
                          "n": len(rows)}
                      for k in rows[0] if k.split("_")[0] in ("cd", "emd")}
    return out


def goal(summary: dict, group: str = "arm_to_noarm") -> dict:
    """The issue's goal on ``group``: ours has the lowest part-level CD and EMD of the four methods.
    ``{'cd_part': bool, 'emd_part': bool, 'reached': bool, 'gap_cd_part', 'gap_emd_part'}`` (gap: ours −
    the best other method's mean; ≤ 0 when ours wins)."""
    g = summary[group]
    out = {}
    for s in ("cd_part", "emd_part"):
        best_other = min(g[f"{s}_{m}"]["mean"] for m in METHODS if m != "ours")
        out[f"gap_{s}"] = g[f"{s}_ours"]["mean"] - best_other
        out[s] = bool(out[f"gap_{s}"] < 0)
    out["reached"] = out["cd_part"] and out["emd_part"]
    return out


def _evaluate(model, cfg, device, subset=None):
    items = test_chairs(cfg)
    pairs = all_pairs(items)
    if subset is not None:
        keys = {pair_key(items[i], items[j]): (i, j) for i, j in pairs}
        bad = [s for s in subset if s not in keys]
        if bad:
            raise ValueError(f"unknown pairs {bad}; pairs are 'src8->tgt8', e.g. {next(iter(keys))}.")
        pairs = [keys[s] for s in subset]
    model = model.to(device).eval()
    per = {}
    for i, j in tqdm(pairs, desc="Table 1 pairs", leave=False):
        seed = 10 * i + j   # a pair's samples do not depend on which other pairs are evaluated
        per[pair_key(items[i], items[j])] = evaluate_pair(model, items[i], items[j], cfg, seed)
    return {"per_shape": per, "summary": summary_entries(per), "stats": summarise(per)}


def summary_entries(per_pair: dict) -> dict:
    """The record's summary, in the paper's units (CD ×1e3, EMD ×1e2): ``{'all/cd_part_ours': {'mean',
    'std', 'median', 'n', 'unit'[, 'paper']}, 'arm_to_noarm/...': ...}`` (the paper's value on the
    whole-table entries of the three methods it reports)."""
    out = {}
    for group, keep in (("all", lambda r: True), ("arm_to_noarm", lambda r: r["arm_to_noarm"])):
        rows = [r for r in per_pair.values() if keep(r)]
        for k in (rows[0] if rows else {}):
            score, _, method = k.rpartition("_")
            if score not in SCORES:
                continue
            label, f = SCORES[score]
            v = f * np.array([r[k] for r in rows])
            e = {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4),
                 "median": round(float(np.median(v)), 4), "n": len(rows), "unit": label}
            if group == "all" and method in PAPER:
                e["paper"] = PAPER[method][list(SCORES).index(score)]
            out[f"{group}/{k}"] = e
    return out


def _check_pairs() -> list[str]:
    return ["341c9b05->341a2d3d"]


register(Protocol(
    name=NAME, title="DIFM Table 1 chair: occupancy auto-decoder on 25 real ShapeNet chairs, feature-matching "
                     "deformation on the 30 ordered pairs of the 6 part-labelled chairs",
    config=CONFIG, build=_build, train_items=_train_items, loss=_loss, evaluate=_evaluate,
    check_shapes=_check_pairs(), needs=("shapenet_chairs",)))


# ----------------------------------------------------------------------------- tables, figure, REPORT rows

#: score → (display name, factor): the paper reports CD ×1e3 and EMD ×1e2
SCORES = {"cd": ("whole CD×1e3", 1e3), "emd": ("whole EMD×1e2", 1e2), "cd_part": ("part CD×1e3", 1e3),
          "emd_part": ("part EMD×1e2", 1e2)}
GROUPS = {"all": "all ordered pairs", "arm_to_noarm": "arm → no-arm pairs"}


def table_rows(stats: dict, group: str = "all") -> list[dict]:
    """One row per method of ``stats`` (:func:`summarise`'s output) for ``group``: the four scores'
    mean and std in the paper's units, and the paper's values (None for no deformation)."""
    if group not in stats:
        raise KeyError(f"no group {group!r} in the evaluation; it has {list(stats)}.")
    g = stats[group]
    rows = []
    for m in METHODS:
        row = {"method": METHOD_TITLES[m], "key": m, "n": g[f"cd_{m}"]["n"]}
        for k, (label, f) in SCORES.items():
            row[k] = (f * g[f"{k}_{m}"]["mean"], f * g[f"{k}_{m}"]["std"])
        row["paper"] = dict(zip(SCORES, PAPER[m])) if m in PAPER else None
        rows.append(row)
    return rows


def format_table(stats: dict, group: str = "all") -> str:
    """The Table 1 layout as text: mean ± std over pairs per method, the paper's value in brackets."""
    rows = table_rows(stats, group)
    head = f"{GROUPS[group]} (n = {rows[0]['n']}):\n{'method':38s}" + "".join(f"{SCORES[k][0]:>24s}" for k in SCORES)
    lines = [head]
    for r in rows:
        cells = "".join(f"{r[k][0]:9.3f} ± {r[k][1]:5.3f}" + (f" [{r['paper'][k]:5.3f}]" if r["paper"] else " " * 8)
                        for k in SCORES)
        lines.append(f"{r['method']:38s}{cells}")
    return "\n".join(lines)


def plot_pair(d: dict, title: str = ""):
    """The source's samples as each method moves them, then the target's, side view (z right, y up),
    coloured by part (:data:`shapelib.data.shapenetpart.PART_NAMES`). ``d``: :func:`deform_pair`'s output."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D


    cmap = plt.get_cmap("tab10")
    color = lambda lab: cmap(np.searchsorted(PART_IDS, lab))  # noqa: E731
    panels = [(d[m], d["labels"], METHOD_TITLES[m]) for m in METHODS if m in d]
    panels.append((d["target"], d["target_labels"], "target"))
    fig, ax = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2), sharex=True, sharey=True)
    for a, (pts, lab, ttl) in zip(ax, panels):
        a.scatter(pts[:, 2], pts[:, 1], s=1.5, c=color(lab))
        a.set_title(ttl, fontsize=8), a.set_aspect("equal"), a.set_axis_off()
    fig.legend([Line2D([], [], ls="", marker="o", color=cmap(k)) for k in range(len(PART_IDS))],
               [PART_NAMES[i] for i in PART_IDS], loc="lower center", ncol=len(PART_IDS), fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def committed_record():
    """The record of the committed checkpoint, or None when it is not committed."""
    return checkpoints.committed([NAME]).get(NAME)


def table1_stats(record) -> dict:
    """The stored Table 1 statistics of a record (:func:`summarise`: per group ``'all'`` /
    ``'arm_to_noarm'``, mean / std / n of every score and method), the input of
    :func:`format_table` and :func:`goal`."""
    return record.evaluation["stats"]


def report_rows(record=None) -> list[dict]:
    """REPORT rows of the committed checkpoint: per method, whole and part CD / EMD on all 30 pairs
    and on the 5 arm → no-arm pairs, the paper's values, and the issue's goal (ours lowest at part
    level on the arm → no-arm pairs). ``record``: a Record (default: the committed one)."""
    record = committed_record() if record is None else record
    if record is None:
        return []
    stats = table1_stats(record)
    cfg = record.config
    protocol = (f"reduced: auto-decoder (latent {cfg['latent_dim']}, widths {tuple(cfg['widths'])}) self-fitted on the "
                f"{cfg['n_train']} real chairs, {record.steps_done:,} Adam steps on {record.trained_on_text()} (paper: IM-Net gf 128, "
                "256-d, thousands of chairs); cross-fit baselines instead of ShapeFlow / MeshODE; "
                f"{cfg['n_eval']} samples per shape; all ordered pairs of the 6 labelled chairs instead of 100 random test pairs"
                + DIFM_YARDSTICK)
    rows = []
    for group, words in GROUPS.items():
        if group not in stats:
            continue
        for r in table_rows(stats, group):
            m = r["key"]
            ours = " / ".join(f"{r[k][0]:.3f}" for k in SCORES)
            paper = (f"{PAPER_NAMES[m]}: " + " / ".join(f"{v:.3f}" for v in PAPER[m])) if m in PAPER else "—"
            rows.append(dict(
                quantity=f"DIFM Table 1, chair, {words}: whole CD×1e3 / EMD×1e2, part CD×1e3 / EMD×1e2 — {r['method']}",
                paper=paper, ours=ours, data="real: ShapeNetCore.v2 chairs with ShapeNetPart labels (6 labelled, 25 for the codes)",
                protocol=protocol, n=r["n"], seeds=[cfg["seed"]], ours_value=round(r["cd_part"][0], 4),
                paper_value=PAPER[m][2] if m in PAPER else None, unit="part CD×1e3 (mean over pairs)",
                spread={k: round(r[k][1], 4) for k in SCORES}, scale="paper-protocol checkpoint"))
        g = goal(stats, group)
        rows.append(dict(
            quantity=f"DIFM Table 1 goal, chair, {words}: ours has the lowest part CD and part EMD of the four methods",
            paper="yes (part CD 4.202 vs 4.243 / 4.287; part EMD 3.117 vs 5.069 / 5.917)",
            ours=f"part CD: {'reached' if g['cd_part'] else 'not reached'} (ours − best other {1e3 * g['gap_cd_part']:+.3f} ×1e3); "
                 f"part EMD: {'reached' if g['emd_part'] else 'not reached'} ({1e2 * g['gap_emd_part']:+.3f} ×1e2)",
            data="real: 6 part-labelled ShapeNetCore.v2 chairs", protocol=protocol, n=stats[group][f"cd_ours"]["n"],
            seeds=[cfg["seed"]], ours_value=round(1e3 * g["gap_cd_part"], 4), paper_value=None,
            unit="ours − best other, part CD×1e3", spread=None, scale="paper-protocol checkpoint"))
    return rows


def update_report(record: str = "results/records/05_implicit_feature_matching.json"):
    """Replace notebook 05's stored DIFM checkpoint rows by :func:`report_rows` and re-assemble
    results/REPORT.md (``python -m shapelib.experiments report``)."""
    return report.replace_rows(record, lambda r: r["quantity"].startswith("DIFM Table 1"), report_rows(),
                               notebook="05 implicit feature matching")


def reevaluate_pairs(model, record, keys=None, keep_points: bool = True) -> tuple[dict, float]:
    """Evaluate ``model`` on the pairs ``keys`` (``'src8->tgt8'``; default: every pair of ``record``)
    exactly as the protocol does and compare with ``record``'s per-pair numbers: returns
    ``({key: row}, drift)``, ``drift`` the largest absolute difference of any score (0 = the
    checkpoint still gives its record). Rows keep the deformed points when ``keep_points``."""
    items = test_chairs(record.config)
    index = {pair_key(items[i], items[j]): (i, j) for i, j in all_pairs(items)}
    keys = list(record.per_shape) if keys is None else list(keys)
    bad = [k for k in keys if k not in index or k not in record.per_shape]
    if bad:
        raise ValueError(f"unknown pairs {bad}; the record has {list(record.per_shape)[:3]}...")
    rows, drift = {}, 0.0
    for k in keys:
        i, j = index[k]
        rows[k] = evaluate_pair(model, items[i], items[j], record.config, seed=10 * i + j, keep_points=keep_points)
        drift = max([drift] + [abs(rows[k][f] - v) for f, v in record.per_shape[k].items()
                               if f.split("_")[0] in ("cd", "emd")])
    return rows, drift


#: the matching settings tried besides the paper's (``match_variants``): the weight η of layer 6, the layers
VARIANTS = {"eta 0 (layer 3 only)": {"weights": (1.0, 0.0)}, "eta 0.5": {"weights": (1.0, 0.5)},
            "layer 6 only": {"layers": (6,), "weights": (1.0,)}}


def match_variants(model, record, variants=VARIANTS) -> dict:
    """Ours with other matching settings (``{name: overrides of config['match']}``) on every pair of
    ``record``, with the same samples and scores as the protocol: ``{name: summarise(...)-style stats of
    the four scores}``, for the note on what was tried. Writes nothing."""
    items = test_chairs(record.config)
    out = {}
    for name, over in variants.items():
        cfg = dict(record.config, match={**record.config["match"], **over})
        per = {}
        for i, j in all_pairs(items):
            d = deform_pair(model, items[i], items[j], cfg, seed=10 * i + j, methods=("ours",))
            row = {"arm_to_noarm": bool(items[i].meta["has_arms"] and not items[j].meta["has_arms"])}
            for k, v in scores(d["ours"], d["labels"], d["target"], d["target_labels"], cfg["n_emd_part"],
                               10 * i + j).items():
                row[f"{k}_ours"] = float(v)
            per[pair_key(items[i], items[j])] = row
        out[name] = {"match": cfg["match"], "summary": summary_entries(per)}
    return out
