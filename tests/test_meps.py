"""MEPS / FeaStNet: tensor shapes, invariances, generated weights, gradients, the Eq. 9–11 argument."""
import numpy as np
import pytest
import torch

from shapelib.meps import (
    GraphConv,
    Graph,
    PointNetEncoder,
    PointSignatureNet,
    base_preactivation,
    feast_aggregate,
    knn_graph,
    label_set,
    mesh_graph,
)

META = (16, 32, 24)


@pytest.fixture(scope="module")
def cloud():
    g = torch.Generator().manual_seed(0)
    return torch.randn(120, 3, generator=g) * torch.tensor([1.0, 0.6, 0.3])


@pytest.fixture(scope="module")
def graph(cloud):
    return knn_graph(cloud, 8)


def test_knn_graph_centre_first_and_nearest(cloud, graph):
    assert graph.idx.shape == (120, 9) and graph.mask is None
    assert torch.equal(graph.idx[:, 0], torch.arange(120))
    d = torch.cdist(cloud, cloud)
    d.fill_diagonal_(float("inf"))
    brute = d.topk(8, largest=False).indices
    assert torch.equal(graph.idx[:, 1:].sort(1).values, brute.sort(1).values)


def test_mesh_graph_is_the_one_ring(icosphere):
    g = mesh_graph(icosphere)
    deg = g.mask.sum(1).numpy() - 1
    e = icosphere.edges()
    assert np.array_equal(deg, np.bincount(e.ravel(), minlength=icosphere.n_vertices))
    i = 7
    ring = set(e[e[:, 0] == i, 1]) | set(e[e[:, 1] == i, 0])
    assert set(g.idx[i, 1:][g.mask[i, 1:]].tolist()) == ring and g.idx[i, 0] == i
    # padded rows aggregate exactly like their unpadded neighbourhood (mean over |p_i|)
    x = torch.randn(icosphere.n_vertices, 4, dtype=torch.float64)
    conv = GraphConv(4, 5, heads=3, relation="feast").double()
    out = conv(x, g)
    r = conv.relations(x, g)[i, : deg[i] + 1]
    ref = torch.einsum("km,kc,mco->o", r, x[g.idx[i, : deg[i] + 1]], conv.weight) / (deg[i] + 1) + conv.bias
    assert torch.allclose(out[i], ref)


def test_tensor_shapes_through_the_meta_learner(cloud, graph):
    net = PointSignatureNet(10, "meps", meta_widths=META)
    emb = net.embedding(cloud, graph)
    assert emb.shape == (120, META[-1])
    assert net.meta.local_points(cloud, graph).shape == (120, 9, 3)
    h = torch.relu(net.lin_in(cloud))
    for conv, (cin, cout) in zip(net.convs, [(16, 32), (32, 64), (64, 128)]):
        th = conv.theta(emb)
        assert th["W_hat"].shape == th["W_tilde"].shape == (120, cin, 32)
        assert th["b1"].shape == (120, 32) and th["W2"].shape == (120, 32, 9) and th["b2"].shape == (120, 9)
        assert conv.n_theta == 2 * cin * 32 + 32 + 32 * 9 + 9
        r = conv.relations(h, graph, emb)
        assert r.shape == (120, 9, 9) and torch.allclose(r.sum(-1), torch.ones(120, 9), atol=1e-5)
        h = torch.relu(conv(h, graph, emb))
        assert h.shape == (120, cout)
    assert net.signatures(cloud, graph).shape == (120, 256)
    assert net(cloud, graph).shape == (120, 10)
    assert net(cloud, graph, rows=torch.arange(5)).shape == (5, 10)


def test_neighbourhood_encoder_is_permutation_invariant(cloud, graph):
    enc = PointNetEncoder(META).eval()
    perm = torch.randperm(graph.K - 1, generator=torch.Generator().manual_seed(1)) + 1
    shuffled = Graph(torch.cat([graph.idx[:, :1], graph.idx[:, perm]], 1))
    a, b = enc(cloud, graph), enc(cloud, shuffled)
    assert torch.allclose(a, b, atol=1e-6)
    # ... and translation invariant (coordinates relative to the centre), but not shape-blind
    assert torch.allclose(enc(cloud + torch.tensor([3.0, -1.0, 2.0]), graph), a, atol=1e-5)
    assert not torch.allclose(enc(cloud * 1.5, graph), a, atol=1e-3)


