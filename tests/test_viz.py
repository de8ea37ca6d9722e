"""Static renders (shared colour scale, colour bar, legend, edges, nothing cropped) and the
interactive plotly view."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import trimesh  # noqa: E402
from mpl_toolkits.mplot3d import proj3d  # noqa: E402

from shapelib import Shape, viz  # noqa: E402


@pytest.fixture(scope="module")
def tall():
    """A tall thin capsule (a standing figure's proportions: 1.8 high, 0.35 wide)."""
    m = trimesh.creation.capsule(height=1.45, radius=0.175, count=[16, 16])
    return Shape(m.vertices[:, [0, 2, 1]], m.faces, name="tall")  # capsule axis z -> y (up)


def _panel_vertex_colors(ax):
    return ax.collections[0].get_facecolor()


def test_panels_share_one_colour_scale_with_a_colour_bar(tall):
    y = tall.vertices[:, 1]
    fig = viz.plot_shapes([tall, tall], [y, 10 * y], cmap="viridis", shade=False)
    axes3d = [a for a in fig.axes if a.name == "3d"]
    assert len(fig.axes) == 3, "two panels and one colour bar"
    # the same face has a different colour when its value is 10x larger: one scale, not two
    assert not np.allclose(_panel_vertex_colors(axes3d[0]), _panel_vertex_colors(axes3d[1]))
    cbar = [a for a in fig.axes if a.name != "3d"][0]
    lo, hi = cbar.get_ylim()
    assert lo == pytest.approx(min(y.min(), 10 * y.min())) and hi == pytest.approx(10 * y.max())
    plt.close(fig)
    # per-panel normalisation (share=False) would make both panels identical
    fig = viz.plot_shapes([tall, tall], [y, 10 * y], cmap="viridis", shade=False, share=False)
    a0, a1 = fig.axes[:2]
    assert np.allclose(_panel_vertex_colors(a0), _panel_vertex_colors(a1))
    plt.close(fig)


def test_diverging_and_log_scales(tall):
    y = tall.vertices[:, 1] - 0.2
    fig = viz.plot_shapes([tall], [y], cmap="RdBu")
    lo, hi = fig.axes[-1].get_ylim()
    assert lo == pytest.approx(-hi), "a diverging map is centred on 0"
    plt.close(fig)
    heat = np.exp(-50 * (tall.vertices[:, 1] - tall.vertices[:, 1].max()) ** 2)
    fig = viz.plot_shapes([tall], [heat], cmap="magma", norm="log")
    assert isinstance(fig.axes[0].collections[0], matplotlib.collections.Collection)
    plt.close(fig)


@pytest.mark.parametrize("view", [(12, -30), (15, -60), (60, 30), (0, 0)])
def test_whole_shape_in_view(tall, view):
    """Every vertex projects inside its axes (the old zoom of 1.25 cut heads and feet off)."""
    fig = plt.figure(figsize=(3, 3))
    ax = fig.add_subplot(projection="3d")
    viz.plot_shape(tall, None, ax=ax, view=view)
    fig.canvas.draw()
    v = tall.vertices[:, [2, 0, 1]]  # y-up -> matplotlib z, as plot_shape draws it
    x, y, _ = proj3d.proj_transform(v[:, 0], v[:, 1], v[:, 2], ax.get_proj())
    d = ax.transData.transform(np.c_[x, y])
    bb = ax.bbox
    assert d[:, 0].min() >= bb.x0 and d[:, 0].max() <= bb.x1, "shape cut off left/right"
    assert d[:, 1].min() >= bb.y0 and d[:, 1].max() <= bb.y1, "shape cut off top/bottom"
    plt.close(fig)


def test_part_legend_and_edges(tall):
    parts = (tall.vertices[:, 1] > 0).astype(int)
    fig = viz.plot_shapes([tall], [parts], cmap="tab10", vmin=0, vmax=9, legend=("legs", "head"), edges=True)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["legs", "head"]
    assert len([a for a in fig.axes if a.name != "3d"]) == 0, "labels get a legend, not a colour bar"
    assert fig.axes[0].collections[0].get_linewidth()[0] > 0, "edges=True draws the mesh edges"
    plt.close(fig)


def test_point_cloud_marker_size_follows_density(tall):
    for n, size in ((300, 10.0), (30_000, 1.0)):
        ax = viz.plot_shape(Shape(np.random.default_rng(0).normal(size=(n, 3))), None)
        assert ax.collections[0].get_sizes()[0] == pytest.approx(size)
        plt.close(ax.figure)


def test_interactive_plotly_mesh_and_cloud(tall):
    go = pytest.importorskip("plotly.graph_objects")
    fig = viz.interactive(tall, tall.vertices[:, 1], colorbar_title="height")
    mesh = fig.data[0]
    assert isinstance(mesh, go.Mesh3d) and len(mesh.i) == len(tall.faces)
    assert np.asarray(mesh.intensity).dtype == np.float32 and mesh.colorbar.title.text == "height"
    assert fig.layout.scene.aspectmode == "manual" and fig.layout.scene.camera.up.y == 1
    # compact: float32 vertices, uint16 faces, stored as binary in the figure JSON
    size = len(fig.to_json())
    raw = tall.n_vertices * 4 * 4 + len(tall.faces) * 3 * 2
    assert size < 4 / 3 * raw + 3000, f"figure JSON {size} B for {raw} B of arrays"
    cloud = viz.interactive(Shape(tall.vertices[:50]), viz.correspondence_colors(Shape(tall.vertices[:50])), mark=[0, 1])
    assert isinstance(cloud.data[0], go.Scatter3d) and len(cloud.data) == 2
    assert json.loads(cloud.to_json())["data"][1]["marker"]["color"] == "red"
    with pytest.raises(ValueError, match="values must be"):
        viz.interactive(tall, np.zeros(3))


def test_focus_draws_a_close_up(tall):
    top = tall.vertices[tall.vertices[:, 1].argmax()]
    ax = viz.plot_shape(tall, tall.vertices[:, 1], focus=(top, 0.3), edges=True, mark=[int(tall.vertices[:, 1].argmax())])
    drawn = len(ax.collections[0].get_facecolor())
    assert 0 < drawn < len(tall.faces) and len(ax.collections) == 2, "only the faces near the top, and the mark"
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="focus"):
        viz.plot_shape(tall, None, focus=(top + 10, 0.1))


