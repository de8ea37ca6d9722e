"""Every exercise solution in shapelib.solutions runs, at small sizes, and gives the outcome the
notebook's exercise text announces."""
import numpy as np
import pytest

from shapelib import solutions


def test_every_solution_is_tested_and_revealable(capsys):
    names = solutions.available()
    assert len(names) >= 11 and all(n.startswith("ex0") for n in names)
    import re
    from pathlib import Path

    text = "".join(f.read_text() for f in Path(__file__).parent.glob("test_solutions*.py"))
    tested = set(re.findall(r"^def test_(ex\d\d_\w+)\(", text, re.M))
    assert set(names) <= tested, f"solutions without a test: {set(names) - tested}"
    assert "def ex01_convergence" in solutions.reveal("ex01_convergence")
    with pytest.raises(KeyError, match="available"):
        solutions.reveal("ex99_nothing")


def test_reveal_in_jupyter_is_a_closed_block():
    """Run All must not show answers: in a kernel, reveal() outputs a closed <details> block (the
    plain-text fallback holds no code either); show=True opens it."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('from shapelib import solutions\nsolutions.reveal("ex01_convergence");'),
        nbformat.v4.new_code_cell('solutions.reveal("ex01_convergence", show=True);'),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    closed, opened = (c.outputs for c in nb.cells)
    assert len(closed) == 1 and closed[0]["output_type"] == "display_data", closed
    html, plain = closed[0]["data"]["text/html"], closed[0]["data"]["text/plain"]
    assert html.startswith("<details") and "<details open" not in html and "ex01_convergence" in html
    assert "def" not in plain and "show=True" in plain, plain
    assert opened[0]["data"]["text/html"].startswith("<details class=\"shapelib-solution\" open")


def test_ex05_collapsed_pairs():
    x = np.random.default_rng(0).random((200, 3))
    y = x.copy()
    y[1] = y[0] + 1e-6                                  # one pair collapses
    out = solutions.ex05_collapsed_pairs(x, y)
    assert out["collapsed pairs"] == 1 and out["min distance after"] < 1e-5 < out["min distance before"]
