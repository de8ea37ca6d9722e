"""Loaders of the real datasets (see `registry` and data/README.md for layouts and licences).

Every loader first calls ``registry.get(name).require()``, so a missing dataset raises
`DatasetNotFoundError` naming the dataset, the path searched and the fix. Index conventions
are converted on reading: ``.vts`` files are 1-based, everything returned is 0-based.
"""
from __future__ import annotations

import json
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ShapeError, ShapeIOError
from ..shape import Shape
from . import registry
from .items import Item, Pair, pair_from_rows, progress
from ..errors import require

FAUST_N = 6890
FAUST_TRAIN, FAUST_TEST = range(0, 80), range(80, 100)
TOSCA_CLASSES = ("cat", "dog", "horse", "centaur", "wolf")


def existing_file(path, what: str = "file") -> Path:
    """``path`` as a Path, or `ShapeIOError` when it is missing or is a folder (a dataset file
    replaced by a directory used to raise a bare IsADirectoryError)."""
    path = Path(path)
    if path.is_dir():
        raise ShapeIOError(f"{path} is a folder, but a {what} is expected there. Move the folder away and "
                           "restore the file (re-download the dataset; `python -m shapelib.data status`).")
    if not path.is_file():
        raise ShapeIOError(f"{path} not found (a {what}). Restore it: re-download the dataset "
                           "(`python -m shapelib.data fetch NAME` says how) or check $SHAPELIB_DATA.")
    return path


def _line_numbers(path: Path) -> list[int]:
    """1-based line number of each data row of a text file (blank and ``#`` lines skipped, as np.loadtxt)."""
    return [no for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if line.split("#", 1)[0].strip()]


def read_index_table(path, one_based: bool, n_max=None, n_columns: int = 1) -> np.ndarray:
    """``(k, n_columns) int`` 0-based indices from a text file, one row per line (the first
    ``n_columns`` columns; more columns are ignored).

    ``one_based``: the file holds 1-based indices (``.vts``, MATLAB): each must be ≥ 1 and 1 is
    subtracted. Otherwise each must be ≥ 0: ``-1`` is refused (numpy would read it as the LAST
    vertex). ``n_max``: an int, or one per column: indices (0-based) must be < n_max. Raises
    `ShapeIOError` naming the file, the line and the value on a missing/folder/empty file,
    unparsable content or an out-of-range index.
    """
    path = existing_file(path, "text file of vertex indices")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's "input contained no data": refused just below
            rows = np.loadtxt(path, dtype=np.int64, ndmin=2, comments="#")
    except (OSError, ValueError) as exc:
        raise ShapeIOError(f"Could not read integer indices from {path} ({exc}). Is the file truncated or "
                           "not an index file? Re-download it.") from exc
    if rows.size == 0:
        raise ShapeIOError(f"{path} holds no indices (empty file): the download or copy did not complete. "
                           "Re-download it.")
    if rows.shape[1] < n_columns:
        raise ShapeIOError(f"{path} has {rows.shape[1]} column(s) per line, expected at least {n_columns}.")
    rows = rows[:, :n_columns]
    lo = 1 if one_based else 0
    limits = [None] * n_columns if n_max is None else \
        ([int(n_max)] * n_columns if np.ndim(n_max) == 0 else [None if m is None else int(m) for m in n_max])
    for c in range(n_columns):
        col = rows[:, c]
        bad = np.flatnonzero((col < lo) | ((col - lo >= limits[c]) if limits[c] is not None else False))
        if len(bad):
            r = int(bad[0])
            line = _line_numbers(path)[r]
            val = int(col[r])
            where = f"{path}, line {line}{f', column {c + 1}' if n_columns > 1 else ''}"
            if val < lo:
                hint = (f"the file should hold 1-based indices (≥ 1) but contains {val}: is it 0-based?" if one_based
                        else f"index {val} is negative, but the file holds 0-based indices (≥ 0); a negative "
                             "index would silently pick a vertex counted from the end.")
            else:
                hint = (f"index {val} is out of range for {limits[c]} vertices (valid: {lo}–{limits[c] - 1 + lo}"
                        f"{', 1-based' if one_based else ''}): the file belongs to another mesh, or is damaged.")
            raise ShapeIOError(f"{where}: {hint} ({len(bad)} such line(s).) Fix or re-download the file.")
    return rows - 1 if one_based else rows


