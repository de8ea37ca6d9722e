"""The DiffusionNet Table 5 protocols: augmentation and the REPORT rows."""
import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from shapelib.experiments import checkpoints, registry, runner
from shapelib.experiments.checkpoints import Record

from _protocol_toy import TOY, toy_build, toy_eval, toy_items, toy_loss


def test_table5_protocol_trains_on_inputs_rotated_about_the_vertical():
    """The paper's Table 5 augmentation reaches the loss: each step sees the xyz inputs rotated
    about y (heights and distances to the y axis kept, x/z changed)."""
    from shapelib.experiments.diffusionnet import T5_CONFIG, _t5_loss

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x, ops, rows=None):
            seen.append(x.detach().clone())
            return torch.zeros(len(x), 3, requires_grad=True)

    x = torch.randn(50, 3)
    item = {"x": x, "ops": None, "y": torch.zeros(50, dtype=torch.long), "kind": "xyz"}
    loss = _t5_loss(T5_CONFIG)
    torch.manual_seed(0)
    loss(Probe(), item), loss(Probe(), item)
    for z in seen:
        assert torch.allclose(z[:, 1], x[:, 1]), "heights (y) are kept"
        assert torch.allclose(z[:, [0, 2]].norm(dim=1), x[:, [0, 2]].norm(dim=1), atol=1e-5)
        assert not torch.allclose(z, x, atol=1e-3), "x/z should be rotated"
    assert not torch.allclose(seen[0], seen[1], atol=1e-3), "a new angle at every step"


def test_table5_rows_say_what_differs_from_the_paper():
    """The REPORT rows of Table 5 checkpoints: 'paper' only at the paper's settings, otherwise each
    difference named; the graph baseline is marked as a baseline with no paper value."""
    from shapelib.experiments import diffusionnet as pd

    summary = {k: {"mean": 1.0, "median": 1.0, "std": 0.1, "n": 20, "paper": p, "accuracy": 50.0} for k, p in pd.T5_PAPER.items()}
    rec = Record(config=dict(pd.T5_CONFIG), status="complete", epochs_done=200, seeds=[0],
                 evaluation={"summary": summary}, hardware="x · 16 cores · 2 torch threads · NVIDIA H200 · P", device="cuda")
    assert pd.t5_differs(rec) == []
    small = dataclasses.replace(rec, config=dict(pd.T5_CONFIG, width=128), status="partial", epochs_done=23)
    assert pd.t5_differs(small) == ["width 128 (paper 256)", "stopped at epoch 23 of 200 (partial)"]
    rows = pd.t5_report_rows({"diffusionnet_faust_table5": rec, pd.T5_GRAPH: rec})
    assert len(rows) == 10
    assert rows[0]["protocol"].startswith("paper (200 epochs on one NVIDIA H200 GPU)")
    assert [r["paper_value"] for r in rows[:5]] == list(pd.T5_PAPER.values())
    assert all(r["paper_value"] is None and r["protocol"].startswith("baseline") for r in rows[5:])
    assert pd.t5_report_rows({"diffusionnet_faust_table5": small})[0]["protocol"].startswith("reduced: width 128")


