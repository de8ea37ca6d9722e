"""KeypointNet in its official layout (You et al., CVPR 2020; the successor of CPNet's data).

Layout under ``$SHAPELIB_DATA/<dataset>/`` (``dataset`` = ``'keypointnet'`` by default;
``'keypointnet_sample'`` has the same layout with one cloud)::

    annotations/<category>.json          # per model: class_id, model_id, keypoints [{semantic_id,
                                         #   xyz, rgb, pcd_info.point_index, mesh_info.{face_index, face_uv}}]
    splits/{train,val,test}.txt          # lines '<class_id>-<model_id>' (all categories in one file)
    pcds/<class_id>/<model_id>.pcd       # ASCII PCD, 2,048 points, FIELDS 'x y z' or 'x y z rgb'

Each keypoint's ``pcd_info.point_index`` indexes the cloud in its original point order, so the
clouds are never re-sampled or re-ordered here. Splits are read by NAME from the split files
(never by sorted position). Any category whose annotation file is present can be loaded;
:func:`categories` lists them.

    from shapelib.data import keypointnet
    train = keypointnet.items("chair", "train")     # Items: shape = the cloud, keypoints (K,) by semantic id
    keypointnet.summary("chair")                     # counts per split of the clouds present
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ShapeIOError
from ..shape import Shape
from . import registry
from .items import Item
from .real import parse_keypointnet

# The 16 KeypointNet categories (ShapeNetCore synset ids), as in the official release.
CATEGORIES = {
    "airplane": "02691156", "bathtub": "02808440", "bed": "02818832", "bottle": "02876657", "cap": "02954340",
    "car": "02958343", "chair": "03001627", "guitar": "03467517", "helmet": "03513137", "knife": "03624134",
    "laptop": "03642806", "motorcycle": "03790512", "mug": "03797390", "skateboard": "04225987",
    "table": "04379243", "vessel": "04530566",
}
SPLITS = ("train", "val", "test")
_DATASETS = ("keypointnet", "keypointnet_sample")


def root(dataset: str = "keypointnet") -> Path:
    """The dataset folder (``DatasetNotFoundError`` naming the path and the fix when absent)."""
    if dataset not in _DATASETS:
        raise ValueError(f"dataset must be one of {_DATASETS}, got {dataset!r}.")
    return registry.get(dataset).require()


def class_id(category: str) -> str:
    """The ShapeNet synset id of a KeypointNet category name (``'chair'`` → ``'03001627'``)."""
    if category in CATEGORIES.values():
        return category
    try:
        return CATEGORIES[category]
    except KeyError:
        raise ValueError(f"unknown KeypointNet category {category!r}; choose one of {sorted(CATEGORIES)}.") from None


def categories(dataset: str = "keypointnet") -> list[str]:
    """The categories whose annotation file is present (``annotations/<category>.json``)."""
    folder = root(dataset) / "annotations"
    return sorted(p.stem for p in folder.glob("*.json") if p.stem in CATEGORIES)


def annotations(category: str = "chair", dataset: str = "keypointnet") -> list[dict]:
    """Per annotated model of ``category``: ``class_id``, ``model_id``, ``semantic_id (K,) int``,
    ``xyz (K, 3)``, ``point_index (K,) int`` (into its .pcd), ``face_index (K,) int`` and
    ``face_uv (K, 3)`` (into its ShapeNet mesh). Raises `ShapeIOError` naming the file on a
    missing/invalid file or a keypoint without its fields."""
    class_id(category)  # a clear error for an unknown name
    name = next(k for k, v in CATEGORIES.items() if v == class_id(category))
    path = root(dataset) / "annotations" / f"{name}.json"
    if not path.exists():
        raise ShapeIOError(f"{path} not found: this copy of KeypointNet holds annotations for "
                           f"{categories(dataset) or 'no category'}.")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ShapeIOError(f"{path} is not valid JSON ({exc}); is it truncated? Re-download it.") from exc
    # validated: a negative semantic_id / point_index / face_index (which numpy would wrap to the last
    # entry), a missing field, a repeated semantic id or a JSON object instead of a list raise
    # ShapeIOError naming the file, the model and the keypoint (issue #36)
    return parse_keypointnet(raw, path)


def splits(dataset: str = "keypointnet") -> dict[str, set]:
    """``{'train'|'val'|'test': {'<class_id>-<model_id>', ...}}`` from ``splits/<split>.txt``.
    Raises `ShapeIOError` when a split file is missing (a split is never guessed)."""
    folder = root(dataset) / "splits"
    out = {}
    for s in SPLITS:
        path = folder / f"{s}.txt"
        if not path.exists():
            raise ShapeIOError(f"{path} not found: KeypointNet's official split files are splits/{{train,val,test}}.txt.")
        out[s] = set(path.read_text().split())
    return out


def read_pcd(path) -> tuple[np.ndarray, np.ndarray | None]:
    """An ASCII ``.pcd``: ``(points (n, 3) float64, rgb (n, 3) uint8 or None)``.

    The header's ``FIELDS`` decide the columns (``x y z`` first; ``rgb`` — PCL's packed
    ``0xRRGGBB`` integer — when present). Raises `ShapeIOError` naming the file when the header
    is not ASCII PCD, lacks x y z, or the body holds another number of points or columns."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ShapeIOError(f"Could not read {path} as an ASCII .pcd ({exc}).") from exc
    header = {}
    start = None
    for i, line in enumerate(lines[:30]):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        header[parts[0].upper()] = parts[1:]
        if parts[0].upper() == "DATA":
            start = i + 1
            break
    if start is None or header.get("DATA", [""])[0].lower() != "ascii":
        raise ShapeIOError(f"{path}: not an ASCII .pcd (no 'DATA ascii' line in its header).")
    fields = [f.lower() for f in header.get("FIELDS", [])]
    if fields[:3] != ["x", "y", "z"]:
        raise ShapeIOError(f"{path}: FIELDS must start with 'x y z', got {fields}.")
    try:
        n = int(header["POINTS"][0])
        body = np.array([ln.split() for ln in lines[start:start + n] if ln.strip()], dtype=np.float64)
    except (KeyError, IndexError, ValueError) as exc:
        raise ShapeIOError(f"Could not parse {path} as an ASCII .pcd ({exc!r}).") from exc
    if body.shape != (n, len(fields)):
        raise ShapeIOError(f"{path}: header announces {n} points with fields {fields}, body holds "
                           f"{body.shape[0]} rows of {body.shape[1] if body.ndim == 2 else '?'} values: truncated?")
    pts = body[:, :3]
    if not np.isfinite(pts).all():
        raise ShapeIOError(f"{path}: non-finite coordinates.")
    rgb = None
    if "rgb" in fields:
        c = body[:, fields.index("rgb")].astype(np.int64)
        rgb = np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255], -1).astype(np.uint8)
    return pts, rgb


