"""Functional maps, ZoomOut and differentiable ZoomOut (notebook 04).

Reproduces the classic pipeline (Ovsjanikov et al. 2012; ZoomOut, Melzi et al. 2019) and
"Memory-Scalable and Simplified Functional Map Learning" (Magnet & Ovsjanikov, CVPR 2024).

Naming convention (read it once, it prevents most bugs)
-------------------------------------------------------
* ``Φ1 (n1, k1)``, ``Φ2 (n2, k2)``: Laplace–Beltrami eigenvectors, **orthonormal in the mass
  matrix** (``Φᵀ M Φ = I``), so ``Φ† = Φᵀ M`` is the left inverse (``SpectralBasis``).
* ``C12 (k2, k1)`` carries functions FROM shape 1 TO shape 2: coefficients ``a1`` of ``f1``
  become ``C12 @ a1`` on shape 2.
* ``p2p_21 (n2,) int``: for every vertex of shape 2, a vertex of shape 1 (a map T: S2 → S1).
  Its matrix ``P21 (n2, n1)`` pulls functions back: ``f2 = P21 f1 = f1[p2p_21]``.
* Pull-back: ``C12 = Φ2† P21 Φ1`` (Eq. 2); soft maps use ``Π21 = SoftMap(F1, F2, σ)``.
* fmap → p2p: nearest neighbour of each row of ``Φ2`` among the rows of ``Φ1 C12ᵀ``.

Every nearest-neighbour search and soft-map product goes through :mod:`shapelib.kernels`,
so the same code runs on CPU or GPU, with any kernel backend.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from .diffusion import DiffusionNet, input_features
from .kernels import SoftMap, nearest
from .operators import compute_operators, wks
from .train import check_clip_mode, clip_gradients

# ----------------------------------------------------------------------------- bases


def _tensor(x, device=None, dtype=None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.is_floating_point():
        t = t.to(dtype or (torch.float64 if isinstance(x, np.ndarray) else t.dtype))
    return t.to(device) if device is not None else t


@dataclass
class SpectralBasis:
    """The first ``k`` Laplace–Beltrami eigenpairs of one shape, as torch tensors on one device.

    evecs ``(n, k)`` — orthonormal in M (``Φᵀ diag(M) Φ = I``) · evals ``(k,)`` ascending,
    1/length² · M ``(n,)`` lumped vertex areas (length²).
    """

    evecs: torch.Tensor
    evals: torch.Tensor
    M: torch.Tensor

    def __post_init__(self):
        n, k = self.evecs.shape
        if self.evals.shape != (k,) or self.M.shape != (n,):
            raise ValueError(f"SpectralBasis: evecs {tuple(self.evecs.shape)} needs evals ({k},) and M ({n},); "
                             f"got {tuple(self.evals.shape)} and {tuple(self.M.shape)}.")
        if not (self.evecs.device == self.evals.device == self.M.device):
            raise ValueError("SpectralBasis: evecs, evals and M must be on one device; build it with "
                             "SpectralBasis.from_operators(ops, device=...).")

    @classmethod
    def from_operators(cls, ops, k: int | None = None, device=None, dtype=torch.float32) -> "SpectralBasis":
        """From :class:`shapelib.operators.Operators` (or its ``to_torch()`` dict); first ``k`` pairs."""
        get = ops.get if isinstance(ops, dict) else (lambda name: getattr(ops, name))
        k = k or get("evecs").shape[1]
        if k > get("evecs").shape[1]:
            raise ValueError(f"SpectralBasis: asked for k={k} eigenpairs but the operators hold "
                             f"{get('evecs').shape[1]}; recompute with compute_operators(shape, k={k}).")
        t = lambda a: torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).to(device=device, dtype=dtype)  # noqa: E731
        return cls(t(get("evecs")[:, :k]), t(get("evals")[:k]), t(get("M")))

    @classmethod
    def from_shape(cls, shape, k: int, device=None, dtype=torch.float32) -> "SpectralBasis":
        """Computes (or loads from the disk cache) the operators of ``shape`` with ``k`` eigenpairs."""
        if k >= shape.n_vertices:  # compute_operators caps k at n - 1, so asking it again cannot help
            raise ValueError(f"SpectralBasis.from_shape(k={k}): {shape!r} has {shape.n_vertices} vertices and compute_operators "
                             f"gives at most n − 1 = {shape.n_vertices - 1} eigenpairs. Pass k ≤ "
                             f"{shape.n_vertices - 1}, or use a finer mesh (more vertices) for a larger basis.")
        return cls.from_operators(compute_operators(shape, k=k), k, device, dtype)

    @property
    def n(self) -> int:
        return self.evecs.shape[0]

    @property
    def k(self) -> int:
        return self.evecs.shape[1]

    def to(self, device=None, dtype=None) -> "SpectralBasis":
        return SpectralBasis(*(x.to(device=device, dtype=dtype) for x in (self.evecs, self.evals, self.M)))

    def phi(self, k: int | None = None) -> torch.Tensor:
        """``Φ[:, :k]`` ``(n, k)``."""
        k = self.k if k is None else k
        if k > self.k:
            raise ValueError(f"asked for {k} eigenvectors but the basis has {self.k}; recompute with more.")
        return self.evecs[:, :k]

    def project(self, f: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Spectral coefficients ``Φ† f = Φᵀ M f``: ``(n,)``/``(n, d)`` → ``(k,)``/``(k, d)``."""
        f = _tensor(f, self.M.device, self.M.dtype)
        Mf = self.M * f if f.ndim == 1 else self.M[:, None] * f
        return self.phi(k).T @ Mf

    def synthesize(self, a: torch.Tensor) -> torch.Tensor:
        """Functions from coefficients: ``Φ[:, :k] a`` for ``a (k,)`` or ``(k, d)``."""
        return self.phi(a.shape[0]) @ a


# ----------------------------------------------------------------------------- maps ↔ fmaps


def p2p_to_fmap(p2p_21, basis1: SpectralBasis, basis2: SpectralBasis, k1: int | None = None,
                k2: int | None = None) -> torch.Tensor:
    """Pull-back functional map of a vertex map: ``C12 = Φ2† P21 Φ1 = Φ2[:, :k2]ᵀ M2 Φ1[p2p_21, :k1]``.

    p2p_21 ``(n2,) int`` (vertex of shape 1 for each vertex of shape 2) → ``C12 (k2, k1)``.
    The result is *proper* (it comes from a pointwise map).
    """
    p2p = torch.as_tensor(np.asarray(p2p_21) if not isinstance(p2p_21, torch.Tensor) else p2p_21,
                          device=basis1.evecs.device).long()
    if p2p.shape != (basis2.n,):
        raise ValueError(f"p2p_21 must have one entry per vertex of shape 2: ({basis2.n},), got {tuple(p2p.shape)}.")
    if p2p.min() < 0 or p2p.max() >= basis1.n:
        raise IndexError(f"p2p_21 values must be vertices of shape 1 in [0, {basis1.n}).")
    return basis2.project(basis1.phi(k1)[p2p], k2)


