"""Axiomatic ZoomOut on FAUST_r at the standard protocol, shapelib next to pyFM on the same pairs.

    python -m shapelib.fmaps_eval                    # all 190 test pairs (080–099), resumable
    python -m shapelib.fmaps_eval --n-pairs 6        # a few pairs (evenly spaced), to try it
    python -m shapelib.fmaps_eval --max-minutes 60   # stop cleanly after an hour; rerun to resume

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

from . import config

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

    from .fmaps import AXIOMATIC

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


class PairScorer:
    """Mean error ×100 at every vertex with ground truth, whether a map is flipped, and how much of
    its error sits on vertices sent to the mirror side (:meth:`score`)."""

    def __init__(self, pair, shape1):
        from .data.items import pair_from_rows
        from .metrics import GeodesicEvaluator

        self.gt = GeodesicEvaluator.from_pair(pair, shape1, geodesics="matrix")
        sym1 = pair.first.meta.get("corres_sym")
        self.sym = None
        if sym1 is not None:
            mirror = pair_from_rows(pair.first, pair.second, sym1, pair.second.meta["corres"])
            self.sym = GeodesicEvaluator.from_pair(mirror, shape1, geodesics="matrix")
            if not np.array_equal(self.sym.vertices, self.gt.vertices):
                raise ValueError(f"{pair.first.name}: the .sym.vts rows do not cover the same vertices of "
                                 f"{pair.second.name} as the .vts rows; check that both files belong to these shapes.")

    def vertex_errors(self, p2p) -> tuple[np.ndarray, np.ndarray | None]:
        """Per scored vertex of shape 2 (``self.gt.vertices``): the error to its true image and the
        error to the mirror image of its true image (None without ``.sym.vts``), both ÷ √area."""
        return self.gt.errors(p2p), (None if self.sym is None else self.sym.errors(p2p))

    def score(self, p2p) -> dict:
        """``error`` (×100); with the mirror ground truth also ``flipped`` (the whole map is closer to
        the mirror image) and ``mirror_share``: the share of the error carried by vertices that
        land closer to the mirror image of their true match than to the match itself — a left and
        a right hand swapped while the rest of the body is right gives a share near 1 and
        ``flipped`` False."""
        e, e_mirror = self.vertex_errors(p2p)
        out = {"error": 100.0 * float(e.mean())}
        if e_mirror is not None:
            out["flipped"] = bool(e_mirror.mean() < e.mean())
            out["mirror_share"] = mirror_share(e, e_mirror)
        return out


def mirror_share(errors: np.ndarray, mirror_errors: np.ndarray) -> float:
    """Share of the total error (``sum(errors)``) carried by the vertices whose ``mirror_errors`` is
    smaller than their error (closer to the mirror image of their true match); 0 for a perfect map.
    Vertices on the symmetry plane are close to both and carry almost no error, so the share does
    not depend on how their ties fall."""
    errors, mirror_errors = np.asarray(errors, dtype=float), np.asarray(mirror_errors, dtype=float)
    if errors.shape != mirror_errors.shape:
        raise ValueError(f"errors {errors.shape} and mirror_errors {mirror_errors.shape} must score the same vertices.")
    total = errors.sum()
    return float(errors[mirror_errors < errors].sum() / total) if total > 0 else 0.0


def pooled_mirror_share(errors, shares) -> float:
    """Over several pairs (each with its mean ``errors`` and :func:`mirror_share` ``shares``): the
    share of all their error that sits on vertices sent to the mirror side (error-weighted)."""
    errors, shares = np.asarray(errors, dtype=float), np.asarray(shares, dtype=float)
    return float((errors * shares).sum() / errors.sum()) if errors.sum() > 0 else 0.0


def items_with_symmetry(names, dataset: str = "faust_r") -> list:
    """Items of ``dataset`` (:func:`shapelib.data.real.r_dataset`) with ``meta['corres_sym']``: the
    left–right mirror of their ``.vts`` rows (``.sym.vts``; None when absent), for :class:`PairScorer`."""
    from .data import real

    sym_dir = real.registry.get(dataset).require() / "vtx_5k" / "corres"
    items = real.r_dataset(dataset, list(names))
    for it in items:
        sym = sym_dir / f"{it.name}.sym.vts"
        it.meta["corres_sym"] = real.read_vts(sym, it.shape.n_vertices) if sym.exists() else None
    return items


def test_pair_names(dataset: str = "faust_r") -> list[tuple[str, str]]:
    """All pairs of test shapes as (lower, higher) names — the standard protocol's 190 for FAUST_r."""
    from .data import registry

    root = registry.get(dataset).require() / "vtx_5k"
    names = sorted(p.stem for p in root.glob("*.off"))
    test = names[{"faust_r": 80, "scape_r": 51}[dataset]:]
    return [(a, b) for i, a in enumerate(test) for b in test[i + 1:]]


