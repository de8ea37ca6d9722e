"""Functional maps and ZoomOut on an exact isometric pair (a bumpy sphere and a rotated copy with
shuffled vertices: the ground truth is the inverse shuffle)."""
import numpy as np
import pytest
import torch

from shapelib import Shape
from shapelib.fmaps import (
    FmapTrainConfig,
    PerVertexMLP,
    ShapeData,
    SpectralBasis,
    consistency_loss,
    descriptor_fmap,
    diff_zoomout,
    fmap_energy,
    fmap_to_p2p,
    laplacian_commutativity_loss,
    orthogonality_loss,
    p2p_to_fmap,
    pair_losses,
    proper_fmap,
    soft_fmap,
    train_unsupervised,
    zoomout,
)
from shapelib.kernels import SoftMap
from shapelib.metrics import GeodesicEvaluator, accuracy_curve, mean_geodesic_error
from shapelib.operators import compute_operators, wks

K = 60


@pytest.fixture(scope="module")
def pair():
    """shape 1: bumpy sphere without intrinsic symmetry (642 v); shape 2: the same surface rotated, vertices shuffled.
    p2p_21[i] = vertex of shape 1 under vertex i of shape 2."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3)
    x, y, z = m.vertices.T
    v = m.vertices * (1 + 0.15 * np.sin(3 * x) + 0.1 * y**2 + 0.12 * np.sin(2 * y + 3 * z + 0.5))[:, None]
    s1 = Shape(v * [1.0, 0.8, 1.2], m.faces, name="bumpy").normalized("area")
    perm = np.random.default_rng(0).permutation(s1.n_vertices)  # vertex i of shape 2 = vertex perm[i] of shape 1
    inv = np.argsort(perm)
    R, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))
    s2 = Shape(s1.vertices[perm] @ R.T, inv[s1.faces], name="bumpy-shuffled")
    ops1, ops2 = compute_operators(s1, k=K + 20), compute_operators(s2, k=K + 20)
    b1 = SpectralBasis.from_operators(ops1, dtype=torch.float64)
    b2 = SpectralBasis.from_operators(ops2, dtype=torch.float64)
    return dict(s1=s1, s2=s2, ops1=ops1, ops2=ops2, b1=b1, b2=b2, gt=perm)


def test_identity_fmap_is_identity(pair):
    b1 = pair["b1"]
    C = p2p_to_fmap(np.arange(b1.n), b1, b1, K, K)
    assert torch.allclose(C, torch.eye(K, dtype=C.dtype), atol=1e-8), "Φᵀ M Φ must be I (orthonormal in M)"
    assert float(orthogonality_loss(C)) < 1e-12


def test_isometry_gives_orthogonal_commuting_fmap(pair):
    C = p2p_to_fmap(pair["gt"], pair["b1"], pair["b2"], K, K)
    # an exact isometry: C is orthogonal (±1 / rotations inside eigenspaces) and commutes with Λ
    assert float(orthogonality_loss(C)) < 1e-6 * K
    assert float(laplacian_commutativity_loss(C, pair["b1"], pair["b2"])) < 1e-6
    assert float((C.abs() > 0.5).sum()) >= 0.9 * K, "expected a (near) signed-diagonal map"


def test_round_trip_p2p_fmap_p2p(pair):
    C = p2p_to_fmap(pair["gt"], pair["b1"], pair["b2"], K, K)
    p2p = fmap_to_p2p(C, pair["b1"], pair["b2"]).numpy()
    assert (p2p == pair["gt"]).mean() > 0.99, f"round trip recovered {(p2p == pair['gt']).mean():.1%} of the map"
    # proper_fmap of a proper fmap is itself
    assert torch.allclose(proper_fmap(C, pair["b1"], pair["b2"]), C, atol=1e-6)


def test_principal_submatrix_property(pair):
    """[C(k=40)]_{1:20,1:20} == C(k=20) for a proper map: what the consistency loss relies on."""
    rng = np.random.default_rng(0)
    p2p = rng.integers(0, pair["b1"].n, pair["b2"].n)  # any map, even a bad one
    C40 = p2p_to_fmap(p2p, pair["b1"], pair["b2"], 40, 40)
    C20 = p2p_to_fmap(p2p, pair["b1"], pair["b2"], 20, 20)
    assert float(consistency_loss(C20, C40)) < 1e-20


@pytest.fixture(scope="module")
def noisy_init(pair):
    """A poor initial map: the ground-truth fmap in only 8 eigenfunctions, perturbed."""
    C = p2p_to_fmap(pair["gt"], pair["b1"], pair["b2"], 8, 8)
    g = torch.Generator().manual_seed(0)
    return C + 0.25 * torch.randn(8, 8, generator=g, dtype=C.dtype)


def test_zoomout_improves_on_its_init(pair, noisy_init):
    ev = GeodesicEvaluator(pair["s1"], pair["gt"], n_samples=200)
    e_init = ev.mean(fmap_to_p2p(noisy_init, pair["b1"], pair["b2"]))
    C, p2p = zoomout(noisy_init, pair["b1"], pair["b2"], k_final=K, step=2)
    e_zo = ev.mean(p2p)
    assert C.shape == (K, K)
    assert e_zo < 0.5 * e_init, f"ZoomOut {e_zo:.2f} did not halve the init error {e_init:.2f}"
    assert e_zo < 2.0, f"ZoomOut on an exact isometry should be near-perfect, got {e_zo:.2f}"


def test_zoomout_with_samples_matches_exact_and_returns_a_proper_fmap(pair, noisy_init):
    """The sampled acceleration (intermediate maps on half the vertices, least-squares fmaps)
    reaches the exact algorithm's accuracy; its final C12 is the pull-back of its full p2p."""
    ev = GeodesicEvaluator(pair["s1"], pair["gt"], n_samples=200)
    _, p_exact = zoomout(noisy_init, pair["b1"], pair["b2"], k_final=K, step=2)
    C, p2p = zoomout(noisy_init, pair["b1"], pair["b2"], k_final=K, step=2, n_samples=pair["b1"].n // 2)
    assert p2p.shape == (pair["b2"].n,) and C.shape == (K, K)
    assert torch.allclose(C, p2p_to_fmap(p2p, pair["b1"], pair["b2"], K, K)), "final C12 must be proper"
    e_s, e_x = ev.mean(p2p), ev.mean(p_exact)
    assert e_s < e_x + 0.5, f"sampled ZoomOut {e_s:.2f} vs exact {e_x:.2f}"


def test_diff_zoomout_matches_hard_zoomout_and_is_differentiable(pair, noisy_init):
    ev = GeodesicEvaluator(pair["s1"], pair["gt"], n_samples=200)
    C0 = noisy_init.clone().requires_grad_(True)
    C = diff_zoomout(C0, pair["b1"], pair["b2"], sigma=1e-2, n_iter=6, step=8, backend="torch")
    assert C.shape == (8 + 48, 8 + 48)
    loss = consistency_loss(C0, C) + orthogonality_loss(C)
    loss.backward()
    assert torch.isfinite(C0.grad).all() and C0.grad.abs().sum() > 0
    e_diff = ev.mean(fmap_to_p2p(C.detach(), pair["b1"], pair["b2"]))
    e_init = ev.mean(fmap_to_p2p(noisy_init, pair["b1"], pair["b2"]))
    assert e_diff < 0.5 * e_init, f"differentiable ZoomOut {e_diff:.2f} vs init {e_init:.2f}"
    # same result through the dense reference soft map
    Cd = diff_zoomout(noisy_init, pair["b1"], pair["b2"], sigma=1e-2, n_iter=2, step=8, backend="dense")
    Ct = diff_zoomout(noisy_init, pair["b1"], pair["b2"], sigma=1e-2, n_iter=2, step=8, backend="torch")
    assert torch.allclose(Cd, Ct, atol=1e-8)


def test_the_three_test_time_maps_of_learned_features(pair):
    """map_from_features: the nearest learned feature, hard ZoomOut, and the differentiable ZoomOut
    layer as trained (the map the paper's Table 1 scores). From noisy features both refinements beat
    the features' own map, and the layer (σ = 1e-2 × the embedding's diameter) lands where hard
    ZoomOut does; its C is the layer's own output, k_init → k_final."""
    from shapelib.fmaps import FmapTrainConfig, map_from_features

    b1, b2 = pair["b1"], pair["b2"]
    F1 = torch.as_tensor(pair["s1"].vertices)
    g = torch.Generator().manual_seed(0)
    F2 = F1[pair["gt"]] + 0.08 * torch.randn(F1.shape, generator=g, dtype=F1.dtype)
    cfg = FmapTrainConfig.code(k_init=8, n_iter=5, step=8, backend="torch")
    ev = GeodesicEvaluator(pair["s1"], pair["gt"], n_samples=200)
    err = {}
    for stage in ("features", "zoomout", "layer"):
        p2p, C = map_from_features(F1, F2, b1, b2, cfg, stage=stage)
        assert p2p.shape == (b2.n,) and C.shape == ((8, 8) if stage == "features" else (cfg.k_final, cfg.k_final))
        err[stage] = ev.mean(p2p)
    assert err["layer"] < 0.5 * err["features"] and err["zoomout"] < 0.5 * err["features"], f"errors {err}"
    assert abs(err["layer"] - err["zoomout"]) < 0.25 * err["zoomout"] + 0.2, f"layer vs hard ZoomOut: {err}"
    C_layer = map_from_features(F1, F2, b1, b2, cfg, stage="layer")[1]
    C0 = map_from_features(F1, F2, b1, b2, cfg, stage="features")[1]
    assert torch.allclose(C_layer, diff_zoomout(C0, b1, b2, cfg, backend="torch"))
    with pytest.raises(ValueError, match="stage='soft'"):
        map_from_features(F1, F2, b1, b2, cfg, stage="soft")


def test_soft_fmap_tends_to_hard_fmap(pair):
    """C = Φ2† Π21 Φ1 with features = coordinates of the (aligned) shapes and tiny σ is the pull-back
    of the nearest-neighbour map."""
    b1, b2 = pair["b1"], pair["b2"]
    F1 = torch.as_tensor(pair["s1"].vertices)
    F2 = F1[pair["gt"]] + 1e-4
    C = soft_fmap(SoftMap(F1, F2, 1e-3), b1, b2, 20, 20)
    assert torch.allclose(C, p2p_to_fmap(pair["gt"], b1, b2, 20, 20), atol=1e-6)


@pytest.mark.parametrize("extra", [{}, {"w_dcomm": 0.0, "w_orient": 0.0}, {"w_orient": 0.0}, {"lap_mask": "squared"}],
                         ids=["all-terms", "descr+lap", "no-orient", "squared-lap"])
def test_descriptor_fmap_of_identical_shapes_is_identity(pair, extra):
    ops, b = pair["ops1"], pair["b1"]
    desc = ops.wks(50)
    C = descriptor_fmap(desc, desc, b, b, k1=20, k2=20, ops1=ops, ops2=ops, **extra)
    assert torch.allclose(C, torch.eye(20, dtype=C.dtype), atol=1e-5), f"max |C − I| = {(C - torch.eye(20)).abs().max():.2e}"


def test_fmap_energy_gradient_and_normal_equations(pair):
    """The closed-form gradient is autograd's, and vᵀHv − 2bᵀv differs from E by a constant."""
    ops1, ops2, b1, b2 = pair["ops1"], pair["ops2"], pair["b1"], pair["b2"]
    E = fmap_energy(ops1.wks(20), ops2.wks(20), b1, b2, 12, 10, ops1=ops1, ops2=ops2)
    g = torch.Generator().manual_seed(0)
    Cs = [torch.randn(10, 12, generator=g, dtype=torch.float64) for _ in range(2)]
    C = Cs[0].clone().requires_grad_(True)
    E.value(C).backward()
    assert torch.allclose(C.grad, E.gradient(Cs[0]), rtol=1e-8, atol=1e-10)
    H, bvec = E.normal_equations()
    assert torch.allclose(H, H.T, atol=1e-12), "the normal matrix must be symmetric"
    quad = [float(c.reshape(-1) @ H @ c.reshape(-1) - 2 * bvec @ c.reshape(-1)) for c in Cs]
    assert quad[0] - quad[1] == pytest.approx(float(E.value(Cs[0]) - E.value(Cs[1])), rel=1e-8)


def test_descriptor_fmap_solvers_agree(pair):
    """The exact solve of the normal equations and L-BFGS on the closed-form gradient reach the same C."""
    ops1, ops2, b1, b2 = pair["ops1"], pair["ops2"], pair["b1"], pair["b2"]
    d1, d2 = ops1.wks(40), ops2.wks(40)
    Cd = descriptor_fmap(d1, d2, b1, b2, k1=15, k2=15, ops1=ops1, ops2=ops2, solver="direct")
    Cl = descriptor_fmap(d1, d2, b1, b2, k1=15, k2=15, ops1=ops1, ops2=ops2, solver="lbfgs")
    assert float((Cd - Cl).norm() / Cd.norm()) < 1e-4


def test_descriptor_fmap_with_every_term_is_close_to_the_true_map(real_data):
    """A FAUST_r test pair with its known map: with every term at its default weight, the fitted C
    is close to the ground-truth fmap and has the norm of a proper map (before the terms were
    normalised, the orientation term — ~10⁴× the others — shrank C to a third of that norm)."""
    import inspect

    from shapelib.data import real

    defaults = inspect.signature(descriptor_fmap).parameters
    assert all(defaults[w].default > 0 for w in ("w_descr", "w_lap", "w_dcomm", "w_orient")), "every term on by default"
    a, b = real.r_dataset("faust_r", ["tr_reg_080", "tr_reg_085"])
    p = real.r_pair(a, b)
    s1, s2 = p.shape1.normalized("area"), p.shape2.normalized("area")
    o1, o2 = compute_operators(s1, k=64), compute_operators(s2, k=64)
    b1, b2 = SpectralBasis.from_operators(o1, dtype=torch.float64), SpectralBasis.from_operators(o2, dtype=torch.float64)
    d1, d2 = (wks(o.evals, o.evecs, 100)[:, ::2] for o in (o1, o2))
    C = descriptor_fmap(d1, d2, b1, b2, k1=30, k2=30, ops1=o1, ops2=o2)
    C_gt = p2p_to_fmap(p.p2p_21, b1, b2, 30, 30)
    rel, ratio = float((C - C_gt).norm() / C_gt.norm()), float(C.norm() / C_gt.norm())
    assert rel < 0.35, f"‖C − C_gt‖ / ‖C_gt‖ = {rel:.2f}"
    assert 0.7 < ratio < 1.1, f"‖C‖ / ‖C_gt‖ = {ratio:.2f} (a proper map has ‖C‖² ≈ k)"


def test_descriptor_fmap_input_errors(pair):
    with pytest.raises(ValueError, match="same d"):
        descriptor_fmap(np.ones((pair["b1"].n, 3)), np.ones((pair["b2"].n, 4)), pair["b1"], pair["b2"])
    with pytest.raises(ValueError, match="ops1"):
        descriptor_fmap(np.random.rand(pair["b1"].n, 5), np.random.rand(pair["b2"].n, 5), pair["b1"], pair["b2"])
    with pytest.raises(ValueError, match="weights"):
        descriptor_fmap(np.random.rand(pair["b1"].n, 5), np.random.rand(pair["b2"].n, 5), pair["b1"], pair["b2"],
                        w_orient=0.0, w_lap=-1.0)
    with pytest.raises(ValueError, match="square"):
        zoomout(torch.zeros(5, 6, dtype=torch.float64), pair["b1"], pair["b2"])


def test_metrics(pair):
    gt = pair["gt"]
    assert mean_geodesic_error(pair["s1"], gt, gt) == 0.0
    rng = np.random.default_rng(0)
    wrong = rng.integers(0, pair["s1"].n_vertices, len(gt))
    ev_a = GeodesicEvaluator(pair["s1"], gt, normalize="area")
    ev_d = GeodesicEvaluator(pair["s1"], gt, normalize="diameter")
    assert ev_a.mean(wrong) > 20, "a random map should be far off"
    assert ev_d.mean(wrong) * ev_d.scale == pytest.approx(ev_a.mean(wrong) * ev_a.scale)  # same distances
    assert ev_a.scale == pytest.approx(1.0) and 0.5 < ev_d.scale < 2.0  # unit area; diameter ~ π r
    t, acc = accuracy_curve(ev_a.errors(wrong))
    assert np.all(np.diff(acc) >= 0) and acc[0] < 0.05
    t, acc = accuracy_curve(ev_a.errors(gt))
    assert acc[0] == 1.0


def test_configs_and_training_step(pair):
    paper, code = FmapTrainConfig.paper(), FmapTrainConfig.code()
    assert (paper.k_init, paper.k_final, paper.lr, paper.grad_clip) == (30, 130, 1e-3, None)
    assert (code.k_init, code.k_final, code.lr, code.grad_clip, code.relative_sigma) == (20, 120, 1e-4, 1.0, True)
    # the public code's losses: orth(C_init) + orth(C_final) + detached consistency, no Laplacian term
    assert (code.w_orth, code.w_orth_final, code.w_lap, code.consist_detach) == (1.0, 1.0, 0.0, True)
    assert code.consistency_weight(0.0) == code.consistency_weight(1.0) == 1.0
    assert (code.clip_mode, code.betas, paper.clip_mode, paper.w_orth_final) == ("value", (0.9, 0.99), "norm", 0.0)
    with pytest.raises(ValueError, match="clip_mode"):
        FmapTrainConfig.code(clip_mode="max")
    assert paper.consistency_weight(0.0) == pytest.approx(1e-4) and paper.consistency_weight(1.0) == pytest.approx(1e-1)
    # a few unsupervised steps on the pair: losses are finite and the loss goes down
    cfg = FmapTrainConfig.paper(k_init=10, n_iter=3, step=10, n_features=8, w_lap=1.0)
    shapes = [ShapeData.from_shape(pair["s1"], k=K + 20), ShapeData.from_shape(pair["s2"], k=K + 20)]
    torch.manual_seed(0)
    net = PerVertexMLP(shapes[0].x.shape[1], 8, width=32)
    res = train_unsupervised(net, shapes, cfg, n_steps=30, progress=False)
    losses = [h["loss"] for h in res.history]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), "training did not reduce the unsupervised loss"
    out = pair_losses(net(shapes[0].x), net(shapes[1].x), shapes[0].basis, shapes[1].basis, cfg)
    assert out["C_refined"].shape == (cfg.k_final, cfg.k_final)


