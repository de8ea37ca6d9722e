"""Axiomatic ZoomOut on FAUST_r at the standard protocol, shapelib next to pyFM on the same pairs.

    python -m shapelib.experiments.fmaps_axiomatic                    # all 190 test pairs (080–099), resumable
    python -m shapelib.experiments.fmaps_axiomatic --n-pairs 6        # a few pairs (evenly spaced), to try it
    python -m shapelib.experiments.fmaps_axiomatic --max-minutes 60   # stop after an hour; rerun to resume

Protocol: every pair of the FAUST_r test shapes tr_reg_080–099 (190 pairs; shape 1 = the lower
index); each shape scaled to unit area; error of ``p2p_21`` at every vertex of shape 2 with
ground truth (``.vts`` rows), geodesic distance on shape 1 ÷ √area, ×100 (the benchmark
number). A map is *flipped* when it is closer to the left–right mirror of the ground truth
(``.sym.vts``) than to the ground truth itself.

Pipelines (both with the settings of pyFM's README, :data:`shapelib.fmaps.AXIOMATIC`): 100 WKS
on 128 eigenpairs, every 2nd kept; a 30×30 fmap with descriptor, Laplacian (resolvent),
descriptor-commutativity and orientation terms at weights 1, 0.1, 1, 1; ZoomOut 30 → 110 in
steps of 5. ``ours`` = :func:`shapelib.fmaps.axiomatic_zoomout` on shapelib's operators;
``pyfm`` = pyFM's ``FunctionalMapping`` (``pip install pyfmaps``; the column is left out
without it). Rows are written to the JSON after every pair, and pairs already there are
skipped, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import config
from ..data import real
from ..data.pairs import items_with_symmetry, test_pairs
from ..fmaps import AXIOMATIC, SpectralBasis, axiomatic_zoomout
from ..metrics import fmaps_pair_error
from ..operators import compute_operators
from . import report
from .scoring import PairScorer, failure_anatomy, pooled_mirror_share, summary_stats

DEFAULT_OUT = "results/fmaps_faust_r_axiomatic.json"
PAPER_ZOOMOUT = 6.1  # Table 1 of Magnet & Ovsjanikov 2024 (axiomatic ZoomOut on FAUST_r)
PYFM_README = "2.77 mean / 1.58 median on the 24 pairs of test_pairs.txt inside 080–099"


def pyfm_available() -> bool:
    try:
        import pyFM.functional  # noqa: F401
        return True
    except ImportError:
        return False


def pyfm_mesh(shape, k: int = 200):
    """A pyFM ``TriMesh`` of ``shape`` (unit area, centred) with ``k`` eigenpairs, as pyFM's
    ``preprocess`` computes them (reused across the pairs a shape belongs to)."""
    from pyFM.mesh import TriMesh

    return TriMesh(shape.vertices, shape.faces, area_normalize=True, center=True).process(k)


def pyfm_pipeline(mesh1, mesh2, settings: dict | None = None, refine: bool = True) -> dict:
    """pyFM's README pipeline on two processed meshes (:func:`pyfm_mesh`): ``C_init`` (numpy),
    ``p2p_init``, ``p2p`` (after ZoomOut, unless ``refine=False``) and ``seconds``
    ``{'fit', 'zoomout'}`` (descriptors not included). ``settings`` override ``AXIOMATIC``."""
    from pyFM.functional import FunctionalMapping

    s = {**AXIOMATIC, **(settings or {})}
    model = FunctionalMapping(mesh1, mesh2)
    k_have = min(len(mesh1.eigenvalues), len(mesh2.eigenvalues))  # reuse the meshes' spectra, never recompute
    model.preprocess(n_descr=s["n_energies"], descr_type="WKS", subsample_step=s["every"], k_descr=s["k_descr"],
                     k_process=k_have)
    t0 = time.perf_counter()
    model.fit(K=s["k_init"], w_descr=s["w_descr"], w_lap=s["w_lap"], w_dcomm=s["w_dcomm"], w_orient=s["w_orient"])
    t1 = time.perf_counter()
    out = dict(C_init=model.FM_12, p2p_init=model.get_p2p())
    if refine:
        FM = model.zoomout_refine(nit=(s["k_final"] - s["k_init"]) // s["step"], step=s["step"])
        out["p2p"] = model.get_p2p(FM)
    out["seconds"] = {"fit": t1 - t0, "zoomout": time.perf_counter() - t1}
    return out


def summarize(rows: list[dict], method: str) -> dict | None:
    """mean / median / spread (std, 10th–90th percentiles) / flipped fraction of one column."""
    vals = [r[method] for r in rows if method in r]
    if not vals:
        return None
    out = {}
    for stage in ("init", "zoomout"):
        e = np.array([v[stage]["error"] for v in vals])
        out[stage] = {**summary_stats(e, digits=None, percentiles=True),
                      "flipped": float(np.mean([v[stage].get("flipped", False) for v in vals]))}
        if all("mirror_share" in v[stage] for v in vals):
            out[stage]["mirror_share"] = pooled_mirror_share(e, [v[stage]["mirror_share"] for v in vals])
        have = [v[stage]["paper_error"] for v in vals if "paper_error" in v[stage]]
        if have:  # the paper's yardstick (PAPER_YARDSTICK) on the same maps, over the pairs scored by it so far
            out[stage]["paper"] = {**summary_stats(have, digits=None, percentiles=True), "n": len(have)}
    out["seconds"] = {k: float(np.mean([v["seconds"][k] for v in vals])) for k in ("fit", "zoomout")}
    out["n"] = len(vals)
    return out


def run(n_pairs: int | None = None, out: str | Path = DEFAULT_OUT, max_minutes: float | None = None,
        with_pyfm: bool = True, seed: int = 0, progress: bool = True, rescore: bool = False) -> dict:
    """Evaluate (or resume) and write the JSON; returns its content. Pairs are visited in a
    seeded random order, so a partial run is a random subset of the 190. ``rescore=True`` also
    recomputes stored rows that lack a measure :meth:`PairScorer.score` gives now (the pipelines
    are deterministic: the errors come out as stored)."""
    out = Path(out)
    if not out.is_absolute() and config.REPO_ROOT is not None:
        out = config.REPO_ROOT / out
    every = test_pairs("faust_r")
    order = np.random.default_rng(seed).permutation(len(every))
    todo = [every[i] for i in order]
    if n_pairs is not None and n_pairs < len(every):  # evenly spaced among the 190, in that order
        keep = {every[i] for i in np.linspace(0, len(every) - 1, n_pairs).round().astype(int)}
        todo = [p for p in todo if p in keep]
    doc = json.loads(out.read_text()) if out.exists() else {}
    rows = {r["pair"]: r for r in doc.get("pairs", [])}
    with_pyfm = with_pyfm and pyfm_available()
    items, shapes, ops, bases, meshes = {}, {}, {}, {}, {}

    def load(name):
        if name not in items:
            it = items_with_symmetry([name])[0]
            items[name] = it
            shapes[name] = it.shape.normalized("area")
            ops[name] = compute_operators(shapes[name], k=max(AXIOMATIC["k_final"], AXIOMATIC["k_descr"]))
            bases[name] = SpectralBasis.from_operators(ops[name], dtype=torch.float64)
        if with_pyfm and name not in meshes:
            meshes[name] = pyfm_mesh(items[name].shape)
        return items[name]

    t_start = time.time()

    def stale(row, method):
        return method not in row or (rescore and not {"mirror_share", "paper_error"} <= set(row[method]["zoomout"]))

    def score(scorer, a, b, p2p, paper: bool = True):
        """shapelib's metric (PairScorer) and, for the map the paper reports (after ZoomOut), the
        paper's yardstick (every .vts row, exact geodesics; errors ÷ √area are scale-free, so the
        data's own shape and its cached geodesic rows serve). The WKS maps are often mirrored: their
        exact rows beyond the cache radius would double the run's time for a number no table has."""
        p2p = np.asarray(p2p)
        out = scorer.score(p2p)
        if paper:
            out["paper_error"] = round(fmaps_pair_error(items[a].shape, p2p, items[a].meta["corres"],
                                                        items[b].meta["corres"], geodesics="exact"), 5)
        return out

    pending = [p for p in todo if f"{p[0]}<-{p[1]}" not in rows or stale(rows[f"{p[0]}<-{p[1]}"], "ours")
               or (with_pyfm and stale(rows[f"{p[0]}<-{p[1]}"], "pyfm"))]
    for a, b in tqdm(pending, desc="FAUST_r test pairs", disable=not progress):
        if max_minutes is not None and time.time() - t_start > 60 * max_minutes:
            break
        pair = real.r_pair(load(a), load(b))
        scorer = PairScorer(pair, shapes[a])
        key = f"{a}<-{b}"
        row = rows.get(key, {"pair": key, "n_vertices_scored": int(len(scorer.gt.vertices))})
        if stale(row, "ours"):
            r = axiomatic_zoomout(ops[a], ops[b], bases[a], bases[b])
            row["ours"] = {"init": score(scorer, a, b, r["p2p_init"], False), "zoomout": score(scorer, a, b, r["p2p"]),
                           "seconds": r["seconds"]}
        if with_pyfm and stale(row, "pyfm"):
            r = pyfm_pipeline(meshes[a], meshes[b])
            row["pyfm"] = {"init": score(scorer, a, b, r["p2p_init"], False), "zoomout": score(scorer, a, b, r["p2p"]),
                           "seconds": r["seconds"]}
        rows[key] = row
        doc = _document(rows, every)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1))
    return _document(rows, every)


