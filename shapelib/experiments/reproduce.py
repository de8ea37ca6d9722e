"""Execute every notebook headless and write ``results/`` (``make reproduce``).

    python -m shapelib.experiments.reproduce [--out results] [--only 00 01] [--timeout 3600]
    python -m shapelib.experiments.reproduce --store-checks [--only 01]   # developers: refresh stored check outputs
    python -m shapelib.experiments.reproduce --report-only                # re-assemble REPORT.md from results/records/

For each ``notebooks/NN_*.ipynb``: runs it with nbclient (scale from ``SHAPELIB_SCALE``;
default ``standard`` on CPU, ``full`` with a CUDA GPU), saves the executed notebook as
HTML, and gathers the rows each notebook passed to :func:`shapelib.experiments.report.results_table`
into ``results/REPORT.md`` — stamped with date, scale and machine. Each notebook's run is kept
in ``results/records/NN_name.json`` (committed), so ``--only`` refreshes some notebooks and the
report still lists every notebook with its own date and scale.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from .. import config
from .report import write_report


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu} · {os.cpu_count()} cores · {gpu} · Python {platform.python_version()} · torch {torch.__version__}"


def run_notebook(path: Path, out_dir: Path, timeout: int) -> tuple[bool, float, str]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    t0 = time.time()
    ok, err = True, ""
    try:
        client.execute()
    except CellExecutionError as exc:
        ok, err = False, str(exc).splitlines()[-1] if str(exc) else repr(exc)
    elapsed = time.time() - t0
    (out_dir / "executed").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / "executed" / path.name)
    html, _ = html_exporter(out_dir).from_notebook_node(nb)
    (out_dir / f"{path.stem}.html").write_text(html)
    return ok, elapsed, err


#: MathJax 2.7's config that the local copy ships (its CDN default, TeX-AMS_CHTML, is not in the package)
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
#: parts of MathJax the exported notebooks never use (accessibility extensions, translations, SVG output)
MATHJAX_SKIP = ("a11y", "localization", "SVG")


def html_exporter(out_dir: Path):
    """An HTML exporter whose equations typeset offline: MathJax copied once from the maintained
    ``jupyter-server-mathjax`` package into ``out_dir/mathjax`` (2.8 MB, trimmed) and referenced
    relatively. Without that package, the default exporter (MathJax from a CDN: offline, the
    equations stay as raw ``$$…$$``)."""
    from nbconvert import HTMLExporter

    try:
        import jupyter_server_mathjax
    except ImportError:
        return HTMLExporter()
    target = out_dir / "mathjax"
    if not (target / "MathJax.js").exists():
        source = Path(jupyter_server_mathjax.__file__).parent / "static"
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*MATHJAX_SKIP))
    return HTMLExporter(mathjax_url=f"mathjax/MathJax.js?config={MATHJAX_CONFIG}")


def clean_metadata(nb) -> None:
    """Drop what an execution adds to a notebook's metadata: saved widget state (progress bars,
    hundreds of kB) and per-cell execution timestamps."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def store_checks(path: Path, timeout: int) -> None:
    """Execute ``path`` at quick scale and write it back with every output stripped except those
    of cells tagged ``keep_output`` (the ``# NBVAL_CHECK_OUTPUT`` cells nbval compares)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    executed = {cell.get("id"): cell for cell in nb.cells if cell.cell_type == "code"}
    # The notebook may have been edited while it ran (a long execution): write the outputs into
    # the file as it is NOW, cell by cell (matched by id and unchanged source), never the stale copy.
    current = nbformat.read(path, as_version=4)
    clean_metadata(current)
    for cell in current.cells:
        if cell.cell_type != "code":
            continue
        run = executed.get(cell.get("id"))
        if cell.metadata.get("keep_output") and run is not None and run.source == cell.source:
            # nbval needs the execution count of a reference cell
            cell.outputs = [o for o in run.outputs if o.get("output_type") == "stream" and o.get("name") == "stdout"]
            cell.execution_count = run.execution_count
        else:
            cell.execution_count = None
            cell.outputs = []
    nbformat.write(current, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results")
    ap.add_argument("--notebooks", default=str((config.REPO_ROOT or Path.cwd()) / "notebooks"))
    ap.add_argument("--only", nargs="+", help="run only notebooks whose names start with these prefixes (e.g. 00 01)")
    ap.add_argument("--timeout", type=int, default=3600, help="per-cell timeout (s)")
    ap.add_argument("--store-checks", action="store_true",
                    help="execute at quick scale and store only the NBVAL_CHECK_OUTPUT outputs in notebooks/")
    ap.add_argument("--report-only", action="store_true", help="re-assemble REPORT.md from the stored records")
    args = ap.parse_args(argv)
    if args.report_only:
        write_report(Path(args.out).resolve(), sorted(Path(args.notebooks).glob("[0-9][0-9]_*.ipynb")))
        return 0
    if args.store_checks:
        os.environ["SHAPELIB_SCALE"] = "quick"
        os.environ["MPLBACKEND"] = "Agg"
        for path in sorted(p for p in Path(args.notebooks).glob("*.ipynb") if not args.only or p.name.startswith(tuple(args.only))):
            print(f"storing check outputs of {path.name}", flush=True)
            store_checks(path, args.timeout)
        return 0

    os.environ.setdefault("SHAPELIB_SCALE", config.batch_scale())
    # figures must be captured in the executed notebooks (a global Agg backend would drop them)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    out = Path(args.out).resolve()
    records = out / "records"
    records.mkdir(parents=True, exist_ok=True)

    notebooks = all_notebooks = sorted(Path(args.notebooks).glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [p for p in notebooks if p.name.startswith(tuple(args.only))]
    print(f"reproduce: {len(notebooks)} notebooks · scale={config.scale()} · data={config.data_root()}", flush=True)
    expected = expected_seconds(records, notebooks, config.scale())
    failed, start = False, time.time()
    for k, path in enumerate(notebooks):
        left = sum(expected.get(p.stem, 0) for p in notebooks[k:])
        if left:
            print(f"  [{k + 1}/{len(notebooks)}] ETA {time.strftime('%H:%M', time.localtime(time.time() + left))} "
                  f"(~{left / 60:.0f} min left, from the last run at this scale)", flush=True)
        sink = out / f".{path.stem}.jsonl"
        sink.unlink(missing_ok=True)
        os.environ["SHAPELIB_RESULTS"] = str(sink)
        print(f"  running {path.name} ...", end=" ", flush=True)
        ok, elapsed, err = run_notebook(path, out, args.timeout)
        failed |= not ok
        print(f"{'ok' if ok else 'FAILED'} ({elapsed:.0f} s){'  ' + err if err else ''}", flush=True)
        rows = [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []
        sink.unlink(missing_ok=True)
        record = {"notebook": path.name, "ok": ok, "error": err, "seconds": round(elapsed, 1),
                  "date": time.strftime("%Y-%m-%d %H:%M %Z"), "scale": config.scale(), "machine": _machine(),
                  "real_data_found": config.data_root().is_dir(), "rows": rows}
        (records / f"{path.stem}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    write_report(out, all_notebooks)
    print(f"reproduce: {len(notebooks)} notebooks in {(time.time() - start) / 60:.1f} min", flush=True)
    return 1 if failed else 0


def expected_seconds(records: Path, notebooks, scale: str) -> dict:
    """``{notebook stem: seconds}`` of each notebook's last recorded run at ``scale`` (for the ETA)."""
    out = {}
    for path in notebooks:
        f = records / f"{path.stem}.json"
        if f.exists():
            rec = json.loads(f.read_text())
            if rec.get("scale") == scale and rec.get("ok"):
                out[path.stem] = float(rec.get("seconds", 0))
    return out


if __name__ == "__main__":
    sys.exit(main())
