"""Notebook 05 (implicit matching): worked solutions to its exercises."""
from __future__ import annotations

import numpy as np

from .. import Shape, implicit as im
from ..metrics import chamfer_distance, part_distances
from ..train import farthest_point_sampling



def ex05_collapsed_pairs(x_before: np.ndarray, x_after: np.ndarray, tol: float = 1e-4) -> dict:
    """05, exercise 3: point pairs that collapse (closer than ``tol``) after the deformation, and
    the smallest pairwise distance before and after."""
    from scipy.spatial import cKDTree

    before = cKDTree(x_before).query_pairs(tol)
    after = cKDTree(x_after).query_pairs(tol)
    nearest = lambda x: float(cKDTree(x).query(x, k=2)[0][:, 1].min())
    return {"collapsed pairs": len(after - before), "points": len(x_after),
            "min distance before": nearest(x_before), "min distance after": nearest(x_after)}


def ex05_regulariser(model, x0, src: int, tgt: int, target_points, lams=(0.0, 0.01, 0.1, 1.0), layers=(3, 6),
                     weights=(1.0, 0.1), **match) -> dict:
    """05, exercise 1: the regulariser λ of Eq. 3. Per λ: CD to the target and how far the points
    move — all of them, and the "flat" quarter where the features change least in some direction
    (smallest singular value σ_min of ∇ₓΦ at the source, Fig. 3). λ matters where σ_min ≲ λ."""
    import torch

    phi = im.layer_feature_fn(model.net, layers, weights)
    J = torch.func.vmap(torch.func.jacfwd(phi), in_dims=(0, None))(torch.as_tensor(x0, dtype=torch.float32), model.z(src))
    s_min = torch.linalg.svdvals(J.detach())[:, -1].numpy()                                 # (n,) per point
    flat = s_min <= np.quantile(s_min, 0.25)
    out = {"median σ_min(∇Φ)": float(np.median(s_min)), "median σ_min(∇Φ), flat quarter": float(np.median(s_min[flat]))}
    for lam in lams:
        x1 = im.deform(model, x0, src, tgt, layers=layers, weights=weights, **{**match, "lam": lam})
        step = np.linalg.norm(x1 - x0, axis=1)
        out[lam] = {"CD to target": chamfer_distance(x1, target_points), "mean move": float(step.mean()),
                    "mean move, flat quarter": float(step[flat].mean()), "max move": float(step.max())}
    return out


def ex05_eta(model, shapes, pairs, etas=(0.0, 0.1, 0.5), n_eval: int = 512, face_parts=None, **match) -> dict:
    """05, exercise 2: deformation feature Φ⁽³⁾ ⊕ η·Φ⁽⁶⁾ for several η — whole-shape CD to the target
    and, with per-face part labels (synthetic chairs), the part-averaged CD (Experiment 3)."""
    out = {eta: {"CD": [], "part CD": []} for eta in etas}
    for p, (a, b) in enumerate(pairs):
        src, tgt = shapes[a], shapes[b]
        _, fa, ba = src.sample_surface(n_eval, seed=p)
        yb, fb, _ = tgt.sample_surface(n_eval, seed=50 + p)
        for eta in etas:
            V = im.deform(model, src.vertices, a, b, layers=(3, 6), weights=(1.0, eta), **match)
            xa = im.points_from_bary(V, src.faces, fa, ba)
            out[eta]["CD"].append(chamfer_distance(xa, yb))
            if face_parts is not None:
                out[eta]["part CD"].append(part_distances(xa, face_parts[a][fa], yb, face_parts[b][fb], n_emd=None)["cd"])
    return {eta: {k: float(np.mean(v)) for k, v in r.items() if v} for eta, r in out.items()}


def _silhouettes(model, shapes, src: int = 0, n_fps: int = 8, **match) -> list:
    """Experiment 5: n_fps FPS points of shape ``src`` matched to every other shape (layer 3 + 0.1·last),
    snapped to the nearest target vertex; silhouette of each layer's features, grouped by source point."""
    import torch
    from scipy.spatial import cKDTree
    from sklearn.metrics import silhouette_score

    others = [k for k in range(len(shapes)) if k != src]
    x0 = np.repeat(shapes[src].vertices[farthest_point_sampling(shapes[src].vertices, n_fps, seed=0)], len(others), 0)
    group, tgt_of = np.repeat(np.arange(n_fps), len(others)), np.tile(others, n_fps)
    phi = im.layer_feature_fn(model.net, (3, model.net.n_hidden), (1.0, 0.1))
    zB = model.codes[tgt_of].detach()
    x1 = im.match_points(phi, x0, model.z(src).expand(len(x0), -1), zB, **match).cpu().numpy()
    snap = np.array([shapes[k].vertices[cKDTree(shapes[k].vertices).query(x)[1]] for x, k in zip(x1, tgt_of)])
    feats = model.net.features(torch.as_tensor(snap, dtype=torch.float32), zB)
    return [float(silhouette_score(f.detach().numpy(), group)) for f in feats]


def ex05_shallow_network(D, widths=(128, 128, 128, 64), latent_dim: int = 32, epochs: int = 500, lr: float = 5e-3,
                         seed: int = 0, **match) -> dict:
    """05, exercise 4: a 4-layer auto-decoder on the same chairs, then Experiment 5's silhouettes per
    layer: is the last hidden layer still the least distinctive?"""
    model, hist = im.fit_auto_decoder(D, latent_dim=latent_dim, widths=widths, epochs=epochs, lr=lr, code_lr=3e-2,
                                      points_per_shape=1024, seed=seed, progress=False)
    sil = _silhouettes(model, D.shapes, **match)
    return {"near-surface accuracy": im.occupancy_accuracy(model, D), "silhouette": sil,
            "most distinctive layer": int(np.argmax(sil)) + 1, "BCE first": float(hist["loss"][0]),
            "BCE last": float(hist["loss"][-1]), "seconds": hist["seconds"]}


def ex05_largest_piece(recs, shapes, n: int = 2048) -> dict:
    """05, exercise 5: reconstruction CD×1e3 of each marching-cubes chair, whole and with only its
    largest connected piece (floating blobs — and any broken-off leg — dropped)."""
    full, main = [], []
    for r, s in zip(recs, shapes):
        comp = r.components()
        keep = (comp[r.faces] == np.argmax(np.bincount(comp))).all(1)
        y = s.sample_surface(n, 1)[0]
        full.append(1e3 * chamfer_distance(r.sample_surface(n, 0)[0], y))
        main.append(1e3 * chamfer_distance(Shape(r.vertices, r.faces[keep]).sample_surface(n, 0)[0], y))
    return {"CD×1e3 whole": np.round(full, 2).tolist(), "CD×1e3 largest piece": np.round(main, 2).tolist(),
            "mean whole": float(np.mean(full)), "mean largest piece": float(np.mean(main))}
