"""DiffusionNet timings, side by side with the paper's Table 6.

    python benchmarks/diffusionnet.py              # 752, 10k and 184k vertices
    python benchmarks/diffusionnet.py --max-n 20000

For each mesh (bumpy tori of the paper's sizes): preprocessing (all operators, 128
eigenpairs, no cache), one training step (forward + backward + Adam, width 128, 4 blocks,
8-class segmentation, as in the paper's timing set-up) and inference, each the median of
several repetitions, on the CPU — and on a CUDA GPU when one is present. Writes
benchmarks/results/diffusionnet.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from _shapes import bumpy_torus, diffusionnet_step, median_time

HERE = Path(__file__).resolve().parent
SIZES = [(47, 16), (200, 50), (736, 250)]  # 752, 10,000, 184,000 vertices
PAPER = {752: (0.288, 0.019, 0.007), 10000: (3.55, 0.025, 0.010), 184000: (69.5, 0.379, 0.154)}  # s, Titan RTX


def main():
    from shapelib.operators import compute_operators

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-n", type=int, default=200_000)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for major, minor in SIZES:
        if major * minor > args.max_n:
            continue
        shape = bumpy_torus(major, minor)
        t = time.perf_counter()
        ops = compute_operators(shape, k=128, cache=False)
        pre = time.perf_counter() - t
        for dev in devices:
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
            step, net, x, o = diffusionnet_step(shape, ops, dev)

            def infer():
                with torch.no_grad():
                    net(x, o)

            reps = 5 if shape.n_vertices < 50_000 else 2
            step()  # warm-up
            train_s = median_time(step, reps, sync)
            infer_s = median_time(infer, reps, sync)
            rows.append({"n_vertices": shape.n_vertices, "device": dev, "preprocess_s": pre, "train_step_s": train_s,
                         "inference_s": infer_s, "paper_s": PAPER.get(shape.n_vertices)})
            print(f"  n={shape.n_vertices:>6} {dev}: pre {pre:.2f} s, step {train_s:.3f} s, infer {infer_s:.3f} s", flush=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    machine = f"{platform.node()} · {platform.machine()} · {os.cpu_count()} cores · {gpu} · torch {torch.__version__}"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "diffusionnet.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "machine": machine, "rows": rows,
         "paper": "Table 6, Titan RTX GPU (preprocessing on their CPU)"}, indent=2))
    print(f"\nDiffusionNet (width 128, 4 blocks, k=128) — {machine}")
    hdr = f"{'vertices':>9} {'device':>6} {'pre s':>7} {'train step s':>13} {'infer s':>8}   paper: pre / step / infer (s)"
    print(hdr + "\n" + "-" * len(hdr))
    for r in rows:
        p = r["paper_s"]
        print(f"{r['n_vertices']:>9} {r['device']:>6} {r['preprocess_s']:>7.2f} {r['train_step_s']:>13.3f} {r['inference_s']:>8.3f}   "
              + (f"{p[0]} / {p[1]} / {p[2]}" if p else "-"))


if __name__ == "__main__":
    main()
