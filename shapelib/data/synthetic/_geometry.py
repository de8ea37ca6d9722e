"""Geometry building blocks shared by the synthetic families (one helper per job).

* implicit primitives (tapered capsules, ellipsoids, rounded boxes, tori) and their
  smooth union, meshed by scikit-image marching cubes;
* pymeshlab remeshing (isotropic, quadric decimation, local refinement);
* linear-blend skinning (LBS) of a template over a bone tree.

Lengths are in metres for humans and animals, and in "object units" (≈ metres) for objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ...cache import disk_cache
from ...shape import Shape
from ...errors import require

# ---------------------------------------------------------------------------- implicit primitives


@dataclass(frozen=True)
class Primitive:
    """A solid: ``kind`` in {'capsule', 'ellipsoid', 'box', 'cylinder', 'torus'}; ``part``: its label.

    capsule: ``a, b`` (3,) end points, ``r`` (ra, rb) radii (tapered).
    ellipsoid: ``a`` centre, ``r`` (3,) semi-axes.
    box: ``a`` centre, ``r`` (3,) half extents, ``b[0]`` corner rounding radius.
    cylinder: ``a`` centre, ``r`` (radius, half height), axis ``y``.
    torus: ``a`` centre, ``r`` (R, r) radii, axis ``b`` (3,) unit normal of its plane.
    """

    kind: str
    a: tuple
    b: tuple = (0.0, 0.0, 0.0)
    r: tuple = (0.1, 0.1)
    part: int = 0

    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (approximate for tapered capsules/ellipsoids) of ``(k, 3)`` points."""
        a = np.asarray(self.a, float)
        if self.kind == "capsule":
            b = np.asarray(self.b, float)
            ab = b - a
            t = np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0)
            rad = self.r[0] + t * (self.r[1] - self.r[0])
            return np.linalg.norm(p - (a + t[:, None] * ab), axis=1) - rad
        if self.kind == "ellipsoid":
            r = np.asarray(self.r, float)
            q = p - a
            k0 = np.linalg.norm(q / r, axis=1)
            k1 = np.linalg.norm(q / r**2, axis=1)
            return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)
        if self.kind == "box":
            h = np.asarray(self.r, float) - self.b[0]
            q = np.abs(p - a) - h
            return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0) - self.b[0]
        if self.kind == "cylinder":
            q = p - a
            dr = np.linalg.norm(q[:, [0, 2]], axis=1) - self.r[0]
            dh = np.abs(q[:, 1]) - self.r[1]
            return np.minimum(np.maximum(dr, dh), 0) + np.hypot(np.maximum(dr, 0), np.maximum(dh, 0))
        if self.kind == "torus":
            n = np.asarray(self.b, float)
            q = p - a
            h = q @ n
            ring = np.linalg.norm(q - h[:, None] * n, axis=1) - self.r[0]
            return np.sqrt(ring**2 + h**2) - self.r[1]
        raise ValueError(f"unknown primitive kind {self.kind!r}")


