"""CPNet: correspondence sets, Eq. 2 set distances, pull/push loss with hard negative mining,
mGE (Algorithm 1) against a brute-force loop, backbones, geodesics on a sphere (mesh and cloud)."""
import numpy as np
import pytest
import torch

from shapelib import Shape, cpnet
from shapelib.data.items import Item
from shapelib.geodesics import geodesic_distances


def fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5**0.5) * i
    return np.c_[np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)]


@pytest.fixture(scope="module")
def toy():
    """5 noisy sphere clouds (300 points), 4 sets; set 3 absent on models 1 and 4."""
    rng = np.random.default_rng(0)
    base = fibonacci_sphere(300)
    items = []
    for m in range(5):
        perm = rng.permutation(300)  # same surface points, model-specific order
        pts = (base * (1 + 0.02 * rng.standard_normal((300, 1))))[perm]
        kp = np.argsort(perm)[[0, 75, 150, 225]]
        if m in (1, 4):
            kp[3] = -1
        items.append(Item(Shape(pts, None, name=f"m{m}"), keypoints=kp))
    return cpnet.CorrespondenceSets.from_items(items, progress=False, source="synthetic: toy spheres")


def brute_force_mge(sets, E):
    """Algorithm 1 with plain Python loops (independent of the library's implementations)."""
    errs = []
    for i in range(sets.n_sets):
        for mp in range(sets.n_models):
            for mq in range(sets.n_models):
                p, q = sets.keypoints[mp, i], sets.keypoints[mq, i]
                if p < 0 or q < 0:
                    continue
                d = [np.sum((E[mq][x] - E[mp][p]) ** 2) for x in range(len(E[mq]))]
                errs.append(sets.geo[mq][i, int(np.argmin(d))])
    return float(np.mean(errs))


# ----------------------------------------------------------------------------- geodesics


def test_sphere_geodesics_mesh_and_cloud(icosphere):
    """Great-circle distances on the unit sphere within 2 % (mean relative error): mesh (heat
    method) and cloud (Dijkstra on the k-NN graph) through the ONE entry point."""
    cloud = Shape(fibonacci_sphere(3000), None)
    for shape in (icosphere, cloud):
        v = shape.vertices / np.linalg.norm(shape.vertices, axis=1, keepdims=True)
        src = [0, len(v) // 3, 2 * len(v) // 3]
        D = geodesic_distances(shape, src, method="auto")
        gt = np.arccos(np.clip(v[src] @ v.T, -1, 1))
        far = gt > 0.2
        rel = np.abs(D[far] - gt[far]) / gt[far]
        assert rel.mean() < 0.02, f"{'mesh' if shape.is_mesh else 'cloud'}: mean rel. error {rel.mean():.3f}"
        assert np.abs(D - gt).max() < 0.05 * np.pi
    assert geodesic_distances(cloud, 5, method="auto").shape == (cloud.n_vertices,)
    with pytest.raises(ValueError, match="method"):
        geodesic_distances(cloud, 0, method="exact")


def test_geodesics_cloud_graph_is_a_metric_upper_bound():
    """Graph geodesics on a cloud never undercut the straight line (chords) and are 0 at the source."""
    pts = fibonacci_sphere(500)
    D = geodesic_distances(Shape(pts, None), [3, 10], method="auto")
    assert D[0, 3] == 0 and D[1, 10] == 0
    eu = np.linalg.norm(pts[[3, 10]][:, None] - pts[None], axis=-1)
    assert (D >= eu - 1e-9).all()


# ----------------------------------------------------------------------------- sets and Eq. 2


def test_sets_structure_and_set_distances(toy):
    assert toy.n_models == 5 and toy.n_sets == 4
    assert np.isnan(toy.geo[1][3]).all() and np.isfinite(toy.geo[0]).all()
    G = toy.keypoint_geodesics()
    D = toy.set_distances()
    # Eq. 2: average over the models holding both sets (set 3: models 0, 2, 3 only)
    assert np.isclose(D[0, 3], np.mean([G[m, 0, 3] for m in (0, 2, 3)]))
    assert np.isclose(D[0, 1], np.mean(G[:, 0, 1]))
    assert np.allclose(D, D.T) and np.all(np.diag(D) == 0)


def test_from_items_samples_meshes_and_snaps_keypoints(icosphere):
    kp = np.array([0, 100, -1])
    item = Item(icosphere, keypoints=kp, parts=(icosphere.vertices[:, 2] > 0).astype(int))
    sets = cpnet.CorrespondenceSets.from_items([item], n_points=400, progress=False)
    p = sets.points[0]
    assert p.shape == (400, 3) and sets.keypoints[0, 2] == -1
    assert np.isclose(np.linalg.norm(p.max(0) - p.min(0)), 1.0, atol=1e-5)  # unit diagonal
    # the snapped sample is the nearest sample to the keypoint vertex (same normalisation)
    v = icosphere.vertices
    v = (v - 0.5 * (v.max(0) + v.min(0))) / np.linalg.norm(v.max(0) - v.min(0))
    for j in (0, 1):
        assert sets.keypoints[0, j] == np.argmin(np.linalg.norm(p - v[kp[j]], axis=1))
    assert sets.parts is not None and sets.parts[0].shape == (400,)
    with pytest.raises(ValueError, match="keypoints"):
        cpnet.CorrespondenceSets.from_items([Item(icosphere)], progress=False)


# ----------------------------------------------------------------------------- loss


def test_push_is_zero_when_embeddings_are_farther_than_set_distances():
    labels = torch.tensor([0, 0, 1, 1, 2])
    set_dist = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 0.5], [2.0, 0.5, 0.0]])
    centers = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    F = centers[labels] + 0.01 * torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    loss, st = cpnet.pull_push_loss(F, labels, set_dist, mining=False)
    assert st["push"] == 0.0 and st["n_neg"] == 8 and st["n_pos"] == 2
    assert torch.isclose(loss, torch.tensor(st["pull"]))
    # bring sets 1 and 2 closer than d(C_1, C_2) = 0.5: the hinge activates
    F2 = F.clone()
    F2[4] = F2[2] + torch.tensor([0.1, 0.0])
    _, st2 = cpnet.pull_push_loss(F2, labels, set_dist, mining=False)
    assert st2["push"] > 0
    # active hinges: (2, 4) and (3, 4) — both members of set 1 are now near point 4 — among 8 negatives
    expected = sum(0.5 - float(torch.linalg.norm(F2[i] - F2[4])) for i in (2, 3)) / 8
    assert np.isclose(st2["push"], expected, atol=1e-5)


