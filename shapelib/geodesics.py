"""Geodesic distances with potpourri3d's heat method (Crane et al. 2013) — never by hand.

One entry point for meshes AND point clouds (``pp3d.PointCloudHeatSolver`` on clouds, or
Dijkstra on a k-NN graph with ``method='graph'``).
Distances are in the shape's length unit.
"""
from __future__ import annotations

import hashlib

import numpy as np
from tqdm.auto import tqdm

from .cache import disk_cache
from .shape import Shape
from .errors import require
from .kernels import knn


def _solver(shape: Shape, t_coef: float = 1.0):
    pp3d = require("potpourri3d", purpose="heat-method geodesics")

    key = ("heat_solver", t_coef)
    if key not in shape._cache:
        shape.check_operators_ready("Geodesic distance (heat method)")
        if shape.is_mesh:
            shape._cache[key] = pp3d.MeshHeatMethodDistanceSolver(shape.vertices, shape.faces, t_coef=t_coef)
        else:
            shape._cache[key] = pp3d.PointCloudHeatSolver(shape.vertices, t_coef=t_coef)
    return shape._cache[key]


def geodesic_distances(shape: Shape, sources, t_coef: float = 1.0, method: str = "heat",
                       n_neighbors: int = 16) -> np.ndarray:
    """Distances from a vertex or a set of vertices, on meshes and point clouds.

    Parameters
    ----------
    shape : mesh or point cloud
    sources : int -> ``(n,) float`` distances from that vertex;
              sequence of ints -> ``(len(sources), n) float``, one row per source (shape units);
              ``inf`` on the connected components of a mesh that do not hold the source.
    t_coef : heat-method time step factor (1 = the method's default; larger is smoother).
    method : ``'heat'`` — potpourri3d's heat method (mesh solver, or its point-cloud solver);
             ``'graph'`` — Dijkstra (``scipy.sparse.csgraph``) on the symmetrised ``n_neighbors``-NN
             graph of the vertices (kernel layer ``knn``) with Euclidean edge lengths: exact graph
             shortest paths, slightly longer than the geodesic on a sparse sample (zig-zag), shorter
             only across gaps narrower than the neighbour radius; disconnected parts give ``inf``;
             ``'auto'`` — heat on meshes, graph on clouds.
    """
    if method == "auto":
        method = "heat" if shape.is_mesh else "graph"
    if method not in ("heat", "graph"):
        raise ValueError(f"geodesic_distances(method={method!r}): choose 'heat', 'graph' or 'auto'.")
    n = shape.n_vertices
    scalar = np.ndim(sources) == 0
    src = np.atleast_1d(np.asarray(sources, dtype=np.int64))
    if src.size and (src.min() < 0 or src.max() >= n):
        raise IndexError(f"source vertices must lie in [0, {n}), got range [{src.min()}, {src.max()}].")
    if not src.size:
        out = np.zeros((0, n))
    elif method == "graph":
        from scipy.sparse.csgraph import dijkstra

        key = ("knn_graph", int(n_neighbors))
        if key not in shape._cache:
            shape._cache[key] = _knn_graph(shape.vertices, int(n_neighbors))
        out = np.atleast_2d(dijkstra(shape._cache[key], directed=False, indices=src))
    else:
        solver = _solver(shape, t_coef)
        out = np.maximum(np.stack([solver.compute_distance(int(s)) for s in src]), 0.0)
        labels = shape.components()  # the heat method returns a finite constant on other components
        out[labels[None, :] != labels[src][:, None]] = np.inf
    return out[0] if scalar else out


def geodesic_matrix(shape: Shape, max_vertices: int = 12000, cache: bool = True, progress: bool = False) -> np.ndarray:
    """All-pairs geodesic distances ``(n, n) float32``, symmetrised, cached on disk.

    Only for small shapes (memory is ``4 n²`` bytes: 190 MB at n = 6,890); raises for
    ``n > max_vertices`` — sample vertices and use :func:`geodesic_distances` instead.
    """
    n = shape.n_vertices
    if n > max_vertices:
        raise ValueError(
            f"geodesic_matrix on {n} vertices would need {4 * n * n / 1e9:.1f} GB. Use "
            "geodesic_distances(shape, sources) for a subset of sources, or raise max_vertices."
        )

    def compute():
        solver = _solver(shape)
        D = np.empty((n, n), dtype=np.float32)
        for i in tqdm(range(n), desc=f"geodesics {shape.name or ''}".strip(), disable=not progress, leave=False):
            D[i] = solver.compute_distance(i)
        np.maximum(D, 0, out=D)
        labels = shape.components()
        D[labels[:, None] != labels[None, :]] = np.inf  # no path between components
        return {"D": 0.5 * (D + D.T)}

    if not cache:
        return compute()["D"]
    check = lambda a: None if a["D"].shape == (n, n) else f"D has shape {a['D'].shape}, expected {(n, n)}"  # noqa: E731
    return disk_cache("geodesic_matrix", shape.content_hash(), {"v": 2}, compute, check=check)["D"]


