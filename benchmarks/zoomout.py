"""ZoomOut time and peak memory vs mesh size — the paper's Table 3 and Figure 4, side by side.

    python benchmarks/zoomout.py            # n ≈ 5k, 20k, 100k (+ memory curve 1k–20k)
    python benchmarks/zoomout.py --quick    # n ≈ 5k only

Every measurement runs in a fresh subprocess so its peak memory is its own: on CPU the peak
resident set size (``VmHWM``, reset just before the call) minus the RSS then; on CUDA
``torch.cuda.max_memory_allocated``. ZoomOut: k 30 → 130, 10 iterations of step 10 (the
paper's differentiable setting; the classic rows use the same schedule), σ = 1e-2.

Rows (``method``):
  ``kdtree``       classic ZoomOut, hard NN by a scipy cKDTree rebuilt every iteration (the
                   straightforward CPU implementation: the paper's "CPU ZoomOut").
  ``nn-<backend>`` classic ZoomOut, hard NN by shapelib.kernels (exact brute force);
                   ``+s2000``: intermediate iterations on 2,000 area-uniform samples per shape
                   (the ZoomOut paper's acceleration), last step full.
  ``soft-dense``   differentiable ZoomOut with the dense n×n soft map (the "GPU Diff. ZoomOut").
  ``soft-<b>``     differentiable ZoomOut through SoftMap backend ``b`` (forward only: "Our
                   ZoomOut" with soft maps) and ``soft-<b>+bwd`` (forward + backward to C_init).
Meshes: a bumpy torus (synthetic, dense); real eigenbases (k = 130) up to 20k vertices, a
synthetic M-orthonormal smooth basis at 100k (ZoomOut's cost does not depend on which basis).
Pair: two discretisations of the same torus (shape 2 has ~2 % more sections and is turned by a
third of a section), ground truth = nearest vertex in R³; C_init = the ground-truth fmap in 30
functions + noise; ``fmap_error`` = ‖C[:30,:30] − C_gt‖ / ‖C_gt‖ after ZoomOut.
Combinations whose time extrapolated (∝ n²) from a smaller size exceeds ``--max-seconds``
(default 60) are skipped and marked so; dense rows are skipped when n² floats exceed memory.
Writes benchmarks/results/zoomout.json and prints a table with the paper's numbers beside ours.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _shapes import bumpy_torus  # noqa: E402  (the shared benchmark meshes)

from shapelib.experiments.fmaps_axiomatic import zoomout_benchmark_table as table  # noqa: E402
SIZES = {"5k": (100, 50), "20k": (200, 100), "100k": (500, 200)}  # torus sections → n = a·b
REAL_SIZE = "5k FAUST_r"  # measured when ../shared/data (SHAPELIB_DATA) has FAUST_r
MEMORY_SIZES = {"1k": (40, 25), "2k": (64, 32), "5k": (100, 50), "10k": (160, 64)}
K_INIT, N_ITER, STEP, SIGMA = 30, 10, 10, 1e-2
PAPER = {  # Table 3 (GPU: RTX-class; CPU: not stated), seconds
    ("5k", "kdtree"): "3.6 (CPU ZoomOut)", ("100k", "kdtree"): "700 (CPU ZoomOut)",
    ("5k", "soft-dense"): "0.1 (GPU Diff. ZoomOut)", ("100k", "soft-dense"): "OOM (GPU Diff. ZoomOut)",
    ("5k", "nn-keops"): "0.1 (Our ZoomOut)", ("100k", "nn-keops"): "2.4 (Our ZoomOut)",
    ("5k", "soft-keops+bwd"): "0.1 (Our Diff. ZoomOut)", ("100k", "soft-keops+bwd"): "5 (Our Diff. ZoomOut)",
}


def _basis(shape, k: int, device, dtype):
    import numpy as np
    import torch

    from shapelib.fmaps import SpectralBasis

    if shape.n_vertices <= 25000:
        return SpectralBasis.from_shape(shape, k, device, dtype), "eigenbasis"
    # synthetic smooth basis, orthonormal in M: Fourier products on the torus angles, QR in M
    from shapelib.operators import lumped_mass

    v = shape.vertices
    M = lumped_mass(v, shape.faces)
    u, w = np.arctan2(v[:, 1], v[:, 0]), np.arctan2(v[:, 2], np.linalg.norm(v[:, :2], axis=1) - 1)
    cols = [np.cos(a * u + b * w + 0.3 * a) for a in range(12) for b in range(-6, 6)][:k]
    F = np.stack(cols, 1) * np.sqrt(M)[:, None]
    Q, R = np.linalg.qr(F)
    Q = Q * np.sign(np.diag(R))[None, :]  # same sign convention on both shapes
    Phi = Q / np.sqrt(M)[:, None]
    t = lambda x: torch.as_tensor(x, device=device, dtype=dtype)  # noqa: E731
    return SpectralBasis(t(Phi), t(np.arange(k, dtype=float)), t(M)), "synthetic M-orthonormal basis"


def _pair(size: str, k: int, device, dtype):
    """Two discretisations of one bumpy torus: shape 2 has ~2 % more sections, turned by a third
    of a section, so no vertex of one coincides with a vertex of the other (a self-map would let a
    KD-tree stop at distance 0 and flatter it). Ground truth: nearest vertex in R³."""
    import torch

    from shapelib.kernels import nearest

    if size == REAL_SIZE:  # a real pair: two FAUST_r shapes (~5k vertices, different meshes)
        from shapelib import data

        pair = data.human_pairs("test", source="real", n_pairs=1)[0]
        b1, kind = _basis(pair.shape1.normalized("area"), k, device, dtype)
        b2, _ = _basis(pair.shape2.normalized("area"), k, device, dtype)
        return b1, b2, torch.as_tensor(pair.p2p_21, device=device).long(), f"eigenbasis ({pair.name})"
    a, b = {**SIZES, **MEMORY_SIZES}[size]
    s1 = bumpy_torus(a, b).normalized("area")
    s2 = bumpy_torus(a + max(1, a // 50), b, turn=1 / 3).normalized("area")
    b1, kind = _basis(s1, k, device, dtype)
    b2, _ = _basis(s2, k, device, dtype)
    gt = nearest(torch.as_tensor(s1.vertices), torch.as_tensor(s2.vertices), backend="torch")
    return b1, b2, gt.to(device), kind


PRODUCT_N = {"50k": 50_000, "100k": 100_000}  # one soft-map product: the memory argument at scale


def measure_product(size: str, method: str, device: str) -> dict:
    """One differentiable soft-map product ``Π @ X`` + backward at n = 50k/100k (p = 32 features,
    X ``(n, 130)``): the step diff. ZoomOut repeats, at a size where dense Π needs n² floats."""
    import torch

    from shapelib.kernels import SoftMap

    torch.set_num_threads(os.cpu_count() or 1)
    n, dev = PRODUCT_N[size], torch.device(device)
    g = torch.Generator().manual_seed(0)
    F1, F2 = (torch.randn(n, 32, generator=g).to(dev) for _ in range(2))
    X = torch.randn(n, K_INIT + N_ITER * STEP, generator=g).to(dev).requires_grad_(True)
    F1.requires_grad_(True)

    def run():
        out = SoftMap(F1, F2, 1.0, backend=method.split("-")[1].removesuffix("+bwd")) @ X
        out.square().sum().backward()

    _, seconds, peak = timed(run, dev)
    return {"size": size, "n": n, "method": method, "device": device, "seconds": seconds,
            "peak_bytes": peak, "dense_bytes": 4 * n * n, "finite": bool(torch.isfinite(X.grad).all())}


def timed(fn, dev):
    """``(fn(), seconds, peak bytes)``: peak of CUDA allocations, or of this process's resident set
    (high-water mark reset just before the call) on CPU."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    _reset_peak_rss()
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    out = fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() - base if dev.type == "cuda" else _peak_rss_bytes() - rss0
    return out, seconds, max(int(peak), 0)


