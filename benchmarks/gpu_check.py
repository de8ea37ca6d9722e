"""One-command GPU verification of shapelib: correctness first, then timings and peak memory.

    make gpu-check                                  # = python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --budget 300     # seconds allowed for the timing part
    python benchmarks/gpu_check.py --cpu-smoke      # no GPU: correctness at small sizes (CI runs it)

On a CUDA machine (README, "GPU verification", says how to bring the few missing wheels):

1. Correctness on the device (each a PASS/FAIL with its measured error and tolerance):
   every soft-map backend (torch with float64-formed and float32 logits, SDPA, KeOps when its
   subprocess probe passes, dense float32) against the float64 dense reference computed on the
   device — values and gradients of ``Π @ X`` and ``Πᵀ @ Y`` at σ = 0.5 and at σ = 1e-2 on
   features of norm ~14 — and nearest / k-NN against a float64 brute force; DiffusionNet
   (spectral and implicit/CG diffusion) forward and backward on the device equal to the CPU;
   one MEPS, one implicit-matching and one CPNet (DGCNN + pull/push loss) step on the device
   equal to the CPU.
2. Timings (median of a few runs, ``torch.cuda.synchronize`` around each) and peak memory
   (``torch.cuda.max_memory_allocated``): one soft-map product + backward and one
   differentiable ZoomOut (k 30 → 130, σ = 1e-2, forward + backward) at n = 10k, 50k, 100k, 200k;
   DiffusionNet training step at 752 / 10k / 184k vertices; FeaStNet-S and MEPS training steps
   at 6,890 points. Every row is guarded: it is skipped when the time already spent plus its
   estimate (from the previous size) exceeds ``--budget``, and an out-of-memory error is
   recorded as such and the run goes on.

Writes ``benchmarks/results/gpu.json`` (device, versions, every figure; ``--out`` elsewhere) and
prints a table next to the papers' numbers. Exits non-zero when a correctness check fails.
``--cpu-smoke`` (automatic without CUDA) runs part 1 on the CPU at small sizes and the timing
code at toy sizes, writes only with ``--out``, and takes well under a minute.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # shapelib from this checkout (a GPU machine has no editable install)
from _shapes import bumpy_torus, diffusionnet_step, median_time  # noqa: E402

PAPER = {  # seconds, the papers' GPUs
    "dzo-100000": "5 s (Magnet & Ovsjanikov Table 3, 'Our Diff. ZoomOut', 100k; our goal ≤ 2 s)",
    "dzo-dense-100000": "OOM (their dense GPU Diff. ZoomOut at 100k)",
    "dn-752": "0.019 s (DiffusionNet Table 6, Titan RTX)",
    "dn-10000": "0.025 s (DiffusionNet Table 6, Titan RTX)",
    "dn-184000": "0.379 s (DiffusionNet Table 6, Titan RTX)",
    "meps-6890": "no timing in the MEPS paper",
}
SIZES_GPU = [10_000, 50_000, 100_000, 200_000]
SIZES_SMOKE = [500, 1_000]
DN_SIZES = [(47, 16), (200, 50), (736, 250)]  # 752, 10,000, 184,000 vertices (benchmarks/diffusionnet.py)


def rel(a, b) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def grad_rel(ps, qs) -> float:
    """Largest gradient difference over parameters, relative to the largest gradient of all."""
    scale = max(float(q.grad.abs().max()) for q in qs if q.grad is not None)
    return max(float((p.grad.double().cpu() - q.grad.double().cpu()).abs().max()) / max(scale, 1e-30)
               for p, q in zip(ps, qs) if q.grad is not None)


class Report:
    def __init__(self):
        self.checks, self.timings, self.t0 = [], [], time.perf_counter()

    def check(self, name: str, err: float | None, tol: float | None, detail: str = ""):
        ok = None if tol is None else bool(err is not None and err < tol)
        self.checks.append({"check": name, "error": err, "tol": tol, "ok": ok, "detail": detail})
        status = "info" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  [{status}] {name}: " + (f"{err:.1e}" if err is not None else "-")
              + (f" (tol {tol:.0e})" if tol else "") + (f"  {detail}" if detail else ""), flush=True)

    def fail(self, name: str, exc: BaseException):
        tail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-300:]
        self.checks.append({"check": name, "error": None, "tol": None, "ok": False, "detail": tail})
        print(f"  [FAIL] {name}: {tail}", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def peak_reset(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(dev) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None


# ============================================================================ 1. correctness


def _features(kind: str, n_src: int, n_tgt: int, p: int, g: torch.Generator):
    if kind == "sigma=0.5":
        return torch.randn(n_src, p, generator=g, dtype=torch.float64), torch.randn(n_tgt, p, generator=g, dtype=torch.float64), 0.5
    # σ = 1e-2 on features of norm ~14 (a 130-d spectral embedding's scale), clusters of ~10
    n_c = max(2, n_src // 10)
    centres = torch.randn(n_c, p, generator=g, dtype=torch.float64) * (200 / p) ** 0.5
    src = centres[torch.arange(n_src) % n_c] + 0.004 * torch.randn(n_src, p, generator=g, dtype=torch.float64)
    tgt = centres[torch.arange(n_tgt) % n_c] + 0.004 * torch.randn(n_tgt, p, generator=g, dtype=torch.float64)
    return src, tgt, 1e-2


def check_kernels(rep: Report, dev, small: bool):
    from shapelib import kernels
    from shapelib.kernels import SoftMap, keops_available, knn, nearest

    n_src, n_tgt, p = (300, 240, 16) if small else (3000, 2500, 32)
    if small:  # each KeOps formula compiles for seconds on a CPU; tests/test_kernels.py covers KeOps there
        keops_ok, reason = False, "not exercised in smoke mode"
    else:
        keops_ok, reason = keops_available(dev, timeout=90.0)
    rep.check(f"KeOps probe on {dev.type}", None, None, ("usable" if keops_ok else f"not usable: {reason}")
              + ("" if keops_ok or dev.type != "cuda" else " -> backend='auto' falls back to 'torch'"))
    if dev.type == "cuda":
        rep.check("SDPA kernel for the soft-map product", None, None, kernels.sdpa_kernel_name(dev))
    g = torch.Generator().manual_seed(0)
    for case in ("sigma=0.5", "sigma=1e-2"):
        src, tgt, sigma = _features(case, n_src, n_tgt, p, g)
        X = torch.randn(n_src, 7, generator=g, dtype=torch.float64)
        Y = torch.randn(n_tgt, 5, generator=g, dtype=torch.float64)
        f32 = [t.float().to(dev) for t in (src, tgt, X, Y)]
        f64 = [t.double() for t in f32]  # the same float32 numbers, in float64

        def run(ts, transpose, **kw):
            s, t, x, y = (v.clone().requires_grad_(True) for v in ts)
            pi = SoftMap(s, t, sigma, **kw)
            V = y if transpose else x
            out = pi.T @ V if transpose else pi @ V
            grads = torch.autograd.grad((out * torch.cos(out)).sum(), (s, t, V))
            return (out.detach(),) + grads

        variants = [("torch", {"backend": "torch"}, (1e-5, 3e-4)),
                    ("torch logits=float32", {"backend": "torch", "logits": "float32"},
                     (1e-4, 1e-3) if case == "sigma=0.5" else None),
                    ("sdpa", {"backend": "sdpa"}, (1e-4, 1e-3) if case == "sigma=0.5" else None),
                    ("dense float32", {"backend": "dense"}, (1e-4, 1e-3) if case == "sigma=0.5" else None)]
        if keops_ok:
            variants.append(("keops", {"backend": "keops"}, (1e-4, 1e-3)))
        for transpose in (False, True):
            what = "PiT@Y" if transpose else "Pi@X"
            ref = run(f64, transpose, backend="dense")
            for name, kw, tol in variants:
                label = f"soft map {name} {what} {case}"
                try:
                    got = run(f32, transpose, **kw)
                    ev = rel(got[0], ref[0])
                    eg = max(rel(a, b) for a, b in zip(got[1:], ref[1:]))
                    rep.check(label + " value", ev, tol and tol[0],
                              "" if tol else "float32 expansion error, reported only")
                    rep.check(label + " gradients", eg, tol and tol[1], "" if tol else "reported only")
                except Exception as exc:  # noqa: BLE001 - a broken backend is a finding, not a crash
                    rep.fail(label, exc)
    # nearest / k-NN against a float64 brute force (ties are impossible with random data)
    A = torch.randn(n_tgt, 8, generator=g, dtype=torch.float64)
    B = torch.randn(n_src, 8, generator=g, dtype=torch.float64)
    D = torch.cdist(A, B)
    for backend in ["torch", "kdtree"] + (["keops"] if keops_ok else []):
        try:
            nn_idx = nearest(B.float().to(dev), A.float().to(dev), backend=backend).cpu()
            k_idx = knn(A.float().to(dev), 5, Y=B.float().to(dev), backend=backend)[0].cpu()
            err = max(float((nn_idx != D.argmin(1)).float().mean()),
                      float((k_idx != D.topk(5, dim=1, largest=False).indices).float().mean()))
            rep.check(f"nearest/knn {backend}: fraction of indices differing from float64 brute force", err, 1e-3)
        except Exception as exc:  # noqa: BLE001
            rep.fail(f"nearest/knn {backend}", exc)


def _same_step(rep: Report, label: str, make, inputs_cpu, to_dev, dev, tol: float, train: bool = True):
    """Build one model, copy it to ``dev``, run forward + backward on both; compare outputs and
    every parameter gradient. ``make() -> model``; ``inputs_cpu`` the forward's arguments."""
    try:
        torch.manual_seed(0)
        m_cpu = make()
        m_dev = copy.deepcopy(m_cpu).to(dev)
        m_cpu.train(train), m_dev.train(train)
        out_c = m_cpu(*inputs_cpu)
        out_d = m_dev(*to_dev(inputs_cpu))
        w = torch.randn(out_c.shape, generator=torch.Generator().manual_seed(1))
        (out_c * w).sum().backward()
        (out_d * w.to(dev)).sum().backward()
        rep.check(f"{label}: output {dev.type} vs cpu", rel(out_d, out_c), tol)
        rep.check(f"{label}: gradients {dev.type} vs cpu", grad_rel(list(m_dev.parameters()), list(m_cpu.parameters())),
                  10 * tol)
        opt = torch.optim.Adam(m_dev.parameters(), lr=1e-3)
        opt.step()
        ok = all(torch.isfinite(p).all() for p in m_dev.parameters())
        rep.check(f"{label}: one optimiser step on {dev.type} gives finite weights", 0.0 if ok else 1.0, 0.5)
    except Exception as exc:  # noqa: BLE001
        rep.fail(label, exc)


