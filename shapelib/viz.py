"""Plots of meshes and point clouds.

Static matplotlib renders are the default: they work headless (``MPLBACKEND=Agg``), in CI
and in notebooks rendered on GitHub. :func:`interactive` uses meshplot when it is
installed (optional, conda-forge only) and otherwise falls back to the static render.

Shapes are drawn with ``up`` (default ``'y'``, the FAUST/ShapeNet convention) pointing up.
"""
from __future__ import annotations

import warnings

import numpy as np

from .shape import Shape

_UP = {"x": [1, 2, 0], "y": [2, 0, 1], "z": [0, 1, 2]}  # axis permutation: up -> matplotlib z


def _to_plot_coords(v: np.ndarray, up: str) -> np.ndarray:
    return v[:, _UP[up]]


def _colors(values, n: int, cmap, vmin=None, vmax=None):
    """Per-item RGBA from scalars ``(n,)``, RGB(A) ``(n, 3|4)`` or None (a flat grey-blue)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    if values is None:
        return np.tile([0.62, 0.71, 0.84, 1.0], (n, 1)), None
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] in (3, 4):
        rgba = np.ones((n, 4))
        rgba[:, : values.shape[1]] = np.clip(values, 0, 1)
        return rgba, None
    if values.shape != (n,):
        raise ValueError(f"values must be (n,) scalars or (n, 3) colours for n={n}, got {values.shape}.")
    finite = values[np.isfinite(values)]
    norm = Normalize(vmin=finite.min() if vmin is None else vmin, vmax=finite.max() if vmax is None else vmax)
    cm = plt.get_cmap(cmap)
    return cm(norm(values)), (cm, norm)


def plot_shape(shape: Shape, values=None, ax=None, cmap: str = "viridis", title: str | None = None,
               view: tuple[float, float] = (15, -60), up: str = "y", vmin=None, vmax=None,
               colorbar: bool = False, shade: bool = True, point_size: float = 2.0, mark=None):
    """Draw one shape on a 3-D matplotlib axis.

    values : ``(n,)`` per-vertex scalars, ``(n, 3)`` RGB in [0, 1], or None.
    view : ``(elevation, azimuth)`` in degrees.
    mark : vertex indices to highlight with red dots (sources, landmarks).
    Returns the axis.
    """
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    if ax is None:
        fig = plt.figure(figsize=(4, 4))
        ax = fig.add_subplot(projection="3d")
    v = _to_plot_coords(shape.vertices, up)
    rgba, mapping = _colors(values, shape.n_vertices, cmap, vmin, vmax)
    if shape.is_mesh:
        f = shape.faces
        face_rgba = rgba[f].mean(axis=1)
        if shade:  # simple Lambert shading from a head light
            fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
            fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-300)
            el, az = np.radians(view)
            light = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
            lam = 0.55 + 0.45 * np.abs(fn @ light)
            face_rgba = face_rgba.copy()
            face_rgba[:, :3] *= lam[:, None]
        ax.add_collection3d(Poly3DCollection(v[f], facecolors=face_rgba, edgecolors="none", linewidths=0))
    else:
        ax.scatter(v[:, 0], v[:, 1], v[:, 2], c=rgba, s=point_size, depthshade=False, linewidths=0)
    if mark is not None:
        m = v[np.atleast_1d(mark)]
        ax.scatter(m[:, 0], m[:, 1], m[:, 2], c="red", s=30, depthshade=False)
    lo, hi = v.min(0), v.max(0)
    pad = 0.02 * (hi - lo).max() + 1e-12
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_zlim(lo[2] - pad, hi[2] + pad)
    ax.set_box_aspect(hi - lo + 2 * pad, zoom=1.25)
    ax.view_init(*view)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar and mapping is not None:
        from matplotlib.cm import ScalarMappable

        plt.colorbar(ScalarMappable(norm=mapping[1], cmap=mapping[0]), ax=ax, shrink=0.6, pad=0.0)
    return ax


def plot_shapes(shapes, values=None, titles=None, ncols: int | None = None, size: float = 3.0, **kw):
    """A row (or grid) of shapes, each with its own ``values`` — one Figure.

    shapes : list of `Shape` (or one Shape with a list of ``values``: the same shape several times).
    values, titles, marks : lists (or None) aligned with ``shapes`` (``marks``: vertex indices to
        highlight per panel); ``**kw`` goes to :func:`plot_shape`.
    """
    marks = kw.pop("marks", None)
    import matplotlib.pyplot as plt

    if isinstance(shapes, Shape):
        count = len(values) if isinstance(values, (list, tuple)) else 1
        shapes = [shapes] * count
    shapes = list(shapes)
    values = list(values) if isinstance(values, (list, tuple)) else [values] * len(shapes)
    titles = list(titles) if titles is not None else [None] * len(shapes)
    ncols = ncols or len(shapes)
    nrows = int(np.ceil(len(shapes) / ncols))
    fig = plt.figure(figsize=(size * ncols, size * nrows))
    marks = list(marks) if marks is not None else [kw.pop("mark", None)] * len(shapes)
    for idx, (s, val, t, mk) in enumerate(zip(shapes, values, titles, marks)):
        ax = fig.add_subplot(nrows, ncols, idx + 1, projection="3d")
        plot_shape(s, val, ax=ax, title=t, mark=mk, **kw)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.92, wspace=0, hspace=0.05)
    return fig


def correspondence_colors(shape: Shape) -> np.ndarray:
    """``(n, 3)`` RGB colours from normalised coordinates: transfer them through a map to
    visualise a correspondence (same colour = matched points)."""
    v = shape.vertices
    return (v - v.min(0)) / np.maximum(np.ptp(v, axis=0), 1e-300)


def interactive(shape: Shape, values=None, **kw):
    """An interactive meshplot view when meshplot is installed, else the static render."""
    try:
        import meshplot as mp
    except ImportError:
        warnings.warn("meshplot is not installed (conda install -c conda-forge meshplot); showing a static render.")
        return plot_shape(shape, values, **kw)
    if shape.is_mesh:
        return mp.plot(shape.vertices, shape.faces, c=values)
    return mp.plot(shape.vertices, c=values, shading={"point_size": 0.03})
