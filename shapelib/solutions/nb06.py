"""Notebook 06 (CPNet): worked solutions to its exercises."""
from __future__ import annotations

import numpy as np

from .. import Shape


def ex06_cloud_geodesics(mesh: Shape, sources, sizes=(256, 512, 1024, 2048), seed: int = 0) -> dict:
    """06, exercise: k-NN graph geodesics on sampled clouds vs heat-method geodesics on the mesh
    (median relative difference, distances ÷ bounding-box diagonal) as the cloud gets denser."""
    from scipy.spatial import cKDTree

    from ..geodesics import geodesic_distances

    sources = np.atleast_1d(sources)
    diag = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    D_mesh = np.atleast_2d(geodesic_distances(mesh, sources)) / diag
    out = {}
    for n in sizes:
        pts = mesh.sample_surface(n, seed=seed)[0]
        cloud = Shape(np.vstack([mesh.vertices[sources], pts]))
        D_cloud = np.atleast_2d(geodesic_distances(cloud, np.arange(len(sources)), method="graph"))[:, len(sources):] / diag
        ref = D_mesh[:, cKDTree(mesh.vertices).query(pts)[1]]
        far = ref > 0.05
        out[n] = float(np.median(np.abs(D_cloud[far] - ref[far]) / ref[far]))
    return out
