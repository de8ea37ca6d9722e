"""ShapeNetPart part labels (Yi et al. 2016) for chairs: on six ShapeNetCore.v2 meshes and 100 clouds.

Two sources, one label convention (ShapeNetPart's global ids, :data:`PART_NAMES`):

* ``shapenet_chairs/part_labels/<model_id>.npz`` — labels transferred onto six of the
  ``v2_normalized`` chair meshes: ``vertex_label (n_vertices,)`` and ``face_label (n_faces,)``
  **in the OBJ's file order** (``v`` and ``f`` lines as :func:`shapelib.data.shapenet.read_obj`
  reads them, double-sided duplicates included), plus the alignment ``transform`` and the
  labelled ``source_points`` (see the folder's README).
* ``shapenetpart_chair/<model_id>.npz`` — 100 ShapeNetPart chair clouds with per-point labels,
  in ShapeNetPart's own (PDC-loader) frame, **not** ShapeNetCore's; no normals.

:func:`labelled_chair` reads a labelled mesh chair, cleans it (:func:`shapelib.data.shapenet.clean_mesh`
merges vertices, drops degenerate and duplicate triangles) and carries the labels through the
cleaning: a clean face keeps the label of the raw face it came from (``info['face_kept']``), a
clean vertex the majority label of the raw vertices merged into it (same position).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ShapeIOError
from ..shape import Shape
from . import registry, shapenet
from .items import Item

#: ShapeNetPart global part ids of the chair category
PART_NAMES = {12: "back", 13: "seat", 14: "leg", 15: "arm"}
PART_IDS = tuple(PART_NAMES)
LABEL_FOLDER = "part_labels"
_MESH_KEYS = ("vertex_label", "face_label", "transform", "source_points", "source_labels")


def _label_dir() -> Path:
    return registry.get("shapenet_chairs").require() / LABEL_FOLDER


def labelled_ids() -> list[str]:
    """Model ids of the v2 mesh chairs that carry part labels (sorted); ``[]`` when the folder is absent."""
    ds = registry.get("shapenet_chairs")
    if not ds.found():
        return []
    return sorted(p.stem for p in (ds.path() / LABEL_FOLDER).glob("*.npz"))


def read_mesh_labels(model_id: str) -> dict:
    """The raw arrays of ``part_labels/<model_id>.npz`` (labels in OBJ file order), checked:
    labels in :data:`PART_IDS`, ``transform`` 4×4, source points ``(m, 3)`` with one label each."""
    path = _label_dir() / f"{model_id}.npz"
    if not path.exists():
        have = labelled_ids()
        raise ShapeIOError(f"no part labels for chair {model_id} ({path} is missing); labelled chairs: "
                           f"{', '.join(have) or 'none'}. Check $SHAPELIB_DATA (python -m shapelib.data status).")
    with np.load(path) as z:
        missing = [k for k in _MESH_KEYS if k not in z.files]
        if missing:
            raise ShapeIOError(f"{path} lacks {missing}; it should hold {_MESH_KEYS} (see the folder's README).")
        out = {k: np.asarray(z[k]) for k in z.files}
    for k in ("vertex_label", "face_label", "source_labels"):
        bad = np.setdiff1d(np.unique(out[k]), PART_IDS)
        if out[k].ndim != 1 or len(bad):
            raise ShapeIOError(f"{path}: {k} must be a 1-D array of part ids {PART_IDS}, found {bad.tolist()} "
                               f"(shape {out[k].shape}); is the file damaged?")
    if out["transform"].shape != (4, 4) or out["source_points"].shape != (len(out["source_labels"]), 3):
        raise ShapeIOError(f"{path}: transform must be 4×4 and source_points (m, 3) with m = len(source_labels); "
                           f"got {out['transform'].shape} and {out['source_points'].shape}.")
    return out


def carry_labels(raw_vertices, raw_faces, vertex_label, face_label, clean: Shape, face_kept) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the raw OBJ (file order) → labels of its cleaned mesh (:func:`shapenet.clean_mesh`).

    Faces: ``face_label[face_kept]`` (each clean face is one raw face). Vertices: each clean
    vertex is a raw position (the cleaning merges identical positions); it gets the majority
    label of the raw vertices at that position (ties: the smallest id). Raises if the counts do
    not match the mesh (labels of another file) or a clean vertex has no raw vertex."""
    V = np.asarray(raw_vertices, dtype=np.float64)
    vl, fl = np.asarray(vertex_label), np.asarray(face_label)
    if len(vl) != len(V) or len(fl) != len(raw_faces):
        raise ShapeIOError(f"{clean.name}: {len(vl)} vertex / {len(fl)} face labels for a mesh read with {len(V)} "
                           f"vertices / {len(raw_faces)} faces: the labels belong to another file or reading order "
                           "(read the OBJ in file order with shapenet.read_obj).")
    face_kept = np.asarray(face_kept, dtype=np.int64)
    if len(face_kept) != clean.n_faces:
        raise ShapeIOError(f"{clean.name}: face_kept has {len(face_kept)} entries for {clean.n_faces} clean faces.")
    clean_fl = fl[face_kept]
    Vu, inv = np.unique(V, axis=0, return_inverse=True)
    inv = inv.ravel()
    k = len(PART_IDS)
    votes = np.zeros((len(Vu), k), dtype=np.int64)
    np.add.at(votes, (inv, np.searchsorted(PART_IDS, vl)), 1)
    # clean vertices are rows of Vu (exact positions): find each one's row
    cu = np.asarray(clean.vertices, dtype=np.float64)
    both, inv2 = np.unique(np.vstack([Vu, cu]), axis=0, return_inverse=True)
    if len(both) != len(Vu):
        raise ShapeIOError(f"{clean.name}: a cleaned vertex is not a vertex of the raw file; clean the mesh read "
                           "from this very file (shapenet.read_obj + clean_mesh) before carrying its labels.")
    row = inv2.ravel()[len(Vu):]
    clean_vl = np.asarray(PART_IDS)[votes[row].argmax(1)]
    return clean_vl, clean_fl


