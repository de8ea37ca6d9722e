"""Cost of exact geodesics (issue #31): one thread, time and peak memory.

    python benchmarks/geodesics_exact.py template      # all pairs of the 6,890-vertex FAUST template
    python benchmarks/geodesics_exact.py faust_r NAME  # rows of the .vts sources of one FAUST_r shape
    python benchmarks/geodesics_exact.py rows          # per-row cost, gdist vs libigl vs heat
    python benchmarks/geodesics_exact.py compare       # tr_reg_080<-tr_reg_081: heat vs exact, both averagings
    python benchmarks/geodesics_exact.py radius        # the same pair, exact rows cut at 0.25 sqrt(area) + far pairs

Results are cached (shapelib cache, by content hash): a second run only loads them.
"""
from __future__ import annotations

import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from shapelib import geodesics as G  # noqa: E402
from shapelib.shape import Shape  # noqa: E402

DATA = os.environ.get("SHAPELIB_DATA", "/work/shared/data")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def template():
    sh = Shape.read(f"{DATA}/faust_registrations/tr_reg_000.ply", name="tr_reg_000")
    t, c = time.time(), time.process_time()
    D = G.exact_geodesic_matrix(sh, progress=True)
    print(f"template all pairs {D.shape}: wall {time.time() - t:.0f} s, cpu {time.process_time() - c:.0f} s, "
          f"max {D.max():.4f}, peak RSS {peak_mb():.0f} MB, backend {G.exact_backend()}", flush=True)


def faust_r(name: str):
    from shapelib.data.real import read_vts

    root = f"{DATA}/faust_r/vtx_5k"
    sh = Shape.read(f"{root}/{name}.off", name=name)
    src = np.unique(read_vts(f"{root}/corres/{name}.vts", sh.n_vertices))
    t, c = time.time(), time.process_time()
    D = G.exact_geodesic_matrix(sh, sources=src, progress=True)
    print(f"{name}: {len(src)} .vts sources, rows {D.shape}: wall {time.time() - t:.0f} s, cpu "
          f"{time.process_time() - c:.0f} s, peak RSS {peak_mb():.0f} MB, backend {G.exact_backend()}", flush=True)


