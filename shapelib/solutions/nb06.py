"""Notebook 06 (CPNet): worked solutions to its exercises."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import cpnet, Shape
from ..geodesics import geodesic_distances


def ex06_cloud_geodesics(mesh: Shape, sources, sizes=(256, 512, 1024, 2048), seed: int = 0) -> dict:
    """06, exercise: k-NN graph geodesics on sampled clouds vs heat-method geodesics on the mesh
    (median relative difference, distances ÷ bounding-box diagonal) as the cloud gets denser."""
    from scipy.spatial import cKDTree

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


def _train_pointnet(sets, inputs, train, epochs: int, width: int, seed: int = 0, **kw):
    import torch

    torch.manual_seed(seed)
    net = cpnet.make_backbone("PointNet", width=width)
    cpnet.train_embeddings(net, sets, inputs, train, epochs, progress=False, **kw)
    return net


def _held_out(sets, inputs, net, held_out):
    E = cpnet.embed(net, inputs)
    return sets.subset(held_out), [E[i] for i in held_out], E


def ex06_lambda(sets, inputs, train, held_out, lams=(0.1, 1.0, 10.0), epochs: int = 80, width: int = 32) -> dict:
    """06, exercise 1: PointNet trained with L_pull + λ L_push for several λ: held-out mGE and the
    embedding spread (mean per-dimension std over all models)."""
    out = {}
    for lam in lams:
        ev, E_ev, E = _held_out(sets, inputs, _train_pointnet(sets, inputs, train, epochs, width, lam=lam), held_out)
        out[lam] = {"mGE": cpnet.mge(ev, E_ev), "spread": cpnet.embedding_spread(E)}
    return out


def ex06_mining(sets, inputs, train, held_out, epochs: int = 80, width: int = 32, checkpoints=(5, 10, 20, 40, 80)) -> dict:
    """06, exercise 2: hard-negative mining on / off — held-out mGE after each checkpoint epoch."""
    import torch

    out = {}
    for label, mining in (("mined", True), ("all negatives", False)):
        torch.manual_seed(0)
        net, curve = cpnet.make_backbone("PointNet", width=width), {}

        def on_epoch(epoch, hist):
            if epoch + 1 in checkpoints:
                ev, E_ev, _ = _held_out(sets, inputs, net, held_out)
                curve[epoch + 1] = cpnet.mge(ev, E_ev)
                net.train()

        cpnet.train_embeddings(net, sets, inputs, train, epochs, mining=mining, on_epoch=on_epoch, progress=False)
        out[label] = curve
    return out


def ex06_constant_push(sets, inputs, train, held_out, epochs: int = 80, width: int = 32, margin: float | None = None) -> dict:
    """06, exercise 3: the geodesic push (Eq. 3) vs a constant margin (default: the mean of Eq. 2's
    set distances). Held-out mGE (:func:`shapelib.cpnet.mge`) over all sets and over the *adjacent* sets
    (those whose nearest other set is closer than the median nearest-set distance: seat corners next to
    back corners)."""
    D = sets.subset(train).set_distances()
    off = D[D > 0]
    const = np.where(D > 0, float(off.mean()) if margin is None else margin, 0.0)
    nearest_set = np.where(D > 0, D, np.inf).min(1)
    adjacent = set(np.flatnonzero(nearest_set < np.median(nearest_set)).tolist())
    out = {}
    for label, set_dist in (("geodesic push (Eq. 2)", None), (f"constant margin {const.max():.2f}", const)):
        ev, E_ev, _ = _held_out(sets, inputs, _train_pointnet(sets, inputs, train, epochs, width, set_dist=set_dist), held_out)
        res = cpnet.mge_per_set(ev, E_ev)
        near = [v for j, v in res["per_set"].items() if j in adjacent]
        out[label] = {"mGE": res["mge"], "mGE adjacent sets": float(np.mean(near))}
    return out


def ex06_missing_parts(sets, embeddings) -> dict:
    """06, exercise 4: mGE (the authors' per-set reduction, :func:`shapelib.cpnet.mge_per_set`) of the
    optional sets (absent on some models: a chair's arms) vs the sets every model has — each the mean of
    its sets' errors over pairs of different models."""
    per_set = cpnet.mge_per_set(sets, embeddings)["per_set"]
    optional = set(np.flatnonzero(~sets.present.all(0)).tolist())
    opt = [v for j, v in per_set.items() if j in optional]
    always = [v for j, v in per_set.items() if j not in optional]
    names = [sets.set_names[j] if sets.set_names else str(j) for j in sorted(optional)]
    return {"optional sets": names, "mGE optional sets": float(np.mean(opt)), "mGE always-present sets": float(np.mean(always))}


def ex06_rotations(sets, nets: dict, k_eig: int = 64, seed: int = 0) -> dict:
    """06, exercise 5: mGE of trained backbones (xyz input) and of HKS/WKS on upright clouds and on
    randomly rotated ones (one random rotation per cloud; geodesics do not change)."""
    from scipy.spatial.transform import Rotation

    rot = replace(sets, points=[(p @ Rotation.random(random_state=seed + m).as_matrix().T).astype(np.float32)
                                for m, p in enumerate(sets.points)])
    out = {}
    for name, net in nets.items():
        ops = isinstance(net, cpnet.DiffusionNetEmbed)
        out[name] = {label: cpnet.mge(s, cpnet.embed(net, cpnet.prepare_inputs(s, needs_ops=ops, k=k_eig)))
                     for label, s in (("upright", sets), ("rotated", rot))}
    out["HKS/WKS"] = {label: cpnet.mge(s, cpnet.spectral_descriptors(s, k=k_eig, progress=False))
                      for label, s in (("upright", sets), ("rotated", rot))}
    return out


def ex06_hardest_sets(sets, embeddings) -> dict:
    """06, exercise 7: per correspondence set held by two or more models, its mGE (the authors'
    reduction, :func:`shapelib.cpnet.mge_per_set`) and the spread of its points in the shared frame
    (mean distance of the set's points to their mean position); ``spearman``: the rank correlation
    of the two over the sets — do the sets whose position varies most from model to model carry
    the largest errors?"""
    from scipy.stats import spearmanr

    res = cpnet.mge_per_set(sets, embeddings)
    rows = {}
    for j, err in res["per_set"].items():
        models = np.flatnonzero(sets.present[:, j])
        P = np.array([sets.points[m][sets.keypoints[m, j]] for m in models], dtype=np.float64)
        name = sets.set_names[j] if sets.set_names else str(j)
        rows[name] = {"mGE": round(err, 4), "spread": round(float(np.linalg.norm(P - P.mean(0), axis=1).mean()), 4),
                      "n_models": int(len(models))}
    if len(rows) < 3:
        raise ValueError(f"only {len(rows)} sets are held by two or more models: pass more models (a rank "
                         "correlation needs at least 3 sets).")
    rho = spearmanr([r["spread"] for r in rows.values()], [r["mGE"] for r in rows.values()])[0]
    hardest = sorted(rows, key=lambda k: -rows[k]["mGE"])
    return {"per_set": rows, "spearman": round(float(rho), 3), "hardest": hardest[:3], "easiest": hardest[-3:][::-1]}
