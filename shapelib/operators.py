"""Differential operators on meshes and point clouds (notebook 01).

Conventions (as in the DiffusionNet paper):

* ``L`` is the *weak* Laplacian: sparse, symmetric, positive semi-definite, zero row sums,
  ``M⁻¹ L ≈ −Δ``. Units: dimensionless (cotangents) for meshes.
* ``M`` is the lumped (diagonal) mass: ``(n,) float`` vertex areas, summing to the surface
  area (length²). On meshes the barycentric lumping: one third of each incident triangle.
* Eigenpairs solve ``L φ = λ M φ`` with ``Φᵀ M Φ = I`` (orthonormal in M), ``λ`` ascending,
  in 1/length².
* Gradients are tangent vectors in a per-vertex frame ``(x̂, ŷ, n̂)``, stored as two real
  sparse matrices ``grad_x, grad_y`` (``G = grad_x + i·grad_y`` in complex notation); a
  gradient has units of ``[u]/length``.

One call, :func:`compute_operators`, builds everything and caches it on disk under a
content hash of ``(vertices, faces, parameters)``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from .cache import cache_path, load_npz, save_npz
from .errors import CacheDirError, ShapeError
from .shape import Shape
from .errors import require

# ----------------------------------------------------------------------------- Laplacians


def cotan_weights(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-cotangent weight of every (face, corner): the corner's angle is opposite the edge
    ``(faces[:, k+1], faces[:, k+2])``.

    Returns ``(I, J, W)``: three ``(3m,)`` arrays, edge endpoints and ``½ cot(angle)``.
    """
    v = vertices
    I, J, W = [], [], []
    for k in range(3):
        a, b, c = faces[:, k], faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]
        e1, e2 = v[b] - v[a], v[c] - v[a]
        # cot of the angle at corner a = (e1·e2) / |e1 × e2|
        cross = np.linalg.norm(np.cross(e1, e2), axis=1)
        I.append(b)
        J.append(c)
        W.append(0.5 * np.einsum("ij,ij->i", e1, e2) / cross)
    return np.concatenate(I), np.concatenate(J), np.concatenate(W)


def cotan_laplacian(vertices: np.ndarray, faces: np.ndarray) -> sp.csc_matrix:
    """The cotan Laplacian ``(n, n)``: ``L_ij = −½(cot α_ij + cot β_ij)``, ``L_ii = −Σ_j L_ij``.

    Vectorised over faces (no Python loop over vertices). PSD, symmetric, zero row sums.
    """
    n = len(vertices)
    I, J, W = cotan_weights(vertices, faces)
    off = sp.coo_matrix((-W, (I, J)), shape=(n, n))
    off = off + off.T
    diag = -np.asarray(off.sum(axis=1)).ravel()
    return (off + sp.diags(diag)).tocsc()


def lumped_mass(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Barycentric lumped mass ``(n,) float``: a third of each incident triangle's area."""
    area = 0.5 * np.linalg.norm(np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]],
                                         vertices[faces[:, 2]] - vertices[faces[:, 0]]), axis=1)
    return np.bincount(faces.ravel(), weights=np.repeat(area / 3.0, 3), minlength=len(vertices))


