"""Real ShapeNet chairs (``shapenet_chairs/``): reading, cleaning, frame, armrest labels, keypoints.

Two folders, one convention on return:

* ``v2_normalized/03001627/<id>/models/model_normalized.obj`` — original ShapeNetCore.v2 meshes
  in the ``model_normalized`` frame (the frame of KeypointNet): **y up**, the backrest at
  **+z** (the chair faces −z), x left–right; the mean of the file's vertices at the origin; bounding-box diagonal 1.
* ``deep_cage/03001627/<id>.obj`` — chairs re-exported by the Neural Cages authors (PyMesh):
  bounding-box centred, diagonal 1, but **rotated** about y: ShapeNet's x is their z and ShapeNet's
  z is their −x (:data:`DEEP_CAGE_TO_V2`, found by fitting KeypointNet keypoints of the two
  annotated ids onto these meshes). :func:`read_chair` rotates them into the v2 axes, centres
  them at the mean of their vertices and scales the bounding-box diagonal to 1 — the
  ``model_normalized`` rule. The translation of a re-exported chair cannot be recovered
  exactly (PyMesh changed its vertex set), so keypoints are checked against them only up to
  that offset (``meta['frame']`` says which rule gave each chair's frame).

ShapeNet meshes are *triangle soups*: every triangle is stored twice with opposite orientations
(double-sided rendering), vertices are split by normals/texture coordinates, surfaces are open
and parts interpenetrate. :func:`clean_mesh` merges vertices by position, drops degenerate
triangles, keeps ONE copy of every triangle (the first in file order) and orients every
edge-connected patch consistently and outward (libigl ``bfs_orient`` + ``orient_outward``). Without the
de-duplication the generalised winding number of a point is ≈ 0 everywhere (the two copies
cancel); after it, ``|w| > ½`` gives inside/outside even on open meshes
(:func:`shapelib.implicit.inside`).

Armrests (``ARMRESTS``) were decided by looking at renders of every chair (front, side, 3/4 and
top views; notebook 00 shows them). On the five KeypointNet-annotated chairs the labels agree
with the keypoint semantics: ids 6–9 (arm ends, :data:`KEYPOINT_PARTS`) are annotated exactly on
the chairs with armrests. Keypoints identify *points* of parts, not per-point part labels.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import ShapeIOError
from ..shape import Shape
from . import registry
from .items import Item, progress
from ..cache import disk_cache
from .real import keypointnet_annotations

DATASET = "shapenet_chairs"
FOLDERS = ("v2_normalized", "deep_cage")
SYNSET = "03001627"

#: rotation taking deep_cage coordinates to ShapeNetCore.v2 model_normalized axes (x_v2 = R @ x_dc)
DEEP_CAGE_TO_V2 = np.array([[0.0, 0.0, 1.0],
                            [0.0, 1.0, 0.0],
                            [-1.0, 0.0, 0.0]])

#: model id -> True (armrests) / False (no armrests), decided from renders (front / side / top views)
ARMRESTS: dict[str, bool] = {
    # v2_normalized
    "341a2d3df9800314fa260f4362cac599": False,  # stacking chair, thin legs
    "341c9b0583d31770492d9da2668ec34c": True,   # office swivel chair, padded arms
    "341e18eafb46f892a6fee8e2140acec9": True,   # office chair (aluminium group), bar arms
    "341e24df542e0676d42b9650f19dd425": True,   # cantilever-looking frame chair, bar arms
    "341fcdd8a40a2612456cbf78e1e89022": True,   # sled-base armchair
    "353bbd3b916426d24502f857a1cf320e": True,   # swivel chair, folded wing arms
    "356fc758685e9054347185e772ead5bd": True,   # high-back armchair
    "357e2dd1512b96168e2b488ea5fa466a": False,  # bar stool with a back
    "360b02dcfeabe768492d9da2668ec34c": True,   # upholstered armchair, rolled arms
    "362f53ee8de161fac653c0205ce8ff57": True,   # Rietveld red-blue chair
    # deep_cage
    "10a1783f635b3fc181dff5c2e57ad46e": True,   # club armchair, box arms
    "1aa07508b731af79814e2be0234da26c": False,  # box-frame chair, slatted back
    "1f8e18d42ddded6a4b3c42e318f3affc": True,   # sofa armchair with cushions
    "200324d0bafb1c2e19fb4103277a6b93": True,   # three-seat bench, arms between seats
    "36843ea8984df5a63719086e0b4ab8be": False,  # upholstered dining chair
    "50afe00f341993ae7d63360731b4227a": True,   # rocking chair
    "6621723f7af35f2dcd344c2b2cefcda6": False,  # high-back chair with cut-outs
    "81276e5b6c8871634af957103f4767ac": False,  # bar stool (navy style)
    "8979c1aaa6675009bf80985a99195eb8": False,  # split-back chair
    "92373022868b812fe9aa238b4bc8322e": True,   # wooden slatted armchair
    "a09091780fcf3af2e9777a9dc292bbd2": True,   # office chair, loop arms
    "d4edd167061dac5f52a3901fa1436b1a": False,  # block chair
    "e6408c4be8e6502837a346dba83c013b": False,  # ladder-back chair
    "eaf231f17fccb96d81dff5c2e57ad46e": False,  # lounge swivel chair
    "fe6b3c001a86d844d5767a0de8dd037e": True,   # director's chair
    # keypointnet_sample/models
    "88382b877be91b2a572f8e1c1caad99e": False,  # four-legged side chair
}

#: the chairs annotated in KeypointNet whose mesh is in ``v2_normalized`` (keypoints rebuild to 1.6e-8)
KEYPOINT_CHAIRS = ("341a2d3df9800314fa260f4362cac599", "341c9b0583d31770492d9da2668ec34c",
                   "341e24df542e0676d42b9650f19dd425", "360b02dcfeabe768492d9da2668ec34c")


# ----------------------------------------------------------------------------- reading and cleaning


def read_obj(path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(n, 3)`` and triangles ``(m, 3)`` of an OBJ **exactly in file order** (``v`` and
    ``f`` lines; polygons fan-triangulated; texture/normal indices ignored), so KeypointNet's
    ``face_index`` stays valid. (trimesh and meshio regroup faces by material or split vertices
    by normal, which breaks ``face_index``.) Faces that repeat a vertex are kept here
    (:func:`clean_mesh` drops them)."""
    path = Path(path)
    if not path.exists():
        raise ShapeIOError(f"No such file: {path}. Check $SHAPELIB_DATA (python -m shapelib.data status).")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        vl = [ln.split()[1:4] for ln in lines if ln.startswith("v ")]
        V = np.array(vl, dtype=np.float64).reshape(-1, 3)
        fl = [ln.split()[1:] for ln in lines if ln.startswith("f ")]
        if all(len(t) == 3 for t in fl):  # triangles only: one vectorised conversion
            idx = np.array([t.split("/")[0] for tri in fl for t in tri], dtype=np.int64).reshape(-1, 3)
            F = np.where(idx > 0, idx - 1, len(V) + idx)
        else:  # polygons: fan-triangulate line by line (1-based; negative = relative to the end)
            F = []
            for tri in fl:
                i = [int(t.split("/")[0]) for t in tri]
                i = [k - 1 if k > 0 else len(V) + k for k in i]
                F += [(i[0], i[k], i[k + 1]) for k in range(1, len(i) - 1)]
            F = np.array(F, dtype=np.int64).reshape(-1, 3)
    except ValueError as exc:
        raise ShapeIOError(f"Could not parse {path} as OBJ ({exc}); is it truncated?") from exc
    if len(V) == 0 or len(F) == 0:
        raise ShapeIOError(f"{path} holds no triangles; is it a mesh?")
    if F.min() < 0 or F.max() >= len(V):
        raise ShapeIOError(f"{path}: a face refers to vertex {F.max() + 1} of {len(V)}; the file is truncated.")
    return V, F


