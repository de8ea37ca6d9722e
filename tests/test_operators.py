"""Operators: real properties (known spectra, exactness, PSD, caching, bad input)."""
import numpy as np
import pytest
import scipy.sparse as sp

from shapelib import NonManifoldError, Shape, ShapeError
from shapelib.operators import (
    compute_operators,
    cotan_laplacian,
    eigenbasis,
    heat_implicit,
    heat_spectral,
    hks,
    laplacian,
    lumped_mass,
    wks,
)


def sphere_eigenvalues(lmax):
    return np.concatenate([[l * (l + 1)] * (2 * l + 1) for l in range(lmax + 1)])


def test_cotan_matches_potpourri3d(icosphere):
    import potpourri3d as pp3d

    v = icosphere.vertices * [1.0, 1.3, 0.7]  # anisotropic: obtuse angles appear
    L = cotan_laplacian(v, icosphere.faces)
    assert abs(L - pp3d.cotan_laplacian(v, icosphere.faces)).max() < 1e-12
    np.testing.assert_allclose(lumped_mass(v, icosphere.faces), pp3d.vertex_areas(v, icosphere.faces), atol=1e-15)


def test_cotan_equals_robust_laplacian_on_delaunay_mesh(icosphere):
    import robust_laplacian

    L, M = laplacian(icosphere)
    Lr, Mr = robust_laplacian.mesh_laplacian(icosphere.vertices, icosphere.faces, mollify_factor=0)
    assert abs(L - Lr).max() < 1e-12
    np.testing.assert_allclose(M, Mr.diagonal(), atol=1e-15)


def test_laplacian_symmetric_psd_constant_nullspace(icosphere):
    L, M = laplacian(icosphere.transformed(np.diag([1, 2, 0.5])))
    assert abs(L - L.T).max() < 1e-12
    np.testing.assert_allclose(L @ np.ones(L.shape[0]), 0, atol=1e-10)
    assert (L.diagonal() > 0).all()
    x = np.random.default_rng(0).normal(size=(L.shape[0], 5))
    assert (np.einsum("ij,ij->j", x, L @ x) > 0).all()  # PSD (sign convention M^-1 L ~ -Δ)
    assert sp.linalg.eigsh(L, k=1, which="SA", return_eigenvectors=False)[0] > -1e-8


def test_mass_sums_to_area(icosphere):
    s = icosphere.transformed(np.diag([2, 1, 3]))
    _, M = laplacian(s)
    assert M.sum() == pytest.approx(s.area(), rel=1e-12)


def test_sphere_spectrum(icosphere):
    """Unit sphere: λ = l(l+1) with multiplicity 2l+1; < 1.5 % for l ≤ 5 at 2.5k vertices."""
    evals, evecs = eigenbasis(*laplacian(icosphere), k=36)
    ref = sphere_eigenvalues(5)
    assert abs(evals[0]) < 1e-8
    assert np.max(np.abs(evals[1:] - ref[1:]) / ref[1:]) < 0.015


def test_eigenbasis_orthonormal_in_mass(icosphere):
    L, M = laplacian(icosphere)
    evals, evecs = eigenbasis(L, M, k=40)
    np.testing.assert_allclose(evecs.T @ (M[:, None] * evecs), np.eye(40), atol=1e-9)
    np.testing.assert_allclose(L @ evecs, M[:, None] * evecs * evals, atol=1e-7)
    assert np.all(np.diff(evals) >= -1e-10)


def test_sparse_and_dense_eigensolvers_agree():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3)  # 642 vertices: dense path
    big = trimesh.creation.icosphere(subdivisions=4)  # 2562: ARPACK path
    e_small, _ = eigenbasis(*laplacian(Shape(m.vertices, m.faces)), k=16)
    e_big, _ = eigenbasis(*laplacian(Shape(big.vertices, big.faces)), k=16)
    np.testing.assert_allclose(e_small[1:], e_big[1:], rtol=0.03)


def test_disconnected_components_give_multiple_zero_eigenvalues(icosphere):
    v = np.vstack([icosphere.vertices, icosphere.vertices + [3, 0, 0]])
    f = np.vstack([icosphere.faces, icosphere.faces + icosphere.n_vertices])
    two = Shape(v, f)
    assert two.report().components == 2
    evals, evecs = eigenbasis(*laplacian(two), k=8)
    assert np.all(np.abs(evals[:2]) < 1e-8) and evals[2] > 1.9  # two constants, then l=1 (λ=2)


