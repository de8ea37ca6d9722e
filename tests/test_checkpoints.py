"""Checkpoints (weights + training record), resumable paper-protocol runs, and the committed
checkpoints themselves: each must still reproduce the numbers its record states."""
import json
import re

import numpy as np
import pytest
import torch

from shapelib import checkpoints, protocols
from shapelib.protocols import Protocol


@pytest.fixture
def ckpt_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(tmp_path))
    return tmp_path


def _toy_build(cfg):
    torch.manual_seed(cfg["seed"])
    return torch.nn.Sequential(torch.nn.Linear(3, cfg["width"]), torch.nn.Dropout(0.2), torch.nn.Linear(cfg["width"], 1))


def _toy_items(cfg, device):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 16, 3, generator=g)
    return [(xi, xi.sum(1, keepdim=True) ** 2) for xi in x]


def _toy_loss(cfg):
    return lambda model, item: torch.nn.functional.mse_loss(model(item[0]), item[1])


def _toy_eval(model, cfg, device, subset=None):
    items = _toy_items(cfg, device)
    with torch.no_grad():
        per = {f"s{i}": {"mse": float(torch.nn.functional.mse_loss(model(x), y))} for i, (x, y) in enumerate(items)
               if subset is None or f"s{i}" in subset}
    return {"per_shape": per, "summary": {"mse": float(np.mean([v["mse"] for v in per.values()]))}}


TOY = dict(width=8, epochs=4, lr=1e-2, decay_every=2, decay=0.5, seed=3)


@pytest.fixture
def toy(monkeypatch):
    proto = Protocol("toy", "toy regression", dict(TOY), _toy_build, _toy_items, _toy_loss, _toy_eval, ["s0", "s1"])
    monkeypatch.setitem(protocols.PROTOCOLS, "toy", proto)
    return proto


def test_save_load_roundtrip_and_config_guard(ckpt_dir):
    model = _toy_build(TOY)
    checkpoints.save("m", model, {"config": TOY, "evaluation": {}})
    assert checkpoints.available() == ["m"]
    other = _toy_build({**TOY, "seed": 9})
    rec = checkpoints.load("m", other, config=TOY)
    assert rec["config"] == TOY
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(checkpoints.CheckpointError, match=r"width: 16 expected, 8 in the checkpoint"):
        checkpoints.load("m", _toy_build({**TOY, "width": 16}), config={**TOY, "width": 16})
    with pytest.raises(checkpoints.CheckpointError, match="do not fit this model"):
        checkpoints.load("m", _toy_build({**TOY, "width": 16}))            # no config given: weights checked
    with pytest.raises(checkpoints.CheckpointError, match="make train MODEL=nope"):
        checkpoints.load("nope", model)


class _Payload:
    """Stands for any pickled object (which could run code when unpickled)."""


def test_pickled_objects_are_refused(ckpt_dir):
    """weights_only loading: a .pt holding an arbitrary Python object is refused, not executed."""
    model = _toy_build(TOY)
    checkpoints.save("m", model, {"config": TOY})

    torch.save({"0.weight": _Payload()}, ckpt_dir / "m.pt")
    with pytest.raises(checkpoints.CheckpointError, match="cannot read weights"):
        checkpoints.load("m", model)


def test_resumed_run_equals_uninterrupted_run(ckpt_dir, toy, monkeypatch):
    full = protocols.train("toy", progress=False)
    assert full["status"] == "complete" and full["epochs_done"] == 4
    assert checkpoints.load_state("toy") is None                             # state removed when complete
    stamp = (ckpt_dir / "toy.pt").stat().st_mtime_ns
    protocols.train("toy", progress=False)                                   # a complete run is not retrained
    assert (ckpt_dir / "toy.pt").stat().st_mtime_ns == stamp
    w_full = {k: v.clone() for k, v in protocols.load_model("toy")[0].state_dict().items()}

    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    part = protocols.train("toy", max_minutes=0, progress=False)              # stops after its first epoch
    assert part["status"] == "partial" and part["epochs_done"] == 1
    assert checkpoints.load_state("toy")["epoch"] == 1
    done = protocols.train("toy", progress=False)                            # resumes at epoch 1
    assert done["status"] == "complete" and done["epochs_done"] == 4
    np.testing.assert_allclose(done["loss_curve"], full["loss_curve"], rtol=1e-6)
    for k, v in protocols.load_model("toy")[0].state_dict().items():
        torch.testing.assert_close(v, w_full[k], rtol=1e-6, atol=1e-7)
    assert done["evaluation"]["summary"]["mse"] == pytest.approx(full["evaluation"]["summary"]["mse"], rel=1e-5)
    rec = json.loads((ckpt_dir / "second" / "toy.json").read_text())
    for key in ("experiment", "config", "seeds", "epochs_done", "loss_curve", "evaluation", "date", "hardware",
                "wall_seconds", "git_commit"):
        assert key in rec, key