def test_reference_operator_variant_builds_the_reference_scripts_cloud_operators(real_data):
    """``diffusionnet_faust_table5_reference_operators`` sees each shape as the reference Table 5
    script does: the stored reference cloud (tests/fixtures/diffusionnet_reference/make_cloud_fixture.py,
    the same 800 points of tr_reg_cloud_080 normalised by the reference's own normalize_positions('bbox')
    and given to its compute_operators with the file normals) is reproduced — coordinates, inputs,
    mass and spectrum — from the raw points by t5_prepare."""
    from pathlib import Path

    from shapelib import Shape
    from shapelib.data import real
    from shapelib.experiments.diffusionnet import T5_REFOPS, t5_prepare

    d = np.load(Path(__file__).resolve().parents[1] / "fixtures" / "diffusionnet_reference" / "reference_cloud.npz")
    cloud = real.faust_remeshed_test("cloud", [80])[0].shape
    keep = np.sort(np.random.default_rng(0).choice(cloud.n_vertices, len(d["verts"]), replace=False))
    raw = Shape(cloud.vertices[keep], None, normals=cloud.normals[keep], name="cloud080_800")
    cfg = {**registry.get(T5_REFOPS).config, "k_eig": 32}
    assert cfg["gradient_eps"] == 1e-5 and cfg["operators"] == "reference"
    item = t5_prepare([raw], None, cfg, progress=False)[0]
    np.testing.assert_allclose(item["shape"].vertices, d["verts"], atol=1e-6,
                               err_msg="bbox centring / unit-radius scaling differs from normalize_positions")
    np.testing.assert_allclose(item["x"].numpy(), d["verts"], atol=1e-6, err_msg="the inputs are not the normalised points")
    np.testing.assert_allclose(item["shape"].vertex_normals(), d["normals"], atol=1e-6, err_msg="file normals not kept")
    np.testing.assert_allclose(item["ops"]["M"].numpy(), d["mass"], rtol=1e-4, err_msg="mass differs from the reference's")
    np.testing.assert_allclose(item["ops"]["evals"].numpy()[1:], d["evals"][1:], rtol=1e-4,
                               err_msg="spectrum differs from the reference's")


def test_reference_operator_variant_meshes_are_bbox_centred_with_face_mean_normals(small_human):
    """On meshes the reference variant centres at the bounding-box middle, scales to largest radius 1,
    stores the face-mean normals, and regularises the gradient by eps (a different operator than
    shapelib's default, which the default configuration keeps)."""
    from shapelib.experiments.diffusionnet import T5_CONFIG, T5_REFOPS_CONFIG, reference_t5_shape, t5_prepare
    from shapelib.experiments.diffusionnet_fmaps import face_mean_normals

    shape = small_human.scaled(1.7).transformed(translation=[0.3, -2.0, 5.0])
    ref = reference_t5_shape(shape)
    lo, hi = ref.vertices.min(0), ref.vertices.max(0)
    np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-12, err_msg="not centred at the bounding-box middle")
    assert np.linalg.norm(ref.vertices, axis=1).max() == pytest.approx(1.0)
    np.testing.assert_allclose(ref.normals, face_mean_normals(ref), err_msg="not the reference's face-mean normals")
    cfg = {**T5_REFOPS_CONFIG, "k_eig": 16}
    a = t5_prepare([shape], None, cfg, progress=False)[0]
    b = t5_prepare([shape], None, {**T5_CONFIG, "k_eig": 16}, progress=False)[0]
    np.testing.assert_allclose(a["x"].numpy(), ref.vertices.astype(np.float32))
    assert not np.allclose(a["x"].numpy(), b["x"].numpy(), atol=1e-4), "the default inputs are centred at the centroid"
    from shapelib.operators import compute_operators
    want = compute_operators(ref, k=16, gradient_eps=1e-5).grad_x.toarray()
    unregularised = compute_operators(ref, k=16, gradient_eps=0.0).grad_x.toarray()
    np.testing.assert_allclose(a["ops"]["grad_x"].to_dense().numpy(), want, atol=1e-4 * np.abs(want).max(),
                               err_msg="the gradient is not solved with the reference's eps")
    assert np.abs(want - unregularised).max() > 1e-3 * np.abs(want).max(), "eps 1e-5 should change this gradient"
    with pytest.raises(ValueError, match="choose one of 'shapelib', 'reference', 'bbox'"):
        t5_prepare([shape], None, {**cfg, "operators": "mine"}, progress=False)