def test_gradient_exact_for_linear_function_on_plane(plane):
    s = plane
    ops = compute_operators(s, k=10, cache=False)
    u = 2.0 * s.vertices[:, 0] - 3.0 * s.vertices[:, 1] + 0.5
    g = ops.gradient(u)
    g3 = g.real[:, None] * ops.frames[:, 0] + g.imag[:, None] * ops.frames[:, 1]
    np.testing.assert_allclose(g3, np.tile([2.0, -3.0, 0.0], (s.n_vertices, 1)), atol=1e-5)
    # same on the point cloud of those vertices (k-NN stencil), normals given
    cloud = Shape(s.vertices, normals=np.tile([0.0, 0.0, 1.0], (s.n_vertices, 1)))
    opc = compute_operators(cloud, k=10, n_neighbors=8, cache=False)
    gc = opc.gradient(u)
    g3c = gc.real[:, None] * opc.frames[:, 0] + gc.imag[:, None] * opc.frames[:, 1]
    np.testing.assert_allclose(g3c, np.tile([2.0, -3.0, 0.0], (s.n_vertices, 1)), atol=1e-5)


def test_frames_right_handed(icosphere):
    fr = compute_operators(icosphere, k=5, cache=False).frames
    np.testing.assert_allclose(np.linalg.det(fr), 1.0, atol=1e-10)
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", fr, fr), np.broadcast_to(np.eye(3), fr.shape), atol=1e-10)


def test_heat_implicit_matches_spectral_for_small_t(icosphere):
    L, M = laplacian(icosphere)
    evals, evecs = eigenbasis(L, M, k=128)
    u = np.exp(-4 * np.sum((icosphere.vertices - [0, 0, 1]) ** 2, axis=1))  # smooth bump, max 1
    for t in (1e-3, 1e-2, 3e-2):
        a = heat_spectral(u, evals, evecs, M, t)
        b = heat_implicit(u, L, M, t, steps=20)
        assert np.abs(a - b).max() < 5e-3, t
    # heat preserves total mass
    assert heat_implicit(u, L, M, 0.5) @ M == pytest.approx(u @ M, rel=1e-10)


def test_hks_scale_invariance_and_wks_shape(icosphere):
    o1 = compute_operators(icosphere, k=36, cache=False)  # whole l-groups: truncation must not split a degenerate eigenspace
    o2 = compute_operators(icosphere.scaled(2.5), k=36, cache=False)
    np.testing.assert_allclose(o1.hks(), o2.hks(), rtol=1e-6)
    assert not np.allclose(hks(o1.evals, o1.evecs), hks(o2.evals, o2.evecs), rtol=1e-3)
    # on a sphere every point is alike: HKS is constant across vertices (up to discretisation)
    h = o1.hks()
    assert (h.std(0) / h.mean(0)).max() < 0.02
    w = wks(o1.evals, o1.evecs, n_energies=20)
    assert w.shape == (icosphere.n_vertices, 20) and np.isfinite(w).all() and (w >= 0).all()


def test_point_cloud_spectrum_close_to_mesh(icosphere):
    e_mesh = compute_operators(icosphere, k=16, cache=False).evals
    e_cloud = compute_operators(icosphere.to_cloud(), k=16, cache=False).evals
    np.testing.assert_allclose(e_cloud[1:], e_mesh[1:], rtol=0.05)