def laplacian(shape: Shape, method: str = "auto", n_neighbors: int = 30) -> tuple[sp.csc_matrix, np.ndarray]:
    """Weak Laplacian and lumped mass of a shape.

    method
        ``'auto'``: ``'cotan'`` for meshes, ``'pointcloud'`` for clouds; a mesh whose only
        non-manifold defect is bow-tie vertices (e.g. every mesh of the original SCAPE release has
        one) gets ``'robust'`` with a warning naming the vertices.
        ``'cotan'``: :func:`cotan_laplacian` + :func:`lumped_mass` (manifold meshes; strict: any
        non-manifold edge or bow-tie vertex raises `NonManifoldError`).
        ``'robust'``: robust_laplacian's intrinsic-Delaunay (tufted cover) Laplacian — for
        non-manifold or badly shaped meshes (Sharp & Crane 2020).
        ``'pointcloud'``: robust_laplacian's point-cloud Laplacian over ``n_neighbors`` neighbours.
        ``'graph'``: the combinatorial graph Laplacian of the mesh edges (or k-NN graph) with
        unit masses — it ignores geometry, so it changes with the connectivity (a baseline).

    Returns ``L`` (sparse csc, ``(n, n)``) and ``M`` (``(n,)`` vertex areas).
    """
    if method == "auto":
        method = _auto_method(shape)
    if method in ("cotan", "robust"):
        shape._require_mesh(f"laplacian(method={method!r})")
    if method in ("cotan", "robust", "pointcloud"):  # the one validation step (see Shape.check_operators_ready)
        shape.check_operators_ready(f"The {method} Laplacian", manifold=method == "cotan")
    if method == "cotan":
        return cotan_laplacian(shape.vertices, shape.faces), lumped_mass(shape.vertices, shape.faces)
    if method == "graph":
        return graph_laplacian(shape, n_neighbors)
    robust_laplacian = require("robust_laplacian", "robust-laplacian")

    if method == "robust":
        L, M = robust_laplacian.mesh_laplacian(shape.vertices, shape.faces)
    elif method == "pointcloud":
        if shape.n_vertices <= n_neighbors:
            raise ValueError(f"A point-cloud Laplacian over {n_neighbors} neighbours needs more than "
                             f"{n_neighbors} points; {shape!r} has {shape.n_vertices}. Lower n_neighbors.")
        L, M = robust_laplacian.point_cloud_laplacian(shape.vertices, n_neighbors=n_neighbors)
    else:
        raise ValueError(f"laplacian(method={method!r}): choose 'auto', 'cotan', 'robust', 'pointcloud' or 'graph'.")
    return sp.csc_matrix(L), np.asarray(M.diagonal()).ravel()


def _auto_method(shape: Shape) -> str:
    """``method='auto'``: ``'pointcloud'`` for clouds, ``'cotan'`` for meshes, ``'robust'`` (with a
    warning) for meshes whose bow-tie vertices are their only non-manifold defect. The cotan
    formula needs one fan of faces around each vertex; robust_laplacian's intrinsic tufted cover is
    built for non-manifold input (Sharp & Crane 2020) and is DiffusionNet's own operator, so the
    default path works on such data while ``method='cotan'`` stays strict. Non-manifold edges
    still raise: there the mesh itself is damaged (three sheets share an edge), not just pinched."""
    if not shape.is_mesh:
        return "pointcloud"
    r = shape.report()
    if r.non_manifold_vertices and not r.non_manifold_edges:
        warnings.warn(
            f"{shape!r} has {r.non_manifold_vertices} non-manifold (bow-tie) vertices where separate fans "
            f"of faces touch (first: {shape.bowtie_vertices()[:5].tolist()}), which the cotan Laplacian "
            "cannot handle: using method='robust' (robust_laplacian's intrinsic Delaunay Laplacian, made "
            "for non-manifold meshes). Pass method='cotan' to refuse such meshes instead, or repair them "
            "(e.g. pymeshlab 'meshing_repair_non_manifold_vertices', which splits those vertices).",
            stacklevel=3)
        return "robust"
    return "cotan"


def graph_laplacian(shape: Shape, n_neighbors: int = 30) -> tuple[sp.csc_matrix, np.ndarray]:
    """Combinatorial Laplacian ``D − A`` of the mesh edges (symmetrised k-NN graph for clouds)
    and unit masses ``(n,)``: purely connectivity, no geometry (units: 1/hop²)."""
    i, j = neighbor_pairs(shape, n_neighbors)
    n = shape.n_vertices
    A = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).astype(np.float64)
    return sp.csc_matrix(sp.diags(np.asarray(A.sum(1)).ravel()) - A), np.ones(n)


# ----------------------------------------------------------------------------- eigenbasis


