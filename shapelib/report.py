"""Results tables: each notebook shows its numbers next to the paper's, and `make reproduce`
collects them into ``results/REPORT.md``.

A notebook calls :func:`results_table` once per experiment::

    report.results_table("01 Laplacians", [
        dict(quantity="sphere eigenvalue error, l ≤ 5", paper="—", ours=f"{err:.2%}", data="icosphere"),
    ])

It displays a Markdown table and, when ``SHAPELIB_RESULTS`` names a file (set by
``python -m shapelib.reproduce``), appends the rows to it as JSON lines.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import config

COLUMNS = ("quantity", "paper", "ours", "data", "scale")


def markdown_table(rows: list[dict], columns=COLUMNS) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` (missing entries shown as '—')."""
    def cell(v):
        return "—" if v is None or v == "" else str(v).replace("|", "\\|")

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(cell(r.get(c)) for c in columns) + " |\n" for r in rows)


def results_table(notebook: str, rows: list[dict], show: bool = True) -> str:
    """Show ``rows`` (dicts with quantity / paper / ours / data) and record them for REPORT.md.

    ``scale`` is filled in from :func:`shapelib.config.scale`. Returns the Markdown text.
    """
    rows = [dict(r, scale=r.get("scale", config.scale()), notebook=notebook) for r in rows]
    text = markdown_table(rows)
    sink = os.environ.get("SHAPELIB_RESULTS")
    if sink:
        with Path(sink).open("a") as fh:
            for r in rows:
                fh.write(json.dumps(r, default=str) + "\n")
    if show:
        try:
            from IPython.display import Markdown, display

            display(Markdown(text))
        except ImportError:  # pragma: no cover
            print(text)
    return text