def test_an_unfinished_run_is_evaluated_from_its_state_without_writing(ckpt_dir, toy, monkeypatch, tmp_path):
    """``evaluate_state`` scores the saved state of an unfinished run as --finalize would, writes no
    checkpoint, leaves the state to resume; with no state it says how to start one."""
    with pytest.raises(checkpoints.CheckpointError, match="make train MODEL=toy"):
        protocols.evaluate_state("toy")
    protocols.train("toy", max_minutes=0, evaluate=False, progress=False)       # stops after its first epoch
    before = (ckpt_dir / "toy.state.pt").read_bytes()
    peek = protocols.evaluate_state("toy")
    assert peek["epoch"] == 1 and peek["epochs"] == 4 and peek["steps"] == 6
    assert checkpoints.available() == [] and (ckpt_dir / "toy.state.pt").read_bytes() == before
    final = protocols.train("toy", train_more=False, progress=False)           # --finalize: the same numbers
    assert final["status"] == "partial"
    assert peek["evaluation"]["summary"]["mse"] == pytest.approx(final["evaluation"]["summary"]["mse"], rel=1e-6)
    assert [e["epoch"] for e in final["progress"]] == [1] and final["progress"][0]["summary"] == peek["evaluation"]["summary"]
    assert len(checkpoints.progress_path("toy").read_text().splitlines()) == 2, "the partial checkpoint is logged too"
    out = tmp_path / "peek.json"
    assert protocols.main(["evaluate", "toy", "--state", "--out", str(out), "--no-log"]) == 0
    assert json.loads(out.read_text())["evaluation"]["summary"]["mse"] == pytest.approx(peek["evaluation"]["summary"]["mse"])
    assert len(checkpoints.progress_path("toy").read_text().splitlines()) == 2, "--no-log adds nothing to the log"
    with pytest.raises(SystemExit):
        protocols.main(["evaluate", "toy", "--no-log"])                       # only with --state
    monkeypatch.setitem(protocols.PROTOCOLS, "toy", Protocol("toy", "toy", dict(TOY, lr=5e-3), _toy_build, _toy_items,
                                                             _toy_loss, _toy_eval, ["s0"]))
    with pytest.raises(checkpoints.CheckpointError, match="another config"):
        protocols.evaluate_state("toy")


def test_the_record_of_a_finished_run_keeps_its_progress_evaluations(ckpt_dir, toy):
    """Each evaluation of a saved state goes into the run's progress log; the finished run's record
    carries them in epoch order (the latest of an epoch evaluated twice), the log goes with the
    state, a restart forgets an old run's log, and a damaged log line is an error naming the file."""
    protocols.train("toy", max_minutes=0, evaluate=False, progress=False)       # epoch 1
    protocols.evaluate_state("toy")
    protocols.train("toy", max_minutes=0, evaluate=False, progress=False)       # epoch 2
    second = protocols.evaluate_state("toy")
    protocols.evaluate_state("toy", subset=["s0"])                             # a subset is not logged
    protocols.evaluate_state("toy")                                            # epoch 2 again: kept once
    assert [e["epoch"] for e in checkpoints.load_progress("toy")] == [1, 2]
    rec = protocols.train("toy", progress=False)                               # to the end
    assert rec["status"] == "complete" and [e["epoch"] for e in rec["progress"]] == [1, 2]
    assert rec["progress"][1]["summary"] == second["evaluation"]["summary"] and rec["progress"][1]["steps"] == 12
    assert not checkpoints.progress_path("toy").exists() and checkpoints.load_state("toy") is None
    protocols.train("toy", resume=False, max_minutes=0, evaluate=False, progress=False)
    protocols.evaluate_state("toy")
    protocols.train("toy", resume=False, max_minutes=0, evaluate=False, progress=False)   # --restart
    assert checkpoints.load_progress("toy") == []
    checkpoints.progress_path("toy").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(checkpoints.CheckpointError, match=r"toy.progress.jsonl, line 2"):
        checkpoints.load_progress("toy")


