"""Notebook 03's exercise solutions at small sizes (synthetic humans): each gives the outcome its
exercise text announces. One small labelling task (100 points, 16 labels, 15 epochs, k = 8) trains in
about a second a model; at that size one run moves by ±10 points from one training seed to the next
(MEPS: 39-65 % over seeds 0-4 on one build of the synthetic humans, 51-74 % on another: pymeshlab's
isotropic remeshing of the humanoid template gave 3,011 vertices in one venv and 3,005 in another with
the same wheels at another path), so each ordering is asserted on the mean over five training seeds."""
import numpy as np
import pytest

from shapelib import data, solutions
from shapelib.meps import label_set, prepare, train_relation

EPOCHS, WIDTHS, SEEDS = 15, (8, 16, 16), tuple(range(5))


@pytest.fixture(scope="module")
def collection():
    return data.humans(source="synthetic")


@pytest.fixture(scope="module")
def humans(collection):
    return [collection[i].shape for i in range(5)]


@pytest.fixture(scope="module")
def task(collection):
    """Three training humans, two test humans, 100 template points in 16 patch labels."""
    L = label_set(collection[0].shape.vertices, 100, 16)
    train = [collection[i].shape.vertices[L.points] for i in range(3)]
    test = [collection[i].shape.vertices[L.points] for i in (3, 4)]
    return dict(L=L, test=test, P_train=prepare(train, [L.labels] * 3, k=8), P_test=prepare(test, [L.labels] * 2, k=8))


def test_ex03_equal_compute(task):
    t = task
    out = solutions.ex03_equal_compute(t["P_train"], t["P_test"], t["L"].labels, t["L"].n_labels, epochs=EPOCHS,
                                       meta_widths=WIDTHS, seeds=SEEDS)
    # the cost the exercise is about: an epoch of MEPS buys FeaStNet-S more than one epoch (about 2-3
    # measured, wall-clock on one thread; only "more" is asserted: a busy machine moves the ratio)
    assert out["epochs for equal time"] > EPOCHS, out
    assert out["MEPS"] > out["FeaStNet-S, same epochs"] + 5, f"at equal epochs MEPS leads (the paper's comparison): {out}"


def test_ex03_shared_gap(task):
    t = task
    out = solutions.ex03_shared_gap(t["P_train"], t["P_test"], t["L"].labels, t["L"].n_labels, epochs=EPOCHS,
                                    meta_widths=WIDTHS, seeds=SEEDS)
    assert out["MEPS"] > out["shared f (§3.3)"] + 10, f"generated weights beat one shared weight set: {out}"


def test_ex03_exact_labels(collection):
    """Every point its own class: 4x the points is 4x the classes and a quarter of the chance level, yet
    the accuracy does not fall in step. Which of two sizes is ahead is not asserted: at this size it is
    seed noise (per-seed accuracies 17-38 % at 40 points, 19-36 % at 160; means 27.0 and 27.0 on one
    machine, and 62 % vs 48 % with 10 training shapes). Measured margins for the assertion below:
    27.0 > 13.5, and 48 > 31 with 10 training shapes."""
    # every point its own class needs more epochs than patch labels (at 15 the 160-class model is
    # still near chance)
    out = solutions.ex03_exact_labels([collection[i].shape.vertices for i in range(3)],
                                      [collection[i].shape.vertices for i in (3, 4)], collection[0].shape.vertices,
                                      sizes=(40, 160), epochs=2 * EPOCHS, meta_widths=WIDTHS, k=8, seeds=SEEDS)
    assert list(out) == [40, 160]
    assert out[160] > 20 * 100 / 160, f"exact labels are learnt, far above chance (0.6 %): {out}"
    assert out[160] > out[40] / 2, \
        f"not the drop one might guess: chance falls 4x, the accuracy by less than half: {out}"


def test_ex03_rotations(task):
    t = task
    drops = {"FeaStNet-S": [], "MEPS": []}
    for seed in SEEDS:
        models = {name: train_relation(rel, t["P_train"], t["L"].n_labels, EPOCHS, meta_widths=WIDTHS, seed=seed,
                                       progress=False)[0] for name, rel in (("FeaStNet-S", "feast"), ("MEPS", "meps"))}
        out = solutions.ex03_rotations(models, t["test"], t["L"].labels, degrees=60, k=8)
        for name, acc in out.items():
            drops[name].append(acc["upright"] - acc["rotated 60°"])
    drop = {name: float(np.mean(d)) for name, d in drops.items()}
    # over seeds 0-4, FeaStNet-S's drop averages -0.3 / 4.5 points on the two builds above, MEPS's 11.4 / 14.9
    assert drop["MEPS"] > drop["FeaStNet-S"] + 5, f"the meta-learner reads raw xyz: MEPS loses more: {drops}"


def test_ex03_refinement(humans):
    ref, test = humans[0], humans[3]
    L = label_set(ref.vertices, 100, 25)
    out = solutions.ex03_refinement(ref, test, L.points, L.centers[L.labels], k_init=10, k_final=30, n_eval=200)
    # the patch-centre map is piecewise constant (25 values): ZoomOut spreads it into a smooth map
    assert out["mean error ×100, after ZoomOut"] < 0.7 * out["mean error ×100, nearest-neighbour extension"], out


def test_ex03_mesh_graphs(humans):
    out = solutions.ex03_mesh_graphs([h.vertices for h in humans[:3]], [humans[4].vertices], humans[0], n_faces=200,
                                     n_labels=12, epochs=2, meta_widths=(8, 16, 16), sigmas=(0.0, 0.05), k=8)
    assert out["mesh"]["neighbours changed at σ = 0.05"] == 0, "noise never changes a one-ring"
    assert out["knn"]["neighbours changed at σ = 0.05"] > 0.1, "noise of a few cm reshuffles the k-NN graph"
    assert all(0 <= a <= 100 for g in ("knn", "mesh") for a in out[g]["accuracy"].values())
