"""DiffusionNet (Sharp et al. 2022): the paper protocols ``make train`` knows, their evaluation and REPORT rows.

* ``diffusionnet_faust_table5`` — §5.4 / Table 5: vertex-labelling correspondence, trained on
  FAUST registrations 000–079 (xyz inputs, 6,890 labels), tested on the 20 test shapes 080–099 in
  five discretisations (orig / iso / dense / qes / cloud); ``diffusionnet_faust_table5_graph`` —
  the same network and training with a graph Laplacian (the connectivity-overfitting baseline).
* ``diffusionnet_orientation_fig5_{complex,real}`` — Fig. 5: left/right segmentation of humanoids
  and their mirror images from intrinsic (HKS) inputs; complex vs real gradient features.

How long each took to train, and on what, is in its record (``results/checkpoints/NAME.json``).
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import data
from ..cache import disk_cache
from ..data import real
from ..diffusion import DiffusionNet, rotation_about
from ..geodesics import exact_geodesic_matrix, exact_pair_distances, geodesic_distances
from ..metrics import GeodesicEvaluator, table5_errors, table5_geodesic_matrix
from ..train import farthest_point_sampling, labelling_loss, predict_labels, prepare
from . import checkpoints, report
from .checkpoints import Record
from .diffusionnet_fmaps import with_face_mean_normals
from .registry import Protocol, register
from .scoring import summary_stats

# ----------------------------------------------------------------------------- Table 5

T5_KINDS = ("orig", "iso", "dense", "qes", "cloud")
T5_PAPER = {"orig": 0.33, "iso": 0.68, "dense": 0.62, "qes": 0.82, "cloud": 2.59}

T5_CONFIG = {
    "task": "FAUST vertex labelling (6,890 template labels)",
    "inputs": "xyz, centred and scaled into the unit sphere; random rotation about the vertical (y) axis at "
              "every training step (the paper's augmentation for this table, App. C)",
    # width 256 with dropout, as the paper's App. C trains for this table
    "rotate_axis": 1, "in_channels": 3, "n_labels": 6890, "width": 256, "n_blocks": 4, "k_eig": 128, "method": "spectral",
    "laplacian": "auto",                               # cotan (meshes) / point-cloud Laplacian
    "dropout": True, "rows": None,                      # cross-entropy over every vertex
    "epochs": 200, "lr": 1e-3, "decay_every": 50, "decay": 0.5, "seed": 0,
    "n_train": 80, "train": "faust_registrations tr_reg_000-079", "test": "faust_remeshed_test 080-099 x (orig, iso, dense, qes, cloud)",
    "metric": "mean geodesic error x100 on the original test mesh / geodesic diameter (heat method), every vertex",
    "data": {"train": [f"faust_registrations/tr_reg_{i:03d}.ply" for i in range(80)],
             "test": "faust_registrations/tr_reg_080-099.ply (orig) and faust_remeshed_test/<kind>/tr_reg_<kind>_080-099.ply"},
}


def _t5_build(cfg):
    return DiffusionNet(cfg["in_channels"], cfg["n_labels"], width=cfg["width"], n_blocks=cfg["n_blocks"],
                        method=cfg["method"], dropout=cfg["dropout"])


def reference_t5_shape(shape):
    """``shape`` as DiffusionNet's reference Table 5 script hands it to its operators and network
    (github nmwsharp/diffusion-net, ``experiments/sampling_invariance/faust_with_robust_test_dataset.py``
    l. 71 and 132: ``normalize_positions(verts, method='bbox')``, i.e. centred at the middle of the
    bounding box and scaled to largest radius 1, ``src/diffusion_net/geometry.py`` l. 635–652). Meshes
    get the normals the reference builds when it is given none (l. 64, 95, 125 → ``geometry.py``
    ``mesh_vertex_normals``, l. 101: the plain mean of the unit face normals,
    :func:`~shapelib.experiments.diffusionnet_fmaps.face_mean_normals`); point clouds keep the normals
    of their file (l. 112–113). shapelib's default instead centres the inputs at the centroid
    (:func:`~shapelib.diffusion.input_features`) and builds operators on the raw shape with
    area-weighted normals."""
    s = bbox_unit_shape(shape)
    return s if not s.is_mesh else with_face_mean_normals(s)


def bbox_unit_shape(shape):
    """``shape`` centred at the middle of its bounding box and scaled to largest radius 1, the
    reference script's ``normalize_positions(verts, method='bbox')`` (``geometry.py`` l. 635–652),
    its normals left as they are (the centring of :func:`reference_t5_shape` alone)."""
    v = shape.vertices - (shape.vertices.max(0) + shape.vertices.min(0)) / 2
    return shape.copy(vertices=v / np.linalg.norm(v, axis=1).max())


def t5_prepare(shapes, labels, cfg, device=None, progress: bool = True, desc: str = "operators") -> list[dict]:
    """Operators and xyz inputs of Table 5 shapes (or items), as :func:`shapelib.train.prepare` returns
    them. ``cfg["operators"] == "reference"``: each shape as the reference script sees it
    (:func:`reference_t5_shape`), its operators with the reference's gradient regularisation
    (``cfg["gradient_eps"]``, ``geometry.py`` l. 233), and its normalised coordinates themselves as
    the inputs; ``"bbox"``: the reference's centring and scale alone (:func:`bbox_unit_shape`, shapelib's
    normals); otherwise shapelib's defaults (:func:`~shapelib.train.prepare`). The gradient solve is
    regularised by ``cfg["gradient_eps"]`` when the config sets one."""
    operators = cfg.get("operators", "shapelib")
    transforms = {"shapelib": None, "reference": reference_t5_shape, "bbox": bbox_unit_shape}
    if operators not in transforms:
        raise ValueError(f"cfg['operators'] = {operators!r}: choose one of {', '.join(map(repr, transforms))}.")
    # the reference variant must name its eps (a missing key is an error, never a silent 0)
    how = {"gradient_eps": cfg["gradient_eps"] if operators == "reference" else cfg.get("gradient_eps", 0.0)}
    if transforms[operators] is not None:
        how.update(transform=transforms[operators], normalize_xyz=False)
    return prepare(shapes, labels, "xyz", k=cfg["k_eig"], method=cfg["laplacian"], device=device, progress=progress,
                   desc=desc, **how)


def _t5_items(cfg, device):
    return t5_prepare(real.faust_registrations(range(80)), "template_index", cfg, device=device,
                      desc="operators (FAUST 000-079)")


def _t5_loss(cfg):
    axis = cfg.get("rotate_axis")
    return lambda model, item: labelling_loss(model, item, n_rows=cfg["rows"], rotate=axis is not None, axis=axis)


def geodesic_diameter_estimate(shape, n_sources: int = 8) -> float:
    """Geodesic diameter of a mesh, estimated as the largest heat-method distance from
    ``n_sources`` farthest-point-sampled vertices (a lower bound; exact for the extremal pair
    when one of them is sampled)."""
    src = farthest_point_sampling(shape.vertices, n_sources, seed=0)
    return float(np.max(geodesic_distances(shape, src)))


def t5_test_items(kind: str, idx: int):
    return (real.faust_registrations([idx]) if kind == "orig" else real.faust_remeshed_test(kind, [idx]))[0]


def _t5_predict(model, cfg, device, kind: str, idx: int) -> tuple[np.ndarray, np.ndarray]:
    """``(true, predicted)`` template vertex of every vertex of test shape ``idx`` in discretisation ``kind``."""
    item = t5_test_items(kind, idx)
    prepared = t5_prepare([item.shape], None, cfg, device=device, progress=False)[0]
    with torch.no_grad():
        return np.asarray(item.template_index), predict_labels(model, prepared)


def _t5_evaluate(model, cfg, device, subset=None):
    """Per test shape: accuracy (exact template vertex, %) and mean geodesic error ×100 ÷ geodesic
    diameter, measured on the original test mesh. ``subset``: ids like ``'iso/080'``."""
    per_shape = {}
    for idx in tqdm(real.FAUST_TEST, desc="Table 5 test subjects", leave=False):
        kinds = [k for k in T5_KINDS if subset is None or f"{k}/{idx:03d}" in subset]
        if not kinds:
            continue
        original = real.faust_registrations([idx])[0].shape
        diameter = geodesic_diameter_estimate(original)
        preds = {kind: _t5_predict(model, cfg, device, kind, idx) for kind in kinds}
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
            summary[kind] = {**summary_stats(vals), "n": len(vals), "paper": T5_PAPER[kind],
                             "accuracy": round(float(np.mean([v["accuracy"] for k, v in per_shape.items()
                                                              if k.startswith(kind + "/")])), 3)}
    return {"per_shape": per_shape, "summary": summary}


def rotation_sweep(model, cfg=T5_CONFIG, kinds=("orig", "cloud"), indices=(80,), angles=range(0, 360, 30),
                   device="cpu", n_eval: int = 500) -> dict:
    """Test shapes turned about the vertical by fixed angles: ``{kind: {idx: {"angle": [...],
    "error_x100": [...], "accuracy": [...]}}}`` for a Table 5 model trained with random rotations
    about the vertical (``cfg["rotate_axis"] == 1``; the augmentation draws one uniform angle in
    [0°, 360°) per training step, :func:`shapelib.diffusion.random_rotation`). Only the xyz inputs
    turn: DiffusionNet's operators and gradient features do not depend on the shape's orientation.
    Errors by shapelib's metric (heat-method geodesics on the original test mesh ÷ its diameter,
    ``n_eval`` sampled vertices): this sweep compares angles, not the paper."""
    axis = cfg.get("rotate_axis")
    if axis is None:
        raise ValueError("rotation_sweep needs a model trained with rotations about an axis (cfg['rotate_axis']).")
    out = {}
    for kind in kinds:
        for idx in indices:
            item = t5_test_items(kind, idx)
            prepared = t5_prepare([item.shape], None, cfg, device=device, progress=False)[0]
            ev = GeodesicEvaluator(real.faust_registrations([idx])[0].shape, item.template_index, n_samples=n_eval,
                                   normalize="diameter")
            gt, row = np.asarray(item.template_index), {"angle": [], "error_x100": [], "accuracy": []}
            for deg in angles:
                R = rotation_about(axis, np.radians(deg)).to(prepared["x"])
                pred = predict_labels(model, {**prepared, "x": prepared["x"] @ R.T})
                row["angle"].append(int(deg))
                row["error_x100"].append(100 * float(ev.errors(pred).mean()))
                row["accuracy"].append(100 * float(np.mean(pred == gt)))
            out.setdefault(kind, {})[idx] = row
    return out


def plot_rotation_sweep(sweep: dict):
    """One line per test shape and discretisation: error against the angle (log scale). Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

    fig, ax = plt.subplots(figsize=(7, 2.8))
    for c, (kind, per) in enumerate(sweep.items()):
        for m, (idx, row) in enumerate(per.items()):
            ax.semilogy(row["angle"], row["error_x100"], marker="os^v"[m % 4], color=f"C{c}", label=f"{kind} {idx:03d}")
    ax.set(xlabel="rotation about the vertical (degrees)", ylabel="mean geodesic error ×100 (log)",
           title="Table 5 model, test shapes turned by fixed angles", xticks=list(range(0, 361, 60)))
    ax.yaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]))   # plain numbers, not 10^k
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


