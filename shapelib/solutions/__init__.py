"""Worked solutions to the notebooks' exercises — one function per exercise, for teachers.

Each notebook exercise has a starter cell (``# YOUR CODE HERE``) and, below it, a collapsed
solution cell that calls :func:`reveal` to print the code of the matching function here; run
the function itself to see its result, e.g. ``solutions.ex01_convergence()``.
``tests/test_solutions*.py`` run every solution (small sizes) so they keep working.

Names: ``exNN_topic`` for notebook NN, kept in ``shapelib/solutions/nbNN.py``. Sizes default to
the notebooks' quick scale.
"""
from __future__ import annotations

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


def reveal(name: str) -> str:
    """Show the source of solution ``name`` (as a code block in Jupyter); returns it."""
    fn = _solutions().get(name)
    if fn is None:
        raise KeyError(f"no solution {name!r}; available: {', '.join(available())}")
    src = inspect.getsource(fn)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(f"```python\n{src}```"))
            return src
    except ImportError:  # pragma: no cover
        pass
    print(src)
    return src


def available() -> list[str]:
    """Names of all solutions, in notebook order."""
    return sorted(_solutions())