def check_models(rep: Report, dev, small: bool):
    from shapelib.diffusion import DiffusionNet, input_features
    from shapelib.operators import compute_operators

    # DiffusionNet, spectral and implicit (CG) diffusion; eval mode (no dropout masks)
    shape = bumpy_torus(47, 16)
    ops = compute_operators(shape, k=64, cache=False)
    o_cpu, o_dev = ops.to_torch("cpu"), ops.to_torch(dev)
    x = input_features(shape, "xyz")
    for method in ("spectral", "implicit"):
        _same_step(rep, f"DiffusionNet {method} (752 v)",
                   lambda method=method: DiffusionNet(3, 8, width=32, n_blocks=2, method=method),
                   (x, o_cpu), lambda a: (a[0].to(dev), o_dev), dev, 1e-4, train=False)

    # MEPS (PointNet meta-learner → per-neighbourhood base learner), small meta-learner
    from shapelib.meps import PointSignatureNet, knn_graph

    rng = np.random.default_rng(0)
    u = rng.normal(size=(400 if small else 2000, 3))
    pts = torch.as_tensor(u / np.linalg.norm(u, axis=1, keepdims=True) * [0.25, 0.85, 0.15], dtype=torch.float32)
    gr = knn_graph(pts, 20)
    _same_step(rep, f"MEPS ({len(pts)} points)", lambda: PointSignatureNet(64, "meps", meta_widths=(32, 64, 128)),
               (pts, gr), lambda a: (a[0].to(dev), a[1].to(dev)), dev, 1e-4)

    # CPNet: DGCNN (dynamic k-NN by the kernel layer) + the pull/push loss
    from shapelib import cpnet

    n = 300 if small else 1024
    cl = torch.as_tensor(rng.normal(size=(n, 3)), dtype=torch.float32)
    labels = torch.as_tensor(rng.integers(0, 10, n // 4))
    set_dist = torch.as_tensor(rng.uniform(0.1, 1.0, (10, 10)), dtype=torch.float32)
    set_dist = (set_dist + set_dist.T) / 2

    class LossModel(torch.nn.Module):  # one scalar per step, so _same_step compares loss and gradients
        def __init__(self):
            super().__init__()
            self.net = cpnet.make_backbone("DGCNN", width=16, k=8)

        def forward(self, x, lab, sd):
            F = self.net(x)[: len(lab)]
            return cpnet.pull_push_loss(F, lab, sd)[0][None]

    _same_step(rep, f"CPNet DGCNN + pull/push loss ({n} points)", LossModel, (cl, labels, set_dist),
               lambda a: tuple(t.to(dev) for t in a), dev, 1e-4)

    # implicit feature matching: batched Gauss–Newton (vmap + jacfwd) along the latent path
    from shapelib import implicit as im

    try:
        torch.manual_seed(0)
        net = im.ImplicitNet(latent_dim=16, widths=(64, 64, 64, 32, 32, 16)).eval()
        zA, zB = torch.randn(16) * 0.3, torch.randn(16) * 0.3
        x0 = (torch.rand(128 if small else 2048, 3) - 0.5) * 0.8
        res = []
        for d in ("cpu", dev):
            nd = copy.deepcopy(net).to(d)
            phi = im.layer_feature_fn(nd, (3, 6), (1.0, 0.1))
            res.append(im.match_points(phi, x0.to(d), zA.to(d), zB.to(d), n_steps=3, n_iters=2).cpu())
        err = float((res[1] - res[0]).abs().max() / (res[0] - x0).abs().max().clamp_min(1e-12))
        rep.check(f"implicit matching ({len(x0)} points, 3 steps × 2 GN): displacement {dev.type} vs cpu", err, 1e-3)
    except Exception as exc:  # noqa: BLE001
        rep.fail("implicit matching", exc)


# ============================================================================ 2. timings


class Budget:
    """``seconds`` of the whole run (counted from ``rep``'s start, or from ``since`` seconds into it)."""

    def __init__(self, rep: Report, seconds: float, since: float = 0.0):
        self.rep, self.seconds, self.since = rep, seconds, since

    def spent(self) -> float:
        return self.rep.elapsed() - self.since

    def allows(self, estimate: float) -> bool:
        return self.spent() + estimate <= self.seconds


def timed_row(rep: Report, budget: Budget, dev, key: str, n: int, estimate: float, fn, reps: int = 3, **info):
    """Run ``fn`` once (warm-up, also the estimate of one call), then ``reps`` timed calls within the budget."""
    row = {"row": key, "n": n, **info}
    if not budget.allows(estimate):
        row.update(status=f"skipped: budget (estimated {estimate:.0f} s, {budget.spent():.0f} s spent)")
    else:
        try:
            peak_reset(dev)
            t = time.perf_counter()
            fn()
            sync(dev)
            first = time.perf_counter() - t
            reps = max(1, min(reps, int((budget.seconds - budget.spent()) // max(first, 1e-3)) - 1))
            row.update(seconds=median_time(fn, reps, lambda: sync(dev)), first_call_s=first, reps=reps,
                       peak_gib=peak_gib(dev), status="ok")
        except torch.cuda.OutOfMemoryError as exc:
            row.update(status="OOM", detail=str(exc).splitlines()[0][:200])
        except Exception as exc:  # noqa: BLE001
            row.update(status="error", detail="".join(traceback.format_exception_only(type(exc), exc)).strip()[-300:])
        finally:
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    row["paper"] = PAPER.get(f"{key.split(' ')[0]}-{n}")
    rep.timings.append(row)
    s = f"{row['seconds']:.3f} s" if "seconds" in row else row["status"]
    mem = f", peak {row['peak_gib']:.2f} GiB" if row.get("peak_gib") is not None else ""
    print(f"  {key:<34} n={n:>7}: {s}{mem}" + (f"   [paper: {row['paper']}]" if row["paper"] else ""), flush=True)
    return row


def _scale(prev: dict | None, n_prev: int, n: int, power: float, default: float) -> float:
    if prev is None or "first_call_s" not in prev:
        return default if prev is None else float("inf") if prev.get("status") in ("OOM",) else default
    return prev["first_call_s"] * (n / n_prev) ** power


def timings(rep: Report, dev, budget: Budget, smoke: bool):
    """The bounded rows first (DiffusionNet, MEPS), then the soft-map rows whose cost grows as n²."""
    from shapelib.kernels import keops_available

    backends = ["torch"] + (["keops"] if not smoke and keops_available(dev)[0] else [])
    sizes = SIZES_SMOKE if smoke else SIZES_GPU
    for part in (time_diffusionnet, time_meps, time_products, time_zoomout):
        try:
            part(rep, dev, budget, smoke, backends, sizes)
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the others
            rep.fail(f"timings: {part.__name__}", exc)


def time_products(rep: Report, dev, budget: Budget, smoke: bool, backends, sizes):
    from shapelib.kernels import SoftMap

    g = torch.Generator().manual_seed(0)
    # --- one soft-map product Π @ X + backward: p = 130 features (a ZoomOut embedding), X (n, 130)
    for backend, logits in [(b, "auto") for b in backends] + [("torch", "float32"), ("sdpa", "auto")]:
        prev, n_prev = None, 1
        for n in sizes:
            F1 = torch.randn(n, 130, generator=g).to(dev).requires_grad_(True)
            F2 = torch.randn(n, 130, generator=g).to(dev)
            X = torch.randn(n, 130, generator=g).to(dev).requires_grad_(True)

            def run():
                out = SoftMap(F1, F2, 1.0, backend=backend, logits=logits) @ X
                out.square().sum().backward()

            est = _scale(prev, n_prev, n, 2.0, 5.0)
            prev = timed_row(rep, budget, dev, f"product {backend}" + ("" if logits == "auto" else f" logits={logits}"),
                             n, est, run, what="Π @ X + backward, p = 130, X (n, 130)")
            n_prev = n
            del F1, F2, X


def time_zoomout(rep: Report, dev, budget: Budget, smoke: bool, backends, sizes):
    from shapelib.fmaps import diff_zoomout, p2p_to_fmap

    g = torch.Generator().manual_seed(0)
    # --- differentiable ZoomOut k 30 → 130, σ = 1e-2, forward + backward to C_init
    import zoomout as zb  # benchmarks/zoomout.py: its pair of bases (eigenbasis ≤ 25k, smooth synthetic above)

    for backend in backends + ["dense"]:
        prev, n_prev = None, 1
        for n in sizes:
            if backend == "dense" and (n > 20_000 if smoke or dev.type != "cuda" else
                                       3 * 4 * n * n > 0.6 * torch.cuda.mem_get_info()[0]):
                rep.timings.append({"row": "dzo dense", "n": n, "status": "skipped: n² floats exceed memory",
                                    "paper": PAPER.get(f"dzo-dense-{n}")})
                print(f"  {'dzo dense':<34} n={n:>7}: skipped (n² floats exceed memory)", flush=True)
                continue
            est = _scale(prev, n_prev, n, 2.0, 10.0)
            if not budget.allows(est + 10):
                timed_row(rep, budget, dev, f"dzo {backend}", n, est + 10, lambda: None)
                continue
            try:
                b1, b2, gt = _zoomout_pair(zb, n, dev)
            except Exception as exc:  # noqa: BLE001
                rep.timings.append({"row": f"dzo {backend}", "n": n, "status": f"error building the pair: {exc}"})
                continue
            C_gt = p2p_to_fmap(gt, b1, b2, 30, 30)
            C0 = (C_gt + 0.05 * torch.randn(30, 30, generator=g).to(C_gt)).contiguous()

            def run():
                C = C0.clone().requires_grad_(True)
                out = diff_zoomout(C, b1, b2, sigma=1e-2, n_iter=10, step=10, backend=backend)
                out.square().sum().backward()

            prev = timed_row(rep, budget, dev, f"dzo {backend}", b1.n, est, run, reps=2,
                             what="differentiable ZoomOut k 30→130 (10 × 10), σ = 1e-2, forward + backward")
            n_prev = n
            del b1, b2


def time_diffusionnet(rep: Report, dev, budget: Budget, smoke: bool, backends, sizes):
    # --- DiffusionNet training step, width 128, 4 blocks (benchmarks/diffusionnet.py's set-up)
    from shapelib.operators import compute_operators

    prev, n_prev = None, 1
    for major, minor in DN_SIZES[:1] if smoke else DN_SIZES:
        n = major * minor
        est_pre = 0.3 * n / 1000  # CPU preprocessing (k = 128 eigenpairs), a generous estimate
        if not budget.allows(est_pre + _scale(prev, n_prev, n, 1.0, 1.0) + 5):
            timed_row(rep, budget, dev, "dn", n, est_pre + 60, lambda: None)
            continue
        shape = bumpy_torus(major, minor)
        t = time.perf_counter()
        ops = compute_operators(shape, k=128, cache=False)
        pre = time.perf_counter() - t
        step = diffusionnet_step(shape, ops, dev)[0]
        prev = timed_row(rep, budget, dev, "dn", n, _scale(prev, n_prev, n, 1.0, 1.0), step, reps=5,
                         what="DiffusionNet training step, width 128, 4 blocks, spectral, xyz in, 8 classes",
                         preprocess_cpu_s=pre)
        n_prev = n


def time_meps(rep: Report, dev, budget: Budget, smoke: bool, backends, sizes):
    # --- MEPS vs FeaStNet-S training step (benchmarks/meps.py's set-up)
    import meps as mb

    cfg = "quick" if smoke else "paper"
    for relation in ("feast", "meps"):
        n, key = mb.CONFIGS[cfg]["n"], "meps" if relation == "meps" else "feastnet"
        row = {"row": key, "n": n, "what": f"{'MEPS' if relation == 'meps' else 'FeaStNet-S'} training step, "
                                           f"{cfg} set-up of benchmarks/meps.py (median after a warm-up)"}
        if not budget.allows(30.0):
            row["status"] = "skipped: budget"
        else:
            try:
                peak_reset(dev)
                r = mb.one(cfg, relation, dev.type, reps=2 if smoke else 3)
                row.update(seconds=r["train_step_s"], inference_s=r["inference_s"], parameters=r["parameters"],
                           peak_gib=r["peak_mem_MiB"] / 1024 if dev.type == "cuda" else None, status="ok")
            except torch.cuda.OutOfMemoryError as exc:
                row.update(status="OOM", detail=str(exc).splitlines()[0][:200])
            except Exception as exc:  # noqa: BLE001
                row.update(status="error", detail=str(exc)[-300:])
        row["paper"] = PAPER.get(f"{key}-{n}")
        rep.timings.append(row)
        print(f"  {key:<34} n={n:>7}: " + (f"{row['seconds']:.3f} s" if "seconds" in row else row["status"]), flush=True)


def _zoomout_pair(zb, n: int, dev):
    """Two discretisations of a bumpy torus with about ``n`` vertices and their k = 130 bases."""
    minor = 40 if n < 5000 else (100 if n <= 20_000 else 200)
    major = max(8, n // minor)
    zb.SIZES[f"gpu{n}"] = (major, minor)
    return zb._pair(f"gpu{n}", 130, dev, torch.float32)[:3]


# ============================================================================ main


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "numpy": np.__version__}
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("scipy", "scikit-learn", "potpourri3d", "robust-laplacian", "trimesh", "meshio", "pykeops"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    try:
        out["shapelib_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                                text=True, timeout=10).stdout.strip() or None
    except Exception:  # noqa: BLE001
        out["shapelib_commit"] = None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="correctness on the CPU at small sizes (automatic without CUDA)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds (whole run) after which timing rows are skipped")
    ap.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/gpu.json on CUDA; "
                                                            "none in smoke mode)")
    args = ap.parse_args(argv)
    smoke = args.cpu_smoke or not torch.cuda.is_available()
    dev = torch.device("cpu" if smoke else "cuda")
    torch.set_num_threads(min(2, os.cpu_count() or 1) if smoke else (os.cpu_count() or 1))
    out = args.out or (None if smoke else HERE / "results" / "gpu.json")
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"CPU ({platform.machine()}), smoke mode"
    print(f"shapelib GPU check on {name} — torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.get_num_threads()} CPU threads" + (" — NO CUDA: correctness at small sizes only" if smoke else ""),
          flush=True)
    rep = Report()
    print("\n1. correctness", flush=True)
    check_kernels(rep, dev, smoke)
    check_models(rep, dev, smoke)
    correctness_s = rep.elapsed()
    if smoke:  # toy sizes; the budget counts from here, so that a slow (shared) CPU still runs some rows
        budget = Budget(rep, min(args.budget, 30.0), since=rep.elapsed())
    else:
        budget = Budget(rep, args.budget)
    print(f"\n2. timings (budget {budget.seconds:.0f} s{' from here; toy sizes' if smoke else ' for the whole run'})",
          flush=True)
    try:
        timings(rep, dev, budget, smoke)
    except Exception as exc:  # noqa: BLE001 - keep the correctness results whatever happens here
        rep.fail("timings", exc)
    failed = [c for c in rep.checks if c["ok"] is False]
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "device": name, "mode": "cpu-smoke" if smoke else "cuda",
              "machine": f"{platform.machine()} · {os.cpu_count()} cores · {torch.get_num_threads()} torch threads",
              "versions": versions(), "correctness_s": correctness_s, "total_s": rep.elapsed(),
              "checks_passed": sum(c["ok"] is True for c in rep.checks), "checks_failed": len(failed),
              "checks": rep.checks, "timings": rep.timings, "paper": PAPER}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\n{'row':<34} {'n':>8} {'seconds':>9} {'peak GiB':>9}   paper")
    for r in rep.timings:
        s = f"{r['seconds']:.3f}" if "seconds" in r else r["status"].split(":")[0]
        m = f"{r['peak_gib']:.2f}" if r.get("peak_gib") is not None else "-"
        print(f"{r['row']:<34} {r['n']:>8} {s:>9} {m:>9}   {r.get('paper') or ''}")
    print(f"\n{result['checks_passed']} checks passed, {len(failed)} failed, in {rep.elapsed():.0f} s"
          + (f" -> {out}" if out else ""))
    for c in failed:
        print(f"  FAILED: {c['check']}  {c['detail']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