def summarize(rows: list[dict], method: str) -> dict | None:
    """mean / median / spread (std, 10th–90th percentiles) / flipped fraction of one column."""
    vals = [r[method] for r in rows if method in r]
    if not vals:
        return None
    out = {}
    for stage in ("init", "zoomout"):
        e = np.array([v[stage]["error"] for v in vals])
        out[stage] = {"mean": float(e.mean()), "median": float(np.median(e)), "std": float(e.std()),
                      "p10": float(np.percentile(e, 10)), "p90": float(np.percentile(e, 90)),
                      "flipped": float(np.mean([v[stage].get("flipped", False) for v in vals]))}
        if all("mirror_share" in v[stage] for v in vals):
            out[stage]["mirror_share"] = pooled_mirror_share(e, [v[stage]["mirror_share"] for v in vals])
    out["seconds"] = {k: float(np.mean([v["seconds"][k] for v in vals])) for k in ("fit", "zoomout")}
    out["n"] = len(vals)
    return out


def run(n_pairs: int | None = None, out: str | Path = DEFAULT_OUT, max_minutes: float | None = None,
        with_pyfm: bool = True, seed: int = 0, progress: bool = True, rescore: bool = False) -> dict:
    """Evaluate (or resume) and write the JSON; returns its content. Pairs are visited in a
    seeded random order, so a partial run is a random subset of the 190. ``rescore=True`` also
    recomputes stored rows that lack a measure :meth:`PairScorer.score` gives now (the pipelines
    are deterministic: the errors come out as stored)."""
    import torch
    from tqdm.auto import tqdm

    from .data import real
    from .fmaps import AXIOMATIC, SpectralBasis, axiomatic_zoomout
    from .operators import compute_operators

    out = Path(out)
    if not out.is_absolute() and config.REPO_ROOT is not None:
        out = config.REPO_ROOT / out
    every = test_pair_names("faust_r")
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
        return method not in row or (rescore and "mirror_share" not in row[method]["zoomout"])

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
            row["ours"] = {"init": scorer.score(r["p2p_init"]), "zoomout": scorer.score(r["p2p"]),
                           "seconds": r["seconds"]}
        if with_pyfm and stale(row, "pyfm"):
            r = pyfm_pipeline(meshes[a], meshes[b])
            row["pyfm"] = {"init": scorer.score(r["p2p_init"]), "zoomout": scorer.score(r["p2p"]),
                           "seconds": r["seconds"]}
        rows[key] = row
        doc = _document(rows, every)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1))
    return _document(rows, every)


