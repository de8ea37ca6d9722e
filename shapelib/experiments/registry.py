"""The paper protocols ``make train`` knows: what a protocol is, and where each is found.

A :class:`Protocol` is one paper experiment — its config (the paper's settings, and what
differs), how to build the model, the training items and loss, and its evaluation. Each paper
registers its protocols in its own file of :mod:`shapelib.experiments` (:data:`PAPERS`), which
is imported the first time a protocol is looked up::

    from shapelib.experiments import registry
    registry.names()                                   # every protocol, in registration order
    proto = registry.get("diffusionnet_faust_table5")
    model, record = registry.load_model(proto.name)     # the committed model (eval mode) + its Record
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from . import checkpoints
from ..data import registry as data_registry

#: the paper files of this package that register protocols (imported on the first look-up)
PAPERS = ("diffusionnet", "diffusionnet_fmaps", "meps", "fmaps", "cpnet", "implicit")

_PROTOCOLS: dict[str, "Protocol"] = {}


@dataclass
class Protocol:
    """One paper experiment: config, model, training data, loss and evaluation.

    ``build(cfg)`` → model; ``train_items(cfg, device)`` → list of items; ``loss(cfg)`` →
    ``loss_fn(model, item)``; ``evaluate(model, cfg, device, subset)`` →
    ``{"per_shape": {id: {...}}, "summary": {...}}`` where ``subset`` (a few shape ids, or None for
    the whole test set) keeps checks cheap. ``check_shapes``: the ids a test re-evaluates;
    ``needs``: dataset names of :mod:`shapelib.data.registry`; ``yardstick(model, cfg, device,
    subset)``, where given, scores the model the way the paper's own evaluation code does (exact
    geodesics, its averaging and normalisation) → ``{"per_shape", "summary", "yardstick"}``.
    """

    name: str
    title: str
    config: dict
    build: Callable
    train_items: Callable
    loss: Callable
    evaluate: Callable
    check_shapes: list = field(default_factory=list)
    needs: tuple = ()
    yardstick: Callable | None = None

    def available(self) -> tuple[bool, str]:
        """Whether the data it needs is found (and if not, why)."""
        for ds in self.needs:
            if not data_registry.get(ds).found():
                return False, f"dataset {ds!r} not found (python -m shapelib.data status)"
        return True, ""


def register(protocol: Protocol) -> Protocol:
    """Add ``protocol`` (called by the paper files at import time); returns it."""
    _PROTOCOLS[protocol.name] = protocol
    return protocol


def paper_modules() -> list:
    """The paper files (modules) of :data:`PAPERS` — importing them registers their protocols."""
    mods = []
    for paper in PAPERS:
        try:
            mods.append(importlib.import_module(f"{__package__}.{paper}"))
        except ModuleNotFoundError as exc:        # a paper file not written yet; any other import error surfaces
            if exc.name != f"{__package__}.{paper}":
                raise
    return mods


def _load_papers() -> None:
    paper_modules()


def protocols() -> dict[str, Protocol]:
    """Every registered protocol by name, in registration order (paper by paper)."""
    _load_papers()
    return dict(_PROTOCOLS)


def names(prefix: str = "") -> list[str]:
    """The registered protocol names (those starting with ``prefix``), in registration order."""
    return [n for n in protocols() if n.startswith(prefix)]


def get(name: str) -> Protocol:
    """The protocol ``name``; an unknown name is a :class:`~shapelib.experiments.checkpoints.CheckpointError`
    listing the known ones."""
    known = protocols()
    if name not in known:
        raise checkpoints.CheckpointError(f"unknown protocol {name!r}; choose one of: {', '.join(sorted(known))} "
                                          "(python -m shapelib.experiments list).")
    return known[name]


def load_model(name: str, device="cpu"):
    """The committed model of protocol ``name`` (eval mode) and its :class:`~shapelib.experiments.checkpoints.Record`;
    refuses a checkpoint whose config differs from the protocol's."""
    proto = get(name)
    model = proto.build(proto.config)
    record = checkpoints.load(name, model, config=proto.config)
    return model.to(device).eval(), record
