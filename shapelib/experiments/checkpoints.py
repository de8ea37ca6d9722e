"""Trained checkpoints: weights plus a JSON training record, kept under ``results/checkpoints/``.

A checkpoint ``NAME`` is two files:

* ``NAME.pt`` — the model's ``state_dict`` only (tensors; loaded with ``torch.load(...,
  weights_only=True)``, so no pickled Python object is ever executed);
* ``NAME.json`` — the training record: experiment name, the full ``config`` the model was
  built and trained with, seed(s), data (files, split), epochs/steps done, the loss curve, the
  evaluation it produced (per test shape, so that a test can reproduce it), date, hardware,
  wall time and the git commit it was trained from.

While a run is unfinished a third file ``NAME.state.pt`` holds what resuming needs (optimizer
and scheduler state, the epoch reached); it is deleted when the run completes.

    from shapelib.experiments import checkpoints
    model = build_model(cfg)
    record = checkpoints.load("diffusionnet_faust_table5", model, config=cfg)   # refuses a mismatch
    record.steps_done, record.summary("orig")["mean"]                             # a typed Record
    checkpoints.available()          # names of the committed checkpoints

``SHAPELIB_CHECKPOINTS`` overrides the folder (default ``<repo>/results/checkpoints``).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .. import config as _config
from ..errors import ShapelibError

#: size limit of one checkpoint's weights (bytes): committed files stay small
MAX_BYTES = 20 * 2**20


class CheckpointError(ShapelibError):
    """A checkpoint is missing, damaged, or does not fit the model it is loaded into."""


def directory() -> Path:
    """The folder holding the checkpoints (``SHAPELIB_CHECKPOINTS`` or ``<repo>/results/checkpoints``)."""
    env = os.environ.get("SHAPELIB_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    root = _config.REPO_ROOT or Path.cwd()
    return root / "results" / "checkpoints"


def _paths(name: str) -> tuple[Path, Path, Path]:
    d = directory()
    return d / f"{name}.pt", d / f"{name}.json", d / f"{name}.state.pt"


def available() -> list[str]:
    """Names of the checkpoints that have both weights and a record."""
    d = directory()
    return sorted(p.stem for p in d.glob("*.json") if (d / f"{p.stem}.pt").exists()) if d.is_dir() else []


def jsonable(obj):
    """A JSON-safe copy (numpy scalars/arrays and tuples become numbers and lists)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return obj.name
    return obj


#: the fields of a training record, in the order the runner writes them
RECORD_FIELDS = ("experiment", "title", "config", "seeds", "status", "epochs_done", "loss_curve", "steps_done", "data",
                 "evaluation", "date", "hardware", "device", "wall_seconds", "git_commit", "segments", "progress",
                 "evaluated_on", "evaluation_date", "evaluation_commit")


