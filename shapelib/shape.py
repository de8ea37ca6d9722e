"""`Shape`: a triangle mesh or a point cloud, with I/O, validation and normalisation.

Conventions used throughout shapelib
------------------------------------
* ``vertices``: ``(n, 3) float64``, in the shape's own length unit.
* ``faces``: ``(m, 3) int64`` vertex indices (0-based, counter-clockwise seen from outside),
  or ``None`` for a point cloud.
* ``normals``: optional ``(n, 3) float64`` unit vectors (read from files that carry them).

Methods return new shapes. Editing ``vertices``/``faces``/``normals`` in place or assigning new
arrays is allowed and safe: every memoised result (content hash, normals, edges, report, the
operator-cache key) is keyed on a checksum of the arrays and recomputed after an edit, which is
checked again like a new shape. Construction validates the
arrays (wrong shapes, NaN/inf, empty input, out-of-range or repeated face indices) and
raises :class:`~shapelib.errors.ShapeError` with a message naming the problem and the fix.
Softer defects (duplicate or unreferenced vertices, zero-area faces, non-manifold edges and
bow-tie vertices) are listed by :meth:`Shape.report` and repaired by :meth:`Shape.clean`;
:meth:`Shape.check_operators_ready` is the one check every operator (Laplacian, geodesics)
runs first, raising a :class:`~shapelib.errors.ShapeError` that names the defect and the repair.
"""
from __future__ import annotations

import hashlib
import io
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .errors import NonManifoldError, ShapeError, ShapeIOError
from .errors import require

MESH_SUFFIXES = (".off", ".obj", ".ply")
CLOUD_SUFFIXES = (".ply", ".xyz", ".txt", ".npy", ".npz")


@dataclass(frozen=True)
class MeshReport:
    """Defects found by :meth:`Shape.report` (counts; 0 means clean)."""

    n_vertices: int
    n_faces: int
    duplicate_vertices: int
    unreferenced_vertices: int
    degenerate_faces: int
    non_manifold_edges: int
    boundary_edges: int
    components: int
    non_manifold_vertices: int = 0  # bow-ties: separate fans of faces meeting at one vertex
    seam_vertices: int = 0  # boundary vertices lying exactly on another boundary vertex (an open seam)

    @property
    def clean(self) -> bool:
        """True when nothing needs :meth:`Shape.clean` (boundaries and components are fine)."""
        return not (self.duplicate_vertices or self.unreferenced_vertices or self.degenerate_faces)

    def __str__(self) -> str:
        items = ", ".join(f"{k}={v}" for k, v in self.__dict__.items())
        return f"MeshReport({items})"


