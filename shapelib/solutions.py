"""Worked solutions to the notebooks' exercises — one function per exercise, for teachers.

Each notebook exercise has a starter cell (``# YOUR CODE HERE``) and, below it, a collapsed
solution cell that calls :func:`reveal` to print the code of the matching function here; run
the function itself to see its result, e.g. ``solutions.ex01_convergence()``.
``tests/test_solutions.py`` runs every solution (small sizes) so they keep working.

Names: ``exNN_topic`` for notebook NN. Sizes default to the notebooks' quick scale.
"""
from __future__ import annotations

import inspect

import numpy as np

from . import Shape
from . import operators as ops


def reveal(name: str) -> str:
    """Show the source of solution ``name`` (as a code block in Jupyter); returns it."""
    fn = globals().get(name)
    if fn is None or not callable(fn) or not name.startswith("ex"):
        raise KeyError(f"no solution {name!r}; available: {', '.join(available())}")
    src = inspect.getsource(fn)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(f"```python\n{src}```"))
            return src
    except ImportError:  # pragma: no cover
        pass
    print(src)
    return src


def available() -> list[str]:
    """Names of all solutions, in notebook order."""
    return sorted(n for n, f in globals().items() if n.startswith("ex") and callable(f))


# --------------------------------------------------------------------------- 00 data
def ex00_variant_ground_truth(shape: Shape, kind: str = "decimated", seed: int = 0) -> dict:
    """00, exercise 1: build a new discretisation variant and check its ground truth."""
    from .data.synthetic import variants

    var = variants.make_variant(shape, kind, seed=seed)
    dist = np.linalg.norm(var.shape.vertices - shape.vertices[var.to_original], axis=1)
    return {"kind": kind, "n_vertices": var.shape.n_vertices, "of": shape.n_vertices,
            "max_gt_distance_in_edges": float(dist.max() / shape.mean_edge_length())}


def ex00_geodesic_vs_euclidean(shape: Shape, parts=None, min_distance: float = 0.1) -> dict:
    """00, exercise 2: which points are close in space but far along the surface?"""
    from .geodesics import geodesic_distances

    D = geodesic_distances(shape, np.arange(shape.n_vertices))
    E = np.linalg.norm(shape.vertices[:, None] - shape.vertices[None], axis=-1)
    ratio = np.where(E > min_distance, D / np.maximum(E, 1e-12), 0)
    i, j = np.unravel_index(np.argmax(ratio), ratio.shape)
    out = {"max_ratio": float(ratio[i, j]), "pair": (int(i), int(j)), "euclidean": float(E[i, j]), "geodesic": float(D[i, j])}
    if parts is not None:
        out["parts"] = (int(parts[i]), int(parts[j]))
    return out


# --------------------------------------------------------------------------- 01 Laplacians
def _icosphere(subdivisions: int) -> Shape:
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    return Shape(ico.vertices, ico.faces, name=f"icosphere {subdivisions}")


def _sphere_exact(k: int) -> np.ndarray:
    l = np.concatenate([[ll] * (2 * ll + 1) for ll in range(int(np.sqrt(k)) + 1)])[:k]
    return l * (l + 1.0)


def ex01_convergence(subdivisions=(2, 3, 4, 5), k: int = 36) -> dict:
    """01, exercise 1: sphere eigenvalue error vs mean edge length, and the convergence order."""
    h, err = [], []
    exact = _sphere_exact(k)
    for s in subdivisions:
        sphere = _icosphere(s)
        evals, _ = ops.eigenbasis(*ops.laplacian(sphere), k=k)
        h.append(sphere.mean_edge_length())
        err.append(np.max(np.abs(evals[1:] - exact[1:]) / exact[1:]))
    order = np.polyfit(np.log(h), np.log(err), 1)[0]     # slope on log-log axes
    return {"h": np.array(h), "max_rel_error": np.array(err), "order": float(order)}


