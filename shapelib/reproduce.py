"""Deprecated alias, kept for one release: ``python -m shapelib.reproduce …`` is now
``python -m shapelib.experiments.reproduce …``."""
import sys

from .experiments.reproduce import main

if __name__ == "__main__":
    print("note: `python -m shapelib.reproduce` is deprecated; use `python -m shapelib.experiments.reproduce`.",
          file=sys.stderr)
    sys.exit(main())