class Shape:
    """A triangle mesh (``faces`` given) or a point cloud (``faces=None``).

    Parameters
    ----------
    vertices : (n, 3) array_like of float
    faces : (m, 3) array_like of int, optional
    normals : (n, 3) array_like of float, optional
    name : str, optional — shown in plots and error messages.
    """

    __slots__ = ("_vertices", "_faces", "_normals", "name", "_memo", "_memo_key")

    def __init__(self, vertices, faces=None, normals=None, name: str = ""):
        self.name = str(name)
        v = self._checked_vertices(vertices)
        f = self._checked_faces(faces, len(v))
        self._vertices, self._faces = v, f
        self._normals = self._checked_normals(normals, v.shape)
        self._memo: dict = {}
        self._memo_key = None

    # ------------------------------------------------------------------ arrays, validation, memos
    # The arrays stay ordinary writable numpy arrays (torch.as_tensor shares their memory without a
    # warning, notebooks may edit them). Everything derived from them (content hash, normals, edges,
    # report, solvers other modules keep in ``_cache``) is memoised under a checksum of their bytes,
    # checked at every access: an edit in place (``s.vertices *= 2``) or an assignment empties the
    # memo and re-runs the construction checks, so a result is never computed from stale arrays.

    def _label(self) -> str:
        return f" of shape {self.name!r}" if self.name else ""

    def _checked_vertices(self, vertices, copy: bool = True) -> np.ndarray:
        label = self._label()
        v = np.asarray(vertices)
        if v.ndim != 2 or v.shape[1] != 3:
            raise ShapeError(
                f"vertices{label} must be an (n, 3) array, got shape {v.shape}. "
                "Pass one row of x, y, z per vertex (use .reshape(-1, 3) for a flat array)."
            )
        if v.shape[0] == 0:
            raise ShapeError(f"vertices{label} is empty: a shape needs at least one vertex.")
        if not np.issubdtype(v.dtype, np.number):
            raise ShapeError(f"vertices{label} must be numeric, got dtype {v.dtype}.")
        if copy:
            v = v.astype(np.float64, copy=True)
        bad = ~np.isfinite(v).all(axis=1)
        if bad.any():
            idx = np.flatnonzero(bad)
            raise ShapeError(
                f"vertices{label} contain NaN or inf at {bad.sum()} vertices (first: {idx[:5].tolist()}). "
                "Remove or repair those points before building a Shape."
            )
        return v

    def _checked_faces(self, faces, n: int, copy: bool = True) -> np.ndarray | None:
        if faces is None:
            return None
        label = self._label()
        f = np.asarray(faces)
        if f.size == 0:
            f = np.zeros((0, 3), dtype=np.int64)
        if f.ndim != 2 or f.shape[1] != 3:
            raise ShapeError(
                f"faces{label} must be an (m, 3) integer array of triangles, got shape {f.shape}. "
                "Triangulate polygons first (e.g. trimesh or meshio), or pass faces=None for a point cloud."
            )
        if not np.issubdtype(f.dtype, np.integer):
            if np.issubdtype(f.dtype, np.floating) and np.all(f == np.round(f)):
                f = f.astype(np.int64)
            else:
                raise ShapeError(f"faces{label} must hold integer vertex indices, got dtype {f.dtype}.")
        if copy:
            f = f.astype(np.int64, copy=True)
        if len(f) == 0:
            raise ShapeError(
                f"faces{label} is empty. Pass faces=None to make a point cloud, or give triangles."
            )
        lo, hi = f.min(), f.max()
        if lo < 0 or hi >= n:
            raise ShapeError(
                f"faces{label} index vertices out of range [{lo}, {hi}] for {n} vertices. "
                "Indices are 0-based: subtract 1 if they come from a 1-based format (.vts, MATLAB)."
            )
        rep = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
        if rep.any():
            raise ShapeError(
                f"{rep.sum()} faces{label} repeat a vertex index (first: face {np.flatnonzero(rep)[0]} = "
                f"{f[rep][0].tolist()}): they are not triangles. Drop them, e.g. "
                "faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]."
            )
        return f

    def _checked_normals(self, normals, vshape, copy: bool = True) -> np.ndarray | None:
        if normals is None:
            return None
        label = self._label()
        nrm = np.asarray(normals, dtype=np.float64) if copy else normals
        if nrm.shape != vshape:
            raise ShapeError(f"normals{label} must have the shape of vertices {vshape}, got {nrm.shape}.")
        length = np.linalg.norm(nrm, axis=1, keepdims=True)
        if not np.isfinite(nrm).all() or (length < 1e-12).any():
            raise ShapeError(f"normals{label} contain NaN/inf or zero vectors; recompute or drop them.")
        if copy:
            return nrm / length
        if np.abs(length - 1.0).max() > 1e-12:  # edited in place: keep the documented unit length
            nrm /= length
        return nrm

    @property
    def vertices(self) -> np.ndarray:
        """``(n, 3) float64`` vertex positions. Editing them in place (``s.vertices *= 2``) or assigning
        a new array is allowed: every memoised result (hash, normals, report, operators' cache key)
        is recomputed from the new values."""
        return self._vertices

    @vertices.setter
    def vertices(self, value) -> None:
        v = self._checked_vertices(value)
        if self._faces is not None and len(v) != len(self._vertices):
            raise ShapeError(f"vertices{self._label()}: the new array has {len(v)} rows but the faces index "
                             f"{len(self._vertices)} vertices. Build a new shape: shape.copy(vertices=..., faces=...).")
        if self._normals is not None and self._normals.shape != v.shape:
            raise ShapeError(f"vertices{self._label()}: the new array has {len(v)} rows but the normals "
                             f"{len(self._normals)}. Build a new shape: shape.copy(vertices=..., normals=...).")
        self._vertices = v

    @property
    def faces(self) -> np.ndarray | None:
        """``(m, 3) int64`` triangles (0-based), or None for a point cloud (see `vertices` on edits)."""
        return self._faces

    @faces.setter
    def faces(self, value) -> None:
        self._faces = self._checked_faces(value, len(self._vertices))

    @property
    def normals(self) -> np.ndarray | None:
        """``(n, 3) float64`` unit normals read from a file or given, or None (see `vertices` on edits)."""
        return self._normals

    @normals.setter
    def normals(self, value) -> None:
        self._normals = self._checked_normals(value, self._vertices.shape)

    def _checksum(self) -> tuple:
        """A fast checksum (crc32) of the arrays' bytes, shapes and dtypes: the key of the memo."""
        key = [zlib.crc32(np.ascontiguousarray(self._vertices).data), self._vertices.shape]
        for a in (self._faces, self._normals):
            key += [None] if a is None else [zlib.crc32(np.ascontiguousarray(a).data), a.shape, a.dtype.str]
        return tuple(key)

    @property
    def _cache(self) -> dict:
        """The memo of results derived from the arrays (this class and other modules store in it).
        Emptied when the arrays changed since it was filled; the changed arrays are then checked
        again as at construction (NaN, out-of-range or repeated face indices raise `ShapeError`)."""
        key = self._checksum()
        if key != self._memo_key:
            if self._memo_key is not None:  # edited in place since the memo was filled
                self._checked_vertices(self._vertices, copy=False)
                self._checked_faces(self._faces, len(self._vertices), copy=False)
                if self._normals is not None:
                    self._checked_normals(self._normals, self._vertices.shape, copy=False)
                    key = self._checksum()  # normals may have been re-normalised
            self._memo = {}
            self._memo_key = key
        return self._memo

    # ------------------------------------------------------------------ basics
    @property
    def is_mesh(self) -> bool:
        return self.faces is not None

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @property
    def n_faces(self) -> int:
        return 0 if self.faces is None else len(self.faces)

    def __len__(self) -> int:
        return self.n_vertices

    def __repr__(self) -> str:
        kind = f"mesh, {self.n_faces} faces" if self.is_mesh else "point cloud"
        name = f"{self.name!r}, " if self.name else ""
        return f"Shape({name}{self.n_vertices} vertices, {kind})"

    def copy(self, **changes) -> "Shape":
        """A copy, optionally with some of ``vertices/faces/normals/name`` replaced."""
        kw = dict(vertices=self.vertices, faces=self.faces, normals=self.normals, name=self.name)
        kw.update(changes)
        return Shape(**kw)

    def to_cloud(self) -> "Shape":
        """The vertices as a point cloud (faces dropped; vertex normals kept)."""
        normals = self.normals if self.normals is not None else (self.vertex_normals() if self.is_mesh else None)
        return Shape(self.vertices, None, normals=normals, name=self.name)

    def content_hash(self) -> str:
        """A hex digest of (vertices, faces): the key of the on-disk operator cache."""
        memo = self._cache
        if "hash" not in memo:
            h = hashlib.sha1()
            h.update(np.ascontiguousarray(self.vertices).tobytes())
            if self.faces is not None:
                h.update(b"faces")
                h.update(np.ascontiguousarray(self.faces).tobytes())
            if self.normals is not None:
                h.update(b"normals")
                h.update(np.ascontiguousarray(self.normals).tobytes())
            memo["hash"] = h.hexdigest()
        return memo["hash"]

    def _require_mesh(self, what: str):
        if not self.is_mesh:
            raise ShapeError(f"{what} needs a triangle mesh, but {self!r} is a point cloud.")

    # ------------------------------------------------------------------ geometry
    def face_areas(self) -> np.ndarray:
        """``(m,) float`` triangle areas (length unit squared)."""
        self._require_mesh("face_areas")
        return 0.5 * np.linalg.norm(self._face_cross(), axis=1)

    def _face_cross(self) -> np.ndarray:
        v, f = self.vertices, self.faces
        return np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])

    def sample_surface(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` area-uniform random points on a mesh (trimesh, seeded).

        Returns ``points (n, 3) float``, ``face (n,) int`` (the triangle of each point) and
        ``bary (n, 3) float`` (its barycentric coordinates: re-evaluate on moved vertices with
        ``einsum('nk,nkd->nd', bary, vertices[faces[face]])``).
        """
        trimesh = require("trimesh")

        self._require_mesh("surface sampling")
        mesh = trimesh.Trimesh(self.vertices, self.faces, process=False)
        pts, face = trimesh.sample.sample_surface(mesh, int(n), seed=seed)
        bary = trimesh.triangles.points_to_barycentric(mesh.triangles[face], pts)
        return np.asarray(pts, dtype=np.float64), np.asarray(face, dtype=np.int64), np.asarray(bary, dtype=np.float64)

    def area(self) -> float:
        """Total surface area of a mesh."""
        return float(self.face_areas().sum())

    def face_normals(self) -> np.ndarray:
        """``(m, 3) float`` unit face normals (zero for zero-area faces)."""
        self._require_mesh("face_normals")
        c = self._face_cross()
        n = np.linalg.norm(c, axis=1, keepdims=True)
        return np.divide(c, n, out=np.zeros_like(c), where=n > 0)

    def vertex_normals(self) -> np.ndarray:
        """``(n, 3) float`` unit normals: stored ones, else area-weighted face normals (meshes),
        else PCA normals over 30 nearest neighbours, oriented away from the centroid (clouds)."""
        if self.normals is not None:
            return self.normals
        memo = self._cache
        if "vnormals" in memo:
            return memo["vnormals"].copy()
        if self.is_mesh:
            c = self._face_cross()  # area-weighted (|c| = 2 * area)
            n = np.zeros_like(self.vertices)
            for k in range(3):
                np.add.at(n, self.faces[:, k], c)
        else:
            n = _pca_normals(self.vertices, k=min(30, self.n_vertices))
        length = np.linalg.norm(n, axis=1, keepdims=True)
        # isolated vertices get an arbitrary but valid normal
        n = np.where(length > 1e-300, n / np.maximum(length, 1e-300), np.array([0.0, 0.0, 1.0]))
        memo["vnormals"] = n
        return n.copy()

    def edges(self) -> np.ndarray:
        """``(e, 2) int`` unique undirected edges ``i < j`` of a mesh."""
        self._require_mesh("edges")
        memo = self._cache
        if "edges" not in memo:
            f = self.faces
            e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
            e.sort(axis=1)
            n = self.n_vertices
            key = np.unique(e[:, 0] * n + e[:, 1])
            memo["edges"] = np.stack([key // n, key % n], axis=1)
        return memo["edges"].copy()

    def mean_edge_length(self) -> float:
        """Mean edge length (meshes) or mean nearest-neighbour distance (clouds)."""
        if self.is_mesh:
            e = self.edges()
            return float(np.linalg.norm(self.vertices[e[:, 0]] - self.vertices[e[:, 1]], axis=1).mean())
        from scipy.spatial import cKDTree

        d, _ = cKDTree(self.vertices).query(self.vertices, k=2)
        return float(d[:, 1].mean())

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def diameter(self) -> float:
        """Length of the bounding-box diagonal."""
        lo, hi = self.bounding_box()
        return float(np.linalg.norm(hi - lo))

    def components(self) -> np.ndarray:
        """``(n,) int`` connected-component label of each vertex (faces' connectivity; a
        point cloud is one component)."""
        if not self.is_mesh:
            return np.zeros(self.n_vertices, dtype=np.int64)
        e = self.edges()
        n = self.n_vertices
        adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
        _, labels = sp.csgraph.connected_components(adj, directed=False)
        return labels.astype(np.int64)

    # ------------------------------------------------------------------ checks & repair
    def report(self) -> MeshReport:
        """Count defects: duplicate/unreferenced vertices, zero-area faces (relative to the
        size, so any coordinate scale is judged alike), non-manifold edges, bow-tie vertices,
        seam vertices (coincident boundary vertices), boundary edges, connected components.
        Memoised until the arrays change."""
        memo = self._cache
        if "report" in memo:
            return memo["report"]
        n = self.n_vertices
        dup = self._n_duplicates()
        if not self.is_mesh:
            r = MeshReport(n, 0, dup, 0, 0, 0, 0, 1)
        else:
            f = self.faces
            used = np.zeros(n, dtype=bool)
            used[f.ravel()] = True
            e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
            e.sort(axis=1)
            keys, counts = np.unique(e[:, 0] * n + e[:, 1], return_counts=True)
            boundary = keys[counts == 1]
            labels = self.components()
            r = MeshReport(
                n_vertices=n,
                n_faces=self.n_faces,
                duplicate_vertices=dup,
                unreferenced_vertices=int(n - used.sum()),
                degenerate_faces=int((self._relative_face_areas() <= 1e-14).sum()),
                non_manifold_edges=int((counts > 2).sum()),
                boundary_edges=int((counts == 1).sum()),
                components=int(len(np.unique(labels[used]))),
                non_manifold_vertices=int(len(self.bowtie_vertices())),
                seam_vertices=self._n_duplicates(np.unique(np.r_[boundary // n, boundary % n])),
            )
        memo["report"] = r
        return r

    def _n_duplicates(self, subset=None) -> int:
        """Number of vertices (of ``subset``, default all) at exactly the position of another one
        of them: how many vertices welding would remove."""
        v = self.vertices if subset is None else self.vertices[subset]
        sv = v[np.lexsort(v.T)]
        return int(np.all(sv[1:] == sv[:-1], axis=1).sum())

    def _relative_face_areas(self) -> np.ndarray:
        """Face areas divided by the squared bounding-box diagonal, computed on rescaled
        coordinates so that no product over/underflows (coordinates of 1e±160 are fine)."""
        lo, hi = self.bounding_box()
        scale = max(float(np.abs(hi - lo).max()), 1e-300)
        v, f = (self.vertices - lo) / scale, self.faces
        area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
        return area / max(float(np.sum(((hi - lo) / scale) ** 2)), 1e-300)

    def bowtie_vertices(self) -> np.ndarray:
        """``(b,) int`` non-manifold ("bow-tie") vertices: vertices where two or more fans of
        faces meet without sharing an edge through the vertex (e.g. two cones touching at the tip)."""
        self._require_mesh("bowtie_vertices")
        memo = self._cache
        if "bowties" in memo:
            return memo["bowties"].copy()
        f, n, m = self.faces, self.n_vertices, self.n_faces
        # corners c = 3*face + k; the faces sharing an edge (a, b) join their corners at a and at b
        k = np.arange(3)
        a, b = f[:, k].ravel(), f[:, (k + 1) % 3].ravel()
        ca, cb = (3 * np.arange(m)[:, None] + k).ravel(), (3 * np.arange(m)[:, None] + (k + 1) % 3).ravel()
        lo_, hi_ = np.minimum(a, b), np.maximum(a, b)
        order = np.lexsort((hi_, lo_))
        same = (lo_[order][1:] == lo_[order][:-1]) & (hi_[order][1:] == hi_[order][:-1])
        i, j = order[:-1][same], order[1:][same]
        # the two half-edges run (a->b) and usually (b->a): match corners by vertex id
        ci = np.concatenate([ca[i], cb[i]])
        cj = np.where(a[j][None, :] == np.stack([a[i], b[i]]), ca[j][None, :], cb[j][None, :]).ravel()
        g = sp.coo_matrix((np.ones(len(ci)), (ci, cj)), shape=(3 * m, 3 * m))
        _, fan = sp.csgraph.connected_components(g, directed=False)
        vert = f.ravel()
        pairs = np.unique(vert * (3 * m) + fan)  # distinct (vertex, fan) pairs
        n_fans = np.bincount(pairs // (3 * m), minlength=n)
        memo["bowties"] = np.flatnonzero(n_fans > 1)
        return memo["bowties"].copy()

    def check_manifold(self, what: str = "this operation") -> None:
        """Raise :class:`NonManifoldError` (with the fix) if an edge has more than two faces or a
        vertex joins separate fans of faces (a bow-tie)."""
        self._require_mesh(what)
        r = self.report()
        if r.non_manifold_edges:
            raise NonManifoldError(
                f"{what} needs a manifold mesh, but {self!r} has {r.non_manifold_edges} edges shared by "
                "more than two faces. Use laplacian(..., method='robust') (robust_laplacian's tufted "
                "cover handles non-manifold input), or repair the mesh (e.g. pymeshlab "
                "'meshing_repair_non_manifold_edges')."
            )
        if r.non_manifold_vertices:
            raise NonManifoldError(
                f"{what} needs a manifold mesh, but {self!r} has {r.non_manifold_vertices} non-manifold "
                f"(bow-tie) vertices where separate fans of faces touch (first: "
                f"{self.bowtie_vertices()[:5].tolist()}). Use laplacian(..., method='robust') (robust_laplacian's "
                "tufted cover handles them), or repair the mesh (e.g. pymeshlab "
                "'meshing_repair_non_manifold_vertices')."
            )

    def check_operators_ready(self, what: str = "the Laplacian", manifold: bool = False) -> None:
        """The one validation step every operator runs first (Laplacians, eigenbasis, geodesics).

        Raises a :class:`ShapeError` naming the defect and the repair when: coordinates are so
        large or small that squared lengths over/underflow; a point cloud is collinear or all
        its points coincide; a mesh has unreferenced vertices, zero-area faces or duplicate
        vertices (a seam: the two copies are not connected, operators see a cut); with
        ``manifold=True`` also non-manifold edges or bow-tie vertices (:meth:`check_manifold`).
        """
        lo, hi = self.bounding_box()
        extent = float(np.abs(hi - lo).max())
        if extent > 1e100 or (0 < extent < 1e-100):
            raise ShapeError(
                f"{what} of {self!r}: coordinates span {extent:.1e} (bounding-box side), so squared lengths "
                "and areas over/underflow float64. Rescale first: shape.normalized('area') (unit area) or "
                f"shape.scaled({1 / extent:.0e}), and rescale the results (eigenvalues scale as 1/length²)."
            )
        if not self.is_mesh:
            centred = self.vertices - self.vertices.mean(0)
            sv = np.linalg.svd(centred, compute_uv=False) if len(centred) > 1 else np.zeros(1)
            if sv[0] == 0 or (len(sv) < 2 or sv[1] <= 1e-9 * sv[0]):
                shape_of = "coincide" if sv[0] == 0 else "lie on one line"
                raise ShapeError(
                    f"{what} of {self!r} is undefined: all {self.n_vertices} points {shape_of}, but a "
                    "point-cloud Laplacian needs points spread over a surface. Check the input (a curve, "
                    "swapped or constant columns?) and pass a sampled surface."
                )
            return
        r = self.report()
        if r.unreferenced_vertices or r.degenerate_faces:
            raise ShapeError(
                f"{what} of {self!r} is ill-posed: {r.unreferenced_vertices} unreferenced vertices "
                f"and {r.degenerate_faces} zero-area faces. Call shape.clean() first (it merges "
                "duplicate vertices, drops zero-area faces and unreferenced vertices, and returns the "
                "index map to carry labels across)."
            )
        if r.seam_vertices:
            raise ShapeError(
                f"{what} of {self!r} would be wrong: {r.seam_vertices} boundary vertices sit exactly on "
                "another boundary vertex (a seam, e.g. from texture coordinates or a split export), so the "
                "surface is cut open there and the two sides do not exchange heat (a unit sphere's first "
                "nonzero eigenvalue is then no longer 2). Weld them: shape, old_to_new = shape.clean() "
                "(old_to_new carries per-vertex labels across; clean(merge_tol=...) also welds near-duplicates)."
            )
        if manifold:
            self.check_manifold(what)

    def clean(self, merge_tol: float = 0.0) -> tuple["Shape", np.ndarray]:
        """Repair a mesh: merge duplicate vertices (within ``merge_tol``, absolute length),
        drop zero-area faces and unreferenced vertices.

        Returns
        -------
        shape : the cleaned `Shape`
        old_to_new : ``(n,) int`` the new index of each old vertex, ``-1`` if removed.
        """
        v = self.vertices
        key = np.round(v / merge_tol) if merge_tol > 0 else v
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        # keep the first occurrence, in original order
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        merged_index = rank[inverse]
        kept = np.sort(first)
        v_new = v[kept]
        nrm_new = self.normals[kept] if self.normals is not None else None
        if not self.is_mesh:
            return Shape(v_new, None, nrm_new, self.name), merged_index
        f = merged_index[self.faces]
        ok = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
        f = f[ok]
        if len(f):
            f = f[Shape(v_new, f)._relative_face_areas() > 1e-14]
        if len(f) == 0:
            raise ShapeError(f"{self!r} has no non-degenerate face left after cleaning.")
        used = np.unique(f)
        remap = -np.ones(len(v_new), dtype=np.int64)
        remap[used] = np.arange(len(used))
        nrm = nrm_new[used] if nrm_new is not None else None
        cleaned = Shape(v_new[used], remap[f], nrm, self.name)
        return cleaned, remap[merged_index]

    # ------------------------------------------------------------------ normalisation
    def centered(self, weighted: bool = True) -> "Shape":
        """Translate so the (area-weighted for meshes) centroid is at the origin."""
        if weighted and self.is_mesh:
            a = self.face_areas()
            centroids = self.vertices[self.faces].mean(axis=1)
            c = (a[:, None] * centroids).sum(0) / a.sum()
        else:
            c = self.vertices.mean(axis=0)
        return self.copy(vertices=self.vertices - c)

    def scaled(self, factor: float) -> "Shape":
        return self.copy(vertices=self.vertices * float(factor))

    def normalized(self, kind: str = "area") -> "Shape":
        """Centred copy scaled to ``kind``: ``'area'`` (total area 1, meshes only),
        ``'sphere'`` (inside the unit sphere, as DiffusionNet's inputs) or ``'center'`` (no scaling).
        Works at any coordinate scale (1e±160 included: extreme shapes are pre-scaled so areas
        neither overflow nor underflow)."""
        s = self
        lo, hi = self.bounding_box()
        extent = float(np.abs(hi - lo).max())
        if kind != "center" and (extent > 1e100 or 0 < extent < 1e-100):
            s = s.scaled(1.0 / extent)
        s = s.centered()
        if kind == "center":
            return s
        if kind == "area":
            s._require_mesh("normalized('area')")
            return s.scaled(1.0 / np.sqrt(s.area()))
        if kind == "sphere":
            return s.scaled(1.0 / np.linalg.norm(s.vertices, axis=1).max())
        raise ValueError(f"normalized(kind={kind!r}): choose 'area', 'sphere' or 'center'.")

    def transformed(self, rotation=None, translation=None) -> "Shape":
        """Apply ``x -> R x + t`` (rotation ``(3, 3)``, translation ``(3,)``); normals are rotated too."""
        R = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
        t = np.zeros(3) if translation is None else np.asarray(translation, dtype=np.float64)
        nrm = None if self.normals is None else self.normals @ R.T
        return self.copy(vertices=self.vertices @ R.T + t, normals=nrm)

    def mirrored(self, axis: int = 0) -> "Shape":
        """The mirror image ``x_axis → −x_axis``, named ``<name>_mirror``. A reflection flips
        orientation, so each triangle's vertex order is reversed (its normals keep pointing outwards)
        and the normals are reflected."""
        if axis not in (0, 1, 2):
            raise ValueError(f"mirrored(axis={axis!r}): the axis is 0, 1 or 2 (x, y or z).")
        flip = np.ones(3)
        flip[axis] = -1.0
        return Shape(self.vertices * flip, None if self.faces is None else self.faces[:, ::-1].copy(),
                     None if self.normals is None else self.normals * flip, name=f"{self.name}_mirror")

    # ------------------------------------------------------------------ I/O
    @classmethod
    def read(cls, path, name: str | None = None) -> "Shape":
        """Read ``.off / .obj / .ply`` (mesh or cloud, normals if present) or ``.npz``
        (arrays ``vertices``, optional ``faces``, ``normals``).

        One reader path for every file: meshio first, then trimesh for what meshio rejects
        (``NOFF``/``COFF``/one-line ``OFF n m k`` headers, polygons in .off, textured .obj
        whose texture indices differ from vertex indices — read geometry-only, so seams stay
        welded). Polygons are fan-triangulated. No parser can end the process: meshio calls
        ``sys.exit`` on files it cannot read, which is caught here and turned into a
        :class:`ShapeIOError` naming the file and the fix.
        """
        path = Path(path)
        if not path.exists():
            raise ShapeIOError(f"No such file: {path}. Check the path (and $SHAPELIB_DATA for datasets).")
        if not path.is_file():
            raise ShapeIOError(f"{path} is a folder (or another non-file), not a mesh file. Move it away and put "
                               "the mesh file there (re-download or re-export it).")
        name = path.stem if name is None else name
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return cls._read_npz(path, name)
        if suffix not in MESH_SUFFIXES:
            raise ShapeIOError(f"Cannot read {path}: unsupported suffix {suffix!r}; use .off, .obj, .ply or .npz.")
        raw = path.read_bytes()
        if not raw.strip():
            raise ShapeIOError(f"{path} is empty ({len(raw)} bytes): the download or export did not complete. "
                               "Re-download or re-export it.")
        try:
            vertices, faces, normals = _read_meshio(path, suffix)
        except ShapeIOError:
            raise
        except BaseException as first:  # noqa: BLE001 - meshio calls sys.exit(1) on unreadable files
            if isinstance(first, KeyboardInterrupt):
                raise
            try:
                vertices, faces, normals = _read_trimesh(path, suffix, raw)
            except ShapeIOError:
                raise
            except BaseException as second:  # noqa: BLE001
                if isinstance(second, KeyboardInterrupt):
                    raise
                raise ShapeIOError(
                    f"Could not parse {path} (meshio: {type(first).__name__}: {first}; trimesh: "
                    f"{type(second).__name__}: {second}). The file is probably truncated or corrupted: "
                    "re-download or re-export it."
                ) from second
        if len(vertices) == 0:
            raise ShapeIOError(f"{path} holds no vertices: the file is empty or truncated; re-export it.")
        if normals is not None:
            normals = np.asarray(normals, dtype=np.float64)
            if normals.shape != vertices.shape or not np.isfinite(normals).all() \
                    or (np.linalg.norm(normals, axis=1) < 1e-12).any():
                warnings.warn(f"{path}: some stored normals are zero or NaN; ignoring the file's normals "
                              "(they are recomputed when needed).")
                normals = None
        return cls(vertices, faces, normals=normals, name=name)

    @classmethod
    def _read_npz(cls, path: Path, name: str) -> "Shape":
        try:
            with np.load(path, allow_pickle=False) as z:
                files = list(z.files)
                if "vertices" not in files:
                    raise ShapeIOError(
                        f"{path} holds the arrays {files} but no 'vertices'. A shape .npz needs 'vertices' "
                        "(n, 3) and optionally 'faces' (m, 3), 'normals' (n, 3): save it with Shape.write(path) "
                        "or np.savez(path, vertices=..., faces=...)."
                    )
                arrays = {k: z[k] for k in ("vertices", "faces", "normals") if k in files}
        except ShapeIOError:
            raise
        except ValueError as exc:
            if "pickle" in str(exc):
                raise ShapeIOError(
                    f"{path} stores Python objects (pickled), which shapelib refuses to load: unpickling can "
                    "run arbitrary code. Save plain numeric arrays instead (np.savez(path, vertices=..., "
                    "faces=...) with float and int arrays)."
                ) from exc
            raise ShapeIOError(f"Could not parse {path} ({type(exc).__name__}: {exc}). The file is probably "
                               "truncated or corrupted: re-download or re-export it.") from exc
        except Exception as exc:  # zipfile / OSError / EOFError on a damaged archive
            raise ShapeIOError(f"Could not parse {path} ({type(exc).__name__}: {exc}). The file is probably "
                               "truncated or corrupted: re-download or re-export it.") from exc
        return cls(arrays["vertices"], arrays.get("faces"), arrays.get("normals"), name=name)

    def write(self, path) -> Path:
        """Write to ``.off / .obj / .ply / .npz`` (normals are kept in .ply and .npz)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix.lower()
        if suffix == ".npz":
            arrays = {"vertices": self.vertices}
            if self.faces is not None:
                arrays["faces"] = self.faces
            if self.normals is not None:
                arrays["normals"] = self.normals
            np.savez(path, **arrays)
            return path
        if suffix not in MESH_SUFFIXES:
            raise ShapeIOError(f"Cannot write {path}: use .off, .obj, .ply or .npz.")
        if not self.is_mesh and suffix != ".ply":
            raise ShapeIOError(f"A point cloud can be written to .ply or .npz, not {suffix}.")
        meshio = require("meshio")

        cells = [("triangle", self.faces)] if self.is_mesh else []
        point_data = {}
        if self.normals is not None and suffix == ".ply":
            point_data = {"nx": self.normals[:, 0], "ny": self.normals[:, 1], "nz": self.normals[:, 2]}
        meshio.write(path, meshio.Mesh(self.vertices, cells, point_data=point_data))
        return path


def _triangulate(cells) -> np.ndarray | None:
    """Triangles of meshio cell blocks: triangles as they are, quads and other polygons
    fan-triangulated (``(a, b, c, d)`` -> ``(a, b, c), (a, c, d)``); lines and vertices ignored."""
    tris = []
    for block in cells:
        data = np.asarray(block.data)
        if block.type in ("vertex", "line") or data.ndim != 2:
            continue
        if not (block.type in ("triangle", "quad") or block.type.startswith("polygon")):
            raise ShapeIOError(f"the file holds {block.type!r} cells (a volume mesh), not a surface: extract its "
                               "boundary surface first (e.g. meshio-convert to .obj after extracting the surface).")
        k = data.shape[1]
        for j in range(1, k - 1):
            tris.append(data[:, [0, j, j + 1]])
    return np.concatenate(tris).astype(np.int64) if tris else None


def _read_meshio(path: Path, suffix: str):
    """(vertices, faces or None, normals or None) with meshio; raises on anything it cannot read."""
    meshio = require("meshio")

    # reading from an open file makes meshio raise ReadError instead of calling sys.exit(1)
    with open(path, "rb" if suffix == ".ply" else "r") as fh:
        m = meshio.read(fh, file_format=suffix[1:])
    points = np.asarray(m.points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError("no vertices")
    faces = _triangulate(m.cells)
    kinds = sorted({c.type for c in m.cells} - {"vertex"})
    if faces is None and kinds:
        raise ShapeIOError(f"{path} holds {kinds} cells but no triangles or polygons: it is not a surface mesh "
                           "(export the surface as triangles, or pass the points as a point cloud).")
    if suffix == ".off":
        _check_off_counts(path, len(points), None if faces is None else len(faces))
    normals = None
    pd = m.point_data
    if all(k in pd for k in ("nx", "ny", "nz")):
        normals = np.stack([pd["nx"], pd["ny"], pd["nz"]], axis=1)
    elif "normals" in pd:
        normals = pd["normals"]
    return points[:, :3], faces, normals


def _off_header(text: str) -> tuple[int, int]:
    """(n_vertices, n_faces) announced by an OFF header: ``[ST][C][N][4]OFF`` with the counts on
    the same line or the next non-comment line."""
    tokens = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            tokens.extend(line.split())
        if len(tokens) >= 3:
            break
    if not tokens or not tokens[0].upper().endswith("OFF"):
        raise ShapeIOError(f"not an OFF file: the header is {tokens[:1]} instead of OFF/COFF/NOFF")
    try:
        return int(tokens[1]), int(tokens[2])
    except (IndexError, ValueError):
        raise ShapeIOError(f"the OFF header has no vertex/face counts (got {tokens[:3]})") from None


def _check_off_counts(path: Path, n_vertices: int, n_faces: int | None) -> None:
    nv, nf = _off_header(path.read_text(errors="replace"))
    if n_vertices != nv or (n_faces is not None and n_faces < nf):
        raise ShapeIOError(
            f"{path} announces {nv} vertices and {nf} faces but holds {n_vertices} vertices"
            f"{'' if n_faces is None else f' and {n_faces} triangles'}: the file is truncated or corrupted. "
            "Re-download or re-export it."
        )


def _read_trimesh(path: Path, suffix: str, raw: bytes):
    """Fallback reader: trimesh, geometry only, vertices in file order (no merging)."""
    trimesh = require("trimesh")

    if suffix == ".off":
        text = raw.decode("utf-8", errors="replace")
        try:
            _off_header(text)
        except ShapeIOError as exc:
            raise ShapeIOError(f"Could not parse {path}: {exc}. Check that it is an OFF mesh "
                               "(re-export it, or rename it with its real suffix).") from None
        loaded = trimesh.load(io.StringIO(text), file_type="off", process=False, force="mesh")
    elif suffix == ".obj":
        # geometry only: drop texture/normal indices ("f 1/4/2 ...") so the corners of one vertex stay
        # one vertex (trimesh would split every vertex whose corners carry different UVs: a soup)
        keep = []
        for line in raw.decode("utf-8", errors="replace").splitlines():
            parts = line.split()
            if parts and parts[0] == "v":
                keep.append(" ".join(parts[:4]))
            elif parts and parts[0] == "f":
                keep.append("f " + " ".join(p.split("/")[0] for p in parts[1:]))
        loaded = trimesh.load(io.StringIO("\n".join(keep) + "\n"), file_type="obj", process=False,
                              maintain_order=True, force="mesh")
    else:
        loaded = trimesh.load(io.BytesIO(raw), file_type=suffix[1:], process=False)
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    if suffix == ".off":
        _check_off_counts(path, len(vertices), len(faces))
    return vertices, (faces if len(faces) else None), None


def _pca_normals(points: np.ndarray, k: int) -> np.ndarray:
    """PCA normals from ``k`` nearest neighbours, oriented away from the centroid."""
    from scipy.spatial import cKDTree

    _, nbr = cKDTree(points).query(points, k=k)
    nb = points[nbr] - points[nbr].mean(axis=1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", nb, nb)
    _, vecs = np.linalg.eigh(cov)
    n = vecs[:, :, 0]
    flip = np.einsum("ij,ij->i", n, points - points.mean(0)) < 0
    n[flip] *= -1
    return n
