"""Train, resume and evaluate the paper protocols (``make train``), kept as checkpoints under ``results/checkpoints/``.

    python -m shapelib.experiments list                       # what can be trained, and its state
    python -m shapelib.experiments train [NAME ...]           # train (resumes an unfinished run, or a
                                                              #   committed partial checkpoint in a fresh clone)
    python -m shapelib.experiments train NAME --max-minutes 60  # stop cleanly after an hour (resumable)
    python -m shapelib.experiments train NAME --stop-epoch 18   # ... or after epoch 18 (to compare runs there)
    python -m shapelib.experiments train NAME --nproc 2       # data-parallel: torchrun, 2 processes (GPUs)
    python -m shapelib.experiments evaluate NAME              # re-evaluate a committed checkpoint
    python -m shapelib.experiments evaluate NAME --write      # ... and store the result in its record
    python -m shapelib.experiments evaluate NAME --state      # how far an unfinished run has got (writes nothing)
    python -m shapelib.experiments rescore NAME --write       # score it by the paper's own yardstick, into its record
    python -m shapelib.experiments report                     # rebuild the REPORT rows of the trained models

Each protocol states its ``config`` (the paper's settings, and what differs), builds its model
from that config, trains it with :func:`shapelib.train.fit` (CUDA when present, else CPU), saves
its state every epoch (a stopped run continues where it stopped) and, when done, writes the
weights and the training record (:mod:`shapelib.experiments.checkpoints`). The protocols
themselves live in the paper files (:mod:`shapelib.experiments.registry`). Its ``evaluate`` gives per-shape
numbers, so a test can check that the committed weights still reproduce their record.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np
import torch

from .. import config
from ..train import fit
from . import checkpoints, distributed, registry
from .checkpoints import CheckpointError, Record
from .registry import get, load_model, protocols


def _time_steps(model, items, loss_fn, n: int = 3) -> float:
    """Median seconds of one optimisation step (used for the up-front time estimate)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    times = []
    for i in range(n):
        t = time.perf_counter()
        loss = loss_fn(model, items[i % len(items)])
        opt.zero_grad()
        loss.backward()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    opt.zero_grad()
    return float(np.median(times[1:] if n > 1 else times))


def train(name: str, resume: bool = True, device=None, max_minutes: float | None = None, show_progress: bool = True,
          train_more: bool = True, evaluate: bool = True, world: distributed.World | None = None,
          stop_epoch: int | None = None) -> Record | None:
    """Train protocol ``name`` (resuming its unfinished run when ``resume``: from its saved state,
    or, without one, from its committed partial checkpoint — :func:`_state_from_partial`), save every epoch,
    and write the final checkpoint and record. Returns the record (``status`` says whether the
    run is ``complete`` or ``partial``, stopped by ``max_minutes`` or after epoch ``stop_epoch``: a state
    to compare with another run at the same epoch, resumable like any other). ``train_more=False`` only
    evaluates the saved unfinished run and writes it as a ``partial`` checkpoint (the run can
    still be resumed later). ``evaluate=False`` trains and keeps the saved state without
    evaluating (returns None): a run trained on one machine (a GPU) can be evaluated and written
    on another with ``train_more=False``; the record then names both machines. A second process
    training the same protocol meanwhile is refused (:class:`checkpoints.run_lock`).

    ``world``: this process's place in a data-parallel run (``make train NPROC=k``,
    :mod:`shapelib.experiments.distributed`): every process trains its share of each step, rank 0
    alone holds the lock, reads and writes the run's files and evaluates; every process returns the record."""
    world = world or distributed.World()
    with contextlib.ExitStack() as held:
        def lock() -> None:
            held.enter_context(checkpoints.run_lock(name))

        world.on_main(lock)                       # rank 0 holds it; a refusal ends every process
        return _train(name, resume, device, max_minutes, show_progress, train_more, evaluate, world, stop_epoch)