@dataclass
class Record:
    """The training record of a checkpoint (``NAME.json``), typed.

    ``config`` — the settings the model was built and trained with; ``status`` — ``"complete"``
    or ``"partial"`` (a run stopped before its budget, resumable); ``epochs_done`` /
    ``steps_done`` — how far it trained; ``evaluation`` — ``{"per_shape": {id: {...}},
    "summary": {...}}`` on its test set (:meth:`summary`); ``progress`` — the test summaries of
    saved states evaluated while it trained (the learning curve); ``segments`` — each sitting of a
    resumed run (machine, device, epochs, seconds); ``evaluated_on`` / ``evaluation_date`` /
    ``evaluation_commit`` — set when the evaluation was redone after training. Fields a record
    carries beyond these are kept in ``extra``; :meth:`to_dict` writes the fields back in the
    order they were read, so loading and saving a record changes nothing in its file.
    """

    config: dict
    experiment: str = ""
    title: str = ""
    seeds: list = field(default_factory=list)
    status: str = "complete"
    epochs_done: int = 0
    loss_curve: list = field(default_factory=list)
    steps_done: int | None = None
    data: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    date: str | None = None
    hardware: str | None = None
    device: str | None = None
    wall_seconds: float | None = None
    git_commit: str | None = None
    segments: list = field(default_factory=list)
    progress: list = field(default_factory=list)
    evaluated_on: dict | None = None
    evaluation_date: str | None = None
    evaluation_commit: str | None = None
    extra: dict = field(default_factory=dict)
    order: tuple = field(default=(), repr=False, compare=False)

    @classmethod
    def from_dict(cls, d, source: str = "record") -> "Record":
        """A record from its JSON object; ``source`` names it in errors (a missing ``config``, a
        field of the wrong type)."""
        if not isinstance(d, dict):
            raise CheckpointError(f"{source}: a training record is a JSON object, got {type(d).__name__}: restore it "
                                  "from git or retrain.")
        if "config" not in d:
            raise CheckpointError(f"{source}: the record has no 'config' (the settings the model was built from; it "
                                  f"has: {', '.join(map(str, d)) or 'nothing'}): pass the config the model was built "
                                  "from, or restore the record from git.")
        for key, kind in (("config", dict), ("evaluation", dict), ("data", dict), ("progress", list),
                          ("segments", list), ("loss_curve", list)):
            if key in d and not isinstance(d[key], kind):
                raise CheckpointError(f"{source}: field {key!r} should be a JSON {'object' if kind is dict else 'list'}, "
                                      f"got {type(d[key]).__name__}; restore the record from git or retrain.")
        known = {f.name for f in fields(cls)} - {"extra", "order"}
        return cls(**{k: v for k, v in d.items() if k in known}, extra={k: v for k, v in d.items() if k not in known},
                   order=tuple(d))

    def to_dict(self) -> dict:
        """The JSON object of this record: the fields it was read with in their order, then fields set
        since (in :data:`RECORD_FIELDS` order; empty optional ones left out), then ``extra``."""
        values = {f: getattr(self, f) for f in RECORD_FIELDS}
        optional = ("segments", "progress", "evaluated_on", "evaluation_date", "evaluation_commit")
        keys = [k for k in self.order if k in values or k in self.extra]
        keys += [k for k in RECORD_FIELDS if k not in keys and not (k in optional and not values[k])]
        keys += [k for k in self.extra if k not in keys]
        return {k: values[k] if k in values else self.extra[k] for k in keys}

    @property
    def name(self) -> str:
        return self.experiment

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def steps(self) -> int:
        """Optimisation steps the model has had: ``steps_done``, else epochs × ``epoch_size`` items."""
        if self.steps_done:
            return int(self.steps_done)
        return int(self.epochs_done * (self.config.get("epoch_size") or self.config.get("n_train") or 1))

    def summary(self, key: str | None = None) -> dict:
        """The evaluation's summary, or its entry ``key`` (a stage, discretisation or measure):
        a KeyError names the keys there are."""
        S = self.evaluation.get("summary", {})
        if key is None:
            return S
        if key not in S:
            raise KeyError(f"record {self.experiment!r} has no summary {key!r} (it has: {', '.join(S)}).")
        return S[key]

    def paper_score(self, key: str) -> dict | None:
        """The summary entry ``key`` of the model scored by its paper's own yardstick
        (``evaluation["paper_yardstick"]``, :func:`shapelib.experiments.runner.rescore`), or None."""
        return self.evaluation.get("paper_yardstick", {}).get("summary", {}).get(key)

    @property
    def per_shape(self) -> dict:
        """Per test shape (or pair) evaluation rows."""
        return self.evaluation.get("per_shape", {})

    def trained_on(self) -> str:
        """Where the model was trained, in words (:func:`trained_on`)."""
        return trained_on(self)

    @property
    def optimizer_restarts(self) -> list[int]:
        """The epochs at which the run went on from a committed partial checkpoint's weights, its
        optimiser's moment estimates restarted from zero (the ``segments`` marked ``resumed_from``;
        :func:`shapelib.experiments.runner.train`): empty for a run trained without such a break."""
        return [int(s.get("from_epoch", 0)) for s in self.segments or [] if s.get("resumed_from")]

    def restarts_text(self) -> str:
        """``'; Adam restarted at epoch 31 (…)'`` for a run with :attr:`optimizer_restarts`, else ``''``:
        appended wherever a record's training is described, so such a run never reads as uninterrupted."""
        r = self.optimizer_restarts
        if not r:
            return ""
        return (f"; Adam's moment estimates restarted from zero at epoch{'s' if len(r) > 1 else ''} "
                f"{', '.join(map(str, r))} (resumed from a committed partial checkpoint)")

    def trained_on_text(self) -> str:
        """:meth:`trained_on` and any :meth:`restarts_text`: what every description of a record's
        training says after "on" (:meth:`describe`, the REPORT protocol texts)."""
        return f"{self.trained_on()}{self.restarts_text()}"

    def describe(self) -> str:
        """One line: status, how far it trained, how long and where — e.g. ``'complete, epoch 200 of
        200 (16,000 steps), 11 min on one NVIDIA H200 GPU'`` — and any :meth:`restarts_text`."""
        steps = f" ({self.steps_done:,} steps)" if self.steps_done else ""
        wall = f", {self.wall_seconds / 60:.0f} min" if self.wall_seconds is not None else ""
        return (f"{self.status}, epoch {self.epochs_done} of {self.config.get('epochs', '?')}{steps}{wall} "
                f"on {self.trained_on_text()}")


