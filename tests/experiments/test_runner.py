"""The runner: resumable training, evaluation of saved states, sittings and fresh-clone resumes."""
import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from shapelib.experiments import checkpoints, registry, runner
from shapelib.experiments.checkpoints import Record
from shapelib.experiments.registry import Protocol

from _protocol_toy import TOY, toy_build, toy_eval, toy_items, toy_loss


def test_resumed_run_equals_uninterrupted_run(ckpt_dir, toy, monkeypatch):
    full = runner.train("toy", show_progress=False)
    assert full.status == "complete" and full.epochs_done == 4
    assert checkpoints.load_state("toy") is None                             # state removed when complete
    stamp = (ckpt_dir / "toy.pt").stat().st_mtime_ns
    runner.train("toy", show_progress=False)                                   # a complete run is not retrained
    assert (ckpt_dir / "toy.pt").stat().st_mtime_ns == stamp
    w_full = {k: v.clone() for k, v in registry.load_model("toy")[0].state_dict().items()}

    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    part = runner.train("toy", max_minutes=0, show_progress=False)              # stops after its first epoch
    assert part.status == "partial" and part.epochs_done == 1
    assert checkpoints.load_state("toy")["epoch"] == 1
    done = runner.train("toy", show_progress=False)                            # resumes at epoch 1
    assert done.status == "complete" and done.epochs_done == 4
    np.testing.assert_allclose(done.loss_curve, full.loss_curve, rtol=1e-6)
    for k, v in registry.load_model("toy")[0].state_dict().items():
        torch.testing.assert_close(v, w_full[k], rtol=1e-6, atol=1e-7)
    assert done.evaluation["summary"]["mse"] == pytest.approx(full.evaluation["summary"]["mse"], rel=1e-5)
    rec = json.loads((ckpt_dir / "second" / "toy.json").read_text())
    for key in ("experiment", "config", "seeds", "epochs_done", "loss_curve", "evaluation", "date", "hardware",
                "wall_seconds", "git_commit"):
        assert key in rec, key


def test_an_unfinished_run_is_evaluated_from_its_state_without_writing(ckpt_dir, toy, monkeypatch, tmp_path):
    """``evaluate_state`` scores the saved state of an unfinished run as --finalize would, writes no
    checkpoint, leaves the state to resume; with no state it says how to start one."""
    with pytest.raises(checkpoints.CheckpointError, match="make train MODEL=toy"):
        runner.evaluate_state("toy")
    runner.train("toy", max_minutes=0, evaluate=False, show_progress=False)       # stops after its first epoch
    before = (ckpt_dir / "toy.state.pt").read_bytes()
    peek = runner.evaluate_state("toy")
    assert peek["epoch"] == 1 and peek["epochs"] == 4 and peek["steps"] == 6
    assert checkpoints.available() == [] and (ckpt_dir / "toy.state.pt").read_bytes() == before
    final = runner.train("toy", train_more=False, show_progress=False)           # --finalize: the same numbers
    assert final.status == "partial"
    assert peek["evaluation"]["summary"]["mse"] == pytest.approx(final.evaluation["summary"]["mse"], rel=1e-6)
    assert [e["epoch"] for e in final.progress] == [1] and final.progress[0]["summary"] == peek["evaluation"]["summary"]
    assert len(checkpoints.progress_path("toy").read_text().splitlines()) == 2, "the partial checkpoint is logged too"
    out = tmp_path / "peek.json"
    assert runner.main(["evaluate", "toy", "--state", "--out", str(out), "--no-log"]) == 0
    assert json.loads(out.read_text())["evaluation"]["summary"]["mse"] == pytest.approx(peek["evaluation"]["summary"]["mse"])
    assert len(checkpoints.progress_path("toy").read_text().splitlines()) == 2, "--no-log adds nothing to the log"
    with pytest.raises(SystemExit):
        runner.main(["evaluate", "toy", "--no-log"])                       # only with --state
    monkeypatch.setitem(registry._PROTOCOLS, "toy", Protocol("toy", "toy", dict(TOY, lr=5e-3), toy_build, toy_items,
                                                             toy_loss, toy_eval, ["s0"]))
    with pytest.raises(checkpoints.CheckpointError, match="another config"):
        runner.evaluate_state("toy")


