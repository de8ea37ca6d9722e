"""Plots of meshes and point clouds.

Static matplotlib renders (:func:`plot_shape`, :func:`plot_shapes`) work headless, in CI, on
GitHub and in print: panels share one colour scale with a colour bar by default, or get one scale
each (``share=False``, the range in each title), or a shared scale clipped at a percentile
(``percentile=99``, said on the colour bar) where one panel's peaks would wash out the others; part
labels get a legend, ``edges=True`` draws the mesh, and the whole shape is always in view.
:func:`interactive` is a plotly view to rotate (JupyterLab, and the exported HTML without a
kernel) whose camera frames the whole shape, tall, wide or flat; meshplot remains an option when
installed through conda (``backend='meshplot'``).

Shapes are drawn with ``up`` (default ``'y'``, the FAUST/ShapeNet convention) pointing up.
"""
from __future__ import annotations

import numpy as np

from .shape import Shape
from . import config
from .errors import MissingDependencyError

_UP = {"x": [1, 2, 0], "y": [2, 0, 1], "z": [0, 1, 2]}  # axis permutation: up -> matplotlib z


def _to_plot_coords(v: np.ndarray, up: str) -> np.ndarray:
    return v[:, _UP[up]]


QUALITATIVE = ("tab10", "tab20", "tab20b", "tab20c", "Set1", "Set2", "Set3", "Paired", "Accent", "Pastel1", "Pastel2", "Dark2")
DIVERGING = ("RdBu", "RdBu_r", "coolwarm", "bwr", "seismic", "PiYG", "PRGn", "BrBG", "PuOr", "RdGy", "RdYlBu", "Spectral")


def _is_scalar(values, n: int | None = None) -> bool:
    return values is not None and np.ndim(values) == 1 and (n is None or len(values) == n)


def _limits(values_list, diverging: bool, vmin=None, vmax=None, percentile: float | None = None):
    """Colour limits ``(lo, hi)`` of several scalar arrays: their min and max, or — with
    ``percentile=p`` — the (100 − p)-th and p-th percentiles of all their values together, so that
    a few extreme vertices (or one panel's peaks) do not wash out the rest. Diverging maps get
    limits symmetric about 0 (from |values|). ``vmin``/``vmax`` win where given."""
    finite = np.concatenate([np.asarray(v, dtype=float)[np.isfinite(v)] for v in values_list] or [np.zeros(1)])
    if finite.size == 0:
        finite = np.zeros(1)
    if percentile is not None and not 50 < percentile <= 100:
        raise ValueError(f"percentile={percentile}: use a value in (50, 100], e.g. 99.")
    p = 100.0 if percentile is None else float(percentile)
    if diverging and vmin is None and vmax is None:
        lim = float(np.percentile(np.abs(finite), p))
        return -lim, lim
    lo = float(np.percentile(finite, 100 - p)) if vmin is None else vmin
    hi = float(np.percentile(finite, p)) if vmax is None else vmax
    return lo, hi


def _percentile_note(percentile: float | None, shared: bool = True) -> str:
    if percentile is None:
        return ""
    p = f"{percentile:g}"
    return f"{'shared scale, ' if shared else ''}clipped at the {p}th percentile"


def _norm(values_list, cmap: str, vmin=None, vmax=None, norm=None, percentile: float | None = None):
    """One matplotlib Normalize for several scalar arrays (a shared colour scale).

    ``norm='log'``: logarithmic, floored at 1e-3 × the maximum (heat, distances to a point);
    diverging colour maps (RdBu, coolwarm, ...) get limits symmetric about 0 (eigenfunctions).
    ``percentile``: limits at that percentile of the values instead of their extremes (see
    :func:`_limits`)."""
    from matplotlib.colors import LogNorm, Normalize

    if norm is not None and not isinstance(norm, str):
        return norm
    finite = np.concatenate([np.asarray(v, dtype=float)[np.isfinite(v)] for v in values_list] or [np.zeros(1)])
    if norm == "log":
        hi = (finite.max() if percentile is None else np.percentile(finite, percentile)) if vmax is None else vmax
        lo = max(finite[finite > 0].min() if (finite > 0).any() else hi * 1e-3, hi * 1e-3) if vmin is None else vmin
        return LogNorm(vmin=lo, vmax=hi, clip=True)
    if norm not in (None, "linear"):
        raise ValueError(f"norm={norm!r}: use None/'linear', 'log' or a matplotlib Normalize.")
    lo, hi = _limits(values_list, cmap in DIVERGING, vmin, vmax, percentile)
    return Normalize(vmin=lo, vmax=hi)