def committed(names) -> dict[str, "Record"]:
    """The records of those of ``names`` that have a committed checkpoint, in that order."""
    have = set(available())
    return {n: load_record(n) for n in names if n in have}


def hardware() -> str:
    """Machine description for a record: CPU/GPU, core count, threads, versions (no host name or path)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()} · {os.cpu_count()} cores · {torch.get_num_threads()} torch threads · {gpu} · "
            f"Python {platform.python_version()} · torch {torch.__version__}")


def trained_on(record: "Record") -> str:
    """Where a record's model was trained, in words: ``'one NVIDIA H200 GPU'`` or ``'1 CPU thread'``
    (read from its ``device`` and from the fields of ``hardware`` in the order :func:`hardware`
    writes them: machine · cores · threads · GPU · Python · torch). A run resumed on other hardware
    (its ``segments``) lists each in order: ``'1 CPU thread, then one NVIDIA H200 GPU'``."""
    places = []
    for seg in record.segments or [{"hardware": record.hardware, "device": record.device}]:
        words = _trained_on_one(seg)
        if not places or places[-1] != words:
            places.append(words)
    return ", then ".join(places)


def _trained_on_one(record: dict) -> str:
    parts = [p.strip() for p in str(record.get("hardware", "")).split("·")]
    if str(record.get("device", "cpu")).startswith("cuda"):
        gpu = parts[3] if len(parts) > 3 else "GPU"
        return f"one {gpu}" + ("" if "GPU" in gpu else " GPU")
    threads = parts[2].split()[0] if len(parts) > 2 else "?"
    return f"{threads} CPU thread{'' if threads == '1' else 's'}"


def git_commit() -> str | None:
    """The commit the code was run from (with ``+dirty`` if the work tree had changes), or None."""
    root = _config.REPO_ROOT
    if root is None:
        return None
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "shapelib"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) or None


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _tmp(path: Path) -> Path:
    """A temporary file beside ``path``, unique to this process (two runs never share one)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save(name: str, model, record: "Record | dict") -> Path:
    """Write ``NAME.pt`` (the model's ``state_dict``) and ``NAME.json`` (``record``, which must hold
    the ``config`` the model was built from). Returns the weights' path."""
    import torch

    record = record if isinstance(record, Record) else Record.from_dict(record, f"record of checkpoint {name!r}")
    record.experiment = record.experiment or name
    pt, js, _ = _paths(name)
    pt.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = _tmp(pt)
    torch.save(state, tmp)
    size = tmp.stat().st_size
    if size > MAX_BYTES:
        tmp.unlink()
        raise CheckpointError(f"checkpoint {name!r} would be {size / 2**20:.1f} MB > {MAX_BYTES / 2**20:.0f} MB: "
                              "shrink the model or store it outside the repository.")
    os.replace(tmp, pt)
    write_record(name, record)
    return pt


def write_record(name: str, record: "Record | dict") -> Path:
    """(Re)write ``NAME.json`` atomically."""
    _, js, _ = _paths(name)
    js.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(js)
    doc = record.to_dict() if isinstance(record, Record) else record
    tmp.write_text(json.dumps(jsonable(doc), indent=1) + "\n")
    os.replace(tmp, js)
    return js


def load_record(name: str) -> Record:
    """The training :class:`Record` of checkpoint ``name``."""
    _, js, _ = _paths(name)
    if not js.exists():
        have = ", ".join(available()) or "none"
        raise CheckpointError(f"no checkpoint record {js.name} in {directory()} (available: {have}). "
                              f"Train it with `make train MODEL={name}`.")
    try:
        doc = json.loads(js.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint record {js.name} is not valid UTF-8 JSON ({exc}): restore it from git "
                              f"(`git checkout -- results/checkpoints/{js.name}`) or retrain.") from exc
    except IsADirectoryError as exc:
        raise CheckpointError(f"checkpoint record {js} is a directory, not a file: remove it and restore the "
                              "record from git.") from exc
    return Record.from_dict(doc, f"checkpoint record {js.name}")


