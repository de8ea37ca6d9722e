"""Synthetic humanoids: one watertight template, posed by linear-blend skinning (LBS).

The template is the smooth union (polynomial smooth-min of SDFs) of ellipsoids and tapered
capsules around a 16-bone skeleton in an A-pose, meshed by marching cubes and isotropically
remeshed (~3,500 vertices). Every subject × pose is the SAME mesh deformed by LBS, so
vertex i of one shape corresponds to vertex i of every other (exact ground truth, like the
FAUST registrations). Coordinates: metres, ``y`` up, ``z`` forward, ``+x`` = the subject's left.
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ...cache import disk_cache
from ...shape import Shape
from ._geometry import Primitive, SkeletonBuilder, bone_transforms, rotation, skin, skinned_template

VERSION = 3

#: body-part label names (index = label); LEFT and RIGHT are distinct labels
PART_NAMES = ("head", "torso", "left_upper_arm", "left_forearm", "left_hand", "right_upper_arm",
              "right_forearm", "right_hand", "left_thigh", "left_shin", "left_foot", "right_thigh",
              "right_shin", "right_foot")

BONES = ("pelvis", "spine", "neck", "head", "l_upperarm", "l_forearm", "l_hand", "r_upperarm",
         "r_forearm", "r_hand", "l_thigh", "l_shin", "l_foot", "r_thigh", "r_shin", "r_foot")
_BONE_PART = (1, 1, 0, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
_ARM_ABDUCTION = 35.0  # degrees from vertical, rest A-pose


def _rest_layout():
    """Skeleton joints and the primitives around each bone (rest A-pose)."""
    s, c = np.sin(np.radians(_ARM_ABDUCTION)), np.cos(np.radians(_ARM_ABDUCTION))
    hs, hc = np.sin(np.radians(6)), np.cos(np.radians(6))
    up = np.array([0.0, 1.0, 0.0])
    builder, prims = SkeletonBuilder(BONES), []
    bone = builder.bone

    b = bone("pelvis", None, [0, 0.95, 0], up)
    prims.append(Primitive("ellipsoid", (0, 0.98, 0), r=(0.16, 0.12, 0.11), part=b))
    b = bone("spine", "pelvis", [0, 1.10, 0], up)
    prims += [Primitive("ellipsoid", (0, 1.13, 0), r=(0.14, 0.13, 0.10), part=b),
              Primitive("ellipsoid", (0, 1.29, 0), r=(0.17, 0.15, 0.11), part=b)]
    b = bone("neck", "spine", [0, 1.42, 0], up)
    prims.append(Primitive("capsule", (0, 1.38, 0), (0, 1.55, 0), r=(0.055, 0.05), part=b))
    b = bone("head", "neck", [0, 1.53, 0], up)
    prims.append(Primitive("ellipsoid", (0, 1.64, 0.01), r=(0.085, 0.11, 0.10), part=b))
    for side, sx in (("l", 1.0), ("r", -1.0)):
        d = np.array([sx * s, -c, 0.0])
        shoulder = np.array([sx * 0.17, 1.40, 0.0])
        elbow, wrist = shoulder + 0.29 * d, shoulder + 0.55 * d
        b = bone(f"{side}_upperarm", "spine", shoulder, d)
        prims.append(Primitive("capsule", tuple(shoulder - 0.06 * d), tuple(elbow), r=(0.052, 0.04), part=b))
        b = bone(f"{side}_forearm", f"{side}_upperarm", elbow, d)
        prims.append(Primitive("capsule", tuple(elbow), tuple(wrist), r=(0.04, 0.03), part=b))
        b = bone(f"{side}_hand", f"{side}_forearm", wrist, d)
        prims.append(Primitive("ellipsoid", tuple(wrist + 0.065 * d), r=(0.05 * s + 0.02, 0.05 * c + 0.02, 0.022), part=b))
    for side, sx in (("l", 1.0), ("r", -1.0)):
        d = np.array([sx * hs, -hc, 0.0])
        hip = np.array([sx * 0.10, 0.93, 0.0])
        knee, ankle = hip + 0.43 * d, hip + 0.85 * d
        b = bone(f"{side}_thigh", "pelvis", hip, d)
        prims.append(Primitive("capsule", tuple(hip), tuple(knee), r=(0.075, 0.05), part=b))
        b = bone(f"{side}_shin", f"{side}_thigh", knee, d)
        prims.append(Primitive("capsule", tuple(knee), tuple(ankle), r=(0.05, 0.035), part=b))
        b = bone(f"{side}_foot", f"{side}_shin", ankle, [0, 0, 1.0])
        prims.append(Primitive("capsule", tuple(ankle + [0, -0.045, -0.04]), tuple(ankle + [0.0, -0.055, 0.15]),
                               r=(0.035, 0.03), part=b))
    skel = builder.skeleton()
    return skel, prims


def template(spacing: float = 0.011, edge: float = 0.024) -> dict:
    """The rest-pose template (cached): ``vertices (n,3)``, ``faces (m,3)``, ``bone (n,) int``
    (owning bone), ``weights (n, 16)`` LBS weights, ``parts (n,) int`` (see `PART_NAMES`)."""
    _, prims = _rest_layout()
    return skinned_template("humanoid", VERSION, prims, _BONE_PART, len(BONES), spacing, edge,
                            blend=0.03, smooth_iterations=40)


# ---------------------------------------------------------------------------- subjects and poses


def subject_params(rng: np.random.Generator) -> dict:
    """Random body proportions: height, limb lengths, girth (factors around 1)."""
    return {"height": rng.uniform(0.9, 1.1), "arm": rng.uniform(0.9, 1.1), "leg": rng.uniform(0.92, 1.08),
            "torso": rng.uniform(0.92, 1.08), "girth": rng.uniform(0.85, 1.2), "head": rng.uniform(0.92, 1.08)}


def _scales(p: dict) -> tuple[dict, dict]:
    length = {"spine": p["torso"], "pelvis": p["torso"], "head": p["head"], "neck": p["torso"]}
    girth = {"pelvis": p["girth"], "spine": p["girth"], "head": p["head"], "neck": p["girth"]}
    for side in "lr":
        for b in ("upperarm", "forearm", "hand"):
            length[f"{side}_{b}"], girth[f"{side}_{b}"] = p["arm"], p["girth"]
        for b in ("thigh", "shin"):
            length[f"{side}_{b}"], girth[f"{side}_{b}"] = p["leg"], p["girth"]
    return length, girth


#: the canonical poses (degrees; jittered per subject): name -> {joint action: angle}
POSES = (
    ("rest", {}),
    ("arms_up", {"l_raise": 50, "r_raise": 50, "l_fwd": 80, "r_fwd": 80}),
    ("elbows_bent", {"l_fwd": 20, "r_fwd": 20, "l_elbow": 90, "r_elbow": 90}),
    ("walk", {"l_hip": 30, "r_hip": -20, "r_knee": 40, "l_knee": 10, "l_fwd": -25, "r_fwd": 25, "r_elbow": 30}),
    ("crouch", {"l_hip": 55, "r_hip": 55, "l_knee": 80, "r_knee": 80, "l_fwd": 60, "r_fwd": 60, "bend": 15}),
    ("wave", {"l_raise": 45, "l_fwd": 35, "l_elbow": 90, "turn_head": 25}),
    ("kick", {"r_hip": 60, "r_knee": 20, "l_raise": 50, "r_raise": 50}),
    ("twist", {"twist": 35, "turn_head": -30, "l_raise": 30, "r_raise": 30, "r_elbow": 45}),
    ("bow", {"bend": 35, "nod": 20, "l_fwd": 30, "r_fwd": 30}),
    ("lunge", {"l_hip": 50, "l_knee": 60, "r_hip": -15, "r_knee": 10, "l_raise": 50, "r_raise": 50}),
)


def pose_rotations(actions: dict, yaw: float = 0.0) -> dict:
    """Local bone rotations from joint actions (degrees): ``{l,r}_raise`` (arm abduction),
    ``{l,r}_fwd`` (arm forward), ``{l,r}_elbow``, ``{l,r}_hip`` (flexion), ``{l,r}_knee``,
    ``bend``/``twist`` (spine), ``nod``/``turn_head``; ``yaw`` turns the whole body."""
    s, c = np.sin(np.radians(_ARM_ABDUCTION)), np.cos(np.radians(_ARM_ABDUCTION))
    g = actions.get
    R = {"pelvis": rotation([0, 1, 0], yaw),
         "spine": rotation([0, 1, 0], g("twist", 0)) @ rotation([1, 0, 0], g("bend", 0)),
         "head": rotation([0, 1, 0], g("turn_head", 0)) @ rotation([1, 0, 0], g("nod", 0))}
    for side, sx in (("l", 1.0), ("r", -1.0)):
        hinge = np.array([c, sx * s, 0.0])  # perpendicular to the rest arm, in the frontal plane
        R[f"{side}_upperarm"] = rotation([0, 0, 1], sx * g(f"{side}_raise", 0)) @ rotation(hinge, -g(f"{side}_fwd", 0))
        R[f"{side}_forearm"] = rotation(hinge, -g(f"{side}_elbow", 0))
        R[f"{side}_thigh"] = rotation([1, 0, 0], -g(f"{side}_hip", 0))
        R[f"{side}_shin"] = rotation([1, 0, 0], g(f"{side}_knee", 0))
    return R


def pose_shape(tmpl: dict, subject: dict | None = None, actions: dict | None = None, yaw: float = 0.0) -> np.ndarray:
    """``(n, 3)`` vertices of the template with body proportions ``subject`` (None: the
    template's) in pose ``actions`` (None: rest). Identity inputs give the rest template."""
    skel, _ = _rest_layout()
    length, girth = _scales(subject) if subject else ({}, {})
    M, heads = bone_transforms(skel, pose_rotations(actions or {}, yaw), length, girth)
    v = skin(tmpl["vertices"], tmpl["weights"], skel, M, heads)
    if subject:
        v = v * subject["height"]
    return v


def generate(n_subjects: int = 10, n_poses: int = 10, seed: int = 0, progress: bool = False) -> dict:
    """All ``n_subjects × n_poses`` shapes (cached on disk).

    Returns a dict: ``vertices (S*P, n, 3) float32`` (metres), ``faces (m, 3)``, ``parts (n,)``,
    ``subject (S*P,)``, ``pose (S*P,)`` (index into `POSES`, cycled), ``names``.
    Shape ``k = subject * n_poses + pose`` (the FAUST numbering).
    """
    tmpl = template()

    def compute():
        rng = np.random.default_rng(seed)
        out = np.empty((n_subjects * n_poses, len(tmpl["vertices"]), 3), dtype=np.float32)
        for s in tqdm(range(n_subjects), desc="humanoids", disable=not progress, leave=False):
            subject = subject_params(rng)
            for p in range(n_poses):
                _, actions = POSES[p % len(POSES)]
                jitter = 1.0 + (0.15 if p >= len(POSES) else 0.1) * rng.uniform(-1, 1, len(actions))
                posed = {k: a * j for (k, a), j in zip(actions.items(), jitter)}
                out[s * n_poses + p] = pose_shape(tmpl, subject, posed, yaw=rng.uniform(-15, 15))
        return {"vertices": out}

    params = {"S": n_subjects, "P": n_poses, "seed": seed, "tmpl": len(tmpl["vertices"])}
    arrays = disk_cache("synthetic_humanoids", f"v{VERSION}", params, compute)
    k = np.arange(n_subjects * n_poses)
    return {"vertices": arrays["vertices"], "faces": tmpl["faces"], "parts": tmpl["parts"],
            "subject": k // n_poses, "pose": k % n_poses,
            "names": [f"human_{s:02d}_{POSES[p % len(POSES)][0]}" for s, p in zip(k // n_poses, k % n_poses)]}


def shapes(n_subjects: int = 10, n_poses: int = 10, seed: int = 0) -> list[Shape]:
    """The family as a list of `Shape` (shared connectivity)."""
    g = generate(n_subjects, n_poses, seed)
    return [Shape(v, g["faces"], name=nm) for v, nm in zip(g["vertices"], g["names"])]
