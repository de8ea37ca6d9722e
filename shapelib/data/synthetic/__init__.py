"""Synthetic shape families with exact ground truth, deterministic under a seed, cached on disk.

* `humanoids`  — one watertight template posed by LBS: subjects × poses, shared connectivity,
  14 body-part labels (left ≠ right).
* `quadrupeds` — cat / dog / wolf / horse / centaur from one template connectivity, 21 landmarks.
* `objects`    — watertight chairs (with/without arms), tables, mugs; parts and keypoints.
* `variants`   — iso / dense / qes / decimated / cloud re-discretisations with ground truth.
"""
from . import humanoids, objects, quadrupeds, variants
from ._geometry import decimate, isotropic_remesh

__all__ = ["humanoids", "quadrupeds", "objects", "variants", "decimate", "isotropic_remesh"]
