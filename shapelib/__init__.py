"""shapelib — deep learning on 3D shapes, one notebook at a time.

Module map (mirrors the notebooks):
    data                                00 data: real datasets and synthetic families
    shape, operators, geodesics, viz    01 Laplacians
    diffusion, train                    02 DiffusionNet (feature extractor of 04 and 06)
    kernels, fmaps, metrics             04 functional maps, scalable ZoomOut (kernels: shared GPU layer)
    (meps, implicit, cpnet follow in notebooks 03, 05, 06)
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

# One place for run-time defaults (see shapelib.config): CPU threads per process
# ($SHAPELIB_THREADS, default 1), and figures in a Jupyter kernel that inherited MPLBACKEND=Agg.
config.apply_thread_defaults()
config.notebook_figures()

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
