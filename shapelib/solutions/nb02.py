"""Notebook 02 (DiffusionNet): worked solutions to its exercises."""
from __future__ import annotations

import numpy as np

from .. import Shape
from .. import operators as ops
from ..train import accuracy, fit, labelling_loss, predict_labels, prepare
from ..diffusion import DiffusionNet


def ex02_eigenpairs_for_diffusion(shape: Shape, u0: np.ndarray, times=(1e-3, 1e-2, 1e-1), ks=(16, 32, 64, 128)) -> dict:
    """02, exercise: how many eigenpairs does spectral diffusion need? Relative difference of the
    k-mode spectral heat flow to the implicit (untruncated) one, for each k and t."""
    O = ops.compute_operators(shape, k=max(ks))
    ref = {t: ops.heat_implicit(u0, O.L, O.M, t, steps=10) for t in times}
    return {k: {t: float(np.abs(ops.heat_spectral(u0, O.evals[:k], O.evecs[:, :k], O.M, t) - ref[t]).max()
                         / np.abs(ref[t]).max()) for t in times} for k in ks}


# ----------------------------------------------------------------------------- Table 5 exercises
# ``train`` / ``test``: lists of data items (with ``template_index``); ``label_of(item)`` their labels.
# Networks and budget as in the notebook's Table 5 cell (4 blocks, lr halved every epochs/4).


def _prepared(items, label_of, kind: str = "xyz", k: int = 128, cloud: bool = False) -> list:
    import torch

    P = prepare([it.shape.to_cloud() if cloud else it.shape for it in items], None, kind, k=k, progress=False)
    for d, it in zip(P, items):
        d["y"] = torch.as_tensor(np.asarray(label_of(it)), dtype=torch.long)
    return P


