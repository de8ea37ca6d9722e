"""One-line access to every data set a notebook needs: real when found, synthetic otherwise.

Each function takes ``source``: ``'auto'`` (default: real data when its folder is found,
else the synthetic family), ``'real'`` (raises `DatasetNotFoundError` when missing) or
``'synthetic'``. The returned `Collection` / `PairSet` says which data it holds in
``.source`` (one line, print it next to every number) and ``describe()``.
Sizes default to ``config.pick(quick, standard, full)``.
"""
from __future__ import annotations

import numpy as np

from .. import config
from ..shape import Shape
from . import real, registry
from .items import Collection, Item, PairSet, pair_from_template, pair_via_original, progress
from .synthetic import humanoids, variants
from .synthetic import quadrupeds as quadrupeds_mod
from .synthetic import objects as objects_mod

SOURCES = ("auto", "real", "synthetic")
SPLITS = ("train", "val", "test", "all")


def _use_real(source: str, dataset: str) -> bool:
    """Decide real vs synthetic; ``source='real'`` raises if ``dataset`` is missing."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: choose one of {SOURCES}.")
    if source == "synthetic":
        return False
    info = registry.get(dataset)
    if source == "real" or info.status() == "damaged":  # a damaged copy is an error, never a silent fallback
        info.require()
        return True
    return info.found()


def _check_split(split: str, allowed=SPLITS):
    if split not in allowed:
        raise ValueError(f"split={split!r}: choose one of {allowed}.")


def _subsample(seq, n_max):
    """At most ``n_max`` elements, evenly spaced (deterministic)."""
    seq = list(seq)
    if n_max is None or len(seq) <= n_max:
        return seq
    return [seq[i] for i in np.linspace(0, len(seq) - 1, n_max).round().astype(int)]


def _pairs_of(items, n_pairs, seed):
    """Up to ``n_pairs`` distinct unordered pairs (i < j) of ``items``, deterministic under ``seed``."""
    idx = [(i, j) for i in range(len(items)) for j in range(i + 1, len(items))]
    if n_pairs is not None and n_pairs < len(idx):
        pick = np.sort(np.random.default_rng(seed).choice(len(idx), n_pairs, replace=False))
        idx = [idx[k] for k in pick]
    return [(items[i], items[j]) for i, j in idx]


# ----------------------------------------------------------------------------- humans


def _synthetic_humans(split, n_subjects, n_poses, seed):
    S = n_subjects or config.pick(4, 10)
    P = n_poses or config.pick(5, 10)
    g = humanoids.generate(S, P, seed)
    n_test = max(1, round(0.2 * S))
    subjects = {"train": range(S - n_test), "test": range(S - n_test, S), "all": range(S), "val": range(0)}[split]
    items = [Item(Shape(g["vertices"][k], g["faces"], name=g["names"][k]), template_index=np.arange(len(g["parts"])),
                  parts=g["parts"], part_names=humanoids.PART_NAMES,
                  meta={"subject": int(g["subject"][k]), "pose": int(g["pose"][k])})
             for k in range(S * P) if g["subject"][k] in subjects]
    src = f"synthetic: humanoids, {S} subjects × {P} poses, seed {seed}"
    return items, src, {"split": f"{split} (test = last {n_test} subject(s), as FAUST's 80/20)",
                        "ground truth": "shared connectivity: vertex i ↔ vertex i", "units": "metres"}


def humans(split: str = "all", source: str = "auto", n_max: int | None = None, n_subjects: int | None = None,
           n_poses: int | None = None, seed: int = 0) -> Collection:
    """Humans on ONE connectivity (vertex i ↔ vertex i): FAUST registrations (000–079 train,
    080–099 test) or synthetic humanoids (subjects × poses, last 20 % of subjects = test).

    Items carry ``template_index = arange(n)``; synthetic ones also ``parts`` (14 body parts,
    left ≠ right). ``n_max`` (default ``pick(16, all)``) evenly subsamples real shapes.
    """
    _check_split(split, ("train", "test", "all"))
    if _use_real(source, "faust_registrations"):
        idx = {"train": real.FAUST_TRAIN, "test": real.FAUST_TEST, "all": range(100)}[split]
        n_max = n_max if n_max is not None else config.pick(16, None)
        chosen = _subsample(idx, n_max)
        items = real.faust_registrations(chosen)
        src = f"real: FAUST registrations ({registry.get('faust_registrations').path()})"
        details = {"split": f"{split}: {len(chosen)} of tr_reg_{idx[0]:03d}–{idx[-1]:03d}",
                   "ground truth": "shared connectivity: vertex i ↔ vertex i", "units": "metres"}
        return Collection(items, src, details)
    items, src, details = _synthetic_humans(split, n_subjects, n_poses, seed)
    return Collection(items, src, details)


def _variant_items(items, kind, seed):
    """Re-discretise each item (``variants.make_variant``, seed ``1000 seed + k``), carrying its
    labels through ``to_original``; ``meta`` keeps the original shape and face/barycentric GT."""
    out = []
    for k, it in enumerate(progress(items, f"{kind} variants")):
        v = variants.make_variant(it.shape, kind, seed=seed * 1000 + k)
        out.append(Item(v.shape, template_index=v.to_original, parts=it.parts[v.to_original],
                        part_names=it.part_names,
                        meta={**it.meta, "original": it.shape, "face": v.face, "bary": v.bary, "kind": kind}))
    return out


def human_pairs(split: str = "test", source: str = "auto", dataset: str = "faust_r", n_pairs: int | None = None,
                seed: int = 0, **synthetic) -> PairSet:
    """Pairs of humans with dense ground truth ``p2p_21``.

    dataset : ``'faust_r'`` (default; also ``'scape_r'``, ``'shrec19_r'``): independently
        remeshed shapes — real: test = pairs among the test shapes only (FAUST_r 080–099: all
        190 pairs is the standard protocol; fewer are evenly spaced among them — the
        dataset's ``test_pairs.txt`` mixes in training shapes, so it is not used), train =
        random pairs among the train shapes (by name, :func:`real.r_split`: FAUST 000–079, SCAPE
        mesh000–050; SHREC'19_r is test-only), GT from the
        ``.vts`` rows;
        synthetic: humanoids each isotropically remeshed with its own seed, GT through the
        shared template surface.
        ``'faust'``: one connectivity (registrations / synthetic humanoids), GT = identity.
    n_pairs : default ``pick(10, all, all)`` (test) / ``pick(20, 200)`` (train).
    ``**synthetic``: ``n_subjects``, ``n_poses`` of the synthetic fallback.
    """
    _check_split(split, ("train", "test", "all"))
    n_pairs = n_pairs if n_pairs is not None else (config.pick(10, None, None) if split == "test" else config.pick(20, 200))
    if dataset == "faust":
        coll = humans(split, source, seed=seed, **synthetic)
        pairs = [pair_from_template(a, b, gt="shared connectivity") for a, b in _pairs_of(coll, n_pairs, seed)]
        return PairSet(pairs, coll.source, {**coll.details, "pairs": f"{len(pairs)} of the split's pairs (seed {seed})"})
    if dataset not in ("faust_r", "scape_r", "shrec19_r"):
        raise ValueError(f"dataset={dataset!r}: choose 'faust_r', 'scape_r', 'shrec19_r' or 'faust'.")
    if _use_real(source, dataset):
        return _real_r_pairs(dataset, split, n_pairs, seed)
    items, src, details = _synthetic_humans(split, synthetic.get("n_subjects"), synthetic.get("n_poses"), seed)
    items = _variant_items(items, "iso", seed)
    src = src.replace("humanoids", "humanoids iso-remeshed independently")
    pairs = [pair_via_original(a, b, gt="template surface point, nearest vertex") for a, b in _pairs_of(items, n_pairs, seed)]
    details["ground truth"] = "same point of the shared template surface (exact up to the remeshing)"
    return PairSet(pairs, src, {**details, "pairs": f"{len(pairs)} pairs (seed {seed})"})


def _real_r_pairs(dataset, split, n_pairs, seed) -> PairSet:
    root = registry.get(dataset).require()
    train, test = real.r_split(dataset)  # by name, validated: a stray or missing .off raises
    n_train = len(train)
    names = train + test
    if split == "train" and not train:
        raise ValueError(f"{dataset} is a test-only benchmark (no training shapes): use split='test'.")
    pool = {"train": train, "test": test, "all": names}[split]
    if split == "test":  # the standard protocol: every pair of test shapes (190 for FAUST_r 080–099)
        every = _pairs_of(pool, None, seed)
        name_pairs = _subsample(every, n_pairs)
        protocol = (f"all {len(every)} pairs of the {len(pool)} test shapes {pool[0]}–{pool[-1]}" if len(name_pairs) == len(every)
                    else f"{len(name_pairs)} of the {len(every)} pairs of the {len(pool)} test shapes "
                         f"{pool[0]}–{pool[-1]} (evenly spaced; the standard protocol uses all {len(every)})")
    else:
        name_pairs = _pairs_of(pool, n_pairs, seed)
        protocol = f"{len(name_pairs)} random pairs among {len(pool)} {split} shapes (seed {seed})"
    needed = sorted({n for p in name_pairs for n in p})
    by_name = {it.name: it for it in real.r_dataset(dataset, needed)}
    pairs = [real.r_pair(by_name[a], by_name[b]) for a, b in name_pairs]
    return PairSet(pairs, f"real: {registry.get(dataset).title} ({root})",
                   {"split": f"{split} ({n_train} train / {len(names) - n_train} test shapes)", "pairs": protocol,
                    "ground truth": ".vts rows (1-based on disk, 0-based here); evaluate on pair.exact"})


def humans_remeshed(kind: str = "iso", source: str = "auto", n_max: int | None = None, seed: int = 0,
                    **synthetic) -> Collection:
    """The DiffusionNet Table 5 test set: test humans re-discretised (``kind`` in ``orig``,
    ``iso``, ``dense``, ``qes``, ``cloud``; real also ``mc``; synthetic also ``decimated``).

    Items carry ``template_index (n,)``: the template vertex of each vertex/point (the label of
    vertex-labelling correspondence). ``.reference`` is the template-connectivity reference shape
    (FAUST tr_reg_000 / synthetic subject 0 pose 0); ``pair_from_template(coll.reference, item)``
    gives the pair. ``n_max`` default ``pick(4, all)``.
    """
    n_max = n_max if n_max is not None else config.pick(4, None)
    if _use_real(source, "faust_remeshed_test") and (kind != "orig" or registry.get("faust_registrations").found()):
        items = (real.faust_registrations(_subsample(real.FAUST_TEST, n_max)) if kind == "orig"
                 else real.faust_remeshed_test(kind, _subsample(real.FAUST_TEST, n_max)))
        ref = real.faust_registrations([0])[0] if registry.get("faust_registrations").found() else None
        coll = Collection(items, f"real: FAUST test shapes, {kind} ({registry.get('faust_remeshed_test').path()})",
                          {"protocol": "train on tr_reg_000–079, test on these (DiffusionNet Table 5)",
                           "ground truth": "template vertex per vertex (.txt, 0-based)"})
        coll.reference = ref
        return coll
    if kind == "mc":
        raise ValueError("kind='mc' exists only in the real benchmark; synthetic kinds: " + ", ".join(variants.KINDS))
    test, src, details = _synthetic_humans("test", synthetic.get("n_subjects"), synthetic.get("n_poses"), seed)
    items = _variant_items(_subsample(test, n_max), kind, seed)
    coll = Collection(items, f"{src}, test subjects, {kind} variants",
                      {**details, "ground truth": "closest point on the original surface -> template vertex"})
    coll.reference = _synthetic_humans("all", synthetic.get("n_subjects"), synthetic.get("n_poses"), seed)[0][0]
    return coll


# ----------------------------------------------------------------------------- quadrupeds


SPECIES_PAIRS = (("cat", "dog"), ("horse", "centaur"))


def quadrupeds(species=("cat", "dog", "horse", "centaur"), source: str = "auto", n_poses: int | None = None,
               seed: int = 0) -> Collection:
    """Four-legged shapes: TOSCA_r classes (real; pose-0 shapes carry the 21/46 landmarks as
    ``keypoints``) or synthetic species on ONE connectivity (all carry the 21 landmarks and
    12 ``parts``). ``n_poses`` (synthetic) default ``pick(3, 8)``."""
    species = tuple(species)
    if _use_real(source, "tosca_r"):
        items = real.tosca_r(species)
        return Collection(items, f"real: TOSCA_r {', '.join(species)} ({registry.get('tosca_r').path()})",
                          {"ground truth": "within a class: .vts rows; across classes: landmarks of pose 0"})
    P = n_poses or config.pick(3, 8)
    g = quadrupeds_mod.generate(species, P, seed)
    items = [Item(Shape(v, g["faces"], name=nm), template_index=np.arange(len(g["parts"])), parts=g["parts"],
                  part_names=quadrupeds_mod.PART_NAMES, keypoints=g["landmarks"],
                  keypoint_names=quadrupeds_mod.LANDMARK_NAMES,
                  meta={"class": sp}) for v, nm, sp in zip(g["vertices"], g["names"], g["species"])]
    return Collection(items, f"synthetic: quadrupeds {', '.join(species)}, {P} poses each, seed {seed}",
                      {"ground truth": "one template connectivity across species: vertex i ↔ vertex i",
                       "units": "metres"})


def quadruped_pairs(kind: str = "cross", source: str = "auto", species_pairs=SPECIES_PAIRS,
                    n_pairs: int | None = None, seed: int = 0) -> PairSet:
    """Quadruped pairs. ``kind='cross'``: across species (cat→dog, horse→centaur); real TOSCA
    gives the 21 shared landmarks only (``pair.landmarks``), synthetic gives dense ``p2p_21``
    plus the same 21 landmarks. ``kind='within'``: same species (real: TOSCA ``test_pairs.txt``
    restricted to the classes present, GT from ``.vts`` rows). ``n_pairs``: ``pick(4, 40, all)``."""
    if kind not in ("cross", "within"):
        raise ValueError(f"kind={kind!r}: choose 'cross' or 'within'.")
    n_pairs = n_pairs if n_pairs is not None else config.pick(4, 40, None)
    classes = tuple(dict.fromkeys(c for p in species_pairs for c in p))
    coll = quadrupeds(classes, source, seed=seed)
    by_class = {c: [it for it in coll if it.meta["class"] == c] for c in classes}
    if coll.is_real:
        if kind == "cross":
            pairs = [real.tosca_cross_pair(by_class[a][0], by_class[b][0]) for a, b in species_pairs]
        else:
            by_name = {it.name: it for it in coll}
            listed = real.r_test_pairs("tosca_r") if (registry.get("tosca_r").path() / "test_pairs.txt").exists() else []
            ok = [(a, b) for a, b in listed if a in by_name and b in by_name]
            pairs = [real.r_pair(by_name[a], by_name[b]) for a, b in _subsample(ok, n_pairs)]
        return PairSet(pairs, coll.source, {"pairs": f"{len(pairs)} {kind}-class pairs", **coll.details})
    pairs = []
    for a, b in species_pairs:
        if kind == "cross":
            cand = [(x, y) for x in by_class[a] for y in by_class[b]]
        else:
            cand = _pairs_of(by_class[a], None, seed) + _pairs_of(by_class[b], None, seed)
        for x, y in _subsample(cand, max(1, n_pairs // len(species_pairs)) if n_pairs else None):
            p = pair_from_template(x, y, gt="shared template")
            p.landmarks = np.c_[x.keypoints, y.keypoints]
            pairs.append(p)
    return PairSet(pairs, coll.source, {"pairs": f"{len(pairs)} {kind}-species pairs", **coll.details})


# ----------------------------------------------------------------------------- objects


def _object_split(n, split):
    a, b = int(round(0.7 * n)), int(round(0.85 * n))
    return {"train": range(0, a), "val": range(a, b), "test": range(b, n), "all": range(n)}[split]


def objects(category: str = "chair", split: str = "all", n: int | None = None, seed: int = 0) -> Collection:
    """Synthetic watertight objects (``chair``, ``table``, ``mug``) with ``parts`` and
    ``keypoints`` (-1 = absent part). ``n`` instances in all (default ``pick(12, 100)``),
    split 70/15/15 by index."""
    _check_split(split)
    n = n or config.pick(12, 100)
    gen = objects_mod.generate(category, n, seed)
    items = [Item(g["shape"], parts=g["parts"], part_names=objects_mod.PART_NAMES[category], keypoints=g["keypoints"],
                  keypoint_names=objects_mod.KEYPOINT_NAMES[category], meta={"optional_part": g["optional"]})
             for i, g in enumerate(gen) if i in _object_split(n, split)]
    opt = {"chair": "arms on every other chair", "mug": "every fourth mug has no handle", "table": ""}[category]
    return Collection(items, f"synthetic: {category}s, {n} instances, seed {seed}",
                      {"split": f"{split} (70/15/15 by index)", "optional part": opt, "watertight": True,
                       "units": "metres"})


def chairs(split: str = "train", source: str = "auto", n: int | None = None, seed: int = 0,
           min_real: int = 20) -> Collection:
    """Chairs with parts and keypoints. Real: KeypointNet chairs whose point cloud is present
    (2,048 points, keypoints by semantic id, -1 where absent; splits from ``splits/*.txt``);
    ``'auto'`` uses them only when at least ``min_real`` are present, else synthetic chairs
    (seat/back/legs/arms parts, 12 keypoints; arms on every other chair)."""
    _check_split(split)
    if source != "synthetic" and _use_real(source, "keypointnet_sample"):
        items = real.keypointnet_items("chair", None if split == "all" else split)
        if source == "real" or len(items) >= min_real:
            return Collection(items, f"real: KeypointNet chairs ({registry.get('keypointnet_sample').path()})",
                              {"split": f"{split} (KeypointNet split files)",
                               "keypoints": "index into the 2,048-point cloud per semantic id, -1 = absent"})
    coll = objects("chair", split, n, seed)
    if source == "auto" and registry.get("keypointnet_sample").found():
        coll.details["note"] = f"KeypointNet found but fewer than {min_real} chairs have geometry: synthetic used"
    return coll
