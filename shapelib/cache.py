"""On-disk cache of computed arrays, keyed by a content hash and parameters.

Files are ``<cache_dir>/<kind>/<key>.npz``. A missing, truncated or otherwise unreadable
file is recomputed (and rewritten atomically), never a crash.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from .config import cache_dir

#: bump to invalidate every cached operator after a change of formulas
CACHE_VERSION = 1


def cache_key(content_hash: str, params: dict) -> str:
    blob = json.dumps({"h": content_hash, "p": params, "v": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()


def cache_path(kind: str, content_hash: str, params: dict) -> Path:
    return cache_dir() / kind / f"{cache_key(content_hash, params)}.npz"


def load_npz(path: Path) -> dict | None:
    """The arrays of ``path``, or None if it is missing or unreadable (corrupted, truncated)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        warnings.warn(f"shapelib: cache file {path} is unreadable ({type(exc).__name__}); recomputing it.")
        return None


def save_npz(path: Path, arrays: dict) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def disk_cache(kind: str, content_hash: str, params: dict, compute: Callable[[], dict], enabled: bool = True) -> dict:
    """Return ``compute()`` (a dict of arrays), cached under ``(kind, content_hash, params)``."""
    if not enabled:
        return compute()
    path = cache_path(kind, content_hash, params)
    hit = load_npz(path)
    if hit is not None:
        return hit
    out = compute()
    try:
        save_npz(path, out)
    except OSError as exc:  # read-only disk etc.: still return the result
        warnings.warn(f"shapelib: could not write cache {path} ({exc}); continuing without cache.")
    return out
