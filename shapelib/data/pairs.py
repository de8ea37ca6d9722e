"""The test pairs of the remeshed benchmarks (FAUST_r, SCAPE_r), with their mirror ground truth.

The standard protocol scores every pair of test shapes (190 for FAUST_r 080–099): shape 1 is the
lower name, the map goes from shape 2 to shape 1. :func:`items_with_symmetry` adds the left–right
mirror of each shape's ``.vts`` rows (``.sym.vts``), with which a scorer tells a flipped map from a
plain error.
"""
from __future__ import annotations

from . import real, registry


def test_pairs(dataset: str = "faust_r") -> list[tuple[str, str]]:
    """All pairs of test shapes as (lower, higher) names — the standard protocol's 190 for FAUST_r.
    The test shapes are chosen by name (:func:`shapelib.data.real.r_split`)."""
    test = real.r_split(dataset)[1]
    return [(a, b) for i, a in enumerate(test) for b in test[i + 1:]]


def items_with_symmetry(names, dataset: str = "faust_r") -> list:
    """Items of ``dataset`` (:func:`shapelib.data.real.r_dataset`) with ``meta['corres_sym']``: the
    left–right mirror of their ``.vts`` rows (``.sym.vts``; None when absent)."""
    sym_dir = registry.get(dataset).require() / "vtx_5k" / "corres"
    items = real.r_dataset(dataset, list(names))
    for it in items:
        sym = sym_dir / f"{it.name}.sym.vts"
        it.meta["corres_sym"] = real.read_vts(sym, it.shape.n_vertices) if sym.exists() else None
    return items
