"""What float64-formed logits cost and buy for float32 soft maps (shapelib.kernels, "Precision").

    python benchmarks/softmap_precision.py            # n = 5k and 10k, one thread
    python benchmarks/softmap_precision.py --sizes 2000 --threads 2

Features: the spectral embedding of a bumpy torus (k = 130 Laplace–Beltrami eigenvectors,
unit area: |Φ_i|² up to ~140) against a second discretisation of the same torus, σ = 1e-2 —
the differentiable-ZoomOut setting. For ``logits='float32'`` (the old behaviour: the GEMM
expansion in float32) and ``'auto'`` (float64 logits when the float32 error estimate exceeds
``LOGIT_TOL``): the error of ``Π @ Φ`` and of its gradients against float64 on the same float32
inputs, and the time of one product + backward (wall and process CPU time); then one
differentiable ZoomOut (k 30 → 130, forward + backward) with the old and the new logits.
Writes benchmarks/results/softmap_precision.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def clock(fn):
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import zoomout as zb  # its two-discretisation torus pair and eigenbases

    from shapelib import kernels
    from shapelib.fmaps import diff_zoomout, p2p_to_fmap
    from shapelib.kernels import SoftMap

    rows = []
    machine = (f"{platform.machine()} · {os.cpu_count()} cores · torch {torch.__version__} · "
               f"{args.threads} torch thread(s)")

    def save():  # after every size, so that a stopped run keeps what it measured
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "softmap_precision.json").write_text(json.dumps(
            {"date": time.strftime("%Y-%m-%d"), "machine": machine, "threads": args.threads, "sigma": 1e-2,
             "features": "k = 130 eigenbasis of a bumpy torus (unit area) vs a second discretisation",
             "reference": "float64 on the same float32 inputs",
             "note": "cpu_s = process CPU time (one thread: robust to other processes' load); wall_s is not",
             "rows": rows}, indent=2))

    for n in args.sizes:
        minor = 50 if n <= 5000 else 100
        zb.SIZES[f"p{n}"] = (n // minor, minor)
        b1, b2, gt, _ = zb._pair(f"p{n}", 130, torch.device("cpu"), torch.float32)
        F1, F2, X = b1.evecs, b2.evecs, b1.evecs

        def run(dtype, logits):
            f1, f2, x = (t.to(dtype).clone().requires_grad_(True) for t in (F1, F2, X))
            out = SoftMap(f1, f2, 1e-2, backend="torch", logits=logits) @ x
            g = torch.autograd.grad((out * torch.cos(out)).sum(), (f1, f2, x))
            return (out.detach(),) + g

        ref = run(torch.float64, "auto")
        for logits in ("float32", "auto"):
            got = run(torch.float32, logits)
            err = [float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(got, ref)]
            wall, cpu = min(clock(lambda: run(torch.float32, logits)) for _ in range(2))
            rows.append({"what": "product+backward", "n": b1.n, "logits": logits,
                         "logit_dtype": str(kernels.logit_dtype(F2, F1, 1e-2, logits)).replace("torch.", ""),
                         "err_value": err[0], "err_grad_F_src": err[1], "err_grad_F_tgt": err[2], "err_grad_X": err[3],
                         "wall_s": wall, "cpu_s": cpu})
            print(f"  n={b1.n} product+backward logits={logits:<7}: value err {err[0]:.1e}, grad err "
                  f"{max(err[1:]):.1e}, {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
        # one differentiable ZoomOut, the old (float32 logits) and the new default
        C_gt = p2p_to_fmap(gt, b1, b2, 30, 30)
        C0 = (C_gt + 0.05 * torch.randn(30, 30, generator=torch.Generator().manual_seed(0))).contiguous()
        outs = {}
        for label, tol in (("float32", float("inf")), ("auto", kernels.LOGIT_TOL)):
            old, kernels.LOGIT_TOL = kernels.LOGIT_TOL, tol
            try:
                def dzo():
                    C = C0.clone().requires_grad_(True)
                    out = diff_zoomout(C, b1, b2, sigma=1e-2, n_iter=10, step=10, backend="torch")
                    out.square().sum().backward()
                    outs[label] = (out.detach(), C.grad)

                wall, cpu = clock(dzo)
            finally:
                kernels.LOGIT_TOL = old
            rows.append({"what": "diff_zoomout 30->130 fwd+bwd", "n": b1.n, "logits": label, "wall_s": wall, "cpu_s": cpu})
        C64 = C0.double().clone().requires_grad_(True)
        out64 = diff_zoomout(C64, b1.to(dtype=torch.float64), b2.to(dtype=torch.float64), sigma=1e-2, n_iter=10, step=10, backend="torch")
        out64.square().sum().backward()
        for r in rows[-2:]:
            o, gr = outs[r["logits"]]
            r["err_C"] = float((o.double() - out64.detach()).abs().max() / out64.detach().abs().max())
            # (σ = 1e-2 can make every soft map one-hot: then the float64 gradient is exactly 0 and
            # this is the absolute size of what float32 rounding leaves instead)
            r["err_grad_C_init"] = float((gr.double() - C64.grad).abs().max() / C64.grad.abs().max().clamp_min(1.0)
                                         if C64.grad.abs().max() == 0 else
                                         (gr.double() - C64.grad).abs().max() / C64.grad.abs().max())
            r["grad_C_init_float64_max"] = float(C64.grad.abs().max())
            print(f"  n={b1.n} diff_zoomout logits={r['logits']:<7}: C err {r['err_C']:.1e}, dC_init err "
                  f"{r['err_grad_C_init']:.1e}, {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU", flush=True)
        save()
    print(f"\nfloat32 soft map at sigma = 1e-2 — {machine}")
    print(f"{'what':<30} {'n':>6} {'logits':>8} {'value/C err':>12} {'grad err':>9} {'wall s':>7} {'CPU s':>7}")
    for r in rows:
        e = r.get("err_value", r.get("err_C"))
        g = max(r.get(k, 0.0) for k in ("err_grad_F_src", "err_grad_F_tgt", "err_grad_X", "err_grad_C_init"))
        print(f"{r['what']:<30} {r['n']:>6} {r['logits']:>8} {e:>12.1e} {g:>9.1e} {r['wall_s']:>7.2f} {r['cpu_s']:>7.2f}")


if __name__ == "__main__":
    main()
