"""Implicit feature matching: Gauss–Newton on analytic fields, trajectories, batching, winding
numbers, point-set metrics, a tiny self-fitted auto-decoder and the cross-fitting baseline."""
import numpy as np
import pytest
import torch

from shapelib import Shape, metrics
from shapelib import implicit as im


def field(x, z):
    """An analytic, injective feature field R³ → R⁶ (z is ignored)."""
    return torch.cat([x + 0.3 * torch.sin(2 * x), x ** 3 + 0.5 * x.roll(1, -1)], -1) + 0 * z.sum()


def linear_field(x, z):
    A = torch.tensor([[1.0, 0.2, 0.0], [0.0, 0.5, 0.1], [0.3, 0.0, 0.8], [0.1, 0.1, 0.1]], dtype=x.dtype)
    return A @ x + z


def test_gauss_newton_recovers_a_known_displacement():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 3, generator=g, dtype=torch.float64) - 0.5
    d = 0.1 * (torch.rand(50, 3, generator=g, dtype=torch.float64) - 0.5)
    z = torch.zeros(50, 1, dtype=torch.float64)
    target = torch.func.vmap(field)(x + d, z)
    delta = im.gauss_newton(field, x, z, target, n_iters=8, lam=0.0)
    assert torch.allclose(delta, d, atol=1e-9), (delta - d).abs().max()
    # three iterations already reach ~1e-4 (quadratic convergence from δ = 0)
    assert (im.gauss_newton(field, x, z, target, n_iters=3, lam=0.0) - d).abs().max() < 1e-4


def test_regulariser_shrinks_displacements_monotonically():
    x = torch.zeros(4, 3, dtype=torch.float64)
    z = torch.zeros(4, 4, dtype=torch.float64)
    target = torch.tensor([[0.3, -0.2, 0.1, 0.05]], dtype=torch.float64).expand(4, 4)
    norms = [float(im.gauss_newton(linear_field, x, z, target, n_iters=3, lam=lam).norm(dim=1).mean())
             for lam in (0.0, 0.01, 0.1, 0.3, 1.0, 3.0)]
    assert all(a > b for a, b in zip(norms, norms[1:])), norms
    # closed form of the regularised least squares for a linear field: (AᵀA + λ²I)⁻¹ Aᵀ r
    A = torch.func.jacfwd(linear_field)(x[0], z[0])
    lam = 0.3
    ref = torch.linalg.solve(A.T @ A + lam ** 2 * torch.eye(3, dtype=A.dtype), A.T @ target[0])
    got = im.gauss_newton(linear_field, x, z, target, n_iters=1, lam=lam)[0]
    assert torch.allclose(got, ref, atol=1e-12)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return im.ImplicitNet(latent_dim=8, widths=(32, 32, 32, 16, 16, 8)).double().eval()


def test_equal_codes_keep_points_in_place(net):
    z = torch.randn(8, dtype=torch.float64)
    x0 = torch.rand(20, 3, dtype=torch.float64) - 0.5
    phi = im.layer_feature_fn(net, (3, 6), (1.0, 0.1))
    x1 = im.match_points(phi, x0, z, z.clone(), n_steps=5, n_iters=3, lam=0.01)
    assert torch.allclose(x1, x0, atol=1e-12)


def test_batched_matching_equals_a_per_point_loop(net):
    g = torch.Generator().manual_seed(1)
    zA, zB = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    x0 = torch.rand(6, 3, generator=g, dtype=torch.float64) - 0.5
    phi = im.layer_feature_fn(net, (3,))
    batched = im.match_points(phi, x0, zA, zB, n_steps=4, n_iters=3, lam=0.01)
    looped = torch.cat([im.match_points(phi, x0[i:i + 1], zA, zB, n_steps=4, n_iters=3, lam=0.01) for i in range(6)])
    assert torch.allclose(batched, looped, atol=1e-10)
    assert not torch.allclose(batched, x0)  # it moved
    # per-point code pairs (many shape pairs in one batch) give the same as one pair at a time
    Z = torch.stack([zA, zB])
    per_point = im.match_points(phi, x0, Z[[0, 1, 0, 1, 0, 1]], Z[[1, 0, 1, 0, 1, 0]], n_steps=4)
    assert torch.allclose(per_point[0::2], batched[0::2], atol=1e-10)
    assert torch.allclose(per_point[1::2], im.match_points(phi, x0[1::2], zB, zA, n_steps=4), atol=1e-10)