T5_YARDSTICK = ("the reference code: exact geodesics on the template tr_reg_000 ÷ its geodesic diameter ×100, "
                "every vertex of a discretisation's 20 test shapes pooled (experiments/sampling_invariance)")


def _t5_yardstick(model, cfg, device, subset=None, diameter: float | None = None):
    """Table 5 as DiffusionNet's reference code scores it (github nmwsharp/diffusion-net,
    ``experiments/sampling_invariance/sampling_invariance.py`` l. 65–66 and 215–225 with
    ``src/diffusion_net/geometry.py`` ``geodesic_label_errors`` l. 770–774,
    :func:`shapelib.metrics.table5_scores`): a predicted template vertex is scored by its exact
    geodesic distance to the true one ON THE TEMPLATE tr_reg_000, ÷ the template's geodesic diameter
    (the maximum of its exact all-pairs matrix), ×100, with the errors of all test shapes of a
    discretisation pooled before the mean. (:func:`_t5_evaluate` measures on each original test mesh
    with heat-method geodesics, ÷ an estimated diameter, mean per shape then over shapes.)
    ``diameter`` not given: the template's all-pairs matrix is loaded (cached on disk; ~13 min to build
    once) and every error is read from it, as the reference reads it (:func:`shapelib.metrics.table5_errors`).
    ``diameter`` given (a check of one shape without the 190 MB matrix): only the wrong vertices get a
    distance, each solved exactly (:func:`shapelib.geodesics.exact_pair_distances`), the same distances
    up to the reference's symmetrising of its matrix."""
    template = real.faust_registrations([0])[0].shape
    D = table5_geodesic_matrix(template) if diameter is None else None
    diameter = float(D.max()) if D is not None else float(diameter)
    per_shape, pooled = {}, {}
    for idx in tqdm(real.FAUST_TEST, desc="Table 5 test subjects (paper yardstick)", leave=False):
        for kind in T5_KINDS:
            if subset is not None and f"{kind}/{idx:03d}" not in subset:
                continue
            gt, pred = _t5_predict(model, cfg, device, kind, idx)
            err = np.zeros(len(gt))
            wrong = pred != gt
            if wrong.any():
                err[wrong] = (table5_errors(D, pred[wrong], gt[wrong], diameter) if D is not None else
                              exact_pair_distances(template, gt[wrong], pred[wrong]) / diameter)
            pooled.setdefault(kind, []).append(err)
            per_shape[f"{kind}/{idx:03d}"] = {"error_x100": round(100 * float(err.mean()), 5), "n_vertices": int(len(gt))}
    summary = {kind: {"mean": round(100 * float(np.concatenate(v).mean()), 4), "n": len(v),
                      "n_vertices": int(sum(map(len, v))), "paper": T5_PAPER[kind]} for kind, v in pooled.items()}
    return {"per_shape": per_shape, "summary": summary, "diameter": round(diameter, 6), "yardstick": T5_YARDSTICK}