def measure(size: str, method: str, device: str) -> dict:
    """Runs inside the child process: one (size, method) measurement."""
    import torch

    if method.startswith("product-"):
        return measure_product(size, method, device)

    from shapelib.fmaps import diff_zoomout, p2p_to_fmap, zoomout

    torch.set_num_threads(os.cpu_count() or 1)
    dev = torch.device(device)
    k_final = K_INIT + N_ITER * STEP
    basis1, basis2, gt, basis_kind = _pair(size, k_final, dev, torch.float32)
    n = basis1.n
    g = torch.Generator().manual_seed(0)
    C_gt = p2p_to_fmap(gt, basis1, basis2, K_INIT, K_INIT)
    C0 = (C_gt + 0.05 * torch.randn(K_INIT, K_INIT, generator=g).to(C_gt)).contiguous()

    def run():
        if method == "kdtree":
            return zoomout_kdtree(C0, basis1, basis2, k_final)
        if method.startswith("nn-"):  # nn-<backend>[+s<samples>]
            backend, _, ns = method[3:].partition("+s")
            return zoomout(C0, basis1, basis2, k_final, step=STEP, backend=backend, n_samples=int(ns) if ns else None)[0]
        backend = method[5:].removesuffix("+bwd")
        if method.endswith("+bwd"):
            C = C0.clone().requires_grad_(True)
            out = diff_zoomout(C, basis1, basis2, sigma=SIGMA, n_iter=N_ITER, step=STEP, backend=backend)
            out.square().sum().backward()
            return out.detach()
        with torch.no_grad():
            return diff_zoomout(C0, basis1, basis2, sigma=SIGMA, n_iter=N_ITER, step=STEP, backend=backend)

    warm = method.startswith(("nn-keops", "soft-keops"))
    if warm:  # KeOps compiles on first use: time the second run (compile time reported apart)
        t0 = time.perf_counter()
        run()
        compile_s = time.perf_counter() - t0
    C, seconds, peak = timed(run, dev)
    err = float((C[:K_INIT, :K_INIT] - C_gt).norm() / C_gt.norm())
    out = {"size": size, "n": n, "method": method, "device": device, "seconds": seconds,
           "peak_bytes": peak, "basis": basis_kind, "fmap_error": err}
    if warm:
        out["first_call_seconds"] = compile_s
    return out