def test_a_run_is_not_resumed_under_another_config(ckpt_dir, toy, monkeypatch):
    """An unfinished run saved under one config is refused, naming the difference, when the
    protocol's config has changed since; --restart (resume=False) starts it again."""
    protocols.train("toy", max_minutes=0, progress=False)                    # stops after its first epoch
    monkeypatch.setitem(protocols.PROTOCOLS, "toy", Protocol("toy", "toy", dict(TOY, lr=5e-3), _toy_build, _toy_items,
                                                             _toy_loss, _toy_eval, ["s0"]))
    with pytest.raises(checkpoints.CheckpointError, match=r"another config \(lr: 0.005 expected, 0.01"):
        protocols.train("toy", progress=False)
    with pytest.raises(checkpoints.CheckpointError, match="another config"):
        protocols.train("toy", train_more=False, progress=False)             # --finalize refuses it too
    assert protocols.train("toy", resume=False, progress=False)["status"] == "complete"


def test_a_run_trained_on_one_machine_is_evaluated_on_another(ckpt_dir, toy, monkeypatch):
    """--train-only keeps the finished run's state (no record); --finalize on another machine, from
    the weights alone (the optimizer dropped to carry it), writes a complete checkpoint equal to an
    uninterrupted run, and the record names the machine that trained it and the one that evaluated it."""
    full = protocols.train("toy", progress=False)
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    assert protocols.train("toy", progress=False, evaluate=False) is None
    assert not (ckpt_dir / "second" / "toy.json").exists()
    state = checkpoints.load_state("toy")
    assert state["epoch"] == 4 and state["hardware"] == checkpoints.hardware()
    checkpoints.save_state("toy", {**{k: v for k, v in state.items() if k not in ("optimizer", "scheduler")},
                                   "hardware": "the GPU machine", "device": "cuda"})
    rec = protocols.train("toy", train_more=False, progress=False)
    assert rec["status"] == "complete" and rec["epochs_done"] == 4 and checkpoints.load_state("toy") is None
    assert (rec["hardware"], rec["device"]) == ("the GPU machine", "cuda")
    assert rec["evaluated_on"] == {"hardware": checkpoints.hardware(), "device": "cpu"}
    np.testing.assert_allclose(rec["loss_curve"], full["loss_curve"], rtol=1e-6)
    assert rec["evaluation"]["summary"]["mse"] == pytest.approx(full["evaluation"]["summary"]["mse"], rel=1e-5)


# ----------------------------------------------------------------------------- committed checkpoints

COMMITTED = checkpoints.available()
MACHINE_PATH = re.compile(r"(/work/|/root/|/home/|/tmp/|[A-Z]:\\\\)")


@pytest.mark.parametrize("name", COMMITTED or [pytest.param("none", marks=pytest.mark.skip("no committed checkpoint"))])
def test_committed_checkpoint_reproduces_its_record(name):
    """Evaluating the committed weights on the protocol's check shapes reproduces the record."""
    proto = protocols.get(name)
    pt = checkpoints.directory() / f"{name}.pt"
    assert pt.stat().st_size <= checkpoints.MAX_BYTES
    text = (checkpoints.directory() / f"{name}.json").read_text()
    assert not MACHINE_PATH.search(text), "a committed record must not carry machine paths"
    ok, why = proto.available()
    if not ok:
        pytest.skip(why)
    model, record = protocols.load_model(name)
    out = proto.evaluate(model, proto.config, torch.device("cpu"), proto.check_shapes)["per_shape"]
    assert set(out) == set(proto.check_shapes)
    for shape_id, numbers in out.items():
        stored = record["evaluation"]["per_shape"][shape_id]
        for key, value in numbers.items():
            assert value == pytest.approx(stored[key], rel=2e-3, abs=2e-3), f"{name} {shape_id} {key}"