T5, T5_GRAPH = "diffusionnet_faust_table5", "diffusionnet_faust_table5_graph"
T5_SEED1 = T5 + "_seed1"
T5_REFOPS = T5 + "_reference_operators"
T5_EPS = T5 + "_gradient_eps"
T5_BBOX = T5 + "_bbox_centring"
#: Table 5 trained and tested on the shapes and operators of the reference script (the paper's own code)
T5_REFOPS_CONFIG = {
    **T5_CONFIG, "operators": "reference", "gradient_eps": 1e-5,
    "inputs": "xyz as the reference script gives them: every shape centred at its bounding-box middle and scaled to "
              "largest radius 1 (normalize_positions(method='bbox')), operators built on those coordinates with "
              "face-mean normals on meshes and the gradient solve regularised by eps 1e-5; random rotation about "
              "the vertical (y) axis at every training step (App. C)",
}
#: one of the reference script's three settings alone: shapelib's shapes, centring and normals, the
#: gradient solve regularised as the reference's (its effect on the meshes' gradient operators: the
#: largest row norm of grad_x on tr_reg_000 falls from 22.7x the median to 7.5x; on the test clouds it does not move)
T5_EPS_CONFIG = {
    **T5_CONFIG, "gradient_eps": 1e-5,
    "inputs": T5_CONFIG["inputs"] + "; operators with the gradient solve regularised by eps 1e-5 as the reference's "
              "(geometry.py l. 233), shapelib's centring and normals otherwise",
}
#: another of the three alone: every shape centred at its bounding-box middle and scaled to largest
#: radius 1 as the reference's (operators built on those coordinates, which are the inputs), shapelib's
#: normals and unregularised gradient solve. shapelib centres at the area-weighted centroid, which
#: moves little with the pose; the bounding-box middle moves with a raised arm or a wide step.
T5_BBOX_CONFIG = {
    **T5_CONFIG, "operators": "bbox",
    "inputs": "xyz as the reference script centres and scales them: every shape centred at its bounding-box middle "
              "and scaled to largest radius 1 (normalize_positions(method='bbox')), operators built on those "
              "coordinates with shapelib's normals and unregularised gradient solve; random rotation about the "
              "vertical (y) axis at every training step (App. C)",
}
T5_PAPER_BASELINES = "the paper's mesh-based baselines degrade (e.g. ACSCNN 0.05 orig → 35.29 iso, 41.15 qes)"