def clean_mesh(vertices, faces, name: str = "") -> tuple[Shape, dict]:
    """Make a ShapeNet triangle soup usable for winding numbers and sampling.

    1. merge vertices with identical positions (ShapeNet splits them by normal / uv);
    2. drop triangles that repeat a vertex;
    3. keep one copy of each triangle — the first in file order — whatever the orientation of
       the other copies (double-sided faces come as (a, b, c) and (c, b, a));
    4. orient each orientable patch consistently and away from its centroid (libigl).

    Returns the cleaned `Shape` and ``info``: counts of faces in / degenerate / duplicate /
    flipped, and ``face_kept (m_clean,)`` the input face of each output face.
    """
    import igl

    V = np.asarray(vertices, dtype=np.float64)
    F = np.asarray(faces, dtype=np.int64)
    if F.ndim != 2 or F.shape[1] != 3 or (len(F) and (F.min() < 0 or F.max() >= len(V))):
        raise ShapeIOError(f"{name}: faces must be (m, 3) indices into {len(V)} vertices.")
    Vu, inv = np.unique(V, axis=0, return_inverse=True)
    F2 = inv.ravel()[F]
    ok = (F2[:, 0] != F2[:, 1]) & (F2[:, 1] != F2[:, 2]) & (F2[:, 0] != F2[:, 2])
    idx = np.flatnonzero(ok)
    _, first = np.unique(np.sort(F2[idx], axis=1), axis=0, return_index=True)
    keep = idx[np.sort(first)]  # first copy of every triangle, file order
    Fk = F2[keep]
    used = np.unique(Fk)
    remap = -np.ones(len(Vu), dtype=np.int64)
    remap[used] = np.arange(len(used))
    Vc, Fc = Vu[used], remap[Fk]
    Fb, C = igl.bfs_orient(Fc)  # one orientation within each edge-connected patch
    Fo, _ = igl.orient_outward(Vc, Fb, C.reshape(-1, 1))  # each patch: normals away from its centroid
    flipped = int(np.sum(np.any(Fo != Fc, axis=1)))
    info = {"faces_in": int(len(F)), "degenerate": int((~ok).sum()), "duplicates": int(ok.sum() - len(keep)),
            "faces_out": int(len(Fo)), "flipped": flipped, "vertices_in": int(len(V)), "vertices_out": int(len(Vc)),
            "face_kept": keep}
    return Shape(Vc, np.ascontiguousarray(Fo), name=name), info


