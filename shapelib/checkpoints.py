"""Deprecated alias, kept for one release: use :mod:`shapelib.experiments.checkpoints`."""
from .experiments.checkpoints import *  # noqa: F401,F403
from .experiments.checkpoints import CheckpointError, Record, available, load, load_record, save  # noqa: F401