def test_operators_cache_hit_miss_and_corruption(icosphere, tmp_path, monkeypatch):
    monkeypatch.setenv("SHAPELIB_CACHE", str(tmp_path))
    calls = []
    import shapelib.operators as ops_mod

    orig_eig = ops_mod.eigenbasis
    monkeypatch.setattr(ops_mod, "eigenbasis", lambda *a, **k: calls.append(1) or orig_eig(*a, **k))
    a = compute_operators(icosphere, k=12)
    b = compute_operators(icosphere, k=12)  # hit
    assert len(calls) == 1
    np.testing.assert_array_equal(a.evecs, b.evecs)
    compute_operators(icosphere, k=13)  # a larger basis: miss, replaces the file
    assert len(calls) == 2
    assert len(compute_operators(icosphere, k=12).evals) == 12 and len(calls) == 2  # smaller k: reuses it
    compute_operators(icosphere, k=12, method="robust")  # other parameters: miss
    assert len(calls) == 3
    files = sorted((tmp_path / "operators").glob("*.npz"))
    assert len(files) == 2
    for f in files:  # truncate every file: must recompute, not crash
        f.write_bytes(f.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable"):
        c = compute_operators(icosphere, k=12)
    assert len(calls) == 4
    np.testing.assert_allclose(c.evals, a.evals, atol=1e-9)
    np.testing.assert_array_equal(c.evecs, a.evecs)  # the solver is deterministic (seeded start vector)


def test_cotan_rejects_bad_meshes_with_fix():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], float)
    nm = Shape(v, [[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    with pytest.raises(NonManifoldError, match="method='robust'"):
        laplacian(nm)
    L, M = laplacian(nm, method="robust")  # the suggested fix works
    assert L.shape == (5, 5) and (M > 0).all()
    stray = Shape(np.vstack([v, [9, 9, 9]]), [[0, 1, 2]])
    with pytest.raises(ShapeError, match="clean"):
        compute_operators(stray, cache=False)
    with pytest.raises(ValueError, match="choose"):
        laplacian(Shape(v, [[0, 1, 2]]), method="nope")
    with pytest.raises(ValueError, match="k < n"):
        eigenbasis(sp.identity(3, format="csc"), np.ones(3), k=3)


def test_to_torch_matches_numpy(icosphere):
    import torch

    ops = compute_operators(icosphere, k=8, cache=False)
    t = ops.to_torch(dtype=torch.float64)
    u = np.random.default_rng(1).normal(size=(icosphere.n_vertices, 2))
    np.testing.assert_allclose((t["L"] @ torch.from_numpy(u)).numpy(), ops.L @ u, atol=1e-10)
    np.testing.assert_allclose((t["grad_y"] @ torch.from_numpy(u)).numpy(), ops.grad_y @ u, atol=1e-10)


def test_large_meshes_use_colamd_ordering_and_say_what_the_basis_will_cost(monkeypatch):
    """Above ops.COLAMD_ABOVE vertices the shift-invert factorisation orders by COLAMD (MMD falls
    apart at ~100k vertices) and a warning states the estimated time and memory first; the
    eigenpairs are the same as with the small-mesh ordering."""
    import warnings

    from shapelib import data
    from shapelib import operators as ops

    shape = data.humans(source="synthetic")[0].shape
    L, M = ops.laplacian(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = ops.eigenbasis(L, M, k=20)
    monkeypatch.setattr(ops, "COLAMD_ABOVE", 1200)
    monkeypatch.setattr(ops, "LARGE_MESH", 1200)  # the estimate is stated above LARGE_MESH vertices
    monkeypatch.setattr(ops, "_has_cholmod", lambda: False)  # SuperLU + COLAMD (CHOLMOD: test_large_eigenbasis.py)
    with pytest.warns(UserWarning, match=r"about .* min and .* GB on one CPU thread"):
        large = ops.eigenbasis(L, M, k=20, progress=False)
    np.testing.assert_allclose(large[0], small[0], rtol=1e-8, atol=1e-10)
    sec, nbytes = ops.eigenbasis_estimate(110_210, 128)
    assert 10 < sec < 120 and 0.2e9 < nbytes < 1.5e9
    assert ops.eigenbasis_estimate(440_000, 128)[0] > 3.5 * sec     # ~linear in n (measured n^0.97, COLAMD)


def test_point_cloud_operators_match_diffusionnet_reference():
    """The operators behind Table 5's cloud column are the reference's: on 800 points of a FAUST test
    cloud with their file normals, DiffusionNet's own ``compute_operators`` (stored once by
    tests/fixtures/diffusionnet_reference/make_cloud_fixture.py) and shapelib's give the same mass,
    spectrum and 30-neighbour gradient (to the reference's float32), compared through the
    frame-independent products of the gradients of two functions. With the reference's ε = 1e-5 in the
    gradient solve they agree to 1e-5; shapelib's default ε = 0 moves them by less than 1e-3."""
    from pathlib import Path

    d = np.load(Path(__file__).resolve().parent / "fixtures" / "diffusionnet_reference" / "reference_cloud.npz")
    v = d["verts"]
    cloud = Shape(v, None, normals=d["normals"], name="reference_cloud")
    f, g = np.sin(3 * v[:, 0]) + v[:, 1] ** 2, v[:, 0] * v[:, 2]      # make_cloud_fixture.test_functions
    ref = np.conj(d["grad_f"]) * d["grad_g"], np.abs(d["grad_f"]) ** 2
    for eps, tol in ((1e-5, 1e-5), (0.0, 1e-3)):
        ops = compute_operators(cloud, k=32, gradient_eps=eps, cache=False)
        np.testing.assert_allclose(ops.M, d["mass"], rtol=1e-6, err_msg="point-cloud mass differs from the reference")
        np.testing.assert_allclose(ops.evals[1:], d["evals"][1:], rtol=1e-5, err_msg="point-cloud spectrum differs")
        gf, gg = (ops.grad_x @ u + 1j * (ops.grad_y @ u) for u in (f, g))
        for ours, theirs, what in zip((np.conj(gf) * gg, np.abs(gf) ** 2), ref, ("conj(∇f)·∇g", "|∇f|²")):
            err = np.abs(ours - theirs).max() / np.abs(theirs).max()
            assert err < tol, f"ε={eps}: {what} differs from the reference's 30-neighbour gradient by {err:.1e}"
