"""Notebook 06's exercise solutions run at small sizes (synthetic chairs) and give the announced outcome."""
import numpy as np
import pytest

from shapelib import cpnet, data, solutions


@pytest.fixture(scope="module")
def chairs():
    sets = cpnet.CorrespondenceSets.from_items(data.objects("chair", "all", n=8), n_points=256, progress=False)
    return sets, cpnet.prepare_inputs(sets), list(range(6)), [6, 7]


def test_ex06_lambda(chairs):
    out = solutions.ex06_lambda(*chairs, lams=(0.1, 10.0), epochs=15, width=16)
    random = cpnet.mge(chairs[0].subset(chairs[3]), cpnet.random_embeddings(chairs[0].subset(chairs[3])))
    assert out[10.0]["spread"] > out[0.1]["spread"], "a stronger push spreads the embeddings further"
    assert out[10.0]["mGE"] < min(out[0.1]["mGE"], 0.5 * random), "a weak push drifts towards the pull-only collapse"


def test_ex06_mining(chairs):
    out = solutions.ex06_mining(*chairs, epochs=10, width=16, checkpoints=(5, 10))
    assert list(out["mined"]) == [5, 10] == list(out["all negatives"])
    held_out = chairs[0].subset(chairs[3])
    random = cpnet.mge(held_out, cpnet.random_embeddings(held_out))
    assert all(0 < v < random for curve in out.values() for v in curve.values()), (out, random)
    assert all(curve[10] < 0.5 * random for curve in out.values()), (out, random)


def test_ex06_constant_push(chairs):
    sets = chairs[0]
    out = solutions.ex06_constant_push(*chairs, epochs=10, width=16)
    assert len(out) == 2 and all(0 <= v["mGE"] < 0.2 for v in out.values()), out
    with pytest.raises(ValueError, match="set_dist"):
        cpnet.train_embeddings(cpnet.make_backbone("PointNet", width=8), sets, chairs[1], [0, 1], 1, set_dist=np.ones((2, 2)),
                               progress=False)


def test_ex06_missing_parts(chairs):
    sets = chairs[0]
    E = [np.c_[p, np.zeros((len(p), 1))] for p in sets.points]          # xyz: a good embedding of aligned chairs
    out = solutions.ex06_missing_parts(sets, E)
    assert out["optional sets"] == ["arm front left", "arm front right"]
    random = solutions.ex06_missing_parts(sets, cpnet.random_embeddings(sets))
    assert out["mGE optional sets"] < 0.5 * random["mGE optional sets"] and out["mGE always-present sets"] < 0.1, (out, random)


def test_ex06_rotations(chairs):
    sets = chairs[0].subset(chairs[3])

    class XYZ(torch_module()):                                           # a "backbone" that returns its input
        def forward(self, x, ops=None):
            return x

    out = solutions.ex06_rotations(sets, {"xyz": XYZ()}, k_eig=32)
    assert out["xyz"]["upright"] < 0.1 < out["xyz"]["rotated"], "xyz features are not rotation invariant"
    assert abs(out["HKS/WKS"]["rotated"] - out["HKS/WKS"]["upright"]) < 0.05, "HKS/WKS are intrinsic: (nearly) invariant"


def test_ex06_cloud_geodesics():
    import trimesh

    from shapelib import Shape

    ico = trimesh.creation.icosphere(subdivisions=3)
    out = solutions.ex06_cloud_geodesics(Shape(ico.vertices, ico.faces), [0, 5], sizes=(128, 1024))
    assert set(out) == {128, 1024} and all(0 < v < 0.1 for v in out.values()), out


def test_ex06_hardest_sets(chairs):
    sets = chairs[0]
    E = [np.c_[p, np.zeros((len(p), 1))] for p in sets.points]          # xyz: a good embedding of aligned chairs
    out = solutions.ex06_hardest_sets(sets, E)
    held = [j for j in range(sets.n_sets) if sets.present[:, j].sum() >= 2]
    assert len(out["per_set"]) == len(held) and -1 <= out["spearman"] <= 1
    j = held[0]
    row = out["per_set"][sets.set_names[j]]
    P = np.array([sets.points[m][sets.keypoints[m, j]] for m in np.flatnonzero(sets.present[:, j])])
    assert row["n_models"] == len(P) and row["spread"] == pytest.approx(np.linalg.norm(P - P.mean(0), axis=1).mean(), abs=1e-4)
    mges = [out["per_set"][k]["mGE"] for k in out["hardest"] + out["easiest"]]
    assert mges[:3] == sorted(mges[:3], reverse=True) and min(mges[:3]) >= max(mges[3:])
    random = solutions.ex06_hardest_sets(sets, cpnet.random_embeddings(sets))
    assert np.mean([r["mGE"] for r in out["per_set"].values()]) < 0.5 * np.mean([r["mGE"] for r in random["per_set"].values()])
    with pytest.raises(ValueError, match="two models"):
        solutions.ex06_hardest_sets(sets.subset([0]), E[:1])


def torch_module():
    import torch

    return torch.nn.Module
