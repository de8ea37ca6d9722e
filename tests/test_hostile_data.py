"""Hostile dataset folders (issue #36, round 2): stray, missing, damaged or inconsistent files get
an error naming the file (and the line, model or keypoint) and the fix — never a silently wrong
split or ground truth. Every dataset is a tiny fake written to tmp_path."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from shapelib import Shape, ShapeIOError
from shapelib.data import real, registry
from shapelib.errors import DatasetNotFoundError

TRI = "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
TET = "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAPELIB_DATA", str(tmp_path))
    return tmp_path


def _r_dataset(root, dataset, names, rows="1\n2\n3\n"):
    """A fake remeshed dataset: one triangle per shape, a 3-row .vts each."""
    vtx = root / dataset / "vtx_5k"
    (vtx / "corres").mkdir(parents=True)
    for nm in names:
        (vtx / f"{nm}.off").write_text(TRI)
        (vtx / "corres" / f"{nm}.vts").write_text(rows)
    return vtx


FAUST_NAMES = [f"tr_reg_{i:03d}" for i in range(100)]


# ----------------------------------------------------------------------------- splits by name (case 1)


def test_faust_r_split_is_by_name(data_root):
    _r_dataset(data_root, "faust_r", FAUST_NAMES)
    train, test = real.r_split("faust_r")
    assert train == FAUST_NAMES[:80] and test == FAUST_NAMES[80:]


@pytest.mark.parametrize("damage, words", [
    ("stray", r"unexpected file.*tr_reg_079 \(copy\)\.off.*move them out"),  # used to push tr_reg_079 into test
    ("missing", r"missing file.*tr_reg_010\.off.*restore"),  # used to pull tr_reg_080 into training
    ("foreign", r"unexpected file.*cat0\.off.*missing file.*tr_reg_099\.off"),
])
def test_faust_r_folder_with_stray_or_missing_files_is_refused(data_root, damage, words):
    from shapelib import data

    vtx = _r_dataset(data_root, "faust_r", FAUST_NAMES)
    if damage == "stray":
        (vtx / "tr_reg_079 (copy).off").write_text(TRI)
    elif damage == "missing":
        (vtx / "tr_reg_010.off").unlink()
    else:
        (vtx / "tr_reg_099.off").rename(vtx / "cat0.off")
    with pytest.raises(ShapeIOError, match=words) as exc:
        real.r_split("faust_r")
    assert "train tr_reg_000–tr_reg_079, test tr_reg_080–tr_reg_099" in str(exc.value)
    with pytest.raises(ShapeIOError, match=words):  # the data API splits through r_split
        data.human_pairs(split="test", source="real", n_pairs=2)


def test_human_pairs_test_split_holds_only_test_names(data_root):
    from shapelib import data

    _r_dataset(data_root, "faust_r", FAUST_NAMES)
    pairs = data.human_pairs(split="test", source="real", n_pairs=3)
    assert len(pairs) == 3 and all(p.shape1.name >= "tr_reg_080" and p.shape2.name >= "tr_reg_080" for p in pairs)
    train = data.human_pairs(split="train", source="real", n_pairs=3)
    assert all(p.shape1.name <= "tr_reg_079" and p.shape2.name <= "tr_reg_079" for p in train)


@pytest.mark.parametrize("numbers, first_test", [
    (list(range(71)), "mesh051"),  # renumbered 000–070
    ([i for i in range(72) if i != 51], "mesh052"),  # the original SCAPE numbering (no mesh051)
])
def test_scape_r_split_by_name_in_both_numberings(data_root, numbers, first_test):
    names = [f"mesh{i:03d}" for i in numbers]
    vtx = _r_dataset(data_root, "scape_r", names)
    train, test = real.r_split("scape_r")
    assert train == [f"mesh{i:03d}" for i in range(51)] and len(test) == 20 and test[0] == first_test
    (vtx / "mesh050.off").unlink()
    with pytest.raises(ShapeIOError, match=r"missing file.*mesh050\.off"):
        real.r_split("scape_r")


def test_shrec19_r_is_test_only(data_root):
    from shapelib import data

    (data_root / "shrec19_r" / "vtx_5k").mkdir(parents=True)
    for i in (1, 2, 10):
        (data_root / "shrec19_r" / "vtx_5k" / f"{i}.off").write_text(TRI)
    assert real.r_split("shrec19_r") == ([], ["1", "2", "10"])
    with pytest.raises(ValueError, match="test-only"):
        data.human_pairs(split="train", source="real", dataset="shrec19_r")


# ----------------------------------------------------------------------------- negative / out-of-range indices (case 2)


def _tosca_pyfm(root, lion2cat: str, landmarks: str | None = None):
    d = root / "tosca_pyfm"
    d.mkdir()
    (d / "cat-00.off").write_text(TET)
    (d / "lion-00.off").write_text(TET)
    (d / "lion2cat").write_text(lion2cat)
    if landmarks is not None:
        (d / "landmarks.txt").write_text(landmarks)
    return d


@pytest.mark.parametrize("lion2cat, landmarks, words", [
    ("0\n1\n-1\n3\n", None, r"lion2cat, line 3: index -1 is negative.*0-based"),  # used to become "the last vertex"
    ("0\n1\n2\n4\n", None, r"lion2cat, line 4: index 4 is out of range for 4 vertices"),
    ("0\n1\n2\n", None, r"lion2cat has 3 lines but lion-00.off has 4 vertices"),
    ("", None, r"lion2cat holds no indices"),
    ("0\n1\n2\n3\n", "0 0\n1 -1\n", r"landmarks.txt, line 2, column 2: index -1 is negative"),
    ("0\n1\n2\n3\n", "0 0\n1 9\n", r"landmarks.txt, line 2, column 2: index 9 is out of range"),
])
def test_tosca_pyfm_index_files_are_checked(data_root, lion2cat, landmarks, words):
    _tosca_pyfm(data_root, lion2cat, landmarks)
    with pytest.raises(ShapeIOError, match=words):
        real.tosca_pyfm()


def test_good_tosca_pyfm_reads(data_root):
    _tosca_pyfm(data_root, "# comment\n3\n\n2\n1\n0\n", "0 3\n1 2\n")
    pair = real.tosca_pyfm()
    assert pair.p2p_21.tolist() == [3, 2, 1, 0] and pair.landmarks.tolist() == [[0, 3], [1, 2]]


@pytest.mark.parametrize("text, one_based, words", [
    ("5 0 0 0\n-1 0 0 0\n", False, r"line 2: index -1 is negative"),  # a .pid landmark file
    ("3\n\n7\n", False, r"line 3: index 7 is out of range for 6 vertices"),  # blank lines counted
    ("1\n0\n", True, r"line 2:.*1-based indices.*contains 0: is it 0-based\?"),
    ("1\n7\n", True, r"line 2: index 7 is out of range for 6 vertices \(valid: 1–6, 1-based\)"),
    ("1\nx\n", True, r"Could not read integer indices"),
])
def test_index_files_name_the_line(tmp_path, text, one_based, words):
    (tmp_path / "f.txt").write_text(text)
    with pytest.raises(ShapeIOError, match=words) as exc:
        real.read_index_file(tmp_path / "f.txt", one_based=one_based, n_max=6)
    assert str(tmp_path / "f.txt") in str(exc.value)


def test_faust_remeshed_test_refuses_a_negative_template_index(data_root):
    d = data_root / "faust_remeshed_test"
    for kind in ("iso", "dense", "qes", "cloud"):
        (d / kind).mkdir(parents=True)
        (d / kind / "keep.txt").write_text("0\n")
    Shape.read(_write(data_root, "t.off", TET)).write(d / "iso" / "tr_reg_iso_080.ply")
    (d / "iso" / "tr_reg_iso_080.txt").write_text("0\n5\n-1\n7\n")
    with pytest.raises(ShapeIOError, match=r"tr_reg_iso_080\.txt, line 3: index -1 is negative"):
        real.faust_remeshed_test("iso", [80])


def _write(root, name, text):
    (root / name).write_text(text)
    return root / name


# ----------------------------------------------------------------------------- KeypointNet annotations (case 4)


KP = {"xyz": [0.1, 0.2, 0.3], "rgb": [1, 2, 3], "semantic_id": 0,
      "pcd_info": {"point_index": 1}, "mesh_info": {"face_index": 0, "face_uv": [0.2, 0.3, 0.5]}}


def _keypointnet(root, keypoints=None, raw=None, n_points=4):
    d = root / "keypointnet_sample"
    (d / "annotations").mkdir(parents=True)
    model = {"class_id": "03001627", "model_id": "abc123", "keypoints": keypoints or [KP],
             "symmetries": {}}
    (d / "annotations" / "chair.json").write_text(json.dumps([model] if raw is None else raw))
    (d / "pcds" / "03001627").mkdir(parents=True)
    pts = "\n".join(f"{i} 0 0" for i in range(n_points))
    (d / "pcds" / "03001627" / "abc123.pcd").write_text(
        f"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {n_points}\nHEIGHT 1\n"
        f"POINTS {n_points}\nDATA ascii\n{pts}\n")
    return d


def _kp(**change):
    k = json.loads(json.dumps(KP))
    for key, val in change.items():
        if val is None:
            del k[key]
        elif isinstance(val, dict):
            k[key].update(val)
        else:
            k[key] = val
    return k


@pytest.mark.parametrize("keypoints, raw, words", [
    ([KP, _kp(semantic_id=-1)], None, r"model #0 \(abc123\), keypoint #1: semantic_id = -1.*integer ≥ 0"),
    ([_kp(mesh_info={"face_index": -1})], None, r"keypoint #0: mesh_info.face_index = -1"),
    ([_kp(mesh_info=None)], None, r"keypoint #0: no 'mesh_info.face_index' field"),
    ([_kp(pcd_info={"point_index": "3"})], None, r"keypoint #0: pcd_info.point_index = '3'"),
    ([_kp(xyz=[0, 0])], None, r"keypoint #0: xyz = \[0, 0\], expected 3 finite numbers"),
    ([KP, _kp(xyz=[1, 1, 1])], None, r"keypoint #1: semantic_id 0 appears twice"),
    (None, {"03001627-abc123": {}}, r"top level: expected a JSON list.*got a JSON dict"),
])
def test_damaged_keypointnet_annotations_name_file_model_and_keypoint(data_root, keypoints, raw, words):
    _keypointnet(data_root, keypoints, raw)
    with pytest.raises(ShapeIOError, match=words) as exc:
        real.keypointnet_annotations("chair")
    assert "chair.json" in str(exc.value) and "re-download" in str(exc.value)


def test_keypoint_point_index_beyond_the_cloud(data_root):
    _keypointnet(data_root, [_kp(pcd_info={"point_index": 9})])
    with pytest.raises(ShapeIOError, match=r"abc123, keypoint #0.*point_index 9 is outside.*abc123\.pcd of 4 points"):
        real.keypointnet_items("chair")


def test_good_keypointnet_items(data_root):
    _keypointnet(data_root, [_kp(semantic_id=2, pcd_info={"point_index": 3}), KP])
    (item,) = real.keypointnet_items("chair")
    assert item.keypoints.tolist() == [1, -1, 3] and item.shape.n_vertices == 4


def test_keypoint_face_index_outside_the_mesh():
    from shapelib.data import shapenet as sn

    V, F = np.eye(3), np.array([[0, 1, 2]])
    np.testing.assert_allclose(sn.keypoints_from_faces(V, F, [0], [[0.2, 0.3, 0.5]]), [[0.2, 0.3, 0.5]])
    for bad in (1, -1):  # -1 used to wrap to the last face (a keypoint error of 0.40 instead of 1e-8)
        with pytest.raises(ShapeIOError, match=rf"model\.obj: keypoint #0 has mesh_info.face_index {bad}, outside"):
            sn.keypoints_from_faces(V, F, [bad], [[0.2, 0.3, 0.5]], source="model.obj")
    with pytest.raises(ShapeIOError, match=r"keypoint #0: semantic_id 25 is outside 0..20"):
        sn.keypoint_xyz({"model_id": "x", "semantic_id": np.array([25]), "xyz": np.zeros((1, 3))})


# ----------------------------------------------------------------------------- damaged layout (cases 6, 13)


def test_corres_replaced_by_a_file_is_damaged_not_found(data_root):
    from shapelib import data

    vtx = _r_dataset(data_root, "faust_r", ["tr_reg_000"])
    (vtx / "corres" / "tr_reg_000.vts").unlink()
    (vtx / "corres").rmdir()
    (vtx / "corres").write_text("1\n2\n3\n")
    info = registry.get("faust_r")
    assert info.status() == "damaged" and not info.found()  # used to say 'found'
    line = registry.status_table().split("\nfaust_r ")[1].splitlines()[0]
    assert "damaged: vtx_5k/corres (a file where a folder is expected)" in line
    with pytest.raises(DatasetNotFoundError, match=r"damaged: vtx_5k/corres \(a file where a folder is expected\)"):
        real.r_dataset("faust_r")  # used to give items without ground truth
    with pytest.raises(DatasetNotFoundError, match="damaged"):
        data.human_pairs(source="auto")  # never a silent fallback to synthetic data


def test_missing_vts_of_one_shape_is_named(data_root):
    vtx = _r_dataset(data_root, "faust_r", ["tr_reg_000", "tr_reg_001"])
    (vtx / "corres" / "tr_reg_001.vts").unlink()
    with pytest.raises(ShapeIOError, match=r"corres/tr_reg_001\.vts not found.*ground truth"):
        real.r_dataset("faust_r")


@pytest.mark.parametrize("where", ["mesh", "vts", "sample", "pairs"])
def test_dataset_file_replaced_by_a_folder(data_root, where):
    vtx = _r_dataset(data_root, "faust_r", ["tr_reg_000", "tr_reg_001"])
    target = {"mesh": vtx / "tr_reg_001.off", "vts": vtx / "corres" / "tr_reg_001.vts",
              "sample": vtx / "corres" / "sampleID.vts", "pairs": data_root / "faust_r" / "test_pairs.txt"}[where]
    if target.exists():
        target.unlink()
    target.mkdir()
    with pytest.raises(ShapeIOError, match=rf"{re.escape(target.name)} is a folder.*Move the folder away"):
        real.r_test_pairs("faust_r") if where == "pairs" else real.r_dataset("faust_r")
    if where == "mesh":
        with pytest.raises(ShapeIOError, match="is a folder"):
            Shape.read(target)  # used to raise a bare IsADirectoryError
        with pytest.raises(ShapeIOError, match="tr_reg_001.off is a folder"):
            real.r_split("faust_r")


def test_required_file_replaced_by_a_folder_is_damaged(data_root):
    d = _tosca_pyfm(data_root, "0\n1\n2\n3\n")
    (d / "cat-00.off").unlink()
    (d / "cat-00.off").mkdir()
    (d / "cat-00.off" / "x").write_text("")
    assert registry.get("tosca_pyfm").status() == "damaged"
    with pytest.raises(DatasetNotFoundError, match=r"cat-00.off \(a folder where a file is expected\)"):
        real.tosca_pyfm()


def test_tosca_r_ignores_stray_names_with_a_warning(data_root):
    d = data_root / "tosca_r"
    (d / "corres").mkdir(parents=True)
    for nm in ("cat0", "cat2", "cat10"):
        (d / f"{nm}.off").write_text(TRI)
        (d / "corres" / f"{nm}.vts").write_text("1\n2\n3\n")
    (d / "cat0 (1).off").write_text(TRI)  # used to crash the sort with a bare ValueError
    with pytest.warns(UserWarning, match=r"ignoring \['cat0 \(1\)\.off'\]"):
        items = real.tosca_r(("cat",))
    assert [it.name for it in items] == ["cat0", "cat2", "cat10"]


# ----------------------------------------------------------------------------- .vts row counts (case 10)


@pytest.mark.parametrize("rows, words", [
    ("1\n2\n3\n1\n", r"tr_reg_001\.vts has 4 rows but .*sampleID\.vts has 3"),
    ("1\n2\n", r"tr_reg_001\.vts has 2 rows but .*sampleID\.vts has 3"),
    ("", r"tr_reg_001\.vts holds no indices"),
])
def test_vts_with_a_row_too_many_or_few(data_root, rows, words):
    vtx = _r_dataset(data_root, "faust_r", ["tr_reg_000", "tr_reg_001"])
    (vtx / "corres" / "sampleID.vts").write_text("5\n6\n7\n")
    (vtx / "corres" / "tr_reg_001.vts").write_text(rows)
    with pytest.raises(ShapeIOError, match=words):  # used to be a numpy broadcast error without a file name
        real.r_dataset("faust_r")


def test_sample_id_of_the_wrong_length_and_pairs_of_unequal_rows(data_root):
    vtx = _r_dataset(data_root, "faust_r", ["tr_reg_000", "tr_reg_001"])
    (vtx / "corres" / "sampleID.vts").write_text("5\n6\n")
    with pytest.raises(ShapeIOError, match=r"tr_reg_000\.vts has 3 rows but .*sampleID\.vts has 2"):
        real.r_dataset("faust_r")
    (vtx / "corres" / "sampleID.vts").unlink()
    (vtx / "corres" / "tr_reg_001.vts").write_text("1\n2\n")
    a, b = real.r_dataset("faust_r")
    with pytest.raises(ShapeIOError, match=r"tr_reg_000\.vts has 3 rows but .*tr_reg_001\.vts has 2"):
        real.r_pair(a, b)
    a.meta["corres"] = None
    with pytest.raises(ShapeIOError, match="tr_reg_000 has no correspondence rows"):
        real.r_pair(a, b)


@pytest.mark.parametrize("keypoints, raw, words", [
    ([KP, _kp(semantic_id=-1)], None, r"keypoint #1: semantic_id = -1"),  # used to be filed under the last id
    ([_kp(mesh_info={"face_index": -1})], None, r"keypoint #0: mesh_info.face_index = -1"),
    (None, {"03001627-abc123": {}}, r"expected a JSON list"),  # used to say 'lacks a field' ('str' indices)
])
def test_keypointnet_official_layout_validates_the_same_way(data_root, keypoints, raw, words):
    from shapelib.data import keypointnet

    d = _keypointnet(data_root, keypoints, raw)
    d.rename(data_root / "keypointnet")
    (data_root / "keypointnet" / "splits").mkdir()
    for s in ("train", "val", "test"):
        (data_root / "keypointnet" / "splits" / f"{s}.txt").write_text("03001627-abc123\n" if s == "train" else "x\n")
    with pytest.raises(ShapeIOError, match=words):
        keypointnet.items("chair")