def test_bbox_centring_arm_changes_the_centring_alone(small_human):
    """``diffusionnet_faust_table5_bbox_centring`` takes the reference variant's coordinates (bounding-box
    middle, largest radius 1: the same inputs, to float32) but keeps the shape's own normals and
    shapelib's unregularised gradient solve, where the reference variant stores face-mean normals
    and regularises by eps."""
    from shapelib.experiments.diffusionnet import T5_BBOX, T5_REFOPS_CONFIG, bbox_unit_shape, reference_t5_shape, t5_prepare
    from shapelib.operators import compute_operators

    shape = small_human.scaled(1.7).transformed(translation=[0.3, -2.0, 5.0])
    cfg = {**registry.get(T5_BBOX).config, "k_eig": 16}
    assert cfg["operators"] == "bbox" and not cfg.get("gradient_eps")
    a = t5_prepare([shape], None, cfg, progress=False)[0]
    ref = t5_prepare([shape], None, {**T5_REFOPS_CONFIG, "k_eig": 16}, progress=False)[0]
    np.testing.assert_allclose(a["x"].numpy(), reference_t5_shape(shape).vertices.astype(np.float32),
                               err_msg="not the reference's bbox-centred, unit-radius inputs")
    np.testing.assert_allclose(a["x"].numpy(), ref["x"].numpy(), err_msg="inputs differ from the reference variant's")
    np.testing.assert_allclose(a["shape"].vertex_normals(), shape.vertex_normals(), atol=1e-12,
                               err_msg="the bbox arm should keep shapelib's normals")
    assert np.abs(ref["shape"].vertex_normals() - shape.vertex_normals()).max() > 1e-3, "face-mean normals should differ"
    want = compute_operators(bbox_unit_shape(shape), k=16, gradient_eps=0.0).grad_x.toarray()
    got = a["ops"]["grad_x"].to_dense().numpy()
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max(), err_msg="gradient should be shapelib's, unregularised")
    assert np.abs(got - ref["ops"]["grad_x"].to_dense().numpy()).max() > 1e-3 * np.abs(want).max()


@pytest.mark.parametrize("arm", ["gradient_eps", "bbox_centring"])
def test_one_reference_setting_alone_is_stored_beside_the_reference_operator_run_at_epoch_18(arm):
    """results/diffusionnet_table5_<arm>_epoch18.json: diffusionnet_faust_table5_<arm> (the gradient eps
    alone, the bounding-box centring alone) stopped at epoch 18 (make train MODEL=... TRAIN_ARGS="--stop-epoch
    18 --train-only"; python -m shapelib.experiments evaluate NAME --state --yardstick --out FILE), all 100
    test shapes by both metrics. Its summary is the mean of its rows; the reference-operator record keeps
    its own epoch-18 evaluation (same seed) to set beside it; the README quotes both."""
    from pathlib import Path

    from shapelib.experiments.diffusionnet import T5, T5_KINDS, T5_REFOPS

    root = checkpoints.directory().parent.parent
    rec = json.loads((root / "results" / f"diffusionnet_table5_{arm}_epoch18.json").read_text())
    assert rec["experiment"] == f"{T5}_{arm}" and registry.get(rec["experiment"]).config["seed"] == 0
    assert rec["epoch"] == 18 and rec["steps"] == 18 * 80 and len(rec["loss_curve"]) == 18
    for kind in T5_KINDS:
        rows = [v["error_x100"] for k, v in rec["evaluation"]["per_shape"].items() if k.startswith(kind + "/")]
        assert len(rows) == 20 and rec["evaluation"]["summary"][kind]["mean"] == pytest.approx(np.mean(rows), abs=1e-3)
        assert rec["paper_yardstick"]["summary"][kind]["n"] == 20
    ref = checkpoints.load_record(T5_REFOPS)
    at18 = [p for p in ref.progress if p["epoch"] == 18]
    assert at18 and ref.config["seed"] == 0, "the reference-operator run's epoch-18 evaluation, same seed"
    readme = Path(root / "README.md").read_text()
    ours = " / ".join(f"{rec['evaluation']['summary'][k]['mean']:.2f}" for k in T5_KINDS)
    theirs = " / ".join(f"{at18[0]['summary'][k]['mean']:.2f}" for k in T5_KINDS)
    yard = " / ".join(f"{rec['paper_yardstick']['summary'][k]['mean']:.2f}" for k in T5_KINDS)
    for text in (ours, theirs, yard):
        assert text in readme, f"the README should quote {text}"