_INFO_KEYS = ("faces_in", "degenerate", "duplicates", "faces_out", "flipped", "vertices_in", "vertices_out", "face_kept")


def read_clean(path, name: str = "") -> tuple[Shape, dict]:
    """:func:`read_obj` + :func:`clean_mesh`, cached on disk (`shapelib.cache`) under the sha256 of
    the file's bytes, so a changed file is re-cleaned."""
    path = Path(path)
    if not path.exists():
        raise ShapeIOError(f"No such file: {path}. Check $SHAPELIB_DATA (python -m shapelib.data status).")

    def compute():
        shape, info = clean_mesh(*read_obj(path), name=name)
        return {"vertices": shape.vertices, "faces": shape.faces, **{k: np.asarray(info[k]) for k in _INFO_KEYS}}

    a = disk_cache("shapenet_clean", hashlib.sha256(path.read_bytes()).hexdigest(), {"v": 1}, compute)
    info = {k: (int(a[k]) if np.ndim(a[k]) == 0 else np.asarray(a[k])) for k in _INFO_KEYS}
    return Shape(a["vertices"], a["faces"], name=name), info


def model_normalized(shape: Shape, rotation=None) -> Shape:
    """The ShapeNetCore.v2 ``model_normalized`` rule: rotate (``rotation``, default none), put the
    mean of the vertices at the origin and scale the bounding-box diagonal to 1."""
    V = shape.vertices if rotation is None else shape.vertices @ np.asarray(rotation).T
    V = V - V.mean(0)
    diag = float(np.linalg.norm(V.max(0) - V.min(0)))
    if not diag > 0:
        raise ShapeIOError(f"{shape.name}: degenerate bounding box, cannot normalise.")
    return shape.copy(vertices=V / diag)


# ----------------------------------------------------------------------------- the dataset


def chair_path(model_id: str, folder: str) -> Path:
    """The OBJ of ``model_id`` in ``folder`` (``'v2_normalized'`` or ``'deep_cage'``)."""
    root = registry.get(DATASET).require()
    if folder == "v2_normalized":
        return root / folder / SYNSET / model_id / "models" / "model_normalized.obj"
    if folder == "deep_cage":
        return root / folder / SYNSET / f"{model_id}.obj"
    raise ValueError(f"folder={folder!r}: choose one of {FOLDERS}.")


def chair_ids(folder: str = "all") -> list[tuple[str, str]]:
    """``[(folder, model_id), ...]`` of the chairs present, sorted (v2_normalized first)."""
    root = registry.get(DATASET).require()
    folders = FOLDERS if folder == "all" else (folder,)
    out = []
    for fo in folders:
        if fo not in FOLDERS:
            raise ValueError(f"folder={fo!r}: choose 'all' or one of {FOLDERS}.")
        base = root / fo / SYNSET
        if fo == "v2_normalized":
            ids = sorted(p.parent.parent.name for p in base.glob("*/models/model_normalized.obj"))
        else:
            ids = sorted(p.stem for p in base.glob("*.obj"))
        out += [(fo, i) for i in ids]
    return out


