"""Shape: validation errors, repair, normalisation, I/O round trips."""
import numpy as np
import pytest

from shapelib import NonManifoldError, Shape, ShapeError, ShapeIOError

TET_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
TET_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def test_tetrahedron_basics():
    s = Shape(TET_V, TET_F, name="tet")
    assert s.is_mesh and s.n_vertices == 4 and s.n_faces == 4
    assert s.area() == pytest.approx(1.5 + np.sqrt(3) / 2)
    assert len(s.edges()) == 6
    r = s.report()
    assert r.clean and r.boundary_edges == 0 and r.non_manifold_edges == 0 and r.components == 1
    # outward normals: the normal at the origin corner points away from the centroid
    assert s.vertex_normals()[0] @ (TET_V[0] - TET_V.mean(0)) > 0


@pytest.mark.parametrize(
    "vertices, faces, match",
    [
        (np.zeros((4, 2)), None, r"\(n, 3\)"),
        (np.zeros((0, 3)), None, "empty"),
        (np.array([[0, 0, np.nan], [1, 0, 0], [0, 1, 0]]), None, "NaN or inf"),
        (np.array([[0, 0, np.inf], [1, 0, 0], [0, 1, 0]]), None, "NaN or inf"),
        (TET_V, TET_F[:, :2], r"\(m, 3\)"),
        (TET_V, TET_F + 1, "out of range.*1-based"),
        (TET_V, -TET_F - 1, "out of range"),
        (TET_V, np.array([[0, 1, 1]]), "repeat a vertex"),
        (TET_V, TET_F + 0.5, "integer"),
        (TET_V, np.zeros((0, 3), int), "faces=None"),
        (np.array([["a", "b", "c"]]), None, "numeric"),
    ],
)
def test_bad_input_names_problem(vertices, faces, match):
    with pytest.raises(ShapeError, match=match):
        Shape(vertices, faces)


def test_bad_normals():
    with pytest.raises(ShapeError, match="normals"):
        Shape(TET_V, None, normals=np.zeros((4, 3)))


def test_clean_merges_duplicates_and_drops_unreferenced():
    # two triangles sharing an edge, but the shared vertices are duplicated; plus a stray vertex
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [5, 5, 5]], float)
    f = np.array([[0, 1, 2], [3, 5, 4]])
    s = Shape(v, f)
    r = s.report()
    assert (r.duplicate_vertices, r.unreferenced_vertices, r.components) == (2, 1, 2)
    with pytest.raises(ShapeError, match="clean"):
        s.check_operators_ready()
    c, old_to_new = s.clean()
    assert c.n_vertices == 4 and c.report().clean and c.report().components == 1
    assert old_to_new[6] == -1 and old_to_new[1] == old_to_new[3]
    np.testing.assert_array_equal(c.vertices[old_to_new[:6]], v[:6])


def test_zero_area_face_reported_and_removed():
    v = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], float)  # 0,1,2 colinear
    s = Shape(v, [[0, 1, 3], [0, 1, 2]])
    assert s.report().degenerate_faces == 1
    c, _ = s.clean()
    assert c.n_faces == 1 and c.report().degenerate_faces == 0


def test_non_manifold_edge_detected():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], float)
    s = Shape(v, [[0, 1, 2], [1, 0, 3], [0, 1, 4]])  # edge (0,1) in three faces
    assert s.report().non_manifold_edges == 1
    with pytest.raises(NonManifoldError, match="robust"):
        s.check_manifold()


def test_normalisations(icosphere):
    s = icosphere.scaled(3.0).transformed(translation=[1, 2, 3])
    a = s.normalized("area")
    assert a.area() == pytest.approx(1.0)
    assert np.allclose(a.vertices.mean(0), 0, atol=1e-9)
    sph = s.normalized("sphere")
    assert np.linalg.norm(sph.vertices, axis=1).max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="area"):
        s.normalized("banana")


