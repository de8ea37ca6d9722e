"""Committed notebooks are stripped (small diffs, no stale numbers) except the cells whose
stored output nbval compares (``# NBVAL_CHECK_OUTPUT`` with ``keep_output`` metadata)."""
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_outputs_stripped_except_checked_cells(path):
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in metadata (run `make checks NB={path.name[:2]}`)"
    checked = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        is_check = cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")
        if is_check:
            checked += 1
            assert cell.metadata.get("keep_output"), f"{path.name} cell {i}: NBVAL_CHECK_OUTPUT cell needs keep_output metadata"
            assert cell.get("outputs"), f"{path.name} cell {i}: NBVAL_CHECK_OUTPUT cell has no stored output to compare"
            text = "".join(o.get("text", "") for o in cell.outputs)
            assert "Error" not in text, f"{path.name} cell {i}: stored output is an error"
        else:
            assert not cell.get("outputs"), f"{path.name} cell {i}: outputs not stripped (run `make strip`)"
    assert checked >= 1, f"{path.name}: no '# NBVAL_CHECK_OUTPUT' cell — every notebook checks its claims"


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ is empty"


PAPER_NOTEBOOKS = [p for p in NOTEBOOKS if p.name[:2] in ("02", "03", "04", "05", "06")]


@pytest.mark.parametrize("path", PAPER_NOTEBOOKS, ids=[p.name for p in PAPER_NOTEBOOKS])
def test_paper_notebooks_say_what_differs_from_the_paper(path):
    """Every paper notebook has a heading 'what differs from the paper' above a section that names
    its protocol choices (a reader must not have to guess which numbers are comparable)."""
    nb = nbformat.read(path, as_version=4)
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("#") and "what differs from the paper" in line.lower()]
    assert headings, f"{path.name}: no '### What differs from the paper' section"