def read_index_file(path, one_based: bool, n_max: int | None = None) -> np.ndarray:
    """``(k,) int`` 0-based indices from a text file with one index per line (first column).

    ``one_based``: subtract 1 (``.vts`` files, MATLAB). ``n_max``: check indices < n_max.
    Raises `ShapeIOError` naming the file and the line on unreadable content, an empty file, a
    negative index in a 0-based file (``-1`` is refused, never read as the last vertex) or an
    out-of-range index (:func:`read_index_table`).
    """
    return read_index_table(path, one_based, n_max, 1)[:, 0]


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


def _off_names(root: Path) -> list[str]:
    """Stems of the ``*.off`` files in ``root`` (a ``*.off`` that is a folder raises `ShapeIOError`)."""
    names = []
    for p in sorted(root.glob("*.off")):
        existing_file(p, "mesh file")
        names.append(p.stem)
    return names


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# The splits of the remeshed benchmarks, BY NAME (never "the first 80 sorted files": one stray backup
# copy in the folder would move a training shape into the test set).
#   FAUST_r: tr_reg_000–079 train (8 subjects), tr_reg_080–099 test (two unseen subjects).
#   SCAPE_r: 71 poses of one person, the first 51 train, the last 20 test (as GeomFmaps, DUO-FMNet,
#   ULRSSM). Copies are numbered mesh000–mesh070, or with the original SCAPE numbering mesh000–mesh071
#   without mesh051; both are accepted, train = mesh000–mesh050 either way.
#   SHREC'19_r: a test-only benchmark (no training shapes); every shape present is a test shape.
def _expected_r_splits(dataset: str) -> list[tuple[list[str], list[str]]]:
    if dataset == "faust_r":
        names = [f"tr_reg_{i:03d}" for i in range(100)]
        return [(names[:80], names[80:])]
    if dataset == "scape_r":
        renumbered = [f"mesh{i:03d}" for i in range(71)]
        original = [f"mesh{i:03d}" for i in range(72) if i != 51]
        return [(renumbered[:51], renumbered[51:]), (original[:51], original[51:])]
    raise ValueError(f"no split by name is defined for {dataset!r}; datasets: faust_r, scape_r, shrec19_r.")


def r_split(dataset: str = "faust_r") -> tuple[list[str], list[str]]:
    """``(train_names, test_names)`` of a remeshed benchmark, chosen by NAME and validated.

    FAUST_r: train ``tr_reg_000``–``079``, test ``tr_reg_080``–``099``. SCAPE_r: train
    ``mesh000``–``mesh050`` (51), test the last 20 (``mesh051``–``070``, or ``mesh052``–``071`` in the
    original SCAPE numbering). SHREC'19_r: no training shapes, every shape is a test shape.

    The ``vtx_5k/*.off`` files must be exactly the dataset's shapes: a stray file (e.g. a backup
    copy ``tr_reg_079 (1).off``) or a missing one raises `ShapeIOError` naming each stray and
    missing file and the fix, instead of silently moving shapes between train and test.
    """
    root = registry.get(dataset).require() / "vtx_5k"
    present = _off_names(root)
    if dataset == "shrec19_r":
        return [], sorted(present, key=_natural_key)
    options = _expected_r_splits(dataset)
    have = set(present)

    def diff(option):
        expected = set(option[0]) | set(option[1])
        return sorted(have - expected), sorted(expected - have)

    train, test = min(options, key=lambda o: sum(map(len, diff(o))))
    stray, missing = diff((train, test))
    if stray or missing:
        problems = []
        if stray:
            problems.append(f"{len(stray)} unexpected file(s) {[s + '.off' for s in stray[:10]]} (a backup copy or "
                            "another dataset's shape? move them out of the folder)")
        if missing:
            problems.append(f"{len(missing)} missing file(s) {[s + '.off' for s in missing[:10]]} (restore them: "
                            "re-download the dataset)")
        raise ShapeIOError(
            f"{root} does not hold exactly the {len(train) + len(test)} shapes of {dataset}: "
            f"{'; '.join(problems)}. The split is by name (train {train[0]}–{train[-1]}, test {test[0]}–{test[-1]}), "
            "so the folder must hold exactly those .off files.")
    return list(train), list(test)