def test_interactive_meshplot_backend_is_optional(tall):
    pytest.importorskip("plotly")
    try:
        import meshplot  # noqa: F401
    except ImportError:
        from shapelib.errors import MissingDependencyError

        with pytest.raises(MissingDependencyError, match="conda install -c conda-forge meshplot"):
            viz.interactive(tall, backend="meshplot")
    with pytest.raises(ValueError, match="backend"):
        viz.interactive(tall, backend="k3d")


def _plotly_ndc(fig, points, viewport_aspect):
    """Where ``points`` (data coordinates) land in a plotly 3-D view, in normalised device
    coordinates (the view is [-1, 1]²), following plotly.js: the axis ranges map onto the scene box
    [-a/2, a/2] (a = scene.aspectratio), then lookAt(eye, center, up) and a perspective projection
    with a vertical field of view of pi/4 (gl-plot3d's default, which plotly keeps)."""
    sc = fig.layout.scene
    rng = np.array([sc.xaxis.range, sc.yaxis.range, sc.zaxis.range], dtype=float)
    a = np.array([sc.aspectratio.x, sc.aspectratio.y, sc.aspectratio.z])
    p = (points - rng.mean(1)) / (rng[:, 1] - rng[:, 0]) * a
    cam = sc.camera
    eye = np.array([cam.eye.x, cam.eye.y, cam.eye.z])
    center = np.array([cam.center.x, cam.center.y, cam.center.z])
    up = np.array([cam.up.x, cam.up.y, cam.up.z])
    f = (center - eye) / np.linalg.norm(center - eye)
    r = np.cross(f, up)
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    rel = p - eye
    depth = rel @ f
    assert (depth > 0).all(), "part of the shape is behind the camera"
    t = np.tan(np.pi / 8)
    return np.c_[(rel @ r) / (depth * t * viewport_aspect), (rel @ u) / (depth * t)]


