"""Run-time configuration, read in ONE place: scale, device, seeds, data and cache paths.

Notebooks and library code call these helpers; nobody else parses environment variables.

Environment variables
---------------------
``SHAPELIB_SCALE``   ``lab`` | ``quick`` | ``standard`` | ``full`` (default: ``lab``, see
                     "Scales" below). ``make test`` sets ``quick``; ``make reproduce`` uses
                     :func:`batch_scale` (``full`` with CUDA, else ``lab``).
``SHAPELIB_DATA``    root of the real datasets (default: ``<repo>/data``).
``SHAPELIB_CACHE``   on-disk cache for operators and generated shapes
                     (default: ``<repo>/.cache`` in a checkout, else ``~/.cache/shapelib``).
``SHAPELIB_DEVICE``  force a torch device (``cpu``, ``cuda``, ``cuda:1`` ...).
``SHAPELIB_THREADS`` CPU threads per process for torch and the BLAS/OpenMP pools (default 1;
                     ``all`` = every core; ``0`` = leave the libraries' own defaults alone).
                     Applied when shapelib is imported (:func:`apply_thread_defaults`).

Scales
------
``lab`` (the default: ``make lab``, a bare kernel, ``python`` in the venv)
    Sizes of ``quick`` (``pick(quick, standard, full)`` returns ``quick`` unless given
    ``lab=``), so every notebook runs top to bottom in minutes on one CPU thread; numbers at the
    paper's protocol come from the trained models shipped in ``results/checkpoints`` (their
    stored records, or a re-evaluation where that is quick), never from training at the paper's
    budget in a lab.
``quick``
    The same sizes, for CI (``make test``): notebooks train their small models live and nbval
    compares the stored check outputs.
``standard`` / ``full``
    Opt-in (``SHAPELIB_SCALE=standard make lab``, or ``%env SHAPELIB_SCALE=standard`` at the top
    of a notebook): larger CPU runs (tens of minutes per notebook) / the paper's settings (GPU).
:func:`small` is True at ``lab`` and ``quick``; test ``config.scale() == "quick"`` only for
what differs between CI and a lab.

Threads
-------
The default is **one thread per process**. ``benchmarks/threads.py`` times a 6.9k-vertex
``eigsh``, a DiffusionNet and a MEPS training step and a small torch matmul loop at 1 and 2
threads, with and without CPU-burning processes beside them (``benchmarks/results/threads.json``).
On the 2-core CI/lab machine two threads were 10-120x *slower* than one when the other core was
already busy (other kernels, a background run; load average 1.7) and 6-77x slower with one burner
per core, because OpenMP/BLAS threads spin-wait for a core that is taken. On a truly idle
2-core machine two threads could at most halve the large ops (not measured: a shared lab
machine is never idle) and gain little on the small ops that dominate notebooks, so 1 is the
safe default; alone on a many-core workstation, ``export SHAPELIB_THREADS=all``.

Figures
-------
A Jupyter kernel that inherits ``MPLBACKEND=Agg`` (a headless setting meant for pytest)
would show no figure at all; importing shapelib in a kernel switches such a non-interactive
backend to the inline one (:func:`notebook_figures`). Plain Python runs are left alone.
"""
from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CacheDirError

SCALES = ("lab", "quick", "standard", "full")
#: the scale of a kernel or script that sets no SHAPELIB_SCALE (a student's JupyterLab)
DEFAULT_SCALE = "lab"

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
    """The experiment scale: ``'lab'`` (default), ``'quick'``, ``'standard'`` or ``'full'``."""
    value = os.environ.get("SHAPELIB_SCALE", "").strip().lower()
    if not value:
        return DEFAULT_SCALE
    if value not in SCALES:
        raise ValueError(
            f"SHAPELIB_SCALE={value!r} is not one of {SCALES}. Unset it (default {DEFAULT_SCALE!r}) or "
            "choose lab (minutes per notebook on one CPU thread), quick (CI), standard (CPU, tens of "
            "minutes per notebook) or full (paper settings, GPU)."
        )
    return value


def batch_scale() -> str:
    """The scale of an unattended run of every notebook (``make reproduce``) when SHAPELIB_SCALE
    is unset: ``full`` with a CUDA GPU, else ``lab`` — the paper-protocol numbers come from the
    trained models shipped with the library, so a CPU run finishes in one sitting (``standard``, hours
    on 2 cores, stays available with ``SHAPELIB_SCALE=standard``); SHAPELIB_SCALE wins when set."""
    if os.environ.get("SHAPELIB_SCALE", "").strip():
        return scale()
    return "full" if _cuda_available() else "lab"


