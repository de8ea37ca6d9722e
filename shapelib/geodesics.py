"""Geodesic distances with potpourri3d's heat method (Crane et al. 2013) — never by hand.

One entry point for meshes AND point clouds (``pp3d.PointCloudHeatSolver`` on clouds).
Distances are in the shape's length unit.
"""
from __future__ import annotations

import numpy as np

from .cache import disk_cache
from .shape import Shape


def _solver(shape: Shape, t_coef: float = 1.0):
    import potpourri3d as pp3d

    key = ("heat_solver", t_coef)
    if key not in shape._cache:
        if shape.is_mesh:
            shape.check_operators_ready("Geodesic distance")
            shape._cache[key] = pp3d.MeshHeatMethodDistanceSolver(shape.vertices, shape.faces, t_coef=t_coef)
        else:
            shape._cache[key] = pp3d.PointCloudHeatSolver(shape.vertices, t_coef=t_coef)
    return shape._cache[key]


def geodesic_distances(shape: Shape, sources, t_coef: float = 1.0) -> np.ndarray:
    """Distances from a vertex or a set of vertices.

    Parameters
    ----------
    shape : mesh or point cloud
    sources : int -> ``(n,) float`` distances from that vertex;
              sequence of ints -> ``(len(sources), n) float``, one row per source.
    t_coef : heat-method time step factor (1 = the method's default; larger is smoother).
    """
    solver = _solver(shape, t_coef)
    n = shape.n_vertices
    scalar = np.ndim(sources) == 0
    src = np.atleast_1d(np.asarray(sources, dtype=np.int64))
    if src.size and (src.min() < 0 or src.max() >= n):
        raise IndexError(f"source vertices must lie in [0, {n}), got range [{src.min()}, {src.max()}].")
    out = np.stack([solver.compute_distance(int(s)) for s in src]) if src.size else np.zeros((0, n))
    out = np.maximum(out, 0.0)
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
        return {"D": 0.5 * (D + D.T)}

    if not cache:
        return compute()["D"]
    return disk_cache("geodesic_matrix", shape.content_hash(), {"v": 1}, compute)["D"]