def soft_fmap(pi21: SoftMap, basis1: SpectralBasis, basis2: SpectralBasis, k1: int | None = None,
              k2: int | None = None) -> torch.Tensor:
    """Proper functional map of a soft map, ``C12 = Φ2† Π21 Φ1`` ``(k2, k1)`` — Π21 ``(n2, n1)`` is a
    :class:`~shapelib.kernels.SoftMap` whose source is shape 1; never stored densely."""
    if pi21.shape != (basis2.n, basis1.n):
        raise ValueError(f"soft_fmap: Π21 must be (n2, n1) = ({basis2.n}, {basis1.n}), got {pi21.shape}; "
                         "build it as SoftMap(F1, F2, sigma) (source = shape 1).")
    return basis2.project(pi21 @ basis1.phi(k1), k2)


def spectral_embeddings(C12: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis):
    """The two point sets compared to turn ``C12 (k2, k1)`` into a map: ``Φ1[:, :k1] C12ᵀ (n1, k2)``
    (shape 1 seen through the map) and ``Φ2[:, :k2] (n2, k2)``."""
    k2, k1 = C12.shape
    return basis1.phi(k1) @ C12.T, basis2.phi(k2)


def fmap_to_p2p(C12: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis, backend: str = "auto") -> torch.Tensor:
    """Vertex map from a functional map: for each vertex of shape 2, the nearest row of ``Φ1 C12ᵀ``
    to its row of ``Φ2`` (exact brute force through :func:`shapelib.kernels.nearest`).

    C12 ``(k2, k1)`` → p2p_21 ``(n2,) long``.
    """
    emb1, emb2 = spectral_embeddings(C12, basis1, basis2)
    return nearest(emb1, emb2, backend=backend)


def fmap_to_softmap(C12: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis, sigma: float,
                    backend: str = "auto") -> SoftMap:
    """Soft version of :func:`fmap_to_p2p`: ``Π21 = SoftMap(Φ1 C12ᵀ, Φ2, σ)`` ``(n2, n1)``."""
    emb1, emb2 = spectral_embeddings(C12, basis1, basis2)
    return SoftMap(emb1, emb2, sigma, backend=backend)


def proper_fmap(C12: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis, backend: str = "auto") -> torch.Tensor:
    """The closest *proper* functional map: ``p2p_to_fmap(fmap_to_p2p(C12))``, same size ``(k2, k1)``."""
    k2, k1 = C12.shape
    return p2p_to_fmap(fmap_to_p2p(C12, basis1, basis2, backend), basis1, basis2, k1, k2)


# ----------------------------------------------------------------------------- descriptor fmaps


def _normalized_evals(basis1, basis2, k1, k2):
    """Eigenvalues of both shapes divided by the largest one used (scale-free regulariser)."""
    e1, e2 = basis1.evals[:k1], basis2.evals[:k2]
    s = torch.maximum(e1.max(), e2.max()).clamp_min(1e-12)
    return e1 / s, e2 / s


def laplacian_mask(basis1: SpectralBasis, basis2: SpectralBasis, k1: int, k2: int, kind: str = "resolvent",
                   gamma: float = 0.5) -> torch.Tensor:
    """``(k2, k1)`` weights ``m_ij`` of the Laplacian commutativity term ``Σ_ij m_ij C_ij²``.

    ``'squared'``: ``(λ1_j − λ2_i)²`` (eigenvalues divided by the largest one used), i.e.
    ``‖C Λ1 − Λ2 C‖²``. ``'resolvent'`` (Ren et al. 2019, pyFM's default): the same with the
    bounded resolvent ``R(λ) = (λ^γ − i)⁻¹``, ``m_ij = |R(λ1_j) − R(λ2_i)|²``; same null space
    (exactly commuting maps), but it does not grow without bound with k.
    """
    l1, l2 = _normalized_evals(basis1, basis2, k1, k2)
    if kind == "squared":
        return (l1[None, :] - l2[:, None]) ** 2
    if kind != "resolvent":
        raise ValueError(f"laplacian_mask(kind={kind!r}): choose 'resolvent' or 'squared'.")
    g1, g2 = l1.clamp_min(0) ** gamma, l2.clamp_min(0) ** gamma
    re1, im1 = g1 / (g1**2 + 1), 1 / (g1**2 + 1)
    re2, im2 = g2 / (g2**2 + 1), 1 / (g2**2 + 1)
    return (re1[None, :] - re2[:, None]) ** 2 + (im1[None, :] - im2[:, None]) ** 2


def multiplication_operators(desc: torch.Tensor, basis: SpectralBasis, k: int) -> torch.Tensor:
    """Descriptor-preservation operators (Nogneng & Ovsjanikov 2017): ``Φ† diag(f) Φ`` for every
    column ``f`` of ``desc (n, d)`` → ``(d, k, k)``."""
    Phi = basis.phi(k)
    return _triple_products(Phi * basis.M[:, None], desc, Phi)


