"""Parametric furniture and objects with part labels and semantic keypoints.

Categories (metres, ``y`` up, ``z`` = the front):

* ``chair``: seat, back, 4 legs, and — for about half of the instances — arms
  (armrests on posts). Parts: seat, back, legs, arms.
* ``table``: top and 4 legs. Parts: top, legs.
* ``mug``: a hollow cylinder (open at the top) with — for most instances — a handle.
  Parts: body, handle.

Each instance is the smooth union of rounded boxes / cylinders / tori (minus the mug's
cavity), meshed by marching cubes and isotropically remeshed: a WATERTIGHT, single-component,
manifold mesh, so inside/outside (occupancy) is well defined. Connectivity differs between
instances. Keypoints follow a fixed semantic list per category (`KEYPOINT_NAMES`); a keypoint
whose part is absent (arms of an armless chair, handle of a cup) has index ``-1`` — the
convention of KeypointNet/CPNet correspondence sets.
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ...cache import disk_cache
from ...shape import Shape
from ._geometry import Primitive, mesh_primitives

VERSION = 3

PART_NAMES = {"chair": ("seat", "back", "legs", "arms"), "table": ("top", "legs"), "mug": ("body", "handle")}
KEYPOINT_NAMES = {
    "chair": ("seat front left", "seat front right", "seat back left", "seat back right", "back top left",
              "back top right", "foot front left", "foot front right", "foot back left", "foot back right",
              "arm front left", "arm front right"),
    "table": ("top front left", "top front right", "top back left", "top back right", "foot front left",
              "foot front right", "foot back left", "foot back right"),
    "mug": ("rim front", "rim back", "rim left", "rim right", "bottom centre", "handle top", "handle bottom"),
}
#: (grid spacing, remesh edge length) per category, metres
RESOLUTION = {"chair": (0.012, 0.028), "table": (0.016, 0.04), "mug": (0.003, 0.0055)}
_ROUND = 0.004


def _box(lo, hi, part):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return Primitive("box", tuple((lo + hi) / 2), (_ROUND, 0, 0), tuple((hi - lo) / 2), part)


def _legs(half_w, half_d, height, thick, part, top_overlap=0.01):
    """Four box legs under a rectangle; returns primitives and the foot points (FL, FR, BL, BR)."""
    prims, feet = [], []
    for z in (half_d - thick / 2, -(half_d - thick / 2)):
        for x in (half_w - thick / 2, -(half_w - thick / 2)):
            prims.append(_box([x - thick / 2, 0, z - thick / 2], [x + thick / 2, height + top_overlap, z + thick / 2], part))
            feet.append([x, 0.0, z])
    return prims, feet


def chair(rng: np.random.Generator, arms: bool):
    """Primitives, cavities (none), keypoint positions (None where absent) of a random chair."""
    w, d, h = rng.uniform(0.4, 0.55), rng.uniform(0.38, 0.5), rng.uniform(0.4, 0.5)
    t, bh, lt, bt = rng.uniform(0.04, 0.06), rng.uniform(0.35, 0.55), rng.uniform(0.035, 0.05), 0.04
    hw, hd = w / 2, d / 2
    prims = [_box([-hw, h - t, -hd], [hw, h, hd], 0), _box([-hw, h - 0.01, -hd], [hw, h + bh, -hd + bt], 1)]
    legs, feet = _legs(hw, hd, h - t, lt, 2)
    prims += legs
    ah = rng.uniform(0.18, 0.25)
    kp = [[hw, h, hd], [-hw, h, hd], [hw, h, -hd + bt], [-hw, h, -hd + bt], [hw, h + bh, -hd], [-hw, h + bh, -hd]]
    kp += feet + ([[hw - 0.025, h + ah + 0.02, hd], [-hw + 0.025, h + ah + 0.02, hd]] if arms else [None, None])
    if arms:
        for sx in (1, -1):
            x0, x1 = sorted([sx * hw, sx * (hw - 0.05)])
            prims += [_box([x0, h + ah - 0.02, -hd + bt - 0.01], [x1, h + ah + 0.02, hd], 3),
                      _box([x0 + 0.01, h - 0.01, hd - 0.05], [x1 - 0.01, h + ah, hd - 0.01], 3)]
    return prims, [], kp


def table(rng: np.random.Generator, arms: bool = False):
    w, d, h = rng.uniform(0.8, 1.3), rng.uniform(0.5, 0.85), rng.uniform(0.68, 0.78)
    t, lt = rng.uniform(0.03, 0.05), rng.uniform(0.05, 0.08)
    hw, hd = w / 2, d / 2
    prims = [_box([-hw, h - t, -hd], [hw, h, hd], 0)]
    legs, feet = _legs(hw - 0.03, hd - 0.03, h - t, lt, 1)
    kp = [[hw, h, hd], [-hw, h, hd], [hw, h, -hd], [-hw, h, -hd]] + feet
    return prims + legs, [], kp


def mug(rng: np.random.Generator, handle: bool):
    R, H, wall = rng.uniform(0.035, 0.045), rng.uniform(0.08, 0.11), rng.uniform(0.006, 0.009)
    prims = [Primitive("cylinder", (0, H / 2, 0), r=(R, H / 2), part=0)]
    cavity = [Primitive("cylinder", (0, wall + H / 2, 0), r=(R - wall, H / 2), part=0)]
    hr, ht = rng.uniform(0.022, 0.03) * H / 0.1, rng.uniform(0.006, 0.008)
    kp = [[0, H, R], [0, H, -R], [R, H, 0], [-R, H, 0], [0, 0, 0]]
    if handle:
        prims.append(Primitive("torus", (R, H / 2, 0), (0, 0, 1), (hr, ht), part=1))
        kp += [[R + 0.5 * hr, H / 2 + 0.87 * hr + ht, 0], [R + 0.5 * hr, H / 2 - 0.87 * hr - ht, 0]]
    else:
        kp += [None, None]
    return prims, cavity, kp


_BUILDERS = {"chair": chair, "table": table, "mug": mug}


def make(category: str, rng: np.random.Generator, with_optional: bool = True, name: str = ""):
    """One instance: ``(shape, parts (n,) int, keypoints (K,) int vertex index or -1)``.

    ``with_optional`` toggles the optional part (chair arms, mug handle; ignored for tables).
    """
    from scipy.spatial import cKDTree

    prims, cavity, kp = _BUILDERS[category](rng, with_optional)
    spacing, edge = RESOLUTION[category]
    shape, parts = mesh_primitives(prims, spacing, blend=0.004 if category == "mug" else 0.006,
                                   remesh_edge=edge, subtract=cavity, name=name, remesh_iterations=3)
    present = [k for k in kp if k is not None]
    _, idx = cKDTree(shape.vertices).query(np.array(present))
    keypoints = -np.ones(len(kp), dtype=np.int64)
    keypoints[[i for i, k in enumerate(kp) if k is not None]] = idx
    return shape, parts, keypoints


def generate(category: str = "chair", n: int = 20, seed: int = 0, progress: bool = False) -> list[dict]:
    """``n`` instances, each cached on disk on its own (instance ``i`` depends only on
    ``(seed, i)``, so a larger ``n`` extends a smaller one). Every other chair (even ``i``) has
    arms; every fourth mug (``i % 4 == 3``) is a handle-less cup. Each item: ``shape``,
    ``parts (n_v,)``, ``keypoints (K,)`` (-1 = absent), ``optional`` (arms / handle present)."""
    if category not in _BUILDERS:
        raise ValueError(f"unknown object category {category!r}; choose one of {sorted(_BUILDERS)}.")
    out = []
    for i in tqdm(range(n), desc=f"{category}s", disable=not progress, leave=False):
        optional = i % 2 == 0 if category == "chair" else (i % 4 != 3 if category == "mug" else False)

        def compute():
            shape, parts, kp = make(category, np.random.default_rng([seed, i]), optional)
            return {"vertices": shape.vertices, "faces": shape.faces, "parts": parts, "keypoints": kp}

        a = disk_cache(f"synthetic_{category}", f"v{VERSION}", {"i": i, "seed": seed}, compute)
        out.append({"shape": Shape(a["vertices"], a["faces"], name=f"{category}_{i:03d}"), "parts": a["parts"],
                    "keypoints": a["keypoints"], "optional": optional})
    return out
