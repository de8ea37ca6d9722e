"""Real ShapeNet chairs: OBJ reading in file order, cleaning of double-sided soups, winding-number
labels on open meshes, the model_normalized frame, KeypointNet keypoints, armrest labels."""
import numpy as np
import pytest
import trimesh

from shapelib import Shape
from shapelib import implicit as im
from shapelib.data import shapenet as sn
from shapelib.errors import DatasetNotFoundError, ShapeIOError


def _sphere():
    m = trimesh.creation.icosphere(subdivisions=3)
    return np.asarray(m.vertices), np.asarray(m.faces)


def _double_sided(V, F):
    """ShapeNet style: every triangle twice, opposite orientations, interleaved; vertices split."""
    n = len(V)
    V2 = np.r_[V, V]  # the back faces use a second copy of the vertices (split by normal)
    back = F[:, ::-1] + n
    return V2, np.stack([F, back], 1).reshape(-1, 3)


def _signed_volume(V, F):
    return float(np.einsum("ij,ij->i", V[F[:, 0]], np.cross(V[F[:, 1]], V[F[:, 2]])).sum() / 6)


def test_clean_removes_double_sided_faces_and_orients_outward():
    V, F = _sphere()
    Vd, Fd = _double_sided(V, F)
    Fd = np.r_[Fd, [[0, 0, 1]]]  # plus a degenerate triangle
    shape, info = sn.clean_mesh(Vd, Fd)
    assert shape.n_faces == len(F) and shape.n_vertices == len(V)
    assert info["duplicates"] == len(F) and info["degenerate"] == 1
    key = np.sort(shape.faces, 1)
    assert len(np.unique(key, axis=0)) == len(key)  # no triangle twice, in either orientation
    assert _signed_volume(shape.vertices, shape.faces) == pytest.approx(4 / 3 * np.pi, rel=0.05)
    # randomly flipped faces (an inconsistent soup) come out consistent and outward too
    rng = np.random.default_rng(0)
    flip = rng.random(len(F)) < 0.3
    Fm = np.where(flip[:, None], F[:, ::-1], F)
    shape2, info2 = sn.clean_mesh(V, Fm)
    assert info2["flipped"] >= flip.sum() - 1 and _signed_volume(shape2.vertices, shape2.faces) > 4.0


def test_winding_number_sign_on_an_open_mesh():
    V, F = _sphere()
    keep = V[F].mean(1)[:, 2] < 0.8  # cut a cap off: an open surface
    Fo = F[keep]
    inner = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, -0.4], [0.0, 0.0, 0.6]])
    outer = np.array([[1.5, 0.0, 0.0], [0.0, 0.0, 1.3], [0.0, -2.0, 0.0]])
    w_in, w_out = im.winding_number(V, Fo, inner), im.winding_number(V, Fo, outer)
    assert (w_in > 0.5).all() and (w_in < 1.0).all(), w_in  # the hole lets part of the solid angle out
    assert (np.abs(w_out) < 0.25).all(), w_out
    assert np.allclose(im.winding_number(V, Fo[:, ::-1], inner), -w_in)  # orientation sets the sign
    # the double-sided soup of the same open mesh: the copies cancel, nothing is inside ...
    Vd, Fd = _double_sided(V, Fo)
    assert (np.abs(im.winding_number(Vd, Fd, inner)) < 1e-6).all()
    assert not im.inside(Shape(Vd, Fd), inner).any()
    # ... until it is cleaned
    clean, _ = sn.clean_mesh(Vd, Fd)
    assert im.inside(clean, inner).all() and not im.inside(clean, outer).any()
    assert im.label_consistency(clean, n=500) > 0.95