def test_generated_weights_identical_for_identical_neighbourhoods():
    # two copies of the same cloud far apart: every neighbourhood occurs twice (translated)
    P = torch.randn(50, 3, generator=torch.Generator().manual_seed(2))
    both = torch.cat([P, P + 100.0])
    g = knn_graph(both, 6)
    net = PointSignatureNet(4, "meps", meta_widths=META).eval()
    th = net.convs[1].theta(net.embedding(both, g))
    for name, t in th.items():
        assert torch.allclose(t[:50], t[50:], atol=1e-5), name
        # different neighbourhoods get different base learners
        assert (t[:50, None] - t[None, :50]).flatten(2).abs().amax(-1).triu(1)[np.triu_indices(50, 1)].min() > 0, name


def test_gradient_reaches_the_meta_learner(cloud, graph):
    net = PointSignatureNet(6, "meps", meta_widths=META)
    y = torch.arange(120) % 6
    torch.nn.functional.cross_entropy(net(cloud, graph), y).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert net.meta.mlp[0].weight.grad.abs().sum() > 0
    assert all(c.head.weight.grad.abs().sum() > 0 for c in net.convs)
    # the FeaStNet baseline has no meta-learner at all
    assert PointSignatureNet(6, "feast").meta is None


def test_eq_9_11_shared_weights_see_only_the_centres():
    """Two neighbourhoods p_i, p_j share a vertex v_k. With one shared f, a_ik − a_jk = Ŵ(v_i − v_j)
    whatever the rest of the neighbourhoods look like (Eq. 11); MEPS's difference changes when
    only the OTHER members of p_i change."""
    torch.manual_seed(0)
    n, C = 12, 3
    X = torch.randn(n, C, dtype=torch.float64)
    i, j, k = 0, 1, 2
    idx = torch.arange(n)[:, None].repeat(1, 4)
    idx[i] = torch.tensor([i, k, 3, 4])
    idx[j] = torch.tensor([j, k, 5, 6])
    g = Graph(idx)
    X2 = X.clone()
    X2[3] += torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)  # reshape p_i away from v_i, v_j, v_k

    shared = GraphConv(C, 4, heads=3, relation="shared", hidden=5).double()
    th = shared.theta()
    diff = lambda Y: (lambda a: a[i, 1] - a[j, 1])(base_preactivation(Y, g, th["W_hat"], th["W_tilde"], th["b1"]))
    assert torch.allclose(diff(X), (X[i] - X[j]) @ th["W_hat"])  # Eq. 11
    assert torch.allclose(diff(X), diff(X2))

    net = PointSignatureNet(2, "meps", widths=(C, 4, 8), meta_widths=(8, 8), in_channels=C).double().eval()
    conv = net.convs[0]

    def meps_diff(Y):
        t = conv.theta(net.meta(Y, g))
        a = base_preactivation(Y, g, t["W_hat"], t["W_tilde"], t["b1"])
        return a[i, 1] - a[j, 1]

    assert not torch.allclose(meps_diff(X), meps_diff(X2), atol=1e-6)
    assert not torch.allclose(meps_diff(X), (X[i] - X[j]) @ conv.theta(net.meta(X, g))["W_hat"][i], atol=1e-6)


def test_feast_aggregate_matches_the_double_sum():
    torch.manual_seed(0)
    n, K, M, Ci, Co = 7, 4, 3, 5, 2
    x = torch.randn(n, Ci, dtype=torch.float64)
    g = Graph(torch.randint(0, n, (n, K)))
    r = torch.softmax(torch.randn(n, K, M, dtype=torch.float64), -1)
    W, b = torch.randn(M, Ci, Co, dtype=torch.float64), torch.randn(Co, dtype=torch.float64)
    ref = torch.stack([b + sum(r[i, kk, m] * (x[g.idx[i, kk]] @ W[m]) for kk in range(K) for m in range(M)) / K
                       for i in range(n)])
    assert torch.allclose(feast_aggregate(x, g, r, W, b), ref)


