"""DiffusionNet (Sharp, Attaiki, Crane & Ovsjanikov, ACM TOG 2022) — notebook 02.

Three ideas, one module:

* :class:`LearnedTimeDiffusion` — each channel ``u`` is diffused for its own learned time
  ``t ≥ 0``: spectrally, ``Φ diag(e^{−λt}) Φᵀ M u`` (k eigenpairs), or by one implicit Euler
  step, ``(M + tL)⁻¹ M u`` (a sparse solve, differentiable in ``u`` and ``t``).
* :class:`SpatialGradientFeatures` — per-vertex tangent gradients ``w = G u`` (complex) of
  every channel; features ``tanh(Re(w̄ ⊙ A w))`` with a learned D×D matrix ``A`` that is complex
  (rotation + scale: sees orientation) or real (scale only: orientation-blind).
* :class:`DiffusionNetBlock` / :class:`DiffusionNet` — diffusion → gradient features →
  per-vertex MLP with a residual; linear layers in and out; outputs at vertices, faces,
  edges or a mass-weighted global mean.

Operators come from :func:`shapelib.operators.compute_operators` (one call per shape,
cached on disk) converted with ``Operators.to_torch(device)``: a dict with sparse ``L``,
``grad_x``, ``grad_y`` ``(n, n)`` and dense ``M (n,)``, ``evals (k,)``, ``evecs (n, k)``.
Batch size is 1: every shape has its own operators. Everything is device-agnostic.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .operators import Operators, compute_operators
from .shape import Shape

# ----------------------------------------------------------------------------- diffusion


def _sparse_diag(L: torch.Tensor) -> torch.Tensor:
    """Diagonal ``(n,)`` of a sparse COO matrix."""
    L = L.coalesce()
    idx, val = L.indices(), L.values()
    on = idx[0] == idx[1]
    d = torch.zeros(L.shape[0], dtype=val.dtype, device=val.device)
    return d.index_add_(0, idx[0][on], val[on])


def batched_cg(apply_A, b: torch.Tensor, diag: torch.Tensor, tol: float | None = None, max_iter: int = 2000) -> torch.Tensor:
    """Solve ``A_c y_c = b_c`` for every column ``c`` at once by Jacobi-preconditioned conjugate
    gradients. ``apply_A(Y)`` applies all the (symmetric positive definite) ``A_c`` to the
    columns of ``Y (n, C)``; ``diag (n, C)`` holds their diagonals. Converges to a relative
    residual ``tol`` (default 1e-10 in float64, 1e-6 in float32)."""
    if tol is None:
        tol = 1e-10 if b.dtype == torch.float64 else 1e-6
    x = b / diag
    r = b - apply_A(x)
    z = r / diag
    p = z.clone()
    rz = (r * z).sum(0)
    bnorm = b.norm(dim=0).clamp_min(torch.finfo(b.dtype).tiny)
    for _ in range(max_iter):
        if (r.norm(dim=0) / bnorm).max() < tol:
            break
        Ap = apply_A(p)
        alpha = rz / (p * Ap).sum(0).clamp_min(torch.finfo(b.dtype).tiny)
        x = x + alpha * p
        r = r - alpha * Ap
        z = r / diag
        rz_new = (r * z).sum(0)
        p = z + (rz_new / rz.clamp_min(torch.finfo(b.dtype).tiny)) * p
        rz = rz_new
    return x


def _scipy_csc(L: torch.Tensor):
    """The sparse torch matrix as scipy csc (float64), for CPU direct solves."""
    import scipy.sparse as sp

    L = L.coalesce()
    i = L.indices().cpu().numpy()
    return sp.csc_matrix((L.values().detach().cpu().double().numpy(), (i[0], i[1])), shape=tuple(L.shape))


class _ImplicitHeat(torch.autograd.Function):
    """``y_c = (M + t_c L)⁻¹ M u_c`` for all channels; backward by the adjoint solve
    (A is symmetric): ``∂/∂u = M A⁻¹ g``, ``∂/∂t_c = −(A⁻¹ g)_c · (L y)_c``.

    CPU: one sparse LU (SuperLU) per channel, reused by the backward pass. Other devices:
    Jacobi-preconditioned conjugate gradients (no factorisation; iterations grow like
    sqrt(t·λ_max), so large t is slower).
    """

    @staticmethod
    def forward(ctx, u, t, L, M, Ldiag, L_scipy):
        if u.device.type == "cpu":
            import scipy.sparse as sp
            import scipy.sparse.linalg as sla

            Mn = M.detach().double().numpy()
            rhs = (Mn[:, None] * u.detach().double().numpy())
            lus = [sla.splu(sp.csc_matrix(sp.diags(Mn) + float(tc) * L_scipy)) for tc in t.detach().cpu().numpy()]
            y = torch.from_numpy(np.stack([lu.solve(rhs[:, c]) for c, lu in enumerate(lus)], axis=1)).to(u.dtype)
            ctx.solve = lambda g: torch.from_numpy(np.stack(
                [lu.solve(g[:, c].detach().double().numpy()) for c, lu in enumerate(lus)], axis=1)).to(g.dtype)
        else:
            def apply_A(Y):
                return M[:, None] * Y + torch.sparse.mm(L, Y) * t[None, :]

            diag = M[:, None] + Ldiag[:, None] * t[None, :]
            y = batched_cg(apply_A, M[:, None] * u, diag)
            ctx.solve = lambda g: batched_cg(apply_A, g.contiguous(), diag)
        ctx.save_for_backward(y, M)
        ctx.L = L
        return y

    @staticmethod
    def backward(ctx, g):
        y, M = ctx.saved_tensors
        w = ctx.solve(g)
        grad_u = M[:, None] * w if ctx.needs_input_grad[0] else None
        grad_t = -(w * torch.sparse.mm(ctx.L, y)).sum(0) if ctx.needs_input_grad[1] else None
        return grad_u, grad_t, None, None, None, None


def to_basis(x: torch.Tensor, evecs: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Spectral coefficients ``Φᵀ M x``: ``(k, C)``."""
    return evecs.T @ (M[:, None] * x)