def test_collapse_is_optimal_for_pull_but_not_for_pull_plus_push():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    set_dist = torch.tensor([[0.0, 0.4, 0.8], [0.4, 0.0, 0.6], [0.8, 0.6, 0.0]])
    const = torch.ones(6, 8, requires_grad=True)
    pull, _ = cpnet.pull_push_loss(const, labels, set_dist, push=False)
    assert float(pull.detach()) < 1e-5  # the trivial global optimum of Eq. 1
    total, st = cpnet.pull_push_loss(const, labels, set_dist)
    # with mining the N_pos = 3 closest negatives (all at distance 0 here) are pushed
    assert st["n_neg"] == 3 and st["push"] > 0.3
    total.backward()
    assert torch.isfinite(const.grad).all()  # sqrt(d² + eps): no NaN at coincident points


def test_hard_negative_mining_picks_closest_pairs():
    g = torch.Generator().manual_seed(1)
    F = torch.randn(12, 4, generator=g)
    labels = torch.randint(0, 4, (12,), generator=g)
    dist = torch.cdist(F, F)
    i, j = cpnet.hard_negatives(dist, labels, 5)
    neg = sorted((float(dist[a, b]), a, b) for a in range(12) for b in range(a + 1, 12) if labels[a] != labels[b])
    assert [(int(a), int(b)) for a, b in zip(i, j)] == [(a, b) for _, a, b in neg[:5]]
    assert (labels[i] != labels[j]).all()
    # asking for more than exist returns all negatives
    assert len(cpnet.hard_negatives(dist, labels, 10**6)[0]) == len(neg)


# ----------------------------------------------------------------------------- mGE


def test_mge_zero_for_a_perfect_embedding(toy):
    """Annotated points of set j share one code, distinct per set; other points far away."""
    rng = np.random.default_rng(0)
    E = []
    for m in range(toy.n_models):
        F = 100.0 + rng.standard_normal((len(toy.points[m]), 8))
        for j in range(toy.n_sets):
            if toy.keypoints[m, j] >= 0:
                F[toy.keypoints[m, j]] = np.eye(8)[j]
        E.append(F.astype(np.float32))
    assert cpnet.mean_geodesic_error(toy, E) == 0.0
    assert cpnet.mean_geodesic_error_loop(toy, E) == 0.0


@pytest.mark.parametrize("backend", ["torch", "kdtree"])
def test_mge_matches_brute_force_loop(toy, backend):
    E = [np.asarray(e) for e in cpnet.random_embeddings(toy, dim=6, seed=3)]
    ref = brute_force_mge(toy, E)
    assert np.isclose(cpnet.mean_geodesic_error(toy, E, backend=backend), ref, rtol=1e-6)
    assert np.isclose(cpnet.mean_geodesic_error_loop(toy, E), ref, rtol=1e-6)
    e = cpnet.mge_errors(toy, E, backend=backend)
    # pairs: 3 full sets × 5² + set 3 on 3 models × 3²
    assert len(e["error"]) == 3 * 25 + 9
    assert cpnet.mean_geodesic_error(toy, E, include_self=False) >= 0
    with pytest.raises(ValueError, match="embeddings"):
        cpnet.mean_geodesic_error(toy, E[:2])


