"""Results tables: each notebook shows its numbers next to the paper's, and `make reproduce`
collects them into ``results/REPORT.md``.

A notebook calls :func:`results_table` once per experiment::

    report.results_table("01 Laplacians", [
        dict(quantity="sphere eigenvalue error, l ≤ 5", paper="—", ours=f"{err:.2%}", data="icosphere"),
    ])

It displays a Markdown table and, when ``SHAPELIB_RESULTS`` names a file (set by
``python -m shapelib.experiments.reproduce``), appends the rows to it as JSON lines.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .. import config

COLUMNS = ("quantity", "paper", "ours", "data", "protocol", "n", "seeds", "scale")
#: machine-readable fields a row may carry next to its text (kept in the records, not shown)
VALUE_FIELDS = ("ours_value", "paper_value", "unit", "spread")


def scrub(value):
    """``value`` with every machine path replaced by a portable name: the data root becomes
    ``$SHAPELIB_DATA``, the repository ``<repo>``, the home folder ``~`` (records and REPORT.md are
    committed and read on other machines)."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if not isinstance(value, str):
        return value
    subs = [(str(config.data_root()), "$SHAPELIB_DATA")]
    try:
        subs.append((str(config.data_root().resolve()), "$SHAPELIB_DATA"))
    except OSError:  # pragma: no cover
        pass
    if config.REPO_ROOT is not None:
        subs.append((str(config.REPO_ROOT), "<repo>"))
    subs.append((str(Path.home()), "~"))
    for old, new in sorted(set(subs), key=lambda t: -len(t[0])):
        if old and old not in ("/", "."):
            value = value.replace(old, new)
    return value