def test_label_set_and_a_tiny_training_run():
    from shapelib.meps import prepare
    from shapelib.train import accuracy, fit, labelling_loss

    rng = np.random.default_rng(0)
    V = rng.normal(size=(400, 3)) * [1.0, 0.5, 0.25]
    ls = label_set(V, 100, 8, include=[5, 7])
    assert len(ls.points) == 100 and {5, 7} <= set(ls.points.tolist()) and len(np.unique(ls.points)) == 100
    assert ls.n_labels == 8 and ls.labels.max() == 7 and np.isin(ls.centers, ls.points).all()
    exact = label_set(V, 50, 50)
    assert np.array_equal(exact.labels, np.arange(50)) and np.array_equal(exact.centers, exact.points)
    items = prepare([V[ls.points] + rng.normal(scale=0.01, size=(100, 3)) for _ in range(3)], [ls.labels] * 3, k=10)
    torch.manual_seed(0)
    net = PointSignatureNet(8, "meps", meta_widths=META)
    hist = fit(net, items, labelling_loss, epochs=25, lr=1e-2, progress=False)
    assert hist.loss[-1] < 0.5 * hist.loss[0] and accuracy(net, items) > 0.5


def test_bad_input_gets_a_clear_error(cloud, graph):
    with pytest.raises(ValueError, match="relation"):
        PointSignatureNet(3, "gcn")
    with pytest.raises(ValueError, match="embedding"):
        GraphConv(3, 4, relation="meps", meta_dim=8)(cloud, graph)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        knn_graph(torch.randn(10, 2), 3)


def _layer_by_layer(enc, points, graph):
    """The encoder as the paper writes it: every layer on all n·K points, then max over k."""
    rel = enc.local_points(points, graph)
    n, K, _ = rel.shape
    return enc.mlp(rel.reshape(n * K, 3)).reshape(n, K, -1).max(1).values


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 5e-5)])
def test_fused_encoder_equals_layer_by_layer_formula(icosphere, dtype, tol):
    """The fused last layer (BN statistics from the C×C covariance, max inside BN and ReLU,
    chunked GEMMs) gives the layer-by-layer outputs, gradients and running statistics; a
    negative BN scale (max becomes min) and a padded mesh graph included."""
    import copy

    import shapelib.kernels as kernels

    g = mesh_graph(icosphere)
    pts = torch.as_tensor(icosphere.vertices, dtype=dtype)
    torch.manual_seed(0)
    enc = PointNetEncoder((8, 16, 12)).to(dtype)
    with torch.no_grad():
        enc.mlp[-2].weight.copy_(torch.randn(12, dtype=dtype))  # some scales negative
        enc.mlp[-2].bias.copy_(torch.randn(12, dtype=dtype) * 0.3)
    ref = copy.deepcopy(enc)
    old = kernels.BLOCK_BYTES
    kernels.BLOCK_BYTES = 4 * g.K * 12 * 8 * 7  # several chunks of 7 neighbourhoods
    try:
        out = enc(pts, g)
        out_detached = out.detach()
    finally:
        kernels.BLOCK_BYTES = old
    want = _layer_by_layer(ref, pts, g)
    rel = lambda a, b: float((a - b).abs().max() / b.abs().max())  # noqa: E731
    assert rel(out_detached, want.detach()) < tol, f"fused forward differs by {rel(out_detached, want.detach()):.1e}"
    w = torch.randn_like(want)
    (out * w).sum().backward()
    (want * w).sum().backward()
    # (the first layers' biases feed a BatchNorm: their true gradient is 0, compare on the global scale)
    scale = max(float(q.grad.abs().max()) for q in ref.parameters())
    for (name, p), q in zip(enc.named_parameters(), ref.parameters()):
        err = float((p.grad - q.grad).abs().max()) / scale
        assert err < 100 * tol, f"gradient of {name} differs by {err:.1e}"
    for a, b in zip(enc.buffers(), ref.buffers()):
        assert torch.allclose(a.double(), b.double(), rtol=10 * tol, atol=10 * tol), "running statistics differ"
    enc.eval(), ref.eval()
    with torch.no_grad():
        assert rel(enc(pts, g), _layer_by_layer(ref, pts, g)) < tol, "eval mode (running statistics) differs"