def from_basis(c: torch.Tensor, evecs: torch.Tensor) -> torch.Tensor:
    """Back to vertices: ``Φ c``: ``(n, C)``."""
    return evecs @ c


class LearnedTimeDiffusion(nn.Module):
    """Diffuse each of ``channels`` features for its own time ``t_c ≥ 0`` (units: length²).

    method : ``'spectral'`` (``Φ diag(e^{−λt}) Φᵀ M u``, default) or ``'implicit'``
        (``(M + tL)⁻¹ M u``, any device: a sparse LU per channel on CPU (SuperLU, reused by
        the backward pass), Jacobi-preconditioned conjugate gradients on CUDA and other devices).
    init_time : initial t (DiffusionNet initialises at 0 and lets training grow it).
    learn : False freezes t (the "fixed-time" ablation).
    """

    def __init__(self, channels: int, method: str = "spectral", init_time: float = 0.0, learn: bool = True):
        super().__init__()
        if method not in ("spectral", "implicit"):
            raise ValueError(f"method={method!r}: choose 'spectral' or 'implicit'.")
        self.method = method
        self.diffusion_time = nn.Parameter(torch.full((channels,), float(init_time)), requires_grad=learn)

    def forward(self, x: torch.Tensor, ops: dict) -> torch.Tensor:
        if x.shape[-1] != self.diffusion_time.shape[0]:
            raise ValueError(f"LearnedTimeDiffusion expects {self.diffusion_time.shape[0]} channels, got x of shape {tuple(x.shape)}.")
        with torch.no_grad():  # keep t >= 0, as the reference implementation does
            self.diffusion_time.clamp_(min=1e-8)
        return diffuse(x, self.diffusion_time, ops, self.method)


def diffuse(x: torch.Tensor, t: torch.Tensor, ops: dict, method: str = "spectral") -> torch.Tensor:
    """Heat flow of every channel of ``x (n, C)`` for its time ``t (C,)``; differentiable in both.

    ``'spectral'``: ``Φ diag(e^{−λ t_c}) Φᵀ M x_c``; ``'implicit'``: ``(M + t_c L)⁻¹ M x_c``.
    """
    if method == "spectral":
        coefs = torch.exp(-ops["evals"][:, None] * t[None, :])
        return from_basis(coefs * to_basis(x, ops["evecs"], ops["M"]), ops["evecs"])
    if "L_diag" not in ops:  # cached in the dict: computed once per shape
        ops["L_diag"] = _sparse_diag(ops["L"])
        ops["L_scipy"] = _scipy_csc(ops["L"]) if ops["L"].device.type == "cpu" else None
    return _ImplicitHeat.apply(x, t, ops["L"], ops["M"], ops["L_diag"], ops["L_scipy"])


# ----------------------------------------------------------------------------- gradients


