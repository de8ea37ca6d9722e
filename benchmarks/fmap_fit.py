"""Time of the descriptor functional-map fit, shapelib next to pyFM, on the same FAUST_r pairs.

    python benchmarks/fmap_fit.py              # 1 FAUST_r test pair, 3 repetitions
    python benchmarks/fmap_fit.py --pairs 3 --reps 5

Both fit the same 30×30 energy (pyFM's README settings, ``shapelib.fmaps.AXIOMATIC``: WKS,
descriptor / Laplacian / descriptor-commutativity / orientation terms at 1 / 0.1 / 1 / 1). The
time covers building the operators of the terms and solving — the descriptors (WKS) and the
eigenbases are computed before, by each library. Rows: ``shapelib-direct`` (exact solve of the
normal equations, the default), ``shapelib-lbfgs`` (scipy L-BFGS-B on the closed-form gradient,
for large k), ``pyfm`` (``FunctionalMapping.fit``: L-BFGS-B with its default tolerances).
Also reports the error ×100 of each fitted map (every vertex with ground truth) and ‖C‖ (the
two libraries' eigenvectors differ in sign, so their C are not compared entry by entry). Repetitions alternate the methods so a
busy machine slows them alike; the median is kept. Writes benchmarks/results/fmap_fit.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "fmap_fit.json"))
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from shapelib import config
    from shapelib.fmaps import AXIOMATIC, SpectralBasis, descriptor_fmap, fmap_to_p2p, wks_descriptors
    from shapelib.data.pairs import test_pairs as test_pair_names
    from shapelib.experiments.fmaps_axiomatic import pyfm_available, pyfm_mesh
    from shapelib.metrics import GeodesicEvaluator
    from shapelib.data import real
    from shapelib.operators import compute_operators

    if not pyfm_available():
        print("pyFM is not installed (pip install pyfmaps): nothing to compare with.")
        return 1
    from pyFM.functional import FunctionalMapping

    every = test_pair_names()
    names = [every[i] for i in np.linspace(0, len(every) - 1, args.pairs).round().astype(int)]
    s = AXIOMATIC
    rows = []
    for a, b in names:
        pair = real.r_pair(*real.r_dataset("faust_r", [a, b]))
        s1, s2 = pair.shape1.normalized("area"), pair.shape2.normalized("area")
        o1, o2 = (compute_operators(x, k=max(s["k_final"], s["k_descr"])) for x in (s1, s2))
        b1, b2 = (SpectralBasis.from_operators(o, dtype=torch.float64) for o in (o1, o2))
        d1, d2 = (wks_descriptors(o, s["n_energies"], s["k_descr"], s["every"]) for o in (o1, o2))
        model = FunctionalMapping(pyfm_mesh(pair.shape1), pyfm_mesh(pair.shape2))
        model.preprocess(n_descr=s["n_energies"], descr_type="WKS", subsample_step=s["every"], k_descr=s["k_descr"])
        weights = dict(w_descr=s["w_descr"], w_lap=s["w_lap"], w_dcomm=s["w_dcomm"], w_orient=s["w_orient"])
        runs = {
            "shapelib-direct": lambda: descriptor_fmap(d1, d2, b1, b2, 30, 30, **weights, ops1=o1, ops2=o2, solver="direct"),
            "shapelib-lbfgs": lambda: descriptor_fmap(d1, d2, b1, b2, 30, 30, **weights, ops1=o1, ops2=o2, solver="lbfgs"),
            "pyfm": lambda: (model.fit(K=s["k_init"], **weights), torch.as_tensor(model.FM_12))[1],
        }
        times = {m: [] for m in runs}
        out = {}
        for _ in range(args.reps):
            for m, fn in runs.items():
                t = time.perf_counter()
                out[m] = fn()
                times[m].append(time.perf_counter() - t)
        ev = GeodesicEvaluator.from_pair(pair, s1)
        p_pyfm = model.get_p2p()
        for m in runs:
            p2p = p_pyfm if m == "pyfm" else fmap_to_p2p(out[m], b1, b2)
            rows.append({"pair": pair.name, "method": m, "seconds": statistics.median(times[m]),
                         "all_seconds": times[m], "error_x100": ev.mean(p2p), "norm": float(out[m].norm())})
            print(f"{pair.name:24s} {m:16s} {rows[-1]['seconds']:6.2f} s   error ×100 {rows[-1]['error_x100']:5.2f}   "
                  f"‖C‖ {rows[-1]['norm']:.2f}")
    ratio = statistics.median([r["seconds"] for r in rows if r["method"] == "shapelib-direct"]) / \
        statistics.median([r["seconds"] for r in rows if r["method"] == "pyfm"])
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": config.threads(),
              "machine": f"{platform.machine()} · {os.cpu_count()} cores · torch {torch.__version__} · shared with other jobs", "settings": {k: v for k, v in s.items()},
              "reps": args.reps, "rows": rows, "shapelib_over_pyfm_time": ratio}
    print(f"shapelib (direct) / pyFM fit time: {ratio:.2f}× (median over pairs, {config.threads()} thread(s))")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