def test_features_are_the_forward_pass_and_layers_are_checked(net):
    x, z = torch.rand(5, 3, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    f6 = net.features(x, z, (6,))[0]
    assert torch.allclose(net.layers[-1](f6)[:, 0], net(x, z))
    assert [f.shape[-1] for f in net.features(x, z)] == [32, 32, 32, 16, 16, 8]
    with pytest.raises(ValueError, match="hidden layers"):
        net.features(x, z, (7,))


def sphere(r=1.0, flip=False):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3, radius=r)
    return Shape(m.vertices, m.faces[:, ::-1] if flip else m.faces, name="sphere")


@pytest.mark.parametrize("flip", [False, True])
def test_winding_number_inside_outside(flip):
    s = sphere(flip=flip)
    rng = np.random.default_rng(0)
    d = rng.normal(size=(200, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = np.r_[0.9 * d[:100], 1.1 * d[100:]]
    w = im.winding_number(s.vertices, s.faces, pts)
    # libigl's fast winding number is a hierarchical approximation: ~1e-3 at 0.1 from the surface
    assert np.allclose(np.abs(w[:100]), 1, atol=1e-2) and np.allclose(w[100:], 0, atol=1e-2)
    assert (np.sign(w[:100]) == (1 if not flip else -1)).all()  # sign = orientation (outward: +1)
    assert (im.inside(s, pts) == (np.arange(200) < 100)).all()


def test_winding_number_without_libigl_names_the_fix(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "igl", None)  # import igl -> ImportError
    with pytest.raises(ImportError, match="pip install libigl"):
        im.winding_number(np.eye(3), np.array([[0, 1, 2]]), np.zeros((1, 3)))


def test_chamfer_and_emd_known_values():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(300, 3))
    assert metrics.chamfer_distance(A, A[rng.permutation(300)]) == pytest.approx(0, abs=1e-12)
    assert metrics.earth_movers_distance(A, A[rng.permutation(300)]) == pytest.approx(0, abs=1e-12)
    t = np.array([0.0, 0.0, 0.5])
    assert metrics.chamfer_distance(A[:1], A[:1] + t) == pytest.approx(2 * 0.25, rel=1e-9)
    assert 0 < metrics.chamfer_distance(A, A + t) <= 2 * 0.25 + 1e-9  # nearest is at most the translated copy
    assert metrics.earth_movers_distance(A, A + [0.01, 0, 0]) == pytest.approx(0.01, rel=1e-6)
    with pytest.raises(ValueError, match="equal-size"):
        metrics.earth_movers_distance(A, A[:10])
    parts = np.repeat([0, 1, 2], 100)
    out = metrics.part_distances(A, parts, A + [0.1, 0, 0], np.where(parts == 2, 1, parts))  # part 2 missing on B
    assert out["parts"] == [0, 1]
    assert out["cd"] > 0 and out["cd_per_part"][0] <= 2 * 0.01 + 1e-9


def test_self_fitting_two_spheres_and_matching_conserves_features():
    small, big = im.normalize_to_unit_cube(sphere(), 0.4), im.normalize_to_unit_cube(sphere(), 0.8)
    data = im.prepare_implicit([small, big], n_surface=512, n_uniform=512, progress=False)
    assert 0.05 < float(data.occupancy.mean()) < 0.7
    model, hist = im.fit_auto_decoder(data, latent_dim=8, widths=(64, 64, 64, 32, 16, 8), epochs=150, lr=1e-2,
                                      code_lr=3e-2, points_per_shape=768, progress=False)
    assert im.occupancy_accuracy(model, data) > 0.9
    rec = im.reconstruct(model.net, model.z(1), resolution=32)
    r = np.linalg.norm(rec.vertices, axis=1).mean()
    assert 0.3 < r < 0.5, r  # the big sphere has radius 0.4
    x0 = torch.as_tensor(small.vertices[::4], dtype=torch.float32)
    x1 = torch.as_tensor(im.deform(model, x0, 0, 1, layers=(3,), weights=(1.0,), n_steps=10))
    phi = im.layer_feature_fn(model.net, (3,))
    f0 = torch.func.vmap(phi)(x0, model.z(0).expand(len(x0), -1))
    stay = (torch.func.vmap(phi)(x0, model.z(1).expand(len(x0), -1)) - f0).norm(dim=1).mean()
    moved = (torch.func.vmap(phi)(x1, model.z(1).expand(len(x0), -1)) - f0).norm(dim=1).mean()
    assert moved < 0.5 * stay, (moved, stay)  # the trajectory keeps each point's feature


def test_cross_fit_rigidity_preserves_edges():
    src = im.normalize_to_unit_cube(sphere(), 0.5)
    tgt = src.vertices * [1.6, 1.0, 1.0]
    free = im.cross_fit(src, tgt, rigidity=0.0, steps=150, lr=5e-3)
    rigid = im.cross_fit(src, tgt, rigidity=10.0, steps=150, lr=5e-3)
    E = src.edges()

    def edge_change(V):
        return np.linalg.norm((V[E[:, 0]] - V[E[:, 1]]) - (src.vertices[E[:, 0]] - src.vertices[E[:, 1]]), axis=1).mean()

    assert metrics.chamfer_distance(free, tgt) < metrics.chamfer_distance(src.vertices, tgt)
    assert edge_change(rigid) < edge_change(free)


def test_thicken_makes_an_open_sheet_a_thin_solid():
    """An open square sheet has no inside (winding number ≈ 0 everywhere); thickened by t, points
    closer than t to it are inside and points farther are not."""
    sheet = Shape(np.array([[-0.3, -0.3, 0], [0.3, -0.3, 0], [0.3, 0.3, 0], [-0.3, 0.3, 0]], float),
                  np.array([[0, 1, 2], [0, 2, 3]]))
    P = np.array([[0, 0, 0.005], [0.1, -0.1, -0.008], [0, 0, 0.02], [0.35, 0, 0], [0.305, 0, 0]])
    assert not im.inside(sheet, P).any()
    assert im.thickened_inside(sheet, P, 0.01).tolist() == [True, True, False, False, True]
    pts, occ = im.occupancy_samples(sheet, n_surface=200, n_uniform=100, sigmas=(0.005,), thicken=0.01)
    assert 0 < occ.mean() < 1 and occ[:200].mean() > 0.8 and occ[200:].mean() < 0.2
    with pytest.raises(ValueError, match="thicken"):
        im.occupancy_samples(sheet, thicken=-1.0)


def test_table1_yardstick_conventions_on_a_hand_computed_example():
    """The conventions ``DIFM_YARDSTICK`` states for Table 1: CD = mean squared nearest-neighbour
    distance each way, the two summed; EMD = mean Euclidean distance under the optimal one-to-one
    assignment; the part average over the parts present in both sets."""
    from shapelib.experiments import implicit as difm

    A = np.array([[0.0, 0, 0], [2, 0, 0]])
    B = np.array([[0.0, 0, 0], [0, 1, 0]])
    # A→B: 0 and min(4, 5) = 4 → 2; B→A: 0 and min(1, 5) = 1 → 0.5 (unsquared it would be 1 + 0.5)
    assert metrics.chamfer_distance(A, B) == pytest.approx(2.5)
    # assignments: (a1-b1, a2-b2) = 0 + √5, (a1-b2, a2-b1) = 1 + 2 → √5 / 2
    assert metrics.earth_movers_distance(A, B) == pytest.approx(np.sqrt(5) / 2)
    # part 0: identical points (0); part 1: one point each, squared distance 5 both ways (10);
    # part 2 only in A: not measured
    A3, B3 = np.vstack([A, [[5.0, 5, 5]]]), B
    out = metrics.part_distances(A3, [0, 1, 2], B3, [0, 1], n_emd=None)
    assert out["parts"] == [0, 1] and out["cd"] == pytest.approx(5.0) and out["emd"] == pytest.approx(np.sqrt(5) / 2)
    assert "squared distances, mean each way, the two directions summed" in difm.DIFM_YARDSTICK
    assert "exact EMD by optimal assignment" in difm.DIFM_YARDSTICK
