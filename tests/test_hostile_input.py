"""Hostile input and damaged state: every case gets a clear error (type + the words naming the
fix) or the correct result. Files are tiny and written to tmp_path."""
from __future__ import annotations

import numpy as np
import pytest

from shapelib import NonManifoldError, Shape, ShapeError, ShapeIOError
from shapelib.errors import DatasetNotFoundError
from shapelib.operators import compute_operators, cotan_laplacian, eigenbasis, laplacian, lumped_mass, wks

SQUARE_PLUS_TRI = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], float)  # quad 0123 + tri 142


def _icosphere(sub: int) -> Shape:
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=sub)
    return Shape(m.vertices, m.faces, name=f"ico{sub}")


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- reading files
# meshio calls sys.exit(1) on files it cannot parse; SystemExit is not an Exception, so it used to
# escape Shape.read and end the process. Each case must raise ShapeIOError (or read correctly).


@pytest.mark.parametrize("name, text, words", [
    ("empty.off", "", "is empty"),
    ("empty.ply", "", "is empty"),
    ("empty.obj", "", "is empty"),
    ("blank.off", "  \n\n", "is empty"),
    ("comments.obj", "# nothing here\n", "no vertices"),
    ("header.off", "OOF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "not an OFF file"),
    ("garbage.ply", "ply\nformat ascii 1.0\nelement vertex 3\nend_header\n0 0\n", "truncated or corrupted"),
    ("truncated.off", "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n", "truncated"),
    ("fewfaces.off", "OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n", "truncated"),
])
def test_unreadable_files_raise_shape_io_error_never_exit(tmp_path, name, text, words):
    with pytest.raises(ShapeIOError, match=words) as exc:
        Shape.read(_write(tmp_path, name, text))
    assert "re-download" in str(exc.value) or "re-export" in str(exc.value) or "rename" in str(exc.value)


@pytest.mark.parametrize("text", [
    "NOFF\n3 1 0\n0 0 0 0 0 1\n1 0 0 0 0 1\n0 1 0 0 0 1\n3 0 1 2\n",  # vertex normals
    "COFF\n3 1 0\n0 0 0 255 0 0 255\n1 0 0 0 255 0 255\n0 1 0 0 0 255 255\n3 0 1 2\n",  # vertex colours
    "OFF 3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",  # counts on the header line
])
def test_off_header_variants_are_read(tmp_path, text):
    s = Shape.read(_write(tmp_path, "t.off", text))
    np.testing.assert_array_equal(s.vertices, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(s.faces, [[0, 1, 2]])


PLY_MIXED = """ply
format ascii 1.0
element vertex 5
property float x
property float y
property float z
element face 2
property list uchar int vertex_indices
end_header
0 0 0
1 0 0
1 1 0
0 1 0
2 0 0
4 0 1 2 3
3 1 4 2
"""


@pytest.mark.parametrize("name, text", [
    ("m.off", "OFF\n5 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n2 0 0\n4 0 1 2 3\n3 1 4 2\n"),
    ("m.obj", "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\nf 1 2 3 4\nf 2 5 3\n"),
    ("m.ply", PLY_MIXED),
])
def test_mixed_triangles_and_quads_are_triangulated(tmp_path, name, text):
    """Quads used to be dropped (.obj/.ply) or to end the process (.off)."""
    s = Shape.read(_write(tmp_path, name, text))
    np.testing.assert_allclose(s.vertices, SQUARE_PLUS_TRI)
    assert s.n_faces == 3 and s.area() == pytest.approx(1.5)  # unit square (2 triangles) + half-unit triangle
    assert s.report().clean and s.report().boundary_edges == 5  # one sheet: edge 1-2 and the diagonal shared


def test_textured_obj_with_per_corner_uvs_is_one_welded_mesh(tmp_path):
    """Every corner has its own texture coordinate: it used to become a triangle soup (all
    eigenvalues zero); read geometry-only, the vertices stay shared."""
    ico = _icosphere(1)
    lines = [f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in ico.vertices]
    lines += [f"vt {u / (3 * ico.n_faces):.6f} 0.5" for u in range(3 * ico.n_faces)]
    lines += [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in ico.vertices]
    lines += ["f " + " ".join(f"{v + 1}/{3 * i + c + 1}/{v + 1}" for c, v in enumerate(face))
              for i, face in enumerate(ico.faces)]
    s = Shape.read(_write(tmp_path, "textured.obj", "\n".join(lines) + "\n"))
    assert s.n_vertices == ico.n_vertices and s.report().boundary_edges == 0
    np.testing.assert_array_equal(s.faces, ico.faces)
    ev = compute_operators(s, k=6, cache=False).evals
    np.testing.assert_allclose(ev, compute_operators(ico, k=6, cache=False).evals, rtol=1e-6, atol=1e-9)
    assert ev[1] > 1.0  # a closed sphere, not a soup of 0-eigenvalue pieces


def test_npz_without_vertices_and_with_pickles(tmp_path):
    np.savez(tmp_path / "a.npz", points=np.zeros((3, 3)))
    with pytest.raises(ShapeIOError, match=r"no 'vertices'.*np\.savez\(path, vertices="):
        Shape.read(tmp_path / "a.npz")
    np.savez(tmp_path / "p.npz", vertices=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ShapeIOError, match="pickle.*plain numeric arrays"):
        Shape.read(tmp_path / "p.npz")
    (tmp_path / "t.npz").write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(ShapeIOError, match="truncated"):
        Shape.read(tmp_path / "t.npz")


# ----------------------------------------------------------------------------- arrays that already fail early


@pytest.mark.parametrize("vertices, faces, words", [
    (np.array([[0, 0, np.nan], [1, 0, 0], [0, 1, 0]]), None, "NaN or inf"),
    (np.array([[0, 0, np.inf], [1, 0, 0], [0, 1, 0]]), [[0, 1, 2]], "NaN or inf"),
    (np.eye(3), [[1, 2, 3]], "subtract 1.*1-based"),
    (np.eye(3), [[0, 1, 5]], "out of range"),
    (np.eye(3), [[0, -1, 2]], "out of range"),
])
def test_bad_arrays_fail_at_construction(vertices, faces, words):
    with pytest.raises(ShapeError, match=words):
        Shape(vertices, faces)


def test_non_manifold_edge_error_offers_robust_laplacian():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], float)
    s = Shape(v, [[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    with pytest.raises(NonManifoldError, match="method='robust'"):
        compute_operators(s, cache=False)
    assert compute_operators(s, method="robust", cache=False).evals[1] > 0  # the offered fix works


def test_bowtie_vertex_is_reported_and_the_robust_laplacian_handles_it():
    """Two tetrahedra touching at one vertex: no non-manifold edge, one non-manifold vertex."""
    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    v = np.vstack([tet, -tet[1:]])
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    s = Shape(v, np.vstack([f, np.where(f == 0, 0, f + 3)[:, ::-1]]))
    r = s.report()
    assert (r.non_manifold_edges, r.non_manifold_vertices, r.boundary_edges) == (0, 1, 0)
    np.testing.assert_array_equal(s.bowtie_vertices(), [0])
    assert _icosphere(1).report().non_manifold_vertices == 0
    with pytest.raises(NonManifoldError, match=r"bow-tie.*\[0\].*method='robust'"):
        laplacian(s, method="cotan")  # the strict mode
    L, M = laplacian(s, method="robust")
    assert (M > 0).all() and abs(L @ np.ones(7)).max() < 1e-9
    with pytest.warns(UserWarning, match=r"bow-tie.*\[0\].*method='robust'.*method='cotan' to refuse"):
        La, Ma = laplacian(s)  # the default falls back to the robust Laplacian (issue #36)
    assert abs(La - L).max() == 0 and np.array_equal(Ma, M)


def test_disconnected_components_give_one_zero_eigenvalue_each():
    a = _icosphere(2)
    two = Shape(np.vstack([a.vertices, a.vertices + 3]), np.vstack([a.faces, a.faces + a.n_vertices]))
    ev = compute_operators(two, k=8, cache=False).evals
    assert two.report().components == 2 and np.sum(ev < 1e-8) == 2 and ev[2] > 1.0


# ----------------------------------------------------------------------------- the validation step of every operator


def _uv_sphere_with_seam(n_lat: int = 24, n_lon: int = 48) -> Shape:
    """A latitude-longitude sphere as texture exporters write it: the seam column j = n_lon is an
    exact copy of j = 0 and each pole is repeated once per column."""
    th = np.linspace(0, np.pi, n_lat + 1)[:, None]
    ph = 2 * np.pi * (np.arange(n_lon + 1) % n_lon)[None, :] / n_lon
    x, y, z = np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th) * np.ones_like(ph)
    x[[0, -1]], y[[0, -1]] = 0.0, 0.0
    v = np.stack([x, y, z], -1).reshape(-1, 3)
    idx = np.arange(len(v)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    area = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    f = f[area > 1e-12]  # drop the pole triangles between two copies of a pole
    used, f = np.unique(f, return_inverse=True)
    return Shape(v[used], f.reshape(-1, 3), name="uv_sphere")


def test_seam_duplicates_are_flagged_and_welding_fixes_the_spectrum():
    s = _uv_sphere_with_seam()
    assert s.report().seam_vertices > 0
    # what used to happen: the operators see a sphere cut open along the seam
    cut = eigenbasis(cotan_laplacian(s.vertices, s.faces), lumped_mass(s.vertices, s.faces), k=4)[0]
    assert cut[1] < 1.8
    with pytest.raises(ShapeError, match=r"seam.*Weld them: shape, old_to_new = shape\.clean\(\)"):
        compute_operators(s, k=4, cache=False)
    welded, old_to_new = s.clean()
    assert welded.report().seam_vertices == 0 and welded.report().boundary_edges == 0
    np.testing.assert_array_equal(welded.vertices[old_to_new], s.vertices)
    ev = compute_operators(welded, k=4, cache=False).evals
    np.testing.assert_allclose(ev[1:4], 2.0, rtol=0.02)  # l = 1 of the unit sphere, three copies


def test_coincident_interior_vertices_are_not_a_seam():
    """Remeshed datasets (FAUST_r) hold coincident vertices inside a closed surface: each has a
    full fan, welding would make a bow-tie; they are left alone."""
    a = _icosphere(1)
    mirrored = 2 * a.vertices[0] - a.vertices  # touches the first sphere at vertex 0, with its own vertex
    s = Shape(np.vstack([a.vertices, mirrored]), np.vstack([a.faces, a.faces[:, ::-1] + a.n_vertices]))
    assert s.report().duplicate_vertices == 1 and s.report().seam_vertices == 0
    assert compute_operators(s, k=4, cache=False).evals[2] > 1.0  # no error: two closed spheres


@pytest.mark.parametrize("points, words", [
    (np.c_[np.linspace(0, 1, 50), 2 * np.linspace(0, 1, 50), np.zeros(50)], "lie on one line"),
    (np.ones((40, 3)), "coincide"),
])
def test_degenerate_point_clouds_raise_clear_errors(points, words):
    from shapelib.geodesics import geodesic_distances

    cloud = Shape(points)
    with pytest.raises(ShapeError, match=words + ".*spread over a surface"):
        compute_operators(cloud, k=4, cache=False)
    with pytest.raises(ShapeError, match=words):
        geodesic_distances(cloud, 0, method="heat")


def test_eigenvalues_do_not_depend_on_the_length_unit():
    """At ×1e-8 ARPACK used to skip copies of the sphere's repeated eigenvalues (relative error
    up to 0.27 at k = 64); the solve now runs at unit total mass."""
    s = _icosphere(4)  # 2,562 vertices: the sparse (ARPACK) path
    ref = compute_operators(s, k=64, cache=False).evals
    for scale in (1e-8, 1e-6, 1e8):
        ev = compute_operators(s.scaled(scale), k=64, cache=False).evals * scale**2
        np.testing.assert_allclose(ev, ref, rtol=1e-7, atol=1e-9)
    # multiplicities kept: 1, 3, 5, 7 copies (to the discretisation's splitting)
    groups = np.split(ref[:16], [1, 4, 9])
    for l, g in enumerate(groups):
        assert len(g) == 2 * l + 1 and np.ptp(g) < 0.02 * max(g.max(), 1), (l, g)


@pytest.mark.parametrize("scale", [1e160, 1e-160])
def test_extreme_coordinates_are_named_as_such_not_zero_area(scale):
    s = _icosphere(2).scaled(scale)
    assert s.report().degenerate_faces == 0  # used to be every face at 1e±160
    with pytest.raises(ShapeError, match=r"over/underflow.*shape\.scaled\("):
        compute_operators(s, k=4, cache=False)
    fixed = s.normalized("area")  # the offered fix
    assert fixed.area() == pytest.approx(1.0)
    ev = compute_operators(fixed, k=4, cache=False).evals
    ref = compute_operators(_icosphere(2).normalized("area"), k=4, cache=False).evals
    np.testing.assert_allclose(ev, ref, rtol=1e-8, atol=1e-9)


def test_wks_on_a_single_triangle_is_a_clear_error_not_nan():
    tri = Shape(np.eye(3), [[0, 1, 2]])
    ops = compute_operators(tri, k=8, cache=False)
    with pytest.raises(ShapeError, match="two distinct nonzero eigenvalues.*finer mesh"):
        wks(ops.evals, ops.evecs)
    assert np.isfinite(compute_operators(_icosphere(1), k=8, cache=False).wks(10)).all()


def test_heat_geodesics_between_components_are_infinite():
    from shapelib.geodesics import geodesic_distances, geodesic_matrix

    a = _icosphere(1)
    two = Shape(np.vstack([a.vertices, a.vertices + 5]), np.vstack([a.faces, a.faces + a.n_vertices]))
    d = geodesic_distances(two, 0)
    n = a.n_vertices
    assert np.isfinite(d[:n]).all() and np.isinf(d[n:]).all()
    np.testing.assert_allclose(d[:n], geodesic_distances(a, 0), atol=1e-9)
    D = geodesic_matrix(two, cache=False)
    assert np.isinf(D[:n, n:]).all() and np.isfinite(D[:n, :n]).all() and np.isfinite(D[n:, n:]).all()


# ----------------------------------------------------------------------------- the operator cache


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """Operators cached in tmp_path; returns the list that grows by one per eigensolve."""
    import shapelib.operators as ops_mod

    monkeypatch.setenv("SHAPELIB_CACHE", str(tmp_path / "cache"))
    calls = []
    orig = ops_mod.eigenbasis
    monkeypatch.setattr(ops_mod, "eigenbasis", lambda *a, **k: calls.append(k.get("k")) or orig(*a, **k))
    return calls


def _only_cache_file(tmp_path):
    files = sorted((tmp_path / "cache" / "operators").glob("*.npz"))
    assert len(files) == 1
    return files[0]


def _rewrite(path, drop=(), **replace):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k not in drop}
    arrays.update(replace)
    np.savez(path, **arrays)


@pytest.mark.parametrize("damage", ["drop_evecs", "shrink", "wrong_M", "bad_index", "truncate", "pickle"])
def test_damaged_operator_cache_is_recomputed(counted, tmp_path, damage):
    s = _icosphere(2)
    good = compute_operators(s, k=16)
    path = _only_cache_file(tmp_path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    if damage == "drop_evecs":
        _rewrite(path, drop=("evecs",))
    elif damage == "shrink":  # a consistent but smaller basis: 5 pairs for 16 asked
        _rewrite(path, evals=arrays["evals"][:5], evecs=arrays["evecs"][:, :5])
    elif damage == "wrong_M":
        _rewrite(path, M=arrays["M"][:-3])
    elif damage == "bad_index":
        _rewrite(path, L_row=arrays["L_row"] + s.n_vertices)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    else:
        _rewrite(path, evals=np.array([{"evil": 1}], dtype=object))
    if damage == "shrink":  # not an error: a smaller basis is simply recomputed
        again = compute_operators(s, k=16)
    else:
        with pytest.warns(UserWarning, match="recomputing"):
            again = compute_operators(s, k=16)
    assert len(counted) == 2 and again.evecs.shape == (s.n_vertices, 16)
    np.testing.assert_allclose(again.evals, good.evals, atol=1e-9)
    third = compute_operators(s, k=16)  # the rewritten file is good again
    assert len(counted) == 2 and third.evecs.shape == (s.n_vertices, 16)


def test_every_disk_cache_checks_its_arrays(tmp_path, monkeypatch):
    """Any cached file (synthetic data, geodesic matrices...) lists its arrays; one that lost an
    array, or fails the caller's check, is recomputed with a warning instead of a KeyError."""
    from shapelib.cache import disk_cache

    monkeypatch.setenv("SHAPELIB_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(4.0), "b": np.ones((2, 2))}

    disk_cache("demo", "h", {}, compute)
    (path,) = (tmp_path / "demo").glob("*.npz")
    _rewrite(path, drop=("b",))
    with pytest.warns(UserWarning, match=r"missing arrays \['b'\]\); recomputing"):
        out = disk_cache("demo", "h", {}, compute)
    assert len(calls) == 2 and set(out) == {"a", "b"}
    check = lambda a: None if a["a"].shape == (5,) else "a has the wrong length"  # noqa: E731
    with pytest.warns(UserWarning, match=r"wrong length\); recomputing"):
        disk_cache("demo", "h", {}, compute, check=check)
    assert len(calls) == 3


def test_smaller_k_reuses_the_larger_cached_basis(counted, tmp_path):
    s = _icosphere(2)
    big = compute_operators(s, k=64)
    small = compute_operators(s, k=16)
    assert counted == [64]
    np.testing.assert_array_equal(small.evals, big.evals[:16])
    np.testing.assert_array_equal(small.evecs, big.evecs[:, :16])
    assert small.params["k"] == 16
    np.testing.assert_allclose(small.evals, compute_operators(s, k=16, cache=False).evals, atol=1e-9)
    compute_operators(s, k=80)  # larger: recomputed and replaces the file
    assert counted == [64, 16, 80]
    _only_cache_file(tmp_path)


def test_uncreatable_cache_folder_names_shapelib_cache(tmp_path, monkeypatch):
    from shapelib.config import cache_dir
    from shapelib.errors import CacheDirError

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SHAPELIB_CACHE", str(blocker / "sub"))
    with pytest.raises(CacheDirError, match="SHAPELIB_CACHE.*writable folder"):
        cache_dir()
    with pytest.warns(UserWarning, match="without the cache"):
        ops = compute_operators(_icosphere(1), k=4)  # still computes
    assert ops.evals[1] > 1.0


# ----------------------------------------------------------------------------- datasets


def test_dataset_with_empty_required_folders_counts_as_missing(tmp_path, monkeypatch):
    from shapelib.data import real, registry

    monkeypatch.setenv("SHAPELIB_DATA", str(tmp_path))
    (tmp_path / "faust_r" / "vtx_5k" / "corres").mkdir(parents=True)
    info = registry.get("faust_r")
    assert not info.found() and info.status() == "empty"
    assert "empty" in registry.status_table().split("faust_r")[1].splitlines()[0]
    with pytest.raises(DatasetNotFoundError, match=r"empty folder.*SHAPELIB_DATA"):
        real.r_dataset("faust_r")  # used to return 0 shapes
    (tmp_path / "faust_r" / "vtx_5k" / "a.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    (tmp_path / "faust_r" / "vtx_5k" / "corres" / "a.vts").write_text("1\n2\n3\n")
    assert info.found() and len(real.r_dataset("faust_r")) == 1


def test_missing_dataset_names_the_fix(tmp_path, monkeypatch):
    from shapelib.data import real

    monkeypatch.setenv("SHAPELIB_DATA", str(tmp_path / "nothing"))
    with pytest.raises(DatasetNotFoundError, match="SHAPELIB_DATA.*fetch"):
        real.tosca_pyfm()


# ----------------------------------------------------------------------------- models


def test_predict_labels_restores_the_training_mode():
    import torch

    from shapelib.train import predict_labels

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.drop = torch.nn.Linear(3, 4), torch.nn.Dropout(0.5)

        def forward(self, x, ops, rows=None):
            return self.lin(self.drop(x))

    net = Net()
    item = {"x": torch.randn(10, 3), "ops": None}
    a = predict_labels(net, item)
    assert net.training  # a user's training loop keeps its dropout
    np.testing.assert_array_equal(a, predict_labels(net, item))  # deterministic: eval mode inside
    net.eval()
    predict_labels(net, item)
    assert not net.training


def test_implicit_diffusion_uses_sparse_lu_on_cpu_as_documented(monkeypatch):
    import scipy.sparse.linalg as sla
    import torch

    from shapelib.diffusion import LearnedTimeDiffusion

    doc = LearnedTimeDiffusion.__doc__
    assert "LU" in doc and "CPU" in doc and "conjugate gradients" in doc
    ops = compute_operators(_icosphere(1), k=8, cache=False).to_torch(dtype=torch.float64)
    calls = []
    orig = sla.splu
    monkeypatch.setattr(sla, "splu", lambda *a, **k: calls.append(1) or orig(*a, **k))
    layer = LearnedTimeDiffusion(2, method="implicit", init_time=0.1).double()
    y = layer(torch.randn(42, 2, dtype=torch.float64), ops)
    assert y.shape == (42, 2) and len(calls) == 2  # one LU per channel


# ----------------------------------------------------------------------------- round 2 (issue #36)


def test_editing_vertices_in_place_is_seen_by_every_memo(counted, tmp_path):
    """``s.vertices *= 2`` after compute_operators used to return the stale cached operators
    (λ1 stayed 2.0 instead of 0.5): hash, normals, edges and report were memoised on the arrays."""
    s = _icosphere(2)
    ev = compute_operators(s, k=4).evals
    h, n0, r0 = s.content_hash(), s.vertex_normals(), s.report()
    s.vertices *= 2
    assert s.content_hash() != h and s.report() is not r0
    np.testing.assert_allclose(compute_operators(s, k=4).evals, ev / 4, rtol=1e-9, atol=1e-12)
    assert len(counted) == 2  # recomputed, not read from the cache file of the old vertices
    R = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # a quarter turn about z: normals must follow
    s.vertices[:] = s.vertices @ R.T
    np.testing.assert_allclose(s.vertex_normals(), n0 @ R.T, atol=1e-12)
    s.vertices = s.vertices @ R / 2  # assignment goes through the same checks
    assert s.content_hash() == h
    np.testing.assert_allclose(compute_operators(s, k=4).evals, ev, rtol=1e-12)
    assert len(counted) == 2  # back to the first geometry: its cache file is used again


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.vertices.__setitem__((3, 1), np.nan), "NaN or inf at 1 vertices"),
    (lambda s: s.faces.__setitem__((0, 0), 10**6), r"out of range \[0, 1000000\]"),
    (lambda s: s.faces.__setitem__((0, 0), s.faces[0, 1]), "repeat a vertex index"),
])
def test_invalid_edits_in_place_are_refused_at_the_next_use(edit, words):
    s = _icosphere(1)
    compute_operators(s, k=4, cache=False)
    edit(s)
    with pytest.raises(ShapeError, match=words):
        compute_operators(s, k=4, cache=False)
    with pytest.raises(ShapeError, match="new array has 5 rows but the faces"):
        s.vertices = np.zeros((5, 3))
    with pytest.raises(ShapeError, match="NaN"):
        s.vertices = np.full((s.n_vertices, 3), np.nan)


def test_returned_normals_and_edges_are_copies():
    s = _icosphere(1)
    n, e = s.vertex_normals(), s.edges()
    n *= -1
    e[:] = 0
    assert (np.einsum("ij,ij->i", s.vertex_normals(), s.vertices) > 0).all() and s.edges().max() > 0


@pytest.mark.parametrize("k", [-5, 0, 2.5, True, "8"])
def test_non_positive_or_non_integer_k_is_refused(k):
    """k=-5 used to return n − 5 eigenpairs (a slice), k=0 an empty basis."""
    with pytest.raises(ValueError, match=r"k=.*must be a positive integer"):
        compute_operators(_icosphere(1), k=k, cache=False)
    with pytest.raises(ValueError, match=r"eigenbasis\(k=.*positive integer"):
        s = _icosphere(1)
        eigenbasis(cotan_laplacian(s.vertices, s.faces), lumped_mass(s.vertices, s.faces), k=k)
    assert compute_operators(_icosphere(1), k=np.int64(4), cache=False).evals.shape == (4,)


def _two_fans(n: int = 8) -> Shape:
    """Two cone-shaped triangle fans (open disks) whose apices are ONE vertex: a bow-tie."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.c_[np.cos(t), np.sin(t), np.ones(n)]
    v = np.vstack([[0, 0, 0], ring, ring * [1, 1, -1]])
    f = [[0, 1 + i, 1 + (i + 1) % n] for i in range(n)] + [[0, 1 + n + (i + 1) % n, 1 + n + i] for i in range(n)]
    return Shape(v, f, name="fans")


def test_bowtie_meshes_get_the_robust_laplacian_by_default_and_cotan_stays_strict(counted):
    """Every mesh of the original SCAPE release has one bow-tie vertex: compute_operators used to
    refuse them all unless the user passed method='robust'."""
    s = _two_fans()
    for _ in range(2):  # through the disk cache: one eigensolve, the warning every time
        with pytest.warns(UserWarning, match="bow-tie"):
            assert compute_operators(s, k=6).params["method"] == "robust"
    assert len(counted) == 1
    assert s.report().non_manifold_vertices == 1 and s.report().non_manifold_edges == 0
    with pytest.warns(UserWarning, match=r"'fans'.*1 non-manifold \(bow-tie\).*\[0\].*using method='robust'"):
        ops = compute_operators(s, k=6, cache=False)
    assert ops.params["method"] == "robust"
    ref = compute_operators(s, k=6, method="robust", cache=False)
    np.testing.assert_array_equal(ops.evals, ref.evals)
    L = ops.L.toarray()
    assert np.allclose(L, L.T) and abs(L.sum(1)).max() < 1e-12 and np.linalg.eigvalsh(L).min() > -1e-12
    with pytest.raises(NonManifoldError, match=r"bow-tie.*\[0\]"):
        compute_operators(s, k=6, method="cotan", cache=False)  # the strict mode


def test_two_spheres_pinched_at_a_bowtie_vertex_keep_their_spectrum():
    """The fallback is a sound operator: two unit spheres sharing one vertex behave as two spheres
    (the first nonzero eigenvalue of each, 2, five times; a weak coupling through the pinch)."""
    a = _icosphere(2)
    n = a.n_vertices
    other = np.r_[0, n + np.arange(n - 1)]  # vertex j of the mirrored copy; its vertex 0 is shared
    v = np.vstack([a.vertices, (2 * a.vertices[0] - a.vertices)[1:]])
    s = Shape(v, np.vstack([a.faces, other[a.faces[:, ::-1]]]))
    np.testing.assert_array_equal(s.bowtie_vertices(), [0])
    with pytest.warns(UserWarning, match="bow-tie"):
        ev = compute_operators(s, k=8, cache=False).evals
    sphere = compute_operators(a, k=4, cache=False).evals[1]
    assert ev[1] < 0.15 * sphere
    np.testing.assert_allclose(ev[2:7], sphere, rtol=1e-3)


@pytest.mark.parametrize("dtype, sigma, backend", [
    ("float32", 1e-25, "dense"),  # 1/σ² overflows float32: the map was NaN
    ("float64", 1e-170, "torch"),  # σ² underflows to 0: ZeroDivisionError
    ("float64", 1e-170, "dense"),
])
def test_softmap_sigma_too_small_for_the_dtype(dtype, sigma, backend):
    import torch

    from shapelib.kernels import SoftMap

    dt = getattr(torch, dtype)
    F1, F2 = torch.randn(30, 3, dtype=dt), torch.randn(20, 3, dtype=dt)
    with pytest.raises(ValueError, match=rf"sigma={sigma:g} is too small for torch.{dtype}.*overflows.*argmax"):
        SoftMap(F1, F2, sigma, backend=backend)
    out = SoftMap(F1, F2, 1e-2, backend=backend) @ torch.ones(30, 2, dtype=dt)
    assert torch.isfinite(out).all() and torch.allclose(out, torch.ones_like(out))  # rows of Π sum to 1


@pytest.mark.parametrize("which", ["desc1", "desc2"])
def test_descriptor_fmap_refuses_nan_descriptors(which):
    """A NaN descriptor used to reach MKL (a parameter error on stderr) and torch (INTERNAL ASSERT)."""
    from shapelib.fmaps import SpectralBasis, descriptor_fmap

    s = _icosphere(2)
    ops = compute_operators(s, k=20, cache=False)
    basis = SpectralBasis.from_operators(ops)
    d = {"desc1": ops.hks(8), "desc2": ops.hks(8)}
    d[which][17, 5] = np.nan
    with pytest.raises(ValueError, match=rf"{which} contains NaN or inf at 1 entries \(first: vertex 17, column 5\)"):
        descriptor_fmap(d["desc1"], d["desc2"], basis, basis, k1=10, k2=10, ops1=ops, ops2=ops)


def test_spectral_basis_from_shape_advice_is_followable():
    """k ≥ n used to advise compute_operators(shape, k=k), which caps k again."""
    from shapelib.fmaps import SpectralBasis

    tet = Shape(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float),
                [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    with pytest.raises(ValueError, match=r"from_shape\(k=4\).*4 vertices.*at most n − 1 = 3.*Pass k ≤ 3"):
        SpectralBasis.from_shape(tet, k=4)
    assert SpectralBasis.from_shape(tet, k=3).k == 3  # the advice works