def test_committed_checkpoints_fit_the_size_budget():
    total = sum(p.stat().st_size for p in checkpoints.directory().glob("*.pt")) if checkpoints.directory().is_dir() else 0
    assert total <= 80 * 2**20


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

    proto = Protocol("toy2", "toy, epochs of 2 of 6 items", cfg, _toy_build, _toy_items, loss, _toy_eval, ["s0"])
    monkeypatch.setitem(protocols.PROTOCOLS, "toy2", proto)
    full = protocols.train("toy2", progress=False)
    assert full["steps_done"] == 6 and len(full["loss_curve"]) == 3
    assert losses[-1].seen[-6:] == [0, 1, 2, 3, 4, 5]             # the schedule saw every global step once
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    protocols.train("toy2", max_minutes=0, progress=False)          # stops after its first epoch
    done = protocols.train("toy2", progress=False)
    assert losses[-1].seen[-4:] == [2, 3, 4, 5]                     # resumed at global step 2
    np.testing.assert_allclose(done["loss_curve"], full["loss_curve"], rtol=1e-6)


@pytest.mark.parametrize("schedule, expected", [(dict(decay_every=2, decay=0.5), [2, 4, 6]),
                                                (dict(decay_every=1, decay=0.5, min_lr=0.3), [1, 2]),
                                                (dict(decay_every=3, decay=0.1), [3, 6]), ({}, [])])
def test_lr_drops_are_the_epochs_where_fit_lowered_the_learning_rate(schedule, expected):
    """train.lr_drops reads a schedule as fit() applies it: the epochs whose learning rate (in the
    optimizer state fit hands to its checkpoint callback) is below the previous epoch's, with
    min_lr's floor; fmaps_eval.lr_drop_steps turns them into steps."""
    from shapelib.fmaps_eval import lr_drop_steps
    from shapelib.train import fit, lr_drops

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    items = [torch.randn(2) for _ in range(3)]
    lrs = [1.0]                                       # the learning rate of epoch 0, then after each epoch

    def keep(state):
        lrs.append(state["optimizer"]["param_groups"][0]["lr"])
        return False

    fit(model, items, lambda m, x: m(x).pow(2).sum(), epochs=7, lr=1.0, progress=False, checkpoint=keep, **schedule)
    seen = [e for e in range(1, 7) if lrs[e] < lrs[e - 1] - 1e-12]
    cfg = {"lr": 1.0, "epoch_size": 3, **schedule}
    assert seen == expected
    assert lr_drops(cfg, 7) == seen
    assert lr_drop_steps({"config": cfg, "epochs_done": 7}) == [3 * e for e in seen]


def test_lr_drops_of_the_committed_fmaps_runs():
    """The short fmaps run lowered its learning rate once, after 1,100 of its 2,200 steps; the whole
    budget lowers it after 15,800 of 31,600 steps, and a run stopped before then has not."""
    from shapelib.fmaps_eval import lr_drop_steps
    from shapelib.protocol_defs import FM_CONFIG, FM_FULL_CONFIG

    assert lr_drop_steps({"config": FM_CONFIG, "epochs_done": FM_CONFIG["epochs"]}) == [1100]
    assert lr_drop_steps({"config": FM_FULL_CONFIG, "epochs_done": FM_FULL_CONFIG["epochs"]}) == [15800]
    assert lr_drop_steps({"config": FM_FULL_CONFIG, "epochs_done": 158}) == []