def _check_k(k, what: str) -> int:
    """``k`` as a positive int, or a ValueError naming the value (a negative ``k`` used to slice
    ``evals[:k]``: n − 5 eigenpairs for ``k=-5``; ``k=0`` an empty basis)."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer, float, np.floating)) \
            or not float(k).is_integer() or k < 1:
        raise ValueError(f"{what}(k={k!r}): k is the number of eigenpairs and must be a positive integer "
                         "(e.g. k=128; it is capped at n − 1 for small shapes).")
    return int(k)


#: above this many vertices the shift-invert factorisation orders its columns by COLAMD: MMD on AᵀA
#: is faster up to ~30k vertices but falls apart beyond (at 110k: factorisation 20–26 s vs 1.0 s,
#: whole k = 128 basis 74.6 s vs 30.5 s, eigenvalues equal to 1e-13; one thread, benchmarks in README)
COLAMD_ABOVE = 50_000


def eigenbasis_estimate(n: int, k: int = 128) -> tuple[float, float]:
    """Up-front ``(seconds, bytes)`` of :func:`eigenbasis` on one CPU thread for ``n`` vertices:
    scaled from the measured 30.5 s at n = 110,210, k = 128 (time ∝ n^1.2 k, the Krylov vectors
    ``1.6 k × n`` floats plus the eigenvectors and ~40 n of factorisation)."""
    seconds = 30.5 * (n / 110_210) ** 1.2 * (k / 128)
    nbytes = 8.0 * n * (int(1.6 * k) + 1 + k + 40)
    return seconds, nbytes


def eigenbasis(L: sp.spmatrix, M: np.ndarray, k: int = 128, shift: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest eigenpairs of ``L φ = λ M φ`` with ``Φᵀ M Φ = I``.

    Solved in standard form ``Ã = M^{-½} L M^{-½}`` (M is diagonal) by ARPACK shift-invert
    around ``−shift·mean(diag Ã)``, with a symmetric-mode SuperLU factorisation (MMD on
    ``AᵀA`` ordering: 2.6× faster solves than scipy's default COLAMD on a 10k mesh) and a
    Krylov space of ``1.6k`` vectors instead of ARPACK's ``2k+1`` — see benchmarks/operators.py
    for the measured gain over scipy's generalised ``eigsh(L, k, M, sigma)``.
    The small negative shift keeps the factorised matrix positive definite, so shapes with
    several connected components (a multiple zero eigenvalue) are handled; the shift is
    raised ×100 and retried if the factorisation or ARPACK fails. The problem is solved with
    the mass normalised to a unit total (``M/ΣM``; eigenvalues rescaled afterwards), so the
    result does not depend on the length unit: at tiny scales (×1e-6) ARPACK otherwise skips
    copies of repeated eigenvalues.

    Returns ``evals (k,) float`` ascending (≥ 0, 1/length²) and ``evecs (n, k) float``.
    """
    n = L.shape[0]
    k = _check_k(k, "eigenbasis")
    M = np.asarray(M, dtype=np.float64).ravel()
    if M.shape != (n,) or not np.all(M > 0):
        raise ValueError("eigenbasis needs a positive lumped mass for every vertex; zero mass means "
                         "unreferenced vertices or zero-area faces — call shape.clean().")
    if k >= n:
        raise ValueError(f"eigenbasis(k={k}) needs k < n = {n}; lower k.")
    total = float(M.sum())
    if not np.isfinite(total):
        raise ValueError("eigenbasis: the total mass overflows float64 (coordinates too large); rescale the "
                         "shape first, e.g. shape.normalized('area').")
    M = M / total  # unit total mass: the solve is independent of the length unit (λ·total is unitless)
    d = 1.0 / np.sqrt(M)
    A = sp.csc_matrix(sp.diags(d) @ L @ sp.diags(d))
    A = 0.5 * (A + A.T)
    if n <= 1200:  # dense is faster and exact for small problems
        evals, psi = np.linalg.eigh(A.toarray())
        evals, psi = evals[:k], psi[:, :k]
    else:
        if n > COLAMD_ABOVE:   # a large mesh: say what it will cost before it runs, and what else to do
            sec, nbytes = eigenbasis_estimate(n, k)
            warnings.warn(f"eigenbasis: {n:,} vertices, k = {k}: about {sec / 60:.1f} min and {nbytes / 2**30:.1f} GB on "
                          "one CPU thread. For less, lower k or compute the basis on a coarser copy of the mesh "
                          "(data.synthetic.decimate) and carry it over.", stacklevel=2)
        scale = float(np.abs(A.diagonal()).mean())
        eye = sp.identity(n, format="csc")
        ordering = "COLAMD" if n > COLAMD_ABOVE else "MMD_AT_PLUS_A"
        for attempt in range(4):
            eps = shift * scale * 100**attempt
            B = (A + eps * eye).tocsc()
            try:
                lu = sla.splu(B, permc_spec=ordering, options=dict(SymmetricMode=True))
                op = sla.LinearOperator((n, n), matvec=lu.solve, dtype=np.float64)
                ncv = min(n - 1, max(int(1.6 * k) + 1, k + 20))  # < ARPACK's 2k+1: fewer BLAS-2 sweeps
                # tol=0 (machine precision): a looser tol was measured to miss copies of exactly repeated
                # eigenvalues (symmetric shapes such as the sphere), a known single-vector Lanczos weakness
                v0 = np.random.default_rng(0).standard_normal(n)  # reproducible: ARPACK otherwise starts at random
                evals, psi = sla.eigsh(B, k=k, sigma=0.0, which="LM", OPinv=op, ncv=ncv, tol=0, v0=v0)
                evals = evals - eps
                break
            except (RuntimeError, sla.ArpackNoConvergence) as exc:
                last = exc
        else:
            raise RuntimeError(f"eigenbasis failed after 4 shifts ({last}). Check the mesh with shape.report().")
    order = np.argsort(evals)
    evals = np.maximum(evals[order], 0.0) / total
    evecs = d[:, None] * psi[:, order] / np.sqrt(total)
    return evals, evecs


