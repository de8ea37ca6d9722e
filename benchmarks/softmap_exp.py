"""What three CPU changes of the torch soft-map kernel buy: the exponential floor
(``shapelib.kernels.EXP_FLOOR``), blocks of at most ``kernels.CPU_ROWS`` rows, and denormal floats
flushed to zero (``kernels.FLUSH_DENORMALS``).

    python benchmarks/softmap_exp.py                 # one thread; + one fmaps training step if FAUST_r is there
    python benchmarks/softmap_exp.py --threads 2 --no-step

At small σ almost every entry of a soft map's row is exp(very negative): the CPU computes those on
a slow underflow path, so the kernel raises the shifted logits to ``EXP_FLOOR`` (-80) first. And a
block of 256 rows stays in cache through the half-dozen passes over it, where the old byte budget
(134 MB blocks) streamed each pass from memory. The backward pass multiplies entries near
exp(-80) ≈ 2e-35 by small gradients: below float32's smallest normal (1.2e-38), where some CPUs take
a slow path for every operation, so the kernel flushes such denormals to zero. For each case below,
in one run and interleaved (so that machine load hits all alike), the time of one ``SoftMap @ X``
product + backward with the old kernel (no floor, byte-budget blocks, denormals kept), with the
floor, with the floor and 256-row blocks, and with all three, the ratios to the old kernel, and the
largest relative difference of the output and gradients:

* learned-feature soft map: 32-d features, σ = 1e-2 × their diameter (the fmaps training's
  ``relative_sigma``), X the 20 first eigenvectors (C_init);
* ZoomOut soft map: a 130-d spectral embedding at σ = 1e-2, X the 130 eigenvectors;
* one training step of ``fmaps_faust_r_unsupervised`` (width 256, full-resolution FAUST_r pair
  000/001, forward + backward, untrained weights), when the data is found;
* one training step of ``fmaps_faust_r_unsupervised_full_decimated`` at its committed (trained)
  weights, on its first training pair (decimated shapes): trained features give the small gradients
  that produce denormals.

Writes benchmarks/results/softmap_exp.json and prints a table (the thread count with it).
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


VARIANTS = {"old": (None, 10**9, False), "floor": (-80.0, 10**9, False), "floor + 256-row blocks": (-80.0, 256, False),
            "floor + 256-row blocks + flushed denormals": (-80.0, 256, True),
            "256-row blocks + flushed denormals (no floor)": (None, 256, True)}


def timed(fn, variants, reps):
    """Best time and last output of ``fn`` under each variant (EXP_FLOOR, CPU_ROWS, FLUSH_DENORMALS), interleaved."""
    from shapelib import kernels

    best, out = {v: float("inf") for v in variants}, {}
    for _ in range(reps):
        for v, (floor, rows, flush) in variants.items():
            kernels.EXP_FLOOR, kernels.CPU_ROWS, kernels.FLUSH_DENORMALS = floor, rows, flush
            t = time.perf_counter()
            out[v] = fn()
            best[v] = min(best[v], time.perf_counter() - t)
    return best, out


def row(case, n, best, out, keys):
    old = out["old"]
    return {"case": case, "n": n, "seconds": best,
            "speedup": {v: best["old"] / t for v, t in best.items() if v != "old"},
            "rel_diff": {v: {k: rel(a, b) for k, a, b in zip(keys, out[v], old)} for v in out if v != "old"}}


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def product_case(F1, F2, X, sigma):
    """One Π @ X (Π from F2 rows to F1 columns) + backward; returns (out, dF1, dF2)."""
    import torch

    from shapelib.kernels import SoftMap

    def run():
        a, b = F1.detach().clone().requires_grad_(True), F2.detach().clone().requires_grad_(True)
        out = SoftMap(a, b, sigma, backend="torch") @ X
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        return out.detach(), a.grad, b.grad

    return run


def grads(model):
    """Every parameter gradient of ``model``, flattened into one vector."""
    import torch

    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def step_row(case, n, step, reps, label):
    """Time one training step ``step() -> (loss, gradients)`` under every variant; its row, printed."""
    best, out = timed(step, VARIANTS, reps)
    r = row(case, n, best, out, ("loss", "grad"))
    print(f"{label}: " + ", ".join(f"{v} {t:.1f} s" for v, t in best.items())
          + f"; speed-up {r['speedup']}; rel. diff {r['rel_diff']}", flush=True)
    return r


def trained_step(reps):
    """One training step of the decimated whole-budget fmaps run at its committed weights."""
    import torch

    from shapelib.experiments import registry as protocols

    name = "fmaps_faust_r_unsupervised_full_decimated"
    model, record = protocols.load_model(name)
    proto = protocols.get(name)
    item = proto.train_items(proto.config, torch.device("cpu"))[0]
    loss_fn = proto.loss(proto.config)
    model.train()

    def step():
        torch.manual_seed(0)
        loss_fn.start_epoch(record["epochs_done"])     # the same step of the schedule every time
        model.zero_grad()
        loss = loss_fn(model, item)
        loss.backward()
        return loss.detach(), grads(model)

    return step_row(f"{name} training step at its committed weights ({record['steps_done']} steps), first training "
                    "pair (decimated)", int(item[0].x.shape[0]), step, reps, "trained-weights step")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--step-reps", type=int, default=2)
    ap.add_argument("--no-step", action="store_true", help="leave out the fmaps training step")
    args = ap.parse_args()
    os.environ["SHAPELIB_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    import zoomout as zb  # its two-discretisation torus pair and eigenbases

    from shapelib import config, kernels
    from shapelib.fmaps import embedding_diameter

    floor, cpu_rows, flush = kernels.EXP_FLOOR, kernels.CPU_ROWS, kernels.FLUSH_DENORMALS
    rows = []
    zb.SIZES["p5000"] = (100, 50)                                  # 5,000 vertices
    b1, b2, _, _ = zb._pair("p5000", 130, torch.device("cpu"), torch.float32)
    g = torch.Generator().manual_seed(0)
    feats1 = torch.randn(b1.evecs.shape[0], 32, generator=g) * 0.3   # stand-ins for learned features
    feats2 = torch.randn(b2.evecs.shape[0], 32, generator=g) * 0.3
    cases = {
        "learned features (32-d, relative σ 1e-2), X = 20 eigenvectors":
            product_case(feats1, feats2, b1.evecs[:, :20], 1e-2 * float(embedding_diameter(feats2))),
        "ZoomOut embedding (130-d, σ 1e-2), X = 130 eigenvectors":
            product_case(b1.evecs, b2.evecs, b1.evecs, 1e-2),
    }
    for name, run in cases.items():
        best, out = timed(run, VARIANTS, args.reps)
        rows.append(row(name, b1.evecs.shape[0], best, out, ("out", "dF1", "dF2")))
        print(f"{name}: " + ", ".join(f"{v} {t:.2f} s" for v, t in best.items())
              + f"; speed-up {rows[-1]['speedup']}; rel. diff {rows[-1]['rel_diff']}", flush=True)
    if not args.no_step:
        from shapelib.data import registry

        if registry.get("faust_r").found():
            from shapelib.experiments import fmaps as P
            from shapelib.data import real
            from shapelib.fmaps import pair_losses

            cfg = P.FM_CONFIG
            d = [P.fm_shape_data(it.shape, cfg, "cpu") for it in real.r_dataset("faust_r", ["tr_reg_000", "tr_reg_001"])]
            torch.manual_seed(0)
            model = P._fm_build(cfg)
            fm = P.fm_train_config(cfg)

            def step():
                model.zero_grad()
                loss = pair_losses(model(d[0].x, d[0].ops), model(d[1].x, d[1].ops), d[0].basis, d[1].basis, fm,
                                   progress=0.5, refine=True)["loss"]
                loss.backward()
                return loss.detach(), grads(model)

            rows.append(step_row("fmaps_faust_r_unsupervised training step (width 256, FAUST_r 000/001 full resolution)",
                                 d[0].x.shape[0], step, args.step_reps, "training step"))
            rows.append(trained_step(args.step_reps))
        else:
            print("training steps left out: FAUST_r not found (SHAPELIB_DATA)")
    kernels.EXP_FLOOR, kernels.CPU_ROWS, kernels.FLUSH_DENORMALS = floor, cpu_rows, flush
    result = {"what": "torch soft-map kernel on CPU: old, with the exponential floor (kernels.EXP_FLOOR), with "
                      "the floor and blocks of at most kernels.CPU_ROWS rows, and with denormals flushed to zero too "
                      "(kernels.FLUSH_DENORMALS)",
              "variants": {v: {"exp_floor": f, "cpu_rows": r if r < 10**9 else "old byte budget", "flush_denormals": z}
                           for v, (f, r, z) in VARIANTS.items()},
              "threads": args.threads,
              "machine": f"{platform.machine()} · {os.cpu_count()} cores · {args.threads} torch thread(s) · "
                         f"torch {torch.__version__} · {torch.backends.cpu.get_cpu_capability()} "
                         "· the machine may be shared with other jobs",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows,
              "note": "time: best of the repetitions, the variants interleaved in one run; rel_diff: largest "
                      "|new − old| / largest |old| over the entries"}
    out = HERE / "results" / "softmap_exp.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out.relative_to(HERE.parent)} ({config.threads()} thread(s))")


if __name__ == "__main__":
    main()