def _colors(values, n: int, cmap, vmin=None, vmax=None, norm=None):
    """Per-item RGBA from scalars ``(n,)``, RGB(A) ``(n, 3|4)`` or None (a flat grey-blue);
    returns ``(rgba, (cmap, norm) or None)``."""
    import matplotlib.pyplot as plt

    if values is None:
        return np.tile([0.62, 0.71, 0.84, 1.0], (n, 1)), None
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] in (3, 4) and values.shape[0] == n:
        rgba = np.ones((n, 4))
        rgba[:, : values.shape[1]] = np.clip(values, 0, 1)
        return rgba, None
    if values.shape != (n,):
        raise ValueError(f"values must be (n,) scalars or (n, 3) colours for n={n}, got {values.shape}.")
    nrm = _norm([values], cmap, vmin, vmax, norm)
    cm = plt.get_cmap(cmap)
    return cm(nrm(values)), (cm, nrm)


def _default_point_size(n: int) -> float:
    """Marker area for a cloud of n points: large for a few hundred points, 1 for dense clouds."""
    return float(np.clip(3000.0 / max(n, 1), 1.0, 12.0))


def plot_shape(shape: Shape, values=None, ax=None, cmap: str = "viridis", title: str | None = None,
               view: tuple[float, float] = (12, -30), up: str = "y", vmin=None, vmax=None,
               colorbar: bool = False, shade: bool = True, point_size: float | None = None, mark=None,
               edges: bool = False, norm=None, legend=None, colorbar_label: str | None = None, focus=None):
    """Draw one shape on a 3-D matplotlib axis.

    values : ``(n,)`` per-vertex scalars, ``(n, 3)`` RGB in [0, 1], or None.
    view : ``(elevation, azimuth)`` in degrees; the default looks at a y-up shape facing +z
        (FAUST, the synthetic families) from the front, a little to the side.
    vmin, vmax, norm : colour scale of scalar values (``norm='log'`` for heat; see :func:`plot_shapes`
        for one scale shared by several panels).
    colorbar : draw a colour bar (scalar values only), labelled ``colorbar_label``.
    edges : draw the mesh edges (a wireframe over the colours) — when the discretisation is the point.
    legend : names of the integer labels in ``values`` (e.g. ``item.part_names``): a legend of
        the labels present, coloured as drawn (needs ``vmin``/``vmax`` fixed to the label range).
    point_size : marker area for point clouds (default: from the number of points).
    mark : vertex indices to highlight with red dots (sources, landmarks).
    focus : ``(centre, radius)`` — draw only the part of the shape within ``radius`` of the point
        ``centre`` (a close-up, e.g. with ``edges=True`` to compare discretisations).
    Returns the axis. The whole shape (or focus region) is in view: the axis box is fitted, never zoomed in.
    """
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    if ax is None:
        fig = plt.figure(figsize=(4, 4))
        ax = fig.add_subplot(projection="3d")
    rgba, mapping = _colors(values, shape.n_vertices, cmap, vmin, vmax, norm)
    if focus is not None:
        shape, keep = _focus(shape, *focus)
        rgba = rgba[keep]
        mark = None if mark is None else np.flatnonzero(np.isin(keep, np.atleast_1d(mark)))
    v = _to_plot_coords(shape.vertices, up)
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
        ec, lw = ((0.1, 0.1, 0.1, 0.55), 0.15) if edges else ("none", 0)
        ax.add_collection3d(Poly3DCollection(v[f], facecolors=face_rgba, edgecolors=ec, linewidths=lw))
    else:
        size = _default_point_size(shape.n_vertices) if point_size is None else point_size
        ax.scatter(v[:, 0], v[:, 1], v[:, 2], c=rgba, s=size, depthshade=True, linewidths=0)
    if mark is not None:
        m = v[np.atleast_1d(mark)]
        ax.scatter(m[:, 0], m[:, 1], m[:, 2], c="red", s=30, depthshade=False)
    lo, hi = v.min(0), v.max(0)
    pad = 0.02 * (hi - lo).max() + 1e-12
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_zlim(lo[2] - pad, hi[2] + pad)
    # zoom=1: the projected box fits the axes, so no head, foot or chair leg is cut off
    ax.set_box_aspect(hi - lo + 2 * pad, zoom=1.0)
    ax.view_init(*view)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar and mapping is not None:
        _colorbar(ax.figure, mapping, ax, colorbar_label)
    if legend is not None and mapping is not None:
        _legend(ax, values, legend, mapping)
    return ax


