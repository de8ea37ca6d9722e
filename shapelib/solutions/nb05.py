"""Notebook 05 (implicit matching): worked solutions to its exercises."""
from __future__ import annotations

import numpy as np



def ex05_collapsed_pairs(x_before: np.ndarray, x_after: np.ndarray, tol: float = 1e-4) -> dict:
    """05, exercise 3: point pairs that collapse (closer than ``tol``) after the deformation, and
    the smallest pairwise distance before and after."""
    from scipy.spatial import cKDTree

    before = cKDTree(x_before).query_pairs(tol)
    after = cKDTree(x_after).query_pairs(tol)
    nearest = lambda x: float(cKDTree(x).query(x, k=2)[0][:, 1].min())
    return {"collapsed pairs": len(after - before), "points": len(x_after),
            "min distance before": nearest(x_before), "min distance after": nearest(x_after)}