def ex01_mass_matrices(subdivision: int = 3, k: int = 36) -> dict:
    """01, exercise 2: lumped vs consistent (full FEM) mass matrix on the sphere."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    sphere = _icosphere(subdivision)
    L, M_lumped = ops.laplacian(sphere)
    f, A = sphere.faces, sphere.face_areas()
    rows = np.repeat(f, 3, axis=1).ravel()                # (i, j) for i, j in each face
    cols = np.tile(f, (1, 3)).ravel()
    vals = np.tile(np.where(np.eye(3).ravel() > 0, 1 / 6, 1 / 12), len(f)) * np.repeat(A, 9)
    M_full = sp.csc_matrix((vals, (rows, cols)), shape=L.shape)
    exact = _sphere_exact(k)
    ev_lumped, _ = ops.eigenbasis(L, M_lumped, k=k)
    ev_full = np.sort(eigsh(L, k=k, M=M_full, sigma=-1e-8, which="LM")[0])
    rel = lambda ev: (ev[1:] - exact[1:]) / exact[1:]
    return {"lumped_mean_signed_error": float(rel(ev_lumped).mean()), "full_mean_signed_error": float(rel(ev_full).mean()),
            "lumped_max_abs_error": float(np.abs(rel(ev_lumped)).max()), "full_max_abs_error": float(np.abs(rel(ev_full)).max())}


def ex01_intrinsic_delaunay(shape: Shape, k: int = 50) -> dict:
    """01, exercise 3: cotan vs intrinsic-Delaunay ('robust') spectrum; where the obtuse triangles are."""
    ev_cot, _ = ops.eigenbasis(*ops.laplacian(shape, method="cotan"), k=k)
    ev_rob, _ = ops.eigenbasis(*ops.laplacian(shape, method="robust"), k=k)
    v, f = shape.vertices, shape.faces
    e = [v[f[:, (i + 2) % 3]] - v[f[:, (i + 1) % 3]] for i in range(3)]      # edge opposite corner i
    cos = [-(e[(i + 1) % 3] * e[(i + 2) % 3]).sum(1) for i in range(3)]      # sign of the cosine at corner i
    obtuse = np.any(np.stack(cos) < 0, axis=0)
    rel = np.abs(ev_rob[1:] - ev_cot[1:]) / ev_cot[1:]
    return {"median_rel_diff": float(np.median(rel)), "max_rel_diff": float(rel.max()),
            "obtuse_fraction": float(obtuse.mean()), "obtuse_faces": np.flatnonzero(obtuse)}


def _match_error(FA, FB, query, D_true, norm):
    from scipy.spatial import cKDTree

    mu, sd = FA.mean(0), FA.std(0) + 1e-12
    _, p2p = cKDTree((FA - mu) / sd).query((FB[query] - mu) / sd)
    return D_true[np.arange(len(query)), p2p] / norm


def _matching_setup(shape_a: Shape, shape_b: Shape, n_query: int, seed: int = 0):
    from .geodesics import geodesic_distances

    query = np.random.default_rng(seed).choice(shape_b.n_vertices, n_query, replace=False)
    return query, geodesic_distances(shape_a, query), np.sqrt(shape_a.area())


def ex01_descriptor_times(shape_a: Shape, shape_b: Shape, n_query: int = 300) -> dict:
    """01, exercise 4: HKS matching with all 16 times, only the 5 smallest (local) or only the 5
    largest (global) times; mean geodesic error / sqrt(area)."""
    A, B = ops.compute_operators(shape_a, k=128), ops.compute_operators(shape_b, k=128)
    query, D_true, norm = _matching_setup(shape_a, shape_b, n_query)
    ha, hb = np.log(A.hks()), np.log(B.hks())
    return {name: float(_match_error(ha[:, cols], hb[:, cols], query, D_true, norm).mean())
            for name, cols in (("all 16 times", slice(None)), ("small t only", slice(0, 5)), ("large t only", slice(11, 16)))}


def ex01_noise(shape_a: Shape, shape_b: Shape, sigma_frac: float = 0.005, n_query: int = 300, seed: int = 0) -> dict:
    """01, exercise 5: HKS vs WKS matching after Gaussian vertex noise on pose B."""
    diag = np.linalg.norm(np.ptp(shape_b.vertices, axis=0))
    noisy = shape_b.copy(vertices=shape_b.vertices + np.random.default_rng(seed).normal(0, sigma_frac * diag, shape_b.vertices.shape))
    A = ops.compute_operators(shape_a, k=128)
    query, D_true, norm = _matching_setup(shape_a, shape_b, n_query)
    out = {}
    for tag, s in (("clean", shape_b), ("noisy", noisy)):
        B = ops.compute_operators(s, k=128, cache=tag == "clean")
        out[f"HKS {tag}"] = float(_match_error(np.log(A.hks()), np.log(B.hks()), query, D_true, norm).mean())
        out[f"WKS {tag}"] = float(_match_error(np.log(A.wks()), np.log(B.wks()), query, D_true, norm).mean())
    return out


def ex01_cloud_density(shape: Shape, n_points: int = 2000, kk: int = 60, seed: int = 0) -> dict:
    """01, exercise 6: point-cloud spectrum of a 2,000-point subsample vs the mesh."""
    mesh = ops.compute_operators(shape, k=128)
    full = ops.compute_operators(shape.to_cloud(), k=128)
    idx = np.random.default_rng(seed).choice(shape.n_vertices, n_points, replace=False)
    sub = Shape(shape.vertices[idx], normals=shape.to_cloud().normals[idx])
    L, M = ops.laplacian(sub)
    ev_sub, _ = ops.eigenbasis(L, M * (shape.area() / M.sum()), k=kk)      # same total area as the mesh
    rel = lambda ev: float(np.median(np.abs(ev[1:kk] - mesh.evals[1:kk]) / mesh.evals[1:kk]))
    return {f"all {shape.n_vertices} points": rel(full.evals), f"{n_points} points": rel(ev_sub)}


# --------------------------------------------------------------------------- 03 MEPS
def _train(relation: str, items, n_labels: int, epochs: int, meta_widths, lr: float = 1e-2, seed: int = 0):
    import torch

    from .meps import PointSignatureNet
    from .train import fit, labelling_loss

    torch.manual_seed(seed)
    net = PointSignatureNet(n_labels, relation, meta_widths=meta_widths)
    hist = fit(net, items, labelling_loss, epochs=epochs, lr=lr, weight_decay=1e-4,
               decay_every=max(1, epochs // 3), desc=relation, progress=False)
    return net, hist


def _label_accuracy(net, items, labels) -> float:
    from .train import predict_labels

    return float(100 * np.mean([np.mean(predict_labels(net, P) == labels) for P in items]))


def ex03_equal_compute(P_train, P_test, labels, n_labels: int, epochs: int = 20, meta_widths=(32, 64, 64)) -> dict:
    """03, exercise 1: FeaStNet-S trained for as many *seconds* as MEPS (not as many epochs)."""
    meps, h_meps = _train("meps", P_train, n_labels, epochs, meta_widths)
    feast, h_feast = _train("feast", P_train, n_labels, epochs, meta_widths)
    per_epoch = h_feast.seconds / epochs
    feast_eq, h_eq = _train("feast", P_train, n_labels, int(np.clip(round(h_meps.seconds / per_epoch), epochs, 10 * epochs)), meta_widths)
    return {"MEPS": _label_accuracy(meps, P_test, labels), "FeaStNet-S, same epochs": _label_accuracy(feast, P_test, labels),
            "FeaStNet-S, same seconds": _label_accuracy(feast_eq, P_test, labels),
            "epochs for equal time": len(h_eq.loss), "seconds MEPS / FeaStNet-S": (h_meps.seconds, h_eq.seconds)}


def ex03_shared_gap(P_train, P_test, labels, n_labels: int, epochs: int = 20, meta_widths=(32, 64, 64)) -> dict:
    """03, exercise 2: MEPS vs the one-weight-set base learner of §3.3 (run it at standard scale)."""
    return {name: _label_accuracy(_train(rel, P_train, n_labels, epochs, meta_widths)[0], P_test, labels)
            for name, rel in (("MEPS", "meps"), ("shared f (§3.3)", "shared"))}


def ex03_exact_labels(train_vertices, test_vertices, reference_vertices, sizes=(100, 200, 300), epochs: int = 20,
                      meta_widths=(32, 64, 64), k: int = 20) -> dict:
    """03, exercise 3: every point its own label; label accuracy (= accuracy at zero error) vs n."""
    from .meps import label_set, prepare

    out = {}
    for n in sizes:
        L = label_set(reference_vertices, n, n)
        tr = prepare([v[L.points] for v in train_vertices], [L.labels] * len(train_vertices), k=k)
        te = prepare([v[L.points] for v in test_vertices], [L.labels] * len(test_vertices), k=k)
        out[n] = _label_accuracy(_train("meps", tr, L.n_labels, epochs, meta_widths)[0], te, L.labels)
    return out


def ex03_rotations(models: dict, test_points, labels, degrees: float = 30.0, k: int = 20) -> dict:
    """03, exercise 6: accuracy of the trained models on test shapes rotated about the vertical (y) axis."""
    from .meps import prepare

    a = np.radians(degrees)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rotated = prepare([p @ R.T for p in test_points], [labels] * len(test_points), k=k)
    upright = prepare(list(test_points), [labels] * len(test_points), k=k)
    return {name: {"upright": _label_accuracy(net, upright, labels), f"rotated {degrees:.0f}°": _label_accuracy(net, rotated, labels)}
            for name, net in models.items()}


# --------------------------------------------------------------------------- 02 DiffusionNet
def ex02_eigenpairs_for_diffusion(shape: Shape, u0: np.ndarray, times=(1e-3, 1e-2, 1e-1), ks=(16, 32, 64, 128)) -> dict:
    """02, exercise: how many eigenpairs does spectral diffusion need? Relative difference of the
    k-mode spectral heat flow to the implicit (untruncated) one, for each k and t."""
    O = ops.compute_operators(shape, k=max(ks))
    ref = {t: ops.heat_implicit(u0, O.L, O.M, t, steps=10) for t in times}
    return {k: {t: float(np.abs(ops.heat_spectral(u0, O.evals[:k], O.evecs[:, :k], O.M, t) - ref[t]).max()
                         / np.abs(ref[t]).max()) for t in times} for k in ks}


# --------------------------------------------------------------------------- 04 functional maps
def ex04_zoomout_step(C0, basis1, basis2, evaluate, k_final: int = 130, steps=(10, 1)) -> dict:
    """04, exercise 1: classic ZoomOut with step 1 (the original algorithm) vs 10: error and time."""
    import time

    from .fmaps import zoomout

    out = {}
    for step in steps:
        t = time.perf_counter()
        _, p2p = zoomout(C0, basis1, basis2, k_final, step=step)
        out[step] = {"error": float(evaluate(p2p)), "seconds": time.perf_counter() - t}
    return out


# --------------------------------------------------------------------------- 05 implicit matching
def ex05_collapsed_pairs(x_before: np.ndarray, x_after: np.ndarray, tol: float = 1e-4) -> dict:
    """05, exercise 3: point pairs that collapse (closer than ``tol``) after the deformation, and
    the smallest pairwise distance before and after."""
    from scipy.spatial import cKDTree

    before = cKDTree(x_before).query_pairs(tol)
    after = cKDTree(x_after).query_pairs(tol)
    nearest = lambda x: float(cKDTree(x).query(x, k=2)[0][:, 1].min())
    return {"collapsed pairs": len(after - before), "points": len(x_after),
            "min distance before": nearest(x_before), "min distance after": nearest(x_after)}


# --------------------------------------------------------------------------- 06 CPNet
def ex06_cloud_geodesics(mesh: Shape, sources, sizes=(256, 512, 1024, 2048), seed: int = 0) -> dict:
    """06, exercise: k-NN graph geodesics on sampled clouds vs heat-method geodesics on the mesh
    (median relative difference, distances ÷ bounding-box diagonal) as the cloud gets denser."""
    from scipy.spatial import cKDTree

    from .geodesics import geodesic_distances

    sources = np.atleast_1d(sources)
    diag = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    D_mesh = np.atleast_2d(geodesic_distances(mesh, sources)) / diag
    out = {}
    for n in sizes:
        pts = mesh.sample_surface(n, seed=seed)[0]
        cloud = Shape(np.vstack([mesh.vertices[sources], pts]))
        D_cloud = np.atleast_2d(geodesic_distances(cloud, np.arange(len(sources)), method="graph"))[:, len(sources):] / diag
        ref = D_mesh[:, cKDTree(mesh.vertices).query(pts)[1]]
        far = ref > 0.05
        out[n] = float(np.median(np.abs(D_cloud[far] - ref[far]) / ref[far]))
    return out