def _document(rows: dict, every: list) -> dict:
    ordered = [rows[f"{a}<-{b}"] for a, b in every if f"{a}<-{b}" in rows]
    return {
        "what": "axiomatic ZoomOut on FAUST_r, shapelib and pyFM on the same pairs (python -m shapelib.experiments.fmaps_axiomatic)",
        "protocol": (f"FAUST_r test shapes tr_reg_080–099, all {len(every)} pairs (shape 1 = lower index), unit area; "
                     "error: every vertex of shape 2 with ground truth once, heat-method geodesic on shape 1 ÷ sqrt(area) "
                     "×100 (shapelib's metric); paper_error: " + PAPER_YARDSTICK + "; flipped = closer "
                     "to the .sym.vts mirror of the ground truth"),
        "pipeline": "pyFM README: 100 WKS (128 eigenpairs, every 2nd), 30×30 fmap, weights descr 1 / lap 0.1 "
                    "(resolvent) / dcomm 1 / orient 1, ZoomOut 30 → 110 step 5",
        "n_pairs_total": len(every),
        "machine": f"{platform.machine()} · {config.threads()} thread(s) · the machine was shared with other jobs",
        "threads": config.threads(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "summary": {m: summarize(ordered, m) for m in ("ours", "pyfm")},
        "pairs": ordered,
    }


# ----------------------------------------------------------------------------- stored results


def load_results(path: str | Path = DEFAULT_OUT) -> dict | None:
    """The JSON written by :func:`run` (None when it was never run)."""
    path = Path(path)
    if not path.is_absolute() and config.REPO_ROOT is not None:
        path = config.REPO_ROOT / path
    return json.loads(path.read_text()) if path.exists() else None


QUANTITY = "axiomatic ZoomOut on FAUST_r (WKS fmap → ZoomOut 30→110)"
#: the paper's yardstick, in the words of the REPORT row (:func:`shapelib.metrics.fmaps_pair_error`)
PAPER_YARDSTICK = ("the authors' test code: every .vts row of a pair (repeats included), exact geodesic on shape 1 "
                   "÷ √area ×100, mean over pairs (trainer_dzo.py _test_epoch)")
OUR_YARDSTICK = "shapelib's (heat-method geodesics, each vertex of shape 2 once)"
#: the yardstick words of notebook 04's live rows (a few pairs, shapelib's metric)
LIVE_YARDSTICK = f"yardstick: {OUR_YARDSTICK}, not the paper's (the 190-pair rows are at the paper's)"


def report_rows(doc: dict | None = None) -> list[dict]:
    """Rows for :func:`shapelib.experiments.report.results_table` from the stored run (one per
    pipeline): mean, median, spread and flipped fraction after ZoomOut, with the machine-readable fields."""
    doc = load_results() if doc is None else doc
    rows = []
    if not doc:
        return rows
    for m, label in (("ours", "ours"), ("pyfm", "pyFM (pip install pyfmaps), same pairs")):
        S = doc["summary"].get(m)
        if not S:
            continue
        z, Y = S["zoomout"], S["zoomout"].get("paper")
        full = S["n"] == doc["n_pairs_total"]
        own = (f"mean {z['mean']:.2f}, median {z['median']:.2f}, flipped {100 * z['flipped']:.1f} %{share_text(z)} "
               f"(init mean {S['init']['mean']:.2f})")
        partial = bool(Y) and Y["n"] < S["n"]
        ours, value, yardstick = report.yardstick_columns(
            own, z["mean"], Y, PAPER_YARDSTICK + (f" — on {Y['n']} of these {S['n']} pairs so far (rescore resumable)"
                                                  if partial else ""), OUR_YARDSTICK,
            extra=(f", median {Y['median']:.2f}" + (f", {Y['n']} pairs" if partial else "")) if Y else "")
        rows.append(dict(
            quantity=f"{QUANTITY}, {label}", paper="6.1 (Table 1, ZoomOut)", ours=ours,
            data=f"real: FAUST_r test pairs 080–099, stored run of {doc['date']} "
                 "(python -m shapelib.experiments.fmaps_axiomatic)",
            protocol=("paper pairs" if full else f"reduced: {S['n']} of the {doc['n_pairs_total']} test pairs (random subset; "
                      "run resumable)") + yardstick,
            n=S["n"], seeds="— (deterministic)", ours_value=value, paper_value=PAPER_ZOOMOUT,
            unit="geodesic error ×100",
            spread={**{k: z[k] for k in ("median", "std", "p10", "p90", "flipped", "mirror_share") if k in z},
                    "shapelib_metric": z["mean"]},
            scale="standard (stored run)"))
    return rows


def has_column(doc: dict | None, method: str = "ours") -> bool:
    """Whether a stored run (:func:`load_results`) has pairs scored for ``method`` (``"ours"`` / ``"pyfm"``)."""
    return bool(doc and doc["summary"].get(method))


def load_benchmark(name: str) -> dict | None:
    """``benchmarks/results/<name>.json`` (e.g. ``"zoomout"``, ``"fmap_fit"``), or None when it was never run."""
    path = Path(config.REPO_ROOT or Path.cwd()) / "benchmarks" / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


#: (size, method, the paper's Table 3 entry, its value in seconds) of the REPORT's ZoomOut timing rows
TIMING_ROWS = (("5k", "kdtree", "3.6 s (CPU ZoomOut)", 3.6), ("5k", "nn-torch", "0.1 s (Our ZoomOut, GPU)", 0.1),
               ("5k", "soft-torch+bwd", "0.1 s (Our Diff. ZoomOut, GPU)", 0.1), ("20k", "soft-torch+bwd", "—", None))


#: the yardstick words of notebook 04's two qualitative rows: the paper states the outcome without a number
NONISO_YARDSTICK = ("yardstick: shapelib's (heat-method geodesics, each vertex of shape 2 once) — the paper states the "
                    "failure on non-isometric pairs (Sec. 6) without a number")
SOFTMAP_YARDSTICK = ("yardstick: ours (largest relative difference between the two implementations' outputs) — the "
                     "paper states identical results without a number")
#: the yardstick words of the timing rows: the paper's Table 3 measure, the machine and settings ours
TIMING_YARDSTICK = ("; yardstick: the paper's Table 3 measure (processing time in seconds of one ZoomOut run on a "
                    "~5,000-vertex pair), on a 2-core CPU (both threads) instead of the paper's GPU; k 30 → 130 in 10 steps, "
                    "σ 1e-2 (benchmarks/zoomout.py; the paper gives no spectral sizes for Table 3)")


def benchmark_report_rows(bench: dict | None) -> list[dict]:
    """REPORT rows of the ZoomOut timings in ``benchmarks/results/zoomout.json`` (:func:`load_benchmark`)
    next to the paper's Table 3 (GPU); the sizes and methods of :data:`TIMING_ROWS` that were measured."""
    rows = []
    for size, method, paper, value in TIMING_ROWS:
        r = next((r for r in (bench or {}).get("rows", [])
                  if r["size"] == size and r["method"] == method and "seconds" in r), None)
        if r:
            rows.append(dict(quantity=f"ZoomOut time, {r['n']} v, {method}", paper=paper,
                             ours=f"{r['seconds']:.2f} s, {r['peak_bytes'] / 1e6:.0f} MB", data=f"benchmark: bumpy torus, {r['device']}",
                             protocol="reduced: CPU, not GPU" + ("" if value is None else TIMING_YARDSTICK),
                             ours_value=r["seconds"], paper_value=value, unit="seconds"))
    return rows


def fit_benchmark_text(fit: dict) -> str:
    """The lines of ``benchmarks/results/fmap_fit.json`` (``python benchmarks/fmap_fit.py``): each fit's
    time and error, and shapelib's time ÷ pyFM's with the thread count."""
    lines = [f"fit {r['pair']:<24} {r['method']:<16} {r['seconds']:6.2f} s  error ×100 {r['error_x100']:.2f}" for r in fit["rows"]]
    lines.append(f"descriptor fit, shapelib / pyFM time: {fit['shapelib_over_pyfm_time']:.2f}× "
                 f"({fit['threads']} thread(s), {fit['date']})")
    return "\n".join(lines)


def share_text(summary: dict) -> str:
    """``', N % of the error on mirror-side vertices'`` when the summary has it
    (:func:`~shapelib.experiments.scoring.mirror_share`)."""
    return (f", {100 * summary['mirror_share']:.0f} % of the error on vertices sent to the mirror side"
            if "mirror_share" in summary else "")


def anatomy_of_run(doc: dict, method: str = "ours", stage: str = "zoomout", threshold: float = 10.0,
                   shapes=None) -> dict | None:
    """:func:`failure_anatomy` of the stored axiomatic run (:func:`load_results`) for ``method``
    (``"ours"`` or ``"pyfm"``); None when that column was not run."""
    rows = [r for r in (doc or {}).get("pairs", []) if method in r]
    if not rows:
        return None
    shares = [r[method][stage].get("mirror_share") for r in rows]
    return failure_anatomy([r["pair"] for r in rows], [r[method][stage]["error"] for r in rows],
                           None if None in shares else shares, [r[method][stage].get("flipped", False) for r in rows],
                           threshold, shapes)


def zoomout_speedups(rows) -> dict:
    """``{size: (t(kdtree) / t(best exact nn-*), t(kdtree) / t(nn-torch+s2000))}`` on CPU (nan if missing)."""
    out = {}
    for size in dict.fromkeys(r["size"] for r in rows):
        t = {r["method"]: r["seconds"] for r in rows if r["size"] == size and r["device"] == "cpu" and "seconds" in r}
        exact = [v for m, v in t.items() if m.startswith("nn-") and "+s" not in m]
        if "kdtree" in t and exact:
            out[size] = (t["kdtree"] / min(exact), t["kdtree"] / t.get("nn-torch+s2000", float("nan")))
    return out


def zoomout_benchmark_table(result: dict) -> str:
    """The text table of ``benchmarks/results/zoomout.json`` (written by benchmarks/zoomout.py),
    with the paper's Table 3 beside each row."""
    s, paper = result["settings"], result.get("paper_table3", {})
    k_final = s["k_init"] + s["n_iter"] * s["step"]
    lines = [f"ZoomOut k {s['k_init']}→{k_final} ({s['n_iter']} iterations), σ={s['sigma']} — {result['machine']}",
             f"{'device':<6} {'pair':<11} {'n':>7} {'method':<16} {'time (s)':>9} {'peak MB':>9}  paper (Table 3, GPU)"]
    for r in result["rows"]:
        size = "5k" if r["size"].startswith("5k") else r["size"]
        ref = paper.get(f"{size} {'nn-keops' if r['method'] == 'nn-torch' else r['method']}", "")
        val = f"{r['seconds']:9.2f} {r['peak_bytes'] / 1e6:9.0f}" if "seconds" in r else f"{'—':>9} {'—':>9}  {r['skipped']}"
        lines.append(f"{r['device']:<6} {r['size']:<11} {r.get('n', 0):>7} {r['method']:<16} {val}  {ref}")
    for r in result.get("memory_curve", []):
        if r["method"].startswith("product-") and "seconds" in r:
            lines.append(f"one SoftMap product Π@X + backward, n = {r['n']:,} ({r['device']}): {r['seconds']:.1f} s, "
                         f"peak {r['peak_bytes'] / 1e6:.0f} MB (dense Π alone: {r['dense_bytes'] / 1e9:.0f} GB)")
    for size, (exact, sampled) in zoomout_speedups(result["rows"]).items():
        lines.append(f"classic ZoomOut on CPU, {size}: vs the per-iteration KD-tree, exact kernel-layer NN "
                     f"{exact:.1f}× faster, with 2,000 samples {sampled:.1f}×")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-pairs", type=int, default=None, help="evaluate this many pairs (evenly spaced); default all 190")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--max-minutes", type=float, default=None, help="stop after this long; rerun to resume")
    ap.add_argument("--no-pyfm", action="store_true", help="leave out the pyFM column")
    ap.add_argument("--rescore", action="store_true",
                    help="recompute stored pairs that lack a measure added since (mirror_share)")
    args = ap.parse_args(argv)
    doc = run(args.n_pairs, args.out, args.max_minutes, with_pyfm=not args.no_pyfm, rescore=args.rescore)
    for m, s in doc["summary"].items():
        if s:
            print(f"{m:5s} n={s['n']:3d}  init {s['init']['mean']:.2f} / {s['init']['median']:.2f}   "
                  f"ZoomOut mean {s['zoomout']['mean']:.2f} median {s['zoomout']['median']:.2f} "
                  f"flipped {100 * s['zoomout']['flipped']:.1f} %   fit {s['seconds']['fit']:.2f} s, "
                  f"ZoomOut {s['seconds']['zoomout']:.1f} s ({doc['threads']} thread(s))")


