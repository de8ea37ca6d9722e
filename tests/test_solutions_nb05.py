"""Notebook 05's exercise solutions run at small sizes (synthetic chairs, a tiny auto-decoder) and
give the announced outcome."""
import numpy as np
import pytest

from shapelib import Shape, data, solutions
from shapelib import implicit as im
from shapelib.metrics import chamfer_distance

FAST = dict(n_steps=10, n_iters=2, max_step=0.25)


@pytest.fixture(scope="module")
def fitted():
    chairs = data.objects("chair", "all", n=4)
    D = im.prepare_implicit(chairs, n_surface=384, n_uniform=384, progress=False)
    model, _ = im.fit_auto_decoder(D, latent_dim=8, widths=(32, 32, 32, 16, 8, 8), epochs=150, lr=5e-3, code_lr=3e-2,
                                   points_per_shape=512, progress=False)
    return chairs, D, model


def test_ex05_regulariser(fitted):
    _, D, model = fitted
    x0, y = D.shapes[0].sample_surface(60, 0)[0], D.shapes[1].sample_surface(60, 1)[0]
    out = solutions.ex05_regulariser(model, x0, 0, 1, y, lams=(0.0, 0.01, 1.0), **FAST)
    assert out[1.0]["mean move"] < out[0.01]["mean move"] and out[1.0]["max move"] < out[0.0]["max move"], \
        "a larger λ must shorten the Gauss–Newton steps"
    assert all(out[lam]["mean move, flat quarter"] <= out[lam]["max move"] for lam in (0.0, 0.01, 1.0))
    assert 0 < out["median σ_min(∇Φ), flat quarter"] <= out["median σ_min(∇Φ)"]


def test_ex05_eta(fitted):
    chairs, D, model = fitted
    parts = [it.parts[it.shape.faces].max(1) for it in chairs]
    out = solutions.ex05_eta(model, D.shapes, [(0, 1)], etas=(0.0, 0.5), n_eval=128, face_parts=parts, **FAST)
    assert set(out) == {0.0, 0.5} and all(set(v) == {"CD", "part CD"} for v in out.values())
    # η = 0 adds zero rows to the Gauss–Newton system: exactly the layer-3-only deformation
    _, fa, ba = D.shapes[0].sample_surface(128, seed=0)
    x3 = im.points_from_bary(im.deform(model, D.shapes[0].vertices, 0, 1, layers=(3,), weights=(1.0,), **FAST), D.shapes[0].faces, fa, ba)
    assert out[0.0]["CD"] == pytest.approx(chamfer_distance(x3, D.shapes[1].sample_surface(128, 50)[0]), rel=1e-4)
    assert out[0.5]["CD"] != pytest.approx(out[0.0]["CD"], rel=1e-4), "η > 0 must change the deformation"


def test_ex05_shallow_network(fitted):
    _, D, _ = fitted
    out = solutions.ex05_shallow_network(D, widths=(64, 64, 32, 16), latent_dim=8, epochs=300, **FAST)
    assert len(out["silhouette"]) == 4 and all(-1 <= s <= 1 for s in out["silhouette"])
    assert out["BCE last"] < 0.9 * out["BCE first"] and 1 <= out["most distinctive layer"] <= 4, out


def test_ex05_largest_piece():
    import trimesh

    body = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    blob = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    rec = Shape(np.vstack([body.vertices, blob.vertices + [0.45, 0, 0]]), np.vstack([body.faces, blob.faces + len(body.vertices)]))
    out = solutions.ex05_largest_piece([rec], [Shape(body.vertices, body.faces)], n=1024)
    assert out["mean largest piece"] < 0.5 * out["mean whole"], "dropping the floating blob removes its error"
