"""Real-dataset loaders (skipped without the data), registry/CLI and error messages."""
from __future__ import annotations

import urllib.request

import numpy as np
import pytest

from shapelib.data import real, registry
from shapelib.data.__main__ import main as cli
from shapelib.errors import DatasetNotFoundError, ShapeIOError


@pytest.fixture
def data_env(real_data, monkeypatch):
    monkeypatch.setenv("SHAPELIB_DATA", str(real_data))
    return real_data


@pytest.fixture
def empty_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAPELIB_DATA", str(tmp_path / "empty"))
    return tmp_path / "empty"


# ----------------------------------------------------------------------------- without data


@pytest.mark.parametrize("loader", [
    lambda: real.faust_registrations([0]), lambda: real.faust_remeshed_test("iso", [80]),
    lambda: real.r_dataset("faust_r"), lambda: real.r_dataset("scape_r"), lambda: real.r_dataset("shrec19_r"),
    lambda: real.tosca_r(("cat",)), real.tosca_pyfm, real.keypointnet_annotations, lambda: real.shapenetpart("cap"),
    lambda: real.deformation_sequence("camel-gallop")])
def test_missing_dataset_error_names_path_and_fix(empty_env, loader):
    with pytest.raises(DatasetNotFoundError) as exc:
        loader()
    msg = str(exc.value)
    assert str(empty_env) in msg and "SHAPELIB_DATA" in msg and "fetch" in msg and "data/README.md" in msg


def test_status_and_fetch_without_network(empty_env, monkeypatch, capsys):
    assert cli(["status"]) == 0
    out = capsys.readouterr().out
    for name in registry.DATASETS:
        assert name in out
    assert "missing" in out and str(empty_env) in out

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert cli(["fetch", "tosca_pyfm"]) == 1
    out = capsys.readouterr().out
    assert "could not download" in out and "Traceback" not in out
    assert cli(["fetch", "faust_registrations"]) == 1
    out = capsys.readouterr().out
    assert "licence" in out and "faust-leaderboard" in out
    assert cli(["fetch", "nonsense"]) == 2


def test_fetch_rejects_bad_checksum(empty_env, monkeypatch, capsys):
    import io

    class Resp(io.BytesIO):
        headers = {"Content-Length": "4"}

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Resp(b"oops"))
    assert registry.fetch("tosca_pyfm") is False
    assert "sha256 mismatch" in capsys.readouterr().out
    assert not (empty_env / "tosca_pyfm" / "cat-00.off").exists()


def test_vts_is_one_based(tmp_path):
    (tmp_path / "a.vts").write_text("1\n2\n5\n")
    assert real.read_vts(tmp_path / "a.vts").tolist() == [0, 1, 4]
    (tmp_path / "b.vts").write_text("0\n2\n")
    with pytest.raises(ShapeIOError, match="1-based"):
        real.read_vts(tmp_path / "b.vts")
    with pytest.raises(ShapeIOError, match="out of range"):
        real.read_vts(tmp_path / "a.vts", n_vertices=4)


def test_truncated_off_gives_shape_io_error(tmp_path, monkeypatch):
    root = tmp_path / "faust_r" / "vtx_5k"
    (root / "corres").mkdir(parents=True)
    (root / "tr_reg_000.off").write_text("OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n")  # vertices and faces cut off
    (root / "corres" / "tr_reg_000.vts").write_text("1\n2\n")  # an empty corres/ would count as missing
    monkeypatch.setenv("SHAPELIB_DATA", str(tmp_path))
    with pytest.raises(ShapeIOError, match="truncated"):
        real.r_dataset("faust_r")


# ----------------------------------------------------------------------------- with the real samples


def test_faust_registrations(data_env):
    a, b = real.faust_registrations([0, 99])
    assert a.shape.n_vertices == b.shape.n_vertices == 6890
    assert np.array_equal(a.shape.faces, b.shape.faces)
    assert a.meta["subject"] == 0 and b.meta == {**b.meta, "subject": 9, "pose": 9}


def test_faust_remeshed_template_index(data_env):
    reg = real.faust_registrations([80])[0].shape
    for kind in ("iso", "dense", "qes", "cloud"):
        it = real.faust_remeshed_test(kind, [80])[0]
        assert it.template_index.min() >= 0 and it.template_index.max() < 6890
        d = np.linalg.norm(it.shape.vertices - reg.vertices[it.template_index], axis=1)
        assert np.median(d) < reg.mean_edge_length(), kind
    assert real.faust_remeshed_test("cloud", [80])[0].shape.normals is not None


