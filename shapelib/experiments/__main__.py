"""``python -m shapelib.experiments …``: the runner's command line (:mod:`shapelib.experiments.runner`)."""
import sys

from .runner import main

sys.exit(main())