def test_code_losses_are_normalised_per_term_and_detach_the_refined_map(pair):
    """The public code's loss: 1e2 × (orth(C_init)/k_init² + orth(C_final)/k_final² + consist/k_init²),
    and with ``consist_detach`` the consistency term sends no gradient through differentiable
    ZoomOut: its gradient equals that of ‖C_init − const‖² with const the refined block's value."""
    cfg = FmapTrainConfig.code(k_init=8, n_iter=2, step=6, n_features=6)
    torch.manual_seed(0)
    F1 = torch.randn(pair["b1"].n, 6, dtype=torch.float64, requires_grad=True)
    F2 = torch.randn(pair["b2"].n, 6, dtype=torch.float64)
    out = pair_losses(F1, F2, pair["b1"], pair["b2"], cfg)
    assert set(out) >= {"orth", "orth_final", "consist"} and "lap" not in out
    expected = 1e2 * (out["orth"] / 8**2 + out["orth_final"] / 20**2 + out["consist"] / 8**2)
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-12)

    only_consist = dict(w_orth=0.0, w_orth_final=0.0)
    g_detached = torch.autograd.grad(pair_losses(F1, F2, pair["b1"], pair["b2"],
                                                 FmapTrainConfig.code(k_init=8, n_iter=2, step=6, **only_consist))["loss"], F1)[0]
    res = pair_losses(F1, F2, pair["b1"], pair["b2"], FmapTrainConfig.code(k_init=8, n_iter=2, step=6, **only_consist))
    target = res["C_refined"][:8, :8].detach()
    g_manual = torch.autograd.grad(1e2 / 64 * ((res["C_init"] - target) ** 2).sum(), F1)[0]
    torch.testing.assert_close(g_detached, g_manual, rtol=1e-9, atol=1e-12)
    g_through = torch.autograd.grad(pair_losses(F1, F2, pair["b1"], pair["b2"], FmapTrainConfig.code(
        k_init=8, n_iter=2, step=6, consist_detach=False, **only_consist))["loss"], F1)[0]
    assert (g_through - g_manual).abs().max() > 1e-3 * g_manual.abs().max(), "without detach the gradient differs"