def _triple_products(W: torch.Tensor, F: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """``out[d, i, j] = Σ_n W[n, i] F[n, d] G[n, j]`` for ``W (n, k1)``, ``F (n, d)``, ``G (n, k2)``
    as one matrix product (3× faster than the three-operand einsum)."""
    n, d = F.shape
    return (W.T @ (F[:, :, None] * G[:, None, :]).reshape(n, -1)).reshape(W.shape[1], d, G.shape[1]).transpose(0, 1)


def orientation_operators(desc: torch.Tensor, ops, basis: SpectralBasis, k: int) -> torch.Tensor:
    """Orientation-aware operators (Ren et al. 2018): ``g ↦ ⟨n × ∇f, ∇g⟩`` in the basis, for every
    column ``f`` of ``desc (n, d)`` → ``(d, k, k)``. ``ops``: :class:`~shapelib.operators.Operators`
    of the shape (tangent gradients ``grad_x``, ``grad_y`` in per-vertex frames x̂, ŷ = n̂ × x̂)."""
    Phi = basis.phi(k)
    dev, dt = Phi.device, Phi.dtype
    d_np = desc.detach().cpu().double().numpy()
    gxf = torch.as_tensor(ops.grad_x @ d_np, device=dev, dtype=dt)  # (n, d)
    gyf = torch.as_tensor(ops.grad_y @ d_np, device=dev, dtype=dt)
    Phi_np = Phi.detach().cpu().double().numpy()
    gxP = torch.as_tensor(ops.grad_x @ Phi_np, device=dev, dtype=dt)  # (n, k)
    gyP = torch.as_tensor(ops.grad_y @ Phi_np, device=dev, dtype=dt)
    MPhi = Phi * basis.M[:, None]
    # n × ∇f = (−∂y f, ∂x f) in the frame; dot with ∇g = (∂x g, ∂y g)
    n, d = gxf.shape
    rot = (gxf[:, :, None] * gyP[:, None, :] - gyf[:, :, None] * gxP[:, None, :]).reshape(n, -1)
    return (MPhi.T @ rot).reshape(k, d, k).transpose(0, 1)


def effective_descriptors(*coeffs: torch.Tensor) -> float:
    """Number of independent descriptors, ``(tr G)² / ‖G‖²_F`` with ``G = AᵀA`` of the spectral
    coefficients ``A (k, d)`` without the constant row, averaged over the shapes given."""
    vals = []
    for A in coeffs:
        G = A[1:].T @ A[1:]
        den = float((G * G).sum())
        vals.append(float(torch.trace(G)) ** 2 / den if den > 0 else 1.0)
    return max(float(np.mean(vals)), 1e-12)


@dataclass
class FmapEnergy:
    """The quadratic energy of :func:`descriptor_fmap`, every term divided by its typical size.

    ``E(C) = Σ_t w_t / τ_t · E_t(C)`` with ``E_descr = ‖C A1 − A2‖²``, ``E_lap = Σ m_ij C_ij²``,
    ``E_dcomm = Σ_f ‖C D1_f − D2_f C‖²``, ``E_orient = Σ_f ‖C O1_f − O2_f C‖²``. ``τ_t`` is the
    expected value of ``E_t`` for a random ``C`` whose entries have variance ``m / (k1 k2)``
    (``m = min(k1, k2)``: the norm of a proper map, ``‖C‖²_F ≈ m``), divided by the effective
    number of independent descriptors for the descriptor terms (pyFM's ``canonical_taus``).
    Each term then weighs what its weight says, whatever the units of the descriptors or the
    size of the operators — before this normalisation the orientation term at the true map was
    ~4·10⁴ times the descriptor term on FAUST_r and shrank C far below a proper map's norm.
    """

    A1: torch.Tensor  # (k1, d)
    A2: torch.Tensor  # (k2, d)
    mask: torch.Tensor  # (k2, k1)
    ops: list  # [(name, weight / tau, X (d, k1, k1), Y (d, k2, k2))] for 'dcomm', 'orient' 
    w_descr: float  # already divided by its tau
    w_lap: float
    scales: dict  # name → tau, for inspection

    @property
    def shape(self):
        return self.mask.shape

    def terms(self, C: torch.Tensor) -> dict:
        """Unweighted, un-normalised value of each term at ``C (k2, k1)``."""
        out = {"descr": float(((C @ self.A1 - self.A2) ** 2).sum()), "lap": float((self.mask * C * C).sum())}
        for name, _, X, Y in self.ops:
            out[name] = float(((C[None] @ X - Y @ C[None]) ** 2).sum())
        return out

    def value(self, C: torch.Tensor) -> torch.Tensor:
        e = self.w_descr * ((C @ self.A1 - self.A2) ** 2).sum() + self.w_lap * (self.mask * C * C).sum()
        for _, w, X, Y in self.ops:
            e = e + w * ((C[None] @ X - Y @ C[None]) ** 2).sum()
        return e

    def gradient(self, C: torch.Tensor) -> torch.Tensor:
        """Closed-form ``∂E/∂C`` ``(k2, k1)``."""
        g = 2 * self.w_descr * (C @ self.A1 - self.A2) @ self.A1.T + 2 * self.w_lap * self.mask * C
        for _, w, X, Y in self.ops:
            R = C[None] @ X - Y @ C[None]
            g = g + 2 * w * (R @ X.transpose(1, 2) - Y.transpose(1, 2) @ R).sum(0)
        return g

    def normal_equations(self):
        """``(H (k2 k1, k2 k1), b (k2 k1,))`` with ``E(C) = vᵀHv − 2bᵀv + const``, ``v`` = C
        flattened row by row. The commutator ``C X − Y C`` is ``(I ⊗ Xᵀ − Y ⊗ I) v``, so each
        operator pair adds ``I ⊗ XXᵀ + YᵀY ⊗ I − Y ⊗ X − Yᵀ ⊗ Xᵀ``."""
        k2, k1 = self.shape
        I1 = torch.eye(k1, dtype=self.A1.dtype, device=self.A1.device)
        I2 = torch.eye(k2, dtype=self.A1.dtype, device=self.A1.device)
        H = torch.kron(I2, self.w_descr * (self.A1 @ self.A1.T)) + torch.diag(self.w_lap * self.mask.reshape(-1))
        for _, w, X, Y in self.ops:
            XX = torch.einsum("pij,pkj->ik", X, X)
            YY = torch.einsum("pji,pjk->ik", Y, Y)
            YX = torch.einsum("pab,pcd->acbd", Y, X).reshape(k2 * k1, k2 * k1)
            H = H + w * (torch.kron(I2, XX) + torch.kron(YY, I1) - YX - YX.T)
        b = self.w_descr * (self.A2 @ self.A1.T).reshape(-1)
        return H, b


def fmap_energy(desc1, desc2, basis1: SpectralBasis, basis2: SpectralBasis, k1: int = 30, k2: int = 30,
                w_descr: float = 1.0, w_lap: float = 1e-1, w_dcomm: float = 1.0, w_orient: float = 1.0,
                ops1=None, ops2=None, lap_mask: str = "resolvent", orient_reversing: bool = False) -> FmapEnergy:
    """The normalised energy of :func:`descriptor_fmap` (arguments there), in float64."""
    dev, dt = basis1.evecs.device, torch.float64
    b1, b2 = basis1.to(dtype=dt), basis2.to(dtype=dt)
    D1, D2 = _tensor(desc1, dev, dt), _tensor(desc2, dev, dt)
    if D1.ndim != 2 or D2.ndim != 2 or D1.shape[1] != D2.shape[1]:
        raise ValueError(f"descriptor_fmap: desc1 (n1, d) and desc2 (n2, d) need the same d; got "
                         f"{tuple(D1.shape)} and {tuple(D2.shape)}.")
    if D1.shape[0] != b1.n or D2.shape[0] != b2.n:
        raise ValueError("descriptor_fmap: descriptors need one row per vertex of their shape.")
    weights = {"descr": w_descr, "lap": w_lap, "dcomm": w_dcomm, "orient": w_orient}
    if min(weights.values()) < 0 or sum(weights.values()) <= 0:
        raise ValueError(f"descriptor_fmap: weights must be ≥ 0 and not all zero, got {weights}.")
    if w_orient > 0 and (ops1 is None or ops2 is None):
        raise ValueError("descriptor_fmap(w_orient > 0) needs ops1 and ops2 (compute_operators of each shape) "
                         "for the orientation term; pass them, or w_orient=0 to fit without it.")
    total = sum(weights.values())
    weights = {k: v / total for k, v in weights.items()}  # only the ratios matter
    norm = lambda D, b: D / torch.sqrt((b.M[:, None] * D * D).sum(0)).clamp_min(1e-12)  # noqa: E731
    D1, D2 = norm(D1, b1), norm(D2, b2)
    A1, A2 = b1.project(D1, k1), b2.project(D2, k2)  # (k1, d), (k2, d)
    mask = laplacian_mask(b1, b2, k1, k2, lap_mask)
    m, p_eff = min(k1, k2), effective_descriptors(A1, A2)
    guard = lambda x: x if x > 0 else 1.0  # noqa: E731
    scales = {"descr": guard(m * float((A1[1:] ** 2).sum()) / k1 / p_eff),
              "lap": guard(m * float(mask.sum()) / (k1 * k2))}
    ops = []
    for name, make, skew in (("dcomm", lambda D, b, o, k: multiplication_operators(D, b, k), False),
                             ("orient", lambda D, b, o, k: orientation_operators(D, o, b, k), True)):
        if weights[name] <= 0:
            continue
        X, Y = make(D1, b1, ops1, k1), make(D2, b2, ops2, k2)
        if name == "orient" and orient_reversing:
            Y = -Y
        size = k2 * float((X**2).sum()) + k1 * float((Y**2).sum())
        if not skew:
            size -= 2 * float((torch.diagonal(X, dim1=1, dim2=2).sum(1) * torch.diagonal(Y, dim1=1, dim2=2).sum(1)).sum())
        scales[name] = guard(max(size, 0.0) * m / (k1 * k2) / p_eff)
        ops.append((name, weights[name] / scales[name], X, Y))
    return FmapEnergy(A1, A2, mask, ops, weights["descr"] / scales["descr"], weights["lap"] / scales["lap"], scales)


def descriptor_fmap(desc1, desc2, basis1: SpectralBasis, basis2: SpectralBasis, k1: int = 30, k2: int = 30,
                    w_descr: float = 1.0, w_lap: float = 1e-1, w_dcomm: float = 1.0, w_orient: float = 1.0,
                    ops1=None, ops2=None, lap_mask: str = "resolvent", orient_reversing: bool = False,
                    solver: str = "auto") -> torch.Tensor:
    """Functional map ``C12 (k2, k1)`` from corresponding descriptors ``desc1 (n1, d)``, ``desc2 (n2, d)``:

        argmin_C  w_descr ‖C A1 − A2‖²/τ_d + w_lap Σ m_ij C_ij²/τ_l
                  + w_dcomm Σ_f ‖C D1_f − D2_f C‖²/τ_c + w_orient Σ_f ‖C O1_f − O2_f C‖²/τ_o

    ``A_i = Φ_i† desc_i`` (each descriptor first scaled to unit M-norm), ``m`` the
    :func:`laplacian_mask` (``lap_mask``), ``D_f`` :func:`multiplication_operators` and ``O_f``
    :func:`orientation_operators` of every descriptor (the orientation term needs ``ops1``,
    ``ops2``; its sign is flipped by ``orient_reversing``). Each term is divided by its typical
    size ``τ`` (:class:`FmapEnergy`), so the weights are relative (only their ratios matter) and
    the defaults — pyFM's README pipeline: 1, 0.1, 1, 1 — switch every term on.

    The energy is quadratic: ``solver='direct'`` solves its ``k1 k2 × k1 k2`` normal equations
    exactly (Cholesky; the default for ``k1 k2 ≤ 4096``), ``'lbfgs'`` runs scipy's L-BFGS-B
    on the closed-form gradient to a relative tolerance of 1e-12 (larger bases).
    Descriptors holding NaN or inf raise ValueError naming the vertex and the column.
    """
    for name, D in (("desc1", desc1), ("desc2", desc2)):  # NaN used to reach MKL/torch (INTERNAL ASSERT)
        D = D.detach().cpu().numpy() if isinstance(D, torch.Tensor) else np.asarray(D)
        if np.issubdtype(D.dtype, np.number) and not np.isfinite(D).all():
            bad = np.argwhere(~np.isfinite(D.reshape(len(D), -1)))
            raise ValueError(
                f"descriptor_fmap: {name} contains NaN or inf at {len(bad)} entries (first: vertex {bad[0][0]}, "
                f"column {bad[0][1]}). Check the descriptors (e.g. a WKS/HKS of a degenerate basis, a division "
                "by zero, a network that diverged) and drop or repair those columns before fitting a map.")
    E = fmap_energy(desc1, desc2, basis1, basis2, k1, k2, w_descr, w_lap, w_dcomm, w_orient, ops1, ops2,
                    lap_mask, orient_reversing)
    if solver == "auto":
        solver = "direct" if k1 * k2 <= 4096 else "lbfgs"
    if solver == "direct":
        H, b = E.normal_equations()
        L, info = torch.linalg.cholesky_ex(H)
        v = torch.cholesky_solve(b[:, None], L)[:, 0] if int(info) == 0 else torch.linalg.lstsq(H, b[:, None]).solution[:, 0]
        C = v.reshape(k2, k1)
    elif solver == "lbfgs":
        from scipy.optimize import minimize

        dev = E.A1.device

        x0 = np.zeros((k2, k1))
        x0[0, 0] = np.sign(float(E.A1[0, 0] * E.A2[0, 0])) or 1.0  # constants map to constants
        # scipy's ftol is relative to max(|E|, 1): scale E to ~1 at the start so that it is relative
        scale = 1.0 / max(float(E.value(torch.as_tensor(x0, device=dev))), 1e-300)

        def f(x):
            C = torch.as_tensor(x, device=dev).reshape(k2, k1)
            return scale * float(E.value(C)), scale * E.gradient(C).reshape(-1).cpu().numpy()

        res = minimize(f, x0.ravel(), jac=True, method="L-BFGS-B",
                       options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 10000, "maxcor": 20})
        C = torch.as_tensor(res.x, device=dev).reshape(k2, k1)
    else:
        raise ValueError(f"descriptor_fmap(solver={solver!r}): choose 'auto', 'direct' or 'lbfgs'.")
    return C.to(basis1.evecs.dtype)


