"""Scoring: how a map or a set of per-pair errors is turned into the numbers of a record.

* :class:`PairScorer` — the error of a point-to-point map at every vertex with ground truth (the
  geodesic yardstick of :class:`shapelib.metrics.GeodesicEvaluator`), whether the map is flipped,
  and the share of its error on vertices sent to the mirror side (:func:`mirror_share`);
* :func:`summary_stats` — the one summary of a list of per-shape (or per-pair) numbers that every
  protocol's record carries (mean, median, spread);
* :func:`failure_anatomy` — where a mean error comes from (a few bad pairs, the shapes they share).
"""
from __future__ import annotations

import numpy as np

from ..data.items import pair_from_rows
from ..metrics import GeodesicEvaluator


def summary_stats(values, digits: int | None = 4, percentiles: bool = False, minimum: bool = False) -> dict:
    """``{"mean", "median", ["min"], "std", ["p10", "p90"]}`` of ``values`` (rounded to ``digits``,
    or full floats with ``digits=None``). The protocols add ``n``, the paper's number and their own
    measures beside it."""
    v = np.asarray(values, dtype=float)
    if not len(v):
        raise ValueError("summary_stats: no values to summarise (an empty test set or subset).")
    out = {"mean": v.mean(), "median": np.median(v)}
    if minimum:
        out["min"] = v.min()
    out["std"] = v.std()
    if percentiles:
        out["p10"], out["p90"] = np.percentile(v, 10), np.percentile(v, 90)
    return {k: float(x) if digits is None else round(float(x), digits) for k, x in out.items()}


class PairScorer:
    """Mean error ×100 at every vertex with ground truth, whether a map is flipped, and how much of
    its error sits on vertices sent to the mirror side (:meth:`score`)."""

    def __init__(self, pair, shape1):
        self.gt = GeodesicEvaluator.from_pair(pair, shape1, geodesics="matrix")
        sym1 = pair.first.meta.get("corres_sym")
        self.sym = None
        if sym1 is not None:
            mirror = pair_from_rows(pair.first, pair.second, sym1, pair.second.meta["corres"])
            self.sym = GeodesicEvaluator.from_pair(mirror, shape1, geodesics="matrix")
            if not np.array_equal(self.sym.vertices, self.gt.vertices):
                raise ValueError(f"{pair.first.name}: the .sym.vts rows do not cover the same vertices of "
                                 f"{pair.second.name} as the .vts rows; check that both files belong to these shapes.")

    def vertex_errors(self, p2p) -> tuple[np.ndarray, np.ndarray | None]:
        """Per scored vertex of shape 2 (``self.gt.vertices``): the error to its true image and the
        error to the mirror image of its true image (None without ``.sym.vts``), both ÷ √area."""
        return self.gt.errors(p2p), (None if self.sym is None else self.sym.errors(p2p))

    def score(self, p2p) -> dict:
        """``error`` (×100); with the mirror ground truth also ``flipped`` (the whole map is closer to
        the mirror image) and ``mirror_share``: the share of the error carried by vertices that
        land closer to the mirror image of their true match than to the match itself — a left and
        a right hand swapped while the rest of the body is right gives a share near 1 and
        ``flipped`` False."""
        e, e_mirror = self.vertex_errors(p2p)
        out = {"error": 100.0 * float(e.mean())}
        if e_mirror is not None:
            out["flipped"] = bool(e_mirror.mean() < e.mean())
            out["mirror_share"] = mirror_share(e, e_mirror)
        return out


def mirror_share(errors: np.ndarray, mirror_errors: np.ndarray) -> float:
    """Share of the total error (``sum(errors)``) carried by the vertices whose ``mirror_errors`` is
    smaller than their error (closer to the mirror image of their true match); 0 for a perfect map.
    Vertices on the symmetry plane are close to both and carry almost no error, so the share does
    not depend on how their ties fall."""
    errors, mirror_errors = np.asarray(errors, dtype=float), np.asarray(mirror_errors, dtype=float)
    if errors.shape != mirror_errors.shape:
        raise ValueError(f"errors {errors.shape} and mirror_errors {mirror_errors.shape} must score the same vertices.")
    total = errors.sum()
    return float(errors[mirror_errors < errors].sum() / total) if total > 0 else 0.0


