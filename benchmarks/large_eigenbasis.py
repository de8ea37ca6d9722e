"""k = 128 Laplacian eigenpairs (L φ = λ M φ) on large meshes: time, peak memory and accuracy per solver.

    python benchmarks/large_eigenbasis.py                 # 110k and 440k vertices, every solver (~20 min)
    python benchmarks/large_eigenbasis.py --levels 2      # 110k only (~5 min)
    python benchmarks/large_eigenbasis.py --solvers cholmod lifted_refine2 --levels 3

The meshes: FAUST tr_reg_000 (6,890 vertices, $SHAPELIB_DATA/faust_registrations) Loop-subdivided
twice (110,210 vertices) and three times (440,834), built once with trimesh and cached under
<repo>/.cache/large_eigenbasis/ (git-ignored). Each (solver, mesh) runs in a fresh subprocess so
that its peak RSS (the whole process: Python, the mesh, L, the factorisation, ARPACK's Krylov
vectors and the basis) is its own; a run that passes --timeout is recorded as such. Solvers:

* ``mmd``: the eigensolver as it was before commit a26b87d (SuperLU ordered by MMD on AᵀA at every
  size); what the issue measured (> 15 min at 440k): run at 110k only unless --solvers names it.
* ``current``: shapelib's eigensolver before issue #37 part 2 (commit a6db257, read with git show):
  ARPACK shift-invert, SuperLU with COLAMD ordering.
* ``cholmod``: the same ARPACK shift-invert on a CHOLMOD Cholesky factor (pip package cholespy):
  ``eigenbasis(method='shift_invert')``, what ``'auto'`` does above 50k vertices.
* ``lobpcg``: ``eigenbasis(method='lobpcg')`` — scipy LOBPCG with a pyamg smoothed-aggregation
  preconditioner, tol 1e-6, at most 200 iterations.
* ``lifted_shepard``: the sampled, locally supported basis of scalable functional maps as we read the
  published scheme (Shepard partition of unity over 8,000 sampled vertices, neighbours along the
  surface; Rayleigh–Ritz on the fine L and M, lifted).
* ``lifted``: ``eigenbasis(method='lifted')`` — the same with moving-least-squares (linear) weights.
* ``lifted_refine2``: the same + 2 subspace iterations with the fine CHOLMOD factor.

'seconds' is wall time, 'cpu_s' the process's CPU time (the better figure on a shared machine).
Accuracy is measured against the exact basis (``cholmod``; ``current`` agrees with it to 1e-12) on
the same mesh: the relative eigenvalue error (modes 1..29 and 1..127; mode 0 is the constant), the
smallest ``|<φ_i, φ̃_i>_M|`` over the first 30 / all 128 modes, and the cosine of the largest
principal angle between the spans of the first 30 exact and approximate modes. Each row also has
the library's up-front estimate (operators.eigenbasis_estimate; --estimates refreshes only those). Writes
benchmarks/results/large_eigenbasis.json (no path of this machine in it) and prints a table.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = REPO / ".cache" / "large_eigenbasis"
SOLVERS = ["mmd", "current", "cholmod", "lobpcg", "lifted_shepard", "lifted", "lifted_refine2"]
BEFORE = "a6db257"  # the commit whose eigensolver is 'current'
K = 128


def mesh(level: int):
    """(vertices, faces) of tr_reg_000 Loop-subdivided ``level`` times, cached as .npz."""
    path = CACHE / f"tr_reg_000_loop{level}.npz"
    if not path.exists():
        import trimesh

        from shapelib import Shape, config

        s = Shape.read(config.data_root() / "faust_registrations" / "tr_reg_000.ply")
        m = trimesh.Trimesh(s.vertices, s.faces, process=False)
        if level:
            m = m.subdivide_loop(iterations=level)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, vertices=np.asarray(m.vertices), faces=np.asarray(m.faces))
    d = np.load(path)
    return d["vertices"], d["faces"]


def old_eigenbasis():
    """The eigenbasis function of commit BEFORE, loaded as a module of the shapelib package."""
    import types

    src = subprocess.run(["git", "show", f"{BEFORE}:shapelib/operators.py"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    mod = types.ModuleType("shapelib._operators_before")
    mod.__package__ = "shapelib"
    sys.modules[mod.__name__] = mod  # dataclasses look their module up there
    exec(compile(src, f"{BEFORE}:shapelib/operators.py", "exec"), mod.__dict__)
    return mod.eigenbasis


def child(solver: str, level: int) -> dict:
    import warnings

    from shapelib import operators as ops

    if solver in ("cholmod", "lifted_refine2") and not ops._has_cholmod():
        sys.exit(f"{solver} needs the CHOLMOD factorisation: pip install cholespy (or pip install -e '.[large]')")
    v, f = mesh(level)
    L, M = ops.cotan_laplacian(v, f), ops.lumped_mass(v, f)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kw = {"current": None, "mmd": dict(method="shift_invert"), "cholmod": dict(method="shift_invert"), "lobpcg": dict(method="lobpcg"),
          "lifted_shepard": dict(method="lifted", vertices=v), "lifted": dict(method="lifted", vertices=v),
          "lifted_refine2": dict(method="lifted", vertices=v, refine=2)}[solver]
    if solver == "mmd":  # shift-invert as before commit a26b87d: SuperLU with MMD ordering at every size
        ops.COLAMD_ABOVE, ops._has_cholmod = 10**12, lambda: False
    if solver == "lifted_shepard":  # the scheme as published: Shepard weights, no linear precision
        ops.lifting_operator = functools.partial(ops.lifting_operator, linear=False)
    fn = old_eigenbasis() if kw is None else ops.eigenbasis
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0, cpu0 = time.perf_counter(), time.process_time()
        evals, evecs = fn(L, M, K, **(kw or {}), **({} if kw is None else {"progress": False}))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(CACHE / f"evals_{solver}_{level}.npy", evals)
    np.save(CACHE / f"evecs_{solver}_{level}.npy", evecs.astype(np.float32 if solver != "cholmod" else np.float64))
    return {"solver": solver, "n_vertices": len(v), "k": K, "seconds": seconds, "cpu_s": cpu, "peak_rss_mb": rss / 1024,
            "rss_before_solve_mb": rss0 / 1024,
            "estimate_warned": any("on one CPU thread" in str(w.message) for w in caught)}


def accuracy(solver: str, level: int, ref: str = "cholmod") -> dict | None:
    paths = [CACHE / f"{kind}_{name}_{level}.npy" for name in (solver, ref) for kind in ("evals", "evecs")]
    if not all(p.exists() for p in paths):
        return None
    e, p, e0, p0 = (np.load(x) for x in paths)
    v, f = mesh(level)
    from shapelib.operators import lumped_mass

    M = lumped_mass(v, f)
    C = np.abs(p0.T @ (M[:, None] * p.astype(np.float64)))
    rel = np.abs(e[1:] - e0[1:]) / e0[1:]
    return {"rel_eval_err_max_1_29": float(rel[:29].max()), "rel_eval_err_max_1_127": float(rel.max()),
            "rel_eval_err_median_1_127": float(np.median(rel)),
            "min_abs_inner_M_first30": float(np.diag(C)[:30].min()), "min_abs_inner_M_all128": float(np.diag(C).min()),
            "subspace30_min_cos": float(np.linalg.svd(C[:30, :30], compute_uv=False).min())}


#: the arguments of operators.eigenbasis_estimate for the library's solvers
ESTIMATE = {"cholmod": ("shift_invert", 0), "lobpcg": ("lobpcg", 0), "lifted": ("lifted", 0),
            "lifted_refine2": ("lifted", 2)}


def with_estimate(row: dict) -> dict:
    """The row with the library's up-front estimate (operators.eigenbasis_estimate, fitted to these runs)."""
    from shapelib import operators as ops

    if row["solver"] in ESTIMATE and (row["solver"] != "cholmod" or ops._has_cholmod()):
        sec, nbytes = ops.eigenbasis_estimate(row["n_vertices"], K, *ESTIMATE[row["solver"]])
        row["library_estimate_s"], row["library_estimate_mb"] = sec, nbytes / 2**20
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[2, 3], help="Loop subdivisions: 2 = 110k, 3 = 440k")
    ap.add_argument("--solvers", nargs="+", default=None, choices=SOLVERS, help="default: all ('mmd' at 110k only)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run (default 600)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--estimates", action="store_true", help="only refresh the library's estimates in the JSON")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    out = HERE / "results" / "large_eigenbasis.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    rows = {(r["solver"], r["level"]): r for r in old.get("rows", [])}
    if args.estimates:
        old["rows"] = [with_estimate(r) for r in old["rows"]]
        out.write_text(json.dumps(old, indent=2))
        return
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    for level in args.levels:
        mesh(level)
        solvers = args.solvers or [s for s in SOLVERS if s != "mmd" or level < 3]
        for solver in sorted(solvers, key=lambda s: s != "cholmod"):  # the reference first
            t0 = time.perf_counter()
            smaller = [r for (name, lv), r in rows.items() if name == solver and lv < level]
            if smaller and smaller[0]["status"].startswith("timeout"):  # it will not finish on a larger mesh either
                row = {"solver": solver, "status": f"skipped ({smaller[0]['status']} on {smaller[0].get('n_vertices') or 'a smaller mesh'})"}
            else:
                try:
                    res = subprocess.run([sys.executable, __file__, "--child", solver, str(level)], capture_output=True,
                                         text=True, timeout=args.timeout)
                    if res.returncode:
                        row = {"solver": solver, "status": "failed", "error": res.stderr.strip().splitlines()[-1:]}
                    else:
                        row = {**json.loads(res.stdout.strip().splitlines()[-1]), "status": "ok"}
                except subprocess.TimeoutExpired:
                    row = {"solver": solver, "status": f"timeout after {args.timeout:.0f} s"}
            row["level"], row["wall_s"] = level, time.perf_counter() - t0
            row.setdefault("n_vertices", len(mesh(level)[0]))
            with_estimate(row)
            if row["status"] == "ok" and solver != "cholmod":
                row["accuracy_vs_exact"] = accuracy(solver, level)
            rows[(solver, level)] = row
            print(f"loop{level} {solver:>15}: {row['status']}  {row.get('seconds', float('nan')):.1f} s  "
                  f"{row.get('peak_rss_mb', float('nan')):.0f} MB  {row.get('accuracy_vs_exact')}", flush=True)
            result = {"date": time.strftime("%Y-%m-%d"), "k": K, "threads": threads,
                      "machine": f"{platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
                                 f"OMP_NUM_THREADS={threads} · Python {platform.python_version()}",
                      "meshes": "FAUST tr_reg_000 Loop-subdivided 2x (110,210 vertices) and 3x (440,834)",
                      "goal": "k = 128 at 440k vertices in <= 300 s and <= 4 GB peak RSS on one CPU thread",
                      "rows": sorted(rows.values(), key=lambda r: (r["level"], SOLVERS.index(r["solver"])))}
            out.parent.mkdir(exist_ok=True)
            out.write_text(json.dumps(result, indent=2))
    print(f"\n{'solver':>15} {'n':>8} {'time s':>8} {'peak MB':>8} {'λ err 1-29':>11} {'λ err 1-127':>12} {'min|<φ,φ̃>| 30':>15}")
    for r in result["rows"]:
        a = r.get("accuracy_vs_exact") or {}
        print(f"{r['solver']:>15} {r.get('n_vertices', '-'):>8} {r.get('seconds', float('nan')):>8.1f} "
              f"{r.get('peak_rss_mb', float('nan')):>8.0f} {a.get('rel_eval_err_max_1_29', float('nan')):>11.1e} "
              f"{a.get('rel_eval_err_max_1_127', float('nan')):>12.1e} {a.get('min_abs_inner_M_first30', float('nan')):>15.4f}"
              f"  {r['status']}")


if __name__ == "__main__":
    main()