def _train_labeller(train: list, n_labels: int, epochs: int, width: int = 32, lr: float = 5e-3, rows: int = 800,
                    init_time: float | None = None, **block_kw):
    import torch

    torch.manual_seed(0)
    net = DiffusionNet(train[0]["x"].shape[1], n_labels, width=width, n_blocks=4, **block_kw)
    if init_time is not None:                      # learned times start here instead of at 0
        for b in net.blocks:
            b.diffusion.diffusion_time.data.fill_(init_time)
    hist = fit(net, train, lambda m, it: labelling_loss(m, it, n_rows=rows), epochs=epochs, lr=lr,
               decay_every=max(1, epochs // 4), progress=False)
    return net, hist


def ex02_implicit_vs_spectral(train: list, test: list, n_labels: int, epochs: int = 2, **kw) -> dict:
    """02, exercise 1: the Table 5 network with spectral vs implicit diffusion (prepared items):
    test accuracy (%) and seconds per epoch."""
    out = {}
    for method in ("spectral", "implicit"):
        net, hist = _train_labeller(train, n_labels, epochs, method=method, **kw)
        out[method] = {"accuracy": 100 * accuracy(net, test), "s/epoch": hist.seconds / epochs}
    out["implicit / spectral time"] = out["implicit"]["s/epoch"] / out["spectral"]["s/epoch"]
    return out


def ex02_eigenpairs_training(train_items, test_items, label_of, n_labels: int, ks=(2, 8, 32, 128),
                             epochs: int = 15, **kw) -> dict:
    """02, exercise 2: Table 5 accuracy (%) with k eigenpairs in the spectral diffusion (paper Fig. 13)."""
    out = {}
    for k in ks:   # operators are cached with 128 eigenpairs: a smaller k reuses the first k
        net, _ = _train_labeller(_prepared(train_items, label_of, k=k), n_labels, epochs, **kw)
        out[k] = 100 * accuracy(net, _prepared(test_items, label_of, k=k))
    return out


def ex02_hks_inputs(train_items, test_items, label_of, n_labels: int, reference: Shape, centers: np.ndarray,
                    epochs: int = 15, **kw) -> dict:
    """02, exercise 3: xyz vs HKS inputs: accuracy (%) and left/right swaps: the share (%) of the test
    vertices away from the mid-plane (template |x| > 5 % of its height) whose predicted patch
    centre lies on the other side of the body."""
    v = reference.vertices - reference.vertices.mean(0)
    x = v[:, 0]                                            # lateral coordinate of the template (y is up)
    out = {}
    for kind in ("xyz", "hks"):
        net, _ = _train_labeller(_prepared(train_items, label_of, kind), n_labels, epochs, **kw)
        hit, swap = [], []
        for it, d in zip(test_items, _prepared(test_items, label_of, kind)):
            pred, t = predict_labels(net, d), it.template_index
            side = np.abs(x[t]) > 0.05 * np.ptp(v[:, 1])
            swap.append((np.sign(x[centers[pred]]) != np.sign(x[t]))[side])
            hit.append(pred == d["y"].numpy())
        out[kind] = {"accuracy": 100 * np.concatenate(hit).mean(), "left/right swaps": 100 * np.concatenate(swap).mean()}
    return out


def ex02_point_clouds(train_items, test_items, label_of, n_labels: int, epochs: int = 15, **kw) -> dict:
    """02, exercise 4: train on meshes or on their vertices as point clouds, test on both: accuracy (%)."""
    data = {c: (_prepared(train_items, label_of, cloud=c), _prepared(test_items, label_of, cloud=c)) for c in (False, True)}
    name = {False: "mesh", True: "cloud"}
    out = {}
    for c_train in (False, True):
        net, _ = _train_labeller(data[c_train][0], n_labels, epochs, **kw)
        for c_test in (False, True):
            out[f"{name[c_train]} → {name[c_test]}"] = 100 * accuracy(net, data[c_test][1])
    return out


def ex02_inward_normals(items, width: int = 32, seed: int = 0) -> dict:
    """02, exercise 5: a complex-A DiffusionNet (HKS inputs) on a shape, on its mirror image with
    triangles flipped (outward normals) and with faces unchanged (inward normals): largest output
    difference, and how often the predicted side agrees with the one predicted on the shape."""
    import torch

    torch.manual_seed(seed)
    net = DiffusionNet(16, 2, width=width, n_blocks=4, gradient_mode="complex", dropout=False).eval()
    out = {"outward mirror": [], "inward mirror": [], "same prediction (inward) %": []}
    for it in items:
        s = getattr(it, "shape", it)
        v = s.vertices * [-1, 1, 1]
        d, d_out, d_in = prepare([s, Shape(v, s.faces[:, ::-1]), Shape(v, s.faces)], None, "hks", progress=False)
        with torch.no_grad():
            f = net(d["x"], d["ops"])
            out["outward mirror"].append(float((f - net(d_out["x"], d_out["ops"])).abs().max()))
            out["inward mirror"].append(float((f - net(d_in["x"], d_in["ops"])).abs().max()))
        out["same prediction (inward) %"].append(100 * np.mean(predict_labels(net, d) == predict_labels(net, d_in)))
    return {"max |f(shape) − f(outward mirror)|": max(out["outward mirror"]),
            "max |f(shape) − f(inward mirror)|": max(out["inward mirror"]),
            "same prediction on the inward mirror %": min(out["same prediction (inward) %"])}


def ex02_learned_times_init(train: list, test: list, n_labels: int, epochs: int = 15, inits=(0.0, 0.1), **kw) -> dict:
    """02, exercise 6: learned times initialised at 0 (DiffusionNet) or 0.1: median time per block
    after training, and test accuracy (%)."""
    out = {}
    for t0 in inits:
        net, _ = _train_labeller(train, n_labels, epochs, init_time=t0, **kw)
        out[t0] = {"median t per block": [float(np.median(t)) for t in net.diffusion_times()],
                   "accuracy": 100 * accuracy(net, test)}
    return out
