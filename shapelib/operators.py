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

import importlib.util
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla_dense
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as sla
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

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
#: above this many vertices :func:`eigenbasis` states its estimated time and memory before it starts,
#: shows a progress bar, and (``method='auto'``) factorises with CHOLMOD when cholespy is installed
LARGE_MESH = 50_000
#: the eigensolvers of :func:`eigenbasis` (see there)
EIGEN_METHODS = ("auto", "shift_invert", "lifted", "lobpcg")

#: measured laws ``seconds = a·(n/1e5)^b·(k/128)`` and ``bytes = 8·n·(k + d) + base`` (peak RSS of the
#: process) of each solver, one CPU thread, fitted to benchmarks/large_eigenbasis.py at 110,210 and
#: 440,834 vertices, k = 128 (2026-12-06, wall-clock on a 2-core machine shared with other jobs, which
#: gave each run about half a core: on a quiet machine expect about half these times; README)
_COST = {                                  # (a, b, d, base)
    "shift_invert/cholmod": (28.5, 1.03, 493, 79e6),     # 31.5 s / 0.58 GB at 110k, 132 s / 2.11 GB at 440k
    "shift_invert/superlu": (43.9, 0.97, 616, 18e6),     # 48.2 s / 0.63 GB, 185 s / 2.46 GB (COLAMD)
    "lifted": (11.9, 0.19, 334, 198e6),                  # 12.1 s / 0.56 GB, 15.8 s / 1.70 GB (8,000 samples)
    "lifted/refine": (8.25, 0.75, 590, 136e6),           # seconds per subspace iteration; bytes with refine
    "lobpcg": (381.0, 1.1, 1024, 200e6),                 # a lower bound: no result in 420 s at 110k; bytes guessed
}


def eigenbasis_estimate(n: int, k: int = 128, method: str = "shift_invert", refine: int = 0) -> tuple[float, float]:
    """Up-front ``(seconds, bytes)`` of :func:`eigenbasis` on one CPU thread for ``n`` vertices and
    ``k`` eigenpairs, from the power laws fitted to the measurements of benchmarks/large_eigenbasis.py
    (110k and 440k vertices, k = 128; README). ``method``: ``'shift_invert'`` (with CHOLMOD when
    cholespy is installed, SuperLU otherwise), ``'lifted'`` (``refine`` subspace iterations) or
    ``'lobpcg'`` (a lower bound); ``'auto'`` is the shift-invert solve. Bytes: the peak resident memory
    of the process (Python, the matrices and the basis included). A rough guide for the one-line
    message before a long solve: the times were measured on a shared 2-core machine (about half a core
    per run), so a quiet machine is up to 2× faster; the k-scaling is assumed linear, not measured."""
    method = _check_method(method)
    if method in ("auto", "shift_invert"):
        method = "shift_invert/" + ("cholmod" if _has_cholmod() else "superlu")
    if method == "lifted" and refine:
        method = "lifted/refine"
    a, b, d, base = _COST[method]
    seconds = a * (n / 1e5) ** b * (k / 128) * (refine if method == "lifted/refine" else 1)
    if method == "lifted/refine":
        seconds += eigenbasis_estimate(n, k, "lifted")[0]
    return seconds, 8.0 * n * (k + d) + base


def _check_method(method) -> str:
    if method not in EIGEN_METHODS:
        raise ValueError(f"eigenbasis(method={method!r}): unknown eigensolver; choose one of "
                         f"{', '.join(repr(m) for m in EIGEN_METHODS)} ('auto' picks the exact shift-invert solve).")
    return method


def _has_cholmod() -> bool:
    """Whether the optional package cholespy (CHOLMOD's sparse Cholesky; pip install cholespy) is installed."""
    try:
        return importlib.util.find_spec("cholespy") is not None
    except (ImportError, ValueError):  # a broken install, or sys.modules['cholespy'] = None (hidden)
        return False