if __name__ == "__main__":
    main()


# ----------------------------------------------------------------------------- for notebook 04


def plot_stored_run(doc: dict):
    """One dot per test pair of the stored run (:func:`load_results`) for each pipeline and stage
    (shapelib / pyFM, WKS fmap / + ZoomOut), the median as a black bar. Returns the figure."""
    import matplotlib.pyplot as plt

    cols = [("ours", "init", "shapelib\nWKS fmap"), ("ours", "zoomout", "shapelib\n+ ZoomOut"),
            ("pyfm", "init", "pyFM\nWKS fmap"), ("pyfm", "zoomout", "pyFM\n+ ZoomOut")]
    cols = [c for c in cols if doc["summary"].get(c[0])]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    rng = np.random.default_rng(0)
    for x, (m, stage, _) in enumerate(cols):
        e = np.array([p[m][stage]["error"] for p in doc["pairs"] if m in p])
        ax.scatter(x + 0.25 * rng.uniform(-1, 1, len(e)), e, s=8, alpha=0.6)
        ax.hlines(np.median(e), x - 0.35, x + 0.35, color="k", lw=2)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([c[2] for c in cols], fontsize=8)
    ax.set(yscale="log", ylabel="error ×100 (log)")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"FAUST_r test pairs, one dot per pair ({doc['summary']['ours']['n']} of {doc['n_pairs_total']}; "
                 "black: median)", fontsize=9)
    return fig