def test_mirror_share_function():
    from shapelib.experiments.scoring import mirror_share

    # vertex 1 lands nearer the mirror image of its match: half of the total error 1.0 is its
    assert mirror_share([0.1, 0.5, 0.4], [0.2, 0.01, 0.5]) == pytest.approx(0.5)
    assert mirror_share([0.0, 0.0], [0.3, 0.3]) == 0.0                       # a perfect map
    with pytest.raises(ValueError, match="same vertices"):
        mirror_share([0.1, 0.2], [0.1])


def test_failure_anatomy_finds_the_shapes_behind_the_large_errors():
    """Five pairs of four shapes, two of them above the threshold, both involving shape c: the cover
    is {c}, the means with and without it, the pooled mirror shares and the flipped count follow."""
    from shapelib.experiments.scoring import failure_anatomy

    pairs = ["a<-b", "a<-c", "b<-c", "b<-d", "a<-d"]
    errors = [1.0, 20.0, 12.0, 2.0, 7.0]
    shares = [0.0, 0.9, 0.5, 0.1, 0.2]
    A = failure_anatomy(pairs, errors, shares, [False, True, False, False, False], threshold=10)
    assert A["n_bad"] == 2 and A["n_between"] == 1 and A["shapes"] == ["c"]
    assert A["n_with"] == 2 and A["mean_with"] == pytest.approx(16.0)
    assert A["n_without"] == 3 and A["mean_without"] == pytest.approx(10.0 / 3)
    assert A["share_bad"] == pytest.approx((20 * 0.9 + 12 * 0.5) / 32)
    assert A["share_rest"] == pytest.approx((0.1 * 2 + 0.2 * 7) / 10)
    assert A["share_range"] == (0.5, 0.9) and A["n_bad_flipped"] == 1
    # a split given from outside (another pipeline's shapes) is used as it is
    B = failure_anatomy(pairs, errors, threshold=10, shapes=["d"])
    assert B["shapes"] == ["d"] and B["n_with"] == 2 and B["mean_with"] == pytest.approx(4.5)
    assert "share_bad" not in B
    # two bad pairs with no shape in common need two shapes; the greedy cover takes the most frequent first
    C = failure_anatomy(["a<-b", "c<-d", "a<-c"], [11.0, 11.0, 11.0], threshold=10)
    assert len(C["shapes"]) == 2 and C["n_without"] == 0
    with pytest.raises(ValueError, match="one error per pair"):
        failure_anatomy(pairs, errors[:3])
    with pytest.raises(ValueError, match="shape1<-shape2"):
        failure_anatomy(["a-b"], [1.0])


