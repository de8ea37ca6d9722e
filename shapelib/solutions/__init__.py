"""Worked solutions to the notebooks' exercises — one function per exercise, for teachers.

Each notebook exercise has a starter cell (``# YOUR CODE HERE``) and, below it, a collapsed
solution cell that calls :func:`reveal`. In Jupyter its output is a *closed* "Solution — click to
show" block, so "Run All" (which re-expands outputs) shows no answer until someone clicks it; run
the function itself to see its result, e.g. ``solutions.ex01_convergence()``.
``tests/test_solutions*.py`` run every solution (small sizes) so they keep working.

Names: ``exNN_topic`` for notebook NN, kept in ``shapelib/solutions/nbNN.py``. Sizes default to
the notebooks' quick scale.
"""
from __future__ import annotations

import html
import importlib
import inspect

MODULES = ("nb00", "nb01", "nb02", "nb03", "nb04", "nb05", "nb06")


def _solutions() -> dict:
    out = {}
    for m in MODULES:
        mod = importlib.import_module(f"{__name__}.{m}")
        out.update({n: f for n, f in vars(mod).items() if n.startswith("ex") and callable(f)
                    and getattr(f, "__module__", "") == mod.__name__})
    return out


def __getattr__(name: str):
    if name.startswith("ex"):
        sol = _solutions()
        if name in sol:
            return sol[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_solutions()))


def _html_block(name: str, src: str, show: bool) -> str:
    """A ``<details>`` block holding the highlighted source, closed unless ``show``."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        code = highlight(src, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True, nowrap=True))
    except ImportError:  # pragma: no cover - pygments comes with IPython
        code = html.escape(src)
    pre = ("margin:0.4em 0 0 0; padding:0.5em; background:#f7f7f7; border-radius:3px; "
           "white-space:pre-wrap; overflow-wrap:anywhere; font-size:0.9em; line-height:1.3")
    return (f'<details class="shapelib-solution"{" open" if show else ""}>'
            f'<summary style="cursor:pointer">Solution <code>{html.escape(name)}</code> '
            f'(click to show or hide)</summary><pre style="{pre}">{code}</pre></details>')


def reveal(name: str, show: bool = False) -> str:
    """The source of solution ``name``; returns it.

    In Jupyter it is displayed as a collapsed block ("Solution ... click to show"): running the
    cell, or "Run All", shows the answer only to whoever clicks it (``show=True``: open). The
    notebook's HTML export keeps the block and its toggle. Outside Jupyter the source is printed.
    """
    fn = _solutions().get(name)
    if fn is None:
        raise KeyError(f"no solution {name!r}; available: {', '.join(available())}")
    src = inspect.getsource(fn)
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            hint = f"solutions.reveal({name!r}, show=True) shows it"
            display({"text/html": _html_block(name, src, show),
                     "text/plain": src if show else f"[solution {name}: hidden; {hint}]"}, raw=True)
            return src
    except ImportError:  # pragma: no cover
        pass
    print(src)
    return src


def available() -> list[str]:
    """Names of all solutions, in notebook order."""
    return sorted(_solutions())