def labelled_chair(model_id: str) -> Item:
    """A labelled v2 chair, cleaned (:func:`shapenet.read_chair`) with its part labels carried through.

    Returns an `Item` with ``parts`` = clean vertex labels, ``part_names`` = the names of
    :data:`PART_IDS` (index = id − 12) and ``meta`` of :func:`shapenet.read_chair` plus
    ``face_parts (m_clean,)`` (ShapeNetPart ids), ``raw_counts`` (vertices, faces of the OBJ as read),
    ``source_points``/``source_labels`` (mesh frame) and ``has_arms``."""
    lab = read_mesh_labels(model_id)
    it = shapenet.read_chair(model_id, "v2_normalized")
    V, F = shapenet.read_obj(it.meta["path"])
    vl, fl = carry_labels(V, F, lab["vertex_label"], lab["face_label"], it.shape, it.meta["clean"]["face_kept"])
    it.parts = vl
    it.part_names = tuple(PART_NAMES[i] for i in PART_IDS)
    it.meta.update(face_parts=fl, raw_counts=(len(V), len(F)), source_points=lab["source_points"],
                   source_labels=lab["source_labels"], has_arms=bool((lab["source_labels"] == 15).any()))
    return it


def labelled_chairs(ids=None) -> list[Item]:
    """Every labelled v2 mesh chair (or those of ``ids``), as :func:`labelled_chair`."""
    return [labelled_chair(i) for i in (labelled_ids() if ids is None else ids)]


def cloud_ids() -> list[str]:
    """Model ids of the ShapeNetPart chair clouds (``shapenetpart_chair/``), sorted."""
    return sorted(p.stem for p in registry.get("shapenetpart_chair").require().glob("*.npz"))


def part_cloud(model_id: str) -> Item:
    """One ShapeNetPart chair cloud: an `Item` whose shape is the point cloud (no faces, no normals)
    in ShapeNetPart's PDC frame (x and z swapped, the new z negated, unit ball; see PROVENANCE.txt)
    and ``parts`` its per-point ids (12 back, 13 seat, 14 leg, 15 arm)."""
    path = registry.get("shapenetpart_chair").require() / f"{model_id}.npz"
    if not path.exists():
        raise ShapeIOError(f"no ShapeNetPart chair cloud {path}; `python -m shapelib.data status` shows the folder.")
    with np.load(path) as z:
        if "pos" not in z.files or "part_label" not in z.files:
            raise ShapeIOError(f"{path} must hold 'pos' (n, 3) and 'part_label' (n,); it has {z.files}.")
        pos, lab = np.asarray(z["pos"], dtype=np.float64), np.asarray(z["part_label"], dtype=np.int64)
    if pos.ndim != 2 or pos.shape[1] != 3 or lab.shape != (len(pos),):
        raise ShapeIOError(f"{path}: pos {pos.shape} and part_label {lab.shape} do not match ((n, 3) and (n,)).")
    bad = np.setdiff1d(np.unique(lab), PART_IDS)
    if len(bad):
        raise ShapeIOError(f"{path}: part ids {bad.tolist()} are not chair parts {PART_IDS}.")
    return Item(Shape(pos, None, name=model_id[:8]), parts=lab, part_names=tuple(PART_NAMES[i] for i in PART_IDS),
                meta={"model_id": model_id, "frame": "ShapeNetPart (PDC loader): not ShapeNetCore's", "path": str(path)})