def test_pair_scorer_tells_a_partial_mirror_from_a_flip(real_data):
    """On a FAUST_r test pair: the true map scores 0; the left–right mirror of the true map is
    ``flipped`` with all of its error on mirrored vertices; the true map with only the vertices far
    from the symmetry plane (the limbs' ends) sent to their mirror images is not flipped, yet
    carries all its error on those vertices (share 1): the failure a mean alone hides."""
    from shapelib.data import real
    from shapelib.data.pairs import items_with_symmetry
    from shapelib.experiments.scoring import PairScorer

    a, b = items_with_symmetry(["tr_reg_080", "tr_reg_093"])
    pair = real.r_pair(a, b)
    scorer = PairScorer(pair, a.shape.normalized("area"))
    gt = pair.p2p_21
    mirror = real.pair_from_rows(a, b, a.meta["corres_sym"], b.meta["corres"]).p2p_21
    exact = scorer.score(gt)
    assert exact["error"] == 0.0 and not exact["flipped"] and exact["mirror_share"] == 0.0
    flip = scorer.score(mirror)
    assert flip["flipped"] and flip["error"] > 10 and flip["mirror_share"] == pytest.approx(1.0)
    e_mirror, _ = scorer.vertex_errors(mirror)                    # how far the mirror image lies
    far = np.zeros(len(gt), dtype=bool)
    far[scorer.gt.vertices[e_mirror > np.quantile(e_mirror, 0.9)]] = True   # the 10 % farthest from their mirror
    partial = scorer.score(np.where(far, mirror, gt))
    assert not partial["flipped"], "a tenth of the vertices mirrored does not flip the map"
    assert partial["error"] > 5, f"error {partial['error']:.2f}"
    assert partial["mirror_share"] == pytest.approx(1.0), partial


