"""Discretisation variants of a mesh, with ground truth to its vertices (DiffusionNet Table 5).

Kinds (``shape`` is the original; ``ℓ`` its mean edge length):

* ``'orig'``  the shape itself (identity map);
* ``'iso'``   isotropic remesh (pymeshlab) to an edge length in ``[1.0, 1.3] ℓ`` (from the seed);
* ``'dense'`` a random region (radius 0.1 × bounding-box diagonal) midpoint-refined twice,
  conformingly (pymeshlab) — strongly non-uniform sampling;
* ``'qes'``   refine (midpoint subdivision) then quadric edge-collapse simplification back
  to ~the original face count — irregular, different connectivity;
* ``'decimated'`` quadric decimation to 30 % of the faces;
* ``'cloud'`` points sampled uniformly on the surface (trimesh), with the face normals.

Ground truth: each new vertex's closest point on the original surface, as ``face (n_new,)``
and barycentric ``bary (n_new, 3)`` coordinates in that face, and ``to_original (n_new,)``:
the vertex of that face with the largest barycentric weight (the index-array convention of
the DiffusionNet benchmark's ``.txt`` files).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...cache import disk_cache
from ...shape import Shape
from ._geometry import decimate, isotropic_remesh, refine_region
from ...errors import require

KINDS = ("orig", "iso", "dense", "qes", "decimated", "cloud")


@dataclass
class Variant:
    """A re-discretised shape with its map to the original: ``to_original (n_new,) int``,
    ``face (n_new,) int`` and ``bary (n_new, 3) float`` (closest point on the original)."""

    shape: Shape
    to_original: np.ndarray
    face: np.ndarray
    bary: np.ndarray
    kind: str


def closest_points_on_mesh(shape: Shape, points: np.ndarray, k: int = 12):
    """Closest point of ``points (p, 3)`` on the surface of ``shape``, searched among the faces
    incident to each point's ``k`` nearest vertices (exact for points on or near the surface).

    Returns ``face (p,) int``, ``bary (p, 3) float``, ``distance (p,) float``.
    """
    trimesh = require("trimesh")
    from scipy.spatial import cKDTree

    F = shape.faces
    k = min(k, shape.n_vertices)
    _, nn = cKDTree(shape.vertices).query(points, k=k)
    # faces incident to each vertex, as a CSR-like (vertex -> face list) structure
    order = np.argsort(F.ravel(), kind="stable")
    vert_of = F.ravel()[order]
    starts = np.searchsorted(vert_of, np.arange(shape.n_vertices + 1))
    best_d = np.full(len(points), np.inf)
    best_f = np.zeros(len(points), dtype=np.int64)
    best_p = np.zeros_like(points, dtype=np.float64)
    max_deg = int(np.diff(starts).max())
    tri = shape.vertices[F]
    for j in range(k):
        v = nn[:, j]
        for slot in range(max_deg):
            has = starts[v] + slot < starts[v + 1]
            if not has.any():
                break
            f = order[starts[v[has]] + slot] // 3
            cp = trimesh.triangles.closest_point(tri[f], points[has])
            d = np.linalg.norm(cp - points[has], axis=1)
            better = d < best_d[has]
            idx = np.flatnonzero(has)[better]
            best_d[idx], best_f[idx], best_p[idx] = d[better], f[better], cp[better]
    bary = trimesh.triangles.points_to_barycentric(tri[best_f], best_p)
    return best_f, np.clip(bary, 0.0, 1.0), best_d


def _transfer(original: Shape, new: Shape, kind: str, face=None, bary=None) -> Variant:
    if face is None:
        face, bary, _ = closest_points_on_mesh(original, new.vertices)
    to_orig = original.faces[face, np.argmax(bary, axis=1)]
    return Variant(new, to_orig.astype(np.int64), face.astype(np.int64), bary, kind)


def make_variant(shape: Shape, kind: str, seed: int = 0) -> Variant:
    """The ``kind`` re-discretisation of the mesh ``shape`` (see the module doc), cached on disk."""
    trimesh = require("trimesh")

    if kind not in KINDS:
        raise ValueError(f"unknown variant kind {kind!r}; choose one of {KINDS}.")
    shape._require_mesh(f"make_variant({kind!r})")
    if kind == "orig":
        n = shape.n_vertices
        first = np.zeros((n, 3))
        # face/bary of each vertex: any incident face, weight 1 on the vertex
        f_of_v = np.zeros(n, dtype=np.int64)
        f_of_v[shape.faces.ravel()] = np.repeat(np.arange(shape.n_faces), 3)
        first[np.arange(n), np.argmax(shape.faces[f_of_v] == np.arange(n)[:, None], axis=1)] = 1.0
        return Variant(shape, np.arange(n), f_of_v, first, kind)

    def compute():
        rng = np.random.default_rng(seed)
        ell = shape.mean_edge_length()
        if kind == "cloud":
            pts, face, bary = shape.sample_surface(shape.n_vertices, seed=int(rng.integers(2**31)))
            new = Shape(pts, None, normals=shape.face_normals()[face])
            v = _transfer(shape, new, kind, face, bary)
        else:
            if kind == "iso":
                new = isotropic_remesh(shape, ell * rng.uniform(1.0, 1.3))
            elif kind == "dense":
                center = shape.vertices[rng.integers(shape.n_vertices)]
                new = refine_region(shape, center, 0.1 * shape.diameter(), levels=2)
            elif kind == "qes":
                new = decimate(refine_region(shape, shape.vertices.mean(0), 1e3 * shape.diameter(), levels=1), shape.n_faces)
            else:  # decimated
                new = decimate(shape, int(0.3 * shape.n_faces))
            v = _transfer(shape, new, kind)
        out = {"vertices": v.shape.vertices, "to_original": v.to_original, "face": v.face, "bary": v.bary}
        if v.shape.is_mesh:
            out["faces"] = v.shape.faces
        else:
            out["normals"] = v.shape.normals
        return out

    a = disk_cache("synthetic_variant", shape.content_hash(), {"kind": kind, "seed": seed, "v": 3}, compute)
    new = Shape(a["vertices"], a.get("faces"), normals=a.get("normals"), name=f"{shape.name}_{kind}".strip("_"))
    return Variant(new, a["to_original"], a["face"], a["bary"], kind)