def t5_differs(record: Record) -> list[str]:
    """What a Table 5 record's run does differently from the paper (App. C, §5.4): empty at the
    paper's settings."""
    cfg, out = record.config, []
    if cfg["width"] != 256:
        out.append(f"width {cfg['width']} (paper 256)")
    if cfg.get("rotate_axis") != 1:
        out.append("no rotation augmentation about the vertical")
    if not record.complete:
        out.append(f"stopped at epoch {record.epochs_done} of {cfg['epochs']} (partial)")
    return out


def t5_report_rows(records: dict | None = None) -> list[dict]:
    """REPORT rows of the committed Table 5 checkpoints (DiffusionNet, and the graph-Laplacian
    baseline when committed): mean geodesic error ×100 per discretisation, from their records."""
    if records is None:
        records = checkpoints.committed((T5, T5_GRAPH))
    rows = []
    for name, rec in records.items():
        graph = name == T5_GRAPH
        differs = t5_differs(rec)
        where = f"{rec.epochs_done} epochs on {rec.trained_on_text()}"
        protocol = ("paper" if not differs else "reduced: " + "; ".join(differs)) + f" ({where})"
        if graph:
            protocol = "baseline, not in the paper: the same network and training, graph Laplacian of the mesh edges; " + protocol
        for kind, S in rec.summary().items():
            own = f"{S['mean']:.2f} (median {S['median']:.2f}, std {S['std']:.2f}); accuracy {S['accuracy']:.1f} %"
            ours, value, yardstick = report.yardstick_columns(
                own, S["mean"], rec.paper_score(kind), T5_YARDSTICK,
                "shapelib's (heat-method geodesics on each test mesh ÷ an estimated diameter, mean per shape)")
            rows.append(dict(
                quantity=f"Table 5, {kind}: mean geodesic error ×100 ({'graph-Laplacian baseline, ' if graph else ''}checkpoint)",
                paper=T5_PAPER_BASELINES if graph else S["paper"], ours=ours,
                data=f"real: FAUST 000–079 → FAUST test 080–099, {kind}", protocol=protocol + yardstick, n=S["n"],
                seeds=rec.seeds, ours_value=value, paper_value=None if graph else S["paper"],
                unit="geodesic error x100 / diameter", spread={"std": S["std"], "median": S["median"], "shapelib_metric": S["mean"]},
                scale="paper-protocol checkpoint"))
    return rows


def update_report(record: str = "results/records/02_diffusion_layers.json"):
    """Replace notebook 02's stored Table 5 checkpoint rows by :func:`t5_report_rows` and re-assemble
    results/REPORT.md (notebook 02 builds the same rows when it runs)."""
    return report.replace_rows(record, lambda r: r["quantity"].startswith("Table 5") and "checkpoint)" in r["quantity"],
                               t5_report_rows(), notebook="02 DiffusionNet")


