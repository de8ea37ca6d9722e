"""Notebook 03 (MEPS): worked solutions to its exercises."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..meps import add_noise, label_set, prepare, train_relation
from ..train import predict_labels
from ..fmaps import p2p_to_fmap, SpectralBasis, zoomout
from ..metrics import GeodesicEvaluator
from .. import Shape
from ..data.synthetic.variants import decimate



def _train(relation: str, items, n_labels: int, epochs: int, meta_widths, lr: float = 1e-2, seed: int = 0):
    return train_relation(relation, items, n_labels, epochs, meta_widths=meta_widths, lr=lr, seed=seed, progress=False)


def _label_accuracy(net, items, labels) -> float:
    return float(100 * np.mean([np.mean(predict_labels(net, P) == labels) for P in items]))


def _mean_accuracy(relation: str, P_train, P_test, labels, n_labels: int, epochs: int, meta_widths, seeds,
                   first=None) -> float:
    """Label accuracy of ``relation`` trained from each of ``seeds``, averaged: at the small sizes of these
    exercises one training run moves by ±10 points from one seed to the next. ``first``: the network
    already trained from ``seeds[0]`` (not trained again)."""
    nets = ([first] if first is not None else []) + [_train(relation, P_train, n_labels, epochs, meta_widths, seed=s)[0]
                                                     for s in seeds[1 if first is not None else 0:]]
    return float(np.mean([_label_accuracy(net, P_test, labels) for net in nets]))


def ex03_equal_compute(P_train, P_test, labels, n_labels: int, epochs: int = 20, meta_widths=(32, 64, 64),
                       seeds=(0,)) -> dict:
    """03, exercise 1: FeaStNet-S trained for as many *seconds* as MEPS (not as many epochs).
    Accuracies: the mean over training ``seeds`` (``range(5)`` for a steadier comparison); the
    epoch count for equal time and the seconds are measured on the first seed's runs."""
    meps, h_meps = _train("meps", P_train, n_labels, epochs, meta_widths, seed=seeds[0])
    feast, h_feast = _train("feast", P_train, n_labels, epochs, meta_widths, seed=seeds[0])
    per_epoch = h_feast.seconds / epochs
    n_eq = int(np.clip(round(h_meps.seconds / per_epoch), epochs, 10 * epochs))
    feast_eq, h_eq = _train("feast", P_train, n_labels, n_eq, meta_widths, seed=seeds[0])
    acc = {name: _mean_accuracy(rel, P_train, P_test, labels, n_labels, n, meta_widths, seeds, first=net)
           for name, rel, n, net in (("MEPS", "meps", epochs, meps), ("FeaStNet-S, same epochs", "feast", epochs, feast),
                                     ("FeaStNet-S, same seconds", "feast", n_eq, feast_eq))}
    return {**acc, "epochs for equal time": len(h_eq.loss), "seconds MEPS / FeaStNet-S": (h_meps.seconds, h_eq.seconds)}


def ex03_shared_gap(P_train, P_test, labels, n_labels: int, epochs: int = 20, meta_widths=(32, 64, 64), seeds=(0,)) -> dict:
    """03, exercise 2: MEPS vs the one-weight-set base learner of §3.3 (run it at standard scale);
    accuracies averaged over training ``seeds``."""
    return {name: _mean_accuracy(rel, P_train, P_test, labels, n_labels, epochs, meta_widths, seeds)
            for name, rel in (("MEPS", "meps"), ("shared f (§3.3)", "shared"))}


def ex03_exact_labels(train_vertices, test_vertices, reference_vertices, sizes=(100, 200, 300), epochs: int = 20,
                      meta_widths=(32, 64, 64), k: int = 20, seeds=(0,)) -> dict:
    """03, exercise 3: every point its own label; label accuracy (= accuracy at zero error) vs n,
    averaged over training ``seeds``."""
    out = {}
    for n in sizes:
        L = label_set(reference_vertices, n, n)
        tr = prepare([v[L.points] for v in train_vertices], [L.labels] * len(train_vertices), k=k)
        te = prepare([v[L.points] for v in test_vertices], [L.labels] * len(test_vertices), k=k)
        out[n] = _mean_accuracy("meps", tr, te, L.labels, L.n_labels, epochs, meta_widths, seeds)
    return out