def small() -> bool:
    """True at ``lab`` and ``quick``: the small sizes that run in minutes on one CPU thread."""
    return scale() in ("lab", "quick")


def scale_hint() -> str:
    """One line for a notebook's first cell and the ``make lab`` banner: which scale is on and how
    to change it."""
    what = {"lab": "small sizes, minutes per notebook on one CPU thread",
            "quick": "small sizes, as in the automated tests",
            "standard": "larger CPU runs, tens of minutes per notebook",
            "full": "the paper's settings, meant for a GPU"}[scale()]
    return (f"scale {scale()!r}: {what}. To change it: SHAPELIB_SCALE=standard make lab (or full, on a GPU),\n"
            "or %env SHAPELIB_SCALE=standard in a first cell, then run the notebook from the top.")


def pick(quick, standard, full=None, *, lab=None):
    """Return the value for the current scale: ``pick(2, 20, 200)`` -> 2 under ``quick``.

    ``full`` defaults to ``standard`` when omitted; ``lab`` defaults to ``quick``.
    """
    return {"quick": quick, "lab": quick if lab is None else lab, "standard": standard,
            "full": standard if full is None else full}[scale()]


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
    threads: int | None = None
    hint: str = ""  # which scale is on and how to change it (config.scale_hint)

    def __str__(self) -> str:
        threads = "library default" if self.threads is None else self.threads
        line = f"scale={self.scale}  device={self.device}  threads={threads}  data_root={self.data_root}"
        return line + ("\n" + self.hint if self.hint else "")


def run_info() -> RunInfo:
    return RunInfo(scale=scale(), device=str(device()), data_root=str(data_root()), threads=threads(),
                   hint=scale_hint())


#: the thread count used when SHAPELIB_THREADS is unset (see "Threads" in the module docstring)
DEFAULT_THREADS = 1
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


def threads() -> int | None:
    """CPU threads per process: ``$SHAPELIB_THREADS`` (an integer, ``all`` or ``0``), else
    :data:`DEFAULT_THREADS`. ``None`` (from ``0``) means: leave the libraries' defaults."""
    value = os.environ.get("SHAPELIB_THREADS", "").strip().lower()
    if not value:
        return DEFAULT_THREADS
    if value in ("all", "auto", "max"):
        return os.cpu_count() or 1
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise ValueError(
            f"SHAPELIB_THREADS={value!r} is not a thread count. Use a positive integer (1 is the "
            "default, best on a shared machine), 'all' for every core, or 0 to keep the libraries' defaults."
        )
    return n or None


def apply_thread_defaults(n: int | None = None) -> int | None:
    """Limit torch and every BLAS/OpenMP pool to ``n`` threads (default :func:`threads`).

    Pools already loaded are limited with threadpoolctl and ``torch.set_num_threads``; the
    ``*_NUM_THREADS`` variables are set so that libraries loaded later (scipy's OpenBLAS, torch,
    subprocesses) start with ``n`` threads too. Returns ``n`` (None: nothing changed).
    Called once when shapelib is imported; call it again to change the count in a running kernel.
    """
    n = threads() if n is None else int(n)
    if not n:
        return None
    for var in _THREAD_ENV:
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(n)
    return n


INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def _in_jupyter_kernel() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover
        return False
    return shell is not None and hasattr(shell, "kernel")


def notebook_figures() -> bool:
    """In a Jupyter kernel whose matplotlib backend is the non-interactive Agg (``MPLBACKEND=Agg``
    inherited from a headless environment), switch to the inline backend so figures show up in
    the notebook (and in nbconvert's HTML). Interactive choices (``%matplotlib widget``, ...) and
    plain Python runs are left alone. Returns True when it switched."""
    if not _in_jupyter_kernel():
        return False
    env = os.environ.get("MPLBACKEND", "").strip().lower()
    if "matplotlib" in sys.modules:
        import matplotlib

        current = matplotlib.rcParams._get_backend_or_none()  # None: not resolved yet
        current = (current or env).lower()
    else:
        current = env
    if current != "agg":
        return False
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    sys.modules["IPython"].get_ipython().run_line_magic("matplotlib", "inline")
    return True