def _focus(shape: Shape, centre, radius: float):
    """The part of ``shape`` within ``radius`` of ``centre``: (sub-shape, kept vertex indices)."""
    inside = np.linalg.norm(shape.vertices - np.asarray(centre, dtype=float), axis=1) <= radius
    if not inside.any():
        raise ValueError(f"focus: no vertex within {radius} of {centre}; choose a centre on the shape.")
    if not shape.is_mesh:
        keep = np.flatnonzero(inside)
        return Shape(shape.vertices[keep]), keep
    faces = shape.faces[inside[shape.faces].all(axis=1)]
    keep, faces = np.unique(faces, return_inverse=True)
    return Shape(shape.vertices[keep], faces.reshape(-1, 3)), keep


def _colorbar(fig, mapping, ax, label=None):
    from matplotlib.cm import ScalarMappable

    cb = fig.colorbar(ScalarMappable(norm=mapping[1], cmap=mapping[0]), ax=ax, shrink=0.6, pad=0.02, fraction=0.04)
    if label:
        cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return cb


def _legend(target, values_list, names, mapping, **kw):
    """Legend patches for the integer labels present in ``values_list``, coloured as drawn."""
    from matplotlib.patches import Patch

    if isinstance(values_list, np.ndarray):
        values_list = [values_list]
    present = np.unique(np.concatenate([np.asarray(v).ravel() for v in values_list if _is_scalar(v)]))
    names = dict(enumerate(names)) if not isinstance(names, dict) else names
    cm, nrm = mapping
    handles = [Patch(color=cm(nrm(k)), label=str(names.get(int(k), int(k)))) for k in present if int(k) >= 0]
    return target.legend(handles=handles, fontsize=7, frameon=False, **kw)


