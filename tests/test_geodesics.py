"""Exact geodesics (issue #31): MMP through libigl / tvb-gdist against closed forms and brute force.

* a polygonal tube (developable: unrolls onto a flat strip) — closed-form distances;
* a jittered flat square — straight lines;
* a bumpy, non-developable mesh — Dijkstra on a Steiner graph of the same surface (an upper
  bound that converges to the geodesic from above);
* the cache, pair distances, components, errors.
"""
from __future__ import annotations

import numpy as np
import pytest

from shapelib import Shape
from shapelib import geodesics as G

BACKENDS = ["igl", pytest.param("gdist", marks=pytest.mark.skipif(
    not G.exact_backend("auto") == "gdist", reason="tvb-gdist not installed"))]


def tube(m: int = 12, levels: int = 9, radius: float = 1.0, height: float = 2.0, twist: bool = True) -> Shape:
    """Open prism: an ``m``-gon cross-section, ``levels`` rings, quads split into two triangles
    (alternating diagonals when ``twist``). Its surface unrolls isometrically onto a flat strip."""
    theta = 2 * np.pi * np.arange(m) / m
    z = np.linspace(0, height, levels)
    V = np.array([[radius * np.cos(t), radius * np.sin(t), zz] for zz in z for t in theta])
    F = []
    for i in range(levels - 1):
        for j in range(m):
            a, b = i * m + j, i * m + (j + 1) % m
            c, d = a + m, b + m
            F += [[a, b, d], [a, d, c]] if (not twist or (i + j) % 2 == 0) else [[a, b, c], [b, d, c]]
    return Shape(V, np.array(F), name="tube")


def tube_distance(m, levels, radius, height, i, j):
    """Closed form on the tube: unroll (perimeter coordinate) and take the shorter way around."""
    side = 2 * radius * np.sin(np.pi / m)
    zi, ki = divmod(i, m)
    zj, kj = divmod(j, m)
    dz = (zi - zj) * height / (levels - 1)
    dk = abs(ki - kj)
    return np.hypot(dz, min(dk, m - dk) * side)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_matches_closed_form_on_a_tube(backend):
    m, levels, r, h = 12, 9, 1.0, 2.0
    sh = tube(m, levels, r, h)
    src = [0, 5, 50, 107]
    D = G.exact_geodesic_distances(sh, src, backend=backend)
    ref = np.array([[tube_distance(m, levels, r, h, s, t) for t in range(sh.n_vertices)] for s in src])
    np.testing.assert_allclose(D, ref, atol=1e-9)
    # the heat method is NOT exact: that is why a paper row never uses it
    H = G.geodesic_distances(sh, src)
    assert np.abs(H - ref).max() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_is_the_straight_line_on_a_flat_square(plane, backend):
    src = [0, 17, 100]
    D = G.exact_geodesic_distances(plane, src, backend=backend)
    euclid = np.linalg.norm(plane.vertices[src][:, None] - plane.vertices[None], axis=-1)
    np.testing.assert_allclose(D, euclid, atol=1e-12)


