"""MEPS vs FeaStNet-S: one training step (forward + backward + Adam) and its peak memory.

    python benchmarks/meps.py                 # the paper's set-up (6,890 vertices) + a small quick one
    python benchmarks/meps.py --reps 2 --configs paper
    python benchmarks/meps.py --configs paper --label after --keep   # add rows, keep other labels'

Configurations: ``paper`` — a FAUST-sized point cloud (6,890 points, k = 20, 6,890 labels,
1,024-d PointNet meta-learner, Lin16+Conv32+Conv64+Conv128+Lin256+Lin6890, M = 9); ``quick`` —
a small CPU setting (300 points, 128 labels, 32–64–64 meta-learner; notebook 03's quick scale has the
same sizes with 300 labels, one per point, which changes only the last layer). Each (configuration,
model, device) runs in its own subprocess so that the CPU peak (``ru_maxrss``, whole process, minus
the baseline after imports and data set-up) is that step's alone; on CUDA the peak is
``torch.cuda.max_memory_allocated``. Step time is the median of ``--reps`` steps after one warm-up,
as wall time and as the process's CPU time (``time.process_time``; on a shared machine the wall
time grows with other processes' load, the CPU time of a one-thread run much less).
``--label`` names the code measured (e.g. ``before``/``after`` a change); ``--keep`` keeps the
rows of other labels already in the results file. Writes benchmarks/results/meps.json and prints
a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _shapes import median_time

HERE = Path(__file__).resolve().parent
CONFIGS = {
    "paper": dict(n=6890, n_labels=6890, meta_widths=(64, 128, 1024)),
    "quick": dict(n=300, n_labels=128, meta_widths=(32, 64, 64)),
}


def one(config: str, relation: str, device: str, reps: int) -> dict:
    """Time one configuration in this process (called in a subprocess by :func:`main`)."""
    import resource

    import numpy as np
    import torch

    from shapelib.meps import PointSignatureNet, knn_graph

    cfg = CONFIGS[config]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # a human-sized cloud: points on a 1.7 m tall ellipsoid-ish body, in metres
    u = rng.normal(size=(cfg["n"], 3))
    pts = torch.as_tensor(u / np.linalg.norm(u, axis=1, keepdims=True) * [0.25, 0.85, 0.15], dtype=torch.float32)
    t0 = time.perf_counter()
    graph = knn_graph(pts.to(device), 20)
    graph_s = time.perf_counter() - t0
    x = pts.to(device)
    y = torch.as_tensor(rng.integers(0, cfg["n_labels"], cfg["n"]), device=device)
    net = PointSignatureNet(cfg["n_labels"], relation, meta_widths=cfg["meta_widths"]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def step():
        loss = torch.nn.functional.cross_entropy(net(x, graph), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    c0 = time.process_time()
    step_s = median_time(step, reps, sync)
    cpu_s = (time.process_time() - c0) / reps
    with torch.no_grad():
        net.eval()
        sync()
        t = time.perf_counter()
        net(x, graph)
        sync()
        infer = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)
    return {"config": config, "model": {"feast": "FeaStNet-S", "meps": "MEPS"}[relation], "device": device,
            "n_points": cfg["n"], "n_labels": cfg["n_labels"], "meta_dim": cfg["meta_widths"][-1],
            "parameters": sum(p.numel() for p in net.parameters()), "knn_graph_s": graph_s,
            "train_step_s": step_s, "train_step_cpu_s": cpu_s, "inference_s": infer, "peak_mem_MiB": peak,
            "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--configs", nargs="+", default=["quick", "paper"], choices=list(CONFIGS))
    ap.add_argument("--label", default="current", help="name of the code measured (kept in each row)")
    ap.add_argument("--keep", action="store_true", help="keep rows with other labels from the results file")
    ap.add_argument("--one", nargs=3, metavar=("CONFIG", "RELATION", "DEVICE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, reps=args.reps)))
        return
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for config in args.configs:
        for dev in devices:
            for relation in ("feast", "meps"):
                out = subprocess.run([sys.executable, __file__, "--reps", str(args.reps), "--one", config, relation, dev],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                r["label"] = args.label
                rows.append(r)
                print(f"  {config:6s} {r['model']:10s} {dev}: step {r['train_step_s']:.3f} s, "
                      f"peak {r['peak_mem_MiB']:.0f} MiB", flush=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    machine = (f"{platform.node()} · {platform.machine()} · {os.cpu_count()} cores · {gpu} · torch {torch.__version__}"
               f" · OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / "meps.json"
    kept = []
    if args.keep and path.exists():
        old = json.loads(path.read_text())
        kept = [dict(r, machine=r.get("machine", old.get("machine")), date=r.get("date", old.get("date")))
                for r in old.get("rows", []) if r.get("label", "current") != args.label]
    for r in rows:
        r["machine"], r["date"] = machine, time.strftime("%Y-%m-%d")
    rows = kept + rows
    path.write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "machine": machine, "rows": rows,
         "paper": "no timings reported; set-up of §4.2 (6,890 vertices, k = 20, 1,024-d meta-learner)",
         "note": "CPU peak = process max RSS growth during the steps (includes allocator slack); "
                 "GPU rows appear only when CUDA is available"}, indent=2))
    print(f"\nMEPS vs FeaStNet-S, one training step (forward + backward + Adam) — {machine}")
    hdr = (f"{'label':>10} {'config':>7} {'model':>11} {'device':>6} {'points':>7} {'params':>11} {'step s':>8} "
           f"{'step cpu s':>10} {'infer s':>8} {'peak MiB':>9} {'threads':>7}")
    print(hdr + "\n" + "-" * len(hdr))
    for r in rows:
        print(f"{r.get('label', 'current'):>10} {r['config']:>7} {r['model']:>11} {r['device']:>6} {r['n_points']:>7} "
              f"{r['parameters']:>11,} {r['train_step_s']:>8.3f} {r.get('train_step_cpu_s', float('nan')):>10.3f} "
              f"{r['inference_s']:>8.3f} {r['peak_mem_MiB']:>9.0f} {r.get('threads', '?'):>7}")
    for config in args.configs:
        for dev in devices:
            f, m = ([r for r in rows if r["config"] == config and r["device"] == dev and r["model"] == k
                     and r.get("label", "current") == args.label][0] for k in ("FeaStNet-S", "MEPS"))
            print(f"{config} / {dev}: MEPS step {m['train_step_s'] / f['train_step_s']:.1f}× FeaStNet-S's, "
                  f"memory {m['peak_mem_MiB'] / max(f['peak_mem_MiB'], 1):.1f}×")
            for r in rows:
                if (r.get("label", "current") != args.label and r["config"] == config and r["device"] == dev
                        and r["model"] == "MEPS"):
                    print(f"  MEPS '{args.label}' vs '{r.get('label', 'current')}': step (CPU time) "
                          f"{r.get('train_step_cpu_s', r['train_step_s']) / m['train_step_cpu_s']:.1f}× faster, "
                          f"peak memory {r['peak_mem_MiB'] / max(m['peak_mem_MiB'], 1):.1f}× smaller")


if __name__ == "__main__":
    main()
