"""3D Meta Point Signatures (MEPS) and the FeaStNet baseline (notebook 03).

Huang, Wang, Li, Fang, *3D Meta Point Signature: Learning to Learn 3D Point Signature for 3D
Dense Shape Correspondence*. No public code: everything below follows the paper's equations.

Both networks use ONE graph convolution (paper Eq. 2 / Eq. 7) on a neighbourhood graph whose
row ``i`` lists ``p_i = {v_i} ∪ N(i)`` (centre first)::

    v'_i = b + 1/|p_i| Σ_{k ∈ p_i} Σ_m r_ikm W_m v_k ,        r_ik· = softmax_m(logits_ik·)

They differ only in where the relation logits come from:

``'feast'`` (Eq. 3)  one linear form shared by every neighbourhood:
                     ``logits_ikm = u_mᵀ v_i + v_mᵀ v_k + c_m``.
``'shared'``         an MLP ``f(v_i, v_k)`` (Lin32–ReLU–Lin9) with ONE weight set for all
                     neighbourhoods — the paper's §3.3 strawman (Eqs. 9–11); an ablation.
``'meps'`` (Eq. 5–7) the same MLP, but its weights ``θ_p = g(p)`` are generated per
                     neighbourhood by a PointNet meta-learner ``g`` (shared MLP on the
                     neighbourhood's xyz relative to the centre → max-pool → ``meta_dim``-d
                     local embedding, no T-Net) followed by one linear head per convolution.

Everything is batched over all ``n`` neighbourhoods (gather + einsum), no loop over vertices.
A training step is a handful of matrix products: the per-convolution heads that generate the
base learners (``n × meta_dim × n_θ``, most of the work at the paper's size) and the encoder's
last layer, whose BatchNorm + ReLU + max-pool run fused over chunks of neighbourhoods
(:func:`linear_bn_relu_max`: no ``(n·K, meta_dim)`` tensor is kept).
Choices the paper leaves open (documented in the notebook): the meta-learner reads raw xyz
(relative to the centre) once and its embedding feeds a head per convolution; ReLU between
Lin32 and Lin9; PointNet widths 64–128–meta_dim with BatchNorm; the generated weights are a
learned shared part (head bias) plus a neighbourhood-dependent part (head weight × embedding).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .kernels import BLOCK_BYTES, knn
from .train import History, farthest_point_sampling, fit, labelling_loss

RELATIONS = ("feast", "shared", "meps")

# ----------------------------------------------------------------------------- graphs


@dataclass
class Graph:
    """Neighbourhoods ``p_i`` as a padded index table.

    idx : ``(n, K) long`` — column 0 is the centre ``i`` itself, then its neighbours; rows with
        fewer neighbours are padded with ``i`` (harmless for max-pooling).
    mask : ``(n, K) bool`` — False on padding (None: no padding).
    """

    idx: torch.Tensor
    mask: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.idx.shape[0]

    @property
    def K(self) -> int:
        return self.idx.shape[1]

    def counts(self) -> torch.Tensor:
        """``(n,) float`` |p_i| (centre included)."""
        if self.mask is None:
            return torch.full((self.n,), float(self.K), device=self.idx.device)
        return self.mask.sum(1).float()

    def to(self, device) -> "Graph":
        return Graph(self.idx.to(device), None if self.mask is None else self.mask.to(device))


def knn_graph(points, k: int = 20) -> Graph:
    """k-NN graph on ``points (n, 3)`` (array or tensor) by the shared kernel layer: ``(n, k+1)``
    table, centre first (paper: k = 20 on raw xyz)."""
    X = torch.as_tensor(np.asarray(points) if not isinstance(points, torch.Tensor) else points).float()
    if X.ndim != 2 or X.shape[1] != 3:
        raise ValueError(f"knn_graph expects points of shape (n, 3), got {tuple(X.shape)}.")
    idx, _ = knn(X, k)
    return Graph(torch.cat([torch.arange(len(X), device=X.device)[:, None], idx], 1))


def mesh_graph(shape) -> Graph:
    """One-ring graph of a triangle mesh (``Shape.edges()``), padded to the largest degree."""
    if not shape.is_mesh:
        raise ValueError("mesh_graph needs a triangle mesh; use knn_graph(shape.vertices) for point clouds.")
    e = shape.edges()
    e = np.r_[e, e[:, ::-1]]
    e = e[np.lexsort((e[:, 1], e[:, 0]))]
    n = shape.n_vertices
    deg = np.bincount(e[:, 0], minlength=n)
    K = int(deg.max()) + 1
    idx = np.repeat(np.arange(n)[:, None], K, 1)
    slot = np.arange(len(e)) - np.repeat(np.cumsum(deg) - deg, deg) + 1
    idx[e[:, 0], slot] = e[:, 1]
    mask = np.arange(K)[None, :] <= deg[:, None]
    return Graph(torch.as_tensor(idx), torch.as_tensor(mask))


# ----------------------------------------------------------------------------- the convolution


def feast_aggregate(x: torch.Tensor, graph: Graph, r: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor) -> torch.Tensor:
    """Eq. 2 / Eq. 7 given the relations: ``v'_i = b + 1/|p_i| Σ_k Σ_m r_ikm W_m v_k``.

    x ``(n, C_in)``, r ``(n, K, M)``, weight ``(M, C_in, C_out)``, bias ``(C_out,)`` → ``(n, C_out)``.
    Mixes the neighbours first (``(n, M, C_in)``), then applies the M weight matrices — memory
    ``O(n K C_in + n M C_in)``, never ``n K M C_out``.
    """
    if graph.mask is not None:
        r = r * graph.mask[..., None]
    mixed = torch.einsum("nkm,nkc->nmc", r, x[graph.idx])
    return torch.einsum("nmc,mco->no", mixed, weight) / graph.counts()[:, None] + bias


def feast_relations(x: torch.Tensor, graph: Graph, u: torch.Tensor, v: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``r_ik = softmax_m(u_mᵀ x_i + v_mᵀ x_k + c_m)``; u, v ``(C_in, M)``, c ``(M,)`` → ``(n, K, M)``."""
    return torch.softmax((x @ u)[:, None, :] + (x @ v)[graph.idx] + c, dim=-1)