# Table 5 and its three companions share the task, network, training, data and scoring; they differ in
# one thing each. T5_SEED1: the same protocol from another seed, to see how much the columns (the
# point clouds above all) vary from one training run to the next (the paper gives one run).
# T5_REFOPS: the shapes and operators of the reference script (bbox centring, face-mean normals, gradient
# eps 1e-5) in training and test: does the point-cloud column depend on them? T5_EPS and T5_BBOX: one
# of the three alone each, to compare with T5_REFOPS at equal epochs (make train ... --stop-epoch).
# T5_GRAPH: the connectivity-overfitting baseline, diffusion with the combinatorial graph Laplacian of
# the mesh edges (k-NN graph for the cloud).
for _name, _title, _cfg, _check in (
        (T5, "DiffusionNet Table 5: FAUST vertex labelling, train 000-079, test 080-099 x 5 discretisations",
         T5_CONFIG, ["orig/080", "iso/080"]),
        (T5_SEED1, "DiffusionNet Table 5, seed 1 (the same protocol from another random start)",
         {**T5_CONFIG, "seed": 1}, ["orig/080", "cloud/080"]),
        (T5_REFOPS, "DiffusionNet Table 5 on the reference script's shapes and operators (bbox centring, face-mean "
                    "normals, gradient eps 1e-5)", T5_REFOPS_CONFIG, ["orig/080", "cloud/080"]),
        (T5_EPS, "DiffusionNet Table 5 with the reference's gradient regularisation alone (eps 1e-5; shapelib's "
                 "centring and normals)", T5_EPS_CONFIG, ["orig/080", "cloud/080"]),
        (T5_BBOX, "DiffusionNet Table 5 with the reference's bounding-box centring and scale alone (shapelib's "
                  "normals and gradient solve)", T5_BBOX_CONFIG, ["orig/080", "cloud/080"]),
        (T5_GRAPH, "Table 5 baseline: the same DiffusionNet with a graph Laplacian (connectivity-dependent)",
         {**T5_CONFIG, "laplacian": "graph"}, ["orig/080", "iso/080"])):
    register(Protocol(name=_name, title=_title, config=_cfg, build=_t5_build, train_items=_t5_items, loss=_t5_loss,
                      evaluate=_t5_evaluate, yardstick=_t5_yardstick, check_shapes=_check,
                      needs=("faust_registrations", "faust_remeshed_test")))


# ----------------------------------------------------------------------------- Figure 5

F5_CONFIG = {
    "task": "left/right segmentation of FAUST humans and their mirror images (orientation, Fig. 5)",
    "inputs": "16 HKS (intrinsic); each shape and its mirror image (x -> -x, triangles flipped) with labels swapped",
    "labels": "template side: mean lateral coordinate over tr_reg_000-079 > +1 cm -> 1, < -1 cm -> 0, else ignored",
    "in_channels": 16, "n_labels": 2, "width": 32, "n_blocks": 4, "k_eig": 128, "method": "spectral",
    "gradient_mode": "complex", "dropout": False,
    # the paper gives no separate budget for this toy (its default is 200 epochs): 12 epochs over the
    # 160 shapes; a real A is at chance whatever the budget (its features are identical on a shape
    # and its mirror image)
    "epochs": 12, "lr": 1e-3, "decay_every": 6, "decay": 0.5, "seed": 0, "n_train": 160,
    "train": "faust_registrations tr_reg_000-079 + mirrors", "test": "faust_registrations tr_reg_080-099 + mirrors",
    "metric": "per-vertex left/right accuracy on labelled vertices",
    "data": {"train": [f"faust_registrations/tr_reg_{i:03d}.ply" for i in range(80)],
             "test": [f"faust_registrations/tr_reg_{i:03d}.ply" for i in range(80, 100)]},
}
F5_PAPER = {"complex": 99.9, "real": 50.0}
#: the yardstick words of the Fig. 5 rows (the paper quotes the accuracy in its text; no evaluation code published)
F5_YARDSTICK = "share of vertices given the right side, mean over test shapes (the paper's measure; its code is not published)"
#: Table 7 of the paper (human segmentation accuracy %, Maron et al.'s dataset): the ablated variants,
#: as keyword arguments of :class:`shapelib.diffusion.DiffusionNet`, and the paper's values.
T7_ABLATIONS = {"no diffusion": dict(diffusion=False), "fixed-time diffusion t = 0.1": dict(fixed_time=0.1),
                "fixed-time diffusion t = 0.5": dict(fixed_time=0.5), "no gradient features": dict(gradient_features=False),
                "unlearned gradient features": dict(gradient_mode="identity"), "(full method)": dict()}
T7_PAPER = {"no diffusion": 31.4, "fixed-time diffusion t = 0.1": 89.1, "fixed-time diffusion t = 0.5": 81.6,
            "no gradient features": 84.1, "unlearned gradient features": 85.6, "(full method)": 90.6}
#: the yardstick words of the live Table 7 rows (:func:`shapelib.train.face_accuracy`)
T7_YARDSTICK = ("the reference code's: share of correctly labelled faces, pooled over the test shapes, a face's "
                "prediction the arg-max of its three vertices' mean outputs (experiments/human_segmentation_original: "
                "outputs_at='faces', test() correct / total); the synthetic parts label vertices, so a face takes "
                "the label of at least two of its vertices")
