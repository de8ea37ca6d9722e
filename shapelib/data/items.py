"""Containers returned by the data API: `Item`, `Pair`, `Collection`, `PairSet`.

Ground-truth maps are 0-based index arrays whose name says the direction:
``p2p_21`` is ``(n2,) int`` — for each vertex of shape 2, its vertex on shape 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..shape import Shape
from ..geodesics import geodesic_matrix
from ..metrics import GeodesicEvaluator


@dataclass
class Item:
    """One shape and what is known about it.

    shape : the `Shape`.
    template_index : ``(n,) int`` template vertex of each vertex (vertex-label correspondence,
        FAUST's 6,890-vertex template; ``-1`` where unknown) or None.
    parts : ``(n,) int`` part/segment label per vertex, names in ``part_names``.
    keypoints : ``(K,) int`` vertex index of each semantic keypoint, ``-1`` where absent;
        names in ``keypoint_names``.
    meta : anything else (subject, pose, species, file path, ...).
    """

    shape: Shape
    template_index: np.ndarray | None = None
    parts: np.ndarray | None = None
    part_names: tuple | None = None
    keypoints: np.ndarray | None = None
    keypoint_names: tuple | None = None
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.shape.name

    def geodesics(self):
        """``(n, n) float32`` all-pairs geodesic distances (heat method, cached on disk)."""
        return geodesic_matrix(self.shape)

    def __repr__(self) -> str:
        extras = [k for k in ("template_index", "parts", "keypoints") if getattr(self, k) is not None]
        return f"Item({self.shape!r}{', with ' + ', '.join(extras) if extras else ''})"


@dataclass
class Pair:
    """Two shapes with ground truth from shape 2 to shape 1.

    p2p_21 : ``(n2,) int`` vertex of shape 1 for each vertex of shape 2, or None (landmarks only).
    exact : ``(n2,) bool`` where ``p2p_21`` is given by the dataset (elsewhere it was filled from
        the nearest vertex that has ground truth); evaluate on ``exact`` vertices.
    landmarks : ``(L, 2) int`` pairs (vertex on 1, vertex on 2); rows with -1 are absent.
    """

    first: Item
    second: Item
    p2p_21: np.ndarray | None = None
    exact: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def shape1(self) -> Shape:
        return self.first.shape

    @property
    def shape2(self) -> Shape:
        return self.second.shape

    @property
    def name(self) -> str:
        return f"{self.shape1.name}<-{self.shape2.name}"

    def gt_pairs(self) -> np.ndarray:
        """``(k, 2) int`` ground-truth vertex pairs (on 1, on 2): exact dense GT, else landmarks."""
        if self.p2p_21 is not None:
            j = np.flatnonzero(self.exact) if self.exact is not None else np.arange(len(self.p2p_21))
            return np.c_[self.p2p_21[j], j]
        lm = self.landmarks
        return lm[(lm >= 0).all(1)]

    def geodesic_errors(self, p2p_21_pred, normalize: bool = True) -> np.ndarray:
        """``(k,)`` geodesic error on shape 1 of a predicted ``(n2,)`` map at the ``k`` ground-truth
        pairs (`gt_pairs`), divided by ``sqrt(area of shape 1)`` when ``normalize`` (×100 gives
        the papers' numbers). See :class:`shapelib.metrics.GeodesicEvaluator`."""
        gt = self.gt_pairs()
        gt_21 = np.zeros(self.shape2.n_vertices, dtype=np.int64)
        gt_21[gt[:, 1]] = gt[:, 0]
        ev = GeodesicEvaluator(self.shape1, gt_21, vertices=gt[:, 1], normalize="area" if normalize else None)
        return ev.errors(p2p_21_pred)

    def __repr__(self) -> str:
        gt = "dense" if self.p2p_21 is not None else f"{len(self.gt_pairs())} landmarks"
        return f"Pair({self.name}, ground truth: {gt})"


class _Described(list):
    """A list that knows where its data comes from: ``.source`` (one line) and ``describe()``."""

    kind = "items"

    def __init__(self, items, source: str, details: dict | None = None):
        super().__init__(items)
        self.source = source
        self.details = dict(details or {})

    @property
    def is_real(self) -> bool:
        return self.source.startswith("real")

    def describe(self) -> str:
        lines = [f"{len(self)} {self.kind} — {self.source}"]
        lines += [f"  {k}: {v}" for k, v in self.details.items()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} {self.kind}; {self.source}>"


class Collection(_Described):
    """A list of `Item` with ``.source`` ("real: …" / "synthetic: …") and ``describe()``."""

    kind = "shapes"

    @property
    def shapes(self) -> list[Shape]:
        return [it.shape for it in self]


class PairSet(_Described):
    """A list of `Pair` with ``.source`` and ``describe()``."""

    kind = "pairs"


def progress(iterable, desc: str):
    """A tqdm.auto progress bar over shapes (hidden when not attached to a terminal/notebook)."""
    return tqdm(iterable, desc=desc, leave=False, disable=None)


# ----------------------------------------------------------------------------- GT builders


def fill_from_exact(shape2: Shape, p2p_21: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Complete ``p2p_21`` on vertices without ground truth by copying it from the nearest
    (Euclidean, on shape 2) vertex that has it."""
    from scipy.spatial import cKDTree

    if exact.all():
        return p2p_21
    good = np.flatnonzero(exact)
    _, nn = cKDTree(shape2.vertices[good]).query(shape2.vertices[~exact])
    out = p2p_21.copy()
    out[~exact] = p2p_21[good[nn]]
    return out


def pair_from_rows(first: Item, second: Item, rows1: np.ndarray, rows2: np.ndarray, **meta) -> Pair:
    """Pair from correspondence rows (vertex ``rows1[r]`` of 1 ↔ ``rows2[r]`` of 2; e.g. the
    rows of two ``.vts`` files). Vertices of 2 hit by no row are filled from the nearest hit one."""
    n2 = second.shape.n_vertices
    p2p = np.zeros(n2, dtype=np.int64)
    exact = np.zeros(n2, dtype=bool)
    p2p[rows2[::-1]] = rows1[::-1]  # first row wins on repeats
    exact[rows2] = True
    return Pair(first, second, fill_from_exact(second.shape, p2p, exact), exact, meta=meta)


def pair_from_template(first: Item, second: Item, **meta) -> Pair:
    """Pair of shapes whose vertices carry template indices, shape 1 having the template's
    connectivity (``template_index = arange``): ``p2p_21 = template_index of 2`` (exact)."""
    t1, t2 = first.template_index, second.template_index
    if t1 is None or t2 is None or not np.array_equal(t1, np.arange(len(t1))):
        raise ValueError("pair_from_template needs template indices, and shape 1 on the template connectivity.")
    exact = t2 >= 0
    p2p = np.where(exact, t2, 0).astype(np.int64)
    return Pair(first, second, fill_from_exact(second.shape, p2p, exact), exact, meta=meta)


def pair_via_original(first: Item, second: Item, **meta) -> Pair:
    """Pair of re-discretised shapes whose originals share one connectivity.

    Each item's ``meta`` holds ``original`` (its shape on the shared template connectivity) and
    ``face (n,)``/``bary (n, 3)`` (the closest point of each vertex on that original). The point
    of shape 2 is carried with the same face/barycentric coordinates onto shape 1's original,
    then to the nearest vertex of shape 1: exact up to the discretisation.
    """
    from scipy.spatial import cKDTree

    o1 = first.meta["original"]
    f2, b2 = second.meta["face"], second.meta["bary"]
    pts = np.einsum("nk,nkd->nd", b2, o1.vertices[o1.faces[f2]])
    _, p2p = cKDTree(first.shape.vertices).query(pts)
    return Pair(first, second, p2p.astype(np.int64), np.ones(len(p2p), bool), meta=meta)
