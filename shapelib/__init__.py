"""shapelib — deep learning on 3D shapes, one notebook at a time.

Module map (mirrors the notebooks):
    config, errors, cache               run-time settings, error types, the on-disk cache
    data                                00 data: real datasets, splits by name, synthetic families
    shape, operators, geodesics, viz    01 Laplacians (geodesics: heat method and exact)
    diffusion, train                    02 DiffusionNet (feature extractor of 04 and 06)
    meps                                03 meta point signatures
    kernels, fmaps, metrics             04 functional maps, scalable ZoomOut (kernels: shared GPU layer;
                                           metrics: errors and each paper's yardstick)
    implicit                            05 deep implicit feature matching
    cpnet                               06 CPNet embeddings
    solutions                           worked solutions of the exercises, one file per notebook
    experiments                         the reproduction layer: protocols, runner, checkpoints and
                                           records, scoring, REPORT, one file per paper
                                           (`python -m shapelib.experiments`)
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
