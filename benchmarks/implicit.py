"""Implicit feature matching throughput: points matched per second.

    python benchmarks/implicit.py                 # 10k points, 50 steps × 3 Gauss–Newton iterations
    python benchmarks/implicit.py --points 2000 --widths small
    python benchmarks/implicit.py --imnet-points 500      # CPU-friendly: fewer points for the paper's widths

An untrained IM-Net decoder (timing does not depend on the weights) with layer 3 + 0.1·layer 6
features (the paper's deformation setting), codes of 256 (IM-Net widths) or 32 (small widths).
Each Gauss–Newton iteration evaluates Φ and its 3-column Jacobian for every point with
``vmap(jacfwd)`` and solves the batched 3×3 systems. CPU always; CUDA when present. Writes
benchmarks/results/implicit.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def main():
    from shapelib import implicit as im

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--widths", choices=("imnet", "small", "both"), default="both")
    ap.add_argument("--imnet-points", type=int, default=None,
                    help="points for the IM-Net widths (default: --points); points/s is what is compared")
    ap.add_argument("--chunk", type=int, default=4096)
    args = ap.parse_args()
    configs = {"imnet": (256, im.IMNET_WIDTHS), "small": (32, im.imnet_widths(16))}
    names = ["small", "imnet"] if args.widths == "both" else [args.widths]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for dev in devices:
        for name in names:
            k, widths = configs[name]
            torch.manual_seed(0)
            net = im.ImplicitNet(k, widths).to(dev).eval()
            for p in net.parameters():
                p.requires_grad_(False)
            phi = im.layer_feature_fn(net, (3, 6), (1.0, 0.1))
            n_pts = args.imnet_points if (name == "imnet" and args.imnet_points) else args.points
            x0 = torch.rand(n_pts, 3, device=dev) - 0.5
            zA, zB = 0.1 * torch.randn(k, device=dev), 0.1 * torch.randn(k, device=dev)
            im.match_points(phi, x0[:64], zA, zB, n_steps=1, n_iters=1)  # warm-up
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
            sync()
            t = time.perf_counter()
            im.match_points(phi, x0, zA, zB, n_steps=args.steps, n_iters=args.iters, chunk=args.chunk)
            sync()
            sec = time.perf_counter() - t
            rows.append(dict(device=dev if dev == "cpu" else torch.cuda.get_device_name(), widths=name,
                             hidden=list(widths), latent=k, points=n_pts, steps=args.steps, iters=args.iters,
                             seconds=round(sec, 3), points_per_second=round(n_pts / sec, 1),
                             threads=torch.get_num_threads()))
            print(f"{rows[-1]['device']:>12s}  {name:6s} widths {str(widths):34s} {n_pts:6d} pts  "
                  f"{sec:8.2f} s  {n_pts / sec:10.1f} points/s", flush=True)
    out = dict(benchmark="implicit feature matching (50 steps × 3 Gauss–Newton iterations, layer 3 + 0.1·6)",
               machine=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
               torch=torch.__version__, cuda=torch.cuda.is_available(), rows=rows)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "implicit.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {HERE / 'results' / 'implicit.json'}")


if __name__ == "__main__":
    main()