def stored_run_text(doc: dict) -> str:
    """The stored run's summary, per pipeline: the paper's yardstick (where the run has it), then
    shapelib's metric; and its date and protocol."""
    def line(S0, S, m, label):
        init = f"WKS fmap mean {S0['mean']:.2f} / median {S0['median']:.2f}" if S0 else f"{'':34s}"
        return (f"{m:5s} {init}   + ZoomOut mean {S['mean']:.2f} / median {S['median']:.2f} "
                f"(10–90 %: {S['p10']:.2f}–{S['p90']:.2f})   [{label}]")

    lines = []
    for m, S in doc["summary"].items():
        if not S:
            continue
        paper = "paper" in S["zoomout"]
        if paper:
            P = S["zoomout"]["paper"]
            lines.append(line(S["init"].get("paper"), P, m, f"the paper's yardstick, n = {P['n']}; paper {PAPER_ZOOMOUT}"))
        lines.append(line(S["init"], S["zoomout"], "" if paper else m,
                          f"shapelib's metric; flipped {100 * S['zoomout']['flipped']:.1f} %, n = {S['n']}"))
    lines.append(f"run {doc['date']}, {doc['threads']} thread(s); protocol: {doc['protocol']}")
    return "\n".join(lines)


def plot_memory_curve(bench: dict):
    """Peak memory of differentiable ZoomOut (forward + backward) against the number of vertices,
    dense Π vs the chunked SoftMap, from ``benchmarks/results/zoomout.json``; None without that curve."""
    import matplotlib.pyplot as plt

    if not bench or not bench.get("memory_curve"):
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, label in (("soft-dense+bwd", "dense Π (torch)"), ("soft-torch+bwd", "SoftMap (chunked torch)")):
        rows = [r for r in bench["memory_curve"] if r["method"] == method and "peak_bytes" in r]
        ax.loglog([r["n"] for r in rows], [r["peak_bytes"] / 1e6 for r in rows], "o-", label=label)
    n = np.array([1e3, 1e5])
    ax.loglog(n, 3 * 4 * n**2 / 1e6, "k:", label="3 × n² floats")
    ax.set(xlabel="vertices n", ylabel="peak memory (MB)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"differentiable ZoomOut, fwd+bwd ({bench['machine'].split('·')[-2].strip()})", fontsize=9)
    return fig
