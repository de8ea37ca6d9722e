"""Synthetic quadrupeds: several "species" from ONE parametric body with ONE connectivity.

A dog-like rest template (smooth union of ellipsoids and tapered capsules, marching cubes,
isotropic remesh, ~3,000 vertices) is deformed per species by bone length/girth factors
and a rest rotation of the neck, then posed by linear-blend skinning. Species:

* ``cat`` (short legs, long tail, short snout), ``dog``, ``wolf`` (long snout),
* ``horse`` (long legs and neck, long head),
* ``centaur``: the horse body whose neck is turned upright and thickened into a human-like
  torso carrying a round, snout-less head (no arms: the connectivity is shared).

Because every species is the same template mesh, vertex i of a cat corresponds to vertex i
of a dog or of a centaur: cross-species ground truth is exact and dense. 21 TOSCA-style
landmarks (`LANDMARK_NAMES`) are fixed template vertices. Metres, ``y`` up, ``z`` forward
(the head), ``+x`` = the animal's left.
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ...cache import disk_cache
from ._geometry import Primitive, SkeletonBuilder, bone_transforms, extreme_vertices, rotation, skin, skinned_template

VERSION = 3

PART_NAMES = ("head", "neck", "torso", "tail", "front_left_upper_leg", "front_left_lower_leg",
              "front_right_upper_leg", "front_right_lower_leg", "back_left_upper_leg", "back_left_lower_leg",
              "back_right_upper_leg", "back_right_lower_leg")
BONES = ("hips", "chest", "neck", "head", "snout", "tail", "fl_upper", "fl_lower", "fr_upper", "fr_lower",
         "bl_upper", "bl_lower", "br_upper", "br_lower")
_BONE_PART = (2, 2, 1, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11)

#: the 21 semantic landmarks of TOSCA's cat/dog/horse/wolf (and the first 21 of the centaur)
LANDMARK_NAMES = ("tip of head/mouth", "top of head", "head-neck junction (left)", "head-neck junction (right)",
                  "outer junction front left leg", "tip of front left leg", "outer junction back left leg",
                  "tip of back left leg", "outer junction back right leg", "tip of back right leg",
                  "outer junction front right leg", "tip of front right leg", "centre of body (top)",
                  "tail-body junction (bottom)", "centre of body (bottom)", "left eye", "right eye",
                  "inner junction front left leg", "inner junction front right leg",
                  "inner junction back left leg", "inner junction back right leg")

#: species -> multiplicative factors over the template (neck_pitch in degrees, + = more upright)
SPECIES = {
    "cat": dict(body=0.85, leg=0.75, neck=0.6, head=1.05, snout=0.35, tail=1.5, girth=0.85, leg_girth=0.8,
                neck_girth=0.9, neck_pitch=0.0),
    "dog": dict(body=1.0, leg=1.0, neck=0.9, head=1.0, snout=1.3, tail=0.9, girth=1.0, leg_girth=1.0,
                neck_girth=1.0, neck_pitch=0.0),
    "wolf": dict(body=1.1, leg=1.1, neck=1.0, head=1.05, snout=1.6, tail=1.0, girth=1.05, leg_girth=1.0,
                 neck_girth=1.05, neck_pitch=0.0),
    "horse": dict(body=1.35, leg=1.6, neck=1.7, head=1.2, snout=2.2, tail=1.1, girth=1.25, leg_girth=1.0,
                  neck_girth=1.3, neck_pitch=10.0),
    "centaur": dict(body=1.35, leg=1.6, neck=1.9, head=1.25, snout=0.25, tail=1.1, girth=1.25, leg_girth=1.0,
                    neck_girth=2.0, neck_pitch=45.0),
}


def _rest_layout():
    builder, prims = SkeletonBuilder(BONES), []
    bone = builder.bone

    s45 = np.sqrt(0.5)
    b = bone("hips", None, [0, 0.56, 0], [0, 0, -1])
    prims.append(Primitive("ellipsoid", (0, 0.55, -0.2), r=(0.13, 0.14, 0.24), part=b))
    b = bone("chest", "hips", [0, 0.56, 0], [0, 0, 1])
    prims.append(Primitive("ellipsoid", (0, 0.57, 0.13), r=(0.14, 0.16, 0.24), part=b))
    b = bone("neck", "chest", [0, 0.62, 0.28], [0, s45, s45])
    prims.append(Primitive("capsule", (0, 0.6, 0.26), (0, 0.78, 0.44), r=(0.08, 0.06), part=b))
    b = bone("head", "neck", [0, 0.78, 0.44], [0, 0, 1])
    prims.append(Primitive("ellipsoid", (0, 0.83, 0.5), r=(0.075, 0.08, 0.09), part=b))
    b = bone("snout", "head", [0, 0.81, 0.56], [0, -0.2, 1])
    prims.append(Primitive("capsule", (0, 0.81, 0.55), (0, 0.785, 0.68), r=(0.05, 0.032), part=b))
    b = bone("tail", "hips", [0, 0.6, -0.42], [0, -0.17, -1])
    prims.append(Primitive("capsule", (0, 0.6, -0.4), (0, 0.55, -0.7), r=(0.035, 0.018), part=b))
    for leg, (sx, z, parent) in {"fl": (1, 0.22, "chest"), "fr": (-1, 0.22, "chest"),
                                 "bl": (1, -0.3, "hips"), "br": (-1, -0.3, "hips")}.items():
        top, knee, foot = np.array([sx * 0.08, 0.5, z]), np.array([sx * 0.08, 0.28, z]), np.array([sx * 0.08, 0.05, z])
        b = bone(f"{leg}_upper", parent, top, [0, -1, 0])
        prims.append(Primitive("capsule", tuple(top + [0, 0.05, 0]), tuple(knee), r=(0.055, 0.04), part=b))
        b = bone(f"{leg}_lower", f"{leg}_upper", knee, [0, -1, 0])
        prims += [Primitive("capsule", tuple(knee), tuple(foot), r=(0.038, 0.03), part=b),
                  Primitive("ellipsoid", tuple(foot + [0, -0.01, 0.025]), r=(0.035, 0.028, 0.05), part=b)]
    return builder.skeleton(), prims


def template(spacing: float = 0.01, edge: float = 0.022) -> dict:
    """The rest template (cached): ``vertices (n,3)``, ``faces``, ``weights (n,14)``, ``parts (n,)``,
    ``landmarks (21,)`` vertex indices (see `LANDMARK_NAMES`)."""
    _, prims = _rest_layout()
    t = dict(skinned_template("quadruped", VERSION, prims, _BONE_PART, len(BONES), spacing, edge,
                              blend=0.03, smooth_iterations=30))
    P = {n: i for i, n in enumerate(PART_NAMES)}
    up, out_l, out_r = (0, 1, 0), (1, 0.6, 0), (-1, 0.6, 0)
    rules = [(P["head"], (0, -0.1, 1)), (P["head"], up), (P["neck"], (1, 0.3, 0.3)), (P["neck"], (-1, 0.3, 0.3)),
             (P["front_left_upper_leg"], out_l), (P["front_left_lower_leg"], (0, -1, 0.3)),
             (P["back_left_upper_leg"], out_l), (P["back_left_lower_leg"], (0, -1, 0.3)),
             (P["back_right_upper_leg"], out_r), (P["back_right_lower_leg"], (0, -1, 0.3)),
             (P["front_right_upper_leg"], out_r), (P["front_right_lower_leg"], (0, -1, 0.3)),
             (P["torso"], up), (P["torso"], (0, -0.4, -1)), (P["torso"], (0, -1, 0)),
             (P["head"], (1, 0.5, 0.6)), (P["head"], (-1, 0.5, 0.6)),
             (P["front_left_upper_leg"], (-1, 0.6, 0)), (P["front_right_upper_leg"], (1, 0.6, 0)),
             (P["back_left_upper_leg"], (-1, 0.6, 0)), (P["back_right_upper_leg"], (1, 0.6, 0))]
    t["landmarks"] = extreme_vertices(t["vertices"], t["parts"], rules)
    return t


def _scales(p: dict) -> tuple[dict, dict, dict]:
    length = {"hips": p["body"], "chest": p["body"], "neck": p["neck"], "head": p["head"], "snout": p["snout"],
              "tail": p["tail"]}
    girth = {"hips": p["girth"], "chest": p["girth"], "neck": p["neck_girth"], "head": p["head"], "tail": 1.0,
             "snout": min(p["head"], 1.0 + 0.3 * (p["snout"] - 1.0))}
    for leg in ("fl", "fr", "bl", "br"):
        for seg in ("upper", "lower"):
            length[f"{leg}_{seg}"], girth[f"{leg}_{seg}"] = p["leg"], p["leg_girth"]
    return length, girth


def pose_rotations(p: dict, pose: dict) -> dict:
    """Local rotations: the species' neck pitch plus a pose: ``legs`` (swing, degrees, per leg
    fl/fr/bl/br), ``knees`` (per leg), ``neck_turn``, ``head_nod``, ``tail_swing``, ``tail_lift``."""
    R = {"neck": rotation([1, 0, 0], -p["neck_pitch"]) @ rotation([0, 1, 0], pose.get("neck_turn", 0.0)),
         "head": rotation([1, 0, 0], pose.get("head_nod", 0.0) + p["neck_pitch"] * 0.9),
         "tail": rotation([0, 1, 0], pose.get("tail_swing", 0.0)) @ rotation([1, 0, 0], -pose.get("tail_lift", 0.0))}
    for i, leg in enumerate(("fl", "fr", "bl", "br")):
        R[f"{leg}_upper"] = rotation([1, 0, 0], -pose.get("legs", np.zeros(4))[i])
        sign = 1.0 if leg.startswith("f") else -1.0  # front knees bend backward, hocks forward
        R[f"{leg}_lower"] = rotation([1, 0, 0], sign * pose.get("knees", np.zeros(4))[i])
    return R


def pose_shape(tmpl: dict, species: str | dict = "dog", pose: dict | None = None) -> np.ndarray:
    """``(n, 3)`` vertices of the template as ``species`` (name or factor dict) in ``pose``."""
    skel, _ = _rest_layout()
    p = SPECIES[species] if isinstance(species, str) else species
    length, girth = _scales(p)
    M, heads = bone_transforms(skel, pose_rotations(p, pose or {}), length, girth)
    return skin(tmpl["vertices"], tmpl["weights"], skel, M, heads)


def random_pose(rng: np.random.Generator) -> dict:
    """A random gait-like pose (degrees); ranges keep the legs from crossing."""
    lo, hi = np.array([-10, -10, -25, -25]), np.array([25, 25, 10, 10])  # front legs swing forward, back ones back
    return {"legs": rng.uniform(lo, hi), "knees": rng.uniform(0, 35, 4), "neck_turn": rng.uniform(-30, 30),
            "head_nod": rng.uniform(-15, 20), "tail_swing": rng.uniform(-40, 40), "tail_lift": rng.uniform(-10, 30)}


def generate(species=("cat", "dog", "horse", "centaur"), n_poses: int = 5, seed: int = 0,
             progress: bool = False) -> dict:
    """``n_poses`` shapes per species (pose 0 = rest; individual proportions jittered ±6 %).

    Returns ``vertices (len(species)*n_poses, n, 3) float32``, ``faces``, ``parts (n,)``,
    ``landmarks (21,)``, ``species`` (name per shape), ``names``.
    """
    tmpl = template()
    species = tuple(species)

    def compute():
        rng = np.random.default_rng(seed)
        out = np.empty((len(species) * n_poses, len(tmpl["vertices"]), 3), dtype=np.float32)
        for s, sp in enumerate(tqdm(species, desc="quadrupeds", disable=not progress, leave=False)):
            for k in range(n_poses):
                p = {key: (val * rng.uniform(0.94, 1.06) if key != "neck_pitch" else val)
                     for key, val in SPECIES[sp].items()} if k else SPECIES[sp]
                out[s * n_poses + k] = pose_shape(tmpl, p, random_pose(rng) if k else None)
        return {"vertices": out}

    arrays = disk_cache("synthetic_quadrupeds", f"v{VERSION}",
                        {"species": species, "P": n_poses, "seed": seed, "n": len(tmpl["vertices"])}, compute)
    names = [f"{sp}{k}" for sp in species for k in range(n_poses)]
    return {"vertices": arrays["vertices"], "faces": tmpl["faces"], "parts": tmpl["parts"],
            "landmarks": tmpl["landmarks"], "species": [n.rstrip("0123456789") for n in names], "names": names}