def test_learning_curve_reads_a_run_s_progress_and_its_final_evaluation():
    """One row per evaluated saved state and the record's own evaluation, in step order; the
    record's evaluation wins over a progress entry at the same step; an unknown stage is refused."""
    from shapelib.experiments.checkpoints import Record
    from shapelib.experiments.fmaps import learning_curve

    def summ(mean, share=None):
        z = {"mean": mean, "median": mean / 2, "p90": 2 * mean}
        return {"zoomout": z if share is None else {**z, "mirror_share": share}, "features": {**z, "mean": 3 * mean}}

    record = Record(config={"epoch_size": 100}, epochs_done=5, evaluation={"summary": summ(1.5, 0.05)},
                    progress=[{"epoch": 3, "steps": 300, "summary": summ(6.0, 0.8)},
                              {"epoch": 1, "summary": summ(7.0)}, {"epoch": 5, "steps": 500, "summary": summ(9.9)}])
    rows = learning_curve(record)
    assert [r["steps"] for r in rows] == [100, 300, 500] and [r["mean"] for r in rows] == [7.0, 6.0, 1.5]
    assert np.isnan(rows[0]["mirror_share"]) and rows[2]["mirror_share"] == 0.05 and rows[1]["p90"] == 12.0
    assert [r["mean"] for r in learning_curve(record, "features")] == [21.0, 18.0, 4.5]
    assert learning_curve(Record(config=record.config, epochs_done=5, evaluation=record.evaluation)) == [{"steps": 500, "mean": 1.5, "median": 0.75, "p90": 3.0,
                                                           "mirror_share": 0.05}]
    with pytest.raises(ValueError, match="stage"):
        learning_curve(record, "init")