def base_preactivation(x: torch.Tensor, graph: Graph, W_hat: torch.Tensor, W_tilde: torch.Tensor,
                       b: torch.Tensor) -> torch.Tensor:
    """First layer of the base learner, Eq. 9: ``a_ik = Ŵ_p v_i + W̃_p v_k + b_p``.

    Shared weights: W_hat, W_tilde ``(C_in, H)``, b ``(H,)``. Generated weights (one set per
    neighbourhood): ``(n, C_in, H)`` and ``(n, H)``. Returns ``(n, K, H)``.
    """
    if W_hat.ndim == 2:
        return (x @ W_hat)[:, None, :] + x[graph.idx] @ W_tilde + b
    centre = torch.einsum("nc,nch->nh", x, W_hat)
    return centre[:, None, :] + torch.einsum("nkc,nch->nkh", x[graph.idx], W_tilde) + b[:, None, :]


def base_relations(x: torch.Tensor, graph: Graph, theta: dict) -> torch.Tensor:
    """The base learner f_θ (Lin_H – ReLU – Lin_M, softmax over M), Eq. 6; θ from :meth:`GraphConv.theta`."""
    h = torch.relu(base_preactivation(x, graph, theta["W_hat"], theta["W_tilde"], theta["b1"]))
    if theta["W2"].ndim == 2:
        logits = h @ theta["W2"] + theta["b2"]
    else:
        logits = torch.einsum("nkh,nhm->nkm", h, theta["W2"]) + theta["b2"][:, None, :]
    return torch.softmax(logits, dim=-1)


