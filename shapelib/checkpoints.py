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

    from shapelib import checkpoints
    model = build_model(cfg)
    record = checkpoints.load("diffusionnet_faust_table5", model, config=cfg)   # refuses a mismatch
    checkpoints.available()          # names of the committed checkpoints

``SHAPELIB_CHECKPOINTS`` overrides the folder (default ``<repo>/results/checkpoints``).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path

from . import config as _config
from .errors import ShapelibError

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


def _jsonable(obj):
    """A JSON-safe copy (numpy scalars/arrays and tuples become numbers and lists)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return obj.name
    return obj


def hardware() -> str:
    """Machine description for a record: CPU/GPU, core count, threads, versions (no host name or path)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()} · {os.cpu_count()} cores · {torch.get_num_threads()} torch threads · {gpu} · "
            f"Python {platform.python_version()} · torch {torch.__version__}")


def trained_on(record: dict) -> str:
    """Where a record's model was trained, in words: ``'one NVIDIA H200 GPU'`` or ``'1 CPU thread'``
    (read from its ``device`` and from the fields of ``hardware`` in the order :func:`hardware`
    writes them: machine · cores · threads · GPU · Python · torch). A run resumed on other hardware
    (its ``segments``) lists each in order: ``'1 CPU thread, then one NVIDIA H200 GPU'``."""
    places = []
    for seg in record.get("segments") or [record]:
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


def save(name: str, model, record: dict) -> Path:
    """Write ``NAME.pt`` (the model's ``state_dict``) and ``NAME.json`` (``record``, which must hold
    the ``config`` the model was built from). Returns the weights' path."""
    import torch

    if "config" not in record:
        raise CheckpointError(f"record of checkpoint {name!r} has no 'config': pass the config the model was built from.")
    pt, js, _ = _paths(name)
    pt.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = pt.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    if tmp.stat().st_size > MAX_BYTES:
        tmp.unlink()
        raise CheckpointError(f"checkpoint {name!r} would be {tmp.stat().st_size / 2**20:.1f} MB > "
                              f"{MAX_BYTES / 2**20:.0f} MB: shrink the model or store it outside the repository.")
    os.replace(tmp, pt)
    write_record(name, record)
    return pt


def write_record(name: str, record: dict) -> Path:
    """(Re)write ``NAME.json`` atomically."""
    _, js, _ = _paths(name)
    js.parent.mkdir(parents=True, exist_ok=True)
    tmp = js.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(record), indent=1) + "\n")
    os.replace(tmp, js)
    return js


def load_record(name: str) -> dict:
    """The JSON training record of checkpoint ``name``."""
    _, js, _ = _paths(name)
    if not js.exists():
        have = ", ".join(available()) or "none"
        raise CheckpointError(f"no checkpoint record {js.name} in {directory()} (available: {have}). "
                              f"Train it with `make train MODEL={name}`.")
    try:
        return json.loads(js.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint record {js.name} is not valid JSON ({exc}): restore it from git "
                              f"(`git checkout -- results/checkpoints/{js.name}`) or retrain.") from exc


def config_mismatch(expected: dict, stored: dict) -> list[str]:
    """Human-readable differences between two configs (``[]`` when they agree)."""
    expected, stored = _jsonable(expected), _jsonable(stored)
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
        diff = config_mismatch(config, record.get("config", {}))
        if diff:
            raise CheckpointError(f"checkpoint {name!r} was trained with another config:\n  " + "\n  ".join(diff) +
                                  "\nBuild the model from the checkpoint's own config (checkpoints.load_record(name)"
                                  "['config']) or retrain with `make train MODEL=" + name + "`.")
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
        raise CheckpointError(f"weights of checkpoint {name!r} do not fit this model: {exc}".splitlines()[0] +
                              " — build the model from the checkpoint's config.") from exc
    return record


# ----------------------------------------------------------------------------- resumable runs


def save_state(name: str, state: dict) -> Path:
    """Write the resume state of an unfinished run (optimizer, scheduler, epoch): ``NAME.state.pt``."""
    import torch

    _, _, st = _paths(name)
    st.parent.mkdir(parents=True, exist_ok=True)
    tmp = st.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, st)
    return st


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
        f.write(json.dumps(_jsonable(entry), sort_keys=True) + "\n")
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
