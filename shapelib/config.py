"""Run-time configuration, read in ONE place: scale, device, seeds, data and cache paths.

Notebooks and library code call these helpers; nobody else parses environment variables.

Environment variables
---------------------
``SHAPELIB_SCALE``   ``quick`` | ``standard`` | ``full`` (default: ``full`` when CUDA is
                     available, else ``standard``). ``make test`` sets ``quick``.
``SHAPELIB_DATA``    root of the real datasets (default: ``<repo>/data``).
``SHAPELIB_CACHE``   on-disk cache for operators and generated shapes
                     (default: ``<repo>/.cache`` in a checkout, else ``~/.cache/shapelib``).
``SHAPELIB_DEVICE``  force a torch device (``cpu``, ``cuda``, ``cuda:1`` ...).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCALES = ("quick", "standard", "full")

#: the repository root when shapelib is used from a checkout (editable install), else None
REPO_ROOT: Path | None = Path(__file__).resolve().parent.parent
if not (REPO_ROOT / "pyproject.toml").exists():  # installed as a regular package
    REPO_ROOT = None


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch missing or broken
        return False


def scale() -> str:
    """The experiment scale: ``'quick'``, ``'standard'`` or ``'full'``."""
    value = os.environ.get("SHAPELIB_SCALE", "").strip().lower()
    if not value:
        return "full" if _cuda_available() else "standard"
    if value not in SCALES:
        raise ValueError(
            f"SHAPELIB_SCALE={value!r} is not one of {SCALES}. "
            "Unset it or choose quick (CI), standard (CPU) or full (paper settings, GPU)."
        )
    return value


def pick(quick, standard, full=None):
    """Return the value for the current scale: ``pick(2, 20, 200)`` -> 2 under ``quick``.

    ``full`` defaults to ``standard`` when omitted.
    """
    return {"quick": quick, "standard": standard, "full": standard if full is None else full}[scale()]


def device():
    """The torch device to compute on (``SHAPELIB_DEVICE`` or CUDA when present, else CPU)."""
    import torch

    forced = os.environ.get("SHAPELIB_DEVICE")
    if forced:
        return torch.device(forced)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> int:
    """Seed python, numpy and torch (CPU and CUDA). Returns the seed."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    except ImportError:  # pragma: no cover
        pass
    return seed


def data_root() -> Path:
    """Where real datasets are looked for: ``$SHAPELIB_DATA``, else ``<repo>/data``."""
    env = os.environ.get("SHAPELIB_DATA")
    if env:
        return Path(env).expanduser().resolve()
    if REPO_ROOT is not None:
        return REPO_ROOT / "data"
    return Path.cwd() / "data"


def cache_dir() -> Path:
    """Writable cache folder for operators and generated data (created on demand)."""
    env = os.environ.get("SHAPELIB_CACHE")
    if env:
        path = Path(env).expanduser()
    elif REPO_ROOT is not None:
        path = REPO_ROOT / ".cache"
    else:
        path = Path.home() / ".cache" / "shapelib"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # read-only checkout, SHAPELIB_CACHE pointing at a file, no permission
        from .errors import CacheDirError

        origin = "SHAPELIB_CACHE" if env else "the default cache folder (SHAPELIB_CACHE is unset)"
        raise CacheDirError(
            f"Cannot create the cache folder {path} ({origin}): {type(exc).__name__}: {exc}. "
            "Fix: set SHAPELIB_CACHE to a writable folder, e.g. export SHAPELIB_CACHE=~/.cache/shapelib."
        ) from exc
    return path


@dataclass(frozen=True)
class RunInfo:
    """What produced a number: printed at the top of every notebook."""

    scale: str
    device: str
    data_root: str

    def __str__(self) -> str:
        return f"scale={self.scale}  device={self.device}  data_root={self.data_root}"


def run_info() -> RunInfo:
    return RunInfo(scale=scale(), device=str(device()), data_root=str(data_root()))