def read_chair(model_id: str, folder: str = "v2_normalized") -> Item:
    """One chair, cleaned (:func:`clean_mesh`) and in the ``model_normalized`` frame.

    ``meta``: ``model_id``, ``folder``, ``armrests`` (bool or None if not labelled), ``clean``
    (the counts of :func:`clean_mesh`), ``frame`` (how the frame was obtained), ``path``, and
    for KeypointNet-annotated v2 chairs ``keypoint_xyz (21, 3)`` (NaN where absent).
    """
    path = chair_path(model_id, folder)
    shape, info = read_clean(path, name=model_id[:8])
    if folder == "deep_cage":
        shape = model_normalized(shape, DEEP_CAGE_TO_V2)
        frame = "deep_cage rotated to v2 axes (y up, front +z), vertex mean at 0, bbox diagonal 1"
    else:
        frame = "ShapeNetCore.v2 model_normalized (as stored)"
    meta = {"model_id": model_id, "folder": folder, "armrests": ARMRESTS.get(model_id), "clean": info,
            "frame": frame, "path": str(path)}
    return Item(shape, meta=meta)


def chairs(folder: str = "all", ids=None, with_keypoints: bool = True) -> list[Item]:
    """The real ShapeNet chairs of ``folder`` (``'all'``, ``'v2_normalized'``, ``'deep_cage'``)
    or of ``ids`` (model ids), cleaned and in one frame (:func:`read_chair`). With
    ``with_keypoints`` and KeypointNet present, annotated v2 chairs get ``meta['keypoint_xyz']``."""
    pairs = chair_ids(folder)
    if ids is not None:
        want = list(ids)
        pairs = [p for p in pairs if p[1] in want]
        missing = set(want) - {p[1] for p in pairs}
        if missing:
            raise ShapeIOError(f"chairs {sorted(missing)} not found under {registry.get(DATASET).path()} ({folder}).")
    items = [read_chair(i, fo) for fo, i in progress(pairs, "ShapeNet chairs")]
    if with_keypoints and registry.get("keypointnet_sample").found():
        ann = {a["model_id"]: a for a in _annotations()}
        for it in items:
            a = ann.get(it.meta["model_id"])
            if a is not None and it.meta["folder"] == "v2_normalized":
                it.meta["keypoint_xyz"] = keypoint_xyz(a)
                it.meta["annotation"] = a
    return items


# ----------------------------------------------------------------------------- keypoints


def _annotations():
    return keypointnet_annotations("chair")


N_SEMANTIC = 21  # KeypointNet chair semantic ids 0..20
#: KeypointNet chair semantic ids by part, read off renders of annotated chairs: ids 6–9 occur on
#: 455/450 of the 999 chairs — exactly those with armrests here; 10–16 on the 77–94 swivel chairs
KEYPOINT_PARTS = {"seat / back": (0, 1, 2, 3, 4, 5), "armrests": (6, 7, 8, 9),
                  "swivel base": (10, 11, 12, 13, 14, 15, 16), "legs": (17, 18, 19, 20)}
SAMPLE_CHAIR = "88382b877be91b2a572f8e1c1caad99e"  # the chair whose mesh ships with keypointnet_sample


def annotated_chairs() -> list[Item]:
    """Every KeypointNet chair whose mesh is here, cleaned, with ``meta['keypoint_xyz']``
    ``(21, 3)`` (NaN = absent), ``meta['keypoint_check']`` (max distance between the annotated
    ``xyz`` and the keypoint rebuilt from ``face_index``/``face_uv`` on the raw mesh — the frame
    check) and ``armrests`` (visual label, or semantic ids 6–9 present when unlabelled).

    Needs ``keypointnet_sample``; the four v2_normalized chairs come from ``shapenet_chairs``
    when it is found (else only the sample chair is returned)."""
    kroot = registry.get("keypointnet_sample").require()
    ann = {a["model_id"]: a for a in _annotations()}
    paths = []
    if registry.get(DATASET).found():
        paths += [(i, chair_path(i, "v2_normalized"), "v2_normalized") for i in KEYPOINT_CHAIRS]
    for p in sorted((kroot / "models" / SYNSET).glob("*/models/model_normalized.obj")):
        paths.append((p.parent.parent.name, p, "keypointnet_sample"))
    items = []
    for mid, path, folder in paths:
        if mid not in ann:
            continue
        a = ann[mid]
        V, F = read_obj(path)
        check = float(np.abs(keypoints_from_faces(V, F, a["face_index"], a["face_uv"],
                                                  source=f"{path} (model {mid})") - a["xyz"]).max())
        shape, info = read_clean(path, name=mid[:8])
        xyz = keypoint_xyz(a)
        arms = ARMRESTS.get(mid, bool(np.isfinite(xyz[list(KEYPOINT_PARTS["armrests"])]).all(1).any()))
        items.append(Item(shape, meta={"model_id": mid, "folder": folder, "armrests": arms, "clean": info,
                                       "frame": "ShapeNetCore.v2 model_normalized (as stored)", "path": str(path),
                                       "keypoint_xyz": xyz, "keypoint_check": check, "annotation": a}))
    return items


