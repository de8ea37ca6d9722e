"""Deprecated alias, kept for one release: ``python -m shapelib.protocols …`` is now
``python -m shapelib.experiments …`` (:mod:`shapelib.experiments.runner`)."""
import sys

from .experiments.runner import main

if __name__ == "__main__":
    print("note: `python -m shapelib.protocols` is deprecated; use `python -m shapelib.experiments`.", file=sys.stderr)
    sys.exit(main())
