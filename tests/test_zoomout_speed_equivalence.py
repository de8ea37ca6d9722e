"""The fast CPU nearest-neighbour search (``kernels`` backend ``'blas'``: float32 GEMM + a float64
check of the near-ties) returns the maps of the float64 brute force (``'torch'``), and ZoomOut,
which now uses it on CPU, the maps it returned before and pyFM's. No timings here: the speed is
measured by ``benchmarks/zoomout_vs_pyfm.py``."""
import numpy as np
import pytest
import torch

from shapelib import kernels
from shapelib.fmaps import SpectralBasis, p2p_to_fmap, zoomout
from shapelib.kernels import knn, nearest


def _exact(F_src, F_tgt):
    """Float64 reference: nearest source row of each target row, lowest index among ties."""
    d2 = ((F_tgt.double()[:, None, :] - F_src.double()[None, :, :]) ** 2).sum(-1)
    return d2.argmin(1)


@pytest.mark.parametrize("p", [3, 30, 110])
def test_blas_equals_torch_search(p):
    g = torch.Generator().manual_seed(p)
    src = torch.randn(700, p, generator=g, dtype=torch.float64)
    tgt = src[torch.randint(0, 700, (500,), generator=g)] + 0.3 * torch.randn(500, p, generator=g, dtype=torch.float64)
    for chunk in (None, 64):  # one block / several blocks
        got = nearest(src, tgt, backend="blas", chunk=chunk)
        assert torch.equal(got, nearest(src, tgt, backend="torch", chunk=chunk))
        assert torch.equal(got, _exact(src, tgt))
    assert torch.equal(nearest(src, tgt), nearest(src, tgt, backend="blas")), "'auto' on CPU (float64) is 'blas'"
    i, d = nearest(src, tgt, backend="blas", return_distances=True)
    assert torch.allclose(d, ((tgt - src[i]) ** 2).sum(1))


def _near_ties(n, p, gap, g):
    """Target rows ``t_i`` (far from the origin: large norms) with two source rows at squared
    distances ``r²`` and ``r²(1 + gap)`` — in random order — among random ones."""
    t = 50.0 + torch.randn(n, p, generator=g, dtype=torch.float64)
    u = torch.nn.functional.normalize(torch.randn(2, n, p, generator=g, dtype=torch.float64), dim=-1)
    r = 0.1
    a, b = t + r * u[0], t + r * (1 + gap) ** 0.5 * u[1]
    src = torch.cat([a, b, 50.0 + torch.randn(3 * n, p, generator=g, dtype=torch.float64)])
    return src[torch.randperm(len(src), generator=g)], t


def test_blas_near_ties_and_duplicates():
    """Rows whose best two distances agree to 1e-8 (far below float32 rounding, far above
    float64's) are decided in float64, as the torch search decides them; exact duplicates go to
    the lowest index, as with torch.min."""
    g = torch.Generator().manual_seed(0)
    src, tgt = _near_ties(300, 40, 1e-8, g)
    got = nearest(src, tgt, backend="blas")
    assert torch.equal(got, nearest(src, tgt, backend="torch"))
    assert torch.equal(got, _exact(src, tgt))
    src2 = torch.cat([src, src[:200]])  # duplicates at higher indices
    assert torch.equal(nearest(src2, tgt, backend="blas"), got)


def test_blas_rows_with_many_candidates(monkeypatch):
    """Rows with more candidates than _MAX_CANDIDATES are re-scored whole (the torch search)."""
    g = torch.Generator().manual_seed(1)
    src = torch.randn(400, 8, generator=g, dtype=torch.float64)
    src[100:200] = src[100] + 1e-7 * torch.randn(100, 8, generator=g, dtype=torch.float64)  # a tight cluster
    tgt = torch.cat([src[100:110] + 1e-3, torch.randn(50, 8, generator=g, dtype=torch.float64)])
    monkeypatch.setattr(kernels, "_MAX_CANDIDATES", 4)
    got = nearest(src, tgt, backend="blas")
    assert torch.equal(got, nearest(src, tgt, backend="torch"))
    assert torch.equal(got, _exact(src, tgt))


def test_blas_float32_is_the_exact_neighbour():
    """Float32 points: their exact nearest neighbour (the float64 search of the same points);
    'auto' keeps the float32 torch search for them."""
    g = torch.Generator().manual_seed(2)
    src = torch.randn(600, 60, generator=g)
    tgt = src[:400] + 0.5 * torch.randn(400, 60, generator=g)
    assert torch.equal(nearest(src, tgt, backend="blas"), nearest(src.double(), tgt.double(), backend="torch"))
    assert torch.equal(nearest(src, tgt), nearest(src, tgt, backend="torch"))