def smooth_union(values: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum over axis 0 of ``(p, k) `` SDF values (blend radius ``k``)."""
    d = values[0]
    for v in values[1:]:
        h = np.maximum(k - np.abs(d - v), 0.0) / k
        d = np.minimum(d, v) - h * h * k * 0.25
    return d


def mesh_primitives(prims, spacing: float, blend: float, remesh_edge: float | None = None,
                    subtract=(), name: str = "", remesh_iterations: int = 6) -> tuple[Shape, np.ndarray]:
    """Mesh the smooth union of ``prims`` (minus the plain union of ``subtract``).

    Marching cubes (scikit-image) on a grid of step ``spacing``, then an isotropic remesh
    to ``remesh_edge`` (pymeshlab). Returns the shape and ``(n,) int`` part label of each
    vertex: the part of the primitive nearest to it (smallest SDF).
    """
    from skimage.measure import marching_cubes

    lo, hi = _bounds(prims, pad=2 * spacing + blend)
    axes = [np.arange(lo[i], hi[i] + spacing, spacing) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    field = sdf_field(prims, grid, blend, subtract)
    vol = field.reshape(len(axes[0]), len(axes[1]), len(axes[2]))
    verts, faces, _, _ = marching_cubes(vol, level=0.0, spacing=(spacing,) * 3)
    verts = verts + lo
    faces = faces[:, ::-1]  # skimage winds inward for an SDF (negative inside): flip to outward
    shape = Shape(verts, faces, name=name)
    shape, _ = shape.clean()
    shape = largest_component(shape)
    if remesh_edge is not None:
        shape = isotropic_remesh(shape, remesh_edge, remesh_iterations)
    return shape, nearest_part(prims, shape.vertices)


def sdf_field(prims, points: np.ndarray, blend: float, subtract=()) -> np.ndarray:
    """``(k,)`` SDF of the smooth union of ``prims`` minus the union of ``subtract``."""
    d = smooth_union(np.stack([p.sdf(points) for p in prims]), blend)
    for s in subtract:
        d = np.maximum(d, -s.sdf(points))
    return d


def nearest_part(prims, points: np.ndarray) -> np.ndarray:
    """``(k,) int`` part label of the primitive with the smallest SDF at each point."""
    d = np.stack([p.sdf(points) for p in prims])
    return np.array([p.part for p in prims], dtype=np.int64)[d.argmin(axis=0)]


def _bounds(prims, pad: float):
    pts = []
    for p in prims:
        a = np.asarray(p.a, float)
        ext = float(np.max(p.r)) + (float(p.b[0]) if p.kind == "box" else 0.0)
        if p.kind == "capsule":
            pts += [a - ext, a + ext, np.asarray(p.b) - ext, np.asarray(p.b) + ext]
        elif p.kind in ("torus", "cylinder"):
            ext = p.r[0] + p.r[1]
            pts += [a - ext, a + ext]
        else:
            pts += [a - np.asarray(p.r), a + np.asarray(p.r)]
    pts = np.array(pts)
    return pts.min(0) - pad, pts.max(0) + pad


def largest_component(shape: Shape) -> Shape:
    """The connected component with the most vertices (marching cubes may leave specks)."""
    labels = shape.components()
    keep = np.bincount(labels).argmax()
    if (labels == keep).all():
        return shape
    vmask = labels == keep
    remap = -np.ones(shape.n_vertices, dtype=np.int64)
    remap[vmask] = np.arange(vmask.sum())
    faces = remap[shape.faces]
    return Shape(shape.vertices[vmask], faces[(faces >= 0).all(1)], name=shape.name)


# ---------------------------------------------------------------------------- pymeshlab wrappers


def _meshset(shape: Shape):
    pymeshlab = require("pymeshlab", purpose="remeshing synthetic shapes")

    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(vertex_matrix=shape.vertices, face_matrix=shape.faces.astype(np.int32)))
    return ms


def _from_meshset(ms, name: str) -> Shape:
    m = ms.current_mesh()
    shape = Shape(m.vertex_matrix(), m.face_matrix(), name=name)
    shape, _ = shape.clean()
    return shape


def isotropic_remesh(shape: Shape, edge: float, iterations: int = 6) -> Shape:
    """Isotropic explicit remeshing (pymeshlab) to target edge length ``edge`` (absolute)."""
    pymeshlab = require("pymeshlab", purpose="remeshing synthetic shapes")

    ms = _meshset(shape)
    ms.meshing_isotropic_explicit_remeshing(iterations=iterations, targetlen=pymeshlab.PureValue(edge),
                                            featuredeg=180.0)  # keep the surface-distance check: without
    # it (6x faster) thin parts such as chair legs get shortened
    return _from_meshset(ms, shape.name)


def decimate(shape: Shape, n_faces: int) -> Shape:
    """Quadric edge-collapse decimation (pymeshlab) to about ``n_faces`` faces.

    A closed input stays closed: the collapse can leave zero-area slivers (how many depends on
    the build's floating-point order), and dropping them would open holes — so nearby face
    targets and stricter triangle-quality thresholds are tried, deterministically, until the
    result is closed and sliver-free.
    """
    closed = shape.report().boundary_edges == 0
    best = None
    for delta, quality in ((0, 0.3), (0, 0.6), (-7, 0.6), (7, 0.6), (0, 0.9), (-13, 0.9), (13, 0.9)):
        ms = _meshset(shape)
        ms.meshing_decimation_quadric_edge_collapse(targetfacenum=int(n_faces) + delta, preservenormal=True,
                                                    preservetopology=True, qualitythr=quality)
        out = _from_meshset(ms, shape.name)
        holes = out.report().boundary_edges if closed else 0
        if holes == 0:
            return out
        if best is None or holes < best[0]:
            best = (holes, out)
    return best[1]


def refine_region(shape: Shape, center: np.ndarray, radius: float, levels: int = 2) -> Shape:
    """Midpoint-subdivide (conformingly, pymeshlab) the faces within ``radius`` of ``center``."""
    ms = _meshset(shape)
    cx, cy, cz = (float(c) for c in center)
    for _ in range(levels):
        ms.compute_selection_by_condition_per_face(
            condselect=f"((x0-{cx})^2+(y0-{cy})^2+(z0-{cz})^2) < {radius * radius}")
        ms.meshing_surface_subdivision_midpoint(iterations=1, threshold=pymeshlab_zero(), selected=True)
    return _from_meshset(ms, shape.name)


def pymeshlab_zero():
    pymeshlab = require("pymeshlab", purpose="remeshing synthetic shapes")

    return pymeshlab.PercentageValue(0.0)


def self_intersecting_faces(shape: Shape) -> int:
    """Number of faces that intersect another face (pymeshlab); 0 for an embedded mesh."""
    ms = _meshset(shape)
    ms.compute_selection_by_self_intersections_per_face()
    return int(ms.current_mesh().selected_face_number())


# ---------------------------------------------------------------------------- skinning


def graph_smooth(shape: Shape, values: np.ndarray, iterations: int) -> np.ndarray:
    """Average ``(n, k)`` per-vertex values over 1-ring neighbourhoods ``iterations`` times."""
    e = shape.edges()
    n = shape.n_vertices
    A = sp.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n))
    A = (A + sp.identity(n)).tocsr()
    P = sp.diags(1.0 / np.asarray(A.sum(1)).ravel()) @ A
    out = values.astype(np.float64)
    for _ in range(iterations):
        out = P @ out
    return out


def rotation(axis, degrees: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``degrees`` about ``axis`` (right-hand rule)."""
    axis = np.asarray(axis, float)
    axis = axis / np.linalg.norm(axis)
    a = np.radians(degrees)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


@dataclass(frozen=True)
class Skeleton:
    """A bone tree in rest pose. ``heads`` ``(B, 3)``: joint each bone rotates about;
    ``dirs`` ``(B, 3)`` unit rest directions (the axis length scaling acts along);
    ``parents`` ``(B,)`` (-1 for the root, parents listed before children); ``names``."""

    names: tuple
    parents: tuple
    heads: np.ndarray
    dirs: np.ndarray

    def index(self, name: str) -> int:
        return self.names.index(name)


class SkeletonBuilder:
    """Collects bones in rest pose (parents first): ``index = builder.bone(name, parent, head,
    direction)``, then ``builder.skeleton()``. Shared by the humanoid and quadruped templates."""

    def __init__(self, names: tuple):
        self.names, self.heads, self.dirs, self.parents = names, [], [], []

    def bone(self, name: str, parent: str | None, head, direction) -> int:
        self.heads.append(np.asarray(head, float))
        self.dirs.append(np.asarray(direction, float) / np.linalg.norm(direction))
        self.parents.append(self.names.index(parent) if parent else -1)
        return self.names.index(name)

    def skeleton(self) -> Skeleton:
        return Skeleton(self.names, tuple(self.parents), np.array(self.heads), np.array(self.dirs))


def bone_transforms(skel: Skeleton, rotations: dict, length_scale: dict, girth_scale: dict):
    """Per-bone affine maps ``x -> R_b S_b (x - h_b) + h'_b`` (``(B,3,3)`` matrices, ``(B,3)`` heads).

    rotations : bone name -> ``(3, 3)`` local rotation, axes in the rest (world) frame.
    length_scale / girth_scale : bone name -> factor along / across the bone (default 1).
    A child's joint follows its parent's map, so lengths and rotations propagate down.
    """
    B = len(skel.names)
    M = np.zeros((B, 3, 3))
    R_glob = np.zeros((B, 3, 3))
    heads = np.zeros((B, 3))
    for b, name in enumerate(skel.names):
        d = skel.dirs[b]
        S = length_scale.get(name, 1.0) * np.outer(d, d) + girth_scale.get(name, 1.0) * (np.eye(3) - np.outer(d, d))
        L = rotations.get(name, np.eye(3))
        p = skel.parents[b]
        if p < 0:
            R_glob[b], heads[b] = L, skel.heads[b]
        else:
            R_glob[b] = R_glob[p] @ L
            heads[b] = M[p] @ (skel.heads[b] - skel.heads[p]) + heads[p]
        M[b] = R_glob[b] @ S
    return M, heads


def skin(vertices: np.ndarray, weights: np.ndarray, skel: Skeleton, M: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Linear-blend skinning: ``(n, 3)`` posed vertices from rest ``vertices`` ``(n, 3)`` and
    weights ``(n, B)`` (rows sum to 1)."""
    local = vertices[:, None, :] - skel.heads[None]              # (n, B, 3)
    per_bone = np.einsum("bij,nbj->nbi", M, local) + heads[None]  # (n, B, 3)
    return np.einsum("nb,nbi->ni", weights, per_bone)


def skinned_template(kind: str, version: int, prims, bone_part, n_bones: int, spacing: float, edge: float,
                     blend: float, smooth_iterations: int) -> dict:
    """Mesh ``prims`` into a rest template with LBS weights (cached under ``kind``).

    Returns ``vertices (n,3)``, ``faces (m,3)``, ``bone (n,) int`` (owning bone: the one of
    the nearest primitive), ``weights (n, n_bones)`` (one-hot ownership smoothed over the mesh
    graph ``smooth_iterations`` times, rows summing to 1), ``parts (n,) int`` = ``bone_part[bone]``.
    """

    def compute():
        shape, bone_id = mesh_primitives(prims, spacing=spacing, blend=blend, remesh_edge=edge, name=kind)
        weights = graph_smooth(shape, np.eye(n_bones)[bone_id], iterations=smooth_iterations)
        return {"vertices": shape.vertices, "faces": shape.faces, "bone": bone_id,
                "weights": weights / weights.sum(1, keepdims=True), "parts": np.asarray(bone_part)[bone_id]}

    params = {"spacing": spacing, "edge": edge, "blend": blend, "it": smooth_iterations,
              "prims": [(p.kind, p.a, p.b, p.r, p.part) for p in prims]}
    return disk_cache(f"synthetic_{kind}_template", f"v{version}", params, compute)


def extreme_vertices(vertices: np.ndarray, parts: np.ndarray, rules) -> np.ndarray:
    """``(K,) int`` landmark vertices: for each ``(part, direction)`` rule, the vertex of that
    part furthest along ``direction`` (a semantic point defined once on a template)."""
    out = []
    for part, direction in rules:
        idx = np.flatnonzero(parts == part)
        out.append(idx[np.argmax(vertices[idx] @ np.asarray(direction, float))])
    return np.array(out, dtype=np.int64)
