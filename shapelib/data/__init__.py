"""shapelib.data — real datasets when present, exact synthetic families otherwise.

One line per need (``source='auto'``: real data when found under ``$SHAPELIB_DATA``, else
synthetic; ``'real'`` raises `DatasetNotFoundError` when missing; ``'synthetic'`` forces it)::

    from shapelib import data
    pairs = data.human_pairs(split="test")          # FAUST_r pairs among 080–099 | remeshed humanoids
    same  = data.human_pairs(dataset="faust")       # one connectivity: p2p_21 = identity
    train = data.humans(split="train")              # FAUST registrations 000–079 | humanoids
    iso   = data.humans_remeshed("iso")             # DiffusionNet Table 5: iso/dense/qes/cloud
    quad  = data.quadruped_pairs("cross")           # cat→dog, horse→centaur (TOSCA | synthetic)
    chair = data.chairs(split="train")              # parts + keypoints (KeypointNet | synthetic)
    print(pairs.source)                             # "real: …" or "synthetic: …" — print it!
    print(pairs.describe())

Returned objects: `Collection` (list of `Item`: ``shape``, ``template_index``, ``parts``,
``keypoints``, ``meta``) and `PairSet` (list of `Pair`: ``shape1``, ``shape2``, ``p2p_21``
``(n2,)`` = vertex of shape 1 for each vertex of shape 2, ``exact`` mask, ``landmarks``,
``geodesic_errors(pred)``). Sizes follow ``config.pick(quick, standard, full)``.

Modules: `registry` (datasets, ``status``/``fetch``; CLI ``python -m shapelib.data status``),
`real` (one loader per dataset, 0-based indices), `synthetic` (humanoids, quadrupeds,
objects, discretisation variants), `items` (containers and ground-truth builders).
"""
from . import keypointnet, real, registry, shapenet
from .api import chairs, human_pairs, humans, humans_remeshed, objects, quadruped_pairs, quadrupeds
from .items import Collection, Item, Pair, PairSet, pair_from_rows, pair_from_template, pair_via_original
from .registry import DATASETS, fetch, status_table


def status() -> str:
    """The dataset table (name, found/missing, path searched, how to obtain) as text."""
    return status_table()


__all__ = ["humans", "human_pairs", "humans_remeshed", "quadrupeds", "quadruped_pairs", "chairs", "objects",
           "Item", "Pair", "Collection", "PairSet", "pair_from_rows", "pair_from_template", "pair_via_original",
           "DATASETS", "status", "fetch", "real", "registry"]