def regularized_fmap(F1: torch.Tensor, F2: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis,
                     k: int = 30, lam: float = 1e-3) -> torch.Tensor:
    """The functional map of learned features with the Laplacian penalty of deep functional maps
    (Donati et al., CVPR 2020; DiffusionNet's Table 4 layer): ``C12 (k, k)`` minimises

        ‖C A − B‖² + lam Σ_ij (λ1_j − λ2_i)² C_ij²,   A = Φ1† F1, B = Φ2† F2 (first k pairs),

    solved row by row in closed form, ``C_i = (A Aᵀ + lam D_i)⁻¹ A B_iᵀ``, ``D_i = diag((λ1 − λ2_i)²)``
    — the raw eigenvalues (no rescaling: the shapes are expected at unit area, where the reference
    sets ``lam = 1e-3``; ``experiments/functional_correspondence/fmaps_model.py``
    ``compute_correspondence`` of github.com/nmwsharp/diffusion-net). Differentiable in F1, F2.
    F1 ``(n1, d)``, F2 ``(n2, d)``."""
    if F1.ndim != 2 or F2.ndim != 2 or F1.shape[1] != F2.shape[1]:
        raise ValueError(f"regularized_fmap: F1 (n1, d) and F2 (n2, d) need the same d; got {tuple(F1.shape)} "
                         f"and {tuple(F2.shape)}.")
    if F1.shape[0] != basis1.n or F2.shape[0] != basis2.n:
        raise ValueError("regularized_fmap: features need one row per vertex of their shape "
                         f"({basis1.n} and {basis2.n}), got {F1.shape[0]} and {F2.shape[0]}.")
    if not lam >= 0:
        raise ValueError(f"regularized_fmap: lam must be >= 0, got {lam!r}.")
    A, B = basis1.project(F1, k), basis2.project(F2, k)           # (k, d)
    D = (basis1.evals[:k][None, :] - basis2.evals[:k][:, None]) ** 2  # (k2, k1): row i of C ↔ λ2_i
    AAt, BAt = A @ A.T, B @ A.T                                     # (k, k)
    lhs = AAt[None, :, :] + lam * torch.diag_embed(D)              # (k, k, k): one system per row
    return torch.linalg.solve(lhs, BAt[:, :, None])[:, :, 0]


