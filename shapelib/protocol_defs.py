"""The paper protocols that ``make train`` knows (registered in :mod:`shapelib.protocols`).

* ``diffusionnet_faust_table5`` — DiffusionNet (Sharp et al. 2022) §5.4 / Table 5: vertex-labelling
  correspondence, trained on FAUST registrations 000–079 (xyz inputs, 6,890 labels), tested on
  the 20 test shapes 080–099 in five discretisations (orig / iso / dense / qes / cloud).
* ``diffusionnet_orientation_fig5`` — DiffusionNet Fig. 5: left/right segmentation of humanoids
  and their mirror images from intrinsic (HKS) inputs; complex vs real gradient features.
"""
from __future__ import annotations

import numpy as np
import torch

from .protocols import Protocol, register

# ----------------------------------------------------------------------------- Table 5

T5_KINDS = ("orig", "iso", "dense", "qes", "cloud")
T5_PAPER = {"orig": 0.33, "iso": 0.68, "dense": 0.62, "qes": 0.82, "cloud": 2.59}

T5_CONFIG = {
    "task": "FAUST vertex labelling (6,890 template labels)",
    "inputs": "xyz, centred and scaled into the unit sphere; no augmentation (FAUST is aligned)",
    "in_channels": 3, "n_labels": 6890, "width": 128, "n_blocks": 4, "k_eig": 128, "method": "spectral",
    "laplacian": "auto",                               # cotan (meshes) / point-cloud Laplacian
    "dropout": True, "rows": None,                      # cross-entropy over every vertex
    "epochs": 200, "lr": 1e-3, "decay_every": 50, "decay": 0.5, "seed": 0,
    "n_train": 80, "train": "faust_registrations tr_reg_000-079", "test": "faust_remeshed_test 080-099 x (orig, iso, dense, qes, cloud)",
    "metric": "mean geodesic error x100 on the original test mesh / geodesic diameter (heat method), every vertex",
    "data": {"train": [f"faust_registrations/tr_reg_{i:03d}.ply" for i in range(80)],
             "test": "faust_registrations/tr_reg_080-099.ply (orig) and faust_remeshed_test/<kind>/tr_reg_<kind>_080-099.ply"},
}


def _t5_build(cfg):
    from .diffusion import DiffusionNet

    return DiffusionNet(cfg["in_channels"], cfg["n_labels"], width=cfg["width"], n_blocks=cfg["n_blocks"],
                        method=cfg["method"], dropout=cfg["dropout"])


def _t5_items(cfg, device):
    from .data import real
    from .train import prepare

    return prepare(real.faust_registrations(range(80)), "template_index", "xyz", k=cfg["k_eig"], method=cfg["laplacian"],
                   device=device, desc="operators (FAUST 000-079)")


def _t5_loss(cfg):
    from .train import labelling_loss

    return lambda model, item: labelling_loss(model, item, n_rows=cfg["rows"])


def geodesic_diameter_estimate(shape, n_sources: int = 8) -> float:
    """Geodesic diameter of a mesh, estimated as the largest heat-method distance from
    ``n_sources`` farthest-point-sampled vertices (a lower bound; exact for the extremal pair
    when one of them is sampled)."""
    from .geodesics import geodesic_distances
    from .train import farthest_point_sampling

    src = farthest_point_sampling(shape.vertices, n_sources, seed=0)
    return float(np.max(geodesic_distances(shape, src)))


def t5_test_items(kind: str, idx: int):
    from .data import real

    return (real.faust_registrations([idx]) if kind == "orig" else real.faust_remeshed_test(kind, [idx]))[0]


def _t5_evaluate(model, cfg, device, subset=None):
    """Per test shape: accuracy (exact template vertex, %) and mean geodesic error ×100 ÷ geodesic
    diameter, measured on the original test mesh. ``subset``: ids like ``'iso/080'``."""
    from tqdm.auto import tqdm

    from .data import real
    from .geodesics import geodesic_distances
    from .train import predict_labels, prepare

    per_shape = {}
    for idx in tqdm(real.FAUST_TEST, desc="Table 5 test subjects", leave=False):
        kinds = [k for k in T5_KINDS if subset is None or f"{k}/{idx:03d}" in subset]
        if not kinds:
            continue
        original = real.faust_registrations([idx])[0].shape
        diameter = geodesic_diameter_estimate(original)
        preds = {}
        for kind in kinds:
            item = t5_test_items(kind, idx)
            prepared = prepare([item.shape], None, "xyz", k=cfg["k_eig"], method=cfg["laplacian"], device=device,
                               progress=False)[0]
            with torch.no_grad():
                preds[kind] = (np.asarray(item.template_index), predict_labels(model, prepared))
        # one heat-method solve per template vertex that some prediction missed
        sources = np.unique(np.concatenate([gt[pred != gt] for gt, pred in preds.values()] + [np.zeros(0, int)]))
        D = geodesic_distances(original, sources) if len(sources) else np.zeros((0, original.n_vertices))
        row_of = np.full(original.n_vertices, -1)
        row_of[sources] = np.arange(len(sources))
        for kind, (gt, pred) in preds.items():
            err = np.zeros(len(gt))
            wrong = pred != gt
            err[wrong] = np.atleast_2d(D)[row_of[gt[wrong]], pred[wrong]]
            per_shape[f"{kind}/{idx:03d}"] = {"accuracy": round(100 * float(np.mean(~wrong)), 4),
                                               "error_x100": round(100 * float(err.mean()) / diameter, 5),
                                               "n_vertices": int(len(gt))}
    summary = {}
    for kind in T5_KINDS:
        vals = [v["error_x100"] for k, v in per_shape.items() if k.startswith(kind + "/")]
        if vals:
            summary[kind] = {"mean": round(float(np.mean(vals)), 4), "median": round(float(np.median(vals)), 4),
                             "std": round(float(np.std(vals)), 4), "n": len(vals), "paper": T5_PAPER[kind],
                             "accuracy": round(float(np.mean([v["accuracy"] for k, v in per_shape.items()
                                                              if k.startswith(kind + "/")])), 3)}
    return {"per_shape": per_shape, "summary": summary}


register(Protocol(
    name="diffusionnet_faust_table5",
    title="DiffusionNet Table 5: FAUST vertex labelling, train 000-079, test 080-099 x 5 discretisations",
    config=T5_CONFIG, build=_t5_build, train_items=_t5_items, loss=_t5_loss, evaluate=_t5_evaluate,
    check_shapes=["orig/080", "iso/080"], needs=("faust_registrations", "faust_remeshed_test"),
))

# The connectivity-overfitting baseline of Table 5: the same network and training, but diffusion
# with the combinatorial graph Laplacian of the mesh edges (k-NN graph for the cloud).
register(Protocol(
    name="diffusionnet_faust_table5_graph",
    title="Table 5 baseline: the same DiffusionNet with a graph Laplacian (connectivity-dependent)",
    config={**T5_CONFIG, "laplacian": "graph"}, build=_t5_build, train_items=_t5_items, loss=_t5_loss,
    evaluate=_t5_evaluate, check_shapes=["orig/080", "iso/080"], needs=("faust_registrations", "faust_remeshed_test"),
))
