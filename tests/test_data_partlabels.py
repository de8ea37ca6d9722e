"""ShapeNetPart part labels (shapelib.data.shapenetpart): the labels of the six v2 mesh chairs index
the OBJ exactly as it is read (vertex and face counts, the README's per-label counts), survive the
mesh cleaning, and bad files are refused with a clear error; the 100 ShapeNetPart clouds read with
one label per point. The first tests need no data; the rest read $SHAPELIB_DATA."""
import re

import numpy as np
import pytest

from shapelib.data import shapenet, shapenetpart
from shapelib.errors import ShapeIOError
from shapelib.shape import Shape

# ----------------------------------------------------------------------------- no data needed


def _two_triangles():
    """A unit square as two triangles, written twice (double-sided, as ShapeNet OBJs are)."""
    V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    F = np.array([[0, 1, 2], [0, 2, 3], [0, 2, 1], [0, 3, 2]])
    return V, F


def test_carry_labels_follows_the_cleaning():
    V, F = _two_triangles()
    V = np.vstack([V, V[2]])           # vertex 4 duplicates vertex 2 (merged by the cleaning)
    F = np.vstack([F, [[0, 1, 4]]])    # a duplicate of face 0 through the duplicate vertex
    vl = np.array([12, 13, 14, 13, 14])
    fl = np.array([12, 13, 12, 13, 12])
    clean, info = shapenet.clean_mesh(V, F, name="square")
    cvl, cfl = shapenetpart.carry_labels(V, F, vl, fl, clean, info["face_kept"])
    assert len(cvl) == clean.n_vertices and len(cfl) == clean.n_faces
    assert np.array_equal(cfl, fl[info["face_kept"]])
    # every clean vertex keeps the label of the raw vertex at its position
    for v, lab in zip(clean.vertices, cvl):
        raw = vl[np.all(V == v, axis=1)]
        assert lab in raw


def test_carry_labels_refuses_labels_of_another_file():
    V, F = _two_triangles()
    clean, info = shapenet.clean_mesh(V, F)
    with pytest.raises(ShapeIOError, match="another file"):
        shapenetpart.carry_labels(V, F, np.full(len(V) + 1, 12), np.full(len(F), 12), clean, info["face_kept"])
    other = Shape(V + 0.5, clean.faces)
    with pytest.raises(ShapeIOError, match="not a vertex of the raw file"):
        shapenetpart.carry_labels(V, F, np.full(len(V), 12), np.full(len(F), 12), other, info["face_kept"])


def test_damaged_label_files_are_refused(tmp_path, monkeypatch):
    root = tmp_path / "shapenet_chairs" / "part_labels"
    root.mkdir(parents=True)
    monkeypatch.setattr(shapenetpart, "_label_dir", lambda: root)
    good = dict(vertex_label=np.array([12, 13]), face_label=np.array([14]), transform=np.eye(4),
                source_points=np.zeros((2, 3)), source_labels=np.array([12, 15]))
    np.savez(root / "a.npz", **{**good, "face_label": np.array([7])})
    with pytest.raises(ShapeIOError, match="part ids"):
        shapenetpart.read_mesh_labels("a")
    np.savez(root / "b.npz", **{k: v for k, v in good.items() if k != "transform"})
    with pytest.raises(ShapeIOError, match="lacks"):
        shapenetpart.read_mesh_labels("b")
    np.savez(root / "c.npz", **good)
    assert shapenetpart.read_mesh_labels("c")["face_label"].tolist() == [14]


# ----------------------------------------------------------------------------- the real labels


def _readme_counts(real_data):
    """The README's per-chair tables: ``{model_id: (n_vertices, n_faces)}`` and
    ``{model_id: (vertex counts, face counts)}`` per label 12..15."""
    text = (real_data / "shapenet_chairs" / "part_labels" / "README.md").read_text()
    sizes, labels = {}, {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not cells or not re.fullmatch(r"[0-9a-f]{32}", cells[0]):
            continue
        if len(cells) == 10:
            sizes[cells[0]] = (int(cells[1]), int(cells[2]))
        elif len(cells) == 4:
            labels[cells[0]] = tuple(tuple(int(x) for x in c.split("/")) for c in cells[2:4])
    assert len(sizes) == 6 and len(labels) == 6, "the README's tables changed; update the parser"
    return sizes, labels


@pytest.fixture(scope="module")
def readme(real_data):
    if not (real_data / "shapenet_chairs" / "part_labels").is_dir():
        pytest.skip("shapenet_chairs/part_labels not in this data copy")
    return _readme_counts(real_data)


def test_labels_index_the_obj_as_read(readme):
    sizes, labels = readme
    assert shapenetpart.labelled_ids() == sorted(sizes)
    for mid, (nv, nf) in sizes.items():
        lab = shapenetpart.read_mesh_labels(mid)
        V, F = shapenet.read_obj(shapenet.chair_path(mid, "v2_normalized"))
        assert (len(V), len(F)) == (nv, nf) == (len(lab["vertex_label"]), len(lab["face_label"]))
        counts = lambda x: tuple(int((x == i).sum()) for i in shapenetpart.PART_IDS)  # noqa: E731
        assert (counts(lab["vertex_label"]), counts(lab["face_label"])) == labels[mid]


def test_labelled_chairs_carry_labels_through_the_cleaning(readme):
    sizes, labels = readme
    arms = {mid: vf[1][3] > 0 for mid, vf in labels.items()}
    for it in shapenetpart.labelled_chairs():
        mid = it.meta["model_id"]
        assert it.meta["raw_counts"] == sizes[mid]
        assert len(it.parts) == it.shape.n_vertices and len(it.meta["face_parts"]) == it.shape.n_faces
        assert it.meta["has_arms"] == arms[mid]
        # the labels sit where the labelled source points are: each face centroid's nearest source point
        # mostly has the face's label (boundaries blur a little)
        from scipy.spatial import cKDTree

        c = it.shape.vertices[it.shape.faces].mean(1)
        _, nn = cKDTree(it.meta["source_points"]).query(c)
        agree = np.mean(it.meta["source_labels"][nn] == it.meta["face_parts"])
        assert agree > 0.85, f"{mid}: face labels agree with the nearest source point on {agree:.0%} of faces only"
    assert sum(arms.values()) == 5


def test_missing_chair_names_the_labelled_ones(readme):
    with pytest.raises(ShapeIOError, match="labelled chairs: 341a2d3d"):
        shapenetpart.read_mesh_labels("0" * 32)


def test_shapenetpart_clouds_have_one_label_per_point(real_data):
    if not (real_data / "shapenetpart_chair").is_dir():
        pytest.skip("shapenetpart_chair not in this data copy")
    ids = shapenetpart.cloud_ids()
    assert len(ids) == 100
    for mid in ids[:5]:
        it = shapenetpart.part_cloud(mid)
        assert it.shape.faces is None or len(it.shape.faces) == 0
        assert len(it.parts) == it.shape.n_vertices and 855 <= it.shape.n_vertices <= 2855
        assert set(np.unique(it.parts)) <= set(shapenetpart.PART_IDS)
        assert np.linalg.norm(it.shape.vertices, axis=1).max() < 1.0   # inside the unit ball (PROVENANCE)
