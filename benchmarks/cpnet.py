"""mGE evaluation time (CPNet, Algorithm 1) for one category of 100 models × 2,048 points.

    python benchmarks/cpnet.py                 # 100 models, 12 sets, 128-d embeddings
    python benchmarks/cpnet.py --models 30     # smaller

Methods (same embeddings, same result up to ties):
``kernels-<backend>``  `shapelib.cpnet.mean_geodesic_error`: one chunked nearest-neighbour search
                       (`shapelib.kernels.nearest`) per model for ALL annotated points at once;
``dense-cdist``        the same grouping with a dense ``torch.cdist`` distance matrix per model;
``literal-loop``       Algorithm 1 as written (`mean_geodesic_error_loop`: one dense search per
                       (p, q) pair) — timed on a subset of models and extrapolated (× (M / m)²).
CPU rows always, CUDA rows (torch and KeOps backends) when a GPU is present. Writes
benchmarks/results/cpnet.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def synthetic_sets(n_models: int, n_points: int, n_sets: int, seed: int = 0):
    """Random clouds on a unit-diagonal sphere with ``n_sets`` keypoints (10 % absent) and
    Euclidean distances standing in for geodesics (timing does not depend on their values)."""
    from shapelib.cpnet import CorrespondenceSets

    rng = np.random.default_rng(seed)
    pts, kps, geo = [], [], []
    for _ in range(n_models):
        p = rng.standard_normal((n_points, 3))
        p = (p / np.linalg.norm(p, axis=1, keepdims=True) / (2 * np.sqrt(3))).astype(np.float32)
        kp = rng.choice(n_points, n_sets, replace=False)
        kp[rng.random(n_sets) < 0.1] = -1
        g = np.full((n_sets, n_points), np.nan, np.float32)
        have = kp >= 0
        g[have] = np.linalg.norm(p[kp[have]][:, None] - p[None], axis=-1)
        pts.append(p), kps.append(kp), geo.append(g)
    return CorrespondenceSets(pts, np.stack(kps), geo, source="synthetic: benchmark spheres")


def embeddings(sets, dim: int, device: str, seed: int = 0):
    """Embeddings with structure: the annotated points of a set share a code plus noise."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randn(sets.n_sets, dim, generator=g)
    out = []
    for m in range(sets.n_models):
        F = torch.randn(len(sets.points[m]), dim, generator=g)
        have = np.flatnonzero(sets.keypoints[m] >= 0)
        F[torch.as_tensor(sets.keypoints[m, have])] = codes[have] + 1.0 * torch.randn(len(have), dim, generator=g)
        out.append(F.to(device))
    return out


def mge_dense_cdist(sets, E) -> float:
    """Grouped like the kernel version, but a dense ``(P, n)`` ``torch.cdist`` matrix per model."""
    pm, pj, pi = sets.annotated()
    Q = torch.stack([E[m][i] for m, i in zip(pm, pi)])
    errs = []
    for qm in range(sets.n_models):
        rows = np.flatnonzero(sets.present[qm][pj])
        x = torch.cdist(Q[rows], E[qm]).argmin(1).cpu().numpy()
        errs.append(sets.geo[qm][pj[rows], x])
    return float(np.mean(np.concatenate(errs)))


def timed(fn, sync=lambda: None, reps: int = 3):
    out, val = [], None
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        val = fn()
        sync()
        out.append(time.perf_counter() - t)
    return float(np.median(out)), val


def table(result: dict) -> str:
    lines = [f"mGE evaluation, {result['n_models']} models × {result['n_points']} points, {result['n_sets']} sets, "
             f"{result['dim']}-d embeddings ({result['machine']})",
             f"{'device':<6} {'method':<30} {'time':>10} {'peak extra memory':>18} {'mGE':>8}"]
    for r in result["rows"]:
        mem = f"{r['peak_mb']:.0f} MB" if r.get("peak_mb") is not None else "—"
        lines.append(f"{r['device']:<6} {r['method']:<30} {r['seconds']:>9.3f}s {mem:>18} {r['mge']:>8.4f}")
    return "\n".join(lines)


def main():
    from shapelib import cpnet
    from shapelib.kernels import keops_available

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--points", type=int, default=2048)
    ap.add_argument("--sets", type=int, default=12)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--loop-models", type=int, default=12, help="models timed for the literal loop")
    args = ap.parse_args()
    sets = synthetic_sets(args.models, args.points, args.sets)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for dev in devices:
        E = embeddings(sets, args.dim, dev)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        backends = ["torch"] + (["keops"] if dev == "cuda" and keops_available(dev)[0] else [])
        for be in backends:
            cpnet.mean_geodesic_error(sets, E, backend=be)  # warm-up (KeOps compiles once)
            if dev == "cuda":
                torch.cuda.reset_peak_memory_stats()
            s, v = timed(lambda: cpnet.mean_geodesic_error(sets, E, backend=be), sync)
            peak = torch.cuda.max_memory_allocated() / 2**20 if dev == "cuda" else None
            rows.append(dict(device=dev, method=f"kernels-{be}", seconds=s, mge=v, peak_mb=peak))
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        s, v = timed(lambda: mge_dense_cdist(sets, E), sync)
        rows.append(dict(device=dev, method="dense-cdist", seconds=s, mge=v,
                         peak_mb=torch.cuda.max_memory_allocated() / 2**20 if dev == "cuda" else None))
        if dev == "cpu":
            m = min(args.loop_models, args.models)
            sub = sets.subset(range(m))
            Es = [e.cpu() for e in E[:m]]
            s, v = timed(lambda: cpnet.mean_geodesic_error_loop(sub, Es), reps=1)
            ref = cpnet.mean_geodesic_error(sub, Es)
            assert abs(v - ref) < 1e-6, "literal loop and kernel version disagree"
            rows.append(dict(device=dev, method=f"literal-loop ({m} models)", seconds=s, mge=v, peak_mb=None))
            rows.append(dict(device=dev, method=f"literal-loop (extrapolated)", seconds=s * (args.models / m) ** 2,
                             mge=float("nan"), peak_mb=None, extrapolated=True))
        print(f"{dev}: done")
    result = dict(n_models=args.models, n_points=args.points, n_sets=args.sets, dim=args.dim, rows=rows,
                  machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                          f"torch {torch.__version__}, threads {torch.get_num_threads()}"
                          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    out = HERE / "results" / "cpnet.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