def test_fmaps_protocol_config_maps_onto_its_training_preset():
    """The fmaps protocol trains with the config it records: every named setting reaches
    FmapTrainConfig (the public code's preset: relative σ, K² normalisation, clipping), and an
    unknown preset is refused with its name."""
    from shapelib.fmaps import FmapTrainConfig
    from shapelib.protocol_defs import FM_CONFIG, fm_train_config

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
    from shapelib import protocol_defs
    from shapelib.protocol_defs import FM_CONFIG, FM_FULL_CONFIG

    full = protocols.get("fmaps_faust_r_unsupervised_full").config
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
    from shapelib import protocol_defs
    from shapelib.protocol_defs import FM_FULL_CONFIG, FM_FULL_DECIMATED_CONFIG

    proto = protocols.get("fmaps_faust_r_unsupervised_full_decimated")
    full = protocols.get("fmaps_faust_r_unsupervised_full")
    dec = proto.config
    assert dec is FM_FULL_DECIMATED_CONFIG
    assert {k for k in dec if dec[k] != FM_FULL_CONFIG.get(k)} == {"train_faces", "train"}
    assert dec["train_faces"] == 3000 and dec["test"] == FM_FULL_CONFIG["test"]
    assert proto.evaluate is full.evaluate and proto.check_shapes == full.check_shapes

    seen = []
    monkeypatch.setattr("shapelib.data.synthetic.decimate", lambda shape, n: seen.append(n) or f"{shape}@{n}")
    monkeypatch.setattr(protocol_defs, "fm_shape_data", lambda shape, cfg, device: shape)
    monkeypatch.setattr("shapelib.data.real.r_dataset",
                        lambda name, names: [type("Item", (), {"shape": n})() for n in names])
    items = protocol_defs._fm_items(dec, "cpu")
    assert len(items) == 3160 and seen == [3000] * 80
    assert all(a.endswith("@3000") and b.endswith("@3000") for a, b in items)


def test_table5_protocol_trains_on_inputs_rotated_about_the_vertical():
    """The paper's Table 5 augmentation reaches the loss: each step sees the xyz inputs rotated
    about y (heights and distances to the y axis kept, x/z changed)."""
    from shapelib.protocol_defs import T5_CONFIG, _t5_loss

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


def test_gradient_clipping_by_norm_and_by_value():
    """``clip_mode="value"`` (the scalable-fmaps code) clips every entry to [-1, 1] and keeps the
    small ones; ``"norm"`` rescales the whole gradient to norm 1; another mode is refused."""
    from shapelib.train import clip_gradients

    def grads(mode):
        p = torch.nn.Parameter(torch.zeros(3))
        p.grad = torch.tensor([3.0, -0.5, 0.2])
        clip_gradients([p], 1.0, mode)
        return p.grad

    torch.testing.assert_close(grads("value"), torch.tensor([1.0, -0.5, 0.2]))
    g = grads("norm")
    assert float(g.norm()) == pytest.approx(1.0, rel=1e-5) and float(g[0] / g[1]) == pytest.approx(-6.0)
    with pytest.raises(ValueError, match="clip"):
        grads("max")


def test_trained_on_names_the_gpu_or_the_cpu_threads():
    gpu = {"hardware": "x86_64 · 16 cores · 2 torch threads · NVIDIA H200 · Python 3.12.3 · torch 2.11.0", "device": "cuda"}
    assert checkpoints.trained_on(gpu) == "one NVIDIA H200 GPU"
    cpu = {"hardware": "x86_64 · 2 cores · 1 torch threads · no GPU · Python 3.11.7 · torch 2.13.0+cpu", "device": "cpu"}
    assert checkpoints.trained_on(cpu) == "1 CPU thread"
    assert checkpoints.trained_on(dict(cpu, hardware=cpu["hardware"].replace("1 torch", "2 torch"))) == "2 CPU threads"
    # a run resumed elsewhere names each machine in order, once per change
    assert checkpoints.trained_on({**gpu, "segments": [cpu, cpu, gpu]}) == "1 CPU thread, then one NVIDIA H200 GPU"


def test_each_sitting_of_a_resumed_run_is_recorded(ckpt_dir, toy):
    """A run stopped and resumed keeps one segment per sitting (machine, device, epochs, seconds) in
    its state and record; a state saved before segments were kept counts as one earlier sitting."""
    protocols.train("toy", max_minutes=0, evaluate=False, progress=False)       # sitting 1: epoch 0 -> 1
    st = checkpoints.load_state("toy")
    assert [(g["from_epoch"], g["to_epoch"]) for g in st["segments"]] == [(0, 1)]
    checkpoints.save_state("toy", {k: v for k, v in st.items() if k != "segments"})   # as an older state
    protocols.train("toy", max_minutes=0, evaluate=False, progress=False)       # sitting 2: epoch 1 -> 2
    rec = protocols.train("toy", progress=False)                                # sitting 3: epoch 2 -> 4
    segs = rec["segments"]
    assert [(g["from_epoch"], g["to_epoch"]) for g in segs] == [(0, 1), (1, 2), (2, 4)]
    assert all(g["hardware"] == checkpoints.hardware() and g["device"] == "cpu" for g in segs)
    assert sum(g["seconds"] for g in segs) == pytest.approx(rec["wall_seconds"], abs=0.5)
    assert checkpoints.trained_on(rec) == checkpoints.trained_on({"hardware": checkpoints.hardware(), "device": "cpu"})


