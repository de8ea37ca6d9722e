"""Notebook 04's exercise solutions at small sizes (a decimated synthetic human and a noisy copy, or
three synthetic humans for training): each gives the outcome its exercise text announces."""
import numpy as np
import pytest
import torch

from shapelib import data, solutions
from shapelib.data.synthetic import variants
from shapelib.fmaps import FmapTrainConfig, ShapeData, SpectralBasis, p2p_to_fmap
from shapelib.metrics import GeodesicEvaluator
from shapelib.operators import compute_operators


@pytest.fixture(scope="module")
def pair():
    """A unit-area decimated human, a noisy copy (ground truth: identity) and a 30 %-wrong initial map."""
    s1 = variants.make_variant(data.humans(source="synthetic")[0].shape, "decimated", seed=0).shape.normalized("area")
    s2 = s1.copy(vertices=s1.vertices + np.random.default_rng(0).normal(0, 2e-3, s1.vertices.shape))
    o1, o2 = compute_operators(s1, k=60), compute_operators(s2, k=60)
    b1, b2 = (SpectralBasis.from_operators(o, device="cpu", dtype=torch.float64) for o in (o1, o2))
    gt = np.arange(s1.n_vertices)
    rng = np.random.default_rng(1)
    noisy = np.where(rng.random(len(gt)) < 0.3, rng.integers(0, len(gt), len(gt)), gt)
    ev = GeodesicEvaluator(s1, gt, n_samples=200)
    return dict(s1=s1, s2=s2, o1=o1, o2=o2, b1=b1, b2=b2, gt=gt, ev=ev, C0=p2p_to_fmap(noisy, b1, b2, 10, 10), noisy=noisy)


def test_ex04_zoomout_step(pair):
    """Exercise 1: one ZoomOut step (p2p → C at the next size); from a 30 %-wrong map, ZoomOut with
    either step size lowers the error."""
    P = pair
    out = solutions.ex04_zoomout_step(P["C0"], P["b1"], P["b2"], P["ev"].mean, k_final=30, steps=(10, 5))
    before = P["ev"].mean(P["noisy"])
    assert out[5]["error"] < 0.5 * before and out[10]["error"] < 0.5 * before, (before, out)


def test_ex04_sigma_sweep(pair):
    P = pair
    out = solutions.ex04_sigma_sweep(P["C0"], P["b1"], P["b2"], P["ev"].mean, sigmas=(1e-3, 1e-1), n_iter=2, step=5)
    assert out[1e-3]["‖C − C_hard‖ / ‖C_hard‖"] < out[1e-1]["‖C − C_hard‖ / ‖C_hard‖"], "small σ: the soft map tends to the hard one"
    assert out[1e-3]["error"] < P["ev"].mean(P["noisy"]), "with a small σ the soft refinement improves the map like ZoomOut"
    assert all(np.isfinite(r["‖grad‖"]) for r in out.values())


def test_ex04_orientation_term(pair):
    P = pair
    out = solutions.ex04_orientation_term(P, P["ev"].mean, w_orients=(0.0, 1.0, 1e3, 1e5), n_energies=40, k_descr=50,
                                          k_init=10, k_final=30, step=10)
    # on this ~900-vertex shape the shrinking shows clearly only at 1e5 (at 1e3 ‖C‖ fell by 17–39 %,
    # depending on the decimation's exact output); the damage to the map already shows at 1e3
    assert out[1e3]["WKS fmap"] > 1.5 * out[1.0]["WKS fmap"], "an overweighted orientation term spoils the initial map"
    assert out[1e5]["‖C_init‖"] < 0.5 * out[1.0]["‖C_init‖"], "an overweighted orientation term shrinks C towards 0"
    assert out[1.0]["ZoomOut"] <= out[1.0]["WKS fmap"] + 0.05


def test_ex04_backends_timing():
    out = solutions.ex04_backends_timing(sizes=(300,), backends=("torch", "sdpa", "dense"))
    assert set(out[300]) == {"torch", "sdpa", "dense"} and isinstance(out["sdpa kernel"], str)
    for b, r in out[300].items():                     # timings are not asserted: only that every backend agrees
        assert r["max rel. diff"] < 1e-4 and r["fwd+bwd s"] > 0, (b, r)


@pytest.fixture(scope="module")
def training():
    cfg = FmapTrainConfig.paper(k_init=10, n_iter=2, step=5)
    coll = data.humans(source="synthetic", n_subjects=2, n_poses=2)
    shapes = [variants.make_variant(it.shape, "decimated", seed=0).shape.normalized("area") for it in coll]
    sd = [ShapeData.from_shape(s, k=30) for s in shapes]
    ev = GeodesicEvaluator(shapes[3], np.arange(shapes[3].n_vertices), n_samples=100)
    s3b = shapes[3].copy(vertices=shapes[3].vertices + 1e-3)
    # four noisy copies (σ = 2e-3 on the unit-area shape): pairs whose feature maps are not already exact
    noisy = [shapes[3].copy(vertices=shapes[3].vertices + np.random.default_rng(s).normal(0, 2e-3, shapes[3].vertices.shape))
             for s in range(4)]
    return dict(cfg=cfg, train=sd[:3], test=[(sd[3], ShapeData.from_shape(s3b, k=30))], evaluators=[ev.mean],
                noisy_test=[(sd[3], ShapeData.from_shape(s, k=30)) for s in noisy], noisy_evaluators=[ev.mean] * 4)