def test_the_record_of_a_finished_run_keeps_its_progress_evaluations(ckpt_dir, toy):
    """Each evaluation of a saved state goes into the run's progress log; the finished run's record
    carries them in epoch order (the latest of an epoch evaluated twice), the log goes with the
    state, a restart forgets an old run's log, and a damaged log line is an error naming the file."""
    runner.train("toy", max_minutes=0, evaluate=False, show_progress=False)       # epoch 1
    runner.evaluate_state("toy")
    runner.train("toy", max_minutes=0, evaluate=False, show_progress=False)       # epoch 2
    second = runner.evaluate_state("toy")
    runner.evaluate_state("toy", subset=["s0"])                             # a subset is not logged
    runner.evaluate_state("toy")                                            # epoch 2 again: kept once
    assert [e["epoch"] for e in checkpoints.load_progress("toy")] == [1, 2]
    rec = runner.train("toy", show_progress=False)                               # to the end
    assert rec.status == "complete" and [e["epoch"] for e in rec.progress] == [1, 2]
    assert rec.progress[1]["summary"] == second["evaluation"]["summary"] and rec.progress[1]["steps"] == 12
    assert not checkpoints.progress_path("toy").exists() and checkpoints.load_state("toy") is None
    runner.train("toy", resume=False, max_minutes=0, evaluate=False, show_progress=False)
    runner.evaluate_state("toy")
    runner.train("toy", resume=False, max_minutes=0, evaluate=False, show_progress=False)   # --restart
    assert checkpoints.load_progress("toy") == []
    checkpoints.progress_path("toy").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(checkpoints.CheckpointError, match=r"toy.progress.jsonl, line 2"):
        checkpoints.load_progress("toy")


def test_a_run_is_not_resumed_under_another_config(ckpt_dir, toy, monkeypatch):
    """An unfinished run saved under one config is refused, naming the difference, when the
    protocol's config has changed since; --restart (resume=False) starts it again."""
    runner.train("toy", max_minutes=0, show_progress=False)                    # stops after its first epoch
    monkeypatch.setitem(registry._PROTOCOLS, "toy", Protocol("toy", "toy", dict(TOY, lr=5e-3), toy_build, toy_items,
                                                             toy_loss, toy_eval, ["s0"]))
    with pytest.raises(checkpoints.CheckpointError, match=r"another config \(lr: 0.005 expected, 0.01"):
        runner.train("toy", show_progress=False)
    with pytest.raises(checkpoints.CheckpointError, match="another config"):
        runner.train("toy", train_more=False, show_progress=False)             # --finalize refuses it too
    assert runner.train("toy", resume=False, show_progress=False).status == "complete"


def test_a_run_trained_on_one_machine_is_evaluated_on_another(ckpt_dir, toy, monkeypatch):
    """--train-only keeps the finished run's state (no record); --finalize on another machine, from
    the weights alone (the optimizer dropped to carry it), writes a complete checkpoint equal to an
    uninterrupted run, and the record names the machine that trained it and the one that evaluated it."""
    full = runner.train("toy", show_progress=False)
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    assert runner.train("toy", show_progress=False, evaluate=False) is None
    assert not (ckpt_dir / "second" / "toy.json").exists()
    state = checkpoints.load_state("toy")
    assert state["epoch"] == 4 and state["hardware"] == checkpoints.hardware()
    checkpoints.save_state("toy", {**{k: v for k, v in state.items() if k not in ("optimizer", "scheduler")},
                                   "hardware": "the GPU machine", "device": "cuda"})
    rec = runner.train("toy", train_more=False, show_progress=False)
    assert rec.status == "complete" and rec.epochs_done == 4 and checkpoints.load_state("toy") is None
    assert (rec.hardware, rec.device) == ("the GPU machine", "cuda")
    assert rec.evaluated_on == {"hardware": checkpoints.hardware(), "device": "cpu"}
    np.testing.assert_allclose(rec.loss_curve, full.loss_curve, rtol=1e-6)
    assert rec.evaluation["summary"]["mse"] == pytest.approx(full.evaluation["summary"]["mse"], rel=1e-5)


# ----------------------------------------------------------------------------- committed checkpoints


class _ScheduledLoss:
    """A loss whose weight follows the run's progress (like the fmaps consistency ramp)."""

    def __init__(self, cfg):
        self.cfg, self.epoch, self.calls, self.seen = cfg, 0, 0, []

    def start_epoch(self, epoch):
        self.epoch, self.calls = epoch, 0

    def __call__(self, model, item):
        step = self.epoch * self.cfg["epoch_size"] + self.calls
        self.calls += 1
        self.seen.append(step)
        return (1.0 + step) * torch.nn.functional.mse_loss(model(item[0]), item[1])


