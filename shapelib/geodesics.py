"""Geodesic distances with potpourri3d's heat method (Crane et al. 2013) — never by hand.

One entry point for meshes AND point clouds (``pp3d.PointCloudHeatSolver`` on clouds, or
Dijkstra on a k-NN graph with ``method='graph'``).
Distances are in the shape's length unit.
"""
from __future__ import annotations

import numpy as np

from .cache import disk_cache
from .shape import Shape
from .errors import require


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
        from tqdm.auto import tqdm

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

    from .kernels import knn

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