class _Factor:
    """A sparse symmetric positive definite matrix factorised once; ``solve(b)`` for ``(n,)`` or
    ``(n, c)`` right-hand sides. ``backend``: ``'cholmod'`` (cholespy's CHOLMOD Cholesky: at 440k
    vertices a sixth of SuperLU's memory and half its time per solve), ``'colamd'`` or ``'mmd'``
    (SuperLU, symmetric mode, with that column ordering)."""

    def __init__(self, B: sp.spmatrix, backend: str):
        self.backend, self.n = backend, B.shape[0]
        if backend == "cholmod":
            cholespy = require("cholespy", "cholespy", "eigenbasis with a CHOLMOD factorisation")
            B = sp.csc_matrix(B)
            B.sort_indices()
            self._chol = cholespy.CholeskySolverD(self.n, B.indptr.astype(np.int32), B.indices.astype(np.int32),
                                                  np.ascontiguousarray(B.data, dtype=np.float64),
                                                  cholespy.MatrixType.CSC)
        else:
            ordering = {"colamd": "COLAMD", "mmd": "MMD_AT_PLUS_A"}[backend]
            self._lu = sla.splu(sp.csc_matrix(B), permc_spec=ordering, options=dict(SymmetricMode=True))

    def solve(self, b: np.ndarray) -> np.ndarray:
        if self.backend != "cholmod":
            return self._lu.solve(np.asarray(b, dtype=np.float64))
        b = np.ascontiguousarray(b, dtype=np.float64)
        x = np.empty_like(b)
        self._chol.solve(b, x)
        return x


def _progress_bar(show: bool, desc: str, total=None, unit="it"):
    return tqdm(total=total, desc=desc, unit=unit, disable=not show, leave=False, mininterval=1.0)


