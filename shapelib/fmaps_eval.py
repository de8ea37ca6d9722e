"""Deprecated alias, kept for one release: ``python -m shapelib.fmaps_eval …`` (the axiomatic
ZoomOut run on FAUST_r) is now ``python -m shapelib.experiments.fmaps_axiomatic …``, and
``--update-record`` is ``python -m shapelib.experiments report``."""
import sys

from .experiments import fmaps, fmaps_axiomatic

if __name__ == "__main__":
    print("note: `python -m shapelib.fmaps_eval` is deprecated; use `python -m shapelib.experiments.fmaps_axiomatic` "
          "(and `python -m shapelib.experiments report` for --update-record).", file=sys.stderr)
    if "--update-record" in sys.argv[1:]:
        print(f"updated {fmaps.update_report()}")
    else:
        fmaps_axiomatic.main(sys.argv[1:])