def test_a_fresh_clone_resumes_a_partial_run_from_its_committed_checkpoint(ckpt_dir, toy, monkeypatch):
    """With only the committed partial checkpoint (its state and progress log are git-ignored, so a
    fresh clone lacks them) training goes on from the checkpoint's epoch and weights, at the
    learning rate the schedule has there; the record keeps the earlier sittings, marks the
    resumed one, and keeps the progress the checkpoint's record carried."""
    full = protocols.train("toy", progress=False)
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    protocols.train("toy", max_minutes=0, evaluate=False, progress=False)       # epoch 1
    first = protocols.evaluate_state("toy")
    protocols.train("toy", max_minutes=0, progress=False)                       # epoch 2: partial checkpoint
    part = checkpoints.load_record("toy")
    assert part["status"] == "partial" and part["epochs_done"] == 2
    checkpoints.clear_state("toy")                                              # what a fresh clone has
    lrs = []
    monkeypatch.setattr(checkpoints, "save_state", lambda name, st: lrs.append(st["optimizer"]["param_groups"][0]["lr"]))
    rec = protocols.train("toy", max_minutes=0, evaluate=False, progress=False)  # one epoch on from the weights
    assert rec is None and lrs == [pytest.approx(TOY["lr"] * 0.5)], "epoch 3 runs at the rate of epochs 2-3 (x0.5)"
    monkeypatch.undo()
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt_dir / "second"))
    monkeypatch.setitem(protocols.PROTOCOLS, "toy", toy)
    checkpoints.clear_state("toy")
    done = protocols.train("toy", progress=False)
    assert done["status"] == "complete" and done["epochs_done"] == 4 and len(done["loss_curve"]) == 4
    np.testing.assert_allclose(done["loss_curve"][:2], full["loss_curve"][:2], rtol=1e-4)   # the first two epochs' curve kept
    segs = done["segments"]
    assert [(g["from_epoch"], g["to_epoch"]) for g in segs] == [(0, 1), (1, 2), (2, 4)]
    assert "resumed_from" not in segs[1] and "Adam" in segs[2]["resumed_from"]
    assert [e["epoch"] for e in done["progress"]] == [1, 2]
    assert done["progress"][0]["summary"] == pytest.approx(first["evaluation"]["summary"])
    assert done["progress"][1]["summary"] == pytest.approx(part["evaluation"]["summary"])
    assert done["wall_seconds"] >= part["wall_seconds"]
    # the partial checkpoint is refused under a changed config, naming the difference
    protocols.train("toy", resume=False, max_minutes=0, progress=False)
    checkpoints.clear_state("toy")
    monkeypatch.setitem(protocols.PROTOCOLS, "toy", Protocol("toy", "toy", dict(TOY, lr=5e-3), _toy_build, _toy_items,
                                                             _toy_loss, _toy_eval, ["s0"]))
    with pytest.raises(checkpoints.CheckpointError, match=r"another config:\n  lr: 0.005 expected"):
        protocols.train("toy", progress=False)


@pytest.mark.parametrize("schedule", [dict(decay_every=2, decay=0.5), dict(decay_every=1, decay=0.5, min_lr=2e-3)])
def test_fit_resumed_from_weights_alone_runs_at_the_schedules_rate(schedule):
    """``fit(resume={... "optimizer": None, "scheduler": None})`` starts at the learning rate an
    uninterrupted run has at that epoch (StepLR, and LambdaLR with a floor), and follows it on."""
    from shapelib.train import fit

    def lrs(resume=None):
        seen = []
        model = _toy_build(TOY)
        fit(model, _toy_items(TOY, "cpu"), _toy_loss(TOY), epochs=5, lr=1e-2, progress=False, resume=resume,
            checkpoint=lambda st: seen.append(st["optimizer"]["param_groups"][0]["lr"]) or False, **schedule)
        return seen

    whole = lrs()
    assert len(set(whole)) > 1, "the schedule changes the rate"
    assert lrs({"epoch": 3, "optimizer": None, "scheduler": None, "loss": [0.0] * 3}) == pytest.approx(whole[3:])


