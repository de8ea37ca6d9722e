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
    assert fig.layout.scene.aspectmode == "data" and fig.layout.scene.camera.up.y == 1
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