def test_mge_of_coordinates_beats_random(toy):
    """On near-identical spheres the xyz coordinates are an almost perfect embedding."""
    rnd = cpnet.mean_geodesic_error(toy, cpnet.random_embeddings(toy))
    xyz = cpnet.mean_geodesic_error(toy, toy.points)
    assert xyz < 0.25 * rnd


# ----------------------------------------------------------------------------- backbones and training


@pytest.mark.parametrize("name", ["PointNet", "DGCNN"])
def test_backbones_are_permutation_equivariant(name):
    torch.manual_seed(0)
    net = cpnet.make_backbone(name, width=16, **({"k": 8} if name == "DGCNN" else {})).eval()
    x = torch.randn(200, 3)
    perm = torch.randperm(200)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (200, cpnet.EMBED_DIM)
        assert torch.allclose(net(x[perm]), out[perm], atol=1e-5)
    with pytest.raises(ValueError, match="backbone"):
        cpnet.make_backbone("PointConv")


def test_training_separates_sets(toy):
    """A few epochs of pull + push on the toy spheres lower mGE and keep the embedding spread."""
    torch.manual_seed(0)
    net = cpnet.make_backbone("PointNet", width=16)
    inputs = cpnet.prepare_inputs(toy)
    before = cpnet.mean_geodesic_error(toy, cpnet.embed(net, inputs))
    hist = cpnet.train_embeddings(net, toy, inputs, range(5), epochs=40, lr=3e-3, progress=False)
    E = cpnet.embed(net, inputs)
    assert hist.loss[-1] < hist.loss[0]
    assert cpnet.mean_geodesic_error(toy, E) < 0.5 * before
    assert cpnet.embedding_spread(E) > 1e-3
    assert len(hist.extra["pull"]) == 40


# ----------------------------------------------------------------------------- real annotations


def test_keypointnet_annotations_to_sets(real_data, monkeypatch):
    monkeypatch.setenv("SHAPELIB_DATA", str(real_data))
    from shapelib.data import real

    ann = real.keypointnet_annotations("chair")
    items = real.keypointnet_items("chair")
    assert len(ann) == 999 and len(items) >= 1
    sets = cpnet.CorrespondenceSets.from_items(items, progress=False, source="real: KeypointNet")
    assert sets.n_sets == 1 + max(int(a["semantic_id"].max()) for a in ann)
    m = 0
    a = items[m].meta["annotation"]
    # the snapped keypoint is the annotated point of the cloud, its geodesic row is 0 there
    assert (sets.keypoints[m, a["semantic_id"]] == a["point_index"]).all()
    assert np.allclose(sets.geo[m][a["semantic_id"], a["point_index"]], 0)
    E = cpnet.random_embeddings(sets, dim=8)
    assert np.isclose(cpnet.mean_geodesic_error(sets, E), brute_force_mge(sets, E))


# ----------------------------------------------------------------------------- figures of notebook 06


def test_keypoint_matches_follow_algorithm_1(toy):
    """Coordinates as embedding of the (nearly) same sphere: the matched point of every target is the
    argmin of the returned distances, its error is that point's geodesic to the annotated one, the
    source finds its own keypoint (error 0) and the errors stay far below random embeddings'."""
    E = [p.astype(np.float32) for p in toy.points]
    out = cpnet.keypoint_matches(toy, E, 0, 0, [0, 1, 2, 3, 4])
    assert out[0]["x"] == toy.keypoints[0, 0] and out[0]["error"] == 0
    for t, m in out.items():
        assert m["x"] == int(np.argmin(m["distance"])) and m["q"] == toy.keypoints[t, 0]
        assert m["error"] == pytest.approx(toy.geo[t][0, m["x"]])
    rnd = cpnet.keypoint_matches(toy, cpnet.random_embeddings(toy, seed=0), 0, 0, [1, 2, 3, 4])
    assert np.mean([m["error"] for t, m in out.items() if t]) < 0.2 * np.mean([m["error"] for m in rnd.values()])
    with pytest.raises(ValueError, match="not annotated on target model 1"):   # set 3 is absent on model 1
        cpnet.keypoint_matches(toy, E, 3, 0, [1])
    with pytest.raises(ValueError, match="sets.present"):
        cpnet.keypoint_matches(toy, E, 3, 4, [0])


def test_embedding_and_match_figures(toy):
    plt = pytest.importorskip("matplotlib.pyplot")
    E = [p.astype(np.float32) for p in toy.points]
    fig = cpnet.plot_embeddings(toy, {"xyz": E, "random": cpnet.random_embeddings(toy)}, [0, 2, 3])
    assert len([a for a in fig.axes if a.name == "3d"]) == 6
    with pytest.raises(ValueError, match="one per model"):
        cpnet.plot_embeddings(toy, {"xyz": E[:2]}, [0])
    with pytest.raises(ValueError, match="at least one"):
        cpnet.plot_embeddings(toy, {}, [0])
    fig2, matches = cpnet.plot_keypoint_matches(toy, E, 1, 0, [2, 3])
    assert set(matches) == {2, 3} and len([a for a in fig2.axes if a.name == "3d"]) == 3
    plt.close("all")