class SpatialGradientFeatures(nn.Module):
    """``tanh(Re(w̄ ⊙ A w))`` per channel from the complex gradients ``w (n, C)``.

    mode : ``'complex'`` (A = A_re + i A_im: rotates and scales, orientation-aware),
        ``'real'`` (A real: scales only, blind to orientation) or ``'identity'`` (no learned
        A: features ``tanh(|w|²)``, the "unlearned gradient features" ablation).
    """

    def __init__(self, channels: int, mode: str = "complex"):
        super().__init__()
        if mode not in ("complex", "real", "identity"):
            raise ValueError(f"mode={mode!r}: choose 'complex', 'real' or 'identity'.")
        self.mode = mode
        if mode != "identity":
            self.A_re = nn.Linear(channels, channels, bias=False)
        if mode == "complex":
            self.A_im = nn.Linear(channels, channels, bias=False)

    def forward(self, gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
        """gx, gy: ``(n, C)`` real and imaginary parts of the gradients."""
        if self.mode == "identity":
            bx, by = gx, gy
        elif self.mode == "real":
            bx, by = self.A_re(gx), self.A_re(gy)
        else:
            bx = self.A_re(gx) - self.A_im(gy)
            by = self.A_re(gy) + self.A_im(gx)
        return torch.tanh(gx * bx + gy * by)


# ----------------------------------------------------------------------------- network


class MLP(nn.Sequential):
    """Linear layers with ReLU between them and dropout (p=0.5) before all but the first."""

    def __init__(self, sizes: list[int], dropout: bool = False):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if dropout and i > 0:
                layers.append(nn.Dropout(0.5))
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)


class DiffusionNetBlock(nn.Module):
    """diffusion → spatial gradient features → MLP on [x, diffused, grad. features], + x.

    Ablation switches: ``diffusion=False`` (identity instead of diffusion), ``fixed_time``
    (a shared, unlearned t), ``gradient_features=False``, ``gradient_mode`` (see
    :class:`SpatialGradientFeatures`).
    """

    def __init__(self, width: int, mlp_hidden: list[int] | None = None, dropout: bool = True,
                 method: str = "spectral", diffusion: bool = True, fixed_time: float | None = None,
                 gradient_features: bool = True, gradient_mode: str = "complex"):
        super().__init__()
        self.use_diffusion = diffusion
        self.use_gradients = gradient_features
        if diffusion:
            self.diffusion = LearnedTimeDiffusion(width, method, init_time=fixed_time or 0.0, learn=fixed_time is None)
        if gradient_features:
            self.gradient_features = SpatialGradientFeatures(width, gradient_mode)
        n_in = width * (3 if gradient_features else 2)
        self.mlp = MLP([n_in] + (mlp_hidden or [width, width]) + [width], dropout=dropout)

    def forward(self, x: torch.Tensor, ops: dict) -> torch.Tensor:
        xd = self.diffusion(x, ops) if self.use_diffusion else x
        feats = [x, xd]
        if self.use_gradients:
            gx = torch.sparse.mm(ops["grad_x"], xd)
            gy = torch.sparse.mm(ops["grad_y"], xd)
            feats.append(self.gradient_features(gx, gy))
        return x + self.mlp(torch.cat(feats, dim=-1))