def _steiner_dijkstra(shape: Shape, sources, k: int = 8):
    """Brute force: Dijkstra on a Steiner graph — ``k`` extra points on every edge, every two points
    of a face joined by their straight segment (a path on the surface). Its distances bound the
    geodesic from above and converge to it as ``k`` grows (Lanthier, Maheshwari & Sack 2001); a
    plain subdivision would not (its paths keep six directions)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    V, F = shape.vertices, shape.faces
    n = len(V)
    e = np.sort(np.r_[F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]], axis=1)
    uniq, inv = np.unique(e, axis=0, return_inverse=True)
    inv = inv.ravel().reshape(3, -1).T  # (f, 3) edge ids of each face
    t = np.arange(1, k + 1) / (k + 1)
    P = np.r_[V, (V[uniq[:, 0]][:, None] * (1 - t)[None, :, None] + V[uniq[:, 1]][:, None] * t[None, :, None]).reshape(-1, 3)]
    ids = np.c_[F, (n + inv[:, :, None] * k + np.arange(k)).reshape(len(F), -1)]  # (f, 3 + 3k) points per face
    iu, ju = np.triu_indices(ids.shape[1], 1)
    r, c = ids[:, iu].ravel(), ids[:, ju].ravel()
    W = sp.coo_matrix((np.linalg.norm(P[r] - P[c], axis=1), (r, c)), shape=(len(P), len(P))).tocsr()
    return dijkstra(W, directed=False, indices=sources)[:, :n]


def _bumpy(subdivisions: int) -> Shape:
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    V = m.vertices * (1 + 0.15 * np.sin(3 * m.vertices[:, 0]) * np.cos(2 * m.vertices[:, 1]))[:, None]
    return Shape(V, m.faces, name=f"bumpy{subdivisions}")


@pytest.fixture(scope="module")
def bumpy():
    """A non-developable closed surface: an icosphere with radial bumps (642 vertices)."""
    return _bumpy(3)


@pytest.fixture(scope="module")
def small_bumpy():
    """The same, coarser (162 vertices): for all-pairs tests."""
    return _bumpy(2)


def test_exact_against_brute_force_dijkstra_on_a_steiner_graph(bumpy):
    src = [0, 100, 400]
    exact = G.exact_geodesic_distances(bumpy, src)
    brute = _steiner_dijkstra(bumpy, src, k=8)
    euclid = np.linalg.norm(bumpy.vertices[src][:, None] - bumpy.vertices[None], axis=-1)
    far = exact > 0.2
    ratio = brute[far] / exact[far]
    assert (exact >= euclid - 1e-12).all()
    assert ratio.min() >= 1 - 1e-9  # a surface path is never shorter than the geodesic
    assert ratio.max() < 1.01 and np.median(ratio) < 1.003
    # and the heat method is visibly further from it than the exact solver
    heat = G.geodesic_distances(bumpy, src)
    assert np.median(np.abs(heat[far] / brute[far] - 1)) > 3 * np.median(ratio - 1)


def test_backends_agree(bumpy):
    pytest.importorskip("gdist")
    A = G.exact_geodesic_distances(bumpy, [3, 300], backend="gdist")
    B = G.exact_geodesic_distances(bumpy, [3, 300], backend="igl")
    np.testing.assert_allclose(A, B, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_targets_and_radius(bumpy, backend):
    full = G.exact_geodesic_distances(bumpy, 7, backend=backend)
    tg = np.array([7, 8, 200, 641])  # 641: the last vertex
    np.testing.assert_allclose(G.exact_geodesic_distances(bumpy, 7, targets=tg, backend=backend), full[tg], atol=1e-12)
    r = np.median(full)
    cut = G.exact_geodesic_distances(bumpy, 7, max_distance=r, backend=backend)
    inside = full < r * (1 - 1e-9)
    np.testing.assert_allclose(cut[inside], full[inside], atol=1e-12)
    assert np.isinf(cut[full > r]).all()


def test_pair_distances_match_rows(small_bumpy):
    sh = small_bumpy
    rng = np.random.default_rng(0)
    a, b = rng.integers(sh.n_vertices, size=60), rng.integers(sh.n_vertices, size=60)
    a[:5] = b[:5]  # exact hits are 0
    rows = G.exact_geodesic_distances(sh, np.arange(sh.n_vertices))
    d = G.exact_pair_distances(sh, a, b)
    np.testing.assert_allclose(d, rows[a, b], atol=1e-10)
    assert (d[:5] == 0).all()
    # short pairs (the usual correspondence error) take the radius-limited route
    near = np.argsort(rows[a], axis=1)[:, 3]
    np.testing.assert_allclose(G.exact_pair_distances(sh, a, near), rows[a, near], atol=1e-10)


def test_matrix_is_cached_symmetric_and_rows_match(small_bumpy, monkeypatch, tmp_path):
    bumpy = small_bumpy
    monkeypatch.setenv("SHAPELIB_CACHE", str(tmp_path))
    D = G.exact_geodesic_matrix(bumpy)
    assert D.shape == (bumpy.n_vertices,) * 2 and D.dtype == np.float32
    assert np.array_equal(D, D.T) and (np.diag(D) == 0).all()
    assert len(list((tmp_path / "geodesic_exact").glob("*.npz"))) == 1
    calls = []
    monkeypatch.setattr(G, "exact_geodesic_distances", lambda *a, **k: calls.append(1))
    np.testing.assert_array_equal(G.exact_geodesic_matrix(bumpy), D)  # from disk: nothing recomputed
    assert not calls
    monkeypatch.undo()
    monkeypatch.setenv("SHAPELIB_CACHE", str(tmp_path))
    rows = G.exact_geodesic_matrix(bumpy, sources=[5, 1, 5])
    assert rows.shape == (3, bumpy.n_vertices)
    np.testing.assert_allclose(rows, D[[5, 1, 5]], atol=1e-6)


def test_other_components_are_infinite():
    t1 = tube(6, 3)
    V = np.r_[t1.vertices, t1.vertices + [5.0, 0, 0]]
    F = np.r_[t1.faces, t1.faces + t1.n_vertices]
    sh = Shape(V, F)
    D = G.exact_geodesic_distances(sh, [0, t1.n_vertices])
    n = t1.n_vertices
    assert np.isinf(D[0, n:]).all() and np.isinf(D[1, :n]).all()
    assert np.isfinite(D[0, :n]).all() and np.isfinite(D[1, n:]).all()
    d = G.exact_pair_distances(sh, [0, 0], [1, n + 1])
    assert np.isfinite(d[0]) and np.isinf(d[1])


def test_exact_errors():
    sh = tube(6, 3)
    with pytest.raises(ValueError, match="triangle mesh"):
        G.exact_geodesic_distances(sh.to_cloud(), 0)
    with pytest.raises(IndexError):
        G.exact_geodesic_distances(sh, [sh.n_vertices])
    with pytest.raises(ValueError, match="backend"):
        G.exact_geodesic_distances(sh, 0, backend="heat")
    with pytest.raises(ValueError, match="same length"):
        G.exact_pair_distances(sh, [0, 1], [2])
    with pytest.raises(ValueError, match="max_vertices"):
        G.exact_geodesic_matrix(sh, max_vertices=5)
