"""Deep implicit feature matching (Chen, Fernando, Bilen, Mensink, Gavves, ICML 2021) — notebook 05.

A latent-conditioned occupancy network ``F(x; z)`` (IM-Net decoder: 7 affine layers, leaky
ReLU, input ``x ⊕ z``) is trained by *self-fitting* only (auto-decoder: one code per shape,
optimised jointly with the weights). Its hidden activations ``Φ^(l)(x; z)``, ``l = 1..6``, are
the *implicit features*. A source point ``x_0`` is carried to the target by following the latent
interpolation ``z_t = (1−t) z_A + t z_B`` and, at each step, moving the point so that its
feature changes as little as possible (Eq. 3):

    δ_t = argmin_δ ‖Φ(x_t + δ, z_{t+dt}) − Φ(x_t, z_t)‖² + λ²‖δ‖²,     x_{t+dt} = x_t + δ_t,

solved by ``N`` Gauss–Newton iterations (Eq. 5) with the regulariser appended to the
Jacobian and the residual (Eq. 7–8): ``J ← [J; λI]``, ``r ← [dΦ; λδ_n]``, so each iteration
solves a 3×3 system per point,

    δ_{n+1} = δ_n − (JᵀJ + λ²I)⁻¹ (Jᵀ dΦ_n + λ² δ_n).

Everything is batched over points: ``J`` for all points comes from ``torch.func.vmap`` of
``torch.func.jacfwd`` (three forward-mode tangents per point) and the 3×3 systems are solved by
one batched ``torch.linalg.solve``. Coordinates live in the IM-Net cube: shapes are normalised
by :func:`normalize_to_unit_cube` (bounding-box centre at 0, longest side 0.9 ⊂ [−0.5, 0.5]).

Also here: inside/outside labels (libigl's fast generalised winding number), occupancy training
samples, marching-cubes reconstruction (scikit-image), and the cross-fitting baseline of the
deformation experiment (Chamfer-minimising vertex offsets, optionally with a rigidity term).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import metrics
from .errors import MissingDependencyError
from .shape import Shape
from .cache import disk_cache
from .config import seed_everything
from .kernels import nearest
from .data import shapenet
from .data.synthetic import decimate

#: IM-Net-pytorch decoder widths for ``gf_dim = 128``: layers 1..6 (layer 7 is the 1-d output)
IMNET_WIDTHS = (1024, 1024, 1024, 512, 256, 128)
#: the paper's matching settings (Section 4): dt = 0.02 × 50 steps, N = 3, λ = 0.01, layer 3 + 0.1·layer 6
PAPER_SETTINGS = dict(n_steps=50, n_iters=3, lam=0.01, layers=(3, 6), weights=(1.0, 0.1))


def imnet_widths(gf_dim: int = 128) -> tuple:
    """Hidden widths of the IM-Net decoder, ``(8, 8, 8, 4, 2, 1) × gf_dim`` (paper: gf_dim=128)."""
    return tuple(int(m * gf_dim) for m in (8, 8, 8, 4, 2, 1))


# ----------------------------------------------------------------------------- geometry helpers


def unit_cube_transform(shape: Shape, extent: float = 0.9) -> tuple[np.ndarray, float]:
    """``(centre (3,), scale)`` of :func:`normalize_to_unit_cube`: ``x ↦ (x − centre) · scale`` —
    apply it to anything attached to the shape (keypoints)."""
    lo, hi = shape.bounding_box()
    side = float(np.max(hi - lo))
    if not side > 0:
        raise ValueError(f"{shape.name}: degenerate bounding box (longest side {side}); cannot normalise.")
    return (lo + hi) / 2, extent / side


def normalize_to_unit_cube(shape: Shape, extent: float = 0.9) -> Shape:
    """Translate the bounding-box centre to 0 and scale the longest side to ``extent`` (IM-Net's
    cube [−0.5, 0.5]³ with a margin). Returns a new `Shape` (same faces)."""
    centre, scale = unit_cube_transform(shape, extent)
    return shape.copy(vertices=(shape.vertices - centre) * scale)


def winding_number(vertices, faces, points) -> np.ndarray:
    """Generalised winding number ``(m,) float`` of ``points (m, 3)`` w.r.t. the triangle mesh
    ``(vertices (n, 3), faces (f, 3))`` (Jacobson et al. 2013), by libigl's
    ``fast_winding_number`` (Barill et al. 2018): ±1 inside (sign = orientation), 0 outside a
    closed mesh, ±½ on the surface."""
    try:
        import igl  # type: ignore
    except ImportError as e:
        raise MissingDependencyError(
            "winding_number needs libigl for inside/outside labels: pip install libigl") from e
    V = np.ascontiguousarray(vertices, dtype=np.float64)
    F = np.ascontiguousarray(faces, dtype=np.int64)
    P = np.ascontiguousarray(points, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != 3:
        raise ValueError(f"points must be (m, 3), got {P.shape}.")
    if V.ndim != 2 or V.shape[1] != 3 or F.ndim != 2 or F.shape[1] != 3:
        raise ValueError(f"need a triangle mesh: vertices (n, 3) and faces (f, 3), got {V.shape} and {F.shape}.")
    return np.asarray(igl.fast_winding_number(V, F, P), dtype=np.float64)


def inside(shape: Shape, points) -> np.ndarray:
    """``(m,) bool``: which points lie inside the closed mesh (``|winding number| > ½``, so either
    face orientation works)."""
    shape._require_mesh("inside/outside labels")
    return np.abs(winding_number(shape.vertices, shape.faces, points)) > 0.5


def label_consistency(shape: Shape, n: int = 2000, eps: float = 0.003, seed: int = 0) -> float:
    """How well :func:`inside` labels a mesh: the fraction of ``n`` surface samples that, moved by
    ``eps`` against the face normal, are labelled inside (1.0 for a closed, outward-oriented
    surface). Open single-sheet parts (a shell seat, a thin wing) have no inside — their winding
    number is ≈ ±½ on both sides — and a double-sided soup gives 0 (the copies cancel)."""
    shape._require_mesh("label_consistency")
    p, f, _ = shape.sample_surface(n, seed)
    return float(np.mean(inside(shape, p - eps * shape.face_normals()[f])))


def points_from_bary(vertices, faces, face, bary) -> np.ndarray:
    """``(n, 3)`` points ``Σ_k bary[:, k] · vertices[faces[face, k]]`` (re-evaluates the samples of
    :meth:`Shape.sample_surface` on moved vertices)."""
    return np.einsum("nk,nkd->nd", bary, np.asarray(vertices)[np.asarray(faces)[face]])


def surface_coordinates(shape: Shape, points) -> tuple[np.ndarray, np.ndarray]:
    """``(face (k,), bary (k, 3))`` of the closest surface point of each of ``points (k, 3)``
    (libigl ``point_mesh_squared_distance``): attach points (keypoints) to a mesh so that they
    follow its vertices, ``points_from_bary(moved_vertices, faces, face, bary)``."""
    import igl

    shape._require_mesh("surface_coordinates")
    V, F = np.ascontiguousarray(shape.vertices, dtype=np.float64), np.ascontiguousarray(shape.faces, dtype=np.int64)
    P = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    _, face, C = igl.point_mesh_squared_distance(P, V, F)
    T = V[F[face]]
    bary = igl.barycentric_coordinates(C, T[:, 0].copy(), T[:, 1].copy(), T[:, 2].copy())
    return np.asarray(face, dtype=np.int64), np.asarray(bary, dtype=np.float64)


def occupancy_samples(shape: Shape, n_surface: int = 4096, n_uniform: int = 2048, sigmas=(0.01, 0.04),
                      box: float = 0.5, seed: int = 0, thicken: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Training samples for an occupancy network: surface points jittered by N(0, σ²) for each σ
    in ``sigmas`` (``n_surface`` each) plus ``n_uniform`` points uniform in ``[−box, box]³``.

    Returns ``points (m, 3) float32`` and ``occupancy (m,) float32`` (1 inside, 0 outside,
    by the winding number, libigl). Use a normalised shape (:func:`normalize_to_unit_cube`).
    ``thicken > 0`` also counts every point closer than ``thicken`` to the surface as inside
    (:func:`thickened_inside`): open single-sheet parts (shell seats) become thin solids.
    """
    if thicken < 0:
        raise ValueError(f"thicken={thicken}: give a distance ≥ 0 (0 = winding number only).")
    rng = np.random.default_rng(seed)
    pts = [shape.sample_surface(n_surface, seed + 1 + i)[0] + rng.normal(0, s, (n_surface, 3))
           for i, s in enumerate(sigmas)]
    pts.append(rng.uniform(-box, box, (n_uniform, 3)))
    P = np.concatenate(pts).astype(np.float32)
    occ = thickened_inside(shape, P, thicken) if thicken else inside(shape, P)
    return P, occ.astype(np.float32)