F5 = "diffusionnet_orientation_fig5"            # + "_complex" / "_real"


def template_sides(margin: float = 0.01) -> np.ndarray:
    """``(6890,) int`` side of every FAUST template vertex: 1 (+x side), 0 (−x side), −100 (within
    ``margin`` metres of the mid-plane: ignored by the loss). The lateral coordinate is averaged
    over the centred training shapes 000–079, so no single pose decides."""
    def compute():
        xs = np.mean([it.shape.vertices[:, 0] - it.shape.vertices[:, 0].mean() for it in real.faust_registrations(range(80))],
                     axis=0)
        return {"x": xs}

    x = disk_cache("faust_template_sides", "faust_registrations_000-079", {"v": 1}, compute)["x"]
    return np.where(x > margin, 1, np.where(x < -margin, 0, -100)).astype(np.int64)


def orientation_items(indices, cfg, device, progress=True):
    """Each FAUST shape and its mirror image, HKS inputs, side labels (swapped on the mirror)."""
    shapes = [it.shape for it in real.faust_registrations(indices)]
    return with_mirrors(shapes, [template_sides()] * len(shapes), k=cfg["k_eig"], device=device, progress=progress)


def _f5_build(cfg):
    return DiffusionNet(cfg["in_channels"], cfg["n_labels"], width=cfg["width"], n_blocks=cfg["n_blocks"],
                        method=cfg["method"], gradient_mode=cfg["gradient_mode"], dropout=cfg["dropout"])


def labelling_loss_of(cfg):
    """The protocols' loss factory for plain vertex labelling (cross-entropy over every vertex)."""
    return labelling_loss


def _f5_evaluate(model, cfg, device, subset=None):
    """Left/right accuracy (%) per test shape (``'080'``, ``'080_mirror'``, ...), labelled vertices only."""
    idx = [i for i in range(80, 100) if subset is None or {f"{i:03d}", f"{i:03d}_mirror"} & set(subset)]
    items = orientation_items(idx, cfg, device, progress=False)           # shape, mirror, shape, mirror, ...
    keys = [f"{i:03d}{suffix}" for i in idx for suffix in ("", "_mirror")]
    per_shape = {}
    for key, d in zip(keys, items):
        if subset is not None and key not in subset:
            continue
        y = d["y"].cpu().numpy()
        keep = y >= 0
        per_shape[key] = {"accuracy": round(100 * float(np.mean(predict_labels(model, d)[keep] == y[keep])), 4)}
    acc = [v["accuracy"] for v in per_shape.values()]
    return {"per_shape": per_shape,
            "summary": {"accuracy": {**summary_stats(acc, digits=3, minimum=True), "n": len(acc),
                                     "paper": F5_PAPER[cfg["gradient_mode"]]}}}


for _mode in ("complex", "real"):
    register(Protocol(
        name=f"{F5}_{_mode}",
        title=f"DiffusionNet Fig. 5: left/right on FAUST + mirror images, HKS inputs, {_mode} A",
        config={**F5_CONFIG, "gradient_mode": _mode},
        build=_f5_build, train_items=lambda cfg, device: orientation_items(range(80), cfg, device),
        loss=labelling_loss_of,
        evaluate=_f5_evaluate, check_shapes=["080", "080_mirror"], needs=("faust_registrations",),
    ))


# ----------------------------------------------------------------------------- for notebook 02

#: Table 5 of the paper (mean geodesic error ×100, orig / iso / dense / qes / cloud)
PAPER_T5_ROWS = {"DiffusionNet": [0.33, 0.68, 0.62, 0.82, 2.59], "DGCNN (vertices)": [2.44, 14.58, 15.72, 27.00, 32.13],
                 "ACSCNN": [0.05, 35.29, 19.09, 41.15, None]}


def template_diameter() -> float:
    """The geodesic diameter of the template tr_reg_000 (the divisor of :data:`T5_YARDSTICK`): as
    measured for the committed Table 5 checkpoint's re-scoring (its record's ``paper_yardstick``
    entry, the maximum of the exact all-pairs matrix), else computed (:func:`table5_geodesic_matrix`,
    ~13 min once on one thread, then cached)."""
    stored = checkpoints.committed([T5]).get(T5)
    d = stored.evaluation.get("paper_yardstick", {}).get("diameter") if stored else None
    return float(d) if d else float(table5_geodesic_matrix(real.faust_registrations([0])[0].shape).max())