# ----------------------------------------------------------------------------- descriptors


def hks(evals: np.ndarray, evecs: np.ndarray, times=None, n_times: int = 16, area: float | None = None) -> np.ndarray:
    """Heat kernel signature ``HKS(x, t) = Σ_i e^{−λ_i t} φ_i(x)²`` (Sun et al. 2009).

    times : ``(T,)``; default ``n_times`` log-spaced on ``[0.01, 1]`` (DiffusionNet's inputs).
    area : total surface area; when given the signature is scale-normalised, i.e. computed
        as if the shape had unit area (``λ → λ·area``, ``φ² → φ²·area``), so a scaled copy
        of a shape gets the same descriptor.

    Returns ``(n, T) float``.
    """
    evals = np.asarray(evals, dtype=np.float64)
    sq = np.asarray(evecs, dtype=np.float64) ** 2
    if area is not None:
        evals, sq = evals * area, sq * area
    times = np.logspace(-2, 0, n_times) if times is None else np.asarray(times, dtype=np.float64)
    return sq @ np.exp(-np.outer(evals, times))


def wks(evals: np.ndarray, evecs: np.ndarray, n_energies: int = 100, sigma_factor: float = 7.0) -> np.ndarray:
    """Wave kernel signature (Aubry et al. 2011): band-pass filters on ``log λ``.

    Energies ``e`` evenly spaced in ``[log λ_min + 2σ, log λ_max − 2σ]`` with
    ``σ = sigma_factor·(log λ_max − log λ_min)/n_energies``;
    ``WKS(x, e) = Σ_i φ_i(x)² exp(−(e − log λ_i)²/2σ²) / Σ_i exp(−(e − log λ_i)²/2σ²)``.
    Zero eigenvalues (constants) are skipped. Scale-invariant up to a shift of energies.

    Returns ``(n, n_energies) float``.
    """
    evals = np.asarray(evals, dtype=np.float64)
    keep = evals > 1e-8 * max(evals.max(), 1e-300)
    distinct = np.unique(np.round(np.log(evals[keep]), 9)) if keep.any() else np.zeros(0)
    if len(distinct) < 2:
        raise ShapeError(
            f"wks needs at least two distinct nonzero eigenvalues to place its energy band, got "
            f"{int(keep.sum())} nonzero ({np.round(evals[keep], 6).tolist()[:4]}). The shape is too coarse "
            "(e.g. a single triangle) or k too small: use a finer mesh (more vertices), a larger k, or hks()."
        )
    log_l = np.log(evals[keep])
    sq = np.asarray(evecs, dtype=np.float64)[:, keep] ** 2
    e_min, e_max = log_l.min(), log_l.max()
    sigma = sigma_factor * (e_max - e_min) / n_energies
    energies = np.linspace(e_min + 2 * sigma, e_max - 2 * sigma, n_energies)
    coefs = np.exp(-((energies[:, None] - log_l[None, :]) ** 2) / (2 * sigma**2))  # (E, k)
    return (sq @ coefs.T) / coefs.sum(axis=1)[None, :]


# ----------------------------------------------------------------------------- diffusion


def heat_spectral(u: np.ndarray, evals: np.ndarray, evecs: np.ndarray, M: np.ndarray, t: float) -> np.ndarray:
    """Heat flow by spectral expansion: ``Φ diag(e^{−λt}) Φᵀ M u``. ``u``: ``(n,)`` or ``(n, c)``."""
    coef = evecs.T @ (M.reshape(-1, *([1] * (np.ndim(u) - 1))) * u)
    scale = np.exp(-evals * t).reshape(-1, *([1] * (np.ndim(u) - 1)))
    return evecs @ (scale * coef)