def test_content_hash_changes_with_geometry(icosphere):
    moved = icosphere.copy(vertices=icosphere.vertices + 1e-9)
    assert moved.content_hash() != icosphere.content_hash()
    assert icosphere.copy().content_hash() == icosphere.content_hash()


@pytest.mark.parametrize("suffix", [".off", ".obj", ".ply", ".npz"])
def test_mesh_roundtrip(tmp_path, icosphere, suffix):
    path = icosphere.write(tmp_path / f"s{suffix}")
    back = Shape.read(path)
    np.testing.assert_allclose(back.vertices, icosphere.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.faces, icosphere.faces)


def test_cloud_roundtrip_keeps_normals(tmp_path, icosphere):
    cloud = icosphere.to_cloud()
    back = Shape.read(cloud.write(tmp_path / "c.ply"))
    assert not back.is_mesh
    np.testing.assert_allclose(back.normals, cloud.normals, atol=1e-6)


def test_truncated_and_missing_files(tmp_path, icosphere):
    path = icosphere.write(tmp_path / "s.off")
    text = path.read_text()
    (tmp_path / "t.off").write_text(text[: len(text) // 3])
    with pytest.raises(ShapeIOError, match="truncated"):
        Shape.read(tmp_path / "t.off")
    with pytest.raises(ShapeIOError, match="No such file"):
        Shape.read(tmp_path / "nope.off")
    with pytest.raises(ShapeIOError, match="unsupported"):
        Shape.read(path.with_suffix(".stl").write_text("x") and path.with_suffix(".stl"))


def test_pca_normals_on_sphere_cloud(icosphere):
    cloud = Shape(icosphere.vertices)  # no normals given -> PCA, oriented outwards
    cos = np.einsum("ij,ij->i", cloud.vertex_normals(), icosphere.vertices)
    assert cos.min() > 0.99


def test_zero_normals_in_file_are_dropped_with_warning(tmp_path, icosphere):
    import meshio

    n = np.tile([0.0, 0.0, 1.0], (icosphere.n_vertices, 1))
    n[3] = 0.0
    meshio.write(tmp_path / "z.ply", meshio.Mesh(icosphere.vertices, [], point_data={"nx": n[:, 0], "ny": n[:, 1], "nz": n[:, 2]}))
    with pytest.warns(UserWarning, match="zero or NaN"):
        s = Shape.read(tmp_path / "z.ply")
    assert s.normals is None and not s.is_mesh


def test_textured_obj_falls_back_to_trimesh(tmp_path):
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvt 1 0\nvt 0 1\nf 1/1 3/3 2/2\nf 1/1 2/2 4/3\nf 1/1 4/3 3/3\nf 2/2 3/3 4/3\n"
    (tmp_path / "t.obj").write_text(text)
    s = Shape.read(tmp_path / "t.obj")
    assert s.n_vertices == 4 and s.n_faces == 4


def test_sample_surface_is_area_uniform_and_barycentric(icosphere):
    """Samples lie on their triangles (barycentric coordinates reproduce them), are seeded, and
    fall on faces in proportion to face area."""
    s = Shape(icosphere.vertices * [2.0, 1.0, 1.0], icosphere.faces)  # unequal face areas
    pts, face, bary = s.sample_surface(20000, seed=3)
    assert pts.shape == (20000, 3) and face.shape == (20000,) and bary.shape == (20000, 3)
    assert np.allclose(np.einsum("nk,nkd->nd", bary, s.vertices[s.faces[face]]), pts, atol=1e-9)
    assert (bary > -1e-9).all() and np.allclose(bary.sum(1), 1)
    assert np.array_equal(s.sample_surface(50, seed=3)[0], s.sample_surface(50, seed=3)[0])
    a = s.face_areas()
    big = a > np.median(a)  # the larger half of the faces carries its share of the area
    assert abs(big[face].mean() - a[big].sum() / a.sum()) < 0.02
    with pytest.raises(ShapeError, match="mesh"):
        Shape(icosphere.vertices, None).sample_surface(10)
