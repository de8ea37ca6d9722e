"""shapelib — deep learning on 3D shapes, one notebook at a time.

Module map (mirrors the notebooks):
    shape, operators, geodesics, viz    01 Laplacians
    data                                00 data: real datasets and synthetic families
    (diffusion, meps, fmaps, kernels, implicit, cpnet follow in notebooks 02–06)
"""
from . import config
from .errors import (
    DatasetNotFoundError,
    MissingDependencyError,
    NonManifoldError,
    ShapeError,
    ShapeIOError,
    ShapelibError,
)
from .shape import Shape

__version__ = "0.1.0"

__all__ = [
    "Shape",
    "config",
    "ShapelibError",
    "ShapeError",
    "NonManifoldError",
    "ShapeIOError",
    "DatasetNotFoundError",
    "MissingDependencyError",
]
