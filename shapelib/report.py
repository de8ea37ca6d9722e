"""Deprecated alias, kept for one release: use :mod:`shapelib.experiments.report`."""
from .experiments.report import *  # noqa: F401,F403
from .experiments.report import markdown_table, replace_rows, results_table, scrub, write_report  # noqa: F401