def evaluate_patch_labelling(models: dict, methods: dict, centers, label_of, kinds=T5_KINDS, n_test: int = 2,
                             n_eval: int = 300) -> dict:
    """The reduced, live Table 5 of notebook 02: each model of ``models`` (name → network, with
    ``methods[name]`` its Laplacian) labels the test humans of every discretisation in ``kinds``
    (:func:`shapelib.data.humans_remeshed`, ``n_test`` shapes each) with template patches, and a
    predicted patch stands for its centre vertex (``centers``). Also scores the oracle (the true
    patch's centre: the floor of patch labelling).

    The yardstick (``"yardstick"`` in the result): on the FAUST data, the paper's (:data:`T5_YARDSTICK`,
    as :func:`_t5_yardstick`): the exact geodesic distance ON THE TEMPLATE tr_reg_000 from the
    predicted centre to every vertex's true template vertex, ÷ the template's geodesic diameter
    (:func:`template_diameter`), all vertices of a discretisation pooled — only the K centres need exact
    rows. On the synthetic humans (no FAUST data) shapelib's metric stands in: heat-method geodesics on
    the original test mesh ÷ its diameter, ``n_eval`` sampled vertices.

    Returns ``{"errors": {name: {kind: [per-shape error arrays]}}, "mean_error": {name: {kind: ×100}},
    "mean_accuracy": {name: {kind: %}}, "source", "yardstick", "paper_yardstick": bool}``."""
    names = list(methods) + ["oracle (patch centre)"]
    errors = {n: {k: [] for k in kinds} for n in names}
    acc = {n: {k: [] for k in kinds} for n in methods}
    originals, source, rows = {}, None, None
    centers = np.asarray(centers)
    for kind in kinds:
        coll = data.humans_remeshed(kind, n_max=n_test)
        source = source or coll.source
        paper_yardstick = coll.source.startswith("real")
        if paper_yardstick and rows is None:   # exact rows of the K centres on the template, ÷ its diameter
            template = real.faust_registrations([0])[0].shape
            rows = exact_geodesic_matrix(template, sources=np.unique(centers)) / template_diameter()
            row_of = {int(c): i for i, c in enumerate(np.unique(centers))}
        for item in coll:
            truth = label_of(item)
            if paper_yardstick:
                def score(pred_vertices, tv=np.asarray(item.template_index)):
                    return rows[[row_of[int(c)] for c in pred_vertices], tv]
            else:
                key = (item.meta["subject"], item.meta["pose"])
                if key not in originals:   # the test shape on the template connectivity: errors are measured there
                    originals[key] = item.meta["original"]
                score = GeodesicEvaluator(originals[key], item.template_index, n_samples=n_eval,
                                          normalize="diameter").errors
            inputs = {lap: prepare([item], None, "xyz", method=lap, progress=False)[0] for lap in set(methods.values())}
            for name, lap in methods.items():
                pred = predict_labels(models[name], inputs[lap])
                errors[name][kind].append(score(centers[pred]))
                acc[name][kind].append(np.mean(pred == truth))
            errors["oracle (patch centre)"][kind].append(score(centers[truth]))
    yardstick = (T5_YARDSTICK if rows is not None else "shapelib's (heat-method geodesics on each original test "
                 f"mesh ÷ its diameter, {n_eval} sampled vertices a shape), not the paper's")
    return {"errors": errors, "source": source, "yardstick": yardstick, "paper_yardstick": rows is not None,
            "mean_error": {n: {k: 100 * float(np.concatenate(v).mean()) for k, v in per.items()} for n, per in errors.items()},
            "mean_accuracy": {n: {k: 100 * float(np.mean(v)) for k, v in per.items()} for n, per in acc.items()}}


def table5_text(rows: dict, kinds=T5_KINDS, fmt: str = "8.2f", paper: bool = True) -> str:
    """A fixed-width text table: one line per ``rows`` entry (label → {kind: value}), then the
    paper's Table 5 rows (``paper=True``)."""
    header = f"{'':44s}" + "".join(f"{k:>8s}" for k in kinds)
    lines = [header, "-" * len(header)]
    lines += [f"{label:44s}" + "".join(f"{row[k]:{fmt}}" if row.get(k) is not None else f"{'—':>8s}" for k in kinds)
              for label, row in rows.items()]
    if paper:
        lines += [f"{'paper: ' + name:44s}" + "".join(f"{v:8.2f}" if v is not None else f"{'N/A':>8s}" for v in vals)
                  for name, vals in PAPER_T5_ROWS.items()]
    return "\n".join(lines)


def table5_rows(records: dict[str, Record], evaluations: dict[str, dict]) -> dict:
    """Rows for :func:`table5_text`: each model under the paper's yardstick (the reference code's
    exact geodesics on the template, pooled; stored in its record by ``python -m shapelib.experiments
    rescore NAME --write``), then under shapelib's metric (``evaluations``, e.g. a live re-evaluation)."""
    labels = {T5: "DiffusionNet", T5_GRAPH: "graph Laplacian"}
    rows = {}
    for name, rec in records.items():
        if all(rec.paper_score(k) for k in T5_KINDS):
            rows[f"ours: {labels[name]} (paper's yardstick)"] = {k: rec.paper_score(k)["mean"] for k in T5_KINDS}
    for name, ev in evaluations.items():
        rows[f"ours: {labels[name]} (shapelib metric)"] = {k: s["mean"] for k, s in ev["summary"].items()}
    return rows


