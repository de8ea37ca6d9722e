"""`Shape`: a triangle mesh or a point cloud, with I/O, validation and normalisation.

Conventions used throughout shapelib
------------------------------------
* ``vertices``: ``(n, 3) float64``, in the shape's own length unit.
* ``faces``: ``(m, 3) int64`` vertex indices (0-based, counter-clockwise seen from outside),
  or ``None`` for a point cloud.
* ``normals``: optional ``(n, 3) float64`` unit vectors (read from files that carry them).

A `Shape` is immutable in spirit: methods return new shapes. Construction validates the
arrays (wrong shapes, NaN/inf, empty input, out-of-range or repeated face indices) and
raises :class:`~shapelib.errors.ShapeError` with a message naming the problem and the fix.
Softer defects (duplicate or unreferenced vertices, zero-area faces, non-manifold edges)
are listed by :meth:`Shape.report` and repaired by :meth:`Shape.clean`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .errors import NonManifoldError, ShapeError, ShapeIOError

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

    __slots__ = ("vertices", "faces", "normals", "name", "_cache")

    def __init__(self, vertices, faces=None, normals=None, name: str = ""):
        self.name = str(name)
        label = f" of shape {self.name!r}" if self.name else ""
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
        v = v.astype(np.float64, copy=True)
        bad = ~np.isfinite(v).all(axis=1)
        if bad.any():
            idx = np.flatnonzero(bad)
            raise ShapeError(
                f"vertices{label} contain NaN or inf at {bad.sum()} vertices (first: {idx[:5].tolist()}). "
                "Remove or repair those points before building a Shape."
            )
        self.vertices = v

        if faces is not None:
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
            f = f.astype(np.int64, copy=True)
            if len(f) == 0:
                raise ShapeError(
                    f"faces{label} is empty. Pass faces=None to make a point cloud, or give triangles."
                )
            lo, hi = f.min(), f.max()
            if lo < 0 or hi >= len(v):
                raise ShapeError(
                    f"faces{label} index vertices out of range [{lo}, {hi}] for {len(v)} vertices. "
                    "Indices are 0-based: subtract 1 if they come from a 1-based format (.vts, MATLAB)."
                )
            rep = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
            if rep.any():
                raise ShapeError(
                    f"{rep.sum()} faces{label} repeat a vertex index (first: face {np.flatnonzero(rep)[0]} = "
                    f"{f[rep][0].tolist()}): they are not triangles. Drop them, e.g. "
                    "faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]."
                )
        else:
            f = None
        self.faces = f

        if normals is not None:
            nrm = np.asarray(normals, dtype=np.float64)
            if nrm.shape != v.shape:
                raise ShapeError(f"normals{label} must have the shape of vertices {v.shape}, got {nrm.shape}.")
            length = np.linalg.norm(nrm, axis=1, keepdims=True)
            if not np.isfinite(nrm).all() or (length < 1e-12).any():
                raise ShapeError(f"normals{label} contain NaN/inf or zero vectors; recompute or drop them.")
            nrm = nrm / length
        self.normals = nrm if normals is not None else None
        self._cache: dict = {}

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
        if "hash" not in self._cache:
            h = hashlib.sha1()
            h.update(np.ascontiguousarray(self.vertices).tobytes())
            if self.faces is not None:
                h.update(b"faces")
                h.update(np.ascontiguousarray(self.faces).tobytes())
            if self.normals is not None:
                h.update(b"normals")
                h.update(np.ascontiguousarray(self.normals).tobytes())
            self._cache["hash"] = h.hexdigest()
        return self._cache["hash"]

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
        import trimesh

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
        if "vnormals" in self._cache:
            return self._cache["vnormals"]
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
        self._cache["vnormals"] = n
        return n

    def edges(self) -> np.ndarray:
        """``(e, 2) int`` unique undirected edges ``i < j`` of a mesh."""
        self._require_mesh("edges")
        if "edges" not in self._cache:
            f = self.faces
            e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
            e.sort(axis=1)
            n = self.n_vertices
            key = np.unique(e[:, 0] * n + e[:, 1])
            self._cache["edges"] = np.stack([key // n, key % n], axis=1)
        return self._cache["edges"]

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
        """Count defects: duplicate/unreferenced vertices, zero-area faces, non-manifold and
        boundary edges, connected components. Cached (shapes are immutable)."""
        if "report" in self._cache:
            return self._cache["report"]
        n = self.n_vertices
        order = np.lexsort(self.vertices.T)
        sv = self.vertices[order]
        dup = int(np.all(sv[1:] == sv[:-1], axis=1).sum())
        if not self.is_mesh:
            r = MeshReport(n, 0, dup, 0, 0, 0, 0, 1)
        else:
            f = self.faces
            used = np.zeros(n, dtype=bool)
            used[f.ravel()] = True
            e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
            e.sort(axis=1)
            _, counts = np.unique(e[:, 0] * n + e[:, 1], return_counts=True)
            labels = self.components()
            r = MeshReport(
                n_vertices=n,
                n_faces=self.n_faces,
                duplicate_vertices=dup,
                unreferenced_vertices=int(n - used.sum()),
                degenerate_faces=int((self.face_areas() <= 1e-14 * max(self.diameter(), 1e-300) ** 2).sum()),
                non_manifold_edges=int((counts > 2).sum()),
                boundary_edges=int((counts == 1).sum()),
                components=int(len(np.unique(labels[used]))),
            )
        self._cache["report"] = r
        return r

    def check_manifold(self, what: str = "this operation") -> None:
        """Raise :class:`NonManifoldError` (with the fix) if an edge has more than two faces."""
        self._require_mesh(what)
        r = self.report()
        if r.non_manifold_edges:
            raise NonManifoldError(
                f"{what} needs a manifold mesh, but {self!r} has {r.non_manifold_edges} edges shared by "
                "more than two faces. Use laplacian(..., method='robust') (robust_laplacian's tufted "
                "cover handles non-manifold input), or repair the mesh (e.g. pymeshlab "
                "'meshing_repair_non_manifold_edges')."
            )

    def check_operators_ready(self, what: str = "the Laplacian") -> None:
        """Raise a :class:`ShapeError` naming the fix if the mesh has unreferenced vertices or
        zero-area faces (which make the mass matrix singular or the cotangents infinite)."""
        if not self.is_mesh:
            return
        r = self.report()
        if r.unreferenced_vertices or r.degenerate_faces:
            raise ShapeError(
                f"{what} of {self!r} is ill-posed: {r.unreferenced_vertices} unreferenced vertices "
                f"and {r.degenerate_faces} zero-area faces. Call shape.clean() first (it merges "
                "duplicate vertices, drops zero-area faces and unreferenced vertices, and returns the "
                "index map to carry labels across)."
            )

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
        c = np.cross(v_new[f[:, 1]] - v_new[f[:, 0]], v_new[f[:, 2]] - v_new[f[:, 0]])
        tol = 1e-14 * max(self.diameter(), 1e-300) ** 2
        f = f[0.5 * np.linalg.norm(c, axis=1) > tol]
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
        ``'sphere'`` (inside the unit sphere, as DiffusionNet's inputs) or ``'center'`` (no scaling)."""
        s = self.centered()
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

    # ------------------------------------------------------------------ I/O
    @classmethod
    def read(cls, path, name: str | None = None) -> "Shape":
        """Read ``.off / .obj / .ply`` (mesh or cloud, normals if present) or ``.npz``
        (arrays ``vertices``, optional ``faces``, ``normals``)."""
        path = Path(path)
        if not path.exists():
            raise ShapeIOError(f"No such file: {path}. Check the path (and $SHAPELIB_DATA for datasets).")
        name = path.stem if name is None else name
        suffix = path.suffix.lower()
        try:
            if suffix == ".npz":
                with np.load(path) as z:
                    return cls(z["vertices"], z["faces"] if "faces" in z else None,
                               z["normals"] if "normals" in z else None, name=name)
            if suffix not in MESH_SUFFIXES:
                raise ShapeIOError(f"Cannot read {path}: unsupported suffix {suffix!r}; use .off, .obj, .ply or .npz.")
            import meshio

            try:
                m = meshio.read(path)
            except Exception:
                if suffix != ".obj":
                    raise
                return cls._read_with_trimesh(path, name)  # e.g. textured OBJ (uv indices ≠ vertices)
        except ShapeIOError:
            raise
        except Exception as exc:  # meshio raises many types on malformed files
            raise ShapeIOError(
                f"Could not parse {path} ({type(exc).__name__}: {exc}). The file is probably truncated "
                "or corrupted: re-download or re-export it."
            ) from exc
        tris = [c.data for c in m.cells if c.type == "triangle"]
        others = [c.type for c in m.cells if c.type not in ("triangle", "vertex")]
        if others and not tris:
            raise ShapeIOError(f"{path} holds {others} cells but no triangles; triangulate it first.")
        faces = np.concatenate(tris) if tris else None
        normals = None
        pd = m.point_data
        if all(k in pd for k in ("nx", "ny", "nz")):
            normals = np.stack([pd["nx"], pd["ny"], pd["nz"]], axis=1)
        elif "normals" in pd:
            normals = pd["normals"]
        if normals is not None:
            normals = np.asarray(normals, dtype=np.float64)
            if not np.isfinite(normals).all() or (np.linalg.norm(normals, axis=1) < 1e-12).any():
                import warnings

                warnings.warn(f"{path}: some stored normals are zero or NaN; ignoring the file's normals "
                              "(they are recomputed when needed).")
                normals = None
        return cls(m.points[:, :3], faces, normals=normals, name=name)

    @classmethod
    def _read_with_trimesh(cls, path: Path, name: str) -> "Shape":
        import trimesh

        try:
            mesh = trimesh.load(path, process=False, force="mesh")
        except Exception as exc:
            raise ShapeIOError(f"Could not parse {path} ({type(exc).__name__}: {exc}); re-export it as a plain "
                               "triangle mesh.") from exc
        return cls(np.asarray(mesh.vertices), np.asarray(mesh.faces), name=name)

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
        import meshio

        cells = [("triangle", self.faces)] if self.is_mesh else []
        point_data = {}
        if self.normals is not None and suffix == ".ply":
            point_data = {"nx": self.normals[:, 0], "ny": self.normals[:, 1], "nz": self.normals[:, 2]}
        meshio.write(path, meshio.Mesh(self.vertices, cells, point_data=point_data))
        return path


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