def config_mismatch(expected: dict, stored: dict) -> list[str]:
    """Human-readable differences between two configs (``[]`` when they agree)."""
    expected, stored = jsonable(expected), jsonable(stored)
    out = []
    for key in sorted(set(expected) | set(stored)):
        if key not in stored:
            out.append(f"{key}: {expected[key]!r} expected, missing in the checkpoint")
        elif key not in expected:
            out.append(f"{key}: {stored[key]!r} in the checkpoint, not in the model's config")
        elif expected[key] != stored[key]:
            out.append(f"{key}: {expected[key]!r} expected, {stored[key]!r} in the checkpoint")
    return out


def load(name: str, model, config: dict | None = None, map_location="cpu") -> dict:
    """Load checkpoint ``name`` into ``model`` (in place) and return its record.

    ``config`` — the config ``model`` was built from; a checkpoint trained with another config
    is refused with a :class:`CheckpointError` listing the differences (so do weights whose
    tensor names or shapes do not fit the model).
    """
    import torch

    record = load_record(name)
    if config is not None:
        diff = config_mismatch(config, record.config)
        if diff:
            raise CheckpointError(f"checkpoint {name!r} was trained with another config:\n  " + "\n  ".join(diff) +
                                  "\nBuild the model from the checkpoint's own config (checkpoints.load_record(name)"
                                  ".config) or retrain with `make train MODEL=" + name + "`.")
    pt, _, _ = _paths(name)
    if not pt.exists():
        raise CheckpointError(f"checkpoint {name!r} has a record but no weights file {pt.name}: retrain with "
                              f"`make train MODEL={name}` or restore it from git.")
    try:
        state = torch.load(pt, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated file, or a pickle that weights_only refuses
        raise CheckpointError(f"cannot read weights {pt.name} ({type(exc).__name__}: {exc}). Restore it from git "
                              f"or retrain with `make train MODEL={name}`.") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights of checkpoint {name!r} do not fit this model — "
                              + " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
                              + " — build the model from the checkpoint's config.") from exc
    return record


# ----------------------------------------------------------------------------- resumable runs


def save_state(name: str, state: dict) -> Path:
    """Write the resume state of an unfinished run (optimizer, scheduler, epoch): ``NAME.state.pt``."""
    import torch

    _, _, st = _paths(name)
    st.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(st)
    torch.save(state, tmp)
    os.replace(tmp, st)
    return st


class run_lock:
    """Exclusive lock of a training run (``NAME.lock`` beside its state), held while it trains:
    a second ``make train MODEL=NAME`` started meanwhile stops at once with a :class:`CheckpointError`
    naming the process that holds it. The lock is released when the process ends, even by ``kill -9``
    (an OS file lock, ``fcntl.flock``)."""

    def __init__(self, name: str):
        self.name, self.path, self.fh = name, directory() / f"{name}.lock", None

    def __enter__(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise CheckpointError(f"{self.name}: already running (pid {holder}); wait for it to end, or stop it, "
                                  "before training this protocol again.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self.fh = fh
        return self

    def __exit__(self, *exc):
        self.fh.close()            # closing releases the lock; the file stays (an empty lock is harmless)
        return False


def load_state(name: str, map_location="cpu") -> dict | None:
    """The resume state of an unfinished run, or None when there is none."""
    import torch

    _, _, st = _paths(name)
    if not st.exists():
        return None
    try:
        return torch.load(st, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"resume state {st.name} is damaged ({type(exc).__name__}): delete it to start the run "
                              "again from scratch, or restore it from git.") from exc


def clear_state(name: str) -> None:
    """Remove the resume state and the progress log (the run is complete, or starts again)."""
    _paths(name)[2].unlink(missing_ok=True)
    progress_path(name).unlink(missing_ok=True)


def progress_path(name: str) -> Path:
    """The progress log of an unfinished run, beside its state: ``NAME.progress.jsonl``."""
    return directory() / f"{name}.progress.jsonl"


def log_progress(name: str, entry: dict) -> Path:
    """Append one evaluation of an unfinished run's saved state to its progress log."""
    path = progress_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(jsonable(entry), sort_keys=True) + "\n")
    return path


def load_progress(name: str) -> list[dict]:
    """The progress log of ``name``: one entry per evaluated epoch (the latest if one was evaluated
    twice), in epoch order; ``[]`` when there is none. A damaged line is an error naming the file."""
    path = progress_path(name)
    if not path.exists():
        return []
    by_epoch = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            by_epoch[int(entry["epoch"])] = entry
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path.name}, line {i}: not a progress entry ({type(exc).__name__}); "
                                  "delete that line or the file (it only keeps evaluations of saved states).") from exc
    return [by_epoch[k] for k in sorted(by_epoch)]