def heat_implicit(u: np.ndarray, L: sp.spmatrix, M: np.ndarray, t: float, steps: int = 1) -> np.ndarray:
    """Heat flow by ``steps`` backward-Euler steps: ``u ← (M + (t/steps) L)⁻¹ M u``."""
    h = t / steps
    lu = sla.splu(sp.csc_matrix(sp.diags(M) + h * L))
    Mu = M.reshape(-1, *([1] * (np.ndim(u) - 1)))
    for _ in range(steps):
        u = lu.solve(np.asarray(Mu * u, dtype=np.float64))
    return u


# ----------------------------------------------------------------------------- gradients


def tangent_frames(normals: np.ndarray) -> np.ndarray:
    """Right-handed orthonormal frames ``(n, 3, 3)``: rows ``x̂, ŷ, n̂`` with ``ŷ = n̂ × x̂``.

    ``x̂`` is the projection of the world axis least aligned with ``n̂`` (any choice is valid:
    features built from gradients are invariant to it).
    """
    n = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    ref = np.zeros_like(n)
    ref[np.arange(len(n)), np.argmin(np.abs(n), axis=1)] = 1.0
    x = ref - np.einsum("ij,ij->i", ref, n)[:, None] * n
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(n, x)
    return np.stack([x, y, n], axis=1)


