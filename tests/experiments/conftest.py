"""Fixtures of the reproduction-layer tests: a checkpoint folder of their own, and a toy protocol
(a small regression) that trains in a second, for the runner and the records."""
import pytest

from shapelib.experiments import registry
from shapelib.experiments.registry import Protocol

from _protocol_toy import TOY, toy_build, toy_eval, toy_items, toy_loss


@pytest.fixture
def ckpt_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(tmp_path))
    return tmp_path


@pytest.fixture
def toy(monkeypatch):
    proto = Protocol("toy", "toy regression", dict(TOY), toy_build, toy_items, toy_loss, toy_eval, ["s0", "s1"])
    monkeypatch.setitem(registry._PROTOCOLS, "toy", proto)
    return proto