def pooled_mirror_share(errors, shares) -> float:
    """Over several pairs (each with its mean ``errors`` and :func:`mirror_share` ``shares``): the
    share of all their error that sits on vertices sent to the mirror side (error-weighted)."""
    errors, shares = np.asarray(errors, dtype=float), np.asarray(shares, dtype=float)
    return float((errors * shares).sum() / errors.sum()) if errors.sum() > 0 else 0.0


def failure_anatomy(pairs, errors, shares=None, flipped=None, threshold: float = 10.0, shapes=None) -> dict:
    """Where a pipeline's mean error comes from, over test pairs ``'a<-b'`` with their mean errors
    (×100), :func:`mirror_share` ``shares`` and ``flipped`` flags (optional):

    ``n``, ``mean``, ``median``; ``n_bad`` (error > ``threshold``) and ``n_between`` (between half the
    threshold and it); ``shapes``: a few test shapes such that every bad pair involves one of them
    (a greedy cover: the shape in most uncovered bad pairs first; or the ``shapes`` given, to compare
    pipelines on the same split), ``mean_with`` / ``n_with`` over the pairs with one of them and
    ``mean_without`` / ``n_without`` over the others; with ``shares``: ``share_bad`` / ``share_rest`` (the pooled
    share of the bad / other pairs' error on mirror-side vertices) and ``share_range`` (lowest and
    highest share of a bad pair); with ``flipped``: ``n_bad_flipped``. Read off the test results:
    it explains a mean, it is not a number to tune on."""
    pairs, errors = list(pairs), np.asarray(errors, dtype=float)
    if any("<-" not in p for p in pairs):
        raise ValueError("failure_anatomy: pairs are named 'shape1<-shape2' (the records' per_shape keys).")
    if len(pairs) != len(errors) or not len(pairs):
        raise ValueError(f"failure_anatomy needs one error per pair (got {len(pairs)} pairs, {len(errors)} errors).")
    bad = errors > threshold
    out = {"n": len(pairs), "mean": float(errors.mean()), "median": float(np.median(errors)),
           "n_bad": int(bad.sum()), "n_between": int(((errors > threshold / 2) & ~bad).sum()), "threshold": threshold}
    members = [set(p.split("<-")) for p in pairs]
    uncovered = set() if shapes is not None else {int(i) for i in np.flatnonzero(bad)}
    shapes = list(shapes) if shapes is not None else []
    while uncovered:
        counts = {}
        for i in uncovered:
            for name in members[i]:
                counts[name] = counts.get(name, 0) + 1
        best = max(sorted(counts), key=counts.get)
        shapes.append(best)
        uncovered = {i for i in uncovered if best not in members[i]}
    out["shapes"] = sorted(shapes)
    without = np.array([not (m & set(shapes)) for m in members])
    out["n_with"], out["n_without"] = int((~without).sum()), int(without.sum())
    out["mean_with"] = float(errors[~without].mean()) if (~without).any() else float("nan")
    out["mean_without"] = float(errors[without].mean()) if without.any() else float("nan")
    if shares is not None:
        shares = np.asarray(shares, dtype=float)
        out["share_bad"] = pooled_mirror_share(errors[bad], shares[bad]) if bad.any() else float("nan")
        out["share_rest"] = pooled_mirror_share(errors[~bad], shares[~bad]) if (~bad).any() else float("nan")
        out["share_range"] = (float(shares[bad].min()), float(shares[bad].max())) if bad.any() else None
    if flipped is not None:
        out["n_bad_flipped"] = int(np.asarray(flipped, dtype=bool)[bad].sum())
    return out