def test_epoch_size_and_schedule_survive_a_resume(ckpt_dir, monkeypatch):
    """Epochs of ``epoch_size`` items drawn from a longer list, and a loss scheduled on the global
    step: a run stopped after one epoch and resumed takes the same steps as an uninterrupted one."""
    cfg = dict(TOY, epochs=3, epoch_size=2)
    losses = []

    def loss(c):
        losses.append(_ScheduledLoss(c))
        return losses[-1]

    proto = Protocol("toy2", "toy, epochs of 2 of 6 items", cfg, toy_build, toy_items, loss, toy_eval, ["s0"])
    monkeypatch.setitem(registry._PROTOCOLS, "toy2", proto)
    full = runner.train("toy2", show_progress=False)
    assert full.steps_done == 6 and len(full.loss_curve) == 3
    assert losses[-1].seen[-6:] == [0, 1, 2, 3, 4, 5]             # the schedule saw every global step once
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    runner.train("toy2", max_minutes=0, show_progress=False)          # stops after its first epoch
    done = runner.train("toy2", show_progress=False)
    assert losses[-1].seen[-4:] == [2, 3, 4, 5]                     # resumed at global step 2
    np.testing.assert_allclose(done.loss_curve, full.loss_curve, rtol=1e-6)


def test_each_sitting_of_a_resumed_run_is_recorded(ckpt_dir, toy):
    """A run stopped and resumed keeps one segment per sitting (machine, device, epochs, seconds) in
    its state and record; a state saved before segments were kept counts as one earlier sitting."""
    runner.train("toy", max_minutes=0, evaluate=False, show_progress=False)       # sitting 1: epoch 0 -> 1
    st = checkpoints.load_state("toy")
    assert [(g["from_epoch"], g["to_epoch"]) for g in st["segments"]] == [(0, 1)]
    checkpoints.save_state("toy", {k: v for k, v in st.items() if k != "segments"})   # as an older state
    runner.train("toy", max_minutes=0, evaluate=False, show_progress=False)       # sitting 2: epoch 1 -> 2
    rec = runner.train("toy", show_progress=False)                                # sitting 3: epoch 2 -> 4
    segs = rec.segments
    assert [(g["from_epoch"], g["to_epoch"]) for g in segs] == [(0, 1), (1, 2), (2, 4)]
    assert all(g["hardware"] == checkpoints.hardware() and g["device"] == "cpu" for g in segs)
    assert sum(g["seconds"] for g in segs) == pytest.approx(rec.wall_seconds, abs=0.5)
    assert rec.trained_on() == Record(config={}, hardware=checkpoints.hardware(), device="cpu").trained_on()


