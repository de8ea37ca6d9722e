"""Loaders of the real datasets (see `registry` and data/README.md for layouts and licences).

Every loader first calls ``registry.get(name).require()``, so a missing dataset raises
`DatasetNotFoundError` naming the dataset, the path searched and the fix. Index conventions
are converted on reading: ``.vts`` files are 1-based, everything returned is 0-based.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ShapeIOError
from ..shape import Shape
from . import registry
from .items import Item, Pair, pair_from_rows, progress
from ..errors import require

FAUST_N = 6890
FAUST_TRAIN, FAUST_TEST = range(0, 80), range(80, 100)
TOSCA_CLASSES = ("cat", "dog", "horse", "centaur", "wolf")


def read_index_file(path, one_based: bool, n_max: int | None = None) -> np.ndarray:
    """``(k,) int`` 0-based indices from a text file with one index per line (first column).

    ``one_based``: subtract 1 (``.vts`` files, MATLAB). ``n_max``: check indices < n_max.
    Raises `ShapeIOError` naming the file on unreadable content or out-of-range indices.
    """
    path = Path(path)
    try:
        idx = np.loadtxt(path, dtype=np.int64, ndmin=2)[:, 0]
    except (OSError, ValueError) as exc:
        raise ShapeIOError(f"Could not read indices from {path} ({exc}). Is the file truncated?") from exc
    if one_based:
        if idx.size and idx.min() < 1:
            raise ShapeIOError(f"{path} should hold 1-based indices but contains {idx.min()}: is it 0-based?")
        idx = idx - 1
    if n_max is not None and idx.size and idx.max() >= n_max:
        raise ShapeIOError(f"{path}: index {idx.max()} out of range for {n_max} vertices.")
    return idx


def read_vts(path, n_vertices: int | None = None) -> np.ndarray:
    """A ``.vts`` correspondence file (1-based) as a ``(k,) int`` 0-based array."""
    return read_index_file(path, one_based=True, n_max=n_vertices)


# ----------------------------------------------------------------------------- FAUST


def faust_registrations(indices=None) -> list[Item]:
    """FAUST training registrations ``tr_reg_XXX`` (default all 100): items with
    ``template_index = arange(6890)`` (shared connectivity) and ``meta`` subject/pose."""
    root = registry.get("faust_registrations").require()
    indices = range(100) if indices is None else indices
    items = []
    for i in progress(indices, "FAUST registrations"):
        shape = Shape.read(root / f"tr_reg_{i:03d}.ply")
        items.append(Item(shape, template_index=np.arange(shape.n_vertices),
                          meta={"subject": i // 10, "pose": i % 10, "path": str(root / f"tr_reg_{i:03d}.ply")}))
    return items


def faust_remeshed_test(kind: str = "iso", indices=FAUST_TEST) -> list[Item]:
    """DiffusionNet's re-discretised FAUST test shapes (``kind`` in iso/qes/mc/dense/cloud):
    ``template_index (n,)`` from the ``.txt`` files (0-based template vertex per vertex/point)."""
    root = registry.get("faust_remeshed_test").require() / kind
    if not root.is_dir():
        raise ShapeIOError(f"{root} does not exist: kinds are iso, qes, mc, dense, cloud.")
    items = []
    for i in progress(indices, f"FAUST {kind}"):
        shape = Shape.read(root / f"tr_reg_{kind}_{i:03d}.ply", name=f"tr_reg_{i:03d}_{kind}")
        t = read_index_file(root / f"tr_reg_{kind}_{i:03d}.txt", one_based=False, n_max=FAUST_N)
        if len(t) != shape.n_vertices:
            raise ShapeIOError(f"{root}/tr_reg_{kind}_{i:03d}.txt has {len(t)} lines for {shape.n_vertices} vertices.")
        items.append(Item(shape, template_index=t, meta={"subject": i // 10, "pose": i % 10, "kind": kind}))
    return items


# ----------------------------------------------------------------------------- *_r datasets (Ren et al.)


def r_dataset(name: str = "faust_r", names=None) -> list[Item]:
    """Shapes of a Ren-et-al. remeshed dataset (``faust_r``, ``scape_r``, ``shrec19_r``).

    Each item's ``meta['corres']`` is the ``(k,) int`` 0-based vertex of each correspondence
    row (``corres/<name>.vts``; row r of any two shapes correspond) or None when absent;
    ``template_index`` maps vertices to the full-resolution template through
    ``corres/sampleID.vts`` when present (-1 on vertices hit by no row).
    """
    root = registry.get(name).require() / "vtx_5k"
    corres_dir = root / "corres"
    names = names if names is not None else sorted(p.stem for p in root.glob("*.off"))
    sample = corres_dir / "sampleID.vts"
    sample_id = read_vts(sample) if sample.exists() else None
    items = []
    for nm in progress(names, name):
        shape = Shape.read(root / f"{nm}.off", name=nm)
        vts = corres_dir / f"{nm}.vts"
        corres = read_vts(vts, shape.n_vertices) if vts.exists() else None
        t = None
        if corres is not None and sample_id is not None:
            t = -np.ones(shape.n_vertices, dtype=np.int64)
            t[corres[::-1]] = sample_id[::-1]
        items.append(Item(shape, template_index=t, meta={"corres": corres, "dataset": name}))
    return items


def r_test_pairs(name: str = "faust_r") -> list[tuple[str, str]]:
    """The evaluation pairs of ``<dataset>/test_pairs.txt`` as (name1, name2)."""
    path = registry.get(name).require() / "test_pairs.txt"
    return [tuple(line.split()[:2]) for line in path.read_text().splitlines() if line.strip()]


def r_pair(first: Item, second: Item) -> Pair:
    """Dense ground truth between two shapes of an *_r dataset from their ``.vts`` rows."""
    c1, c2 = first.meta["corres"], second.meta["corres"]
    return pair_from_rows(first, second, c1, c2, gt="vts rows")


def faust_r_segmentation(first: str, second: str, which: str, symmetric: bool = False) -> np.ndarray:
    """Per-vertex segment labels of shape ``which`` in the FAUST_r pair (first, second), read
    from ``segmentation.zip`` (``(n,) int``)."""
    import zipfile

    root = registry.get("faust_r").require() / "vtx_5k"
    member = f"segmentation/{first}_{second}.{which}.seg.{'sym' if symmetric else 'nonsym'}"
    with zipfile.ZipFile(root / "segmentation.zip") as z:
        return np.loadtxt(z.open(member), dtype=np.int64)


# ----------------------------------------------------------------------------- TOSCA


def tosca_r(classes=TOSCA_CLASSES) -> list[Item]:
    """TOSCA_r shapes of ``classes`` with ``meta['corres']`` (``.vts`` rows, within a class)
    and, when ``landmarks_hires`` is present, ``keypoints`` (21 shared landmarks, or 46 for
    the centaur) mapped from the hi-res meshes to the nearest remeshed vertex (same frame)."""
    root = registry.get("tosca_r").require()
    items = []
    for cls in classes:
        lm_pos, lm_names = tosca_hires_landmarks(cls)
        files = sorted(root.glob(f"{cls}*.off"), key=lambda p: int(p.stem[len(cls):] or 0))
        for path in progress(files, f"TOSCA {cls}"):
            if not path.stem[len(cls):].isdigit():
                continue
            shape = Shape.read(path)
            vts = root / "corres" / f"{path.stem}.vts"
            corres = read_vts(vts, shape.n_vertices) if vts.exists() else None
            kp = None
            if lm_pos is not None and path.stem == f"{cls}0":  # the hi-res landmarks belong to pose 0
                from scipy.spatial import cKDTree

                kp = cKDTree(shape.vertices).query(lm_pos)[1].astype(np.int64)
            items.append(Item(shape, keypoints=kp, keypoint_names=lm_names if kp is not None else None,
                              meta={"class": cls, "corres": corres}))
    return items


def tosca_hires_landmarks(cls: str):
    """``(L, 3)`` landmark positions on the hi-res ``<cls>0.off`` (from ``<cls>.pid``, 0-based
    first column) and their names (``<cls>.info``); ``(None, None)`` if absent."""
    root = registry.get("tosca_r").require() / "landmarks_hires"
    pid, mesh = root / f"{cls}.pid", root / f"{cls}0.off"
    if not (pid.exists() and mesh.exists()):
        return None, None
    hires = Shape.read(mesh)
    idx = read_index_file(pid, one_based=False, n_max=hires.n_vertices)
    info = root / f"{cls}.info"
    names = tuple(line.split(":", 1)[1].strip() for line in info.read_text().splitlines() if ":" in line) \
        if info.exists() else None
    return hires.vertices[idx], names


def tosca_cross_pair(first: Item, second: Item, n_shared: int = 21) -> Pair:
    """Cross-class TOSCA pair (cat↔dog, horse↔centaur): the ``n_shared`` common landmarks."""
    if first.keypoints is None or second.keypoints is None:
        raise ValueError("cross-class TOSCA pairs need the landmarks of pose 0 (landmarks_hires/).")
    lm = np.c_[first.keypoints[:n_shared], second.keypoints[:n_shared]]
    return Pair(first, second, landmarks=lm, meta={"gt": f"{n_shared} landmarks (nearest remeshed vertex)"})


def tosca_pyfm() -> Pair:
    """The pyFM cat/lion pair: shape 1 = cat, shape 2 = lion, ``p2p_21`` = ``lion2cat``
    (approximate but consistent with the 20 landmarks, ``landmarks (20, 2)`` = (cat, lion))."""
    root = registry.get("tosca_pyfm").require()
    cat, lion = Shape.read(root / "cat-00.off"), Shape.read(root / "lion-00.off")
    p2p = read_index_file(root / "lion2cat", one_based=False, n_max=cat.n_vertices)
    lm = np.loadtxt(root / "landmarks.txt", dtype=np.int64, ndmin=2) if (root / "landmarks.txt").exists() else None
    return Pair(Item(cat), Item(lion), p2p_21=p2p, exact=np.ones(lion.n_vertices, bool), landmarks=lm,
                meta={"gt": "lion2cat (approximate)"})


# ----------------------------------------------------------------------------- KeypointNet


def keypointnet_annotations(category: str = "chair") -> list[dict]:
    """KeypointNet annotations of ``category``: per model a dict ``class_id``, ``model_id``,
    ``semantic_id (K,) int``, ``xyz (K, 3)``, ``point_index (K,) int`` (into its 2,048-point
    .pcd), ``face_index (K,) int`` and ``face_uv (K, 3)`` (into its ShapeNet mesh)."""
    root = registry.get("keypointnet_sample").require()
    path = root / "annotations" / f"{category}.json"
    if not path.exists():
        raise ShapeIOError(f"{path} not found: KeypointNet category files are annotations/<category>.json.")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ShapeIOError(f"{path} is not valid JSON ({exc}); is it truncated? Re-download it.") from exc
    out = []
    for model in raw:
        kps = model["keypoints"]
        out.append({"class_id": model["class_id"], "model_id": model["model_id"],
                    "semantic_id": np.array([k["semantic_id"] for k in kps], dtype=np.int64),
                    "xyz": np.array([k["xyz"] for k in kps], dtype=np.float64).reshape(-1, 3),
                    "point_index": np.array([k["pcd_info"]["point_index"] for k in kps], dtype=np.int64),
                    "face_index": np.array([k["mesh_info"]["face_index"] for k in kps], dtype=np.int64),
                    "face_uv": np.array([k["mesh_info"]["face_uv"] for k in kps], dtype=np.float64).reshape(-1, 3)})
    return out


def keypointnet_splits() -> dict[str, set]:
    """``{'train'|'val'|'test': {'<class_id>-<model_id>', ...}}`` from ``splits/*.txt`` (empty if absent)."""
    root = registry.get("keypointnet_sample").require() / "splits"
    return {s: set((root / f"{s}.txt").read_text().split()) if (root / f"{s}.txt").exists() else set()
            for s in ("train", "val", "test")}


def read_pcd(path) -> np.ndarray:
    """``(n, 3) float`` points of an ASCII ``.pcd`` file (the fields x y z first)."""
    path = Path(path)
    lines = path.read_text().splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("DATA")) + 1
        n = int(next(line.split()[1] for line in lines if line.startswith("POINTS")))
        pts = np.array([line.split()[:3] for line in lines[start:start + n]], dtype=np.float64)
    except (StopIteration, ValueError) as exc:
        raise ShapeIOError(f"Could not parse {path} as an ASCII .pcd ({exc}).") from exc
    if pts.shape != (n, 3):
        raise ShapeIOError(f"{path} announces {n} points but holds {len(pts)}: truncated?")
    return pts


def keypointnet_items(category: str = "chair", split: str | None = None) -> list[Item]:
    """KeypointNet models of ``category`` whose point cloud (``pcds/``) is present, as items:
    the 2,048-point cloud with ``keypoints`` indexed by semantic id (-1 where a model lacks it)
    and ``meta['mesh_path']`` (ShapeNet mesh, when present; read it with `read_mesh`). ``split``
    filters by the split files."""
    root = registry.get("keypointnet_sample").require()
    ann = keypointnet_annotations(category)
    n_sem = 1 + max(int(a["semantic_id"].max()) for a in ann if len(a["semantic_id"]))
    keep = keypointnet_splits()[split] if split else None
    items = []
    for a in ann:
        key = f"{a['class_id']}-{a['model_id']}"
        pcd = root / "pcds" / a["class_id"] / f"{a['model_id']}.pcd"
        if not pcd.exists() or (keep is not None and key not in keep):
            continue
        kp = -np.ones(n_sem, dtype=np.int64)
        kp[a["semantic_id"]] = a["point_index"]
        folder = root / "models" / a["class_id"] / a["model_id"] / "models"
        mesh = next((folder / f"model_normalized.{ext}" for ext in ("ply", "obj")
                     if (folder / f"model_normalized.{ext}").exists()), folder / "missing")
        items.append(Item(Shape(read_pcd(pcd), None, name=a["model_id"][:8]), keypoints=kp,
                          meta={"annotation": a, "mesh_path": str(mesh) if mesh.exists() else None}))
    return items


def read_mesh(path) -> Shape:
    """Read a mesh with `Shape.read`; files whose extra attributes it rejects (ShapeNet's zero
    normals, textured OBJ) are re-read geometry-only with trimesh (vertices and faces kept
    in file order, so KeypointNet's ``face_index`` stays valid)."""
    from ..errors import ShapeError

    try:
        return Shape.read(path)
    except (ShapeError, ShapeIOError) as first:
        trimesh = require("trimesh")

        try:
            m = trimesh.load(path, force="mesh", process=False, maintain_order=True)
            return Shape(m.vertices, m.faces, name=Path(path).stem)
        except Exception as exc:  # noqa: BLE001 - report both failures
            raise ShapeIOError(f"Could not read {path}: {first}; trimesh: {exc}") from exc


# ----------------------------------------------------------------------------- ShapeNetPart, sequences


def shapenetpart(category: str = "cap", split: str | None = None) -> list[Item]:
    """ShapeNetPart clouds ``<category>_<split>_NN.npz``: point clouds with normals and
    ``parts (n,) int`` (global ShapeNetPart part ids). Zero normals in the files (a few points)
    are replaced by PCA normals (``meta['fixed_normals']`` counts them)."""
    root = registry.get("shapenetpart_cap").require()
    files = sorted(root.glob(f"{category}_{split or '*'}_*.npz"))
    items = []
    for f in progress(files, f"ShapeNetPart {category}"):
        with np.load(f) as z:
            pos, nrm, parts = z["pos"].astype(np.float64), z["normal"].astype(np.float64), z["part_label"]
        bad = ~(np.linalg.norm(nrm, axis=1) > 1e-12)
        if bad.any():
            nrm[bad] = Shape(pos).vertex_normals()[bad]
        items.append(Item(Shape(pos, None, normals=nrm, name=f.stem), parts=parts.astype(np.int64),
                          meta={"fixed_normals": int(bad.sum()), "path": str(f)}))
    return items


def deformation_sequence(sequence: str) -> list[Item]:
    """Frames ``deformation_sequences/<sequence>/*.obj`` (e.g. camel-gallop), which share one
    connectivity: items with ``template_index = arange(n)`` (frame i ↔ frame j vertex-wise)."""
    root = registry.get("deformation_sequences").require() / sequence
    files = sorted(root.glob("*.obj"))
    if not files:
        raise ShapeIOError(f"No .obj frames in {root}: unpack the sequence there (see data/README.md).")
    items = []
    for f in progress(files, sequence):
        s = Shape.read(f)
        if items and not np.array_equal(s.faces, items[0].shape.faces):
            raise ShapeIOError(f"{f} does not share the connectivity of {files[0]}: not a deformation sequence.")
        items.append(Item(s, template_index=np.arange(s.n_vertices), meta={"sequence": sequence}))
    return items