def _pcd_path(base: Path, cid: str, model_id: str) -> Path:
    return base / "pcds" / cid / f"{model_id}.pcd"


def split_of(dataset: str = "keypointnet") -> dict[str, str]:
    """``{'<class_id>-<model_id>': split}`` (each model in exactly one split file)."""
    out = {}
    for s, names in splits(dataset).items():
        for key in names:
            if key in out and out[key] != s:
                raise ShapeIOError(f"{key} is listed in both splits/{out[key]}.txt and splits/{s}.txt.")
            out[key] = s
    return out


def items(category: str = "chair", split: str | None = None, dataset: str = "keypointnet",
          model_ids=None) -> list[Item]:
    """The annotated models of ``category`` whose cloud is present, as items (annotation-file order).

    ``split``: ``'train'``/``'val'``/``'test'`` (by name, from the split files) or None (all).
    ``model_ids``: keep only these (any order; a missing one raises). Each item: ``shape`` = the
    2,048-point cloud as stored (KeypointNet's frame), ``name`` = model id, ``keypoints (K,) int``
    indexed by semantic id (``-1`` where the model lacks it; ``K`` = 1 + the largest semantic id of
    the category), ``meta``: ``class_id``, ``model_id``, ``split``, ``rgb`` (``(n, 3) uint8`` or
    None), ``annotation``, ``pcd_path``. Keypoint indices are checked against the cloud.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}.")
    base = root(dataset)
    cid = class_id(category)
    ann = annotations(category, dataset)
    n_sem = 1 + max((int(a["semantic_id"].max()) for a in ann if len(a["semantic_id"])), default=-1)
    where = split_of(dataset)
    wanted = None if model_ids is None else [str(m) for m in model_ids]
    by_id = {a["model_id"]: a for a in ann}
    if wanted is not None:
        unknown = [m for m in wanted if m not in by_id]
        if unknown:
            raise KeyError(f"{len(unknown)} model id(s) are not annotated in {category}.json: {unknown[:3]}.")
    out = []
    for a in ([by_id[m] for m in wanted] if wanted is not None else ann):
        key = f"{a['class_id']}-{a['model_id']}"
        s = where.get(key)
        if split is not None and s != split:
            continue
        pcd = _pcd_path(base, a["class_id"], a["model_id"])
        if not pcd.exists():
            if wanted is not None:
                raise ShapeIOError(f"{pcd} not found (model {a['model_id']} was asked for by id).")
            continue
        pts, rgb = read_pcd(pcd)
        pi = a["point_index"]
        if len(pi) and (pi.min() < 0 or pi.max() >= len(pts)):
            raise ShapeIOError(f"{pcd}: a keypoint's pcd_info.point_index ({pi.min()}..{pi.max()}) is outside "
                               f"its {len(pts)} points: the cloud is not the one annotated.")
        kp = -np.ones(n_sem, dtype=np.int64)
        kp[a["semantic_id"]] = pi
        out.append(Item(Shape(pts, None, name=a["model_id"]), keypoints=kp,
                        meta={"class_id": a["class_id"], "model_id": a["model_id"], "split": s, "rgb": rgb,
                              "annotation": a, "pcd_path": str(pcd), "dataset": dataset}))
    return out


def summary(category: str = "chair", dataset: str = "keypointnet") -> dict:
    """Counts of the clouds present per split (``None``: in no split file), the number of
    annotated models and of semantic ids, and how many clouds carry rgb."""
    base = root(dataset)
    cid = class_id(category)
    ann = annotations(category, dataset)
    where = split_of(dataset)
    counts = {s: 0 for s in (*SPLITS, None)}
    with_rgb = 0
    for a in ann:
        pcd = _pcd_path(base, cid, a["model_id"])
        if pcd.exists():
            counts[where.get(f"{cid}-{a['model_id']}")] += 1
            with open(pcd) as f:
                head = "".join(next(f) for _ in range(3))
            with_rgb += "rgb" in head.lower()
    return {"category": category, "annotated": len(ann), "clouds": sum(counts.values()),
            "per_split": {str(k): v for k, v in counts.items()},
            "semantic_ids": 1 + max((int(a["semantic_id"].max()) for a in ann if len(a["semantic_id"])), default=-1),
            "with_rgb": with_rgb}