class DiffusionNet(nn.Module):
    """DiffusionNet: ``Linear(in→width)``, ``n_blocks`` × :class:`DiffusionNetBlock`, ``Linear(width→out)``.

    Parameters
    ----------
    in_channels, out_channels : feature sizes (e.g. 3 for xyz or 16 for HKS → n_labels).
    width : channels inside the blocks (paper: 128; 32 for HKS tasks).
    outputs_at : ``'vertices'`` ``(n, out)``, ``'faces'`` ``(m, out)`` / ``'edges'`` ``(e, out)``
        (means over the element's vertices; pass ``faces=`` / ``edges=`` to forward), or
        ``'global_mean'`` ``(out,)`` (mass-weighted mean over the surface).
    last_activation : applied to the output (e.g. ``torch.nn.functional.log_softmax``).
    **block_kw : forwarded to every block (``method``, ``dropout``, ablation switches).

    ``forward(x, ops)``: ``x (n, in_channels)`` float tensor, ``ops`` the dict of
    ``Operators.to_torch(device)``.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 128, n_blocks: int = 4,
                 outputs_at: str = "vertices", last_activation=None, mlp_hidden: list[int] | None = None, **block_kw):
        super().__init__()
        if outputs_at not in ("vertices", "faces", "edges", "global_mean"):
            raise ValueError(f"outputs_at={outputs_at!r}: choose vertices, faces, edges or global_mean.")
        self.in_channels, self.out_channels, self.outputs_at = in_channels, out_channels, outputs_at
        self.first = nn.Linear(in_channels, width)
        self.blocks = nn.ModuleList(DiffusionNetBlock(width, mlp_hidden, **block_kw) for _ in range(n_blocks))
        self.last = nn.Linear(width, out_channels)
        self.last_activation = last_activation

    def forward(self, x: torch.Tensor, ops: dict, faces: torch.Tensor | None = None, edges: torch.Tensor | None = None,
                rows: torch.Tensor | None = None, return_features: bool = False):
        """``rows`` (vertex outputs only): evaluate the output layer at these vertices alone —
        with thousands of labels (FAUST's 6,890) the full ``(n, out)`` logits dominate time and
        memory. ``return_features=True`` also returns the last hidden features ``(n, width)``."""
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"DiffusionNet expects x of shape (n, {self.in_channels}), got {tuple(x.shape)}.")
        if x.shape[0] != ops["M"].shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but the operators are for {ops['M'].shape[0]} vertices: "
                             "pass the operators of the same shape.")
        h = self.first(x)
        for block in self.blocks:
            h = block(h, ops)
        out = self.last(h if rows is None else h[rows])
        if self.outputs_at == "faces":
            out = out[faces].mean(dim=1)
        elif self.outputs_at == "edges":
            out = out[edges].mean(dim=1)
        elif self.outputs_at == "global_mean":
            out = (ops["M"][:, None] * out).sum(0) / ops["M"].sum()
        if self.last_activation is not None:
            out = self.last_activation(out)
        return (out, h) if return_features else out

    def diffusion_times(self) -> list[np.ndarray]:
        """Learned times of every block, ``[(width,) float]`` (length² units)."""
        return [b.diffusion.diffusion_time.detach().clamp(min=0).cpu().numpy() for b in self.blocks if b.use_diffusion]


# ----------------------------------------------------------------------------- inputs


def rotation_about(axis: int, angle, dtype=torch.float32) -> torch.Tensor:
    """The rotation ``(3, 3)`` about coordinate ``axis`` (0, 1 or 2) by ``angle`` radians
    (``axis=1``: about y, the vertical of FAUST)."""
    a = torch.as_tensor(angle, dtype=torch.float64)
    c, s = torch.cos(a), torch.sin(a)
    i, j = [d for d in range(3) if d != axis]
    q = torch.eye(3, dtype=torch.float64)
    q[i, i], q[i, j], q[j, i], q[j, j] = c, -s, s, c
    return q.to(dtype)


def random_rotation(generator: torch.Generator | None = None, dtype=torch.float32, axis: int | None = None) -> torch.Tensor:
    """A uniformly random rotation ``(3, 3)``: of SO(3) (QR of a Gaussian matrix, det +1), or, with
    ``axis`` (0, 1 or 2), about that coordinate axis by a uniform angle (``axis=1``: about y, the
    vertical of FAUST)."""
    if axis is not None:
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2 (x, y or z), got {axis!r}.")
        a = 2 * torch.pi * torch.rand((), generator=generator, dtype=torch.float64)
        return rotation_about(axis, a, dtype)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))[None, :]
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def input_features(obj, kind: str = "hks", n_hks: int = 16, rotate: bool = False,
                   generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """DiffusionNet inputs for one shape, ``(n, C)`` float32 tensor.

    obj : a `Shape` (operators computed/cached as needed) or, for ``kind='hks'``, an `Operators`.
    kind : ``'xyz'`` — centred, scaled into the unit sphere (paper §5), optionally with a
        random rotation (``rotate=True``: augmentation for rotation-invariant tasks);
        ``'hks'`` — 16 scale-normalised heat kernel signatures on t ∈ [0.01, 1] (intrinsic,
        invariant to rigid motion, scale and — nearly — pose).
    """
    if kind == "xyz":
        if not isinstance(obj, Shape):
            raise TypeError("input_features(kind='xyz') needs the Shape (coordinates), not its operators.")
        v = torch.as_tensor(obj.normalized("sphere").vertices, dtype=torch.float32)
        if rotate:
            v = v @ random_rotation(generator).T
        return v.to(device)
    if kind == "hks":
        ops = obj if isinstance(obj, Operators) else compute_operators(obj)
        return torch.as_tensor(ops.hks(n_times=n_hks), dtype=torch.float32, device=device)
    raise ValueError(f"kind={kind!r}: choose 'xyz' or 'hks'.")


class PointwiseMLP(nn.Module):
    """The no-context baseline: the same per-vertex MLP applied to each vertex's input alone
    (no diffusion, no neighbours). Signature of :class:`DiffusionNet`; ``ops`` is ignored."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 128, depth: int = 4, dropout: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.body = MLP([in_channels] + [width] * depth, dropout=dropout)
        self.last = nn.Linear(width, out_channels)

    def forward(self, x: torch.Tensor, ops: dict | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.body(x if rows is None else x[rows]))
        return self.last(h)
