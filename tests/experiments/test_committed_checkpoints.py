"""The committed checkpoints: each reproduces the numbers its record states, fits the size budget, and the
README table states its record."""
import json
import re

import numpy as np
import pytest
import torch

from shapelib.experiments import checkpoints, registry, runner
from shapelib.experiments.checkpoints import Record

from _protocol_toy import TOY, toy_build, toy_eval, toy_items, toy_loss


COMMITTED = checkpoints.available()


MACHINE_PATH = re.compile(r"(/work/|/root/|/home/|/tmp/|[A-Z]:\\\\)")


@pytest.mark.parametrize("name", COMMITTED or [pytest.param("none", marks=pytest.mark.skip("no committed checkpoint"))])
def test_committed_checkpoint_reproduces_its_record(name):
    """Evaluating the committed weights on the protocol's check shapes reproduces the record."""
    proto = registry.get(name)
    pt = checkpoints.directory() / f"{name}.pt"
    assert pt.stat().st_size <= checkpoints.MAX_BYTES
    text = (checkpoints.directory() / f"{name}.json").read_text()
    assert not MACHINE_PATH.search(text), "a committed record must not carry machine paths"
    ok, why = proto.available()
    if not ok:
        pytest.skip(why)
    model, record = registry.load_model(name)
    out = proto.evaluate(model, proto.config, torch.device("cpu"), proto.check_shapes)["per_shape"]
    assert set(out) == set(proto.check_shapes)
    for shape_id, numbers in out.items():
        stored = record.evaluation["per_shape"][shape_id]
        for key, value in numbers.items():
            assert value == pytest.approx(stored[key], rel=2e-3, abs=2e-3), f"{name} {shape_id} {key}"


#: how a test scores one shape by a paper's yardstick cheaply: Table 5 with the template diameter its
#: record states (the all-pairs matrix takes ~13 min once), fmaps with per-pair exact solves (the same
#: numbers as the cached rows)
YARDSTICK_CHECK = {"diffusionnet_faust_table5": ("orig/080", lambda Y: {"diameter": Y["diameter"]}),
                   "diffusionnet_faust_table5_graph": ("orig/080", lambda Y: {"diameter": Y["diameter"]}),
                   "diffusionnet_faust_table5_seed1": ("cloud/080", lambda Y: {"diameter": Y["diameter"]}),
                   "diffusionnet_faust_table5_reference_operators": ("cloud/080", lambda Y: {"diameter": Y["diameter"]}),
                   "fmaps_faust_r_unsupervised": ("tr_reg_080<-tr_reg_081", lambda Y: {"geodesics": "exact_pairs"}),
                   "fmaps_faust_r_unsupervised_full_decimated": ("tr_reg_080<-tr_reg_081",
                                                                 lambda Y: {"geodesics": "exact_pairs"})}
RESCORED = [n for n in COMMITTED if "paper_yardstick" in checkpoints.load_record(n).evaluation]


@pytest.mark.parametrize("name", RESCORED or [pytest.param("none", marks=pytest.mark.skip("no record scored by its paper's yardstick"))])
def test_committed_checkpoint_reproduces_its_paper_yardstick_score(name):
    """The record's paper-yardstick numbers (exact geodesics, the authors' averaging) come out again
    on one test shape or pair; its summary says how it was scored and carries the paper's number."""
    proto = registry.get(name)
    ok, why = proto.available()
    if not ok:
        pytest.skip(why)
    model, record = registry.load_model(name)
    Y = record.evaluation["paper_yardstick"]
    assert Y["yardstick"] and any("paper" in S for S in Y["summary"].values())
    shape_id, options = YARDSTICK_CHECK[name]
    out = proto.yardstick(model, proto.config, torch.device("cpu"), [shape_id], **options(Y))["per_shape"]
    for key, value in out[shape_id].items():
        assert value == pytest.approx(Y["per_shape"][shape_id][key], rel=2e-3, abs=2e-3), f"{name} {shape_id} {key}"


def test_committed_checkpoints_fit_the_size_budget():
    """The shipped weights (``NAME.pt``) stay within 80 MiB together; the git-ignored resume states of
    unfinished runs (``NAME.state.pt``) are not shipped and do not count."""
    d = checkpoints.directory()
    weights = [p for p in d.glob("*.pt") if not p.name.endswith(".state.pt")] if d.is_dir() else []
    total = sum(p.stat().st_size for p in weights)
    assert total <= 80 * 2**20, f"committed checkpoints take {total / 2**20:.1f} MiB, over the 80 MiB budget"


def _readme_checkpoint_rows():
    """``{names: (trained, ours, paper)}`` from the README's table of committed checkpoints."""
    text = (checkpoints.directory().parent.parent / "README.md").read_text()
    registry.protocols()                       # every paper file registered
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = tuple(re.findall(r"`([a-z0-9_]+)`", cells[0])) if len(cells) == 5 else ()
        if names and all(n in registry._PROTOCOLS for n in names):
            rows[names] = (cells[1], cells[3], cells[4])
    return rows


def _formats(value) -> set:
    return {f"{value:.2f}", f"{value:.1f}", f"{value:g}"}


def test_readme_table_states_each_committed_checkpoints_record():
    """The README's table of committed checkpoints lists every one of them, and every number it
    gives (test results by shapelib's metric or the paper's yardstick, the paper's, training
    minutes) is its record's, as rounded there."""
    if not checkpoints.directory().is_dir() or not checkpoints.available():
        pytest.skip("no committed checkpoints")
    rows = _readme_checkpoint_rows()
    listed = {n for names in rows for n in names}
    assert listed == set(checkpoints.available()), f"README table lists {sorted(listed)}"
    for names, (trained, ours, paper) in rows.items():
        records = [checkpoints.load_record(n) for n in names]
        ours_ok, paper_ok = set(), set()
        for rec in records:
            for stats in rec.evaluation["summary"].values():
                for key in ("mean", "median"):
                    ours_ok |= _formats(stats[key])
                if "paper" in stats:            # a map the paper reports (fmaps: the network output only)
                    paper_ok |= _formats(stats["paper"])
            # the same model scored by its paper's yardstick (runner.rescore), which the table quotes first
            for stats in rec.evaluation.get("paper_yardstick", {}).get("summary", {}).values():
                ours_ok |= {f for key in ("mean", "median") if key in stats for f in _formats(stats[key])}
        for number in re.findall(r"\d+\.\d+|\d+", ours):
            assert number in ours_ok, f"README row {names}: {number} is not in the records {names}"
        for number in re.findall(r"\d+\.\d+|\d+", paper):
            assert number in paper_ok, f"README row {names}: paper value {number} is not the records'"
        minutes = [float(m) for m in re.findall(r"(\d+(?:\.\d+)?)(?= (?:/ \d+(?:\.\d+)? )*min)", trained)]
        assert minutes, f"README row {names}: the training time is missing"
        for m, rec in zip(minutes, records):
            assert abs(m - rec.wall_seconds / 60) <= 0.5, f"README row {names}: {m} min, record {rec.wall_seconds / 60:.1f}"
        where = {checkpoints.trained_on(rec) for rec in records}
        assert all(w in trained for w in where), f"README row {names}: trained on {where}, README says {trained!r}"