def ex03_rotations(models: dict, test_points, labels, degrees: float = 30.0, k: int = 20) -> dict:
    """03, exercise 6: accuracy of the trained models on test shapes rotated about the vertical (y) axis."""
    R = Rotation.from_euler("y", degrees, degrees=True).as_matrix()   # about the vertical axis
    rotated = prepare([p @ R.T for p in test_points], [labels] * len(test_points), k=k)
    upright = prepare(list(test_points), [labels] * len(test_points), k=k)
    return {name: {"upright": _label_accuracy(net, upright, labels), f"rotated {degrees:.0f}°": _label_accuracy(net, rotated, labels)}
            for name, net in models.items()}


def ex03_refinement(reference, test_shape, points, predicted, k_init: int = 20, k_final: int = 60, n_eval: int = 1000) -> dict:
    """03, exercise 4: refine a predicted map with ZoomOut (notebook 04). ``predicted (len(points),)``:
    the reference vertex predicted for each template point of ``test_shape`` (same connectivity as
    the reference, so the ground truth of test vertex i is reference vertex i). The map is extended
    to every vertex by nearest neighbour (on the test shape), converted to a k_init × k_init
    functional map and refined by ZoomOut to k_final. Mean geodesic error (÷ sqrt(area)) on
    ``n_eval`` random test vertices, before and after."""
    from scipy.spatial import cKDTree

    p2p = np.asarray(predicted)[cKDTree(test_shape.vertices[points]).query(test_shape.vertices)[1]]   # every test vertex
    b_ref, b_test = (SpectralBasis.from_shape(s, k_final, device="cpu") for s in (reference, test_shape))
    _, refined = zoomout(p2p_to_fmap(p2p, b_ref, b_test, k_init, k_init), b_ref, b_test, k_final)
    ev = GeodesicEvaluator(reference, np.arange(test_shape.n_vertices), n_samples=n_eval)
    return {"mean error ×100, nearest-neighbour extension": ev.mean(p2p), "mean error ×100, after ZoomOut": ev.mean(refined.cpu().numpy())}


def ex03_mesh_graphs(train_vertices, test_vertices, reference, n_faces: int = 600, n_labels: int = 128, epochs: int = 20,
                     meta_widths=(32, 64, 64), sigmas=(0.0, 0.01, 0.02, 0.04), k: int = 20) -> dict:
    """03, exercise 5: MEPS on one-ring (mesh) graphs vs k-NN graphs. A coarse template mesh (quadric
    decimation of the reference to ``n_faces``) is carried to every shape through its nearest
    reference vertices (shared connectivity), both models train on it, and are tested on noisy
    copies (the k-NN graph is rebuilt on the noisy points, the one-ring is not). Returns the label
    accuracy per σ and the fraction of neighbour slots that the noise changed at the largest σ."""
    from scipy.spatial import cKDTree

    coarse = decimate(reference, n_faces)
    L = label_set(coarse.vertices, coarse.n_vertices, n_labels)          # FPS order of all template vertices, patch labels
    inv = np.empty(coarse.n_vertices, np.int64)
    inv[L.points] = np.arange(coarse.n_vertices)
    to_ref = cKDTree(reference.vertices).query(coarse.vertices[L.points])[1]
    mesh = lambda V: Shape(V[to_ref], inv[coarse.faces])               # noqa: E731
    train, test = [mesh(V) for V in train_vertices], [mesh(V) for V in test_vertices]
    out = {}
    for graph in ("knn", "mesh"):
        items = prepare([s.vertices for s in train], [L.labels] * len(train), k=k, graph=graph, shapes=train)
        net = _train("meps", items, L.n_labels, epochs, meta_widths)[0]
        acc, clean = {}, prepare([test[0].vertices], k=k, graph=graph, shapes=test[:1])[0]["ops"].idx
        for s_i, sigma in enumerate(sigmas):
            noisy = [add_noise(s.vertices, sigma, seed=100 * s_i + j) for j, s in enumerate(test)]
            P = prepare(noisy, [L.labels] * len(test), k=k, graph=graph, shapes=test)
            acc[sigma] = _label_accuracy(net, P, L.labels)
        changed = float((P[0]["ops"].idx != clean).float().mean())
        out[graph] = {"accuracy": acc, f"neighbours changed at σ = {sigmas[-1]}": changed}
    out["template"] = f"{coarse.n_vertices} vertices, {coarse.n_faces} faces, {L.n_labels} labels"
    return out
