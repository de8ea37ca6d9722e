"""Checkpoints and their typed training records: saving, loading, refusing what does not fit."""
import json
import re

import numpy as np
import pytest
import torch

from shapelib.experiments import checkpoints, registry, runner
from shapelib.experiments.checkpoints import Record
from shapelib.experiments.registry import Protocol

from _protocol_toy import TOY, toy_build, toy_eval, toy_items, toy_loss


def test_save_load_roundtrip_and_config_guard(ckpt_dir):
    model = toy_build(TOY)
    checkpoints.save("m", model, {"config": TOY, "evaluation": {}})
    assert checkpoints.available() == ["m"]
    other = toy_build({**TOY, "seed": 9})
    rec = checkpoints.load("m", other, config=TOY)
    assert rec.config == TOY
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(checkpoints.CheckpointError, match=r"width: 16 expected, 8 in the checkpoint"):
        checkpoints.load("m", toy_build({**TOY, "width": 16}), config={**TOY, "width": 16})
    with pytest.raises(checkpoints.CheckpointError, match="do not fit this model"):
        checkpoints.load("m", toy_build({**TOY, "width": 16}))            # no config given: weights checked
    with pytest.raises(checkpoints.CheckpointError, match="make train MODEL=nope"):
        checkpoints.load("nope", model)


class _Payload:
    """Stands for any pickled object (which could run code when unpickled)."""


def test_pickled_objects_are_refused(ckpt_dir):
    """weights_only loading: a .pt holding an arbitrary Python object is refused, not executed."""
    model = toy_build(TOY)
    checkpoints.save("m", model, {"config": TOY})

    torch.save({"0.weight": _Payload()}, ckpt_dir / "m.pt")
    with pytest.raises(checkpoints.CheckpointError, match="cannot read weights"):
        checkpoints.load("m", model)


def test_trained_on_names_the_gpu_or_the_cpu_threads():
    gpu = {"hardware": "x86_64 · 16 cores · 2 torch threads · NVIDIA H200 · Python 3.12.3 · torch 2.11.0", "device": "cuda"}
    cpu = {"hardware": "x86_64 · 2 cores · 1 torch threads · no GPU · Python 3.11.7 · torch 2.13.0+cpu", "device": "cpu"}
    assert Record(config={}, **gpu).trained_on() == "one NVIDIA H200 GPU"
    assert Record(config={}, **cpu).trained_on() == "1 CPU thread"
    assert Record(config={}, **dict(cpu, hardware=cpu["hardware"].replace("1 torch", "2 torch"))).trained_on() == "2 CPU threads"
    # a run resumed elsewhere names each machine in order, once per change
    assert Record(config={}, segments=[cpu, cpu, gpu], **gpu).trained_on() == "1 CPU thread, then one NVIDIA H200 GPU"