def _train(name, resume, device, max_minutes, show_progress, train_more, evaluate, world, stop_epoch=None) -> Record | None:
    proto = get(name)
    ok, why = proto.available()
    if not ok:
        raise CheckpointError(f"cannot train {name}: {why}.")
    cfg = proto.config
    if stop_epoch is not None and not 0 < stop_epoch:   # before any work
        raise CheckpointError(f"{name}: stop_epoch={stop_epoch}: give an epoch of 1 to {cfg['epochs']}.")
    if world.size > 1:
        distributed.check_batch(name, cfg, world.size)
        device = world.device
    device = torch.device(device) if device is not None else config.device()
    config.seed_everything(cfg["seed"])
    model = proto.build(cfg).to(device)
    # rank 0 reads the saved run (and may rebuild its progress log); every process gets its state
    early, state = world.on_main(lambda: _resume_point(name, cfg, model, resume, train_more))
    if early is not None:
        return early
    say = print if world.is_main else _quiet
    if state is not None:
        model.load_state_dict(state["model"])
        say(f"{name}: resuming at epoch {state['epoch']}/{cfg['epochs']}", flush=True)
    done = 0 if state is None else int(state["epoch"])
    if not train_more and state is None:
        raise CheckpointError(f"{name}: no unfinished run to finalise: train it first (make train MODEL={name}).")
    loss_curve = list(state["loss"]) if state else []
    n_items = state.get("n_items", cfg.get("n_train")) if state else None
    last = cfg["epochs"] if stop_epoch is None else min(stop_epoch, cfg["epochs"])
    if train_more and done >= last and last < cfg["epochs"]:
        say(f"{name}: already at epoch {done} (asked to stop after {stop_epoch}): nothing to train", flush=True)
    if train_more and done < last:
        items = proto.train_items(cfg, device)
        loss_fn = proto.loss(cfg)
        n_items = min(len(items), cfg.get("epoch_size") or len(items))   # items per epoch
        step = _time_steps(model, items, loss_fn)
        left = step * n_items * (cfg["epochs"] - done) / world.size
        say(f"{name}: {n_items} training items × {cfg['epochs'] - done} epochs left, {step:.2f} s/step on {device} "
            f"({torch.get_num_threads()} threads{f', {world.size} processes' if world.size > 1 else ''}) "
            f"→ about {left / 3600:.1f} h", flush=True)
        t_start = time.perf_counter()
        wall_before = float(state.get("wall_seconds", 0.0)) if state else 0.0
        machine = checkpoints.hardware()            # where this run trains: kept in its state and record
        # each sitting of a resumed run (machine, device, epochs, seconds): a run trained partly on a
        # CPU and partly on a GPU says so; a state saved before segments were kept counts as one
        segments = list((state or {}).get("segments") or [])
        if done and not segments:
            segments = [{"hardware": state.get("hardware"), "device": state.get("device"), "from_epoch": 0,
                         "to_epoch": done, "seconds": round(wall_before, 1)}]

        def save(st: dict) -> bool:
            elapsed = time.perf_counter() - t_start
            sitting = {"hardware": machine, "device": str(device), "from_epoch": done, "to_epoch": int(st["epoch"]),
                       "seconds": round(elapsed, 1)}
            if state is not None and state.get("optimizer") is None:   # resumed from weights: Adam restarted
                sitting["resumed_from"] = "partial checkpoint (Adam's moment estimates restarted from zero)"
            checkpoints.save_state(name, {**st, "n_items": n_items, "wall_seconds": wall_before + elapsed,
                                          "hardware": machine, "device": str(device), "segments": segments + [sitting],
                                          "config_json": json.dumps(checkpoints.jsonable(cfg), sort_keys=True),
                                          "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}})
            out_of_time = max_minutes is not None and elapsed > 60 * max_minutes
            return (out_of_time or st["epoch"] >= last) and st["epoch"] < cfg["epochs"]

        resume_state = None if state is None else {k: state[k] for k in ("epoch", "optimizer", "scheduler", "loss")}
        loss_curve = fit(model, items, loss_fn, epochs=cfg["epochs"], lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0),
                         decay_every=cfg.get("decay_every"), decay=cfg.get("decay", 0.5), seed=cfg["seed"], desc=name,
                         progress=show_progress and world.is_main, resume=resume_state,
                         checkpoint=lambda st: bool(world.on_main(lambda: save(st))), batch_size=cfg.get("batch_size", 1),
                         min_lr=cfg.get("min_lr"), grad_clip=cfg.get("grad_clip"), epoch_size=cfg.get("epoch_size"),
                         epoch_start=getattr(loss_fn, "start_epoch", None), betas=cfg.get("betas", (0.9, 0.999)),
                         clip_mode=cfg.get("clip_mode", "norm"), world=world if world.size > 1 else None).loss
    # rank 0 evaluates and writes the checkpoint; the others wait for it here
    return world.on_main(lambda: _finish(name, proto, cfg, model, device, evaluate, loss_curve, n_items))


def _quiet(*args, **kwargs) -> None:
    """``print`` on the processes other than rank 0 of a data-parallel run."""


def _resume_point(name: str, cfg: dict, model, resume: bool, train_more: bool) -> tuple[Record | None, dict | None]:
    """``(record, None)`` when ``name`` is already trained under ``cfg`` (nothing to do), else
    ``(None, state)``: the saved state of its unfinished run, or one made from its committed partial
    checkpoint (:func:`_state_from_partial`), or None (a new run: its old progress log is removed)."""
    state = checkpoints.load_state(name) if resume else None
    if resume and state is None and name in checkpoints.available():
        record = checkpoints.load_record(name)
        if record.complete and not checkpoints.config_mismatch(cfg, record.config):
            print(f"{name}: already trained ({record.epochs_done} epochs, {record.date}); --restart retrains it",
                  flush=True)
            return record, None
        if train_more and record.status == "partial":   # its state is gone: go on from its weights
            state = _state_from_partial(name, cfg, model, record)
    _check_state_config(name, cfg, state)         # a run is resumed only with the config it started with
    if not resume and train_more:                  # a new run: the old one's progress log no longer applies
        checkpoints.progress_path(name).unlink(missing_ok=True)
    return None, state


def _finish(name, proto, cfg, model, device, evaluate, loss_curve, n_items) -> Record | None:
    """Evaluate the saved run of ``name`` and write its checkpoint and record (partial if unfinished)."""
    final = checkpoints.load_state(name)
    if not evaluate:
        print(f"{name}: state saved at epoch {final['epoch'] if final else 0}/{cfg['epochs']} (not evaluated); "
              f"`python -m shapelib.experiments train {name} --finalize` evaluates it and writes the checkpoint", flush=True)
        return None
    epochs_done = int(final["epoch"]) if final else cfg["epochs"]
    wall = float(final["wall_seconds"]) if final else 0.0
    complete = epochs_done >= cfg["epochs"]
    model.eval()
    print(f"{name}: epoch {epochs_done}/{cfg['epochs']} — evaluating", flush=True)
    evaluation = proto.evaluate(model, cfg, device, None)
    record = Record(
        experiment=name, title=proto.title, config=cfg, seeds=[cfg["seed"]], status="complete" if complete else "partial",
        epochs_done=epochs_done, loss_curve=[round(x, 5) for x in loss_curve], steps_done=_steps(epochs_done, n_items, cfg),
        data=proto.config.get("data", {}), evaluation=evaluation, date=checkpoints.now(), hardware=checkpoints.hardware(),
        device=str(device), wall_seconds=round(wall, 1), git_commit=checkpoints.git_commit(),
        segments=list((final or {}).get("segments") or []),
        # the saved states evaluated along the way: the test error along the training
        progress=[e for e in checkpoints.load_progress(name) if e["epoch"] <= epochs_done])
    trainer = (final or {}).get("hardware"), (final or {}).get("device")
    if trainer[0] and trainer != (record.hardware, record.device):   # trained elsewhere (a GPU)
        record.hardware, record.device = trainer
        record.evaluated_on = {"hardware": checkpoints.hardware(), "device": str(device)}
    checkpoints.save(name, model, record)
    if complete:
        checkpoints.clear_state(name)
    else:                                          # a partial checkpoint is a point of the run's learning curve too
        checkpoints.log_progress(name, _progress_entry(record.epochs_done, record.steps_done, wall, evaluation))
    print(f"{name}: saved ({record.status}, {epochs_done}/{cfg['epochs']} epochs): {evaluation['summary']}", flush=True)
    return record


def _state_from_partial(name: str, cfg: dict, model, record: Record) -> dict:
    """The resume state of a run whose ``NAME.state.pt`` is gone (a fresh clone) but whose partial
    checkpoint is committed: its weights (loaded into ``model``), epoch, loss curve, wall time and
    sittings, with no optimizer or scheduler state. Training goes on from there with Adam's moment
    estimates restarted from zero (a sitting says so in the record) and the learning rate the
    schedule has at that epoch. The progress log is rebuilt from the record when it is missing."""
    checkpoints.load(name, model, config=cfg)            # refuses a checkpoint trained under another config
    epoch = int(record.epochs_done)
    print(f"{name}: no saved state; resuming from the partial checkpoint at epoch {epoch}/{cfg['epochs']} "
          "(its weights and schedule; Adam's moment estimates are not kept in a checkpoint and restart from zero)",
          flush=True)
    if not checkpoints.progress_path(name).exists():
        entries = list(record.progress)
        if record.summary() and all(e["epoch"] != epoch for e in entries):
            entries.append(_progress_entry(epoch, record.steps_done, float(record.wall_seconds or 0.0),
                                           record.evaluation, date=record.date,
                                           evaluated_on=(record.evaluated_on or {}).get("hardware", record.hardware),
                                           git_commit=record.git_commit))
        for entry in entries:
            checkpoints.log_progress(name, entry)
    return {"epoch": epoch, "optimizer": None, "scheduler": None, "loss": list(record.loss_curve),
            "wall_seconds": float(record.wall_seconds or 0.0), "segments": list(record.segments),
            "hardware": record.hardware, "device": record.device,
            "config_json": json.dumps(checkpoints.jsonable(record.config), sort_keys=True),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def _check_state_config(name: str, cfg: dict, state: dict | None) -> None:
    """Refuse a saved unfinished run that was started with another config than ``cfg``."""
    if state is None or "config_json" not in state:
        return
    diff = checkpoints.config_mismatch(cfg, json.loads(state["config_json"]))
    if diff:
        raise CheckpointError(
            f"{name}: the saved unfinished run was started with another config ({'; '.join(diff)}); "
            f"`python -m shapelib.experiments train {name} --restart` starts it again with the current one.")


def _steps(epochs: int, n_items: int | None, cfg: dict) -> int | None:
    """Optimisation steps in ``epochs`` epochs of ``n_items`` items (batches of ``cfg['batch_size']``)."""
    return epochs * -(-n_items // cfg.get("batch_size", 1)) if n_items else None


def reevaluate(name: str, write: bool = False, device="cpu") -> dict:
    """Evaluate the committed model of ``name`` on its whole test set again (the weights are not
    touched). ``write=True`` replaces the record's ``evaluation`` with the result and notes when
    and where (``evaluated_on``, ``evaluation_date``, ``evaluation_commit``); everything about the
    training (config, loss curve, date, hardware, wall time, commit) is kept. Used when the
    protocol's evaluation gains a measure; the test of the committed checkpoints then checks the
    new numbers too. Returns the evaluation."""
    proto = get(name)
    model, record = load_model(name, device)
    commit = checkpoints.git_commit()          # the code that evaluates: as it is now, before the run
    evaluation = proto.evaluate(model, proto.config, torch.device(device), None)
    if write:
        record.evaluation = evaluation
        record.evaluated_on = {"hardware": checkpoints.hardware(), "device": str(device)}
        record.evaluation_date, record.evaluation_commit = checkpoints.now(), commit
        checkpoints.write_record(name, record)
    return evaluation


def rescore(name: str, write: bool = False, device="cpu", subset=None) -> dict:
    """Score the committed model of ``name`` by its paper's own yardstick (the protocol's
    ``yardstick``: exact geodesics, the averaging and normalisation of the authors' evaluation code)
    on the whole test set or ``subset``. ``write=True`` (whole test set only) stores the result in
    the record as ``evaluation["paper_yardstick"]`` with its date and commit; the weights, the
    training fields and the protocol's own evaluation are kept. Returns the result."""
    proto = get(name)
    if proto.yardstick is None:
        raise CheckpointError(f"{name}: its protocol has no paper yardstick to score by.")
    model, record = load_model(name, device)
    commit = checkpoints.git_commit()
    out = proto.yardstick(model, proto.config, torch.device(device), subset)
    if write:
        if subset is not None:
            raise CheckpointError(f"{name}: only a whole-test-set score is written into the record.")
        record.evaluation["paper_yardstick"] = {**out, "date": checkpoints.now(), "commit": commit,
                                                "hardware": checkpoints.hardware()}
        checkpoints.write_record(name, record)
    return out


def reproduce_record(name: str, subset=None, device="cpu") -> tuple[dict, float]:
    """Evaluate the committed model of ``name`` (its whole test set, or the shape ids ``subset``) and
    compare with its record: returns ``(evaluation, drift)``, ``drift`` the largest absolute
    difference of any number a test shape has in both (0 when the weights still give the record's
    numbers). Nothing is written."""
    proto = get(name)
    model, record = load_model(name, device)
    live = proto.evaluate(model, proto.config, torch.device(device), subset)
    drift = 0.0
    for key, row in live["per_shape"].items():
        stored = record.per_shape.get(key, {})
        for field, value in row.items():
            if isinstance(value, (int, float)) and isinstance(stored.get(field), (int, float)):
                drift = max(drift, abs(float(value) - float(stored[field])))
    return live, drift


def evaluate_state(name: str, device="cpu", subset=None, log: bool = True, yardstick: bool = False) -> dict:
    """Evaluate the unfinished run of ``name`` from its saved state (``NAME.state.pt``), on the whole
    test set or ``subset``: how far a long, resumable run has got. Refuses a state saved under
    another config. Returns ``{"epoch", "epochs", "steps", "loss_curve", "wall_seconds", "hardware", "device",
    "evaluation"}`` (and ``"paper_yardstick"``, below).
    Writes no checkpoint and leaves the state as it is, so the run can be resumed afterwards; a
    whole-test-set evaluation (``log=True``) adds one line to the run's progress log
    (:func:`shapelib.experiments.checkpoints.log_progress`), which the record of the finished run carries as
    ``progress``: the test error along the training. ``yardstick=True`` also scores the state by the
    paper's own yardstick (as :func:`rescore` scores a committed model), under ``"paper_yardstick"``."""
    proto = get(name)
    if yardstick and proto.yardstick is None:
        raise CheckpointError(f"{name}: its protocol has no paper yardstick to score by.")
    state = checkpoints.load_state(name)
    if state is None:
        raise CheckpointError(
            f"{name}: no unfinished run to evaluate (no {name}.state.pt); `make train MODEL={name}` starts one, "
            f"`python -m shapelib.experiments evaluate {name}` evaluates a committed checkpoint.")
    _check_state_config(name, proto.config, state)
    model = proto.build(proto.config)
    model.load_state_dict(state["model"])
    model = model.to(device).eval()
    epoch = int(state["epoch"])
    out = {"epoch": epoch, "epochs": proto.config["epochs"], "steps": _steps(epoch, state.get("n_items"), proto.config),
           "loss_curve": [float(x) for x in state.get("loss") or []],
           "wall_seconds": float(state.get("wall_seconds", 0.0)), "hardware": state.get("hardware"),
           "device": state.get("device"), "evaluation": proto.evaluate(model, proto.config, torch.device(device), subset)}
    if yardstick:
        out["paper_yardstick"] = proto.yardstick(model, proto.config, torch.device(device), subset)
    if log and subset is None:
        checkpoints.log_progress(name, _progress_entry(epoch, out["steps"], out["wall_seconds"], out["evaluation"]))
    return out


def _progress_entry(epoch: int, steps, wall_seconds: float, evaluation: dict, date: str | None = None,
                    evaluated_on: str | None = None, git_commit: str | None = None) -> dict:
    """One line of a run's progress log: the test summary of its state at ``epoch``, and when and where
    (now, on this machine and commit, unless an earlier evaluation's ``date`` etc. are given)."""
    return {"epoch": epoch, "steps": steps, "wall_seconds": round(wall_seconds, 1), "date": date or checkpoints.now(),
            "evaluated_on": evaluated_on or checkpoints.hardware(), "git_commit": git_commit or checkpoints.git_commit(),
            "summary": evaluation["summary"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    tr = sub.add_parser("train")
    tr.add_argument("names", nargs="*")
    tr.add_argument("--restart", action="store_true", help="ignore a saved unfinished run and start from scratch")
    tr.add_argument("--max-minutes", type=float, default=None, help="stop cleanly (resumable) after this long")
    tr.add_argument("--stop-epoch", type=int, default=None,
                    help="stop cleanly (resumable) after this epoch: a state to compare with another run's at the same epoch")
    tr.add_argument("--device", default=None)
    tr.add_argument("--finalize", action="store_true",
                    help="evaluate the saved run and write its checkpoint (partial if unfinished), no more training")
    tr.add_argument("--train-only", action="store_true",
                    help="train and keep the saved state without evaluating (evaluate later with --finalize)")
    tr.add_argument("--nproc", default=None,
                    help="data-parallel over this many processes on this machine (one GPU each with CUDA, else CPU "
                         "processes), launched with torchrun; the steps stay the protocol's (make train NPROC=k)")
    tr.add_argument("--torchrun-args", default="",
                    help="torchrun's own flags, for several machines: --torchrun-args='--nnodes 2 --rdzv-backend c10d "
                         "--rdzv-endpoint HOST:29500 --rdzv-id RUN' (make train TORCHRUN_ARGS=...)")
    ev = sub.add_parser("evaluate")
    ev.add_argument("name")
    ev.add_argument("--write", action="store_true",
                    help="store the new evaluation in the committed record (the weights and training fields are kept)")
    ev.add_argument("--state", action="store_true",
                    help="evaluate the unfinished run's saved state instead (no checkpoint; the run can be resumed; "
                         "the result is added to the run's progress log, which the finished run's record keeps)")
    ev.add_argument("--out", default=None, help="with --state: also write the result to this JSON file")
    ev.add_argument("--yardstick", action="store_true",
                    help="with --state: also score the state by the paper's own yardstick (as rescore does)")
    ev.add_argument("--no-log", action="store_true",
                    help="with --state: do not add the result to the run's progress log (NAME.progress.jsonl)")
    rs = sub.add_parser("rescore", help="score a committed checkpoint by its paper's own yardstick (exact geodesics, "
                                        "the authors' averaging); --write stores it in the record")
    rs.add_argument("name")
    rs.add_argument("--write", action="store_true")
    sub.add_parser("report", help="rebuild each paper's rows of the notebook records and results/REPORT.md from "
                                  "the committed checkpoints and stored runs (no training, no evaluation)")
    args = ap.parse_args(argv)
    try:
        return _run(ap, args)
    except CheckpointError as exc:       # a one-line message, no traceback: unknown name, damaged file, lock held
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _state_line(name: str, proto) -> str:
    """What ``list`` says of one protocol's run; a damaged state or record is named, never fatal."""
    try:
        st = checkpoints.load_state(name)
        if st:
            return f"unfinished run at epoch {st['epoch']}/{proto.config['epochs']}"
        if name not in checkpoints.available():
            return "not trained"
        rec = checkpoints.load_record(name)
        return (f"checkpoint: {rec.status}, {rec.epochs_done}/{proto.config['epochs']} epochs"
                + (" (train goes on from it)" if rec.status == "partial" else ""))
    except CheckpointError as exc:
        return f"DAMAGED: {exc}"


def _launch(args, nproc: int) -> int:
    """Check a data-parallel ``train`` request (``--nproc``, ``--torchrun-args``) and replace this
    process with torchrun running the same ``train`` in ``nproc`` processes."""
    if args.finalize:
        raise CheckpointError("--finalize evaluates a saved run in one process: leave NPROC (--nproc) out.")
    names = args.names or [n for n, p in protocols().items() if p.available()[0]]
    for name in names:
        distributed.check_batch(name, get(name).config, nproc)
    distributed.check_devices(nproc, args.device)
    argv = ["train", *args.names, *(["--restart"] if args.restart else []),
            *(["--max-minutes", str(args.max_minutes)] if args.max_minutes is not None else []),
            *(["--stop-epoch", str(args.stop_epoch)] if args.stop_epoch is not None else []),
            *(["--device", args.device] if args.device else []), *(["--train-only"] if args.train_only else [])]
    cmd = distributed.launch_command(nproc, argv, args.torchrun_args)
    print("launching: " + " ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)
    return 0                                       # not reached: execv does not return


def _run(ap, args) -> int:
    if args.cmd == "rescore":
        out = rescore(args.name, write=args.write)
        print(f"{args.name} ({out['yardstick']}): {out['summary']}")
        return 0
    if args.cmd == "report":
        for paper in registry.paper_modules():
            if hasattr(paper, "update_report"):
                print(f"{paper.__name__.rsplit('.', 1)[-1]}: updated {paper.update_report()}")
        return 0
    if args.cmd == "list":
        for name, p in protocols().items():
            ok, why = p.available()
            print(f"{name:34s} {_state_line(name, p):45s} {'' if ok else '(' + why + ')'}\n    {p.title}")
        return 0
    if args.cmd == "train":
        nproc = 1 if args.nproc is None else distributed.check_nproc(args.nproc)
        if (nproc > 1 or args.torchrun_args) and not distributed.launched():
            return _launch(args, nproc)                # torchrun takes over this process
        world = distributed.from_env(args.device)      # one process, or one of torchrun's
        for name in args.names or list(protocols()):
            ok, why = get(name).available()
            if not ok:
                if world.is_main:
                    print(f"skipping {name}: {why}", flush=True)
                continue
            train(name, resume=not args.restart, device=args.device, max_minutes=args.max_minutes,
                  train_more=not args.finalize, evaluate=not args.train_only, world=world, stop_epoch=args.stop_epoch)
        distributed.leave()           # ends a torchrun worker here (after an error a process just ends: torchrun stops the others)
        return 0
    if (args.out or args.no_log or args.yardstick) and not args.state:
        ap.error("--out, --no-log and --yardstick go with --state (an unfinished run's saved state)")
    if args.state:
        if args.write:
            ap.error("--state writes nothing into the records: use --out FILE to keep its result")
        out = evaluate_state(args.name, log=not args.no_log, yardstick=args.yardstick)
        print(f"{args.name}: saved state at epoch {out['epoch']}/{out['epochs']} ({out['steps']} steps, "
              f"{out['wall_seconds'] / 3600:.1f} h on {out['hardware'] or '?'}): {out['evaluation']['summary']}")
        if args.yardstick:
            print(f"{args.name}, paper's yardstick: {out['paper_yardstick']['summary']}")
        if args.out:
            with open(args.out, "w") as f:
                json.dump(checkpoints.jsonable({"experiment": args.name, "date": checkpoints.now(),
                                                "git_commit": checkpoints.git_commit(), **out}), f, indent=1)
            print(f"wrote {args.out}")
        return 0
    out = reevaluate(args.name, write=args.write)
    print(out["summary"])
    if args.write:
        print(f"wrote the evaluation into {checkpoints.directory() / (args.name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