def plot_shapes(shapes, values=None, titles=None, ncols: int | None = None, size: float = 3.0,
                share: bool = True, colorbar: bool | None = None, legend=None, colorbar_label: str | None = None,
                percentile: float | None = None, **kw):
    """A row (or grid) of shapes, each with its own ``values`` — one Figure.

    shapes : list of `Shape` (or one Shape with a list of ``values``: the same shape several times).
    values, titles, marks : lists (or None) aligned with ``shapes`` (``marks``: vertex indices to
        highlight per panel); ``**kw`` goes to :func:`plot_shape` (``cmap``, ``view``, ``edges``, ``norm``...).
    share : True (default): scalar values of all panels share ONE colour scale (so panels can be
        compared), shown by one colour bar (``colorbar``, default on when scalars are drawn and no
        ``legend`` is given). False: each panel gets its own scale (when magnitudes differ but the
        patterns matter, e.g. eigenfunctions of increasing frequency); each title then states its
        panel's range (``±0.93`` or ``[lo, hi]``) and no colour bar is drawn.
    percentile : e.g. 99 — the colour limits are that percentile of the values (of all panels when
        shared, of each panel otherwise) instead of their extremes, so one panel's (or a few
        vertices') peaks do not wash out the rest; the colour bar label (or the titles) say so.
    legend : names of integer labels (``item.part_names``): one legend for the figure instead of a
        colour bar (pass ``vmin``/``vmax`` spanning the label range so colours match across panels).
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
    scalars = [v for s, v in zip(shapes, values) if _is_scalar(v, s.n_vertices)]
    mapping = None
    cmap = kw.get("cmap", "viridis")
    if scalars and share:
        import matplotlib.pyplot as plt_

        kw["norm"] = _norm(scalars, cmap, kw.pop("vmin", None), kw.pop("vmax", None), kw.get("norm"), percentile)
        mapping = (plt_.get_cmap(cmap), kw["norm"])
        note = _percentile_note(percentile)
        if note:
            colorbar_label = f"{colorbar_label} ({note})" if colorbar_label else note
    per_panel = None
    if scalars and not share and (percentile is not None or kw.get("norm") in (None, "linear")):
        # own scale per panel: fixed here (so that percentile applies) and stated in each title
        per_panel = []
        for s, v in zip(shapes, values):
            if not _is_scalar(v, s.n_vertices):
                per_panel.append(None)
                continue
            nrm = _norm([v], cmap, kw.get("vmin"), kw.get("vmax"), kw.get("norm"), percentile)
            per_panel.append(nrm)
        rng = [None if n is None else (f"±{n.vmax:.2g}" if np.isclose(n.vmin, -n.vmax) else f"[{n.vmin:.2g}, {n.vmax:.2g}]")
               for n in per_panel]
        suffix = "own scale" + (f", {percentile:g}th pct." if percentile is not None else "")
        titles = [t if r is None else f"{t + '  ' if t else ''}{r} ({suffix})" for t, r in zip(titles, rng)]
    if colorbar is None:  # a colour bar for continuous scalars; labels get a legend (or nothing)
        colorbar = mapping is not None and legend is None and kw.get("cmap", "viridis") not in QUALITATIVE
    fig = plt.figure(figsize=(size * ncols + (0.6 if colorbar else 0), size * nrows))
    marks = list(marks) if marks is not None else [kw.pop("mark", None)] * len(shapes)
    axes = []
    for idx, (s, val, t, mk) in enumerate(zip(shapes, values, titles, marks)):
        ax = fig.add_subplot(nrows, ncols, idx + 1, projection="3d")
        kw_i = kw if per_panel is None or per_panel[idx] is None else \
            {**{k: w for k, w in kw.items() if k not in ("vmin", "vmax")}, "norm": per_panel[idx]}
        plot_shape(s, val, ax=ax, title=t, mark=mk, **kw_i)
        axes.append(ax)
    right = 1.0 - (0.9 / fig.get_figwidth() if colorbar and mapping is not None else 0) - (1.3 / fig.get_figwidth() if legend is not None else 0)
    fig.subplots_adjust(left=0, right=right, bottom=0, top=0.92, wspace=0, hspace=0.05)
    if colorbar and mapping is not None:
        cax = fig.add_axes([right + 0.15 / fig.get_figwidth(), 0.2, 0.12 / fig.get_figwidth(), 0.6])
        from matplotlib.cm import ScalarMappable

        cb = fig.colorbar(ScalarMappable(norm=mapping[1], cmap=mapping[0]), cax=cax)
        cb.ax.tick_params(labelsize=7)
        if colorbar_label:
            cb.set_label(colorbar_label, fontsize=8)
    if legend is not None and mapping is not None:
        _legend(fig, scalars, legend, mapping, loc="center right")
    return fig


def correspondence_colors(shape: Shape) -> np.ndarray:
    """``(n, 3)`` RGB colours from normalised coordinates: transfer them through a map to
    visualise a correspondence (same colour = matched points)."""
    v = shape.vertices
    return (v - v.min(0)) / np.maximum(np.ptp(v, axis=0), 1e-300)


def transfer_colors(shape1: Shape, p2p_21) -> np.ndarray:
    """``(n2, 3)`` RGB: the correspondence colours of shape 1 pulled back to shape 2 through ``p2p_21``
    (texture/colour transfer; same colour = matched points)."""
    pred = np.asarray(p2p_21.detach().cpu() if hasattr(p2p_21, "detach") else p2p_21).astype(np.int64)
    return correspondence_colors(shape1)[pred]


#: how plotly figures are shown in a Jupyter kernel: the plotly mime type (JupyterLab's built-in
#: plotly extension, works offline) + HTML with plotly.js embedded once per notebook (~4.8 MB of
#: output in the executed notebook), so nbconvert's HTML export rotates without a kernel or network.
#: ``"plotly_mimetype+notebook_connected"`` keeps notebooks small but the HTML then loads plotly.js online.
PLOTLY_RENDERER = "plotly_mimetype+notebook"


def _plotly_renderer() -> None:
    if config._in_jupyter_kernel():
        import plotly.io as pio

        if pio.renderers.default != PLOTLY_RENDERER:
            pio.renderers.default = PLOTLY_RENDERER  # the 'notebook' part embeds plotly.js here, once


#: plotly's perspective camera: vertical field of view (plotly.js gl-plot3d: fovy = pi/4)
PLOTLY_FOVY = np.pi / 4
#: direction from the shape's centre to the camera for each ``up`` axis (front, a little from the side and above)
_EYE_DIR = {"x": (0.3, 1.6, 0.8), "y": (0.8, 0.3, 1.6), "z": (1.6, -0.8, 0.3)}
_UP_VEC = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
PLOTLY_DIVERGING = ("RdBu", "RdBu_r", "Picnic", "Portland", "Balance", "Curl", "Delta", "Tealrose", "Temps", "Tropic",
                    "Armyrose", "Fall", "Geyser", "Earth", "Spectral", "PiYG", "PRGn", "BrBG", "PuOr", "RdGy", "RdYlBu",
                    "Spectral_r", "PiYG_r", "PRGn_r", "BrBG_r", "PuOr_r", "RdYlBu_r", "balance", "curl", "delta")


def _frame_camera(lo, hi, up: str, min_viewport_aspect: float = 1.0, margin: float = 1.06):
    """Scene ranges, aspect ratio and camera that show the whole box ``[lo, hi]``.

    plotly draws the scene box ``[-a/2, a/2]`` (``a`` = aspectratio, here the padded extents divided
    by the largest one, i.e. true proportions) and looks at it from ``eye`` with a perspective
    camera of vertical field of view :data:`PLOTLY_FOVY`. The eye is put, along the fixed viewing
    direction for ``up``, just far enough that all 8 box corners project inside the view when the
    view is at least ``min_viewport_aspect`` times as wide as tall (``margin``: a little room). The
    old ``aspectmode='data'`` with a fixed eye cut tall shapes off: plotly normalises 'data' extents
    by their geometric mean, so a standing body was 3x taller than the box the eye was placed for.
    Returns ``(ranges, aspectratio, eye)``."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    ext = hi - lo
    pad = 0.02 * ext.max() + 1e-9
    ranges = np.stack([lo - pad, hi + pad], axis=1)
    aspect = (ext + 2 * pad) / (ext + 2 * pad).max()
    d = np.asarray(_EYE_DIR[up], dtype=float)
    d /= np.linalg.norm(d)
    fwd = -d
    right = np.cross(fwd, _UP_VEC[up])
    right /= np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    tan_y = np.tan(PLOTLY_FOVY / 2)
    tan_x = tan_y * min_viewport_aspect
    corners = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)]) * aspect
    # a corner c is in view from eye = t*d when |c·up| <= tan_y (t - c·d) and |c·right| <= tan_x (t - c·d)
    need = corners @ d + np.maximum(np.abs(corners @ true_up) * margin / tan_y, np.abs(corners @ right) * margin / tan_x)
    t = float(need.max())
    return ranges, aspect, d * t