def test_table5_rows_say_what_differs_from_the_paper():
    """The REPORT rows of Table 5 checkpoints: 'paper' only at the paper's settings, otherwise each
    difference named; the graph baseline is marked as a baseline with no paper value."""
    from shapelib import protocol_defs as pd

    summary = {k: {"mean": 1.0, "median": 1.0, "std": 0.1, "n": 20, "paper": p, "accuracy": 50.0} for k, p in pd.T5_PAPER.items()}
    rec = {"config": dict(pd.T5_CONFIG), "status": "complete", "epochs_done": 200, "seeds": [0],
           "evaluation": {"summary": summary}, "hardware": "x · 16 cores · 2 torch threads · NVIDIA H200 · P", "device": "cuda"}
    assert pd.t5_differs(rec) == []
    small = dict(rec, config=dict(pd.T5_CONFIG, width=128), status="partial", epochs_done=23)
    assert pd.t5_differs(small) == ["width 128 (paper 256)", "stopped at epoch 23 of 200 (partial)"]
    rows = pd.t5_report_rows({"diffusionnet_faust_table5": rec, pd.T5_GRAPH: rec})
    assert len(rows) == 10
    assert rows[0]["protocol"].startswith("paper (200 epochs on one NVIDIA H200 GPU)")
    assert [r["paper_value"] for r in rows[:5]] == list(pd.T5_PAPER.values())
    assert all(r["paper_value"] is None and r["protocol"].startswith("baseline") for r in rows[5:])
    assert pd.t5_report_rows({"diffusionnet_faust_table5": small})[0]["protocol"].startswith("reduced: width 128")


def _readme_checkpoint_rows():
    """``{names: (trained, ours, paper)}`` from the README's table of committed checkpoints."""
    text = (checkpoints.directory().parent.parent / "README.md").read_text()
    protocols._load_all()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = tuple(re.findall(r"`([a-z0-9_]+)`", cells[0])) if len(cells) == 5 else ()
        if names and all(n in protocols.PROTOCOLS for n in names):
            rows[names] = (cells[1], cells[3], cells[4])
    return rows


def _formats(value) -> set:
    return {f"{value:.2f}", f"{value:.1f}", f"{value:g}"}


def test_readme_table_states_each_committed_checkpoints_record():
    """The README's table of committed checkpoints lists every one of them, and every number it
    gives (test results, the paper's, training minutes) is its record's, as rounded there."""
    if not checkpoints.directory().is_dir() or not checkpoints.available():
        pytest.skip("no committed checkpoints")
    rows = _readme_checkpoint_rows()
    listed = {n for names in rows for n in names}
    assert listed == set(checkpoints.available()), f"README table lists {sorted(listed)}"
    for names, (trained, ours, paper) in rows.items():
        records = [checkpoints.load_record(n) for n in names]
        ours_ok, paper_ok = set(), set()
        for rec in records:
            for stats in rec["evaluation"]["summary"].values():
                for key in ("mean", "median"):
                    ours_ok |= _formats(stats[key])
                if "paper" in stats:            # a map the paper reports (fmaps: the network output only)
                    paper_ok |= _formats(stats["paper"])
        for number in re.findall(r"\d+\.\d+|\d+", ours):
            assert number in ours_ok, f"README row {names}: {number} is not in the records {names}"
        for number in re.findall(r"\d+\.\d+|\d+", paper):
            assert number in paper_ok, f"README row {names}: paper value {number} is not the records'"
        minutes = [float(m) for m in re.findall(r"(\d+(?:\.\d+)?)(?= (?:/ \d+(?:\.\d+)? )*min)", trained)]
        assert minutes, f"README row {names}: the training time is missing"
        for m, rec in zip(minutes, records):
            assert abs(m - rec["wall_seconds"] / 60) <= 0.5, f"README row {names}: {m} min, record {rec['wall_seconds'] / 60:.1f}"
        where = {checkpoints.trained_on(rec) for rec in records}
        assert all(w in trained for w in where), f"README row {names}: trained on {where}, README says {trained!r}"