# ----------------------------------------------------------------------------- ZoomOut


def _schedule(k_start: int, k_final: int, step: int) -> list[int]:
    if step < 1 or k_final < k_start:
        raise ValueError(f"ZoomOut needs step ≥ 1 and k_final ≥ k_init, got step={step}, {k_start} → {k_final}.")
    ks = list(range(k_start + step, k_final + 1, step))
    if not ks or ks[-1] != k_final:
        ks.append(k_final)
    return [k for k in ks if k > k_start] or [k_final]


def area_samples(basis: SpectralBasis, n_samples: int, seed: int = 0) -> torch.Tensor:
    """``n_samples`` distinct vertices drawn with probability ∝ vertex area (uniform on the
    surface), seeded: ``(n_samples,) long``, sorted. All vertices when ``n_samples ≥ n``."""
    if n_samples >= basis.n:
        return torch.arange(basis.n, device=basis.M.device)
    g = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(basis.M.detach().double().cpu().clamp_min(0), int(n_samples), replacement=False, generator=g)
    return idx.sort().values.to(basis.M.device)


def zoomout(C12_init: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis, k_final: int = 130,
            step: int = 1, backend: str = "auto", return_history: bool = False, n_samples: int | None = None,
            seed: int = 0):
    """Classic ZoomOut (Melzi et al. 2019): alternate hard nearest neighbours (fmap → p2p) and
    pull-back (p2p → fmap), growing the basis ``K → K + step`` until ``k_final``.

    C12_init ``(k, k)`` (square; pass a p2p map through :func:`p2p_to_fmap` first) → ``(C12 (k_final,
    k_final), p2p_21 (n2,))`` — plus the list of intermediate ``C12`` with ``return_history``.
    Runs on the device of the bases; nearest neighbours by the kernel layer (exact, chunked).

    ``n_samples``: the acceleration of the ZoomOut paper: the intermediate iterations match only
    ``n_samples`` area-uniform random vertices S1, S2 of each shape (``seed``) and fit the fmap by
    least squares on them, ``C12 = argmin_C ‖Φ2[S2] C − Φ1[p2p(S2)]‖`` (p2p into S1); the last
    step is one full map and a full pull-back. ``None``: every vertex, every iteration (exact).
    """
    C = C12_init.to(basis1.evecs)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"zoomout expects a square C12, got {tuple(C.shape)}; truncate it to "
                         f"C12[:k, :k] with k = min of both sizes.")
    history = [C]
    with torch.no_grad():
        if n_samples:
            S1, S2 = area_samples(basis1, n_samples, seed), area_samples(basis2, n_samples, seed + 1)
            E1, E2 = basis1.evecs[S1], basis2.evecs[S2]
        for k in _schedule(C.shape[0], k_final, step):
            k2, k1 = C.shape
            if n_samples:  # match the samples only; least-squares fmap on them
                p2p_s = nearest(E1[:, :k1] @ C.T, E2[:, :k2], backend=backend)
                C = torch.linalg.lstsq(E2[:, :k], E1[p2p_s, :k]).solution  # (k2, k1)
            else:
                p2p = fmap_to_p2p(C, basis1, basis2, backend)
                C = p2p_to_fmap(p2p, basis1, basis2, k, k)
            history.append(C)
        p2p = fmap_to_p2p(C, basis1, basis2, backend)
        if n_samples:  # one full pull-back: the returned C12 is proper, as without sampling
            C = p2p_to_fmap(p2p, basis1, basis2, C.shape[1], C.shape[0])
    return (C, p2p, history) if return_history else (C, p2p)


# ----------------------------------------------------------------------------- the axiomatic pipeline

#: pyFM's README pipeline, the reference of the axiomatic rows: 100 WKS energies on 128
#: eigenpairs, every 2nd kept; a 30×30 fmap with every term on; ZoomOut 30 → 110 by steps of 5.
AXIOMATIC = dict(n_energies=100, k_descr=128, every=2, k_init=30, k_final=110, step=5,
                 w_descr=1.0, w_lap=1e-1, w_dcomm=1.0, w_orient=1.0)