def thickened_inside(shape: Shape, points, thicken: float) -> np.ndarray:
    """``(m,) bool``: inside the mesh (:func:`inside`) **or** closer than ``thicken`` to its surface
    (exact point-to-triangle distance, libigl). The occupancy of the surface thickened by
    ``thicken`` on both sides — defined for open sheets, which have no inside of their own."""
    import igl

    shape._require_mesh("thickened inside/outside labels")
    P = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    d2, _, _ = igl.point_mesh_squared_distance(P, np.ascontiguousarray(shape.vertices, dtype=np.float64),
                                               np.ascontiguousarray(shape.faces, dtype=np.int64))
    return inside(shape, P) | (np.asarray(d2) < thicken ** 2)


# ----------------------------------------------------------------------------- the network


class ImplicitNet(nn.Module):
    """IM-Net-style occupancy decoder ``F(x; z)`` (Eq. 1) with access to every hidden layer.

    ``widths``: hidden widths of layers 1..L−1 (paper: :data:`IMNET_WIDTHS`, L = 7);
    ``latent_dim``: k (paper: 256). ``forward(x (..., 3), z (..., k)) -> (...,)`` occupancy
    logits (the probability is their sigmoid; surface at logit 0 ⇔ τ = 0.5).
    """

    def __init__(self, latent_dim: int = 256, widths: Sequence[int] = IMNET_WIDTHS, slope: float = 0.02):
        super().__init__()
        if len(widths) < 1:
            raise ValueError("widths needs at least one hidden layer.")
        dims = (3 + latent_dim, *widths, 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.latent_dim, self.widths, self.slope = latent_dim, tuple(widths), slope

    @property
    def n_hidden(self) -> int:
        return len(self.widths)

    def _input(self, x, z):
        if x.shape[-1] != 3:
            raise ValueError(f"x must end in 3 coordinates, got {tuple(x.shape)}.")
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must end in latent_dim={self.latent_dim}, got {tuple(z.shape)}.")
        return torch.cat([x, z.expand(*x.shape[:-1], self.latent_dim)], -1)

    def features(self, x: torch.Tensor, z: torch.Tensor, layers: Sequence[int] | None = None) -> list:
        """``[Φ^(l)(x; z) for l in layers]`` (Eq. 2), each ``(..., w_l)``; default all 1..L−1."""
        layers = tuple(range(1, self.n_hidden + 1)) if layers is None else tuple(layers)
        if not layers or min(layers) < 1 or max(layers) > self.n_hidden:
            raise ValueError(f"layers={layers}: choose hidden layers in 1..{self.n_hidden}.")
        h, out = self._input(x, z), {}
        for l in range(1, max(layers) + 1):
            h = nn.functional.leaky_relu(self.layers[l - 1](h), self.slope)
            out[l] = h
        return [out[l] for l in layers]

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self._input(x, z)
        for lin in self.layers[:-1]:
            h = nn.functional.leaky_relu(lin(h), self.slope)
        return self.layers[-1](h)[..., 0]


class AutoDecoder(nn.Module):
    """An :class:`ImplicitNet` plus one latent code per training shape (DeepSDF's auto-decoder).
    ``codes``: ``(n_shapes, k)``; ``self.z(i)`` is shape ``i``'s code."""

    def __init__(self, n_shapes: int, latent_dim: int = 256, widths: Sequence[int] = IMNET_WIDTHS,
                 init_std: float = 0.01):
        super().__init__()
        self.net = ImplicitNet(latent_dim, widths)
        self.codes = nn.Parameter(init_std * torch.randn(n_shapes, latent_dim))

    def z(self, i: int) -> torch.Tensor:
        return self.codes[i].detach()

    def forward(self, x, idx):
        return self.net(x, self.codes[idx])


@dataclass
class ImplicitData:
    """Normalised shapes and their occupancy samples (tensors), as used for training."""

    shapes: list
    points: torch.Tensor  # (S, m, 3)
    occupancy: torch.Tensor  # (S, m)
    near: torch.Tensor  # (m,) bool: which sample columns are near-surface (the fine stage)
    meta: dict = field(default_factory=dict)


def prepare_implicit(items, n_surface: int = 4096, n_uniform: int = 2048, sigmas=(0.01, 0.04), seed: int = 0,
                     max_faces: int | None = None, progress: bool = True, thicken: float = 0.0) -> ImplicitData:
    """Normalise shapes (Items or Shapes) to the unit cube and label occupancy samples
    (``thicken``: see :func:`occupancy_samples`).

    ``max_faces``: shapes with more faces are labelled against a quadric-decimated copy (pymeshlab;
    the winding number costs O(points × faces)) — the network then fits that surface. Samples
    are cached on disk (`shapelib.cache`), keyed by the shape's content and the parameters.
    """

    shapes, P, O = [], [], []
    for k, it in enumerate(tqdm(items, desc="occupancy samples", disable=not progress, leave=False)):
        s = normalize_to_unit_cube(getattr(it, "shape", it))

        def compute(s=s, k=k):
            lab = s
            if max_faces is not None and s.n_faces > max_faces:
                lab = decimate(s, max_faces)
            p, o = occupancy_samples(lab, n_surface, n_uniform, sigmas, seed=seed + 97 * k, thicken=thicken)
            return {"points": p, "occupancy": o}

        params = dict(n_surface=n_surface, n_uniform=n_uniform, sigmas=list(sigmas), seed=seed + 97 * k,
                      max_faces=max_faces, v=2)  # v2: surface samples from Shape.sample_surface (trimesh)
        if thicken:
            params["thicken"] = float(thicken)
        a = disk_cache("occupancy_samples", s.content_hash(), params, compute)
        shapes.append(s), P.append(a["points"]), O.append(a["occupancy"])
    near = np.r_[np.ones(n_surface * len(sigmas), bool), np.zeros(n_uniform, bool)]
    return ImplicitData(shapes, torch.as_tensor(np.stack(P)).float(), torch.as_tensor(np.stack(O)).float(),
                        torch.as_tensor(near))


def fit_auto_decoder(data: ImplicitData, latent_dim: int = 256, widths: Sequence[int] = IMNET_WIDTHS,
                     epochs: int = 300, points_per_shape: int = 2048, lr: float = 1e-3, code_lr: float = 1e-2,
                     code_reg: float = 1e-4, coarse_fraction: float = 0.3, seed: int = 0, device=None,
                     progress: bool = True):
    """Self-fitting: optimise the network and one code per shape for occupancy (BCE on logits).

    Each epoch is one Adam step on ``points_per_shape`` random samples of every shape.
    Coarse-to-fine (in the spirit of IM-Net's 16³→32³→64³ schedule): the first
    ``coarse_fraction`` of the epochs draw from all samples (uniform ones included), the rest
    weight near-surface samples 3:1. ``code_reg``: DeepSDF's ``‖z‖²`` prior.
    Returns ``(AutoDecoder in eval mode, history dict with 'loss' and 'accuracy' per epoch)``.
    """

    seed_everything(seed)
    device = torch.device(device or "cpu")
    S, m = data.occupancy.shape
    model = AutoDecoder(S, latent_dim, widths).to(device)
    opt = torch.optim.Adam([{"params": model.net.parameters(), "lr": lr},
                            {"params": [model.codes], "lr": code_lr}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=lr * 0.05)
    P, O = data.points.to(device), data.occupancy.to(device)
    w_fine = torch.where(data.near, 3.0, 1.0).to(device)
    g = torch.Generator(device="cpu").manual_seed(seed)
    hist = {"loss": [], "accuracy": []}
    t0 = time.perf_counter()
    bar = tqdm(range(epochs), desc="auto-decoder", disable=not progress, leave=False)
    idx_s = torch.arange(S, device=device)[:, None]
    for ep in bar:
        if ep < coarse_fraction * epochs:
            cols = torch.randint(0, m, (S, points_per_shape), generator=g).to(device)
        else:
            cols = torch.multinomial(w_fine.cpu().expand(S, m), points_per_shape, replacement=True, generator=g).to(device)
        x, y = P[idx_s, cols], O[idx_s, cols]
        logit = model.net(x, model.codes[:, None, :])
        loss = nn.functional.binary_cross_entropy_with_logits(logit, y) + code_reg * (model.codes ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        hist["loss"].append(float(loss.detach()))
        hist["accuracy"].append(float(((logit.detach() > 0) == (y > 0.5)).float().mean()))
        if ep % 10 == 0:
            bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}", acc=f"{hist['accuracy'][-1]:.3f}")
    hist["seconds"] = time.perf_counter() - t0
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, hist


@torch.no_grad()
def occupancy_accuracy(model: AutoDecoder, data: ImplicitData, near_only: bool = True) -> float:
    """Fraction of (near-surface) training samples whose occupancy the model classifies right."""
    dev = model.codes.device
    cols = data.near if near_only else torch.ones_like(data.near)
    logit = model.net(data.points[:, cols].to(dev), model.codes[:, None, :])
    return float(((logit > 0) == (data.occupancy[:, cols].to(dev) > 0.5)).float().mean())


@torch.no_grad()
def reconstruct(net: ImplicitNet, z: torch.Tensor, resolution: int = 64, box: float = 0.5, chunk: int = 65536,
                name: str = "reconstruction") -> Shape:
    """Marching cubes (scikit-image) of ``F(·; z) = τ`` (logit 0) on a ``resolution³`` grid in
    ``[−box, box]³``. Raises if the level set is empty (untrained net or a bad code)."""
    from skimage.measure import marching_cubes

    dev = next(net.parameters()).device
    g = torch.linspace(-box, box, resolution, device=dev)
    X = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    vals = torch.cat([net(X[i:i + chunk], z.to(dev)) for i in range(0, len(X), chunk)]).reshape((resolution,) * 3)
    vals = vals.cpu().numpy()
    if not (vals.min() < 0 < vals.max()):
        raise ValueError("reconstruct: F(·; z) has no 0.5-level set in the box — is the network trained and z a "
                         "code of a training shape?")
    h = 2 * box / (resolution - 1)
    v, f, _, _ = marching_cubes(vals, 0.0, spacing=(h, h, h))
    # marching cubes orients faces towards increasing values (inside); flip to outward normals
    return Shape(v - box, f[:, ::-1].copy(), name=name)


# ----------------------------------------------------------------------------- feature matching


def layer_feature_fn(net: ImplicitNet, layers: Sequence[int] = (3, 6), weights: Sequence[float] | None = None):
    """``phi(x (3,), z (k,)) -> (p,)``: the concatenation ``[w_1 Φ^(l_1), w_2 Φ^(l_2), …]`` of the
    chosen layers (paper for deformation: layers (3, 6), weights (1, 0.1)). Unbatched: the
    matcher batches it with ``torch.func.vmap``."""
    layers = tuple(layers)
    weights = tuple([1.0] * len(layers) if weights is None else weights)
    if len(weights) != len(layers):
        raise ValueError(f"{len(layers)} layers but {len(weights)} weights.")

    def phi(x, z):
        return torch.cat([w * f for w, f in zip(weights, net.features(x, z, layers))], -1)

    return phi


def _value_and_jacobian(phi: Callable, x: torch.Tensor, z: torch.Tensor):
    """``phi`` and its x-Jacobian at every point: ``(n, p)`` and ``(n, p, 3)``, by vmap(jacfwd)."""
    from torch.func import jacfwd, vmap

    def f(xi, zi):
        v = phi(xi, zi)
        return v, v

    J, val = vmap(jacfwd(f, has_aux=True))(x, z)
    return val, J


def gauss_newton(phi: Callable, x: torch.Tensor, z: torch.Tensor, target: torch.Tensor, n_iters: int = 3,
                 lam: float = 0.01, max_step: float | None = None) -> torch.Tensor:
    """Displacements ``δ (n, 3)`` with ``phi(x + δ, z) ≈ target`` (Eq. 5–8), batched over points.

    phi : unbatched feature function ``(3,), (k,) -> (p,)``; x ``(n, 3)``; z ``(n, k)``;
    target ``(n, p)`` (the features to keep, ``Φ(x_t, z_t)``). Each of ``n_iters`` iterations
    solves, for every point, ``(JᵀJ + λ²I) Δ = −(Jᵀ dΦ + λ² δ)`` with ``J`` evaluated at the
    current ``x + δ``. ``max_step`` optionally clips ``‖δ‖`` (the σ-ball of Eq. 3; off by default).
    """
    delta = torch.zeros_like(x)
    eye = torch.eye(3, dtype=torch.float64, device=x.device)
    for _ in range(n_iters):
        val, J = _value_and_jacobian(phi, x + delta, z)
        r = val - target
        A = (J.transpose(1, 2) @ J).double() + (lam ** 2) * eye
        b = (J.transpose(1, 2) @ r[..., None])[..., 0].double() + (lam ** 2) * delta.double()
        step, info = torch.linalg.solve_ex(A, b)  # one batched 3×3 solve for all points
        bad = (info != 0) | ~torch.isfinite(step).all(1)  # λ = 0 and a flat feature field: stay put
        delta = delta - torch.where(bad[:, None], 0.0, step).to(delta.dtype)
        if max_step is not None:
            n = delta.norm(dim=1, keepdim=True).clamp_min(1e-12)
            delta = delta * (max_step / n).clamp(max=1.0)
    return delta


def match_points(phi: Callable, x0, z_A: torch.Tensor, z_B: torch.Tensor, n_steps: int = 50, n_iters: int = 3,
                 lam: float = 0.01, chunk: int = 4096, max_step: float | None = None,
                 return_trajectory: bool = False, progress: bool = False):
    """Implicit feature matching (Eq. 3–4): carry ``x0 (n, 3)`` along ``z_t = (1−t) z_A + t z_B``.

    z_A, z_B : ``(k,)`` or ``(n, k)`` (one code pair per point: many pairs in one batch).
    ``n_steps`` steps of ``dt = 1/n_steps`` (paper: 50 × 0.02), each ``n_iters`` Gauss–Newton
    iterations (paper: 3) with regulariser ``lam`` (paper: 0.01). ``n_steps=1`` is *direct*
    matching (Fig. 7). Points are processed in chunks of ``chunk``. Returns ``x1 (n, 3)`` (and the
    ``(n_steps+1, n, 3)`` trajectory with ``return_trajectory``), on the device of ``z_A``.
    """

    dev = z_A.device
    x0 = torch.as_tensor(np.asarray(x0) if not isinstance(x0, torch.Tensor) else x0, dtype=z_A.dtype, device=dev)
    if x0.ndim != 2 or x0.shape[1] != 3:
        raise ValueError(f"x0 must be (n, 3) points, got {tuple(x0.shape)}.")
    if n_steps < 1 or n_iters < 1:
        raise ValueError("n_steps and n_iters must be ≥ 1.")
    n = len(x0)
    zA = z_A.expand(n, -1) if z_A.ndim == 1 else z_A
    zB = z_B.expand(n, -1) if z_B.ndim == 1 else z_B
    if zA.shape[0] != n or zB.shape[0] != n:
        raise ValueError(f"z_A/z_B must be (k,) or ({n}, k); got {tuple(z_A.shape)} and {tuple(z_B.shape)}.")
    out, traj = [], []
    bar = tqdm(total=n_steps * ((n + chunk - 1) // chunk), desc="matching", disable=not progress, leave=False)
    with torch.no_grad():
        for i in range(0, n, chunk):
            x, a, b = x0[i:i + chunk].clone(), zA[i:i + chunk], zB[i:i + chunk]
            path = [x.clone()]
            for s in range(n_steps):
                t0, t1 = s / n_steps, (s + 1) / n_steps
                za, zb = (1 - t0) * a + t0 * b, (1 - t1) * a + t1 * b
                target = torch.func.vmap(phi)(x, za)
                x = x + gauss_newton(phi, x, zb, target, n_iters, lam, max_step)
                if return_trajectory:
                    path.append(x.clone())
                bar.update(1)
            out.append(x)
            traj.append(torch.stack(path))
    bar.close()
    x1 = torch.cat(out)
    return (x1, torch.cat(traj, 1)) if return_trajectory else x1


def deform(model: AutoDecoder, points, i_src: int, i_tgt: int, layers=(3, 6), weights=(1.0, 0.1),
           **kw) -> np.ndarray:
    """Move ``points (n, 3)`` of training shape ``i_src`` towards shape ``i_tgt`` by feature matching
    (paper defaults; ``**kw`` go to :func:`match_points`). Returns ``(n, 3) float`` numpy."""
    phi = layer_feature_fn(model.net, layers, weights)
    x1 = match_points(phi, points, model.z(i_src), model.z(i_tgt), **{**dict(n_steps=50, n_iters=3, lam=0.01), **kw})
    return x1.cpu().numpy()


# ----------------------------------------------------------------------------- cross-fitting baseline


def cross_fit(shape: Shape, target_points, rigidity: float = 0.0, steps: int = 300, lr: float = 5e-3,
              seed: int = 0) -> np.ndarray:
    """Cross-fitting baseline: per-vertex offsets ``D`` that minimise the two-sided Chamfer distance
    between the deformed vertices ``V + D`` and ``target_points (m, 3)``, plus
    ``rigidity · mean_edges ‖(v_i+D_i − v_j−D_j) − (v_i − v_j)‖²`` (= ``‖D_i − D_j‖²``, same
    units as the squared Chamfer terms) — an ARAP-style term
    without rotations that keeps every edge vector (MeshODE-like rigidity when > 0; free
    offsets, ShapeFlow-like overfitting when 0). Adam, nearest neighbours from
    :func:`shapelib.kernels.nearest`. Returns deformed vertices ``(n, 3)``.
    """
    torch.manual_seed(seed)
    V = torch.as_tensor(shape.vertices, dtype=torch.float32)
    T = torch.as_tensor(np.asarray(target_points), dtype=torch.float32)
    E = torch.as_tensor(shape.edges(), dtype=torch.long)
    D = torch.zeros_like(V, requires_grad=True)
    opt = torch.optim.Adam([D], lr=lr)
    for _ in range(steps):
        X = V + D
        i_t = nearest(T, X.detach(), backend="torch")  # for each vertex, nearest target point
        i_x = nearest(X.detach(), T, backend="torch")  # for each target point, nearest vertex
        loss = ((X - T[i_t]) ** 2).sum(1).mean() + ((T - X[i_x]) ** 2).sum(1).mean()
        if rigidity:
            loss = loss + rigidity * ((D[E[:, 0]] - D[E[:, 1]]) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (V + D).detach().numpy()


# ----------------------------------------------------------------------------- the deformation experiment

#: the four transformations of the deformation experiment (Table 1 protocol), in table order
DEFORM_METHODS = ("source (no deformation)", "cross-fit, free", "cross-fit + rigidity", "ours (layer 3 + 0.1·6)")


def unit_cube_keypoints(shape: Shape, keypoint_xyz) -> np.ndarray | None:
    """Keypoints ``(k, 3)`` (NaN rows = absent) of ``shape`` carried into its unit cube
    (:func:`unit_cube_transform`); None when ``keypoint_xyz`` is None."""
    if keypoint_xyz is None:
        return None
    c, s = unit_cube_transform(shape)
    return (np.asarray(keypoint_xyz, dtype=np.float64) - c) * s


def compare_deformations(model: AutoDecoder, shapes, pairs, n_eval: int = 512, face_parts=None, keypoints=None,
                         crossfit_steps: int = 200, rigidity: float = 30.0, n_emd_part: int = 256, match=None,
                         progress: bool = True) -> dict:
    """Deform source ``shapes[a]`` towards ``shapes[b]`` for each ``(a, b)`` of ``pairs`` with the four
    :data:`DEFORM_METHODS` (mesh vertices moved, faces kept; ours: :func:`deform` with layer 3 + 0.1·layer 6
    and ``match`` settings) and score ``n_eval`` area-uniform samples at fixed barycentric coordinates.

    ``face_parts``: per shape, a part id per face (then part-averaged CD / EMD are scored too,
    :func:`shapelib.metrics.part_distances`); ``keypoints``: per shape, unit-cube keypoints ``(k, 3)``
    with NaN rows for absent ones, or None (then the mean distance of the source's transported
    keypoints to the target's same ids is measured). ``shapes`` are the auto-decoder's (normalised)
    training shapes, indexed as its codes.

    Returns ``{'scores': {method: (n_pairs, 2 or 4) array of CD, EMD[, part CD, part EMD]},
    'keypoints': {method: [mean error per annotated pair]}, 'shown': {method or 'target': (points,
    labels or None)} of the first pair}``."""
    if len(pairs) == 0:
        raise ValueError("no pairs to deform: give a list of (source index, target index).")
    match = dict(match or {})
    scores = {m: [] for m in DEFORM_METHODS}
    kp_err = {m: [] for m in DEFORM_METHODS}
    shown = {}
    for p, (a, b) in enumerate(tqdm(pairs, desc="deformation pairs", leave=False, disable=not progress)):
        src, tgt = shapes[a], shapes[b]
        pa, fa, ba = src.sample_surface(n_eval, seed=p)
        yb, fb, _ = tgt.sample_surface(n_eval, seed=50 + p)
        lab_a = lab_b = None
        if face_parts is not None:
            lab_a, lab_b = np.asarray(face_parts[a])[fa], np.asarray(face_parts[b])[fb]
        ka, kb = (None, None) if keypoints is None else (keypoints[a], keypoints[b])
        if ka is not None and kb is not None:
            common = np.flatnonzero(np.isfinite(ka).all(1) & np.isfinite(kb).all(1))
            kface, kbary = surface_coordinates(src, ka[common])   # the keypoints ride on the source surface
        V = dict(zip(DEFORM_METHODS, (src.vertices, cross_fit(src, yb, rigidity=0.0, steps=crossfit_steps),
                                      cross_fit(src, yb, rigidity=rigidity, steps=crossfit_steps),
                                      deform(model, src.vertices, a, b, layers=(3, 6), weights=(1.0, 0.1), **match))))
        for m, Vm in V.items():
            xa = points_from_bary(Vm, src.faces, fa, ba)
            row = [metrics.chamfer_distance(xa, yb), metrics.earth_movers_distance(xa, yb)]
            if lab_a is not None:
                part = metrics.part_distances(xa, lab_a, yb, lab_b, n_emd=n_emd_part)
                row += [part["cd"], part["emd"]]
            scores[m].append(row)
            if ka is not None and kb is not None:
                kp_err[m].append(float(np.linalg.norm(points_from_bary(Vm, src.faces, kface, kbary) - kb[common], axis=1).mean()))
            if p == 0:
                shown[m] = (xa, lab_a)
        if p == 0:
            shown["target"] = (yb, lab_b)
    return {"scores": {m: np.asarray(v) for m, v in scores.items()}, "keypoints": {m: v for m, v in kp_err.items() if v},
            "shown": shown}


def format_comparison(result: dict) -> str:
    """:func:`compare_deformations`' mean scores as a text table (CD ×1e3, EMD ×1e2, keypoint error ×1e2)."""
    S, KP = result["scores"], result["keypoints"]
    k = next(iter(S.values())).shape[1]
    cols = ["CD×1e3", "EMD×1e2", "partCD×1e3", "partEMD×1e2"][:k] + (["keypoint err×1e2"] if KP else [])
    lines = [f"{'method':28s} " + " ".join(f"{c:>12s}" for c in cols)]
    for m, v in S.items():
        vals = list(v.mean(0) * np.array([1e3, 1e2, 1e3, 1e2][:k])) + ([1e2 * np.mean(KP[m])] if KP else [])
        lines.append(f"{m:28s} " + " ".join(f"{x:12.2f}" for x in vals))
    return "\n".join(lines)


def plot_comparison(shown: dict, title: str = ""):
    """Side view (z right, y up) of the first pair's samples as each method moves them and of the
    target, coloured by part when labels are given (:func:`compare_deformations`' ``'shown'``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, len(shown), figsize=(3 * len(shown), 3))
    for a, (key, (pts, lab)) in zip(ax, shown.items()):
        a.scatter(pts[:, 2], pts[:, 1], s=2, **(dict(c="tab:blue") if lab is None else dict(c=lab, cmap="tab10", vmin=0, vmax=9)))
        a.set_title(key, fontsize=8), a.set_aspect("equal"), a.set_axis_off()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def pick_chairs(candidates, n: int, min_consistency: float = 0.9) -> tuple[list, list]:
    """``n`` chairs, half with armrests (``n // 2``), from ``candidates`` in order — `Item`\\ s with
    ``meta['armrests']`` or ``(folder, model_id)`` pairs of :func:`shapelib.data.shapenet.chair_ids` —
    skipping those whose inside/outside labels are inconsistent (:func:`label_consistency` below
    ``min_consistency``: open single-sheet parts). Returns ``(picked, skipped)``, lists of ``(item, consistency)``."""
    need = {True: n // 2, False: n - n // 2}
    picked, skipped = [], []
    for c in candidates:
        arm = bool(c.meta["armrests"]) if hasattr(c, "meta") else shapenet.ARMRESTS[c[1]]
        if need[arm] == 0:
            continue
        it = c if hasattr(c, "meta") else shapenet.read_chair(c[1], c[0])
        q = label_consistency(it.shape)
        (picked if q >= min_consistency else skipped).append((it, q))
        need[arm] -= q >= min_consistency
        if not any(need.values()):
            break
    return picked, skipped