def r_dataset(name: str = "faust_r", names=None) -> list[Item]:
    """Shapes of a Ren-et-al. remeshed dataset (``faust_r``, ``scape_r``, ``shrec19_r``).

    ``names``: the shapes to load (default: every ``vtx_5k/*.off``; for a split use
    :func:`r_split`). Each item's ``meta['corres']`` is the ``(k,) int`` 0-based vertex of each
    correspondence row (``corres/<name>.vts``; row r of any two shapes correspond) — required for
    datasets that ship ``corres/`` (a missing file raises), None for SHREC'19_r without it;
    ``template_index`` maps vertices to the full-resolution template through
    ``corres/sampleID.vts`` when present (-1 on vertices hit by no row). Row counts are checked
    against ``sampleID.vts``: a ``.vts`` with a line too many or too few raises `ShapeIOError`.
    """
    info = registry.get(name)
    root = info.require() / "vtx_5k"
    corres_dir = root / "corres"
    needs_corres = any(r.rstrip("/") == "vtx_5k/corres" for r in info.required)
    names = names if names is not None else _off_names(root)
    sample = corres_dir / "sampleID.vts"
    sample_id = read_vts(sample, FAUST_N if name == "faust_r" else None) \
        if sample.exists() else None
    items = []
    for nm in progress(names, name):
        shape = Shape.read(existing_file(root / f"{nm}.off", "mesh file"), name=nm)
        vts = corres_dir / f"{nm}.vts"
        if vts.exists():
            corres = read_vts(vts, shape.n_vertices)
        elif needs_corres:
            raise ShapeIOError(f"{vts} not found: every shape of {name} needs its correspondence rows (its "
                               "ground truth). Restore the file (re-download the dataset).")
        else:
            corres = None
        t = None
        if corres is not None and sample_id is not None:
            if len(corres) != len(sample_id):
                raise ShapeIOError(
                    f"{vts} has {len(corres)} rows but {sample} has {len(sample_id)}: row r of every .vts file "
                    "names the same body point, so all must have the same number of lines. One of them is "
                    "truncated or has a line too many: re-download them.")
            t = -np.ones(shape.n_vertices, dtype=np.int64)
            t[corres[::-1]] = sample_id[::-1]
        items.append(Item(shape, template_index=t,
                          meta={"corres": corres, "corres_path": str(vts) if corres is not None else None,
                                "dataset": name}))
    return items


def r_test_pairs(name: str = "faust_r") -> list[tuple[str, str]]:
    """The evaluation pairs of ``<dataset>/test_pairs.txt`` as (name1, name2)."""
    path = existing_file(registry.get(name).require() / "test_pairs.txt", "list of test pairs")
    pairs = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            if len(line.split()) < 2:
                raise ShapeIOError(f"{path}, line {no}: expected two shape names, got {line.strip()!r}.")
            pairs.append(tuple(line.split()[:2]))
    return pairs


def r_pair(first: Item, second: Item) -> Pair:
    """Dense ground truth between two shapes of an *_r dataset from their ``.vts`` rows (raises
    `ShapeIOError` when a shape has no rows or the two files hold different numbers of rows)."""
    c1, c2 = first.meta.get("corres"), second.meta.get("corres")
    for it, c in ((first, c1), (second, c2)):
        if c is None:
            raise ShapeIOError(f"{it.name} has no correspondence rows (no corres/{it.name}.vts was found when "
                               "it was loaded), so the pair has no dense ground truth.")
    if len(c1) != len(c2):
        raise ShapeIOError(
            f"{first.meta.get('corres_path') or first.name} has {len(c1)} rows but "
            f"{second.meta.get('corres_path') or second.name} has {len(c2)}: row r of both must name the same "
            "point, so one file is truncated or has a line too many. Re-download them.")
    return pair_from_rows(first, second, c1, c2, gt="vts rows")