def wks_descriptors(ops, n_energies: int = 100, k: int = 128, every: int = 2) -> np.ndarray:
    """``(n, ⌈n_energies / every⌉)`` WKS of a shape's :class:`~shapelib.operators.Operators` on
    its first ``k`` eigenpairs, every ``every``-th energy kept (pyFM's ``preprocess`` defaults)."""
    if ops.evals.shape[0] < k:
        raise ValueError(f"wks_descriptors: k={k} eigenpairs asked, the operators hold {ops.evals.shape[0]}; "
                         f"recompute with compute_operators(shape, k={k}).")
    return wks(ops.evals[:k], ops.evecs[:, :k], n_energies)[:, ::every]


def axiomatic_zoomout(ops1, ops2, basis1: SpectralBasis, basis2: SpectralBasis, backend: str = "auto",
                      **settings) -> dict:
    """The axiomatic pipeline: WKS descriptors → :func:`descriptor_fmap` (every term on) →
    :func:`zoomout`. ``settings`` override :data:`AXIOMATIC`. Returns ``C_init``, ``p2p_init``
    (its vertex map), ``C``, ``p2p`` (after ZoomOut) and ``seconds`` ``{'fit', 'zoomout'}``."""
    unknown = set(settings) - set(AXIOMATIC)
    if unknown:
        raise ValueError(f"axiomatic_zoomout: unknown settings {sorted(unknown)}; known: {sorted(AXIOMATIC)}.")
    s = {**AXIOMATIC, **settings}
    d1, d2 = (wks_descriptors(o, s["n_energies"], s["k_descr"], s["every"]) for o in (ops1, ops2))
    t0 = time.perf_counter()
    C0 = descriptor_fmap(d1, d2, basis1, basis2, s["k_init"], s["k_init"], s["w_descr"], s["w_lap"], s["w_dcomm"],
                         s["w_orient"], ops1=ops1, ops2=ops2)
    t1 = time.perf_counter()
    C, p2p = zoomout(C0, basis1, basis2, s["k_final"], step=s["step"], backend=backend)
    t2 = time.perf_counter()
    return dict(C_init=C0, p2p_init=fmap_to_p2p(C0, basis1, basis2, backend), C=C, p2p=p2p,
                seconds={"fit": t1 - t0, "zoomout": t2 - t1})


def embedding_diameter(X: torch.Tensor) -> torch.Tensor:
    """Two-sweep estimate of the largest pairwise distance of the rows of ``X (n, d)`` (within a
    factor 2 of the exact value, ``O(n d)``; detached)."""
    with torch.no_grad():
        far = ((X - X[0]) ** 2).sum(1).argmax()
        return ((X - X[far]) ** 2).sum(1).max().sqrt()


@dataclass(frozen=True)
class ZoomOutLayer:
    """The settings of differentiable ZoomOut (:func:`diff_zoomout`): ``n_iter`` steps growing the
    basis by ``step``, soft maps of width ``sigma`` — absolute, or with ``relative_sigma`` times the
    (estimated) largest pairwise distance of the embedding it is applied to (the public code's
    convention). :meth:`sigma_for` is the one place that rule lives; :class:`FmapTrainConfig`
    carries the same fields and method."""

    sigma: float = 1e-2
    n_iter: int = 10
    step: int = 10
    relative_sigma: bool = False
    backend: str = "auto"

    def sigma_for(self, X: torch.Tensor) -> float:
        """σ of a soft map whose target rows are ``X``: ``sigma``, or ``sigma × diameter(X)``."""
        return sigma_for(self, X)


def sigma_for(settings, X: torch.Tensor) -> float:
    """σ of a soft map onto the rows of ``X`` under ``settings`` (anything with ``sigma`` and
    ``relative_sigma``: :class:`ZoomOutLayer`, :class:`FmapTrainConfig`)."""
    return settings.sigma * float(embedding_diameter(X)) if settings.relative_sigma else settings.sigma


def diff_zoomout(C12_init: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis, layer=None,
                 return_history: bool = False, **settings):
    """Differentiable ZoomOut (Magnet & Ovsjanikov 2024, Sec. 4.2): ZoomOut with every hard
    nearest-neighbour map replaced by the soft map ``Π21 = SoftMap(Φ1 C12ᵀ, Φ2, σ)``, never stored.

    C12_init ``(k, k)`` → ``C12 (k + n_iter·step, k + n_iter·step)`` (paper: 30 → 130), differentiable
    w.r.t. ``C12_init``. ``layer``: its settings, a :class:`ZoomOutLayer` (or a
    :class:`FmapTrainConfig`, which carries the same ones); keyword ``settings`` (``sigma=``,
    ``n_iter=``, ``step=``, ``relative_sigma=``, ``backend=``) change single ones. σ follows
    :meth:`ZoomOutLayer.sigma_for` at each iteration.
    """
    if layer is None:
        layer = ZoomOutLayer(**settings)
    elif settings:
        layer = replace(ZoomOutLayer(layer.sigma, layer.n_iter, layer.step, layer.relative_sigma, layer.backend), **settings)
    C = C12_init
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"diff_zoomout expects a square C12, got {tuple(C.shape)}.")
    history = [C]
    k = C.shape[0]
    for _ in range(layer.n_iter):
        k = k + layer.step
        emb1, emb2 = spectral_embeddings(C, basis1, basis2)
        C = soft_fmap(SoftMap(emb1, emb2, sigma_for(layer, emb2), backend=layer.backend), basis1, basis2, k, k)
        history.append(C)
    return (C, history) if return_history else C


# ----------------------------------------------------------------------------- losses


def orthogonality_loss(C12: torch.Tensor) -> torch.Tensor:
    """``‖C12ᵀ C12 − I‖²_F`` (area preservation)."""
    k1 = C12.shape[1]
    return ((C12.T @ C12 - torch.eye(k1, device=C12.device, dtype=C12.dtype)) ** 2).sum()


def laplacian_commutativity_loss(C12: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis) -> torch.Tensor:
    """``‖C12 Λ1 − Λ2 C12‖²_F`` with eigenvalues divided by the largest one used (isometry prior)."""
    k2, k1 = C12.shape
    l1, l2 = _normalized_evals(basis1, basis2, k1, k2)
    return ((C12 * l1[None, :] - l2[:, None] * C12) ** 2).sum()


