"""Time and peak memory to build all operators (L, M, 128 eigenpairs, frames, gradients).

    python benchmarks/operators.py            # ~1k, ~10k, ~50k-vertex meshes (+ FAUST if found)
    python benchmarks/operators.py --quick    # ~1k and ~10k only

Each size runs in a fresh subprocess so that peak RSS (which includes SuperLU/ARPACK work
arrays that Python's tracemalloc cannot see) belongs to that size alone. Writes
benchmarks/results/operators.json and prints a table. Also times plain scipy
``eigsh(L, k, M, sigma)`` on the same matrices as the baseline our solver is compared to.
Target (issue #2): ≤ 1.5 s for all operators at 10k vertices on 2 CPU cores; the
DiffusionNet paper reports 3.55 s at 10k vertices (Table 6, their CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from _shapes import bumpy_torus

HERE = Path(__file__).resolve().parent
SIZES = {"1k": (64, 16), "10k": (200, 50), "50k": (500, 100)}  # torus sections -> n = a*b vertices


def measure(label: str) -> dict:
    """Runs inside the child process."""
    import numpy as np
    import scipy.sparse as sp
    import scipy.sparse.linalg as sla

    from shapelib import Shape, config
    from shapelib.operators import compute_operators, eigenbasis, laplacian

    if label == "faust":
        path = config.data_root() / "faust_registrations" / "tr_reg_000.ply"
        shape = Shape.read(path)
    else:
        shape = bumpy_torus(*SIZES[label])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    ops = compute_operators(shape, k=128, cache=False)
    total = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # breakdown + baseline (after the peak measurement)
    t = time.perf_counter(); L, M = laplacian(shape); t_lap = time.perf_counter() - t
    t = time.perf_counter(); ev, _ = eigenbasis(L, M, k=128); t_eig = time.perf_counter() - t
    t = time.perf_counter()
    ev_ref, _ = sla.eigsh(L.tocsc(), k=128, M=sp.diags(M).tocsc(), sigma=-1e-8, which="LM")
    t_ref = time.perf_counter() - t
    return {
        "label": label, "n_vertices": shape.n_vertices, "n_faces": shape.n_faces,
        "total_s": total, "laplacian_s": t_lap, "eigen_s": t_eig, "scipy_generalized_eigsh_s": t_ref,
        "eig_max_rel_diff_vs_scipy": float(np.max(np.abs(np.sort(ev_ref) - ev)[1:] / ev[1:])),
        "peak_rss_mb": rss1 / 1024, "rss_before_mb": rss0 / 1024, "peak_increase_mb": (rss1 - rss0) / 1024,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the ~1k and ~10k meshes")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    from shapelib import config

    labels = ["1k", "10k"] if args.quick else ["1k", "10k", "50k"]
    if (config.data_root() / "faust_registrations" / "tr_reg_000.ply").exists():
        labels.insert(1, "faust")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    rows = []
    for label in labels:
        out = subprocess.run([sys.executable, __file__, "--child", label], capture_output=True, text=True, env=env)
        if out.returncode:
            sys.exit(f"benchmark {label} failed:\n{out.stderr}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  {label:>5}: n={r['n_vertices']:>6}  {r['total_s']:.2f} s", flush=True)
    machine = f"{platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · OMP_NUM_THREADS={env['OMP_NUM_THREADS']}"
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "python": platform.python_version(),
              "rows": rows, "target": "<= 1.5 s for all operators at 10k vertices (2 CPU cores)",
              "paper": {"DiffusionNet Table 6 precompute": {"752": 0.288, "10k": 3.55, "184k": 69.5}}}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "operators.json").write_text(json.dumps(result, indent=2))
    print(f"\nAll operators (L, M, 128 eigenpairs, frames, gradients) — {machine}")
    hdr = f"{'mesh':>6} {'vertices':>9} {'total s':>8} {'L+M s':>7} {'eig s':>7} {'scipy eigsh s':>14} {'peak MB':>8} {'paper s':>8}"
    print(hdr + "\n" + "-" * len(hdr))
    paper = {"1k": "0.288*", "10k": "3.55", "50k": "-", "faust": "-"}
    for r in rows:
        print(f"{r['label']:>6} {r['n_vertices']:>9} {r['total_s']:>8.2f} {r['laplacian_s']:>7.3f} {r['eigen_s']:>7.2f} "
              f"{r['scipy_generalized_eigsh_s']:>14.2f} {r['peak_increase_mb']:>8.0f} {paper[r['label']]:>8}")
    print("paper: DiffusionNet Table 6 precompute on their CPU (*752 vertices). 'peak MB': RSS increase while building.")
    ten = next(r for r in rows if r["label"] == "10k")
    print(f"10k-vertex target <= 1.5 s: {'MET' if ten['total_s'] <= 1.5 else 'MISSED'} ({ten['total_s']:.2f} s)")


if __name__ == "__main__":
    main()