def faust_r_segmentation(first: str, second: str, which: str, symmetric: bool = False) -> np.ndarray:
    """Per-vertex segment labels of shape ``which`` in the FAUST_r pair (first, second), read
    from ``segmentation.zip`` (``(n,) int``)."""
    root = registry.get("faust_r").require() / "vtx_5k"
    member = f"segmentation/{first}_{second}.{which}.seg.{'sym' if symmetric else 'nonsym'}"
    with zipfile.ZipFile(existing_file(root / "segmentation.zip", "zip archive")) as z:
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
        found = list(root.glob(f"{cls}*.off"))
        other = sorted(p.name for p in found if not p.stem[len(cls):].isdigit())
        if other:  # a backup copy 'cat0 (1).off' used to crash the sort with a bare ValueError
            warnings.warn(f"tosca_r: ignoring {other} in {root}: shapes are named <class><number>.off.")
        files = sorted((p for p in found if p.stem[len(cls):].isdigit()), key=lambda p: int(p.stem[len(cls):]))
        for path in progress(files, f"TOSCA {cls}"):
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
    names = tuple(line.split(":", 1)[1].strip() for line in existing_file(info, "landmark names file").read_text()
                  .splitlines() if ":" in line) if info.exists() else None
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
    if len(p2p) != lion.n_vertices:
        raise ShapeIOError(f"{root / 'lion2cat'} has {len(p2p)} lines but lion-00.off has {lion.n_vertices} vertices "
                           "(one line per lion vertex): the file is truncated or damaged. Re-download it "
                           "(python -m shapelib.data fetch tosca_pyfm).")
    lm = read_index_table(root / "landmarks.txt", one_based=False, n_max=(cat.n_vertices, lion.n_vertices),
                          n_columns=2) if (root / "landmarks.txt").exists() else None
    return Pair(Item(cat), Item(lion), p2p_21=p2p, exact=np.ones(lion.n_vertices, bool), landmarks=lm,
                meta={"gt": "lion2cat (approximate)"})


# ----------------------------------------------------------------------------- KeypointNet