def test_read_obj_keeps_file_order(tmp_path):
    p = tmp_path / "a.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvn 0 0 1\nusemtl b\nf 1//1 2//1 3//1 4//1\n"
                 "usemtl a\nf -4/1/1 -2/1/1 -1/1/1\n")
    V, F = sn.read_obj(p)
    assert V.shape == (4, 3) and F.tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]
    (tmp_path / "b.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    with pytest.raises(ShapeIOError, match="truncated"):
        sn.read_obj(tmp_path / "b.obj")


def test_keypoints_from_faces_and_cloud():
    V, F = _sphere()
    uv = np.array([[1.0, 0, 0], [0.2, 0.3, 0.5]])
    x = sn.keypoints_from_faces(V, F, [3, 7], uv)
    assert np.allclose(x[0], V[F[3, 0]]) and np.allclose(x[1], uv[1] @ V[F[7]])


def test_missing_dataset_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAPELIB_DATA", str(tmp_path / "none"))
    with pytest.raises(DatasetNotFoundError, match="shapenet_chairs"):
        sn.chairs()
    from shapelib.data import registry

    assert registry.get("shapenet_chairs").status() == "missing"


# ----------------------------------------------------------------------------- with the real data


@pytest.fixture
def data_env(real_data, monkeypatch):
    if not (real_data / "shapenet_chairs").is_dir():
        pytest.skip("shapenet_chairs not in the data folder")
    monkeypatch.setenv("SHAPELIB_DATA", str(real_data))
    return real_data


def test_loaders_find_both_folders(data_env):
    ids = sn.chair_ids()
    assert sum(f == "v2_normalized" for f, _ in ids) == 10 and sum(f == "deep_cage" for f, _ in ids) == 15
    assert all(i in sn.ARMRESTS for _, i in ids)  # every chair has a visual armrest label


@pytest.mark.parametrize("folder, model_id", [("v2_normalized", "341e24df542e0676d42b9650f19dd425"),
                                              ("deep_cage", "fe6b3c001a86d844d5767a0de8dd037e")])
def test_cleaned_chair_in_model_normalized_frame(data_env, folder, model_id):
    it = sn.read_chair(model_id, folder)
    V = it.shape.vertices
    assert np.linalg.norm(V.max(0) - V.min(0)) == pytest.approx(1.0, abs=1e-6)
    assert np.abs(V.mean(0)).max() < 0.01  # model_normalized: vertex mean at the origin
    top = V[:, 1] > np.percentile(V[:, 1], 85)
    assert V[top, 2].mean() > 0.05  # y up, backrest towards +z (the chair faces -z)
    c = it.meta["clean"]
    assert c["duplicates"] >= 0.49 * c["faces_in"]  # every triangle was stored twice
    assert im.label_consistency(it.shape, n=1000) > 0.95


def test_keypoints_rebuilt_from_faces_match_xyz(data_env):
    items = sn.annotated_chairs()
    assert len(items) == 5
    for it in items:
        assert it.meta["keypoint_check"] < 1e-6, it.meta["model_id"]
        # the same keypoints lie on the CLEANED mesh (same frame): distance to the surface ~ 0
        xyz = it.meta["keypoint_xyz"]
        have = np.isfinite(xyz).all(1)
        import igl

        d2 = igl.point_mesh_squared_distance(xyz[have], it.shape.vertices, it.shape.faces)[0]
        assert np.sqrt(d2).max() < 1e-6
        # armrest labels agree with the keypoint semantics (ids 6-9 = arm ends)
        arm_kp = have[list(sn.KEYPOINT_PARTS["armrests"])].any()
        assert arm_kp == it.meta["armrests"], it.meta["model_id"]
    cloud = sn.keypoint_cloud(items[0], n_points=512)
    kp = cloud.keypoints
    assert np.allclose(cloud.shape.vertices[kp[kp >= 0]], items[0].meta["keypoint_xyz"][kp >= 0])


def test_deep_cage_rotation_fits_keypointnet(data_env):
    """Two re-exported chairs are annotated in KeypointNet: after the rotation to v2 axes their
    keypoints lie on the surface up to the (unrecoverable) translation of the re-export."""
    from scipy.spatial import cKDTree

    from shapelib.data import real

    ann = {a["model_id"]: a for a in real.keypointnet_annotations("chair")}
    it = sn.read_chair("fe6b3c001a86d844d5767a0de8dd037e", "deep_cage")
    kp = ann[it.meta["model_id"]]["xyz"]
    tree = cKDTree(it.shape.sample_surface(20000, 0)[0])
    t = np.zeros(3)
    for _ in range(10):  # translation-only ICP
        d, i = tree.query(kp - t)
        t += np.mean(kp - t - tree.data[i], 0)
    d, _ = tree.query(kp - t)
    assert d.mean() < 0.01 and np.linalg.norm(t) < 0.03, (d.mean(), t)
    # without the rotation the fit is far worse
    raw = sn.model_normalized(sn.clean_mesh(*sn.read_obj(it.meta["path"]))[0])
    d0, _ = cKDTree(raw.sample_surface(20000, 0)[0]).query(kp)
    assert d0.mean() > 3 * d.mean()