def test_blas_falls_back_where_it_does_not_apply():
    g = torch.Generator().manual_seed(3)
    A, B = torch.randn(80, 5, generator=g, dtype=torch.float64), torch.randn(90, 5, generator=g, dtype=torch.float64)
    assert torch.equal(knn(A, 3, Y=B, backend="blas")[0], knn(A, 3, Y=B, backend="torch")[0])  # k > 1
    assert torch.equal(knn(A, 1, backend="blas")[0], knn(A, 1, backend="torch")[0])  # self-graph


def _bumpy_pair(k):
    import trimesh

    from shapelib import Shape
    from shapelib.operators import compute_operators

    m = trimesh.creation.icosphere(subdivisions=3)
    x, y, z = m.vertices.T
    v1 = m.vertices * (1 + 0.15 * np.sin(3 * x) + 0.1 * y**2)[:, None]
    v2 = m.vertices * (1 + 0.12 * np.sin(3 * x + 0.2) + 0.13 * y**2 + 0.05 * z)[:, None]  # a different, non-isometric shape
    bases = [SpectralBasis.from_operators(compute_operators(Shape(v, m.faces).normalized("area"), k=k), dtype=torch.float64)
             for v in (v1, v2)]
    return bases


def test_zoomout_cpu_default_equals_the_torch_search():
    """ZoomOut with the default backend (the 'blas' search on CPU) gives the same maps, iteration
    by iteration, as with the float64 torch search it used before."""
    b1, b2 = _bumpy_pair(50)
    C0 = p2p_to_fmap(torch.arange(b2.n), b1, b2, 10, 10)  # same vertex numbering: the identity map
    C0 = C0 + 0.2 * torch.randn(10, 10, generator=torch.Generator().manual_seed(0), dtype=C0.dtype)
    C, p2p, hist = zoomout(C0, b1, b2, k_final=50, step=4, return_history=True)
    C_t, p2p_t, hist_t = zoomout(C0, b1, b2, k_final=50, step=4, backend="torch", return_history=True)
    assert torch.equal(p2p, p2p_t)
    assert all(torch.equal(a, b) for a, b in zip(hist, hist_t))


def test_zoomout_equals_the_old_path_and_pyfm_on_faust_r(real_data):
    """A FAUST_r test pair, ZoomOut 30 → 110 by steps of 5 in pyFM's basis from pyFM's C_init:
    shapelib's default, its float64 torch search and pyFM's zoomout give the same vertex map at
    every vertex."""
    pytest.importorskip("pyFM.functional", reason="pyFM is not installed: pip install pyfmaps (in the dev extra)")
    from pyFM.functional import FunctionalMapping
    from pyFM.mesh import TriMesh
    from pyFM.refine.zoomout import mesh_zoomout_refine

    from shapelib.data import real

    items = real.r_dataset("faust_r", ["tr_reg_080", "tr_reg_090"])
    m1, m2 = (TriMesh(it.shape.vertices, it.shape.faces, area_normalize=True, center=True).process(128) for it in items)
    model = FunctionalMapping(m1, m2)
    model.preprocess(n_descr=100, descr_type="WKS", subsample_step=2, k_descr=128, k_process=128)
    model.fit(K=30, w_descr=1.0, w_lap=1e-1, w_dcomm=1.0, w_orient=1.0)
    C0 = model.FM_12
    FM, p_pyfm = mesh_zoomout_refine(C0, m1, m2, nit=16, step=5, return_p2p=True)
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    b1, b2 = (SpectralBasis(t(m.eigenvectors[:, :110]), t(m.eigenvalues[:110]), t(m.A.diagonal())) for m in (m1, m2))
    C, p2p = zoomout(torch.as_tensor(C0), b1, b2, k_final=110, step=5)
    C_t, p2p_t = zoomout(torch.as_tensor(C0), b1, b2, k_final=110, step=5, backend="torch")
    assert torch.equal(p2p, p2p_t) and torch.equal(C, C_t)
    assert np.array_equal(p2p.numpy(), p_pyfm), f"differs from pyFM at {(p2p.numpy() != p_pyfm).sum()} vertices"
    assert np.allclose(C.numpy(), FM, atol=1e-10)
