"""The ``keypointnet`` dataset entry (official KeypointNet layout): registry, split files read by
name, clouds with or without rgb, keypoints indexing the clouds, clear errors on bad files; and
``keypointnet_sample`` unchanged. The first tests build a tiny layout in a temp folder (no real
data needed); the last ones read the real copy under $SHAPELIB_DATA."""
import json

import numpy as np
import pytest

from shapelib.data import keypointnet, registry
from shapelib.errors import DatasetNotFoundError, ShapeIOError

CHAIR = "03001627"


def _pcd(path, pts, rgb=None):
    fields = "x y z rgb" if rgb is not None else "x y z"
    head = (f"VERSION .7\nFIELDS {fields}\nSIZE {'4 ' * len(fields.split())}\nTYPE F F F{' U' if rgb is not None else ''}\n"
            f"COUNT {'1 ' * len(fields.split())}\nWIDTH {len(pts)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(pts)}\nDATA ascii\n")
    rows = [" ".join(f"{v:.6f}" for v in p) + (f" {int(c)}" if rgb is not None else "")
            for p, c in zip(pts, rgb if rgb is not None else [0] * len(pts))]
    path.write_text(head + "\n".join(rows) + "\n")


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A 4-chair KeypointNet layout: a, b train (b with rgb), c test, d annotated without a cloud;
    split files list models of other categories too."""
    root = tmp_path / "keypointnet"
    (root / "annotations").mkdir(parents=True)
    (root / "splits").mkdir()
    (root / "pcds" / CHAIR).mkdir(parents=True)
    rng = np.random.default_rng(0)
    ann = []
    for mid, kps in (("a", [(0, 3), (2, 5)]), ("b", [(1, 7), (2, 0)]), ("c", [(0, 1)]), ("d", [(0, 0)])):
        pts = rng.standard_normal((10, 3))
        ann.append({"class_id": CHAIR, "model_id": mid, "keypoints": [
            {"semantic_id": s, "xyz": pts[i].tolist(), "rgb": [0, 0, 0], "pcd_info": {"point_index": i},
             "mesh_info": {"face_index": 0, "face_uv": [1.0, 0.0, 0.0]}} for s, i in kps]})
        if mid != "d":
            _pcd(root / "pcds" / CHAIR / f"{mid}.pcd", pts, rgb=np.full(10, 0x10FF20) if mid == "b" else None)
    (root / "annotations" / "chair.json").write_text(json.dumps(ann))
    (root / "splits" / "train.txt").write_text(f"{CHAIR}-a\n02691156-zz\n{CHAIR}-b\n")
    (root / "splits" / "val.txt").write_text("02691156-yy\n")
    (root / "splits" / "test.txt").write_text(f"{CHAIR}-c\n{CHAIR}-d\n")
    monkeypatch.setenv("SHAPELIB_DATA", str(tmp_path))
    return root


def test_registry_entry_and_required_layout(layout):
    info = registry.get("keypointnet")
    assert info.found() and "keypointnet" in registry.status_table()
    (layout / "splits" / "val.txt").unlink()
    assert not info.found() and "splits/val.txt" in info.missing()
    with pytest.raises(DatasetNotFoundError, match="splits/val.txt"):
        keypointnet.items("chair")


def test_items_by_split_name_with_and_without_rgb(layout):
    train = keypointnet.items("chair", "train")
    assert [it.name for it in train] == ["a", "b"]               # by name from train.txt, annotation order
    assert [it.name for it in keypointnet.items("chair", "test")] == ["c"]   # d has no cloud: skipped
    assert keypointnet.items("chair", "val") == []
    a, b = train
    assert a.meta["rgb"] is None and a.meta["split"] == "train"
    assert b.meta["rgb"].shape == (10, 3) and tuple(b.meta["rgb"][0]) == (0x10, 0xFF, 0x20)
    # keypoints by semantic id (K = 1 + max id over the category = 3), -1 where absent
    assert a.keypoints.tolist() == [3, -1, 5] and b.keypoints.tolist() == [-1, 7, 0]
    for it in train:
        ann = it.meta["annotation"]
        assert np.allclose(it.shape.vertices[ann["point_index"]], ann["xyz"], atol=1e-5)
    s = keypointnet.summary("chair")
    assert s["per_split"] == {"train": 2, "val": 0, "test": 1, "None": 0} and s["with_rgb"] == 1


def test_items_by_model_id_keeps_the_order_asked(layout):
    assert [it.name for it in keypointnet.items("chair", model_ids=["c", "a"])] == ["c", "a"]
    with pytest.raises(KeyError, match="not annotated"):
        keypointnet.items("chair", model_ids=["nope"])
    with pytest.raises(ShapeIOError, match="d.pcd not found"):
        keypointnet.items("chair", model_ids=["d"])


def test_bad_input_gets_clear_errors(layout):
    with pytest.raises(ValueError, match="unknown KeypointNet category"):
        keypointnet.items("sofa")
    with pytest.raises(ValueError, match="split must be one of"):
        keypointnet.items("chair", "training")
    with pytest.raises(ShapeIOError, match="airplane.json not found"):
        keypointnet.items("airplane")
    # a keypoint index outside its cloud: the cloud is not the annotated one
    pcd = layout / "pcds" / CHAIR / "a.pcd"
    _pcd(pcd, np.zeros((4, 3)))
    with pytest.raises(ShapeIOError, match="outside its 4 points"):
        keypointnet.items("chair", "train")
    # a truncated body, a binary file, fields that are not x y z
    text = (layout / "pcds" / CHAIR / "b.pcd").read_text().splitlines()
    (layout / "pcds" / CHAIR / "b.pcd").write_text("\n".join(text[:-3]) + "\n")
    with pytest.raises(ShapeIOError, match="b.pcd: header announces 10 points"):
        keypointnet.read_pcd(layout / "pcds" / CHAIR / "b.pcd")
    pcd.write_text("VERSION .7\nFIELDS x y z\nPOINTS 1\nDATA binary\n")
    with pytest.raises(ShapeIOError, match="not an ASCII .pcd"):
        keypointnet.read_pcd(pcd)
    pcd.write_text("VERSION .7\nFIELDS normal_x y z\nPOINTS 1\nDATA ascii\n0 0 0\n")
    with pytest.raises(ShapeIOError, match="FIELDS must start with 'x y z'"):
        keypointnet.read_pcd(pcd)


def test_a_model_in_two_split_files_is_refused(layout):
    (layout / "splits" / "val.txt").write_text(f"{CHAIR}-a\n")
    with pytest.raises(ShapeIOError, match="both splits/train.txt and splits/val.txt"):
        keypointnet.items("chair")


# ----------------------------------------------------------------------------- the real copy


def test_real_keypointnet_chairs_and_airplanes(real_data):
    s = keypointnet.summary("chair")
    assert s["per_split"] == {"train": 71, "val": 11, "test": 19, "None": 0}   # 70 + the sample chair in train
    assert s["semantic_ids"] == 21 and s["with_rgb"] == 1
    split_files = keypointnet.splits()
    for split in ("train", "val", "test"):
        items = keypointnet.items("chair", split)
        assert all(f"{CHAIR}-{it.name}" in split_files[split] for it in items)
        for it in items:   # original point order: every keypoint's point_index lands on its xyz
            assert it.shape.n_vertices == 2048
            ann = it.meta["annotation"]
            assert np.abs(it.shape.vertices[ann["point_index"]] - ann["xyz"]).max() < 1e-4, it.name
    planes = keypointnet.items("airplane")
    assert len(planes) == 13 and all(p.meta["rgb"] is not None for p in planes)
    assert set(keypointnet.categories()) >= {"chair", "airplane"}


def test_keypointnet_sample_unchanged(real_data):
    from shapelib.data import real

    old = real.keypointnet_items("chair")
    new = keypointnet.items("chair", dataset="keypointnet_sample")
    assert len(old) == len(new) == 1
    assert np.array_equal(old[0].keypoints, new[0].keypoints)
    assert np.allclose(old[0].shape.vertices, new[0].shape.vertices)
    full = keypointnet.items("chair", model_ids=[new[0].name])[0]
    assert np.allclose(full.shape.vertices, new[0].shape.vertices)   # the sample chair is in the full copy too