def keypoint_xyz(annotation: dict, n_semantic: int = N_SEMANTIC) -> np.ndarray:
    """``(n_semantic, 3)`` keypoint positions by semantic id (NaN rows where absent) from a
    KeypointNet annotation (:func:`shapelib.data.real.keypointnet_annotations`)."""
    sem = np.asarray(annotation["semantic_id"])
    bad = np.flatnonzero((sem < 0) | (sem >= n_semantic))
    if len(bad):
        raise ShapeIOError(f"KeypointNet model {annotation.get('model_id', '?')}, keypoint #{bad[0]}: semantic_id "
                           f"{sem[bad[0]]} is outside 0..{n_semantic - 1} (pass n_semantic=..., or check the "
                           "annotation file).")
    out = np.full((n_semantic, 3), np.nan)
    out[sem] = annotation["xyz"]
    return out


def keypoints_from_faces(vertices, faces, face_index, face_uv, source: str = "") -> np.ndarray:
    """``(K, 3)`` points ``Σ_k face_uv[:, k] · V[F[face_index, k]]`` — KeypointNet's
    ``mesh_info`` rebuilt on the mesh it was annotated on (raw faces, file order). A
    ``face_index`` outside ``0..m-1`` raises `ShapeIOError` (naming ``source``, e.g. the mesh
    file and model): ``-1`` used to wrap to the last face."""
    face_index = np.asarray(face_index)
    m = len(faces)
    bad = np.flatnonzero((face_index < 0) | (face_index >= m))
    if len(bad):
        raise ShapeIOError(f"{source or 'keypoints_from_faces'}: keypoint #{bad[0]} has mesh_info.face_index "
                           f"{face_index[bad[0]]}, outside the mesh's {m} faces (0..{m - 1}; {len(bad)} such "
                           "keypoint(s)). The mesh is not the one annotated (re-exported or re-ordered faces?): "
                           "read the original model_normalized.obj in file order (read_obj).")
    F = np.asarray(faces)[face_index]
    return np.einsum("kj,kjd->kd", np.asarray(face_uv, dtype=np.float64), np.asarray(vertices)[F])


def keypoint_cloud(item: Item, n_points: int = 2048, seed: int = 0) -> Item:
    """A point cloud of ``n_points`` area-uniform surface samples of a chair whose ``meta`` holds
    ``keypoint_xyz``, with each present keypoint written over its nearest sample, so that
    ``keypoints (21,)`` index the cloud exactly (-1 = absent) — the input of
    `shapelib.cpnet.CorrespondenceSets.from_items`."""
    from scipy.spatial import cKDTree

    xyz = item.meta.get("keypoint_xyz")
    if xyz is None:
        raise ValueError(f"{item.name} carries no keypoint_xyz (only KeypointNet-annotated chairs do).")
    pts = item.shape.sample_surface(n_points, seed)[0].copy()
    have = np.flatnonzero(np.isfinite(xyz).all(1))
    kp = -np.ones(len(xyz), dtype=np.int64)
    tree = cKDTree(pts)
    taken = set()
    for j in have:  # nearest free sample (two keypoints never share a point)
        for i in tree.query(xyz[j], k=8)[1]:
            if int(i) not in taken:
                kp[j] = int(i)
                taken.add(int(i))
                break
    pts[kp[have]] = xyz[have]
    return Item(Shape(pts, None, name=item.name), keypoints=kp,
                meta={**{k: v for k, v in item.meta.items() if k != "clean"}, "n_points": n_points})


def balanced_ids(n: int | None = None, first=(), exclude=()) -> list[tuple[str, str]]:
    """``n`` chairs (default all) as ``(folder, model_id)``: the ids in ``first`` (model ids, in
    that order), then chairs with and without armrests alternately, smallest files first (fast
    to load) — a deterministic selection for small-scale runs. ``exclude``: model ids to skip."""
    pool = [p for p in chair_ids() if p[1] not in set(exclude)]
    chosen = [p for i in first for p in pool if p[1] == i]
    rest = sorted((p for p in pool if p not in chosen), key=lambda p: chair_path(p[1], p[0]).stat().st_size)
    arm = [p for p in rest if ARMRESTS.get(p[1])]
    no = [p for p in rest if not ARMRESTS.get(p[1])]
    while arm or no:
        want_arm = sum(ARMRESTS.get(i, False) for _, i in chosen) <= len(chosen) / 2
        src = arm if (want_arm and arm) or not no else no
        chosen.append(src.pop(0))
    return chosen[:n] if n is not None else chosen
