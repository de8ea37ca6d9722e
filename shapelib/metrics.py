"""Correspondence metrics: geodesic error, accuracy-vs-threshold curves (notebooks 04–06).

Convention: a predicted map ``p2p_21 (n2,)`` gives a vertex of shape 1 for each vertex of
shape 2; its error at vertex ``i`` of shape 2 is the geodesic distance ON SHAPE 1 between the
predicted and the ground-truth vertex, ``d_1(p2p_21[i], gt_21[i])``. The usual benchmark number
is the mean over evaluated vertices, divided by ``sqrt(area of shape 1)`` (unit-area shapes)
and ×100 (Kim et al. 2011; Table 1 of most deep functional map papers).
"""
from __future__ import annotations

import numpy as np

from .geodesics import geodesic_distances, geodesic_matrix
from .shape import Shape

NORMALIZATIONS = ("area", "diameter", None)


class GeodesicEvaluator:
    """Geodesic errors of any number of predicted maps against one ground truth, computing the
    geodesic distances once.

    shape1 : the shape on which errors are measured (the image of ``p2p_21``).
    gt_21 : ``(n2,) int`` ground-truth vertex of shape 1 for each vertex of shape 2.
    vertices : ``(m,) int`` vertices of shape 2 to evaluate. The benchmark protocol is every
        vertex that has ground truth (:meth:`from_pair` does this); the default is all vertices,
        or ``n_samples`` drawn with ``seed`` — sampling changes the number (on a 5k-vertex
        FAUST_r pair 400 samples scored 7.4 where all vertices gave 5.2), so use it only
        where you say so.
    normalize : ``'area'`` (÷ sqrt(area)), ``'diameter'`` (÷ geodesic diameter, estimated as the
        largest distance from the evaluated sources), or None (length units).
    geodesics : ``'sources'`` — one heat-method solve per distinct ground-truth vertex;
        ``'matrix'`` — rows of the all-pairs matrix of shape 1 (:func:`geodesic_matrix`,
        cached on disk and kept on the shape, so every pair with the same shape 1 reuses it);
        ``'auto'`` — the matrix when the sources are more than 80 % of shape 1's vertices
        and it has at most 12,000.
    """

    @classmethod
    def from_pair(cls, pair, shape1: Shape | None = None, **kw) -> "GeodesicEvaluator":
        """The protocol of the benchmarks: every vertex of shape 2 with ground truth
        (``pair.exact``), errors on shape 1 (``shape1``: e.g. ``pair.shape1.normalized('area')``)."""
        exact = np.flatnonzero(pair.exact) if pair.exact is not None else None
        return cls(pair.shape1 if shape1 is None else shape1, pair.p2p_21, vertices=exact, **kw)

    def __init__(self, shape1: Shape, gt_21, vertices=None, n_samples: int | None = None, seed: int = 0,
                 normalize: str | None = "area", geodesics: str = "auto"):
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize={normalize!r}: choose one of {NORMALIZATIONS}.")
        gt = np.asarray(gt_21).astype(np.int64).ravel()
        if gt.min() < 0 or gt.max() >= shape1.n_vertices:
            raise IndexError(f"gt_21 must hold vertices of shape 1 in [0, {shape1.n_vertices}).")
        if vertices is None:
            vertices = np.arange(len(gt))
            if n_samples is not None and n_samples < len(gt):
                vertices = np.sort(np.random.default_rng(seed).choice(len(gt), n_samples, replace=False))
        self.vertices = np.asarray(vertices, dtype=np.int64)
        self.n2 = len(gt)
        self.sources, row = np.unique(gt[self.vertices], return_inverse=True)
        self._row = row.ravel()
        if geodesics not in ("auto", "sources", "matrix"):
            raise ValueError(f"geodesics={geodesics!r}: choose 'auto', 'sources' or 'matrix'.")
        if geodesics == "auto":
            geodesics = "matrix" if shape1.is_mesh and 5 * len(self.sources) > 4 * shape1.n_vertices \
                and shape1.n_vertices <= 12000 else "sources"
        if geodesics == "matrix":
            if "geodesic_matrix" not in shape1._cache:
                shape1._cache["geodesic_matrix"] = geodesic_matrix(shape1)
            self.D = shape1._cache["geodesic_matrix"][self.sources]  # (n_sources, n1)
        else:
            self.D = geodesic_distances(shape1, self.sources)  # (n_sources, n1)
        self.normalize = normalize
        if normalize == "area":
            self.scale = float(np.sqrt(shape1.area())) if shape1.is_mesh else 1.0
        elif normalize == "diameter":
            self.scale = float(self.D.max())
        else:
            self.scale = 1.0

    def errors(self, p2p_21) -> np.ndarray:
        """``(m,)`` normalised geodesic errors of the predicted map at the evaluated vertices."""
        pred = np.asarray(p2p_21.detach().cpu() if hasattr(p2p_21, "detach") else p2p_21).astype(np.int64).ravel()
        if pred.shape != (self.n2,):
            raise ValueError(f"p2p_21 must have one entry per vertex of shape 2 ({self.n2},), got {pred.shape}.")
        # an exact match scores 0, whatever small value the heat method returns at its source
        hit = pred[self.vertices] == self.sources[self._row]
        return np.where(hit, 0.0, self.D[self._row, pred[self.vertices]]) / self.scale

    def mean(self, p2p_21) -> float:
        """Mean geodesic error ×100 (the number tables report)."""
        return 100.0 * float(self.errors(p2p_21).mean())