def markdown_table(rows: list[dict], columns=COLUMNS) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` (missing entries shown as '—')."""
    def cell(v):
        return "—" if v is None or v == "" else str(v).replace("|", "\\|")

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(cell(r.get(c)) for c in columns) + " |\n" for r in rows)


def results_table(notebook: str, rows: list[dict], show: bool = True) -> str | None:
    """Show ``rows`` (dicts with quantity / paper / ours / data) and record them for REPORT.md.

    Paper rows also say ``protocol`` (``'paper'``, or ``'reduced: <what differs>'``), ``n`` (test
    shapes or pairs), ``seeds``, and carry machine-readable ``ours_value``, ``paper_value``,
    ``unit`` and ``spread`` (e.g. ``{"std": 0.1, "median": 0.3}``) so a script can compare them.
    ``scale`` is filled in from :func:`shapelib.config.scale`; machine paths are replaced
    (:func:`scrub`). ``show=True`` displays the table and returns None (a notebook cell ending in
    this call would otherwise print the raw Markdown a second time); ``show=False`` returns the text.
    """
    rows = [scrub(dict(r, scale=r.get("scale", config.scale()), notebook=notebook)) for r in rows]
    text = markdown_table(rows)
    sink = os.environ.get("SHAPELIB_RESULTS")
    if sink:
        with Path(sink).open("a") as fh:
            for r in rows:
                fh.write(json.dumps(r, default=str) + "\n")
    if show:
        try:
            from IPython.display import Markdown, display

            display(Markdown(text))
        except ImportError:  # pragma: no cover
            print(text)
        return None
    return text


def per_pair_text(errors) -> str:
    """``'median M (per pair: a, b, …)'`` of a few per-pair numbers (a live, reduced row's ``ours``)."""
    e = np.asarray(errors, dtype=float)
    return f"median {np.median(e):.2f} (per pair: {', '.join(f'{x:.2f}' for x in e)})"


def spread_of(errors) -> dict:
    """``{"median", "min", "max"}`` of a few per-pair numbers (a row's ``spread``)."""
    e = np.asarray(errors, dtype=float)
    return {"median": float(np.median(e)), "min": float(e.min()), "max": float(e.max())}


def yardstick_columns(own: str, own_value: float, paper_score: dict | None, paper_yardstick: str,
                      our_yardstick: str, extra: str = "") -> tuple[str, float, str]:
    """``(ours, ours_value, protocol suffix)`` of a REPORT row whose model may also have been scored
    by its paper's yardstick (``paper_score``: that summary, with ``mean``): then the paper-yardstick
    number leads and shapelib's own metric (``own``) follows, labelled; otherwise ``own`` alone. The
    suffix names the yardstick the row's number follows (``paper_yardstick`` or ``our_yardstick``)."""
    if paper_score:
        return (f"{paper_score['mean']:.2f} (paper's yardstick{extra}); shapelib's metric: {own}", paper_score["mean"],
                f"; yardstick: {paper_yardstick}")
    return own, own_value, f"; yardstick: {our_yardstick}, not the paper's"


def replace_rows(record: str | Path, drop, rows: list[dict], notebook: str) -> Path:
    """Replace the rows of a notebook's stored record (``results/records/<nb>.json``) for which
    ``drop(row)`` is true by ``rows`` (scrubbed, stamped with the record's notebook name), and
    re-assemble results/REPORT.md — for rows that come from a committed checkpoint or a stored run,
    which the notebook builds the same way when it runs. ``notebook``: the rows' notebook name when
    the record has no row to take it from."""
    root = config.REPO_ROOT or Path.cwd()
    path = root / record
    rec = json.loads(path.read_text())
    name = next((r["notebook"] for r in rec["rows"]), notebook)
    kept = [r for r in rec["rows"] if not drop(r)]
    rec["rows"] = [scrub(dict(r, notebook=name)) for r in rows] + kept
    path.write_text(json.dumps(rec, indent=1, default=str) + "\n")
    write_report(root / "results", sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    return path


#: the headline of REPORT.md: each paper's main claim, as (paper, claim, notebook prefix, the start of
#: the REPORT row's quantity that measures it); rows not in the records are listed as not run yet
HEADLINE = (
    ("DiffusionNet", "robust to re-meshing (Table 5, re-meshed test shapes)", "02",
     "Table 5, iso: mean geodesic error ×100 (checkpoint)"),
    ("DiffusionNet", "works on point clouds (Table 5)", "02", "Table 5, cloud: mean geodesic error ×100 (checkpoint)"),
    ("DiffusionNet", "orientation-aware with complex A (Fig. 5)", "02",
     "Fig. 5, left/right accuracy, complex A (checkpoint)"),
    ("DiffusionNet", "supervised functional maps (Table 4, authors' weights)", "04",
     "Table 4, S on F: DiffusionNet-xyz network fmap"),
    ("MEPS", "meta-learned signatures beat FeaStNet (Table 1)", "03", "Table 1, MEPS w/o refinement"),
    ("Magnet & Ovsjanikov", "unsupervised fmaps with differentiable ZoomOut (Table 1, FAUST_r)", "04",
     "single-branch unsupervised model (committed checkpoint fmaps_faust_r_unsupervised_full_decimated), network out"),
    ("Magnet & Ovsjanikov", "axiomatic ZoomOut baseline (Table 1)", "04",
     "axiomatic ZoomOut on FAUST_r (WKS fmap → ZoomOut 30→110), ours"),
    ("DIFM", "best part-level deformation (Table 1, chair, arm → no-arm)", "05",
     "DIFM Table 1 goal, chair, arm → no-arm pairs"),
    ("CPNet", "learned embeddings give semantic correspondences (Table 2, chair)", "06",
     "CPNet Table 2, chair: mGE of PointNet (checkpoints)"),
    ("CPNet", "correspondence beats part supervision (Table 3, chair)", "06",
     "CPNet Table 3, chair: mGE of PointNet trained on part labels"),
)


def headline_rows(rows: list[dict], headline=HEADLINE) -> list[dict]:
    """One row per :data:`HEADLINE` entry: the first REPORT row of that notebook whose quantity starts
    with the entry's key (paper, claim, paper value, ours, protocol, n, scale), or a "not run yet" row."""
    out = []
    for paper, claim, nb, key in headline:
        hit = next((r for r in rows if str(r.get("notebook", "")).startswith(nb)
                    and str(r.get("quantity", "")).startswith(key)), None)
        base = {"paper": paper, "claim": claim}
        if hit is None:
            out.append({**base, "paper value": "—", "ours": "not run yet", "protocol": "—", "n": "—", "scale": "—"})
        else:
            out.append({**base, "paper value": hit.get("paper", "—"), "ours": hit.get("ours", "—"),
                        "protocol": hit.get("protocol", "—"), "n": hit.get("n", "—"), "scale": hit.get("scale", "—")})
    return out


def write_report(out: Path, all_notebooks) -> Path:
    """Assemble ``out/REPORT.md`` from the per-notebook records in ``out/records/`` — each notebook's
    latest run, stamped with its own date, scale and machine (so notebooks run at different times,
    e.g. the slow ones alone, still make one report). Notebooks never run are listed as such."""
    recs = {}
    for f in sorted((out / "records").glob("*.json")):
        r = json.loads(f.read_text())
        recs[r["notebook"]] = r
    stamps = sorted({(r["scale"], r["machine"]) for r in recs.values()})
    lines = ["# shapelib — reproduction report", "",
             f"- assembled: {time.strftime('%Y-%m-%d %H:%M %Z')} from `{out.name}/records/` "
             "(each notebook's latest `make reproduce` run)"]
    lines += [f"- scale `{sc}` on {m}" for sc, m in stamps]
    lines += ["- data: real datasets where found, synthetic families otherwise — the `data` column says which",
              "", "## Notebooks", "", "| notebook | status | time | run | scale |", "|---|---|---|---|---|"]
    for p in all_notebooks:
        r = recs.get(p.name)
        if r is None:
            lines.append(f"| {p.name} | not run yet | — | — | — |")
        else:
            status = "ok" if r["ok"] else f"FAILED: {r['error']}"
            lines.append(f"| {p.name} | {status} | {r['seconds']:.0f} s | {r['date']} | {r['scale']} |")
    all_rows = [row for r in recs.values() for row in r.get("rows", [])]
    lines += ["", "## Headline: each paper's main claim", "",
              "The row that measures it, from the notebook sections below (\"paper-protocol checkpoint\": "
              "a model trained at the paper's protocol and shipped with the library).", "",
              markdown_table(headline_rows(all_rows), ("paper", "claim", "paper value", "ours", "protocol", "n",
                                                       "scale")).rstrip()]
    for p in all_notebooks:
        r = recs.get(p.name)
        by_nb: dict[str, list] = {}
        for row in (r or {}).get("rows", []):
            by_nb.setdefault(row["notebook"], []).append(row)
        for name, nb_rows in by_nb.items():
            lines += ["", f"## {name}", "", markdown_table(nb_rows).rstrip()]
    (out / "REPORT.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'REPORT.md'} ({len(recs)} notebook records)")
    return out / "REPORT.md"
