"""Notebook 03's exercise solutions run at small sizes (synthetic humans) and give the announced outcome."""
import pytest

from shapelib import data, solutions
from shapelib.meps import label_set


@pytest.fixture(scope="module")
def humans():
    coll = data.humans(source="synthetic")
    return [coll[i].shape for i in range(5)]


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