def interactive(shape: Shape, values=None, cmap: str = "Viridis", title: str | None = None, up: str = "y",
                vmin=None, vmax=None, mark=None, point_size: float = 3.0, colorbar_title: str | None = None,
                height: int = 420, backend: str = "plotly", percentile: float | None = None):
    """An interactive 3-D view to rotate and zoom (drag, scroll); returns a plotly Figure that
    JupyterLab shows, and that the HTML export of a notebook keeps working without a kernel.

    values : ``(n,)`` scalars (drawn with ``cmap``, a plotly colour scale name, and a colour bar),
        ``(n, 3)`` RGB in [0, 1] (e.g. :func:`correspondence_colors`), or None.
    vmin, vmax : colour limits (default: the values' range; symmetric about 0 for diverging
        scales such as ``'RdBu'``). ``percentile`` (e.g. 99): limits at that percentile instead of
        the extremes, so a few peaks do not wash out the rest; the colour bar title says so.
    mark : vertex indices drawn as red dots. ``up`` : the axis that points up (default y).
    The camera frames the whole shape, tall, wide or flat, in true proportions (any view at least
    as wide as tall shows all of it; scroll to zoom in).
    Arrays are stored as float32 / int32 binary (a 6,890-vertex mesh adds about 0.3 MB to a
    notebook): keep one such view per notebook, and the static :func:`plot_shape` for print/CI.
    ``backend='meshplot'`` uses meshplot instead (conda-forge only).
    """
    if backend == "meshplot":
        try:
            import meshplot as mp
        except ImportError as exc:
            raise MissingDependencyError(
                "meshplot is not installed (conda install -c conda-forge meshplot); "
                "use viz.interactive(..., backend='plotly') (the default), which pip installs.") from exc
        if shape.is_mesh:
            return mp.plot(shape.vertices, shape.faces, c=values)
        return mp.plot(shape.vertices, c=values, shading={"point_size": 0.03})
    if backend != "plotly":
        raise ValueError(f"backend={backend!r}: use 'plotly' (default) or 'meshplot'.")
    import plotly.graph_objects as go

    _plotly_renderer()
    v = np.asarray(shape.vertices, dtype=np.float32)
    n = len(v)
    colour: dict = {}
    if values is not None:
        values = np.asarray(values)
        if values.ndim == 2 and values.shape == (n, values.shape[1]) and values.shape[1] in (3, 4):
            rgb = np.round(255 * np.clip(values[:, :3], 0, 1)).astype(int)
            colour = {"vertexcolor" if shape.is_mesh else "color": [f"rgb({r},{g},{b})" for r, g, b in rgb]}
        elif values.shape == (n,):
            vals = values.astype(np.float32)
            diverging = isinstance(cmap, str) and cmap in PLOTLY_DIVERGING
            lo, hi = _limits([vals], diverging, vmin, vmax, percentile)
            note = _percentile_note(percentile, shared=False)
            text = f"{colorbar_title}<br>({note})" if colorbar_title and note else (colorbar_title or note or "")
            bar = dict(title=dict(text=text, side="right"), thickness=12, len=0.7)
            if shape.is_mesh:
                colour = dict(intensity=vals, colorscale=cmap, cmin=lo, cmax=hi, colorbar=bar)
            else:
                colour = dict(color=vals, colorscale=cmap, cmin=lo, cmax=hi, colorbar=bar, showscale=True)
        else:
            raise ValueError(f"values must be (n,) scalars or (n, 3) colours for n={n}, got {values.shape}.")
    if shape.is_mesh:
        f = np.asarray(shape.faces, dtype=np.uint16 if n < 2**16 else np.uint32)  # smaller in the notebook
        trace = go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2], flatshading=False,
                          color=None if colour else "#9eb5d6", hoverinfo="skip",
                          lighting=dict(ambient=0.55, diffuse=0.6, specular=0.1), **colour)
    else:
        trace = go.Scatter3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], mode="markers", hoverinfo="skip",
                             marker=dict(size=point_size, **(colour or {"color": "#6f8fbf"})))
    traces = [trace]
    if mark is not None:
        m = v[np.atleast_1d(mark)]
        traces.append(go.Scatter3d(x=m[:, 0], y=m[:, 1], z=m[:, 2], mode="markers", marker=dict(size=5, color="red"),
                                   hoverinfo="skip", showlegend=False))
    finite = v[np.isfinite(v).all(axis=1)]
    ranges, aspect, eye = _frame_camera(finite.min(0), finite.max(0), up)
    axes = {f"{c}axis": dict(visible=False, range=[float(r[0]), float(r[1])], autorange=False) for c, r in zip("xyz", ranges)}
    fig = go.Figure(traces)
    fig.update_layout(template="none", title=title, height=height, margin=dict(l=0, r=0, t=30 if title else 0, b=0), showlegend=False,
                      scene=dict(aspectmode="manual", aspectratio=dict(zip("xyz", map(float, aspect))), **axes,
                                 camera=dict(up=dict(zip("xyz", _UP_VEC[up])), center=dict(x=0, y=0, z=0),
                                             eye=dict(zip("xyz", map(float, eye))),
                                             projection=dict(type="perspective"))))
    return fig
