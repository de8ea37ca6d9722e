"""Classic ZoomOut on CPU, shapelib next to pyFM, on the same FAUST_r test pairs, interleaved.

    SHAPELIB_THREADS=1 python benchmarks/zoomout_vs_pyfm.py               # 20 pairs + profile
    SHAPELIB_THREADS=1 python benchmarks/zoomout_vs_pyfm.py --pairs 190   # every test pair

ZoomOut 30 → 110 by steps of 5 (pyFM's README pipeline, ``shapelib.fmaps.AXIOMATIC``), from
pyFM's own initial map (``FunctionalMapping.fit``, WKS, every term on) in pyFM's own basis
(``TriMesh.process``: eigenvectors orthonormal in its vertex areas), so both libraries do the same
work on the same numbers. Per pair, in an order that rotates from pair to pair (a busy machine
slows every method alike), one call each of

``shapelib``      ``fmaps.zoomout(C0, basis1, basis2, 110, step=5)`` with its default backend
                  (on CPU the ``'blas'`` nearest-neighbour search of ``shapelib.kernels``);
``shapelib-torch`` the same with ``backend='torch'`` (the chunked float64 torch search: the
                  path before issue #37);
``pyfm``          ``pyFM.refine.zoomout.mesh_zoomout_refine(C0, mesh1, mesh2, nit=16, step=5,
                  return_p2p=True)`` (scikit-learn's brute-force nearest neighbours);
``shapelib-own``  :func:`shapelib.fmaps.axiomatic_zoomout`'s ZoomOut seconds on shapelib's own
                  operators and fit (float64 bases, as the stored axiomatic runs do) — the number
                  the issue compared.

Every pair checks that ``shapelib``'s vertex map equals ``shapelib-torch``'s and ``pyfm``'s at
every vertex and reports the largest entry difference of the refined C. ``--profile`` (default
on) splits one pair's ZoomOut into its parts (spectral embedding, nearest neighbours, pull-back,
the rest = Python and checks) for each library, and times alternative nearest-neighbour searches
on that pair's embeddings (torch float64/float32, scikit-learn brute force as pyFM calls it,
scipy cKDTree, faiss-cpu when importable). Timings are medians, ratios are per pair.
Writes benchmarks/results/zoomout_vs_pyfm.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
K_DESCR, K_INIT, K_FINAL, STEP = 128, 30, 110, 5


def test_pair_names():
    """The 190 pairs of FAUST_r test shapes tr_reg_080-099, as (lower, higher) names."""
    test = [f"tr_reg_{i:03d}" for i in range(80, 100)]
    return [(a, b) for i, a in enumerate(test) for b in test[i + 1:]]


def pyfm_mesh(shape):
    from pyFM.mesh import TriMesh

    return TriMesh(shape.vertices, shape.faces, area_normalize=True, center=True).process(K_DESCR)


def pyfm_init(mesh1, mesh2):
    """pyFM's README fit (``shapelib.fmaps.AXIOMATIC``'s settings): the 30×30 initial map."""
    from pyFM.functional import FunctionalMapping

    from shapelib.fmaps import AXIOMATIC as s

    model = FunctionalMapping(mesh1, mesh2)
    model.preprocess(n_descr=s["n_energies"], descr_type="WKS", subsample_step=s["every"], k_descr=s["k_descr"],
                     k_process=K_DESCR)
    model.fit(K=s["k_init"], w_descr=s["w_descr"], w_lap=s["w_lap"], w_dcomm=s["w_dcomm"], w_orient=s["w_orient"])
    return model.FM_12


def pyfm_basis(mesh, k=K_FINAL):
    import numpy as np
    import torch

    from shapelib.fmaps import SpectralBasis

    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    return SpectralBasis(t(mesh.eigenvectors[:, :k]), t(mesh.eigenvalues[:k]), t(mesh.A.diagonal()))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def profile_pair(m1, m2, b1, b2, C0, reps: int = 3) -> dict:
    """One pair's ZoomOut split into parts, for shapelib ('blas' and 'torch') and pyFM: seconds
    summed over the 17 maps ZoomOut turns into vertex maps (medians of ``reps`` runs)."""
    import numpy as np
    import torch
    from pyFM.refine.zoomout import mesh_zoomout_refine
    from pyFM.spectral.convert import p2p_to_FM
    from pyFM.spectral.nearest_neighbor import knn_query

    from shapelib.fmaps import p2p_to_fmap, zoomout
    from shapelib.kernels import nearest

    _, _, hist = zoomout(torch.as_tensor(C0), b1, b2, K_FINAL, step=STEP, return_history=True)
    ev1, ev2, A2 = m1.eigenvectors, m2.eigenvectors, m2.A
    parts = {}

    def shapelib_parts(backend):
        t = {"embedding": 0.0, "nearest": 0.0, "pull-back": 0.0}
        for i, C in enumerate(hist):
            k2, k1 = C.shape
            (E1, E2), s = timed(lambda: (b1.phi(k1) @ C.T, b2.phi(k2)))
            t["embedding"] += s
            p2p, s = timed(lambda: nearest(E1, E2, backend=backend))
            t["nearest"] += s
            if i + 1 < len(hist):
                k = hist[i + 1].shape[0]
                _, s = timed(lambda: p2p_to_fmap(p2p, b1, b2, k, k))
                t["pull-back"] += s
        t["total"] = timed(lambda: zoomout(torch.as_tensor(C0), b1, b2, K_FINAL, step=STEP, backend=backend))[1]
        return t

    def pyfm_parts():
        t = {"embedding": 0.0, "nearest": 0.0, "pull-back": 0.0}
        for i, C in enumerate(hist):
            FM = C.numpy()
            k2, k1 = FM.shape
            (e1, e2), s = timed(lambda: (ev1[:, :k1] @ FM.T, ev2[:, :k2]))
            t["embedding"] += s
            p2p, s = timed(lambda: knn_query(e1, e2, k=1))
            t["nearest"] += s
            if i + 1 < len(hist):
                k = hist[i + 1].shape[0]
                _, s = timed(lambda: p2p_to_FM(p2p, ev1[:, :k], ev2[:, :k], A2=A2))
                t["pull-back"] += s
        t["total"] = timed(lambda: mesh_zoomout_refine(C0, m1, m2, nit=(K_FINAL - K_INIT) // STEP, step=STEP,
                                                       return_p2p=True))[1]
        return t

    runs = {"shapelib": [], "shapelib-torch": [], "pyfm": []}
    for _ in range(reps):
        runs["shapelib"].append(shapelib_parts("auto"))
        runs["pyfm"].append(pyfm_parts())
        runs["shapelib-torch"].append(shapelib_parts("torch"))
    for name, rs in runs.items():
        med = {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        med["rest"] = med["total"] - med["embedding"] - med["nearest"] - med["pull-back"]
        parts[name] = med

    # alternative nearest-neighbour searches on this pair's embeddings at k = 30, 70, 110
    searches = {}
    from scipy.spatial import cKDTree
    from sklearn.neighbors import NearestNeighbors

    def sk(e1, e2):
        return NearestNeighbors(n_neighbors=1, algorithm="brute").fit(e1).kneighbors(e2)[1][:, 0]

    cands = {
        "shapelib blas (float32 GEMM + float64 check)": lambda E1, E2: nearest(E1, E2, backend="blas"),
        "shapelib torch float64 (before)": lambda E1, E2: nearest(E1, E2, backend="torch"),
        "shapelib torch float32 (not exact)": lambda E1, E2: nearest(E1.float(), E2.float(), backend="torch"),
        "scikit-learn brute float64 (pyFM)": lambda E1, E2: torch.as_tensor(sk(E1.numpy(), E2.numpy())),
        "scipy cKDTree, workers=1": lambda E1, E2: torch.as_tensor(cKDTree(E1.numpy()).query(E2.numpy(), workers=1)[1]),
    }
    try:
        import faiss

        def fa(E1, E2):
            index = faiss.IndexFlatL2(E1.shape[1])
            index.add(np.ascontiguousarray(E1.numpy(), dtype=np.float32))
            return torch.as_tensor(index.search(np.ascontiguousarray(E2.numpy(), dtype=np.float32), 1)[1][:, 0])

        cands["faiss-cpu IndexFlatL2 float32 (not exact)"] = fa
    except ImportError:
        pass
    for C in (hist[0], hist[len(hist) // 2], hist[-1]):
        k = C.shape[0]
        E1, E2 = b1.phi(k) @ C.T, b2.phi(k)
        ref = nearest(E1, E2, backend="torch")
        for name, fn in cands.items():
            if "cKDTree" in name and k > K_INIT:
                continue  # minutes per query in 70-110 dimensions
            ts, out = [], None
            for _ in range(reps):
                out, s = timed(lambda: fn(E1, E2))
                ts.append(s)
            searches.setdefault(name, {})[f"k={k}"] = {"seconds": statistics.median(ts),
                                                       "vertices_differing": int((out != ref).sum())}
    return {"parts_seconds": parts, "nearest_neighbour_searches": searches}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=20, help="FAUST_r test pairs, evenly spaced among the 190")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-part profile of the first pair")
    ap.add_argument("--out", default=str(HERE / "results" / "zoomout_vs_pyfm.json"))
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from shapelib import config
    from shapelib.data import real
    from shapelib.fmaps import SpectralBasis, axiomatic_zoomout, zoomout
    from shapelib.operators import compute_operators

    try:
        from pyFM.refine.zoomout import mesh_zoomout_refine
    except ImportError:
        print("pyFM is not installed (pip install pyfmaps): nothing to compare with.")
        return 1
    try:
        from threadpoolctl import threadpool_info

        blas = sorted({(p["internal_api"], p["num_threads"]) for p in threadpool_info()})
    except ImportError:
        blas = []

    every = test_pair_names()
    todo = [every[i] for i in np.linspace(0, len(every) - 1, args.pairs).round().astype(int)]
    cache = {}

    def load(name):
        if name not in cache:
            item = real.r_dataset("faust_r", [name])[0]
            ops = compute_operators(item.shape.normalized("area"), k=K_DESCR)
            cache[name] = dict(mesh=pyfm_mesh(item.shape), ops=ops,
                               basis=SpectralBasis.from_operators(ops, dtype=torch.float64))
        return cache[name]

    nit = (K_FINAL - K_INIT) // STEP
    rows, profile = [], None
    for i, (a, b) in enumerate(todo):
        A, B = load(a), load(b)
        m1, m2 = A["mesh"], B["mesh"]
        C0 = pyfm_init(m1, m2)
        b1, b2 = pyfm_basis(m1), pyfm_basis(m2)
        runs = {
            "shapelib": lambda: zoomout(torch.as_tensor(C0), b1, b2, K_FINAL, step=STEP),
            "pyfm": lambda: mesh_zoomout_refine(C0, m1, m2, nit=nit, step=STEP, return_p2p=True),
            "shapelib-torch": lambda: zoomout(torch.as_tensor(C0), b1, b2, K_FINAL, step=STEP, backend="torch"),
            "shapelib-own": lambda: axiomatic_zoomout(A["ops"], B["ops"], A["basis"], B["basis"]),
        }
        order = list(runs)[i % len(runs):] + list(runs)[:i % len(runs)]
        out, sec = {}, {}
        for name in order:
            out[name], sec[name] = timed(runs[name])
        sec["shapelib-own"] = out["shapelib-own"]["seconds"]["zoomout"]  # ZoomOut alone (fit and WKS excluded)
        (C, p2p), (Ct, p2p_t), (FM, p_pyfm) = out["shapelib"], out["shapelib-torch"], out["pyfm"]
        row = {"pair": f"{a}<-{b}", "n_vertices": [b1.n, b2.n], "seconds": sec,
               "ratio_vs_pyfm": {k: sec[k] / sec["pyfm"] for k in ("shapelib", "shapelib-torch", "shapelib-own")},
               "vertices_differing_from_pyfm": int((p2p.numpy() != p_pyfm).sum()),
               "vertices_differing_from_torch_path": int((p2p != p2p_t).sum()),
               "C_equal_to_torch_path": bool(torch.equal(C, Ct)),
               "max_abs_C_minus_pyfm": float(np.abs(C.numpy() - FM).max())}
        rows.append(row)
        print(f"{i + 1:3d}/{len(todo)} {row['pair']}: shapelib {sec['shapelib']:.2f} s, pyFM {sec['pyfm']:.2f} s "
              f"(ratio {row['ratio_vs_pyfm']['shapelib']:.2f}), before {sec['shapelib-torch']:.2f} s, own operators "
              f"{sec['shapelib-own']:.2f} s; vertices differing from pyFM {row['vertices_differing_from_pyfm']}, "
              f"from before {row['vertices_differing_from_torch_path']}", flush=True)
        if i == 0 and not args.no_profile:
            profile = profile_pair(m1, m2, b1, b2, C0)

    med = lambda key, m: statistics.median(r[key][m] for r in rows)  # noqa: E731
    summary = {
        "pairs": len(rows),
        "median_seconds": {m: med("seconds", m) for m in rows[0]["seconds"]},
        "median_ratio_vs_pyfm": {m: med("ratio_vs_pyfm", m) for m in rows[0]["ratio_vs_pyfm"]},
        "max_ratio_vs_pyfm": {m: max(r["ratio_vs_pyfm"][m] for r in rows) for m in rows[0]["ratio_vs_pyfm"]},
        "pairs_with_any_vertex_differing_from_pyfm": sum(r["vertices_differing_from_pyfm"] > 0 for r in rows),
        "pairs_with_any_vertex_differing_from_torch_path": sum(r["vertices_differing_from_torch_path"] > 0 for r in rows),
        "max_abs_C_minus_pyfm": max(r["max_abs_C_minus_pyfm"] for r in rows),
    }
    doc = {"benchmark": "zoomout_vs_pyfm", "schedule": f"ZoomOut {K_INIT} -> {K_FINAL} by {STEP}",
           "threads": config.threads(), "torch_threads": torch.get_num_threads(), "blas_pools": blas,
           "machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                       "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "summary": summary, "profile": profile,
           "pairs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1))

    print(f"\nZoomOut {K_INIT} -> {K_FINAL} by {STEP}, {len(rows)} FAUST_r test pairs, {config.threads()} thread(s), "
          f"medians (per-pair ratios to pyFM):")
    for m in ("pyfm", "shapelib", "shapelib-torch", "shapelib-own"):
        ratio = "" if m == "pyfm" else f"   x{summary['median_ratio_vs_pyfm'][m]:.2f} of pyFM (max x{summary['max_ratio_vs_pyfm'][m]:.2f})"
        print(f"  {m:15s} {summary['median_seconds'][m]:6.2f} s{ratio}")
    print(f"  same vertex map as pyFM on {len(rows) - summary['pairs_with_any_vertex_differing_from_pyfm']}/{len(rows)} pairs, "
          f"as the float64 torch path on {len(rows) - summary['pairs_with_any_vertex_differing_from_torch_path']}/{len(rows)}; "
          f"max |C - C_pyFM| {summary['max_abs_C_minus_pyfm']:.1e}")
    if profile:
        print("\nOne pair's ZoomOut by part (seconds, summed over the 17 vertex maps):")
        keys = ("embedding", "nearest", "pull-back", "rest", "total")
        print(f"  {'':15s}" + "".join(f"{k:>11s}" for k in keys))
        for m, p in profile["parts_seconds"].items():
            print(f"  {m:15s}" + "".join(f"{p[k]:11.3f}" for k in keys))
        print("\nNearest-neighbour search alone, one 5k x 5k query (seconds; vertices differing from float64):")
        for name, per_k in profile["nearest_neighbour_searches"].items():
            print(f"  {name:45s}" + "".join(f"  {k}: {v['seconds']:.3f} ({v['vertices_differing']})" for k, v in per_k.items()))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