def _document(rows: dict, every: list) -> dict:
    ordered = [rows[f"{a}<-{b}"] for a, b in every if f"{a}<-{b}" in rows]
    return {
        "what": "axiomatic ZoomOut on FAUST_r, shapelib and pyFM on the same pairs (python -m shapelib.fmaps_eval)",
        "protocol": (f"FAUST_r test shapes tr_reg_080–099, all {len(every)} pairs (shape 1 = lower index), unit area, "
                     "every vertex with ground truth, geodesic error on shape 1 ÷ sqrt(area) ×100; flipped = closer "
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


def report_rows(doc: dict | None = None) -> list[dict]:
    """Rows for :func:`shapelib.report.results_table` from the stored run (one per pipeline):
    mean, median, spread and flipped fraction after ZoomOut, with the machine-readable fields."""
    doc = load_results() if doc is None else doc
    rows = []
    if not doc:
        return rows
    for m, label in (("ours", "ours"), ("pyfm", "pyFM (pip install pyfmaps), same pairs")):
        S = doc["summary"].get(m)
        if not S:
            continue
        z = S["zoomout"]
        full = S["n"] == doc["n_pairs_total"]
        rows.append(dict(
            quantity=f"{QUANTITY}, {label}", paper="6.1 (Table 1, ZoomOut)",
            ours=f"mean {z['mean']:.2f}, median {z['median']:.2f}, flipped {100 * z['flipped']:.1f} %{_share(z)} "
                 f"(init mean {S['init']['mean']:.2f})",
            data=f"real: FAUST_r test pairs 080–099, stored run of {doc['date']} (python -m shapelib.fmaps_eval)",
            protocol="paper" if full else f"reduced: {S['n']} of the {doc['n_pairs_total']} test pairs (random subset; run resumable)",
            n=S["n"], seeds="— (deterministic)", ours_value=z["mean"], paper_value=PAPER_ZOOMOUT,
            unit="geodesic error ×100",
            spread={k: z[k] for k in ("median", "std", "p10", "p90", "flipped", "mirror_share") if k in z},
            scale="standard (stored run)"))
    return rows + trained_rows()


def _share(summary: dict) -> str:
    """``', N % of the error on mirror-side vertices'`` when the summary has it (:func:`mirror_share`)."""
    return (f", {100 * summary['mirror_share']:.0f} % of the error on vertices sent to the mirror side"
            if "mirror_share" in summary else "")


TRAINED = "single-branch unsupervised model (committed checkpoint"     # + " NAME)"


def trained_checkpoints() -> list[str]:
    """The committed checkpoints of the fmaps protocols (``fmaps_faust_r_unsupervised`` and its
    whole-budget variants, as far as trained), in the order they are registered."""
    from . import checkpoints, protocols

    protocols._load_all()
    have = set(checkpoints.available())
    return [n for n in protocols.PROTOCOLS if n.startswith("fmaps_") and n in have]


def trained_rows(record: dict | None = None) -> list[dict]:
    """Rows of the committed trained models (``make train MODEL=fmaps_faust_r_unsupervised`` and
    its variants, :func:`trained_checkpoints`) from their training records, one per map the record
    scores (:data:`shapelib.protocol_defs.FM_STAGES`): the network's output through its differentiable
    ZoomOut layer (the map Table 1 reports, set beside the paper's number), the nearest learned
    feature and hard ZoomOut on the FAUST_r test pairs. ``record``: the rows of that one record only."""
    from . import checkpoints

    if record is None:
        return [row for name in trained_checkpoints() for row in trained_rows(checkpoints.load_record(name))]
    cfg, summ = record["config"], record["evaluation"]["summary"]
    n_test = len(cfg["data"]["test"])
    n_all = n_test * (n_test - 1) // 2                 # every pair of the test shapes (080-099: 190)
    k_final = cfg["k_init"] + cfg["n_iter"] * cfg["step"]
    settings = "the authors' public code's settings" if cfg.get("preset") == "code" else "the paper text's settings"
    steps = steps_done(record)
    budget = (f"{steps:,} steps of {cfg['epochs'] * cfg['epoch_size']:,}" if record.get("status") != "complete"
              else f"{steps:,} steps")
    faces = cfg.get("train_faces")
    shapes = "full resolution" if faces is None else f"decimated to ~{faces // 2:,} vertices"
    rows = []
    for stage, label in (
            ("layer", f"network output (its differentiable ZoomOut layer {cfg['k_init']}→{k_final}, σ as trained)"),
            ("features", "nearest learned feature"), ("zoomout", f"+ hard ZoomOut {cfg['k_init']}→{k_final}")):
        S = summ.get(stage)
        if not S:
            continue
        # the record's summary carries the paper's number on the map Table 1 reports (the network output)
        paper = (f"{S['paper']} (Table 1, train F / test F: this map, as the authors' test code reads it)"
                 if "paper" in S else "— (Table 1 reports the network output)")
        rows.append(dict(
            quantity=f"{TRAINED} {record['experiment']}), {label}", paper=paper,
            ours=(f"mean {S['mean']:.2f}, median {S['median']:.2f}, 10–90 % {S['p10']:.2f}–{S['p90']:.2f}, "
                  f"flipped {100 * S['flipped']:.1f} %{_share(S)}"),
            data=f"real: FAUST_r, trained on 000–079 ({shapes}), tested on 080–099 "
                 f"(full resolution); record of {record['date']}",
            protocol=(f"reduced: {budget} on {checkpoints.trained_on(record)} (authors' code: 10 epochs over its "
                      f"3,160 pairs i < j, 31,600 steps), width {cfg['width']}"
                      + ("" if faces is None else ", decimated training shapes") + f", {settings}"
                      + ("" if S["n"] == n_all else f"; {S['n']} of the {n_all} test pairs")),
            n=S["n"], seeds=record.get("seeds", [cfg["seed"]]), ours_value=S["mean"],
            paper_value=S.get("paper"),
            unit="geodesic error ×100",
            spread={k: S[k] for k in ("median", "std", "p10", "p90", "flipped", "mirror_share") if k in S},
            scale="paper-protocol checkpoint"))
    return rows


def steps_done(record: dict) -> int:
    """The optimisation steps a training record's model has had (its ``steps_done``, or epochs × items)."""
    return int(record.get("steps_done") or record["epochs_done"] * record["config"]["epoch_size"])


def lr_drop_steps(record: dict) -> list[int]:
    """The training steps after which a record's run lowered its learning rate (``decay_every``
    epochs of ``epoch_size`` steps, :func:`shapelib.train.lr_drops`), up to the steps it has had."""
    from .train import lr_drops

    return [e * record["config"]["epoch_size"] for e in lr_drops(record["config"], record["epochs_done"])]


def longest_checkpoint() -> str | None:
    """The committed fmaps checkpoint trained for the most steps (:func:`trained_checkpoints`; the
    first registered on a tie), or None when there is none: the model notebook 04 evaluates at
    standard scale. Chosen by its training budget, never by its test error."""
    from . import checkpoints

    names = trained_checkpoints()
    return max(names, key=lambda n: steps_done(checkpoints.load_record(n))) if names else None


def learning_curve(record: dict, stage: str = "zoomout") -> list[dict]:
    """The test error of one run along its training: a row per saved state evaluated while it
    trained (the record's ``progress``, :func:`shapelib.protocols.evaluate_state`) and one for the
    record's own evaluation, in step order, each ``{"steps", "mean", "median", "p90",
    "mirror_share"}`` (``mirror_share`` NaN where not measured). ``stage``: ``"features"``,
    ``"zoomout"`` or ``"layer"`` (:data:`shapelib.protocol_defs.FM_STAGES`; points whose evaluation
    did not score that map are left out)."""
    from .protocol_defs import FM_STAGES

    if stage not in FM_STAGES:
        raise ValueError(f"stage {stage!r}: use one of {', '.join(map(repr, FM_STAGES))}.")
    cfg = record["config"]
    points = {int(e.get("steps") or e["epoch"] * cfg["epoch_size"]): e["summary"] for e in record.get("progress", [])}
    points[steps_done(record)] = record["evaluation"]["summary"]        # the record's own evaluation wins
    rows = []
    for steps in sorted(points):
        S = points[steps].get(stage)
        if S:
            rows.append({"steps": steps, "mean": S["mean"], "median": S["median"], "p90": S["p90"],
                         "mirror_share": S.get("mirror_share", float("nan"))})
    return rows


def failure_anatomy(pairs, errors, shares=None, flipped=None, threshold: float = 10.0, shapes=None) -> dict:
    """Where a pipeline's mean error comes from, over test pairs ``'a<-b'`` with their mean errors
    (×100), :func:`mirror_share` ``shares`` and ``flipped`` flags (optional):

    ``n``, ``mean``, ``median``; ``n_bad`` (error > ``threshold``) and ``n_between`` (between half the
    threshold and it); ``shapes``: a few test shapes such that every bad pair involves one of them
    (a greedy cover: the shape in most uncovered bad pairs first; or the ``shapes`` given, to compare
    pipelines on the same split), ``mean_with`` / ``n_with`` over the pairs with one of them and
    ``mean_without`` / ``n_without`` over the others; with ``shares``: ``share_bad`` / ``share_rest`` (the pooled
    share of the bad / other pairs' error on mirror-side vertices) and ``share_range`` (lowest and
    highest share of a bad pair); with ``flipped``: ``n_bad_flipped``. Read off the test results:
    it explains a mean, it is not a number to tune on."""
    pairs, errors = list(pairs), np.asarray(errors, dtype=float)
    if any("<-" not in p for p in pairs):
        raise ValueError("failure_anatomy: pairs are named 'shape1<-shape2' (the records' per_shape keys).")
    if len(pairs) != len(errors) or not len(pairs):
        raise ValueError(f"failure_anatomy needs one error per pair (got {len(pairs)} pairs, {len(errors)} errors).")
    bad = errors > threshold
    out = {"n": len(pairs), "mean": float(errors.mean()), "median": float(np.median(errors)),
           "n_bad": int(bad.sum()), "n_between": int(((errors > threshold / 2) & ~bad).sum()), "threshold": threshold}
    members = [set(p.split("<-")) for p in pairs]
    uncovered = set() if shapes is not None else {int(i) for i in np.flatnonzero(bad)}
    shapes = list(shapes) if shapes is not None else []
    while uncovered:
        counts = {}
        for i in uncovered:
            for name in members[i]:
                counts[name] = counts.get(name, 0) + 1
        best = max(sorted(counts), key=counts.get)
        shapes.append(best)
        uncovered = {i for i in uncovered if best not in members[i]}
    out["shapes"] = sorted(shapes)
    without = np.array([not (m & set(shapes)) for m in members])
    out["n_with"], out["n_without"] = int((~without).sum()), int(without.sum())
    out["mean_with"] = float(errors[~without].mean()) if (~without).any() else float("nan")
    out["mean_without"] = float(errors[without].mean()) if without.any() else float("nan")
    if shares is not None:
        shares = np.asarray(shares, dtype=float)
        out["share_bad"] = pooled_mirror_share(errors[bad], shares[bad]) if bad.any() else float("nan")
        out["share_rest"] = pooled_mirror_share(errors[~bad], shares[~bad]) if (~bad).any() else float("nan")
        out["share_range"] = (float(shares[bad].min()), float(shares[bad].max())) if bad.any() else None
    if flipped is not None:
        out["n_bad_flipped"] = int(np.asarray(flipped, dtype=bool)[bad].sum())
    return out


def anatomy_of_record(record: dict, stage: str = "zoomout", threshold: float = 10.0, shapes=None) -> dict:
    """:func:`failure_anatomy` of a trained model's record (``stage``: ``"zoomout"``, ``"features"`` or
    ``"layer"``)."""
    per = record["evaluation"]["per_shape"]
    keys = list(per)
    shares = [per[k].get(f"{stage}_mirror_share") for k in keys]
    return failure_anatomy(keys, [per[k][f"{stage}_error_x100"] for k in keys],
                           None if None in shares else shares, [per[k][f"{stage}_flipped"] for k in keys], threshold,
                           shapes)


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


def trained_pair(pair: str, name: str = "fmaps_faust_r_unsupervised", with_loss: bool = True) -> dict:
    """The committed model ``name`` on one FAUST_r pair ``'tr_reg_080<-tr_reg_094'`` (test or training
    shapes), as its protocol evaluates it (learned features, + ZoomOut), with what it takes to look at the result:
    ``shape1``, ``shape2`` (unit area), ``p2p`` (shape 2 → shape 1), ``gt`` (the true map),
    ``error`` and ``mirror_error`` (per vertex of shape 2, ÷ √area: to the true match and to its
    left–right mirror image; NaN where there is no ground truth), ``score``
    (:meth:`PairScorer.score`) and ``loss``: the training loss of the pair at the final weights
    (:func:`shapelib.fmaps.pair_losses`, its total and each unweighted term; ``None`` with
    ``with_loss=False``, which skips that extra differentiable-ZoomOut pass). About 20 s on one CPU thread
    (geodesics and operators of two 5k-vertex shapes)."""
    import torch

    from . import protocols
    from .data import real
    from .fmaps import map_from_features, pair_losses
    from .protocol_defs import fm_shape_data, fm_train_config

    a, sep, b = pair.partition("<-")
    if not sep or not a.startswith("tr_reg_") or not b.startswith("tr_reg_"):
        raise ValueError(f"pair {pair!r}: expected 'tr_reg_XXX<-tr_reg_YYY' (a key of the record's per_shape).")
    model, record = protocols.load_model(name)
    cfg = record["config"]
    first, second = items_with_symmetry([a, b])
    shapes = [it.shape.normalized("area") for it in (first, second)]
    data = [fm_shape_data(s, cfg, "cpu") for s in shapes]
    with torch.no_grad():
        F1, F2 = (model(d.x, d.ops) for d in data)
        fm = fm_train_config(cfg)
        losses = pair_losses(F1, F2, data[0].basis, data[1].basis, fm, progress=1.0, refine=True) if with_loss else None
    p2p = map_from_features(F1, F2, data[0].basis, data[1].basis, fm, refine=True)[0].cpu().numpy()
    r_pair = real.r_pair(first, second)
    scorer = PairScorer(r_pair, shapes[0])
    e, e_mirror = scorer.vertex_errors(p2p)
    full = [np.full(shapes[1].n_vertices, np.nan) for _ in range(2)]
    full[0][scorer.gt.vertices] = e
    if e_mirror is not None:
        full[1][scorer.gt.vertices] = e_mirror
    return {"pair": pair, "shape1": shapes[0], "shape2": shapes[1], "p2p": p2p, "gt": r_pair.p2p_21,
            "error": full[0], "mirror_error": full[1], "score": scorer.score(p2p),
            "loss": None if losses is None else {k: float(v) for k, v in losses.items() if k not in ("C_init", "C_refined")}}


def update_record(record: str | Path = "results/records/04_functional_maps_zoomout.json") -> Path:
    """Replace the stored-run rows of notebook 04's record with :func:`report_rows` of the current
    JSON (the notebook builds the same rows when it runs) and re-assemble results/REPORT.md."""
    from . import report

    return report.replace_rows(record, lambda r: r["quantity"].startswith((QUANTITY, TRAINED)), report_rows(),
                               notebook="04 Functional maps & ZoomOut")


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
    ap.add_argument("--update-record", action="store_true",
                    help="only refresh these rows in notebook 04's record and results/REPORT.md from the stored JSON")
    args = ap.parse_args(argv)
    if args.update_record:
        print(f"updated {update_record()}")
        return
    doc = run(args.n_pairs, args.out, args.max_minutes, with_pyfm=not args.no_pyfm, rescore=args.rescore)
    for m, s in doc["summary"].items():
        if s:
            print(f"{m:5s} n={s['n']:3d}  init {s['init']['mean']:.2f} / {s['init']['median']:.2f}   "
                  f"ZoomOut mean {s['zoomout']['mean']:.2f} median {s['zoomout']['median']:.2f} "
                  f"flipped {100 * s['zoomout']['flipped']:.1f} %   fit {s['seconds']['fit']:.2f} s, "
                  f"ZoomOut {s['seconds']['zoomout']:.1f} s ({doc['threads']} thread(s))")


if __name__ == "__main__":
    main()