# ----------------------------------------------------------------------------- graph geodesics (clouds)


def _knn_graph(points: np.ndarray, k: int):
    """Symmetric sparse ``(n, n)`` k-NN graph with Euclidean edge lengths (via `shapelib.kernels.knn`)."""
    import scipy.sparse as sp
    import torch

    n = len(points)
    if not 1 <= k < n:
        raise ValueError(f"A k-NN graph needs 1 <= k < n; got k={k} for {n} points. Lower k.")
    X = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    idx, d2 = knn(X, k, backend="kdtree" if n > 20000 else "torch")
    rows = np.repeat(np.arange(n), k)
    cols = idx.numpy().ravel()
    w = np.sqrt(d2.numpy().ravel())
    W = sp.coo_matrix((np.maximum(w, 1e-12), (rows, cols)), shape=(n, n)).tocsr()
    return W.maximum(W.T)  # symmetrise (an edge exists when either end lists the other)


# ----------------------------------------------------------------------------- exact geodesics (MMP)
#
# Exact polyhedral geodesics: the Mitchell–Mount–Papadimitriou window propagation as implemented by
# Surazhsky, Surazhsky, Kirsanov et al. (SIGGRAPH 2005), through a maintained library —
# ``tvb-gdist`` (``gdist.compute_gdist``) or libigl (``igl.exact_geodesic``, the routine behind
# DiffusionNet's Table 5). Both run the same C++ algorithm and agree to ~1e-15; gdist is ~3.5× faster
# for whole rows (it reads each vertex's distance off the propagated windows, libigl traces a
# path back to every target) and can stop the propagation at a radius.
#
# Measured on one thread (2-core VM, `benchmarks/geodesics_exact.py`, CPU time): one source to all
# vertices of a 5,000-vertex FAUST_r shape 0.063 s (gdist) / 0.22 s (libigl); of the 6,890-vertex
# FAUST template 0.098 s / 0.35 s; heat method 0.002 s. Whole jobs (gdist, busy machine): the
# template's all pairs 798 s CPU, 626 MB peak; the 3,462 rows of tr_reg_080's .vts vertices 273 s,
# 287 MB; the same rows cut at 0.25·sqrt(area) 53 s.

EXACT_BACKENDS = ("gdist", "igl")
_FAR = 1e99  # both libraries report unreachable vertices as 1e100 (their GEODESIC_INF)


def exact_backend(backend: str = "auto") -> str:
    """The exact-geodesic library to use: ``'gdist'`` (tvb-gdist, faster, stops at a radius) when
    installed, else ``'igl'`` (libigl, a shapelib dependency)."""
    if backend == "auto":
        try:
            import gdist  # noqa: F401

            return "gdist"
        except ImportError:
            return "igl"
    if backend not in EXACT_BACKENDS:
        raise ValueError(f"backend={backend!r}: choose 'auto' or one of {EXACT_BACKENDS}.")
    require(*(("gdist", "tvb-gdist") if backend == "gdist" else ("igl", "libigl")),
            purpose=f"exact geodesics (backend {backend!r})")
    return backend