def parse_keypointnet(raw, path="<annotations>") -> list[dict]:
    """Validate KeypointNet annotations (the parsed JSON of ``annotations/<category>.json``) and
    return per model a dict ``class_id``, ``model_id``, ``semantic_id (K,) int``, ``xyz (K, 3)``,
    ``point_index (K,) int``, ``face_index (K,) int``, ``face_uv (K, 3)``.

    Raises `ShapeIOError` naming the file, the model (# and id) and the keypoint (#) when the file
    is not a list of models, a model or keypoint lacks a field (``mesh_info``, ``pcd_info``...), an
    index (``semantic_id``, ``point_index``, ``face_index``) is not an integer ≥ 0 (``-1`` would
    silently select the last entry), ``xyz``/``face_uv`` are not 3 finite numbers, or a model
    repeats a semantic id. Indices are checked against the clouds and meshes where those are read.
    """
    def fail(where, what):
        raise ShapeIOError(f"{path}: {where}: {what}. The file is damaged or not a KeypointNet annotation "
                           "file: fix it or re-download it (github.com/qq456cvb/KeypointNet).")

    def is_index(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 0

    def triple(x):
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        return a.shape == (3,) and np.isfinite(a).all()

    if not isinstance(raw, list):
        fail("top level", f"expected a JSON list of annotated models [{{class_id, model_id, keypoints}}, ...], "
                          f"got a JSON {type(raw).__name__}")
    out = []
    for m, model in enumerate(raw):
        where = f"model #{m}"
        if not isinstance(model, dict):
            fail(where, f"expected an object, got {type(model).__name__}")
        for key in ("class_id", "model_id", "keypoints"):
            if key not in model:
                fail(where, f"no '{key}' field")
        where = f"model #{m} ({model['model_id']})"
        kps = model["keypoints"]
        if not isinstance(kps, list):
            fail(where, f"'keypoints' must be a list, got {type(kps).__name__}")
        sem, xyz, pidx, fidx, fuv = [], [], [], [], []
        for j, k in enumerate(kps):
            at = f"{where}, keypoint #{j}"
            if not isinstance(k, dict):
                fail(at, f"expected an object, got {type(k).__name__}")
            for key, sub in (("semantic_id", None), ("xyz", None), ("pcd_info", "point_index"),
                             ("mesh_info", "face_index"), ("mesh_info", "face_uv")):
                if key not in k or (sub is not None and (not isinstance(k[key], dict) or sub not in k[key])):
                    fail(at, f"no '{key}{'.' + sub if sub else ''}' field")
            for name, val in (("semantic_id", k["semantic_id"]), ("pcd_info.point_index", k["pcd_info"]["point_index"]),
                              ("mesh_info.face_index", k["mesh_info"]["face_index"])):
                if not is_index(val):
                    fail(at, f"{name} = {val!r}, expected an integer ≥ 0 (a negative index would silently pick "
                             "the last entry)")
            for name, val in (("xyz", k["xyz"]), ("mesh_info.face_uv", k["mesh_info"]["face_uv"])):
                if not triple(val):
                    fail(at, f"{name} = {val!r}, expected 3 finite numbers")
            if k["semantic_id"] in sem:
                fail(at, f"semantic_id {k['semantic_id']} appears twice in this model (keypoint "
                         f"#{sem.index(k['semantic_id'])} too)")
            sem.append(k["semantic_id"])
            xyz.append(k["xyz"])
            pidx.append(k["pcd_info"]["point_index"])
            fidx.append(k["mesh_info"]["face_index"])
            fuv.append(k["mesh_info"]["face_uv"])
        out.append({"class_id": str(model["class_id"]), "model_id": str(model["model_id"]),
                    "semantic_id": np.array(sem, dtype=np.int64),
                    "xyz": np.array(xyz, dtype=np.float64).reshape(-1, 3),
                    "point_index": np.array(pidx, dtype=np.int64),
                    "face_index": np.array(fidx, dtype=np.int64),
                    "face_uv": np.array(fuv, dtype=np.float64).reshape(-1, 3)})
    return out


def keypointnet_annotations(category: str = "chair") -> list[dict]:
    """KeypointNet annotations of ``category``: per model a dict ``class_id``, ``model_id``,
    ``semantic_id (K,) int``, ``xyz (K, 3)``, ``point_index (K,) int`` (into its 2,048-point
    .pcd), ``face_index (K,) int`` and ``face_uv (K, 3)`` (into its ShapeNet mesh), validated by
    :func:`parse_keypointnet` (errors name the file, the model and the keypoint)."""
    root = registry.get("keypointnet_sample").require()
    path = root / "annotations" / f"{category}.json"
    if not path.exists():
        raise ShapeIOError(f"{path} not found: KeypointNet category files are annotations/<category>.json.")
    try:
        raw = json.loads(existing_file(path, "KeypointNet annotation file").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShapeIOError(f"{path} is not valid JSON ({exc}); is it truncated? Re-download it.") from exc
    return parse_keypointnet(raw, path)


def keypointnet_splits() -> dict[str, set]:
    """``{'train'|'val'|'test': {'<class_id>-<model_id>', ...}}`` from ``splits/*.txt`` (empty if absent)."""
    root = registry.get("keypointnet_sample").require() / "splits"
    return {s: set(existing_file(root / f"{s}.txt", "split file").read_text().split())
            if (root / f"{s}.txt").exists() else set() for s in ("train", "val", "test")}


def read_pcd(path) -> np.ndarray:
    """``(n, 3) float`` points of an ASCII ``.pcd`` file (the fields x y z first)."""
    path = existing_file(path, "point cloud (.pcd)")
    lines = path.read_text(errors="replace").splitlines()
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
        pts = read_pcd(pcd)
        over = np.flatnonzero(a["point_index"] >= len(pts))
        if len(over):
            j = int(over[0])
            raise ShapeIOError(
                f"{root / 'annotations' / f'{category}.json'}: model {a['model_id']}, keypoint #{j} (semantic id "
                f"{a['semantic_id'][j]}): pcd_info.point_index {a['point_index'][j]} is outside its cloud {pcd} "
                f"of {len(pts)} points ({len(over)} such keypoint(s)). The cloud is not the one annotated "
                "(re-sampled or truncated?): re-download it.")
        kp = -np.ones(n_sem, dtype=np.int64)
        kp[a["semantic_id"]] = a["point_index"]
        folder = root / "models" / a["class_id"] / a["model_id"] / "models"
        mesh = next((folder / f"model_normalized.{ext}" for ext in ("ply", "obj")
                     if (folder / f"model_normalized.{ext}").exists()), folder / "missing")
        items.append(Item(Shape(pts, None, name=a["model_id"][:8]), keypoints=kp,
                          meta={"annotation": a, "mesh_path": str(mesh) if mesh.exists() else None}))
    return items


def read_mesh(path) -> Shape:
    """Read a mesh with `Shape.read`; files whose extra attributes it rejects (ShapeNet's zero
    normals, textured OBJ) are re-read geometry-only with trimesh (vertices and faces kept
    in file order, so KeypointNet's ``face_index`` stays valid)."""
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