def consistency_loss(C12_init: torch.Tensor, C12_refined: torch.Tensor) -> torch.Tensor:
    """Eq. 6: ``‖C_init − [C_refined]_{1:k2, 1:k1}‖²_F`` — the principal submatrix of a proper map's
    larger fmap is the proper fmap of the same map in the smaller bases."""
    k2, k1 = C12_init.shape
    return ((C12_init - C12_refined[:k2, :k1]) ** 2).sum()


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class FmapTrainConfig:
    """Settings of the single-branch unsupervised pipeline; two named presets differ:

    ``FmapTrainConfig.paper()`` — the CVPR text: k_init 30, 10 ZoomOut iterations of step 10
    (→ 130), σ = 1e-2 absolute, losses orth(C_init) 1 + consistency ramped 1e-4 → 1e-1 + Laplacian
    commutativity 1e2 (read as 10², see the notebook), gradients through differentiable ZoomOut,
    Adam lr 1e-3, no clipping.
    ``FmapTrainConfig.code()`` — the authors' public code (``config/dzo_template.yml``,
    ``trainer_dzo.py``): k_init 20 → 120, σ = 1e-2 × the largest pairwise embedding distance,
    losses orth(C_init) + orth(C_final) + consistency, each weight 1, each term ×1e2 / K² of its
    own size, no Laplacian term, the refined map **detached** in the consistency term (no
    gradient through ZoomOut), Adam lr 1e-4 with betas (0.9, 0.99), gradients clipped by value
    at 1.
    """

    name: str = "paper"
    n_features: int = 32
    k_init: int = 30
    n_iter: int = 10
    step: int = 10
    sigma: float = 1e-2
    relative_sigma: bool = False
    w_orth: float = 1.0
    w_consist: tuple = (1e-4, 1e-1)
    consist_ramp: float = 0.5  # fraction of training over which the consistency weight ramps up (geometric)
    w_lap: float = 1e2
    w_orth_final: float = 0.0          # orthogonality of the refined C_final (the public code: 1)
    consist_detach: bool = False       # consistency against C_final.detach() (the public code: True)
    loss_scale: float = 1.0
    normalize_by_k2: bool = False      # each term ÷ K² of its own size (k_init², or k_final² for C_final)
    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)        # Adam's (the public code: (0.9, 0.99))
    grad_clip: float | None = None
    clip_mode: str = "norm"            # "norm" (clip_grad_norm_) or "value" (clip_grad_value_, the public code)
    backend: str = "auto"

    @classmethod
    def paper(cls, **changes) -> "FmapTrainConfig":
        return replace(cls(), **changes)

    @classmethod
    def code(cls, **changes) -> "FmapTrainConfig":
        return replace(cls(name="code", k_init=20, relative_sigma=True, w_orth=1.0, w_orth_final=1.0,
                           w_consist=(1.0, 1.0), w_lap=0.0, consist_detach=True, loss_scale=1e2,
                           normalize_by_k2=True, lr=1e-4, betas=(0.9, 0.99), grad_clip=1.0, clip_mode="value"),
                       **changes)

    def __post_init__(self):
        check_clip_mode(self.clip_mode)

    @property
    def k_final(self) -> int:
        return self.k_init + self.n_iter * self.step

    def sigma_for(self, X: torch.Tensor) -> float:
        """σ of a soft map onto the rows of ``X`` (:func:`sigma_for`: absolute or relative)."""
        return sigma_for(self, X)

    def consistency_weight(self, progress: float) -> float:
        """Geometric ramp from ``w_consist[0]`` to ``w_consist[1]`` over ``consist_ramp`` of training."""
        lo, hi = self.w_consist
        t = min(1.0, max(0.0, progress / max(self.consist_ramp, 1e-12)))
        if lo <= 0 or hi <= 0:   # no geometric ramp through 0 (w_consist=(0, 0) switches the term off): linear
            return float(lo + (hi - lo) * t)
        return float(lo * (hi / lo) ** t)


def pair_losses(F1: torch.Tensor, F2: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis,
                cfg: FmapTrainConfig, progress: float = 1.0, refine: bool = True) -> dict:
    """The paper's pipeline for one pair: features ``F1 (n1, p)``, ``F2 (n2, p)`` → soft map Π21 →
    ``C_init (k, k)`` → differentiable ZoomOut → losses. Returns a dict with ``loss`` (total) and
    each term (unweighted), ``C_init`` and ``C_refined``."""
    k = cfg.k_init
    C_init = soft_fmap(SoftMap(F1, F2, cfg.sigma_for(F2), backend=cfg.backend), basis1, basis2, k, k)
    terms = {"orth": orthogonality_loss(C_init)}
    if cfg.w_lap:
        terms["lap"] = laplacian_commutativity_loss(C_init, basis1, basis2)
    w_c = cfg.consistency_weight(progress)
    C_ref = None
    if refine:
        C_ref = diff_zoomout(C_init, basis1, basis2, cfg)
        terms["consist"] = consistency_loss(C_init, C_ref.detach() if cfg.consist_detach else C_ref)
        if cfg.w_orth_final:
            terms["orth_final"] = orthogonality_loss(C_ref)
    size = {"orth": k, "lap": k, "consist": k, "orth_final": cfg.k_final}
    weights = {"orth": cfg.w_orth, "lap": cfg.w_lap, "consist": w_c, "orth_final": cfg.w_orth_final}
    total = sum(cfg.loss_scale / (size[n] ** 2 if cfg.normalize_by_k2 else 1.0) * weights[n] * v for n, v in terms.items())
    return {"loss": total, **{n: v.detach() for n, v in terms.items()}, "C_init": C_init, "C_refined": C_ref}


@dataclass
class ShapeData:
    """What training needs per shape: network input ``x (n, c)``, operators dict for the
    extractor (``Operators.to_torch()``) and the spectral basis (≥ ``k_final`` eigenpairs)."""

    x: torch.Tensor
    ops: dict
    basis: SpectralBasis
    name: str = ""

    @classmethod
    def from_shape(cls, shape, k: int = 140, inputs: str = "hks", device=None, dtype=torch.float32,
                   standardize: bool = True) -> "ShapeData":
        """Operators with ``k`` eigenpairs (cached on disk) and inputs from
        :func:`shapelib.diffusion.input_features`: ``'hks'`` (16 scale-normalised HKS, intrinsic),
        ``'xyz'``, or ``'wks'`` (128 WKS energies on the first 128 eigenpairs, the authors' code's
        input; needs ``k ≥ 128``); ``standardize`` z-scores each input channel on the shape
        (measured: without it the unsupervised losses barely move in the first hundred steps)."""
        if inputs not in ("hks", "xyz", "wks"):
            raise ValueError(f"inputs={inputs!r}: choose 'hks', 'wks' or 'xyz'.")
        ops = compute_operators(shape, k=k)
        if inputs == "wks":
            x = wks_descriptors(ops, n_energies=128, k=128, every=1)
        else:
            try:
                x = input_features(ops if inputs == "hks" else shape, kind=inputs)
            except ImportError:  # DiffusionNet's module absent: the same HKS inputs
                if inputs != "hks":
                    raise
                x = ops.hks(16)
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float64)
        if standardize:  # raw HKS channels are ~8 ± 0.3: a network barely sees the variation
            x = (x - x.mean(0)) / x.std(0).clamp_min(1e-3)
        return cls(x.to(device=device, dtype=dtype), ops.to_torch(device, dtype),
                   SpectralBasis.from_operators(ops, k, device, dtype), shape.name)