def rows():
    for path in (f"{DATA}/faust_r/vtx_5k/tr_reg_080.off", f"{DATA}/faust_registrations/tr_reg_000.ply"):
        sh = Shape.read(path)
        src = np.arange(0, sh.n_vertices, sh.n_vertices // 10)[:10]
        for backend in ("gdist", "igl"):
            c = time.process_time()
            G.exact_geodesic_distances(sh, src, backend=backend)
            print(f"{path.split('/')[-1]} ({sh.n_vertices}): {backend} {(time.process_time() - c) / len(src):.3f} s/row")
        c = time.process_time()
        G.geodesic_distances(sh, src)
        print(f"{path.split('/')[-1]}: heat {(time.process_time() - c) / len(src):.4f} s/row")


def compare():
    """Two maps of the FAUST_r pair tr_reg_080 <- tr_reg_081: the ground truth moved to a random
    1-ring neighbour (errors of about one edge) and a Euclidean nearest-neighbour map (poses differ:
    errors of all sizes). Each scored {heat, exact} x {shapelib: each GT vertex of shape 2 once,
    authors: every .vts row}."""
    import scipy.sparse as sp

    from shapelib import metrics
    from shapelib.data import real
    from shapelib.kernels import nearest

    items = {it.name: it for it in real.r_dataset("faust_r", names=["tr_reg_080", "tr_reg_081"])}
    pair = real.r_pair(items["tr_reg_080"], items["tr_reg_081"])
    s1, s2 = pair.shape1, pair.shape2
    v1, v2 = items["tr_reg_080"].meta["corres"], items["tr_reg_081"].meta["corres"]
    rng = np.random.default_rng(0)
    e = s1.edges()
    A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(s1.n_vertices,) * 2).tocsr()
    A = A.maximum(A.T).tolil().rows
    jitter = np.array([rng.choice(A[g]) for g in pair.p2p_21])
    import torch

    X1 = torch.as_tensor(s1.vertices - s1.vertices.mean(0))
    X2 = torch.as_tensor(s2.vertices - s2.vertices.mean(0))
    nn = np.asarray(nearest(X1, X2, backend="torch")).astype(np.int64).ravel()
    exact_v = np.flatnonzero(pair.exact)
    sqa = float(np.sqrt(s1.area()))
    h = s1.mean_edge_length()
    print(f"pair {pair.name}: {len(v1)} rows, {len(exact_v)} GT vertices of shape 2, mean edge {h / sqa:.4f} sqrt(area)")
    for name, pred in (("GT + 1-ring jitter", jitter), ("3-D nearest neighbour", nn)):
        t = time.process_time()
        ex_rows = metrics.fmaps_row_errors(s1, pred, v1, v2, geodesics="exact_pairs")
        t_rows = time.process_time() - t
        he_rows = metrics.fmaps_row_errors(s1, pred, v1, v2, geodesics="heat")
        gt = pair.p2p_21[exact_v]
        ex_once = G.exact_pair_distances(s1, gt, pred[exact_v]) / sqa
        he_once = metrics.GeodesicEvaluator.from_pair(pair, geodesics="sources").errors(pred)
        short = (ex_rows * sqa > 0.5 * h) & (ex_rows * sqa < 1.5 * h)
        print(f"  {name}: exact rows {t_rows:.0f} s cpu")
        print(f"    shapelib averaging: heat {100 * he_once.mean():.3f}  exact {100 * ex_once.mean():.3f}")
        print(f"    authors' averaging: heat {100 * he_rows.mean():.3f}  exact {100 * ex_rows.mean():.3f}")
        print(f"    heat/exact at ~1 edge (rows, n={short.sum()}): median {np.median(he_rows[short] / ex_rows[short]):.3f}; "
              f"all nonzero rows: median {np.median(he_rows[ex_rows > 0] / ex_rows[ex_rows > 0]):.3f}", flush=True)


def radius(r: float = 0.25):
    """Cost of ``fmaps_row_errors(..., exact_radius=r)``: truncated rows once per shape, then per map
    the pairs beyond the radius; checked against whole rows when those are cached."""
    from shapelib import metrics
    from shapelib.data import real
    from shapelib.kernels import nearest
    import torch

    items = {it.name: it for it in real.r_dataset("faust_r", names=["tr_reg_080", "tr_reg_081"])}
    pair = real.r_pair(items["tr_reg_080"], items["tr_reg_081"])
    s1, s2 = pair.shape1, pair.shape2
    v1, v2 = items["tr_reg_080"].meta["corres"], items["tr_reg_081"].meta["corres"]
    sqa = float(np.sqrt(s1.area()))
    c = time.process_time()
    G.exact_geodesic_matrix(s1, sources=np.unique(v1), max_distance=r * sqa)
    print(f"rows of {len(np.unique(v1))} sources cut at {r} sqrt(area): {time.process_time() - c:.0f} s cpu, "
          f"peak RSS {peak_mb():.0f} MB", flush=True)
    nn = np.asarray(nearest(torch.as_tensor(s1.vertices - s1.vertices.mean(0)),
                            torch.as_tensor(s2.vertices - s2.vertices.mean(0)), backend="torch")).astype(np.int64)
    for name, pred in (("ground truth", pair.p2p_21), ("3-D nearest neighbour", nn)):
        c = time.process_time()
        e = metrics.fmaps_row_errors(s1, pred, v1, v2, exact_radius=r)
        t = time.process_time() - c
        print(f"  {name}: {100 * e.mean():.3f}, {(e > r).sum()} rows beyond the radius, {t:.1f} s cpu", flush=True)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "rows"
    {"template": template, "faust_r": lambda: faust_r(sys.argv[2] if len(sys.argv) > 2 else "tr_reg_080"),
     "rows": rows, "compare": compare, "radius": radius}[what]()