def test_ex04_consistency_loss(training):
    """Exercise 5's mechanics. Which run maps better after ZoomOut is not asserted: in runs this short it
    is seed noise (on four noisy copies, 6 steps: 0.95 / 0.85, 0.96 / 0.96, 0.98 / 0.92 with / without
    for seeds 0-2; 20 steps: 0.90 / 1.03, 0.91 / 0.92, 0.96 / 0.96), and so is the residual the term
    penalises (lower with the term in 3 of 8 runs of 6-12 steps), as the exercise text tells students."""
    off = FmapTrainConfig.paper(w_consist=(0, 0))
    assert off.consistency_weight(0.0) == off.consistency_weight(0.7) == 0, "w_consist=(0, 0) switches the term off"
    t = training
    out = solutions.ex04_consistency_loss(t["train"], t["noisy_test"], t["noisy_evaluators"], cfg=t["cfg"], n_steps=6,
                                          width=16, refine_every=2)
    assert set(out) == {"with consistency", "without"}
    for r in out.values():
        assert r["feature Dirichlet energy"] > 0 and r["consistency residual"] >= 0, out
    # same seed, same pairs, same steps: only the term tells the two runs apart, so it reaches the gradient
    w, wo = out["with consistency"], out["without"]
    assert abs(w["feature Dirichlet energy"] - wo["feature Dirichlet energy"]) > 1e-6 * wo["feature Dirichlet energy"], \
        f"the consistency term changed nothing in training: {out}"
    # and both runs learn: the untrained network's map after ZoomOut is ~30x worse (32.6 against ~0.9)
    from shapelib.solutions import nb04
    untrained = nb04._fmap_errors(nb04._fmap_net(t["train"], t["cfg"], 0, 16, 2), t["noisy_test"],
                                  t["noisy_evaluators"], t["cfg"])["+ ZoomOut"]
    assert max(w["+ ZoomOut"], wo["+ ZoomOut"]) < 0.2 * untrained, f"six steps already learn a map: {untrained}, {out}"


def test_ex04_paper_vs_code(training):
    t = training
    small = dict(k_init=10, n_iter=2, step=5)
    configs = {"code": FmapTrainConfig.code(**small), "code, lr 1e-3": FmapTrainConfig.code(lr=1e-3, **small)}
    out = solutions.ex04_paper_vs_code(t["train"], t["test"], t["evaluators"], n_steps=6, width=16, refine_every=2, configs=configs)
    assert out["code"]["weight change"] < 0.5 * out["code, lr 1e-3"]["weight change"], \
        "the code's learning rate (1e-4) moves the weights far less in a short run"


def test_ex04_train_vs_test(real_data):
    """The committed model swaps the hands on training pairs too (tr_reg_005 <- tr_reg_044: error
    above 10, most of it on mirror-side vertices, not flipped as a whole) and maps others well
    (tr_reg_000 <- tr_reg_052): the exercise's comparison counts them against the record's test pairs."""
    from shapelib.experiments import checkpoints, fmaps

    if "fmaps_faust_r_unsupervised" not in checkpoints.available():
        pytest.skip("no committed fmaps_faust_r_unsupervised checkpoint")
    out = solutions.ex04_train_vs_test(pairs=["tr_reg_005<-tr_reg_044", "tr_reg_000<-tr_reg_052"])
    bad, good = out["train_pairs"]["tr_reg_005<-tr_reg_044"], out["train_pairs"]["tr_reg_000<-tr_reg_052"]
    assert bad["error"] > 10 and bad["mirror_share"] > 0.5 and not bad["flipped"], bad
    assert good["error"] < 3 and good["mirror_share"] < 0.2, good
    assert out["train"]["n_bad"] == 1 and out["train"]["n"] == 2 and out["share above threshold"]["train"] == 0.5
    assert out["test"]["n"] == 190 and out["share above threshold"]["test"] == pytest.approx(out["test"]["n_bad"] / 190)
    losses = out["mean training loss"]                 # each side's mean of the pairs' training loss
    assert losses["pairs above threshold"] == pytest.approx(bad["loss"]) and losses["others"] == pytest.approx(good["loss"])
    assert 0 < good["loss"] < 10 and 0 < bad["loss"] < 10
    quick = fmaps.trained_pair("tr_reg_000<-tr_reg_052", with_loss=False)
    assert quick["loss"] is None and quick["score"]["error"] == pytest.approx(good["error"], rel=1e-9)
    with pytest.raises(ValueError, match="tr_reg_XXX"):
        solutions.ex04_train_vs_test(pairs=["005<-044"])
    longer = "fmaps_faust_r_unsupervised_full_decimated"      # the exercise's second run: no swap on that pair
    if longer in checkpoints.available():
        fixed = solutions.ex04_train_vs_test(name=longer, pairs=["tr_reg_005<-tr_reg_044"])["train_pairs"]["tr_reg_005<-tr_reg_044"]
        assert fixed["error"] < 3 and fixed["mirror_share"] < 0.2, fixed
