"""CPNet's mGE as the authors' test code reduces it (per set, pairs of different models, mean over
sets), the rotation about the vertical, and the part-supervised network of Table 3."""
import numpy as np
import pytest
import torch

from shapelib import Shape, cpnet
from shapelib.data.items import Item


@pytest.fixture(scope="module")
def sets():
    """4 random clouds (120 points), 3 sets; set 2 only on models 0 and 1, set 1 absent on model 3."""
    rng = np.random.default_rng(1)
    items = []
    for m in range(4):
        pts = rng.standard_normal((120, 3))
        kp = np.array([0, 10, 20]) + m
        if m >= 2:
            kp[2] = -1
        if m == 3:
            kp[1] = -1
        items.append(Item(Shape(pts, None, name=f"m{m}"), keypoints=kp))
    return cpnet.CorrespondenceSets.from_items(items, progress=False, n_neighbors=20)


def authors_mge(sets, E):
    """The authors' reduction written out with loops: for each set, for each ordered pair (i, j), i != j,
    of models holding it, the geodesic on j from its annotated point to the point of j whose
    embedding is nearest f(p_i); mean over pairs; then mean over the sets with a pair."""
    per_set = []
    for s in range(sets.n_sets):
        members = [m for m in range(sets.n_models) if sets.keypoints[m, s] >= 0]
        errs = []
        for i in members:
            f = E[i][sets.keypoints[i, s]]
            for j in members:
                if i == j:
                    continue
                x = int(np.argmin(((E[j] - f) ** 2).sum(1)))
                errs.append(sets.geo[j][s, x])
        if errs:
            per_set.append(np.mean(errs))
    return float(np.mean(per_set)), per_set


def test_mge_per_set_is_the_authors_reduction(sets):
    E = cpnet.random_embeddings(sets, dim=8, seed=3)
    out = cpnet.mge_per_set(sets, E)
    ref, per_set = authors_mge(sets, E)
    assert out["mge"] == pytest.approx(ref, rel=1e-6) == cpnet.mge(sets, E)
    assert [out["per_set"][s] for s in sorted(out["per_set"])] == pytest.approx(per_set, rel=1e-6)
    assert out["n_pairs"] == {0: 12, 1: 6, 2: 2}
    # the reduction matters: pooling all pairs (self pairs dropped) weighs set 0 six times set 2
    pooled = cpnet.mean_geodesic_error(sets, E, include_self=False)
    assert abs(pooled - out["mge"]) > 1e-4


def test_mge_per_set_zero_for_a_perfect_embedding(sets):
    # one-hot of "distance to each annotated point" is minimal exactly at the annotated points
    E = [np.stack([np.where(np.arange(len(p)) == k, 0.0, 1.0) if k >= 0 else np.ones(len(p))
                   for k in sets.keypoints[m]], 1) for m, p in enumerate(sets.points)]
    assert cpnet.mge_per_set(sets, E)["mge"] == pytest.approx(0.0, abs=1e-9)


def test_mge_per_set_refuses_sets_on_single_models(sets):
    one = sets.subset([0])
    with pytest.raises(ValueError, match="undefined"):
        cpnet.mge_per_set(one, cpnet.random_embeddings(one, dim=4))


@pytest.mark.parametrize("as_torch", [False, True])
def test_rotation_about_the_vertical(as_torch):
    rng = np.random.default_rng(0)
    p = rng.standard_normal((50, 3))
    x = torch.as_tensor(p) if as_torch else p
    r = cpnet.rotate_about_vertical(x, 0.7)
    r = np.asarray(r)
    assert np.allclose(r[:, 1], p[:, 1])                                   # heights kept
    assert np.allclose(np.linalg.norm(r[:, [0, 2]], axis=1), np.linalg.norm(p[:, [0, 2]], axis=1))
    assert not np.allclose(r, p)
    back = cpnet.rotate_about_vertical(r, -0.7)
    assert np.allclose(back, p)
    q = cpnet.rotate_about_vertical(np.array([[1.0, 0.0, 0.0]]), np.pi / 2)
    assert np.allclose(np.abs(q), [[0, 0, 1]])                              # a quarter turn maps x onto ±z


def test_part_network_embeds_with_its_last_but_one_layer():
    net = cpnet.PartSegEmbed(cpnet.make_backbone("PointNet", 128), 128, 4)
    x = torch.randn(300, 3)
    assert net(x).shape == (300, 4)
    e = net.embed(x)
    assert e.shape == (300, 128)
    assert torch.allclose(net.cls(e), net(x))          # the classifier reads exactly the embedding layer


def test_printed_algorithm_1_is_the_authors_reduction_times_one_minus_one_over_n_models():
    """Why :func:`cpnet.mean_geodesic_error` (Algorithm 1 as printed) is not the paper's number: with
    every set on every model, Algorithm 1 as printed (p = q zeros included) = (1 − 1/N_M) × the
    authors' per-set reduction when each set has the same number of pairs."""
    rng = np.random.default_rng(2)
    items = [Item(Shape(rng.standard_normal((80, 3)), None, name=f"m{m}"), keypoints=np.array([0, 10, 20]) + m)
             for m in range(4)]
    full = cpnet.CorrespondenceSets.from_items(items, progress=False, n_neighbors=20)
    E = cpnet.random_embeddings(full, dim=8, seed=5)
    printed = cpnet.mean_geodesic_error(full, E)
    assert printed == pytest.approx(cpnet.mean_geodesic_error_loop(full, E), rel=1e-6)
    assert printed == pytest.approx((1 - 1 / 4) * cpnet.mge_per_set(full, E)["mge"], rel=1e-6)


def test_real_rows_state_the_papers_yardstick_last():
    from shapelib.experiments import cpnet as C

    assert "yardstick: the paper's" in C.CPNET_YARDSTICK and "yardstick: the paper's" in C.CPNET_SYNTHETIC_YARDSTICK
    base = {"test": {"n": 19}, "random": {"mean": 0.54, "std": 0.002, "seeds": [0, 1, 2], "per_seed": [0.54] * 3},
            "hks_wks": {"mge": 0.53}, "xyz": {"mge": 0.09}}
    for live, note in ((None, ""), (True, "; recomputed in this run"), (False, "; as stored with the shipped models")):
        rows = C.report_rows({}, base, live=live)
        assert len(rows) == 3 and all(r["protocol"].endswith(note + C.CPNET_YARDSTICK) for r in rows)