class GraphConv(nn.Module):
    """FeaStConv (``relation='feast'``) or MEPS conv (``'meps'``; ``'shared'`` = MLP relations
    with one weight set). Call ``conv(x (n, C_in), graph, embedding (n, D) or None) → (n, C_out)``;
    ``embedding`` is the meta-learner's local feature (required for ``'meps'``)."""

    def __init__(self, c_in: int, c_out: int, heads: int = 9, relation: str = "feast", meta_dim: int = 1024,
                 hidden: int = 32):
        super().__init__()
        if relation not in RELATIONS:
            raise ValueError(f"relation={relation!r}: choose one of {RELATIONS}.")
        self.c_in, self.c_out, self.heads, self.relation, self.hidden = c_in, c_out, heads, relation, hidden
        self.weight = nn.Parameter(torch.randn(heads, c_in, c_out) * (2.0 / c_in) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(c_out))
        if relation == "feast":
            s = c_in ** -0.5
            self.u = nn.Parameter(torch.randn(c_in, heads) * s)
            self.v = nn.Parameter(torch.randn(c_in, heads) * s)
            self.c = nn.Parameter(torch.zeros(heads))
            return
        # base learner parameter blocks: name -> shape (per neighbourhood) and fan-in
        self.blocks = {"W_hat": ((c_in, hidden), 2 * c_in), "W_tilde": ((c_in, hidden), 2 * c_in),
                       "b1": ((hidden,), 2 * c_in), "W2": ((hidden, heads), hidden), "b2": ((heads,), hidden)}
        sizes = [int(np.prod(s)) for s, _ in self.blocks.values()]
        self.n_theta = sum(sizes)
        fan = torch.cat([torch.full((n,), float(f)) for n, (_, f) in zip(sizes, self.blocks.values())])
        shared = (torch.rand(self.n_theta) * 2 - 1) * (3.0 / fan) ** 0.5  # Kaiming-uniform-like per block
        if relation == "shared":
            self.theta_shared = nn.Parameter(shared)
        else:
            self.head = nn.Linear(meta_dim, self.n_theta)
            with torch.no_grad():  # generated part about as large as the shared part
                self.head.weight.mul_((3.0 / fan)[:, None] ** 0.5)
                self.head.bias.copy_(shared)

    def theta(self, embedding: torch.Tensor | None = None) -> dict:
        """Base-learner parameters: ``'shared'`` → one set (shapes as in ``blocks``); ``'meps'`` →
        ``θ_p = head(embedding)`` for every neighbourhood (``(n, ...)``), Eq. 5."""
        if self.relation == "feast":
            raise ValueError("FeaStConv has no base learner; its relations come from u, v, c (Eq. 3).")
        if self.relation == "shared":
            flat, lead = self.theta_shared, ()
        else:
            if embedding is None:
                raise ValueError("a MEPS conv needs the meta-learner's embedding (n, meta_dim).")
            flat, lead = self.head(embedding), (embedding.shape[0],)
        # one split (its backward is one concatenation; slicing would allocate and fill a
        # zero (n, n_theta) gradient per block)
        sizes = [int(np.prod(shape)) for shape, _ in self.blocks.values()]
        return {name: part.reshape(*lead, *shape)
                for (name, (shape, _)), part in zip(self.blocks.items(), flat.split(sizes, dim=-1))}

    def relations(self, x: torch.Tensor, graph: Graph, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """``(n, K, M)`` relation weights r_ik (softmax over the M heads)."""
        if self.relation == "feast":
            return feast_relations(x, graph, self.u, self.v, self.c)
        return base_relations(x, graph, self.theta(embedding))

    def forward(self, x: torch.Tensor, graph: Graph, embedding: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.c_in:
            raise ValueError(f"GraphConv expects x of shape (n, {self.c_in}), got {tuple(x.shape)}.")
        return feast_aggregate(x, graph, self.relations(x, graph, embedding), self.weight, self.bias)


# ----------------------------------------------------------------------------- meta-learner


class PointNetEncoder(nn.Module):
    """The meta-learner's encoder g: a shared MLP (1×1 convs, BatchNorm, ReLU) on each point of
    the neighbourhood ``p_i`` (xyz relative to the centre), then max-pooling. No T-Net.

    ``forward(points (n, 3), graph) → (n, widths[-1])`` local embeddings (paper: 1,024-d)."""

    def __init__(self, widths=(64, 128, 1024)):
        super().__init__()
        layers, c = [], 3
        for w in widths:
            layers += [nn.Linear(c, w), nn.BatchNorm1d(w), nn.ReLU()]
            c = w
        self.mlp = nn.Sequential(*layers)
        self.out_dim = c

    def local_points(self, points: torch.Tensor, graph: Graph) -> torch.Tensor:
        """``(n, K, 3)`` neighbourhood coordinates relative to the centre."""
        return points[graph.idx] - points[:, None, :]

    def forward(self, points: torch.Tensor, graph: Graph) -> torch.Tensor:
        rel = self.local_points(points, graph)
        n, K, _ = rel.shape
        h = rel.reshape(n * K, 3)
        for layer in self.mlp[:-3]:
            h = layer(h)
        lin, bn = self.mlp[-3], self.mlp[-2]
        return linear_bn_relu_max(h.view(n, K, -1), lin, bn)


# ----------------------------------------------------------------------------- fused last layer


def _row_chunk(K: int, D: int, itemsize: int = 4) -> int:
    return max(1, BLOCK_BYTES // (4 * K * D * itemsize))


class _MaxOfLinear(torch.autograd.Function):
    """``m_ic = h_{i,k*} · W_c`` with ``k* = argmax_k sign_c (h_ik · W_c)``: the max (``sign = +1``)
    or min (``−1``) over each neighbourhood of a linear layer, without storing the ``(n, K, D)``
    pre-activations. Forward and backward are chunked GEMMs over neighbourhoods; only the
    ``(n, D)`` winners' indices are saved."""

    @staticmethod
    def forward(ctx, h, W, sign, chunk: int):
        n, K, C = h.shape
        D = W.shape[0]
        out = h.new_empty((n, D))
        arg = torch.empty((n, D), dtype=torch.long, device=h.device)
        for i in range(0, n, chunk):
            z = (h[i:i + chunk].reshape(-1, C) @ W.T).view(-1, K, D).mul_(sign)
            v, a = z.max(1)
            out[i:i + chunk], arg[i:i + chunk] = v.mul_(sign), a
        ctx.save_for_backward(h, W, arg)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, g):
        h, W, arg = ctx.saved_tensors
        n, K, C = h.shape
        D = W.shape[0]
        gh = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        gW = torch.zeros_like(W) if ctx.needs_input_grad[1] else None
        g = g.contiguous()
        for i in range(0, n, ctx.chunk):
            gc = g[i:i + ctx.chunk]
            G = gc.new_zeros((gc.shape[0], K, D)).scatter_(1, arg[i:i + ctx.chunk, None, :], gc[:, None, :]).view(-1, D)
            if gh is not None:
                gh[i:i + ctx.chunk] = (G @ W).view(-1, K, C)
            if gW is not None:
                gW.addmm_(G.T, h[i:i + ctx.chunk].reshape(-1, C))
        return gh, gW, None, None


def linear_bn_relu_max(h: torch.Tensor, lin: nn.Linear, bn: nn.BatchNorm1d) -> torch.Tensor:
    """``max_k ReLU(BN(lin(h_ik)))`` for ``h (n, K, C)`` → ``(n, D)``, the PointNet encoder's last
    layer and max-pool, equal to the layer-by-layer formula (BatchNorm statistics over all
    ``n·K`` rows, running statistics updated the same way) without the ``(n·K, D)`` tensors:

    * BatchNorm's batch mean and (biased) variance of ``z = W h + b`` follow from the mean and
      the ``C × C`` covariance of ``h``: ``μ_z = W μ_h + b``, ``var_z = diag(W Σ_h Wᵀ)``;
    * BN is per-channel affine and ReLU monotone, so the max over ``k`` moves inside: it is the
      max of ``z`` (min where BN's scale ``γ/√(var+ε)`` is negative), found by chunked GEMMs.
    """
    n, K, C = h.shape
    N = n * K
    W, b = lin.weight, lin.bias if lin.bias is not None else h.new_zeros(lin.out_features)
    if bn.training or bn.running_mean is None:
        hf = h.reshape(N, C)
        mu_h = hf.mean(0)
        hc = hf - mu_h
        cov = hc.T @ hc / N
        mean = W @ mu_h + b
        var = ((W @ cov) * W).sum(1)
        if bn.training and bn.track_running_stats:
            with torch.no_grad():
                bn.num_batches_tracked.add_(1)
                m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                bn.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                bn.running_var.mul_(1 - m).add_(var.detach() * (N / max(N - 1, 1)), alpha=m)
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    sign = torch.where(scale.detach() >= 0, 1.0, -1.0).to(h.dtype)
    zmax = _MaxOfLinear.apply(h, W, sign, _row_chunk(K, W.shape[0], h.element_size())) + b
    y = (zmax - mean) * scale
    return torch.relu(y + bn.bias if bn.bias is not None else y)


# ----------------------------------------------------------------------------- the network


class PointSignatureNet(nn.Module):
    """Lin16 + Conv32 + Conv64 + Conv128 + Lin256 + Lin(n_labels) (FeaStNet-S, paper §4.2),
    with FeaStConv (``relation='feast'``) or MEPS conv (``'meps'``) layers; ReLU in between.

    ``forward(x (n, 3), graph, rows=None) → (n or len(rows), n_labels)`` logits — the
    per-vertex protocol of :mod:`shapelib.train` (``graph`` goes where other models take ops).
    """

    def __init__(self, n_labels: int, relation: str = "feast", widths=(16, 32, 64, 128, 256), heads: int = 9,
                 meta_widths=(64, 128, 1024), hidden: int = 32, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if relation not in RELATIONS:
            raise ValueError(f"relation={relation!r}: choose one of {RELATIONS}.")
        self.relation = relation
        w = list(widths)
        self.lin_in = nn.Linear(in_channels, w[0])
        self.convs = nn.ModuleList(GraphConv(a, b, heads, relation, meta_widths[-1], hidden)
                                   for a, b in zip(w[:-2], w[1:-1]))
        self.lin_mid = nn.Linear(w[-2], w[-1])
        self.drop = nn.Dropout(dropout)
        self.lin_out = nn.Linear(w[-1], n_labels)
        self.meta = PointNetEncoder(meta_widths) if relation == "meps" else None

    def embedding(self, x: torch.Tensor, graph: Graph) -> torch.Tensor | None:
        """``(n, meta_dim)`` meta-learner local embeddings (None without a meta-learner)."""
        return None if self.meta is None else self.meta(x[:, :3], graph)

    def signatures(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        """``(n, widths[-1])`` point signatures (the features before the classifier)."""
        if x.ndim != 2:
            raise ValueError(f"x must be (n, C) per-vertex features, got {tuple(x.shape)}.")
        emb = self.embedding(x, graph)
        h = torch.relu(self.lin_in(x))
        for conv in self.convs:
            h = torch.relu(conv(h, graph, emb))
        return torch.relu(self.lin_mid(h))

    def forward(self, x: torch.Tensor, graph: Graph, rows: torch.Tensor | None = None) -> torch.Tensor:
        h = self.signatures(x, graph)
        if rows is not None:
            h = h[rows]
        return self.lin_out(self.drop(h))


# ----------------------------------------------------------------------------- training at equal budget


def train_relation(relation: str, items, n_labels: int, epochs: int, meta_widths=(64, 128, 1024), lr: float = 1e-2,
                   weight_decay: float = 1e-4, seed: int = 0, progress: bool = True,
                   desc: str | None = None) -> tuple[PointSignatureNet, History]:
    """Train one :class:`PointSignatureNet` with the given ``relation`` (``'feast'``, ``'meps'``,
    ``'shared'``) for ``epochs`` passes over ``items`` (:func:`prepare`): Adam at ``lr`` with weight
    decay (paper §4: 0.01, 1e-4), the learning rate ×0.5 three times over the run. Returns
    ``(model, history)``."""
    torch.manual_seed(seed)
    net = PointSignatureNet(n_labels, relation, meta_widths=meta_widths)
    hist = fit(net, items, labelling_loss, epochs=epochs, lr=lr, weight_decay=weight_decay,
               decay_every=max(1, epochs // 3), desc=desc or relation, progress=progress)
    return net, hist


def train_compared(items, n_labels: int, epochs: int, methods: dict, log=print, **kw) -> tuple[dict, dict]:
    """Train one model per ``{name: relation}`` of ``methods`` on the same items with the same budget
    and seed (:func:`train_relation`, ``kw`` passed on); ``log`` gets one line per model (loss first
    → last epoch, seconds, parameters). Returns ``(models, histories)`` keyed by name."""
    models, hists = {}, {}
    for name, relation in methods.items():
        models[name], hists[name] = train_relation(relation, items, n_labels, epochs, desc=name, **kw)
        if log is not None:
            n_params = sum(p.numel() for p in models[name].parameters())
            log(f"{name:16s} loss {hists[name].loss[0]:.2f} → {hists[name].loss[-1]:.2f}  "
                f"({hists[name].seconds:.0f} s, {n_params:,} parameters)")
    return models, hists


# ----------------------------------------------------------------------------- data preparation


def prepare(points_list, labels_list=None, k: int = 20, graph: str = "knn", shapes=None, device=None) -> list[dict]:
    """Items for :func:`shapelib.train.fit` / ``labelling_loss`` / ``predict_labels``.

    points_list : ``(n, 3)`` arrays (each is centred — translation only, scale kept).
    labels_list : ``(n,) int`` arrays or None. graph : ``'knn'`` (k-NN on the xyz, paper) or
    ``'mesh'`` (one-ring of ``shapes[i]``). Returns dicts with ``x``, ``ops`` (the Graph), ``y``.
    """
    out = []
    for i, P in enumerate(points_list):
        P = np.asarray(P, dtype=np.float32)
        P = P - P.mean(0)
        x = torch.as_tensor(P, device=device)
        if graph == "knn":
            g = knn_graph(x, k)
        elif graph == "mesh":
            if shapes is None:
                raise ValueError("graph='mesh' needs shapes=[Shape, ...] for the connectivity.")
            g = mesh_graph(shapes[i]).to(device)
        else:
            raise ValueError(f"graph={graph!r}: choose 'knn' or 'mesh'.")
        y = None if labels_list is None else torch.as_tensor(np.asarray(labels_list[i]), dtype=torch.long, device=device)
        out.append({"x": x, "ops": g, "y": y, "kind": "xyz"})
    return out


def add_noise(points: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Isotropic Gaussian noise of standard deviation ``sigma`` (length units) on every point (paper §5.1)."""
    return np.asarray(points) + np.random.default_rng(seed).normal(0.0, sigma, np.shape(points))


# ----------------------------------------------------------------------------- labels at reduced resolution


@dataclass
class LabelSet:
    """Vertex labelling of a template at a chosen resolution.

    points : ``(m,) int`` template vertices that form the point cloud (farthest-point samples;
        with ``m`` = all vertices, the paper's full-resolution set-up).
    labels : ``(m,) int`` class of each point — its own index when ``n_labels >= m`` (exact vertex
        labelling), else the nearest of ``n_labels`` farthest-point patch centres.
    centers : ``(L,) int`` template vertex a predicted label stands for (``centers[pred]`` is the
        predicted correspondence).
    """

    points: np.ndarray
    labels: np.ndarray
    centers: np.ndarray

    @property
    def n_labels(self) -> int:
        return len(self.centers)


def label_set(template_vertices: np.ndarray, n_points: int, n_labels: int, include=None, seed: int = 0) -> LabelSet:
    """Choose ``n_points`` template vertices (FPS; the vertices in ``include``, e.g. landmarks,
    are always kept) and ``n_labels`` labels on them (see :class:`LabelSet`)."""
    from scipy.spatial import cKDTree

    V = np.asarray(template_vertices, dtype=np.float64)
    if n_labels < 1 or n_points < 1:
        raise ValueError(f"label_set needs n_points ≥ 1 and n_labels ≥ 1, got {n_points}, {n_labels}.")
    pts = farthest_point_sampling(V, min(n_points, len(V)), seed)
    if include is not None:
        inc = np.asarray(include, dtype=np.int64)
        pts = np.r_[inc, pts[~np.isin(pts, inc)]][: max(len(pts), len(inc))]
    if n_labels >= len(pts):
        return LabelSet(pts, np.arange(len(pts)), pts.copy())
    c = farthest_point_sampling(V[pts], n_labels, seed)
    _, lab = cKDTree(V[pts][c]).query(V[pts])
    return LabelSet(pts, lab.astype(np.int64), pts[c])


@dataclass
class CrossCategoryTask:
    """Train on one class, test on another (paper §4.4: cat → dog, horse → centaur).

    train_points / train_labels : clouds ``(m, 3)`` of the training class (unit area) and their
        ``(m,)`` labels. reference : the training class's reference `Shape` (errors are measured on
        it); center_vertex ``(L,)`` : reference vertex of each label.
    test_points : clouds of the test class (unit area); eval_index ``(e,)`` : evaluated points of
        each cloud; gt_vertex ``(e,)`` : their true reference vertex; gt_label ``(e,)`` their label.
    """

    train_points: list
    train_labels: np.ndarray
    reference: object
    center_vertex: np.ndarray
    test_points: list
    eval_index: list
    gt_vertex: list
    gt_label: list
    protocol: str


def cross_category_task(collection, train_class: str, test_class: str, n_points: int, n_labels: int,
                        n_landmarks: int = 21, seed: int = 0) -> CrossCategoryTask:
    """Build the cross-category protocol from a ``data.quadrupeds`` collection.

    Within the training class, points correspond through the ``.vts`` rows (real TOSCA_r,
    ``meta['corres']``) or the shared connectivity (synthetic, ``template_index``). Real data have
    no dense ground truth across classes: the test class's pose-0 shape is sampled on its own
    (the ``n_landmarks`` shared landmarks always included) and evaluated at those landmarks.
    Synthetic species share one template: every test shape is evaluated densely.
    """
    from scipy.spatial import cKDTree

    def unit(V, shape):
        return (V - V.mean(0)) / np.sqrt(shape.area())

    A = [it for it in collection if it.meta["class"] == train_class]
    B = [it for it in collection if it.meta["class"] == test_class]
    if not A or not B:
        raise ValueError(f"classes {train_class!r}/{test_class!r} not both in the collection "
                         f"({sorted({it.meta['class'] for it in collection})}).")
    rows = lambda it: it.meta.get("corres") if it.meta.get("corres") is not None else it.template_index  # noqa: E731
    ref = A[0]
    Vref = ref.shape.vertices[rows(ref)]  # reference position of each correspondence row
    kp_rows = cKDTree(Vref).query(ref.shape.vertices[ref.keypoints[:n_landmarks]])[1]
    L = label_set(Vref, n_points, n_labels, include=kp_rows, seed=seed)
    train = [unit(it.shape.vertices[rows(it)[L.points]], it.shape) for it in A]
    center_vertex = rows(ref)[L.centers]
    dense = not collection.is_real
    tests, ev, gv, gl = [], [], [], []
    for it in (B if dense else [b for b in B if b.keypoints is not None][:1]):
        if dense:  # shared template across species: the same rows, dense ground truth
            pts, e = rows(it)[L.points], np.arange(len(L.points))
            gv.append(rows(ref)[L.points])
            gl.append(L.labels)
        else:  # its own sampling; ground truth at the landmarks only
            kp = it.keypoints[:n_landmarks]
            pts = label_set(it.shape.vertices, n_points, n_points, include=kp, seed=seed).points
            e = np.arange(len(kp))
            gv.append(ref.keypoints[:n_landmarks])
            gl.append(L.labels[:n_landmarks])  # the landmark rows come first in L.points
        tests.append(unit(it.shape.vertices[pts], it.shape))
        ev.append(e)
    protocol = (f"train: {len(A)} {train_class} shapes; test: {len(tests)} {test_class} shapes, "
                + ("dense ground truth (shared template)" if dense else f"{n_landmarks} shared landmarks of {test_class}0"))
    return CrossCategoryTask(train, L.labels, ref.shape, center_vertex, tests, ev, gv, gl, protocol)
