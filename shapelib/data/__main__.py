"""``python -m shapelib.data status`` | ``fetch NAME`` | ``info NAME``."""
from __future__ import annotations

import argparse
import sys

from . import registry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shapelib.data", description="shapelib datasets")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="table of datasets: found/missing, path searched, how to obtain")
    for cmd, text in (("fetch", "download an open dataset or print how to obtain it"),
                      ("info", "licence, source, layout of one dataset")):
        p = sub.add_parser(cmd, help=text)
        p.add_argument("name", help="dataset name, see `status`")
    args = parser.parse_args(argv)
    if args.cmd == "status":
        print(registry.status_table())
        return 0
    if args.name not in registry.DATASETS:
        print(f"unknown dataset {args.name!r}; known: {', '.join(registry.DATASETS)}", file=sys.stderr)
        return 2
    if args.cmd == "info":
        d = registry.get(args.name)
        print(f"{d.name}: {d.title}\n  official: {d.url}\n  licence: {d.licence}\n  layout: {d.layout}\n"
              f"  path searched: {d.path()} ({d.status()})\n"
              f"  how to obtain: {d.manual.format(path=d.path())}")
        return 0
    return 0 if registry.fetch(args.name) else 1


if __name__ == "__main__":
    sys.exit(main())
