"""Exceptions raised by shapelib. Every message names the problem AND the fix."""
import importlib


class ShapelibError(Exception):
    """Base class of all shapelib errors."""


class ShapeError(ShapelibError, ValueError):
    """Invalid geometry: wrong array shapes, NaN/inf, bad or degenerate faces, ..."""


class NonManifoldError(ShapeError):
    """An operator that needs a manifold mesh got a non-manifold one."""


class ShapeIOError(ShapelibError, OSError):
    """A mesh / point-cloud file could not be read or written."""


class CacheDirError(ShapelibError, OSError):
    """The on-disk cache folder (``SHAPELIB_CACHE``) cannot be created or written."""


class DatasetNotFoundError(ShapelibError, FileNotFoundError):
    """A real dataset is not where shapelib looked for it."""


class MissingDependencyError(ShapelibError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, package: str | None = None, purpose: str = ""):
    """Import an optional dependency where it is used (never at package import), or raise
    :class:`MissingDependencyError` naming the pip package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module
        raise MissingDependencyError(
            f"{purpose or 'this function'} needs the optional package '{pkg}' (import {module} failed: {exc}). "
            f"Install it with: pip install {pkg}") from exc
