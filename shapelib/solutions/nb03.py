"""Notebook 03 (MEPS): worked solutions to its exercises."""
from __future__ import annotations

import numpy as np



def _train(relation: str, items, n_labels: int, epochs: int, meta_widths, lr: float = 1e-2, seed: int = 0):
    import torch

    from ..meps import PointSignatureNet
    from ..train import fit, labelling_loss

    torch.manual_seed(seed)
    net = PointSignatureNet(n_labels, relation, meta_widths=meta_widths)
    hist = fit(net, items, labelling_loss, epochs=epochs, lr=lr, weight_decay=1e-4,
               decay_every=max(1, epochs // 3), desc=relation, progress=False)
    return net, hist


def _label_accuracy(net, items, labels) -> float:
    from ..train import predict_labels

    return float(100 * np.mean([np.mean(predict_labels(net, P) == labels) for P in items]))


def ex03_equal_compute(P_train, P_test, labels, n_labels: int, epochs: int = 20, meta_widths=(32, 64, 64)) -> dict:
    """03, exercise 1: FeaStNet-S trained for as many *seconds* as MEPS (not as many epochs)."""
    meps, h_meps = _train("meps", P_train, n_labels, epochs, meta_widths)
    feast, h_feast = _train("feast", P_train, n_labels, epochs, meta_widths)
    per_epoch = h_feast.seconds / epochs
    feast_eq, h_eq = _train("feast", P_train, n_labels, int(np.clip(round(h_meps.seconds / per_epoch), epochs, 10 * epochs)), meta_widths)
    return {"MEPS": _label_accuracy(meps, P_test, labels), "FeaStNet-S, same epochs": _label_accuracy(feast, P_test, labels),
            "FeaStNet-S, same seconds": _label_accuracy(feast_eq, P_test, labels),
            "epochs for equal time": len(h_eq.loss), "seconds MEPS / FeaStNet-S": (h_meps.seconds, h_eq.seconds)}


def ex03_shared_gap(P_train, P_test, labels, n_labels: int, epochs: int = 20, meta_widths=(32, 64, 64)) -> dict:
    """03, exercise 2: MEPS vs the one-weight-set base learner of §3.3 (run it at standard scale)."""
    return {name: _label_accuracy(_train(rel, P_train, n_labels, epochs, meta_widths)[0], P_test, labels)
            for name, rel in (("MEPS", "meps"), ("shared f (§3.3)", "shared"))}


def ex03_exact_labels(train_vertices, test_vertices, reference_vertices, sizes=(100, 200, 300), epochs: int = 20,
                      meta_widths=(32, 64, 64), k: int = 20) -> dict:
    """03, exercise 3: every point its own label; label accuracy (= accuracy at zero error) vs n."""
    from ..meps import label_set, prepare

    out = {}
    for n in sizes:
        L = label_set(reference_vertices, n, n)
        tr = prepare([v[L.points] for v in train_vertices], [L.labels] * len(train_vertices), k=k)
        te = prepare([v[L.points] for v in test_vertices], [L.labels] * len(test_vertices), k=k)
        out[n] = _label_accuracy(_train("meps", tr, L.n_labels, epochs, meta_widths)[0], te, L.labels)
    return out


def ex03_rotations(models: dict, test_points, labels, degrees: float = 30.0, k: int = 20) -> dict:
    """03, exercise 6: accuracy of the trained models on test shapes rotated about the vertical (y) axis."""
    from ..meps import prepare

    a = np.radians(degrees)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rotated = prepare([p @ R.T for p in test_points], [labels] * len(test_points), k=k)
    upright = prepare(list(test_points), [labels] * len(test_points), k=k)
    return {name: {"upright": _label_accuracy(net, upright, labels), f"rotated {degrees:.0f}°": _label_accuracy(net, rotated, labels)}
            for name, net in models.items()}