def geodesic_errors(shape1: Shape, p2p_21, gt_21, normalize: str | None = "area", n_samples: int | None = None,
                    seed: int = 0) -> np.ndarray:
    """Per-vertex geodesic errors (normalised, NOT ×100) of ``p2p_21`` against ``gt_21``; see
    :class:`GeodesicEvaluator` (use it directly to score several maps of one pair)."""
    return GeodesicEvaluator(shape1, gt_21, n_samples=n_samples, seed=seed, normalize=normalize).errors(p2p_21)


def mean_geodesic_error(shape1: Shape, p2p_21, gt_21, normalize: str | None = "area", n_samples: int | None = None,
                        seed: int = 0) -> float:
    """Mean geodesic error ×100 on ``shape1`` (unit-area normalisation by default)."""
    return 100.0 * float(geodesic_errors(shape1, p2p_21, gt_21, normalize, n_samples, seed).mean())


def accuracy_curve(errors, thresholds=None, max_threshold: float = 0.25, n: int = 101):
    """Fraction of correspondences with error ≤ t, for each threshold ``t``.

    errors : ``(m,)`` normalised errors (or a list of arrays, pooled). thresholds default to
    ``n`` values on ``[0, max_threshold]``. Returns ``(thresholds (T,), accuracy (T,))``.
    """
    e = np.concatenate([np.ravel(x) for x in errors]) if isinstance(errors, (list, tuple)) else np.ravel(errors)
    t = np.linspace(0.0, max_threshold, n) if thresholds is None else np.asarray(thresholds, dtype=float)
    return t, (e[None, :] <= t[:, None]).mean(1)


def auc(errors, max_threshold: float = 0.25) -> float:
    """Area under the accuracy curve on ``[0, max_threshold]``, divided by ``max_threshold`` (in [0, 1])."""
    t, a = accuracy_curve(errors, max_threshold=max_threshold)
    return float(np.trapezoid(a, t) / max_threshold) if hasattr(np, "trapezoid") else float(np.trapz(a, t) / max_threshold)