def table5_evaluations(records: dict[str, Record]) -> dict[str, dict]:
    """The stored evaluation of each Table 5 record (shapelib's metric), the input of
    :func:`table5_rows` / :func:`plot_table5`; replace an entry by a live re-evaluation
    (:func:`shapelib.experiments.runner.reproduce_record`) to plot that instead."""
    return {name: rec.evaluation for name, rec in records.items()}


def baseline_over_diffusionnet(evaluations: dict[str, dict], kinds=("iso", "qes")) -> dict[str, float]:
    """Mean error of the graph-Laplacian baseline ÷ DiffusionNet's, per discretisation in ``kinds``
    (both from ``evaluations``, :func:`table5_evaluations`): how much the connectivity-dependent
    operator loses on re-meshed shapes."""
    missing = [n for n in (T5, T5_GRAPH) if n not in evaluations]
    if missing:
        raise KeyError(f"baseline_over_diffusionnet needs both Table 5 models; missing {missing} "
                       f"(train them with `make train MODEL=...`).")
    g, d = evaluations[T5_GRAPH]["summary"], evaluations[T5]["summary"]
    return {k: g[k]["mean"] / d[k]["mean"] for k in kinds}


def live_shapes_text(live: dict, measure: str = "accuracy", n: int = 2) -> str:
    """``'N test shapes: name value %, …'`` of a live re-evaluation (its first ``n`` shapes)."""
    per = live["per_shape"]
    return f"{len(per)} test shapes: " + ", ".join(f"{k} {v[measure]:.1f} %" for k, v in list(per.items())[:n])


def worst_ratio_to_paper(record: Record) -> float:
    """The largest ours / paper ratio over the five Table 5 columns, under the paper's yardstick where
    the record has it (else shapelib's metric)."""
    score = record.paper_score if all(record.paper_score(k) for k in T5_KINDS) else record.summary
    return max(score(k)["mean"] / p for k, p in zip(T5_KINDS, PAPER_T5_ROWS["DiffusionNet"]))


def plot_table5(records: dict[str, Record], evaluations: dict[str, dict], kinds=T5_KINDS):
    """Training curves (from the records) and the per-test-shape errors of each discretisation
    (box plots; DiffusionNet blue, the graph-Laplacian baseline orange). Returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 3))
    for name, rec in records.items():
        ax[0].semilogy(np.arange(1, len(rec.loss_curve) + 1), rec.loss_curve,
                       label="graph Laplacian" if name == T5_GRAPH else "DiffusionNet")
    ax[0].set(xlabel="epoch", ylabel="training cross-entropy", title="training curves (from the records)")
    ax[0].legend()
    for j, (name, ev) in enumerate(evaluations.items()):
        per = ev["per_shape"]
        bp = ax[1].boxplot([[v["error_x100"] for k, v in per.items() if k.startswith(kind + "/")] for kind in kinds],
                           positions=np.arange(len(kinds)) + 0.2 * (2 * j - 1), widths=0.35, patch_artist=True)
        for box in bp["boxes"]:
            box.set_facecolor("C1" if name == T5_GRAPH else "C0")
    ax[1].set_xticks(range(len(kinds)))
    ax[1].set_xticklabels(kinds)
    ax[1].set_yscale("log")
    ax[1].set(ylabel="mean geodesic error ×100 per test shape")
    ax[1].set_title("20 test shapes per discretisation (blue: DiffusionNet, orange: graph Laplacian)", fontsize=9)
    fig.tight_layout()
    return fig


def synthetic_sides(item) -> np.ndarray:
    """Left/right labels of a synthetic humanoid (:func:`shapelib.data.humans`): 1 on the body's left
    half (parts named ``left…``), 0 on the right, −1 on the head and torso (neither)."""
    names = item.part_names
    left = np.array([n.startswith("left") for n in names])[item.parts]
    right = np.array([n.startswith("right") for n in names])[item.parts]
    return np.where(left, 1, np.where(right, 0, -1))


def with_mirrors(shapes, sides, k: int = 128, device=None, progress: bool = False) -> list[dict]:
    """Each shape and its mirror image (:meth:`shapelib.Shape.mirrored`), prepared with HKS inputs,
    with side labels ``sides`` (1 / 0, −1 or below: ignored) swapped on the mirror: the training and
    test items of the orientation experiment (Fig. 5). Ignored vertices get the label −100, which
    the cross-entropy skips."""
    both, labels = [], []
    for s, y in zip(shapes, sides):
        y = np.asarray(y)
        swapped = np.where(y >= 0, 1 - y, y)
        both += [s, s.mirrored()]
        labels += [np.where(y >= 0, y, -100), np.where(swapped >= 0, swapped, -100)]
    if not both:
        raise ValueError("with_mirrors: no shapes given.")
    items = prepare(both, None, "hks", k=k, device=device, progress=progress, desc="operators (+ mirrors)")
    for d, y in zip(items, labels):
        d["y"] = torch.as_tensor(y.astype(np.int64), device=device)
    return items