def _box_corners(v):
    lo, hi = v.min(0), v.max(0)
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


@pytest.mark.parametrize("kind", ["tall", "wide", "flat", "deep", "cloud", "z-up"])
@pytest.mark.parametrize("viewport_aspect", [1.0, 1.6, 2.6])
def test_interactive_camera_frames_the_whole_shape(tall, kind, viewport_aspect):
    """The projected bounding box lies inside the view for tall, wide, flat and deep shapes at
    every viewport from square to JupyterLab's wide cells, and fills most of a square view (the
    old aspectmode='data' + fixed eye cut a standing body's head and feet off)."""
    pytest.importorskip("plotly")
    rng = np.random.default_rng(0)
    up = "y"
    if kind == "tall":
        shape = tall
    elif kind == "wide":  # a bench: 2.0 long, 0.3 high, 0.4 deep
        shape = Shape(trimesh.creation.box(extents=[2.0, 0.3, 0.4]).vertices + [5.0, 1.0, -2.0], trimesh.creation.box().faces)
    elif kind == "flat":  # a thin plate lying on the floor
        m = trimesh.creation.box(extents=[1.0, 0.01, 0.7])
        shape = Shape(m.vertices, m.faces)
    elif kind == "deep":  # long along the viewing axis
        m = trimesh.creation.box(extents=[0.2, 0.3, 3.0])
        shape = Shape(m.vertices, m.faces)
    elif kind == "cloud":
        shape = Shape(rng.normal(size=(500, 3)) * [0.2, 1.0, 0.1])
    else:  # a z-up tall figure
        shape, up = Shape(tall.vertices[:, [0, 2, 1]], tall.faces), "z"
    fig = viz.interactive(shape, shape.vertices[:, 0], up=up, mark=[0])
    ndc = _plotly_ndc(fig, _box_corners(shape.vertices), viewport_aspect)
    assert np.abs(ndc).max() <= 1.0, f"{kind}: bounding box projects outside the view: {np.abs(ndc).max(0)}"
    if viewport_aspect == 1.0:  # the camera is fitted for a square view; wider views add room at the sides
        assert np.abs(ndc).max() > 0.7, f"{kind}: the shape fills too little of the view ({np.abs(ndc).max():.2f})"


def test_colour_scales_per_panel_and_by_percentile(tall):
    """One panel's peaks must not wash out the others: per-panel scales (stated in the titles) or
    a shared scale clipped at a percentile (stated on the colour bar)."""
    y = tall.vertices[:, 1]
    spiky = y.copy()
    spiky[np.argmax(y)] = 100.0  # one extreme vertex
    fig = viz.plot_shapes([tall, tall], [y, spiky], cmap="RdBu", share=False)
    titles = [a.get_title() for a in fig.axes if a.name == "3d"]
    assert all("own scale" in t for t in titles) and "±1e+02" in titles[1], titles
    assert len([a for a in fig.axes if a.name != "3d"]) == 0, "no shared colour bar for per-panel scales"
    plt.close(fig)
    fig = viz.plot_shapes([tall, tall], [y, spiky], cmap="RdBu", percentile=99, colorbar_label="h")
    cbar = [a for a in fig.axes if a.name != "3d"][0]
    lo, hi = cbar.get_ylim()
    assert hi < 2 and lo == pytest.approx(-hi), "the 99th percentile ignores the single extreme vertex"
    assert "99th percentile" in cbar.get_ylabel() and cbar.get_ylabel().startswith("h")
    plt.close(fig)
    go_fig = viz.interactive(tall, spiky, cmap="RdBu", percentile=99, colorbar_title="h")
    mesh = go_fig.data[0]
    assert mesh.cmax < 2 and mesh.cmin == pytest.approx(-mesh.cmax) and "99th percentile" in mesh.colorbar.title.text
    plain = viz.interactive(tall, y, cmap="Viridis")
    assert plain.data[0].cmin == pytest.approx(y.min()) and plain.data[0].cmax == pytest.approx(y.max())
    with pytest.raises(ValueError, match="percentile"):
        viz.interactive(tall, y, percentile=20)