def _exact_solver(shape: Shape, backend: str):
    """``f(source, targets or None, max_distance or None) -> (n_t,) float64`` for one source."""
    if not shape.is_mesh:
        raise ValueError("exact geodesics need a triangle mesh; use geodesic_distances(method='graph') on clouds.")
    key = ("exact_solver", backend)
    if key in shape._cache:
        return shape._cache[key]
    V = np.ascontiguousarray(shape.vertices, dtype=np.float64)
    if backend == "gdist":
        import gdist

        F = np.ascontiguousarray(shape.faces, dtype=np.int32)

        def solve(s, targets, max_distance):
            t = None if targets is None else np.ascontiguousarray(targets, dtype=np.int32)
            md = float(max_distance) if max_distance is not None else 1e100
            return np.asarray(gdist.compute_gdist(V, F, np.array([s], dtype=np.int32), t, max_distance=md),
                              dtype=np.float64)
    else:
        import igl

        F = np.ascontiguousarray(shape.faces, dtype=np.int64)
        everything = np.arange(shape.n_vertices, dtype=np.int64)

        def solve(s, targets, max_distance):  # libigl propagates over the whole mesh whatever the targets
            t = everything if targets is None else np.ascontiguousarray(targets, dtype=np.int64)
            return np.asarray(igl.exact_geodesic(V, F, VS=np.array([s], dtype=np.int64), VT=t), dtype=np.float64)

    shape._cache[key] = solve
    return solve


def exact_geodesic_distances(shape: Shape, sources, targets=None, max_distance: float | None = None,
                             backend: str = "auto", progress: bool = False) -> np.ndarray:
    """Exact geodesic distances on a triangle mesh from each source (MMP, see the section comment).

    sources : int -> ``(n_t,)``; sequence -> ``(len(sources), n_t)`` float64, one row per source.
    targets : vertices to report (default all, ``n_t = n``); fewer targets save little work (the
        propagation covers the mesh) unless ``max_distance`` is set.
    max_distance : stop the propagation at this radius (gdist only: a large speed-up for small
        radii; libigl computes everything). Distances ``>= max_distance`` are returned as ``inf``;
        every distance below it is exact.
    Vertices on other connected components than the source are ``inf``. No caching: see
    :func:`exact_geodesic_matrix` for cached rows.
    """
    backend = exact_backend(backend)
    n = shape.n_vertices
    scalar = np.ndim(sources) == 0
    src = np.atleast_1d(np.asarray(sources, dtype=np.int64))
    tg = None if targets is None else np.atleast_1d(np.asarray(targets, dtype=np.int64))
    for name, idx in (("source", src), ("target", tg)):
        if idx is not None and idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"{name} vertices must lie in [0, {n}), got range [{idx.min()}, {idx.max()}].")
    if max_distance is not None and not max_distance > 0:
        raise ValueError(f"max_distance must be positive, got {max_distance}.")
    solve = _exact_solver(shape, backend)
    labels = _components(shape)

    out = np.empty((len(src), n if tg is None else len(tg)))
    for i, s in enumerate(tqdm(src, desc="exact geodesics", disable=not progress, leave=False)):
        out[i] = _exact_row(solve, labels, int(s), tg, max_distance)
    return out[0] if scalar else out


def _components(shape: Shape) -> np.ndarray:
    if "components" not in shape._cache:
        shape._cache["components"] = shape.components()
    return shape._cache["components"]


def _exact_row(solve, labels: np.ndarray, s: int, tg, max_distance) -> np.ndarray:
    """One source's exact distances: unreachable, beyond ``max_distance`` and other components -> inf."""
    d = solve(s, tg, max_distance)
    d[~np.isfinite(d) | (d > _FAR)] = np.inf
    if max_distance is not None:
        d[d >= max_distance] = np.inf
    d[(labels if tg is None else labels[tg]) != labels[s]] = np.inf
    if tg is None:
        d[s] = 0.0
    else:
        d[tg == s] = 0.0
    return d