def plot_accuracy_curves(curves: dict, max_threshold: float = 0.25, ax=None, title: str | None = None):
    """One line per method: ``curves = {label: errors (m,) or list of arrays}``. Returns the axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5))
    for label, errs in curves.items():
        t, a = accuracy_curve(errs, max_threshold=max_threshold)
        ax.plot(t, 100 * a, label=f"{label} (AUC {auc(errs, max_threshold):.2f})")
    ax.set_xlabel("geodesic error threshold (÷ sqrt(area))")
    ax.set_ylabel("% correspondences")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def transfer_colors(shape1: Shape, p2p_21) -> np.ndarray:
    """``(n2, 3)`` RGB: the correspondence colours of shape 1 pulled back to shape 2 through ``p2p_21``
    (texture/colour transfer; same colour = matched points)."""
    from .viz import correspondence_colors

    pred = np.asarray(p2p_21.detach().cpu() if hasattr(p2p_21, "detach") else p2p_21).astype(np.int64)
    return correspondence_colors(shape1)[pred]


# ----------------------------------------------------------------------------- point-set distances
# (notebook 05: Chamfer / EMD between a deformed shape and its target, whole and per part)


def _points(X):
    import torch

    X = X.detach().cpu().numpy() if hasattr(X, "detach") else np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 3 or len(X) == 0:
        raise ValueError(f"expected a non-empty (n, 3) point set, got shape {X.shape}.")
    return torch.as_tensor(X, dtype=torch.float64)


def chamfer_distance(A, B) -> float:
    """Bidirectional squared Chamfer distance between point sets ``A (n, 3)`` and ``B (m, 3)``:
    ``mean_a min_b ‖a−b‖² + mean_b min_a ‖a−b‖²`` (the IM-Net / ShapeFlow convention behind
    Table 1 of Chen et al. 2021, reported ×1000). Nearest neighbours by `kernels.nearest`."""
    from .kernels import nearest

    A, B = _points(A), _points(B)
    _, dAB = nearest(B, A, backend="torch", return_distances=True)
    _, dBA = nearest(A, B, backend="torch", return_distances=True)
    return float(dAB.mean() + dBA.mean())


def earth_movers_distance(A, B) -> float:
    """Earth mover's distance between equal-size point sets ``A, B (n, 3)``: the mean Euclidean
    distance under the optimal one-to-one assignment (scipy ``linear_sum_assignment``, exact;
    O(n³) — keep n ≲ 2,000)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    A, B = _points(A).numpy(), _points(B).numpy()
    if len(A) != len(B):
        raise ValueError(f"EMD needs equal-size samples, got {len(A)} and {len(B)}; subsample the larger one.")
    C = cdist(A, B)
    r, c = linear_sum_assignment(C)
    return float(C[r, c].mean())


def part_distances(A, parts_A, B, parts_B, n_emd: int | None = 512, seed: int = 0) -> dict:
    """Part-averaged Chamfer and EMD (Table 1 protocol of Chen et al. 2021):
    ``CD_part = (1/N_c) Σ_c CD(A_c, B_c)`` over the part categories ``c`` present in BOTH sets
    (a part missing on one side — arms of an armless chair — has no counterpart to measure).
    EMD per part on ``min(|A_c|, |B_c|, n_emd)`` random points of each side.

    Returns ``{'cd': float, 'emd': float, 'parts': [c, ...], 'cd_per_part': {c: float}}``.
    """
    pa, pb = np.asarray(parts_A).ravel(), np.asarray(parts_B).ravel()
    A, B = _points(A).numpy(), _points(B).numpy()
    if len(pa) != len(A) or len(pb) != len(B):
        raise ValueError("parts_A / parts_B need one label per point of A / B.")
    common = sorted(set(pa.tolist()) & set(pb.tolist()))
    if not common:
        raise ValueError("A and B share no part label; nothing to compare per part.")
    rng = np.random.default_rng(seed)
    cd, emd = {}, {}
    for c in common:
        a, b = A[pa == c], B[pb == c]
        cd[c] = chamfer_distance(a, b)
        k = min(len(a), len(b), n_emd or max(len(a), len(b)))
        emd[c] = earth_movers_distance(a[rng.choice(len(a), k, replace=False)], b[rng.choice(len(b), k, replace=False)])
    return {"cd": float(np.mean(list(cd.values()))), "emd": float(np.mean(list(emd.values()))), "parts": common,
            "cd_per_part": cd}