def test_a_fresh_clone_resumes_a_partial_run_from_its_committed_checkpoint(ckpt_dir, toy, monkeypatch):
    """With only the committed partial checkpoint (its state and progress log are git-ignored, so a
    fresh clone lacks them) training goes on from the checkpoint's epoch and weights, at the
    learning rate the schedule has there; the record keeps the earlier sittings, marks the
    resumed one, and keeps the progress the checkpoint's record carried."""
    full = runner.train("toy", show_progress=False)
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    runner.train("toy", max_minutes=0, evaluate=False, show_progress=False)       # epoch 1
    first = runner.evaluate_state("toy")
    runner.train("toy", max_minutes=0, show_progress=False)                       # epoch 2: partial checkpoint
    part = checkpoints.load_record("toy")
    assert part.status == "partial" and part.epochs_done == 2
    checkpoints.clear_state("toy")                                              # what a fresh clone has
    lrs = []
    monkeypatch.setattr(checkpoints, "save_state", lambda name, st: lrs.append(st["optimizer"]["param_groups"][0]["lr"]))
    rec = runner.train("toy", max_minutes=0, evaluate=False, show_progress=False)  # one epoch on from the weights
    assert rec is None and lrs == [pytest.approx(TOY["lr"] * 0.5)], "epoch 3 runs at the rate of epochs 2-3 (x0.5)"
    monkeypatch.undo()
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    monkeypatch.setitem(registry._PROTOCOLS, "toy", toy)
    checkpoints.clear_state("toy")
    done = runner.train("toy", show_progress=False)
    assert done.status == "complete" and done.epochs_done == 4 and len(done.loss_curve) == 4
    np.testing.assert_allclose(done.loss_curve[:2], full.loss_curve[:2], rtol=1e-4)   # the first two epochs' curve kept
    segs = done.segments
    assert [(g["from_epoch"], g["to_epoch"]) for g in segs] == [(0, 1), (1, 2), (2, 4)]
    assert "resumed_from" not in segs[1] and "Adam" in segs[2]["resumed_from"]
    assert done.optimizer_restarts == [2] and "restarted from zero at epoch 2 " in done.describe(), \
        "a run resumed from a partial checkpoint says where Adam restarted wherever it is described"
    assert full.optimizer_restarts == [] and full.restarts_text() == "" and "restarted" not in full.describe()
    assert [e["epoch"] for e in done.progress] == [1, 2]
    assert done.progress[0]["summary"] == pytest.approx(first["evaluation"]["summary"])
    assert done.progress[1]["summary"] == pytest.approx(part.evaluation["summary"])
    assert done.wall_seconds >= part.wall_seconds
    # the partial checkpoint is refused under a changed config, naming the difference
    runner.train("toy", resume=False, max_minutes=0, show_progress=False)
    checkpoints.clear_state("toy")
    monkeypatch.setitem(registry._PROTOCOLS, "toy", Protocol("toy", "toy", dict(TOY, lr=5e-3), toy_build, toy_items,
                                                             toy_loss, toy_eval, ["s0"]))
    with pytest.raises(checkpoints.CheckpointError, match=r"another config:\n  lr: 0.005 expected"):
        runner.train("toy", show_progress=False)


def test_a_run_stops_after_the_asked_epoch_and_goes_on_from_there(ckpt_dir, toy):
    """--stop-epoch: the state stops at that epoch (no checkpoint with --train-only), a second call with the
    same stop trains nothing, evaluate_state carries the loss curve, and the run then completes as an
    uninterrupted one would."""
    assert runner.main(["train", "toy", "--stop-epoch", "2", "--train-only"]) == 0
    assert checkpoints.load_state("toy")["epoch"] == 2 and checkpoints.available() == []
    runner.train("toy", stop_epoch=2, evaluate=False, show_progress=False)         # already there: nothing to do
    assert checkpoints.load_state("toy")["epoch"] == 2
    peek = runner.evaluate_state("toy", log=False)
    assert len(peek["loss_curve"]) == 2 and all(np.isfinite(peek["loss_curve"]))
    with pytest.raises(checkpoints.CheckpointError, match="stop_epoch=0"):
        runner.train("toy", stop_epoch=0, show_progress=False)
    done = runner.train("toy", show_progress=False)
    assert done.status == "complete" and done.epochs_done == 4
    np.testing.assert_allclose(done.loss_curve[:2], peek["loss_curve"], rtol=1e-6)


def test_a_saved_state_is_scored_by_the_paper_yardstick_on_request(ckpt_dir, toy, monkeypatch, tmp_path):
    """evaluate --state --yardstick: the state scored by the protocol's yardstick as rescore scores a
    committed model, written with the commit it was scored at; refused with a message where the protocol has none."""
    runner.train("toy", stop_epoch=1, evaluate=False, show_progress=False)
    with pytest.raises(checkpoints.CheckpointError, match="no paper yardstick"):
        runner.evaluate_state("toy", yardstick=True)
    doubled = lambda model, cfg, device, subset=None: {**toy_eval(model, cfg, device, subset), "yardstick": "2x"}  # noqa: E731
    monkeypatch.setitem(registry._PROTOCOLS, "toy", dataclasses.replace(toy, yardstick=doubled))
    out = tmp_path / "state.json"
    assert runner.main(["evaluate", "toy", "--state", "--yardstick", "--no-log", "--out", str(out)]) == 0
    stored = json.loads(out.read_text())
    assert stored["paper_yardstick"]["yardstick"] == "2x" and stored["epoch"] == 1 and "git_commit" in stored
    assert stored["paper_yardstick"]["summary"] == pytest.approx(stored["evaluation"]["summary"])
    with pytest.raises(SystemExit):
        runner.main(["evaluate", "toy", "--yardstick"])            # only with --state