def test_faust_r_vts_rows_consistent_through_sample_id(data_env):
    """Row r of tr_reg_XXX.vts (1-based) and row r of sampleID.vts name the same body point:
    after a similarity alignment, remeshed vertex corres[r] lies on registration vertex sampleID[r]."""
    fr = real.r_dataset("faust_r", ["tr_reg_000", "tr_reg_081"])
    regs = real.faust_registrations([0, 81])
    sample_id = real.read_vts(data_env / "faust_r" / "vtx_5k" / "corres" / "sampleID.vts", 6890)
    for it, reg in zip(fr, regs):
        X, Y = it.shape.vertices[it.meta["corres"]], reg.shape.vertices[sample_id]
        X, Y = X - X.mean(0), Y - Y.mean(0)
        X *= np.sqrt((Y ** 2).sum() / (X ** 2).sum())
        assert np.linalg.norm(X - Y, axis=1).mean() < reg.shape.mean_edge_length()
    pair = real.r_pair(*fr)
    j = np.flatnonzero(pair.exact)
    t1, t2 = fr[0].template_index, fr[1].template_index
    # rows may repeat a vertex, so compare where the two template vertices sit on the template
    tmpl = regs[0].shape
    d = np.linalg.norm(tmpl.vertices[t1[pair.p2p_21[j]]] - tmpl.vertices[t2[j]], axis=1)
    assert np.median(d) < tmpl.mean_edge_length() and np.mean(d < 3 * tmpl.mean_edge_length()) > 0.95
    assert len(real.r_test_pairs("faust_r")) == 300


def test_faust_r_segmentation(data_env):
    seg = real.faust_r_segmentation("tr_reg_000", "tr_reg_001", "tr_reg_000")
    assert seg.shape == (real.r_dataset("faust_r", ["tr_reg_000"])[0].shape.n_vertices,)


def test_tosca_landmarks_and_pairs(data_env):
    items = real.tosca_r(("cat", "dog", "centaur"))
    by = {it.name: it for it in items}
    assert len(by["cat0"].keypoints) == 21 and len(by["centaur0"].keypoints) == 46
    for cls in ("cat", "centaur"):
        pos, names = real.tosca_hires_landmarks(cls)
        it = by[f"{cls}0"]
        assert np.linalg.norm(it.shape.vertices[it.keypoints] - pos, axis=1).max() < 2 * it.shape.mean_edge_length()
        assert names[0].startswith("tip of head")
    cross = real.tosca_cross_pair(by["cat0"], by["dog0"])
    assert cross.p2p_21 is None and cross.gt_pairs().shape == (21, 2)
    within = real.r_pair(by["cat0"], by["cat1"])
    assert within.exact.sum() > 3000


def test_tosca_pyfm_map_agrees_with_landmarks(data_env):
    p = real.tosca_pyfm()
    assert p.p2p_21.shape == (p.shape2.n_vertices,) and p.p2p_21.max() < p.shape1.n_vertices
    assert np.array_equal(p.p2p_21[p.landmarks[:, 1]], p.landmarks[:, 0])


def test_keypointnet(data_env):
    ann = real.keypointnet_annotations("chair")
    assert len(ann) == 999 and max(a["semantic_id"].max() for a in ann) < 21
    splits = real.keypointnet_splits()
    ids = {f"{a['class_id']}-{a['model_id']}" for a in ann}
    counts = {s: len(ids & v) for s, v in splits.items()}
    assert sum(counts.values()) == 999 and counts["train"] > counts["test"] > 0
    it = real.keypointnet_items("chair")[0]
    a = it.meta["annotation"]
    assert it.shape.n_vertices == 2048
    assert np.allclose(it.shape.vertices[a["point_index"]], a["xyz"], atol=1e-4)
    assert (it.keypoints[a["semantic_id"]] == a["point_index"]).all() and (it.keypoints == -1).any()
    mesh = real.read_mesh(it.meta["mesh_path"])
    assert mesh.is_mesh and a["face_index"].max() < mesh.n_faces


def test_shapenetpart(data_env):
    caps = real.shapenetpart("cap")
    assert len(caps) == 16
    for it in caps[:3]:
        assert it.shape.normals is not None and it.parts.shape == (it.shape.n_vertices,)


def test_api_auto_uses_real_when_present(data_env, monkeypatch):
    monkeypatch.setenv("SHAPELIB_SCALE", "quick")
    from shapelib import data

    pairs = data.human_pairs(split="test")
    assert pairs.source.startswith("real: FAUST_r") and str(data_env) in pairs.source
    quad = data.quadruped_pairs("cross")
    assert quad.source.startswith("real: TOSCA_r") and len(quad) == 2
    assert data.chairs(n=4).source.startswith("synthetic")  # one KeypointNet geometry is too few
    assert data.chairs(source="real").source.startswith("real: KeypointNet")