def neighbor_pairs(shape: Shape, n_neighbors: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Directed neighbour pairs ``(i, j)`` used by the gradient: both directions of every mesh
    edge, or the ``n_neighbors`` nearest neighbours of each cloud point."""
    if shape.is_mesh:
        e = shape.edges()
        return np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]])
    from scipy.spatial import cKDTree

    k = min(n_neighbors + 1, shape.n_vertices)
    _, nbr = cKDTree(shape.vertices).query(shape.vertices, k=k)
    i = np.repeat(np.arange(shape.n_vertices), k - 1)
    return i, nbr[:, 1:].ravel()


def gradient_operator(vertices: np.ndarray, frames: np.ndarray, i: np.ndarray, j: np.ndarray,
                      reg: float = 1e-8, eps: float = 0.0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Least-squares tangent-plane gradient as two sparse ``(n, n)`` matrices.

    At each vertex ``i``, the neighbours' offsets ``e_ij = v_j − v_i`` are projected on the
    frame (``ê_ij = (e·x̂, e·ŷ)``) and ``g_i = argmin_g Σ_j (g·ê_ij − (u_j − u_i))²`` is solved in
    closed form, ``g_i = (Σ ê êᵀ + reg·tr I)⁻¹ Σ ê (u_j − u_i)`` — one vectorised 2×2 solve per
    vertex. Exact for linear functions on a plane. ``reg`` (relative) guards colinear stencils.
    ``eps`` (absolute, length²) adds ``eps·I`` to the 2×2 matrix as well: DiffusionNet's reference
    code solves with ``eps_reg = 1e-5`` on unit-area shapes (``src/diffusion_net/geometry.py``
    ``build_grad``, l. 233 and 253), a ~0.5 % damping of the gradients of a 5k-vertex human — and
    networks trained on those operators expect it. Default 0: no absolute term.
    """
    if not eps >= 0:
        raise ValueError(f"gradient_operator: eps must be >= 0 (an absolute regularisation, length²), got {eps!r}.")
    n = len(vertices)
    e = vertices[j] - vertices[i]
    ex = np.einsum("ij,ij->i", e, frames[i, 0])
    ey = np.einsum("ij,ij->i", e, frames[i, 1])
    a = np.bincount(i, ex * ex, minlength=n)
    b = np.bincount(i, ex * ey, minlength=n)
    c = np.bincount(i, ey * ey, minlength=n)
    tr = a + c
    a, c = a + reg * tr + eps + 1e-300, c + reg * tr + eps + 1e-300
    det = a * c - b * b
    # rows of the 2x2 inverse applied to each edge vector
    wx = (c[i] * ex - b[i] * ey) / det[i]
    wy = (a[i] * ey - b[i] * ex) / det[i]
    rows = np.concatenate([i, i])
    cols = np.concatenate([j, i])
    gx = sp.csr_matrix((np.concatenate([wx, -wx]), (rows, cols)), shape=(n, n))
    gy = sp.csr_matrix((np.concatenate([wy, -wy]), (rows, cols)), shape=(n, n))
    return gx, gy


# ----------------------------------------------------------------------------- all at once


@dataclass
class Operators:
    """Everything DiffusionNet-style layers need for one shape (see module docstring).

    ``L`` ``(n, n)`` csc · ``M`` ``(n,)`` · ``evals`` ``(k,)`` · ``evecs`` ``(n, k)`` ·
    ``grad_x``, ``grad_y`` ``(n, n)`` csr · ``frames`` ``(n, 3, 3)`` (rows x̂, ŷ, n̂).
    """

    L: sp.csc_matrix
    M: np.ndarray
    evals: np.ndarray
    evecs: np.ndarray
    grad_x: sp.csr_matrix
    grad_y: sp.csr_matrix
    frames: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.L.shape[0]

    @property
    def area(self) -> float:
        return float(self.M.sum())

    def gradient(self, u: np.ndarray) -> np.ndarray:
        """Complex tangent gradient ``(n,)`` or ``(n, c)`` complex of a real signal ``u``."""
        return self.grad_x @ u + 1j * (self.grad_y @ u)

    def hks(self, n_times: int = 16, normalize: bool = True) -> np.ndarray:
        """``(n, n_times)`` HKS on ``[0.01, 1]``, scale-normalised unless ``normalize=False``."""
        return hks(self.evals, self.evecs, n_times=n_times, area=self.area if normalize else None)

    def wks(self, n_energies: int = 100) -> np.ndarray:
        return wks(self.evals, self.evecs, n_energies=n_energies)

    def to_torch(self, device=None, dtype=None) -> dict:
        """Torch tensors (sparse COO for ``L``, ``grad_x``, ``grad_y``) on ``device``."""
        import torch

        dtype = dtype or torch.float32

        def sparse(m):
            m = m.tocoo()
            idx = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
            return torch.sparse_coo_tensor(idx, torch.as_tensor(m.data, dtype=dtype), m.shape,
                                           check_invariants=False).coalesce().to(device)

        dense = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)  # noqa: E731
        return {"L": sparse(self.L), "M": dense(self.M), "evals": dense(self.evals), "evecs": dense(self.evecs),
                "grad_x": sparse(self.grad_x), "grad_y": sparse(self.grad_y)}

    # ---- (de)serialisation for the disk cache
    def _arrays(self) -> dict:
        out = {"M": self.M, "evals": self.evals, "evecs": self.evecs, "frames": self.frames}
        for name in ("L", "grad_x", "grad_y"):
            m = getattr(self, name).tocoo()
            out[f"{name}_row"], out[f"{name}_col"], out[f"{name}_data"] = m.row, m.col, m.data
        return out

    @classmethod
    def _from_arrays(cls, a: dict, params: dict) -> "Operators":
        n = len(a["M"])

        def mat(name, fmt):
            return sp.coo_matrix((a[f"{name}_data"], (a[f"{name}_row"], a[f"{name}_col"])), shape=(n, n)).asformat(fmt)

        return cls(mat("L", "csc"), a["M"], a["evals"], a["evecs"], mat("grad_x", "csr"), mat("grad_y", "csr"),
                   a["frames"], params)


def check_operator_arrays(a: dict, n: int) -> str | None:
    """What is wrong with cached operator arrays for a shape of ``n`` vertices (a missing array,
    a wrong shape or count, an index out of range, NaN), or None when they are consistent."""
    names = ["M", "evals", "evecs", "frames"] + [f"{m}_{p}" for m in ("L", "grad_x", "grad_y")
                                                  for p in ("row", "col", "data")]
    missing = [k for k in names if k not in a]
    if missing:
        return f"missing arrays {missing}"
    kc = a["evals"].shape[0] if a["evals"].ndim == 1 else -1
    expected = {"M": (n,), "evecs": (n, kc), "frames": (n, 3, 3)}
    for k, shape in expected.items():
        if a[k].shape != shape:
            return f"{k} has shape {a[k].shape}, expected {shape}"
    if kc < 1:
        return f"evals has shape {a['evals'].shape}"
    for m in ("L", "grad_x", "grad_y"):
        r, c, v = a[f"{m}_row"], a[f"{m}_col"], a[f"{m}_data"]
        if not (r.ndim == c.ndim == v.ndim == 1 and len(r) == len(c) == len(v)):
            return f"{m} triplets have lengths {len(r)}, {len(c)}, {len(v)}"
        if len(r) and (min(r.min(), c.min()) < 0 or max(r.max(), c.max()) >= n):
            return f"{m} indexes outside [0, {n})"
    if not all(np.isfinite(a[k]).all() for k in ("M", "evals", "evecs", "L_data")):
        return "NaN or inf values"
    return None


