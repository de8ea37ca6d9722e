"""Notebook 00 (data): worked solutions to its exercises."""
from __future__ import annotations

import numpy as np

from .. import Shape
from ..data.synthetic import variants
from ..geodesics import geodesic_distances


def ex00_variant_ground_truth(shape: Shape, kind: str = "decimated", seed: int = 0) -> dict:
    """00, exercise 1: build a new discretisation variant and check its ground truth."""
    var = variants.make_variant(shape, kind, seed=seed)
    dist = np.linalg.norm(var.shape.vertices - shape.vertices[var.to_original], axis=1)
    return {"kind": kind, "n_vertices": var.shape.n_vertices, "of": shape.n_vertices,
            "max_gt_distance_in_edges": float(dist.max() / shape.mean_edge_length())}


def ex00_geodesic_vs_euclidean(shape: Shape, parts=None, min_distance: float = 0.1) -> dict:
    """00, exercise 2: which points are close in space but far along the surface?"""
    D = geodesic_distances(shape, np.arange(shape.n_vertices))
    E = np.linalg.norm(shape.vertices[:, None] - shape.vertices[None], axis=-1)
    ratio = np.where(E > min_distance, D / np.maximum(E, 1e-12), 0)
    i, j = np.unravel_index(np.argmax(ratio), ratio.shape)
    out = {"max_ratio": float(ratio[i, j]), "pair": (int(i), int(j)), "euclidean": float(E[i, j]), "geodesic": float(D[i, j])}
    if parts is not None:
        out["parts"] = (int(parts[i]), int(parts[j]))
    return out
