"""Notebook 02's exercise solutions at small sizes (synthetic humanoids, decimated): each gives the
outcome its exercise text announces."""
from dataclasses import replace

import numpy as np
import pytest

from shapelib import data, solutions
from shapelib.data.synthetic import variants
from shapelib.solutions import nb02
from shapelib.train import template_patches


@pytest.fixture(scope="module")
def task():
    """Table 5 in miniature: 4 decimated training humans, 2 test humans, 16 template patches."""
    coll = data.humans(source="synthetic", n_subjects=3, n_poses=3)
    items = []
    for i in (0, 1, 3, 4, 6, 7):                  # decimated: vertex i of the small mesh is to_original[i]
        var = variants.make_variant(coll[i].shape, "decimated", seed=0)
        items.append(replace(coll[i], shape=var.shape, template_index=var.to_original))
    reference = coll[0].shape
    centers, patch = template_patches(reference, 16)
    label_of = lambda it: patch[it.template_index]  # noqa: E731
    train, test = items[:4], items[4:]
    return dict(train=train, test=test, label_of=label_of, reference=reference, centers=centers, n_labels=len(centers),
                P_train=nb02._prepared(train, label_of), P_test=nb02._prepared(test, label_of))


def test_ex02_eigenpairs_for_diffusion(small_human):
    u0 = np.exp(-(np.linalg.norm(small_human.vertices - small_human.vertices[0], axis=1) / 0.1) ** 2)
    out = solutions.ex02_eigenpairs_for_diffusion(small_human, u0, times=(1e-2, 1e-1), ks=(8, 64))
    assert out[64][1e-2] < out[8][1e-2], "more eigenpairs, closer to the untruncated flow"
    assert out[64][1e-1] < 0.1


KW = dict(width=16, rows=400, lr=1e-2)


def test_ex02_implicit_vs_spectral(task):
    out = solutions.ex02_implicit_vs_spectral(task["P_train"], task["P_test"], task["n_labels"], epochs=3, **KW)
    for m in ("spectral", "implicit"):                    # both schemes learn: above twice chance (6.25 %)
        assert out[m]["accuracy"] > 12.5 and out[m]["s/epoch"] > 0, out
    assert out["implicit / spectral time"] > 0


def test_ex02_eigenpairs_training(task):
    out = solutions.ex02_eigenpairs_training(task["train"], task["test"], task["label_of"], task["n_labels"], ks=(1, 64),
                                             epochs=20, **KW)
    assert out[64] > out[1] + 5, "k = 1 diffuses to the mean only: the eigenpairs carry the spatial context"


def test_ex02_hks_inputs(task):
    t = task
    out = solutions.ex02_hks_inputs(t["train"], t["test"], t["label_of"], t["n_labels"], t["reference"], t["centers"], epochs=8, **KW)
    assert out["hks"]["left/right swaps"] > out["xyz"]["left/right swaps"] + 10, \
        "intrinsic inputs cannot tell left from right on a symmetric body: they swap sides far more often"


def test_ex02_point_clouds(task):
    out = solutions.ex02_point_clouds(task["train"], task["test"], task["label_of"], task["n_labels"], epochs=8, **KW)
    assert set(out) == {"mesh → mesh", "mesh → cloud", "cloud → cloud", "cloud → mesh"}
    assert all(a > 25 for a in out.values()), f"every direction transfers (chance 6.25 %): {out}"


def test_ex02_inward_normals(task):
    out = solutions.ex02_inward_normals(task["test"][:1], width=16)
    assert out["max |f(shape) − f(inward mirror)|"] < 1e-5, "faces unchanged: the same oriented surface, the same output"
    assert out["max |f(shape) − f(outward mirror)|"] > 1e-3, "flipped faces: the complex A sees the mirror"
    assert out["same prediction on the inward mirror %"] == 100


def test_ex02_learned_times_init(task):
    out = solutions.ex02_learned_times_init(task["P_train"], task["P_test"], task["n_labels"], epochs=8, **KW)
    for t0, r in out.items():
        assert len(r["median t per block"]) == 4 and r["accuracy"] > 20
    assert not np.allclose(out[0.1]["median t per block"], 0.1), "the times are learned, not frozen"
    assert np.all(np.array(out[0.1]["median t per block"]) > np.array(out[0.0]["median t per block"])), \
        "a short run keeps the mark of the initialisation"