def _index_digest(idx: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()


def exact_geodesic_matrix(shape: Shape, sources=None, cache: bool = True, progress: bool = False,
                          backend: str = "auto", max_vertices: int = 12000,
                          max_distance: float | None = None) -> np.ndarray:
    """Exact geodesic distances ``float32``, cached on disk by content hash: all pairs ``(n, n)``
    (``sources=None``) or the rows ``(len(sources), n)`` of the given source vertices.

    All pairs are made symmetric with the element-wise minimum of ``D`` and ``Dᵀ`` (as DiffusionNet's
    ``get_all_pairs_geodesic_distance``, ``src/diffusion_net/geometry.py`` l. 874–875; MMP is
    symmetric to ~1e-12 anyway). Cost: one exact solve per row — with gdist 273 s CPU for the
    3,462 rows of a 5,000-vertex FAUST_r shape's .vts vertices (libigl ~3.5× more), 798 s for all
    pairs of the 6,890-vertex template (libigl ~40 min); see the section comment. The cache key
    ignores the backend (both are exact).
    Memory ``4 n m`` bytes (190 MB for the template's all pairs); raises for ``n > max_vertices``.
    ``max_distance`` : rows truncated at this radius (``inf`` beyond; see
    :func:`exact_geodesic_distances`) — with gdist a row of a 5k FAUST_r shape then costs ~9 ms at
    0.25·sqrt(area) instead of 63 ms. Part of the cache key.
    """
    n = shape.n_vertices
    if n > max_vertices:
        raise ValueError(f"exact_geodesic_matrix on {n} vertices: raise max_vertices (memory {4 * n * n / 1e9:.1f} GB "
                         "for all pairs) or use exact_geodesic_distances for a few sources.")
    allpairs = sources is None
    src = np.arange(n) if allpairs else np.atleast_1d(np.asarray(sources, dtype=np.int64))
    if src.size and (src.min() < 0 or src.max() >= n):
        raise IndexError(f"source vertices must lie in [0, {n}), got range [{src.min()}, {src.max()}].")

    def compute():
        D = exact_geodesic_distances(shape, src, backend=backend, progress=progress,
                                     max_distance=max_distance).astype(np.float32)
        if allpairs:
            D = np.fmin(D, D.T)
        return {"D": D}

    if not cache:
        return compute()["D"]
    params = {"sources": "all" if allpairs else _index_digest(src), "m": int(len(src)), "v": 1}
    if max_distance is not None:
        params["max_distance"] = float(max_distance)
    check = lambda a: None if a["D"].shape == (len(src), n) else f"D has shape {a['D'].shape}, expected {(len(src), n)}"  # noqa: E731
    return disk_cache("geodesic_exact", shape.content_hash(), params, compute, check=check)["D"]


def _edge_graph(shape: Shape):
    import scipy.sparse as sp

    key = "edge_graph"
    if key not in shape._cache:
        e = shape.edges()
        w = np.linalg.norm(shape.vertices[e[:, 0]] - shape.vertices[e[:, 1]], axis=1)
        n = shape.n_vertices
        W = sp.coo_matrix((np.maximum(w, 1e-300), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
        shape._cache[key] = W.maximum(W.T)
    return shape._cache[key]


def exact_pair_distances(shape: Shape, a, b, backend: str = "auto", progress: bool = False) -> np.ndarray:
    """``(k,)`` exact geodesic distances ``d(a[i], b[i])`` for ``k`` vertex pairs, without a matrix.

    One exact solve per distinct vertex of the smaller side (distance is symmetric), stopped
    (gdist) at the largest edge-path (Dijkstra) length to that vertex's partners — an upper bound of
    the geodesic, so every requested distance lies inside the radius and is exact. Short pairs
    (typical correspondence errors) cost ~8 ms per source on a 5k mesh instead of ~63 ms.
    Pairs on different components are ``inf``.
    """
    from scipy.sparse.csgraph import dijkstra

    a = np.asarray(a, dtype=np.int64).ravel()
    b = np.asarray(b, dtype=np.int64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same length, got {a.shape} and {b.shape}.")
    n = shape.n_vertices
    for name, idx in (("a", a), ("b", b)):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"{name} must hold vertices in [0, {n}), got range [{idx.min()}, {idx.max()}].")
    if len(np.unique(b)) < len(np.unique(a)):
        a, b = b, a
    backend = exact_backend(backend)
    out = np.zeros(len(a))
    todo = np.flatnonzero(a != b)
    if not todo.size:
        return out
    src, inv = np.unique(a[todo], return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(src) + 1))
    G = _edge_graph(shape)
    solve, labels = _exact_solver(shape, backend), _components(shape)

    for j in tqdm(range(len(src)), desc="exact geodesics (pairs)", disable=not progress, leave=False):
        rows = todo[order[bounds[j]:bounds[j + 1]]]
        tg, tinv = np.unique(b[rows], return_inverse=True)
        radius = None
        if backend == "gdist":
            ub = dijkstra(G, directed=False, indices=int(src[j]))[tg]
            radius = float(ub.max()) * (1 + 1e-6) + 1e-12 if np.isfinite(ub).all() else None
        d = _exact_row(solve, labels, int(src[j]), tg, radius)
        if radius is not None and np.isinf(d).any():  # cannot happen for an upper bound; be safe
            d = _exact_row(solve, labels, int(src[j]), tg, None)
        out[rows] = d[tinv.ravel()]
    return out
