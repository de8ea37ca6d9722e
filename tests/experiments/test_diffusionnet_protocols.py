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
