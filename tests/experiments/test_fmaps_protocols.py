"""The scalable-fmaps Table 1 protocols: configs, budgets and learning-rate drops."""
import json
import re

import numpy as np
import pytest
import torch

from shapelib.experiments import checkpoints, registry, runner
from shapelib.experiments.checkpoints import Record
from shapelib.experiments.fmaps import lr_drop_steps

from _protocol_toy import TOY, toy_build, toy_eval, toy_items, toy_loss


def test_lr_drops_of_the_committed_fmaps_runs():
    """The short fmaps run lowered its learning rate once, after 1,100 of its 2,200 steps; the whole
    budget lowers it after 15,800 of 31,600 steps, and a run stopped before then has not."""
    from shapelib.experiments.fmaps import FM_CONFIG, FM_FULL_CONFIG

    assert lr_drop_steps(Record(config=FM_CONFIG, epochs_done=FM_CONFIG["epochs"])) == [1100]
    assert lr_drop_steps(Record(config=FM_FULL_CONFIG, epochs_done=FM_FULL_CONFIG["epochs"])) == [15800]
    assert lr_drop_steps(Record(config=FM_FULL_CONFIG, epochs_done=158)) == []


def test_fmaps_protocol_config_maps_onto_its_training_preset():
    """The fmaps protocol trains with the config it records: every named setting reaches
    FmapTrainConfig (the public code's preset: relative σ, K² normalisation, clipping), and an
    unknown preset is refused with its name."""
    from shapelib.fmaps import FmapTrainConfig
    from shapelib.experiments.fmaps import FM_CONFIG, fm_train_config

    fm = fm_train_config(FM_CONFIG)
    assert fm.name == FM_CONFIG["preset"] == "code"
    for key in ("k_init", "n_iter", "step", "sigma", "relative_sigma", "w_orth", "w_orth_final", "w_lap",
                "consist_detach", "loss_scale", "normalize_by_k2", "lr", "grad_clip", "clip_mode"):
        assert getattr(fm, key) == FM_CONFIG[key], key
    assert fm.w_consist == tuple(FM_CONFIG["w_consist"]) and fm.betas == tuple(FM_CONFIG["betas"])
    assert fm == FmapTrainConfig.code(), "the protocol trains with the public code's settings"
    assert fm_train_config({"preset": "paper", "k_init": 30}) == FmapTrainConfig.paper()
    with pytest.raises(ValueError, match="preset"):
        fm_train_config({**FM_CONFIG, "preset": "papr"})


def test_fmaps_full_budget_protocol_differs_only_in_its_budget(monkeypatch):
    """``fmaps_faust_r_unsupervised_full`` is the committed protocol with the public code's whole
    budget: as many steps as 10 passes over its 3,160 training pairs (i < j), learning rate ×0.1
    halfway; its items are those pairs, shape 1 the lower index."""
    from shapelib.experiments import fmaps as protocol_defs
    from shapelib.experiments.fmaps import FM_CONFIG, FM_FULL_CONFIG

    full = registry.get("fmaps_faust_r_unsupervised_full").config
    assert full is FM_FULL_CONFIG
    assert {k for k in full if full[k] != FM_CONFIG.get(k)} == {"pairs", "epochs", "decay_every", "train"}
    assert full["epochs"] * full["epoch_size"] == 10 * (80 * 79 // 2)
    assert full["decay_every"] * 2 == full["epochs"] and FM_CONFIG["decay_every"] * 2 == FM_CONFIG["epochs"]

    class Fake:                                         # stands for a shape's ShapeData
        def __init__(self, name):
            self.name = name

    monkeypatch.setattr(protocol_defs, "fm_shape_data", lambda shape, cfg, device: Fake(shape))
    monkeypatch.setattr("shapelib.data.real.r_dataset",
                        lambda name, names: [type("Item", (), {"shape": n})() for n in names])
    unordered = protocol_defs._fm_items(FM_FULL_CONFIG, "cpu")
    ordered = protocol_defs._fm_items(FM_CONFIG, "cpu")
    assert len(unordered) == 3160 and len(ordered) == 6320
    assert all(a.name < b.name for a, b in unordered)
    with pytest.raises(ValueError, match="pairs"):
        protocol_defs._fm_items({**FM_FULL_CONFIG, "pairs": "all"}, "cpu")


def test_fmaps_decimated_full_budget_protocol_differs_only_in_training_resolution(monkeypatch):
    """``fmaps_faust_r_unsupervised_full_decimated`` is the whole-budget protocol with its training
    shapes decimated to 3,000 faces; its test shapes (the evaluation) are the same full-resolution
    ones, and its items are built from the decimated shapes."""
    from shapelib.experiments import fmaps as protocol_defs
    from shapelib.experiments.fmaps import FM_FULL_CONFIG, FM_FULL_DECIMATED_CONFIG

    proto = registry.get("fmaps_faust_r_unsupervised_full_decimated")
    full = registry.get("fmaps_faust_r_unsupervised_full")
    dec = proto.config
    assert dec is FM_FULL_DECIMATED_CONFIG
    assert {k for k in dec if dec[k] != FM_FULL_CONFIG.get(k)} == {"train_faces", "train"}
    assert dec["train_faces"] == 3000 and dec["test"] == FM_FULL_CONFIG["test"]
    assert proto.evaluate is full.evaluate and proto.check_shapes == full.check_shapes

    seen = []
    monkeypatch.setattr(protocol_defs, "decimate", lambda shape, n: seen.append(n) or f"{shape}@{n}")
    monkeypatch.setattr(protocol_defs, "fm_shape_data", lambda shape, cfg, device: shape)
    monkeypatch.setattr("shapelib.data.real.r_dataset",
                        lambda name, names: [type("Item", (), {"shape": n})() for n in names])
    items = protocol_defs._fm_items(dec, "cpu")
    assert len(items) == 3160 and seen == [3000] * 80
    assert all(a.endswith("@3000") and b.endswith("@3000") for a, b in items)


def test_lr_drop_steps_turn_the_drop_epochs_into_steps():
    cfg = {"lr": 1.0, "epoch_size": 3, "decay_every": 2, "decay": 0.5}
    assert lr_drop_steps(Record(config=cfg, epochs_done=7)) == [6, 12, 18]
    assert lr_drop_steps(Record(config={**cfg, "min_lr": 0.3}, epochs_done=7)) == [6, 12]   # floored at 0.25 -> 0.3


def test_the_learning_curve_of_a_resumed_run_names_its_optimizer_restart():
    """The committed whole-budget run went on from its epoch-162 partial checkpoint with a fresh Adam:
    notebook 04's learning-curve table and its figure title both say so (at step 162 × 100), and the
    short run, trained without a break, says nothing of a restart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from shapelib.experiments.fmaps import learning_curve_text, plot_test_pairs

    full = checkpoints.committed(["fmaps_faust_r_unsupervised_full_decimated"])["fmaps_faust_r_unsupervised_full_decimated"]
    short = checkpoints.committed(["fmaps_faust_r_unsupervised"])["fmaps_faust_r_unsupervised"]
    assert full.optimizer_restarts == [162], full.optimizer_restarts
    assert "restarted from zero at epoch 162" in learning_curve_text(full).splitlines()[0]
    assert "restarted" not in learning_curve_text(short)
    step = 162 * full.config["epoch_size"]
    for record, expect in ((full, f"Adam restarted at step {step:,}"), (short, None)):
        fig = plot_test_pairs(record)
        title = fig.axes[0].get_title()
        plt.close(fig)
        assert (expect in title) if expect else ("restarted" not in title), title
