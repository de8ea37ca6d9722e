"""Threads per process on a quiet and on a loaded machine: the evidence for shapelib's default.

    python benchmarks/threads.py                       # ops at 1 and 2 threads, quiet and loaded
    python benchmarks/threads.py --threads 1 2 4 --reps 7
    python benchmarks/threads.py --notebooks 00 01 03   # also time whole notebooks (quick scale)
    python benchmarks/threads.py --no-ops --notebooks 00 01 --conditions quiet   # notebooks only, quiet only

Each (thread count, load) runs in a fresh subprocess with ``SHAPELIB_THREADS=N`` (the one knob,
read by ``shapelib.config.apply_thread_defaults`` on import), timing the median of ``--reps`` runs of

* ``eigsh``      — 64 eigenpairs of the cotan Laplacian of a 6,890-vertex human (FAUST tr_reg_000
                   when ``$SHAPELIB_DATA`` has it, else a synthetic humanoid), ``operators.eigenbasis``;
* ``diffusionnet`` — one DiffusionNet training step (paper Table 6 set-up: width 128, 4 blocks) at 752 vertices;
* ``meps``       — one MEPS training step at notebook 03's quick setting (300 points, k = 20);
* ``matmul``     — a loop of 200 small torch products (256×256 @ 256×64, ReLU).

"Loaded" starts one CPU-burning process per core beside the measurement (as on a lab server where
other kernels compute, or under a background training run); "quiet" starts none — the load average
at the start of each run is recorded, since a shared machine is never perfectly quiet. Writes
``benchmarks/results/threads.json`` and prints a table with the ratio 2 threads / 1 thread.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OPS = ("eigsh", "diffusionnet", "meps", "matmul")


def worker(reps: int) -> dict:
    """Runs inside the subprocess (SHAPELIB_THREADS already set): time each op, print JSON."""
    import torch

    from _shapes import bumpy_torus, diffusionnet_step, median_time
    from shapelib import config, data
    from shapelib import operators as ops

    out = {"threads": config.threads(), "torch_threads": torch.get_num_threads()}
    human = data.humans("train", n_max=1)[0].shape
    L, M = ops.laplacian(human)
    out["eigsh_n"] = human.n_vertices
    out["eigsh"] = median_time(lambda: ops.eigenbasis(L, M, k=64), reps)

    torus = bumpy_torus(47, 16)                     # 752 vertices: the paper's Table 6 set-up
    dn_step = diffusionnet_step(torus, ops.compute_operators(torus, k=128, cache=False), "cpu")[0]
    dn_step()
    out["diffusionnet"] = median_time(dn_step, reps)

    from shapelib.meps import PointSignatureNet, label_set, prepare
    from shapelib.train import labelling_loss

    Ls = label_set(human.vertices, 300, 128)
    P = prepare([human.vertices[Ls.points]], [Ls.labels], k=20)[0]
    mnet = PointSignatureNet(Ls.n_labels, "meps", meta_widths=(32, 64, 64))
    mopt = torch.optim.Adam(mnet.parameters(), lr=1e-2)

    def meps_step():
        loss = labelling_loss(mnet, P)
        mopt.zero_grad()
        loss.backward()
        mopt.step()

    meps_step()
    out["meps"] = median_time(meps_step, reps)

    a, b = torch.randn(256, 256), torch.randn(256, 64)

    def loop():
        for _ in range(200):
            torch.relu(a @ b)

    loop()
    out["matmul"] = median_time(loop, reps)
    return out


def _burners(n: int) -> list[subprocess.Popen]:
    code = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def _stop(procs) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()


def measure(threads: int, loaded: bool, reps: int, burners: int) -> dict:
    env = dict(os.environ, SHAPELIB_THREADS=str(threads))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)  # shapelib sets them from SHAPELIB_THREADS
    procs = _burners(burners) if loaded else []
    try:
        time.sleep(1.0 if loaded else 0.0)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, __file__, "--worker", "--reps", str(reps)], env=env, cwd=HERE,
                             capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
    finally:
        _stop(procs)
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row.update(loaded=loaded, burners=burners if loaded else 0, loadavg_1min=round(load, 2), process_wall_s=round(wall, 1))
    return row


def time_notebook(prefix: str, threads: int, loaded: bool, burners: int, timeout: int = 1800) -> dict:
    """Execute one notebook at quick scale (nbclient, as nbval and reproduce do); wall seconds."""
    import nbformat
    from nbclient import NotebookClient

    path = next((REPO / "notebooks").glob(f"{prefix}_*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    os.environ.update(SHAPELIB_THREADS=str(threads), SHAPELIB_SCALE="quick", MPLBACKEND="Agg")
    procs = _burners(burners) if loaded else []
    try:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        ok = True
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        except Exception as exc:  # a failing notebook is recorded, not fatal for the benchmark
            ok = f"{type(exc).__name__}"
        wall = time.perf_counter() - t0
    finally:
        _stop(procs)
    return {"notebook": path.name, "threads": threads, "loaded": loaded, "burners": burners if loaded else 0,
            "loadavg_1min": round(load, 2), "seconds": round(wall, 1), "ok": ok}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--burners", type=int, default=os.cpu_count() or 2, help="CPU-burning processes for 'loaded'")
    ap.add_argument("--notebooks", nargs="*", default=[], help="also time these notebooks (prefixes, quick scale)")
    ap.add_argument("--notebook-threads", type=int, nargs="+", default=None,
                    help="thread counts for the notebook timings (default: the shapelib default only)")
    ap.add_argument("--no-ops", action="store_true", help="only the notebook timings (keep the stored op rows)")
    ap.add_argument("--conditions", choices=("both", "quiet", "loaded"), default="both",
                    help="time the notebooks quiet, loaded (with --burners) or both")
    ap.add_argument("--context", default="", help="what else ran on the machine (stored with each notebook row)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.reps)))
        return 0

    sys.path.insert(0, str(REPO))
    from shapelib import config

    rows = []
    for loaded in ((False, True) if not args.no_ops else ()):
        for n in args.threads:
            row = measure(n, loaded, args.reps, args.burners)
            rows.append(row)
            print(f"  {'loaded' if loaded else 'quiet ':6s} threads={n}: " +
                  "  ".join(f"{op} {row[op]:.3f} s" for op in OPS) + f"  (load avg {row['loadavg_1min']})", flush=True)
    nb_rows = []
    for prefix in args.notebooks:
        for n in args.notebook_threads or [config.DEFAULT_THREADS]:
            for loaded in {"both": (False, True), "quiet": (False,), "loaded": (True,)}[args.conditions]:
                r = time_notebook(prefix, n, loaded, args.burners)
                if args.context:
                    r["context"] = args.context
                nb_rows.append(r)
                print(f"  notebook {r['notebook']} threads={n} {'loaded' if loaded else 'quiet'}: {r['seconds']:.0f} s "
                      f"(ok={r['ok']}, load avg {r['loadavg_1min']})", flush=True)

    import torch

    machine = f"{platform.machine()} · {os.cpu_count()} cores · torch {torch.__version__}"
    result = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine, "reps": args.reps,
              "default_threads": config.DEFAULT_THREADS, "ops": rows, "notebooks": nb_rows,
              "note": "median seconds per op; 'loaded' = one CPU-burning process per core started beside the run"}
    out = HERE / "results" / "threads.json"
    if out.exists():  # keep the earlier rows of whichever part was not re-measured
        before = json.loads(out.read_text())
        key = lambda r: (r["notebook"], r["threads"], r["loaded"])  # new notebook rows replace their old twins
        fresh = {key(r) for r in nb_rows}
        result["notebooks"] = [r for r in before.get("notebooks", []) if key(r) not in fresh] + nb_rows
        if not rows:
            rows = result["ops"] = before.get("ops", [])
            result["date_ops"] = before.get("date_ops", before.get("date"))
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")

    print(f"\nseconds per op (median of {args.reps}) — {machine}")
    print(f"{'load':7s} {'threads':>7s} " + " ".join(f"{op:>13s}" for op in OPS))
    for r in rows:
        print(f"{'loaded' if r['loaded'] else 'quiet':7s} {r['threads']:>7d} " + " ".join(f"{r[op]:>13.3f}" for op in OPS))
    base = {r["loaded"]: r for r in rows if r["threads"] == 1}
    for r in rows:
        if r["threads"] != 1 and r["loaded"] in base:
            ratio = " ".join(f"{r[op] / base[r['loaded']][op]:>12.2f}x" for op in OPS)
            print(f"{'loaded' if r['loaded'] else 'quiet':7s} {r['threads']}t / 1t {ratio}")
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