def zoomout_kdtree(C0, basis1, basis2, k_final):
    """The straightforward CPU ZoomOut: numpy/scipy, a new cKDTree on Φ1 Cᵀ every iteration."""
    from scipy.spatial import cKDTree

    Phi1 = basis1.evecs.cpu().double().numpy()
    Phi2 = basis2.evecs.cpu().double().numpy()
    M2 = basis2.M.cpu().double().numpy()
    C = C0.cpu().double().numpy()
    for k in range(C.shape[0] + STEP, k_final + 1, STEP):
        k2, k1 = C.shape
        _, p2p = cKDTree(Phi1[:, :k1] @ C.T).query(Phi2[:, :k2], workers=-1)
        C = Phi2[:, :k].T @ (M2[:, None] * Phi1[p2p, :k])
    return __import__("torch").as_tensor(C, dtype=C0.dtype)


def _reset_peak_rss() -> None:
    """Reset the kernel's high-water mark of this process (``VmHWM``) so that the peak measured
    next belongs to the timed call, not to the set-up (eigenbases) before it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux, or not permitted: the peak then includes the set-up
        pass


def _peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(args) -> int:
    print(json.dumps(measure(args.size, args.method, args.device)))
    return 0


def spawn(size, method, device, timeout) -> dict:
    env = {**os.environ, "KEOPS_VERBOSE": "0", "PYKEOPS_VERBOSE": "0"}
    cmd = [sys.executable, __file__, "--child", "--size", size, "--method", method, "--device", device]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"size": size, "method": method, "device": device, "skipped": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:160]
        return {"size": size, "method": method, "device": device, "skipped": f"failed (exit {proc.returncode}: {tail})"}
    return json.loads(lines[-1])


def methods_for(device: str, keops_ok: bool) -> list[str]:
    ms = ["kdtree"] if device == "cpu" else []
    ms += ["nn-torch", "nn-torch+s2000"] + (["nn-kdtree"] if device == "cpu" else []) + (["nn-keops"] if keops_ok else [])
    ms += ["soft-dense", "soft-torch", "soft-torch+bwd", "soft-sdpa", "soft-sdpa+bwd"]
    ms += ["soft-keops", "soft-keops+bwd"] if keops_ok else []
    return ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--keops-cpu", action="store_true",
                    help="also time KeOps on CPU (compiles ~10 formulas per method: minutes on a loaded 2-core machine)")
    ap.add_argument("--methods", help="comma-separated subset of the methods (default: all)")
    ap.add_argument("--sizes", help="comma-separated subset of 5k,20k,100k")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory curve and the 50k product")
    ap.add_argument("--accuracy", action="store_true",
                    help="only compare exact and sampled ZoomOut accuracy on real FAUST_r pairs (into the json)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of an existing --out file that this run does not measure again")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--size")
    ap.add_argument("--method")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(HERE / "results" / "zoomout.json"))
    args = ap.parse_args(argv)
    if args.child:
        return child(args)

    import torch

    sys.path.insert(0, str(HERE.parent))
    from shapelib.kernels import keops_available

    if args.accuracy:
        acc = sampling_accuracy()
        mean = {k: sum(acc[k]) / len(acc[k]) for k in ("init", "exact", "sampled")}
        print(f"{len(acc['pairs'])} FAUST_r pairs, mean geodesic error ×100: init {mean['init']:.2f}, "
              f"ZoomOut exact {mean['exact']:.2f}, with {acc['n_samples']} samples {mean['sampled']:.2f}")
        res = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
        res["sampling_accuracy"] = {**acc, "mean": mean}
        Path(args.out).write_text(json.dumps(res, indent=1))
        return 0

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    sizes = ["5k"] if args.quick else (args.sizes.split(",") if args.sizes else list(SIZES))
    from shapelib.data import registry

    if registry.get("faust_r").found() and not args.sizes and not args.quick:
        sizes.insert(1, REAL_SIZE)
    elif REAL_SIZE in sizes and not registry.get("faust_r").found():
        sizes.remove(REAL_SIZE)
    total_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    rows = []
    for device in devices:
        keops_ok, keops_reason = keops_available(device)
        # KeOps on CPU is single-threaded and compiles per formula: only at the smallest size
        for size in sizes:
            n = 5000 if size == REAL_SIZE else SIZES[size][0] * SIZES[size][1]
            for method in methods_for(device, keops_ok):
                if args.methods and method not in args.methods.split(","):
                    continue
                if device == "cpu" and "keops" in method and not args.keops_cpu:
                    rows.append({"size": size, "n": n, "method": method, "device": device,
                                 "skipped": "KeOps on CPU: compile of ~10 formulas timed out (180 s) on this 2-core machine; "
                                            "use --keops-cpu"})
                    continue
                if device == "cpu" and "keops" in method and size != sizes[0]:
                    rows.append({"size": size, "n": n, "method": method, "device": device,
                                 "skipped": "KeOps on CPU measured at 5k only (single-threaded)"})
                    continue
                if method == "soft-dense" and 3 * 4 * n * n > 0.5 * total_mem:
                    rows.append({"size": size, "n": n, "method": method, "device": device,
                                 "skipped": f"OOM: dense Π needs {4 * n * n / 1e9:.0f} GB per copy"})
                    continue
                prev = [r for r in rows if r["method"] == method and r["device"] == device and "seconds" in r]
                if prev:
                    est = prev[-1]["seconds"] * (n / prev[-1]["n"]) ** 2
                    if est > args.max_seconds:
                        rows.append({"size": size, "n": n, "method": method, "device": device,
                                     "skipped": f"> {args.max_seconds:.0f} s (est. {est:.0f} s ∝ n²)", "estimate_s": est})
                        continue
                print(f"  {device} {size:>5} {method:<15}", end=" ", flush=True)
                r = spawn(size, method, device, timeout=max(120.0, 3 * args.max_seconds))
                rows.append(r)
                print(f"{r.get('seconds', float('nan')):8.2f} s  {r.get('peak_bytes', 0) / 1e6:8.0f} MB"
                      f"{'  ' + r['skipped'] if 'skipped' in r else ''}", flush=True)
        # memory of ONE soft-map product with gradient, dense vs chunked (Figure 4's argument)
    mem_rows = [] if args.quick or args.no_memory else memory_curve(devices[0], total_mem)
    if not args.quick and not args.no_memory:
        for device in devices:  # one product + backward at 50k (CPU) / 100k (GPU): dense would need n² floats
            size = "100k" if device == "cuda" else "50k"
            print(f"  product {device} {size} soft-torch+bwd", end=" ", flush=True)
            r = spawn(size, "product-torch+bwd", device, timeout=600)
            print(f"{r.get('seconds', float('nan')):7.2f} s {r.get('peak_bytes', 0) / 1e6:8.0f} MB "
                  f"(dense Π: {4 * PRODUCT_N[size] ** 2 / 1e9:.0f} GB)", flush=True)
            mem_rows.append(r)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
                   f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'} · torch {torch.__version__}",
        "settings": {"k_init": K_INIT, "n_iter": N_ITER, "step": STEP, "sigma": SIGMA, "max_seconds": args.max_seconds},
        "keops": {d: keops_available(d)[1] for d in devices},
        "rows": rows,
        "memory_curve": mem_rows,
        "paper_table3": {f"{s} {m}": v for (s, m), v in PAPER.items()},
    }
    if args.merge and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        key = lambda r: (r["device"], r["size"], r["method"])  # noqa: E731
        new = {key(r) for r in rows}
        result["rows"] = [r for r in old["rows"] if key(r) not in new] + rows
        order = {s: i for i, s in enumerate(["5k", REAL_SIZE, "20k", "100k"])}
        result["rows"].sort(key=lambda r: (r["device"], order.get(r["size"], 9)))
        result["memory_curve"] = mem_rows or old.get("memory_curve", [])
        result["date"] = f"{old['date']} (rows re-measured {result['date']}: {', '.join(sorted(set(r['method'] for r in rows)))})"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(table(result))
    return 0


def sampling_accuracy(n_pairs: int = 4, n_samples: int = 2000) -> dict:
    """Mean geodesic error (×100, unit area) of exact vs sampled classic ZoomOut on real FAUST_r
    test pairs, from the ground-truth fmap in 20 functions + N(0, 0.15²) noise; k 20 → 130."""
    import torch

    from shapelib import data
    from shapelib.fmaps import SpectralBasis, fmap_to_p2p, p2p_to_fmap, zoomout
    from shapelib.metrics import GeodesicEvaluator

    out = {"pairs": [], "n_samples": n_samples, "init": [], "exact": [], "sampled": []}
    for p in data.human_pairs("test", source="real", n_pairs=n_pairs):
        s1, s2 = p.shape1.normalized("area"), p.shape2.normalized("area")
        b1, b2 = SpectralBasis.from_shape(s1, 130), SpectralBasis.from_shape(s2, 130)
        ev = GeodesicEvaluator.from_pair(p, s1)  # every vertex with ground truth
        noise = 0.15 * torch.randn(20, 20, generator=torch.Generator().manual_seed(0))
        C0 = p2p_to_fmap(torch.as_tensor(p.p2p_21), b1, b2, 20, 20) + noise
        out["pairs"].append(p.name)
        out["init"].append(ev.mean(fmap_to_p2p(C0, b1, b2)))
        out["exact"].append(ev.mean(zoomout(C0, b1, b2, 130, step=10)[1]))
        out["sampled"].append(ev.mean(zoomout(C0, b1, b2, 130, step=10, n_samples=n_samples)[1]))
    return out


def memory_curve(device, total_mem) -> list[dict]:
    """Peak memory of one differentiable ZoomOut (fwd+bwd) vs n, dense Π against SoftMap(torch)."""
    out = []
    for size in MEMORY_SIZES:
        for method in ("soft-dense+bwd", "soft-torch+bwd"):
            n = MEMORY_SIZES[size][0] * MEMORY_SIZES[size][1]
            if "dense" in method and 4 * 4 * n * n > 0.5 * total_mem:
                continue
            print(f"  memory {device} {size:>4} {method:<15}", end=" ", flush=True)
            r = spawn(size, method, device, timeout=300)
            print(f"{r.get('seconds', float('nan')):7.2f} s {r.get('peak_bytes', 0) / 1e6:8.0f} MB", flush=True)
            out.append(r)
    return out


if __name__ == "__main__":
    sys.exit(main())