def compute_operators(shape: Shape, k: int = 128, method: str = "auto", n_neighbors: int = 30,
                      cache: bool = True, gradient_eps: float = 0.0) -> Operators:
    """L, M, ``k`` eigenpairs, tangent frames and gradient matrices of ``shape`` — cached on disk
    by a content hash of (vertices, faces, normals, parameters). ``k`` is capped at ``n − 1``.

    One cache file per (shape, method, n_neighbors) holds the largest basis computed so far: a
    call with a smaller ``k`` reuses its first ``k`` eigenpairs, a larger ``k`` recomputes and
    replaces it. A cached file that is unreadable, lacks an array or has arrays of the wrong
    shape is recomputed with a warning, never used.

    ``method``/``n_neighbors``: see :func:`laplacian` (``'auto'`` falls back to ``'robust'``, with a
    warning, on meshes with bow-tie vertices; ``method='cotan'`` refuses them); ``n_neighbors`` also
    sets the cloud gradient stencil (DiffusionNet uses 30). ``ops.params['method']`` says which
    Laplacian was used. ``gradient_eps``: the absolute regularisation of the gradient solve
    (:func:`gradient_operator` ``eps``; 1e-5 on unit-area shapes is DiffusionNet's reference code),
    part of the cache key when nonzero.
    """
    k = int(min(_check_k(k, "compute_operators"), shape.n_vertices - 1))
    if not gradient_eps >= 0:
        raise ValueError(f"compute_operators: gradient_eps must be >= 0, got {gradient_eps!r}.")
    auto = method == "auto"
    if auto:  # a mesh with bow-tie vertices is switched to 'robust' below (_auto_method), after the cache lookup
        method = "cotan" if shape.is_mesh else "pointcloud"

    def keyed(method: str) -> dict:
        key = {"method": method, "n_neighbors": n_neighbors if not shape.is_mesh or method == "pointcloud" else None}
        return {**key, "gradient_eps": float(gradient_eps)} if gradient_eps else key

    key = keyed(method)
    params = {"k": k, **key}

    def build() -> dict:
        L, M = laplacian(shape, method=method, n_neighbors=n_neighbors)
        evals, evecs = eigenbasis(L, M, k=k)
        frames = tangent_frames(shape.vertex_normals())
        i, j = neighbor_pairs(shape, n_neighbors)
        gx, gy = gradient_operator(shape.vertices, frames, i, j, eps=gradient_eps)
        return Operators(L, M, evals, evecs, gx, gy, frames, params)._arrays()

    def cached():
        """(path or None, the cached arrays when they hold ≥ k eigenpairs, else None)."""
        if not cache:
            return None, None
        try:
            path = cache_path("operators", shape.content_hash(), {**key, "layout": "largest-k"})
        except CacheDirError as exc:
            warnings.warn(f"shapelib: {exc} Continuing without the cache.")
            return None, None
        arrays = load_npz(path, check=lambda a: check_operator_arrays(a, shape.n_vertices))
        return path, (arrays if arrays is not None and len(arrays["evals"]) >= k else None)

    path, arrays = cached()
    # a cached cotan basis of this exact content was built by the strict cotan check, so the mesh has no
    # bow-tie: only a miss needs the (tens of ms) bow-tie test of method='auto'
    if arrays is None and auto and method == "cotan" and _auto_method(shape) == "robust":
        method = "robust"
        key = keyed(method)
        params = {"k": k, **key}
        path, arrays = cached()
    if arrays is not None:
        arrays["evals"], arrays["evecs"] = arrays["evals"][:k], arrays["evecs"][:, :k]
        return Operators._from_arrays(arrays, params)
    arrays = build()
    if path is not None:
        try:
            save_npz(path, arrays)
        except OSError as exc:  # read-only disk etc.: still return the result
            warnings.warn(f"shapelib: could not write cache {path} ({exc}); continuing without cache.")
    return Operators._from_arrays(arrays, params)
