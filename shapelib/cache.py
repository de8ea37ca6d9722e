"""On-disk cache of computed arrays, keyed by a content hash and parameters.

Files are ``<cache_dir>/<kind>/<key>.npz``. A missing, truncated or otherwise unreadable
file is recomputed (and rewritten atomically), never a crash; so is a readable file that fails
the caller's ``check`` (a missing array, a wrong shape or count). A cache folder that cannot be
created (`~shapelib.errors.CacheDirError`) means computing without the cache, with a warning.
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
from .errors import CacheDirError

#: bump to invalidate every cached operator after a change of formulas
CACHE_VERSION = 1
#: the array in every cache file that lists the names of the others (checked on loading)
_MANIFEST = "__arrays__"


def cache_key(content_hash: str, params: dict) -> str:
    blob = json.dumps({"h": content_hash, "p": params, "v": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()


def cache_path(kind: str, content_hash: str, params: dict) -> Path:
    return cache_dir() / kind / f"{cache_key(content_hash, params)}.npz"


def load_npz(path: Path, check: Callable[[dict], str | None] | None = None) -> dict | None:
    """The arrays of ``path``, or None (with a warning) if it is missing, unreadable (corrupted,
    truncated, pickled objects) or fails ``check(arrays)`` — which returns a description of
    what is wrong (missing array, wrong shape) or None when the arrays are usable."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        warnings.warn(f"shapelib: cache file {path} is unreadable ({type(exc).__name__}); recomputing it.")
        return None
    listed = arrays.pop(_MANIFEST, None)  # the names save_npz wrote: every one must still be there
    lost = sorted(set(listed.tolist()) - set(arrays)) if listed is not None else []
    problem = f"missing arrays {lost}" if lost else (check(arrays) if check is not None else None)
    if problem:
        warnings.warn(f"shapelib: cache file {path} is damaged or stale ({problem}); recomputing it.")
        return None
    return arrays


def save_npz(path: Path, arrays: dict) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays, **{_MANIFEST: np.array(sorted(arrays), dtype=str)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def disk_cache(kind: str, content_hash: str, params: dict, compute: Callable[[], dict], enabled: bool = True,
               check: Callable[[dict], str | None] | None = None) -> dict:
    """Return ``compute()`` (a dict of arrays), cached under ``(kind, content_hash, params)``.

    A cached file is used only if it still holds every array it was written with and passes
    ``check`` (see `load_npz`); otherwise it is recomputed."""
    if not enabled:
        return compute()
    try:
        path = cache_path(kind, content_hash, params)
    except CacheDirError as exc:
        warnings.warn(f"shapelib: {exc} Continuing without the cache.")
        return compute()
    hit = load_npz(path, check=check)
    if hit is not None:
        return hit
    out = compute()
    try:
        save_npz(path, out)
    except OSError as exc:  # read-only disk etc.: still return the result
        warnings.warn(f"shapelib: could not write cache {path} ({exc}); continuing without cache.")
    return out