def eigenbasis(L: sp.spmatrix, M: np.ndarray, k: int = 128, shift: float = 1e-8, method: str = "auto",
               vertices: np.ndarray | None = None, progress: bool | None = None,
               n_samples: int | None = None, refine: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest eigenpairs of ``L φ = λ M φ`` with ``Φᵀ M Φ = I``.

    method
        ``'auto'`` (default): ``'shift_invert'`` — the exact solve; above ``LARGE_MESH`` (50k) vertices
        it factorises with CHOLMOD (the optional package cholespy, ``pip install -e '.[large]'``) when
        installed: k = 128 at 440k vertices in 132 s and 2.1 GB on one thread (SuperLU: 185 s, 2.5 GB;
        benchmarks/large_eigenbasis.py, README).
        ``'shift_invert'``: ARPACK Lanczos on ``(Ã + εI)⁻¹`` (below).
        ``'lifted'``: an *approximate* basis for very large meshes, as in scalable ZoomOut (Magnet &
        Ovsjanikov; the sampled, locally supported basis of their EG 2023 paper): ``n_samples`` vertices
        (default ``max(60k, 8,000)``) sampled on a grid, each vertex a moving-least-squares (linear)
        partition of unity of the samples within two cells, ``P (n, s)``; the eigenproblem solved on ``PᵀLP``, ``PᵀMP``
        (Rayleigh–Ritz on the fine operators: eigenvalues are upper bounds) and lifted, ``Φ = P α``.
        ``refine`` > 0 adds that many subspace iterations with a factorisation of the fine ``L``.
        Needs ``vertices`` ``(n, 3)``. Measured, k = 128 at 440k vertices (FAUST, Loop ×3): 16 s, 1.7 GB,
        eigenvalues 4 % high for modes 1–29, 6 % for all; ``refine=2``: 66 s, 2.5 GB, 5e-7 and 3e-4.
        ``'lobpcg'``: scipy's LOBPCG preconditioned by pyamg's smoothed aggregation (pip install
        pyamg); for comparison only: no result within 420 s at 110k vertices, k = 128 (shift-invert: 32 s).
    progress
        a tqdm bar during the solve; default: on above ``LARGE_MESH`` vertices, where a one-line
        warning also states the estimated time and memory (:func:`eigenbasis_estimate`) first.

    ``'shift_invert'`` solves in standard form ``Ã = M^{-½} L M^{-½}`` (M is diagonal) by ARPACK
    shift-invert around ``−shift·mean(diag Ã)``, with a symmetric-mode SuperLU factorisation (MMD on
    ``AᵀA`` ordering: 2.6× faster solves than scipy's default COLAMD on a 10k mesh; COLAMD above
    ``COLAMD_ABOVE`` vertices, CHOLMOD above ``LARGE_MESH`` when cholespy is installed) and a
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
    method = _check_method(method)
    M = np.asarray(M, dtype=np.float64).ravel()
    if M.shape != (n,) or not np.all(M > 0):
        raise ValueError("eigenbasis needs a positive lumped mass for every vertex; zero mass means "
                         "unreferenced vertices or zero-area faces — call shape.clean().")
    if k >= n:
        raise ValueError(f"eigenbasis(k={k}) needs k < n = {n}; lower k (at most {n - 1} for this shape).")
    if method == "lifted" and (vertices is None or np.shape(vertices) != (n, 3)):
        raise ValueError(f"eigenbasis(method='lifted') samples the surface: pass vertices=shape.vertices "
                         f"(an (n, 3) = ({n}, 3) array), or use method='shift_invert'.")
    if refine < 0 or int(refine) != refine:
        raise ValueError(f"eigenbasis(refine={refine!r}): the number of subspace iterations must be an integer >= 0.")
    total = float(M.sum())
    if not np.isfinite(total):
        raise ValueError("eigenbasis: the total mass overflows float64 (coordinates too large); rescale the "
                         "shape first, e.g. shape.normalized('area').")
    large = n > LARGE_MESH
    show = large if progress is None else bool(progress)
    if large and n > 1200:  # a large mesh: say what it will cost before it runs, and what else to do
        sec, nbytes = eigenbasis_estimate(n, k, method, refine if method == "lifted" else 0)
        hint = ("" if method == "lifted" else " For less, lower k or use method='lifted' (an approximate basis "
                "from a sampled copy, see eigenbasis).")
        warnings.warn(f"eigenbasis: {n:,} vertices, k = {k}, method={method!r}: about {sec / 60:.1f} min and "
                      f"{nbytes / 2**30:.1f} GB on one CPU thread.{hint}", stacklevel=2)
    M = M / total  # unit total mass: the solve is independent of the length unit (λ·total is unitless)
    scale = float(np.abs(L.diagonal() / M).mean())
    if method == "lifted":
        evals, evecs = _lifted(L, M, k, np.asarray(vertices, dtype=np.float64), shift * scale, n_samples,
                               int(refine), show)
        return np.maximum(evals, 0.0) / total, evecs / np.sqrt(total)
    if method == "lobpcg":
        evals, evecs = _lobpcg(L, M, k, shift * scale, show)
        return np.maximum(evals, 0.0) / total, evecs / np.sqrt(total)
    d = 1.0 / np.sqrt(M)
    A = sp.csc_matrix(sp.diags(d) @ L @ sp.diags(d))
    A = 0.5 * (A + A.T)
    if n <= 1200:  # dense is faster and exact for small problems
        evals, psi = np.linalg.eigh(A.toarray())
        evals, psi = evals[:k], psi[:, :k]
    else:
        backend = ("cholmod" if large and _has_cholmod() else "colamd") if n > COLAMD_ABOVE else "mmd"
        evals, psi = _shift_invert(A, k, shift * scale, backend, show)
    order = np.argsort(evals)
    evals = np.maximum(evals[order], 0.0) / total
    psi = psi[:, order]
    psi *= (d / np.sqrt(total))[:, None]  # in place: at 440k vertices each (n, k) copy is 0.45 GB
    return evals, psi


def _shift_invert(A: sp.csc_matrix, k: int, shift: float, backend: str, show: bool = False):
    """ARPACK shift-invert Lanczos for the ``k`` smallest eigenpairs of ``A`` (standard form), the
    factorisation by ``backend`` (see :class:`_Factor`); retried with the shift ×100 on failure."""
    n = A.shape[0]
    eye = sp.identity(n, format="csc")
    last = None
    for attempt in range(4):
        eps = shift * 100**attempt
        B = (A + eps * eye).tocsc()
        bar = _progress_bar(show, f"eigenbasis: shift-invert ({backend}) solves", unit="solve")
        try:
            bar.set_postfix_str("factorising")
            lu = _Factor(B, backend)
            bar.set_postfix_str("")

            def solve(b, lu=lu, bar=bar):
                bar.update()
                return lu.solve(b)

            op = sla.LinearOperator((n, n), matvec=solve, dtype=np.float64)
            ncv = min(n - 1, max(int(1.6 * k) + 1, k + 20))  # < ARPACK's 2k+1: fewer BLAS-2 sweeps
            # tol=0 (machine precision): a looser tol was measured to miss copies of exactly repeated
            # eigenvalues (symmetric shapes such as the sphere), a known single-vector Lanczos weakness
            v0 = np.random.default_rng(0).standard_normal(n)  # reproducible: ARPACK otherwise starts at random
            evals, psi = sla.eigsh(B, k=k, sigma=0.0, which="LM", OPinv=op, ncv=ncv, tol=0, v0=v0)
            return evals - eps, psi
        except (RuntimeError, sla.ArpackNoConvergence) as exc:
            last = exc
        finally:
            bar.close()
    raise RuntimeError(f"eigenbasis failed after 4 shifts ({last}). Check the mesh with shape.report().")


def lifting_operator(vertices: np.ndarray, n_samples: int, masses: np.ndarray | None = None,
                     linear: bool = True, edges: np.ndarray | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """Prolongation ``P (n, s)`` from ``s ≈ n_samples`` sampled vertices to all ``n``: the vertex
    nearest the centre of each occupied cell of a cubic grid whose cell ``h`` gives about
    ``n_samples`` cells on the surface (area ``ΣM``), and at each vertex a partition of unity of
    the samples within ``2h``, weights ``(1 − (d/2h)²)³`` — the locally supported basis of scalable
    functional maps (Magnet & Ovsjanikov). ``linear=False``: Shepard weights ``w_ij / Σ_j w_ij`` (their
    scheme as we read it: flat at every sample, first order); ``linear=True`` (default): moving least squares with
    a linear fit, which reproduces linear functions — eigenvalues closer to the exact ones (measured,
    k = 30 on a 12k-vertex human with 3,000 samples: 0.2 % vs 0.6 % high; k = 128 on FAUST at 110k
    with 8,000 samples: 2.6 % vs 3.8 % for modes 1–29). ``edges`` ``(m, 2)``, the mesh edges: a vertex only uses
    samples whose geodesic Voronoi cells (Dijkstra along the edges) are within two cells of its own,
    so that surfaces close in space but apart along the surface (fingers, a hand on a hip) are not
    coupled; without them, every sample within ``2h`` in space. Returns ``P`` (rows sum to 1) and
    the sample indices."""
    n = len(vertices)
    area = float(np.sum(masses)) if masses is not None else None
    if area is None:
        ext = np.ptp(vertices, axis=0)
        area = float(np.sort(ext)[1:].prod() * 2)
    h = np.sqrt(area / max(n_samples, 1))
    for _ in range(6):  # adjust h so that the number of occupied cells is close to n_samples
        cell = np.floor((vertices - vertices.min(0)) / h).astype(np.int64)
        _, first, inv = np.unique(cell, axis=0, return_index=True, return_inverse=True)
        s = len(first)
        if abs(s - n_samples) < 0.1 * n_samples or s >= n:
            break
        h *= np.sqrt(s / n_samples)
    inv = inv.ravel()
    centre = (cell + 0.5) * h + vertices.min(0)
    dist = np.linalg.norm(vertices - centre, axis=1)
    order = np.lexsort((dist, inv))                       # per cell, nearest-to-centre first
    starts = np.r_[0, np.flatnonzero(np.diff(inv[order])) + 1]
    samples = np.sort(order[starts])
    radius = 2.0 * h
    tree = cKDTree(vertices[samples])
    if edges is None:
        D = tree.sparse_distance_matrix(cKDTree(vertices), radius, output_type="coo_matrix")  # (s, n)
        i, j, d = D.col, D.row, D.data
    else:
        i, j = _surface_candidates(vertices, np.asarray(edges), samples)
        d = np.linalg.norm(vertices[samples[j]] - vertices[i], axis=1)
        i, j, d = i[d < radius], j[d < radius], d[d < radius]
    w = (1.0 - (d / radius) ** 2) ** 3
    lonely = np.flatnonzero(np.bincount(i, w, minlength=n) <= 1e-12)   # no sample within 2h: the nearest one
    if len(lonely):
        _, near = tree.query(vertices[lonely])
        i, j, w = np.r_[i, lonely], np.r_[j, near], np.r_[w, np.ones(len(lonely))]
    if not linear:  # Shepard: w_ij / Σ_j w_ij
        P = sp.csr_matrix((w / np.bincount(i, w, minlength=n)[i], (i, j)), shape=(n, len(samples)))
        return P, samples
    # moving least squares, linear: at vertex y the weighted fit of c0 + c·(x_j − y) to the samples' values,
    # P_ij = w_ij e0ᵀ A_y⁻¹ (1, x_j − y), A_y = Σ_j w_ij (1, x_j − y)(1, x_j − y)ᵀ (+ a small ridge on c)
    q = np.column_stack([np.ones(len(i)), (vertices[samples[j]] - vertices[i]) / h])   # unitless offsets
    A = np.zeros((n, 4, 4))
    for a in range(4):
        for b in range(a, 4):
            A[:, a, b] = A[:, b, a] = np.bincount(i, w * q[:, a] * q[:, b], minlength=n)
    A[:, 1:, 1:] += 1e-3 * A[:, :1, :1] * np.eye(3)   # ridge: samples nearly on a line / plane stay solvable
    coef = np.linalg.solve(A, np.broadcast_to(np.eye(4)[:, :1], (n, 4, 1)))[:, :, 0]
    del A
    P = sp.csr_matrix((w * np.einsum("ij,ij->i", coef[i], q), (i, j)), shape=(n, len(samples)))
    return P, samples


def _surface_candidates(vertices, edges, samples):
    """Pairs ``(vertex i, sample position j)``: the samples whose geodesic Voronoi cell (multi-source
    Dijkstra along ``edges``) is its own cell, a neighbour of it or a neighbour's neighbour. A vertex
    that no sample reaches (a component without one) gets the nearest sample in space."""
    n, s = len(vertices), len(samples)
    length = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    G = sp.coo_matrix((np.maximum(length, 1e-300), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    _, _, src = csgraph.dijkstra(G, directed=False, indices=samples, return_predecessors=True, min_only=True)
    pos = np.full(n, -1)
    pos[samples] = np.arange(s)
    cell = np.where(src >= 0, pos[np.maximum(src, 0)], -1)
    lost = np.flatnonzero(cell < 0)
    if len(lost):
        cell[lost] = cKDTree(vertices[samples]).query(vertices[lost])[1]
    a, b = cell[edges[:, 0]], cell[edges[:, 1]]
    C = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(s, s)).tocsr()
    C = ((C + C.T + sp.identity(s)) > 0).astype(np.float64)
    C2 = sp.csr_matrix((C @ C) > 0)
    deg = np.diff(C2.indptr)[cell]
    i = np.repeat(np.arange(n), deg)
    offset = np.arange(len(i)) - np.repeat(np.cumsum(deg) - deg, deg)
    j = C2.indices[np.repeat(C2.indptr[cell], deg) + offset]
    return i, j


def _lifted(L, M, k, vertices, eps, n_samples, refine, show):
    """``method='lifted'`` (see :func:`eigenbasis`): generalised form, unit total mass."""
    n = L.shape[0]
    p = min(n - 1, int(np.ceil(1.5 * k)) if refine else k)        # a buffer of modes for the iterations
    s_target = int(n_samples or max(60 * k, 8000))
    bar = _progress_bar(show, "eigenbasis: lifted", total=3 + refine, unit="step")
    try:
        bar.set_postfix_str("sampling")
        T = sp.triu(L, 1).tocoo()
        P, _ = lifting_operator(vertices, min(s_target, n), M, edges=np.column_stack([T.row, T.col]))
        bar.update()
        bar.set_postfix_str(f"coarse solve ({P.shape[1]} samples)")
        Ls = sp.csc_matrix(P.T @ L @ P)
        Ls = 0.5 * (Ls + Ls.T)
        Ms = sp.csc_matrix(P.T @ sp.diags(M) @ P)
        Ms = 0.5 * (Ms + Ms.T)
        s = Ls.shape[0]
        p = min(p, s - 1)
        if s <= 1500:
            lam, alpha = sla_dense.eigh(Ls.toarray(), Ms.toarray(), subset_by_index=[0, p - 1])
        else:
            lu = _Factor(Ls + eps * Ms, "mmd" if s <= COLAMD_ABOVE else "colamd")
            op = sla.LinearOperator((s, s), matvec=lu.solve, dtype=np.float64)
            v0 = np.random.default_rng(0).standard_normal(s)
            lam, alpha = sla.eigsh(Ls + eps * Ms, k=p, M=Ms, sigma=0.0, OPinv=op, which="LM", v0=v0,
                                   ncv=min(s - 1, max(int(1.6 * p) + 1, p + 20)), tol=0)
            lam = lam - eps
        bar.update()
        bar.set_postfix_str("lifting")
        phi = P @ alpha
        bar.update()
        if refine:
            fine = _Factor(L + eps * sp.diags(M), "cholmod" if _has_cholmod() else "colamd")
            for _ in range(refine):  # in blocks: at 440k vertices each (n, 1.5k) array is 0.68 GB
                bar.set_postfix_str("subspace iteration")
                Y = np.empty_like(phi)
                for c in range(0, phi.shape[1], 32):
                    Y[:, c:c + 32] = fine.solve(M[:, None] * phi[:, c:c + 32])
                del phi
                lam, W = _rayleigh_ritz(L, M, Y)
                for r in range(0, n, 1 << 16):
                    Y[r:r + (1 << 16)] = Y[r:r + (1 << 16)] @ W
                phi = Y
                bar.update()
    finally:
        bar.close()
    order = np.argsort(lam)[:k]
    return lam[order], np.ascontiguousarray(phi[:, order])


def _rayleigh_ritz(L, M, Y):
    """Ritz pairs of ``(L, diag M)`` on ``span Y``: ``(λ (p,), W (p, p))`` with ``(YW)ᵀ M (YW) = I``."""
    L = sp.csr_matrix(L)
    G = np.zeros((Y.shape[1], Y.shape[1]))
    H = np.zeros_like(G)
    for r in range(0, len(Y), 1 << 16):  # row blocks: no (n, p) temporary
        rows = slice(r, r + (1 << 16))
        G += Y[rows].T @ (M[rows, None] * Y[rows])
        H += Y[rows].T @ (L[rows] @ Y)
    return sla_dense.eigh(0.5 * (H + H.T), 0.5 * (G + G.T))


def _lobpcg(L, M, k, eps, show, tol=1e-6, maxiter=200):
    """``method='lobpcg'``: LOBPCG on ``(L + εM, M)`` with a pyamg smoothed-aggregation V-cycle."""
    pyamg = require("pyamg", "pyamg", "eigenbasis(method='lobpcg')")
    n = L.shape[0]
    B = sp.csr_matrix(L + eps * sp.diags(M))
    ml = pyamg.smoothed_aggregation_solver(B, symmetry="symmetric")
    pre = ml.aspreconditioner(cycle="V")
    bar = _progress_bar(show, "eigenbasis: lobpcg", total=maxiter, unit="iteration")

    def precondition(x):
        bar.update(1 if x.ndim == 1 or x.shape[1] >= k else 0)
        return np.column_stack([pre.matvec(c) for c in x.T]) if x.ndim == 2 else pre.matvec(x)

    X = np.random.default_rng(0).standard_normal((n, k))
    try:
        lam, phi = sla.lobpcg(B, X, B=sp.diags(M).tocsr(), M=sla.LinearOperator((n, n), matmat=precondition,
                              matvec=precondition, dtype=np.float64), largest=False, tol=tol, maxiter=maxiter)
    finally:
        bar.close()
    order = np.argsort(lam)
    G = phi.T @ (M[:, None] * phi)  # M-normalise (LOBPCG returns B-orthonormal vectors up to rounding)
    phi = phi / np.sqrt(np.diag(G))
    return lam[order] - eps, phi[:, order]


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
                      cache: bool = True, gradient_eps: float = 0.0, eigen_method: str = "auto") -> Operators:
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
    part of the cache key when nonzero. ``eigen_method``: the eigensolver, see :func:`eigenbasis`
    (``'auto'``: exact shift-invert; above 50k vertices a warning states its estimated time and memory
    first and a progress bar runs; ``'lifted'``, an approximate basis, is part of the cache key).
    """
    k = int(min(_check_k(k, "compute_operators"), shape.n_vertices - 1))
    eigen_method = _check_method(eigen_method)
    if not gradient_eps >= 0:
        raise ValueError(f"compute_operators: gradient_eps must be >= 0, got {gradient_eps!r}.")
    auto = method == "auto"
    if auto:  # a mesh with bow-tie vertices is switched to 'robust' below (_auto_method), after the cache lookup
        method = "cotan" if shape.is_mesh else "pointcloud"

    def keyed(method: str) -> dict:
        key = {"method": method, "n_neighbors": n_neighbors if not shape.is_mesh or method == "pointcloud" else None}
        if eigen_method in ("lifted", "lobpcg"):  # approximate bases: never mixed with the exact one in the cache
            key["eigen_method"] = eigen_method
        return {**key, "gradient_eps": float(gradient_eps)} if gradient_eps else key

    key = keyed(method)
    params = {"k": k, **key}

    def build() -> dict:
        L, M = laplacian(shape, method=method, n_neighbors=n_neighbors)
        evals, evecs = eigenbasis(L, M, k=k, method=eigen_method, vertices=shape.vertices)
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