class PerVertexMLP(torch.nn.Module):
    """The fallback feature extractor: the same MLP on every vertex's input row (no neighbourhood).
    Signature of DiffusionNet: ``net(x (n, c), ops) → (n, out)``."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 128, n_layers: int = 4):
        super().__init__()
        layers, c = [], in_channels
        for _ in range(n_layers - 1):
            layers += [torch.nn.Linear(c, width), torch.nn.ReLU()]
            c = width
        layers.append(torch.nn.Linear(c, out_channels))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x, ops=None):
        return self.net(x)


def default_extractor(in_channels: int, out_channels: int = 32, width: int = 128, n_blocks: int = 4):
    """DiffusionNet (``shapelib.diffusion``) when it is importable, else :class:`PerVertexMLP`.
    Returns ``(network, name)``."""
    try:
        return DiffusionNet(in_channels, out_channels, width=width, n_blocks=n_blocks), "DiffusionNet"
    except ImportError:
        return PerVertexMLP(in_channels, out_channels, width), "per-vertex MLP (DiffusionNet not available)"


@dataclass
class TrainResult:
    history: list = field(default_factory=list)  # one dict of floats per step
    seconds: float = 0.0


def train_unsupervised(net: torch.nn.Module, shapes: list[ShapeData], cfg: FmapTrainConfig, n_steps: int,
                       seed: int = 0, refine_every: int = 1, progress: bool = True) -> TrainResult:
    """Single-branch unsupervised training (Sec. 4.3): random pairs of ``shapes``, Adam(lr), the
    losses of :func:`pair_losses` (consistency through differentiable ZoomOut every
    ``refine_every`` steps), optional gradient clipping. No ground truth is used."""
    if len(shapes) < 2:
        raise ValueError("train_unsupervised needs at least two shapes.")
    for s in shapes:
        if s.basis.k < cfg.k_final:
            raise ValueError(f"shape {s.name!r} has {s.basis.k} eigenpairs but the config needs {cfg.k_final}; "
                             f"build ShapeData.from_shape(shape, k={cfg.k_final}).")
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    out = TrainResult()
    t0 = time.time()
    net.train()
    bar = tqdm(range(n_steps), desc=f"training ({cfg.name} config)", disable=not progress, leave=False)
    for step in bar:
        i, j = rng.choice(len(shapes), size=2, replace=False)
        s1, s2 = shapes[i], shapes[j]
        F1, F2 = net(s1.x, s1.ops), net(s2.x, s2.ops)
        terms = pair_losses(F1, F2, s1.basis, s2.basis, cfg, progress=step / max(1, n_steps - 1),
                            refine=(step % refine_every == 0))
        opt.zero_grad()
        terms["loss"].backward()
        if cfg.grad_clip:
            clip_gradients(net.parameters(), cfg.grad_clip, cfg.clip_mode)
        opt.step()
        rec = {k: float(v.detach()) for k, v in terms.items() if k not in ("C_init", "C_refined")}
        out.history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3g}")
    out.seconds = time.time() - t0
    net.eval()
    return out


#: the test-time maps of learned features (:func:`map_from_features`)
STAGES = ("features", "zoomout", "layer")


@torch.no_grad()
def predict_map(net: torch.nn.Module, s1: ShapeData, s2: ShapeData, cfg: FmapTrainConfig,
                stage: str = "zoomout", backend: str | None = None):
    """Test-time map of a trained network (:func:`map_from_features`): ``p2p_21`` from feature nearest
    neighbours (``stage="features"``), from the hard ZoomOut of ``C_init`` to ``k_final``
    (``"zoomout"``) or from the network's own differentiable ZoomOut layer (``"layer"``). Returns
    ``(p2p_21, C12)``."""
    return map_from_features(net(s1.x, s1.ops), net(s2.x, s2.ops), s1.basis, s2.basis, cfg, stage, backend)


@torch.no_grad()
def map_from_features(F1: torch.Tensor, F2: torch.Tensor, basis1: SpectralBasis, basis2: SpectralBasis,
                      cfg: FmapTrainConfig, stage: str = "zoomout", backend: str | None = None):
    """:func:`predict_map` from features already computed (evaluate many pairs, one forward pass
    per shape). Every map starts from the soft map of the features, ``C_init = Φ₂†Π21Φ₁`` (k_init);
    ``stage`` (one of :data:`STAGES`) says how far it goes:

    * ``"features"``: the nearest learned feature (the argmax of Π21), no spectral step;
    * ``"zoomout"``: hard ZoomOut of ``C_init`` to ``k_final``;
    * ``"layer"``: the network's own differentiable ZoomOut layer as in training
      (:func:`diff_zoomout`, σ of ``cfg``), then the nearest neighbour of ``Φ₂`` in ``Φ₁C_finalᵀ``: the
      map the authors' public test code scores (``T21.get_nn()`` after the layer's forward pass in
      ``trainer_dzo.py``), so the one their Table 1 reports.

    Returns ``(p2p_21, C12)``."""
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}: use 'features' (nearest learned feature), 'zoomout' (hard ZoomOut) "
                         "or 'layer' (the differentiable ZoomOut layer).")
    backend = backend or cfg.backend
    pi = SoftMap(F1, F2, cfg.sigma_for(F2), backend=backend)
    C = soft_fmap(pi, basis1, basis2, cfg.k_init, cfg.k_init)
    if stage == "features":
        return pi.argmax(), C
    if stage == "layer":
        C = diff_zoomout(C, basis1, basis2, cfg, backend=backend)
        return fmap_to_p2p(C, basis1, basis2, backend=backend), C
    C, p2p = zoomout(C, basis1, basis2, cfg.k_final, step=cfg.step, backend=backend)
    return p2p, C
