"""Each paper's own yardstick (issue #31), against hand-computed numbers.

* Magnet & Ovsjanikov (fmaps): every ``.vts`` row counts, repeats included; ÷ sqrt(area) × 100;
  then the plain mean over pairs.
* DiffusionNet Table 5: errors on the template ÷ the max of its all-pairs matrix, pooled over
  all test shapes of a kind before the mean.
* DiffusionNet Table 7: a face's prediction from its vertices' mean outputs; correct faces ÷ all
  faces of all test shapes.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shapelib import Shape, metrics
from shapelib.metrics import GeodesicEvaluator

SQ2 = np.sqrt(2.0)


@pytest.fixture(scope="module")
def square():
    """Unit square, corners 0:(0,0) 1:(1,0) 2:(1,1) 3:(0,1); area 1; flat and convex, so the
    exact geodesic is the straight line."""
    V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
    return Shape(V, np.array([[0, 1, 2], [0, 2, 3]]), name="square")


# ----------------------------------------------------------------------------- fmaps (Magnet & Ovsjanikov)

VTS1 = np.array([0, 1, 1, 2, 3])  # shape-1 vertex of each .vts row; rows 1 and 2 repeat vertex 1
VTS2 = np.array([0, 1, 1, 2, 3])
PRED = np.array([0, 3, 2, 3])  # vertex 1 of shape 2 is sent to 3 (error sqrt 2), the rest is right


def test_fmaps_counts_every_vts_row_repeats_included(square):
    # by hand: rows (0→0) 0, (1→3) √2, (1→3) √2, (2→2) 0, (3→3) 0 → mean 2√2/5, ÷ sqrt(area) = 1
    hand = 100 * 2 * SQ2 / 5
    assert metrics.fmaps_pair_error(square, PRED, VTS1, VTS2) == pytest.approx(hand, rel=1e-6)
    np.testing.assert_allclose(metrics.fmaps_row_errors(square, PRED, VTS1, VTS2), [0, SQ2, SQ2, 0, 0], atol=1e-12)
    for how in ("exact_pairs", np.linalg.norm(square.vertices[:, None] - square.vertices[None], axis=-1)):
        assert metrics.fmaps_pair_error(square, PRED, VTS1, VTS2, geodesics=how) == pytest.approx(hand, rel=1e-6)
    # shapelib's protocol scores each vertex of shape 2 once: √2/4 — not the paper's number
    once = GeodesicEvaluator(square, np.array([0, 1, 2, 3]), normalize="area", geodesics="sources")
    assert 100 * SQ2 / 4 == pytest.approx(100 * np.mean(np.linalg.norm(
        square.vertices[[0, 1, 2, 3]] - square.vertices[PRED], axis=1)))
    assert abs(once.mean(PRED) - hand) > 10


def test_fmaps_normalisation_and_explicit_heat(square):
    big = square.scaled(3.0)  # distances ×3, sqrt(area) ×3: the number does not move
    assert metrics.fmaps_pair_error(big, PRED, VTS1, VTS2) == pytest.approx(100 * 2 * SQ2 / 5, rel=1e-6)
    assert metrics.fmaps_pair_error(square, PRED, VTS1, VTS2, sqrt_area=2.0) == pytest.approx(100 * SQ2 / 5)
    heat = metrics.fmaps_pair_error(square, PRED, VTS1, VTS2, geodesics="heat")  # only when asked for
    assert np.isfinite(heat) and heat != pytest.approx(100 * 2 * SQ2 / 5, abs=1e-6)
    calls = []
    f = lambda a, b: calls.append((a.copy(), b.copy())) or np.ones(len(a))  # noqa: E731
    assert metrics.fmaps_pair_error(square, PRED, VTS1, VTS2, geodesics=f) == pytest.approx(100.0)
    np.testing.assert_array_equal(calls[0][0], VTS1)
    np.testing.assert_array_equal(calls[0][1], PRED[VTS2])


def test_fmaps_dataset_mean_weighs_pairs_equally():
    assert metrics.fmaps_dataset_error([2.0, 4.0, 9.0]) == pytest.approx(5.0)
    pairs = metrics.fmaps_test_pairs([f"tr_reg_{i:03d}" for i in range(80, 100)])
    assert len(pairs) == 190 and pairs[0] == ("tr_reg_080", "tr_reg_081") and pairs[-1] == ("tr_reg_098", "tr_reg_099")
    with pytest.raises(ValueError):
        metrics.fmaps_dataset_error([])


def test_fmaps_rejects_bad_rows(square):
    with pytest.raises(ValueError, match="pair up"):
        metrics.fmaps_pair_error(square, PRED, VTS1, VTS2[:-1])
    with pytest.raises(IndexError, match="0-based"):
        metrics.fmaps_pair_error(square, PRED, VTS1 + 1, VTS2)
    with pytest.raises(IndexError):
        metrics.fmaps_pair_error(square, PRED + 1, VTS1, VTS2)
    with pytest.raises(ValueError, match="geodesics"):
        metrics.fmaps_pair_error(square, PRED, VTS1, VTS2, geodesics="dijkstra")


def test_fmaps_exact_rows_are_cached_per_shape(square, monkeypatch, tmp_path):
    from shapelib import geodesics

    monkeypatch.setenv("SHAPELIB_CACHE", str(tmp_path))
    sq = square.copy()
    for radius in (None, 0.25):  # whole rows; rows cut at 0.25 sqrt(area) (the default)
        metrics.fmaps_pair_error(sq, PRED, VTS1, VTS2, exact_radius=radius)
    expected = 2 if geodesics.exact_backend() == "gdist" else 1  # libigl cannot cut rows: whole rows only
    assert len(list((tmp_path / "geodesic_exact").glob("*.npz"))) == expected
    monkeypatch.setattr(geodesics, "exact_geodesic_distances", lambda *a, **k: pytest.fail("recomputed"))
    other = np.array([1, 1, 2, 3])  # another map of a pair with the same shape 1: rows from disk
    assert metrics.fmaps_pair_error(sq.copy(), other, VTS1, VTS2, exact_radius=None) == pytest.approx(100 / 5)
    assert metrics.fmaps_pair_error(sq.copy(), other, VTS1, VTS2) == pytest.approx(100 / 5)


def test_fmaps_truncated_rows_plus_far_pairs_equal_whole_rows(monkeypatch, tmp_path):
    """``exact_radius``: rows cut at a radius, the pairs beyond solved one by one — the same numbers."""
    pytest.importorskip("gdist")
    from test_geodesics import tube

    monkeypatch.setenv("SHAPELIB_CACHE", str(tmp_path))
    sh = tube(12, 9, 1.0, 2.0)
    rng = np.random.default_rng(1)
    vts = rng.integers(sh.n_vertices, size=80)
    vts[:10] = vts[10:20]  # repeated rows
    pred = rng.integers(sh.n_vertices, size=sh.n_vertices)
    pred[: sh.n_vertices // 2] = np.arange(sh.n_vertices // 2)  # half right, half random (far)
    whole = metrics.fmaps_row_errors(sh, pred, vts, vts, exact_radius=None)
    cut = metrics.fmaps_row_errors(sh, pred, vts, vts, exact_radius=0.05)
    np.testing.assert_allclose(cut, whole, rtol=1e-6, atol=1e-7)
    assert (whole * np.sqrt(sh.area()) > 0.05 * np.sqrt(sh.area())).sum() > 20  # many pairs were beyond


def test_fmaps_far_rows_are_solved_once_and_reused_by_later_maps(monkeypatch, tmp_path):
    """A row needed beyond the radius is solved whole once and kept on the shape: a second map with
    the same shape 1 needs no new solve for those sources, and both maps score as whole rows do."""
    pytest.importorskip("gdist")
    from shapelib import geodesics
    from test_geodesics import tube

    monkeypatch.setenv("SHAPELIB_CACHE", str(tmp_path))
    sh = tube(12, 9, 1.0, 2.0)
    rng = np.random.default_rng(2)
    vts = rng.integers(sh.n_vertices, size=60)
    maps = [rng.integers(sh.n_vertices, size=sh.n_vertices) for _ in range(2)]
    maps[1][::2] = maps[0][::2]          # the second map shares half the far images of the first
    whole = [metrics.fmaps_row_errors(sh, m, vts, vts, exact_radius=None) for m in maps]
    solved = []
    real_solver = geodesics.exact_geodesic_distances
    monkeypatch.setattr(metrics, "exact_geodesic_distances",
                        lambda shape, sources, **kw: solved.append(len(sources)) or real_solver(shape, sources, **kw))
    fresh = tube(12, 9, 1.0, 2.0)        # no rows kept on it yet
    cut = [metrics.fmaps_row_errors(fresh, m, vts, vts, exact_radius=0.05) for m in maps]
    for c, w in zip(cut, whole):
        np.testing.assert_allclose(c, w, rtol=1e-6, atol=1e-7)
    kept = fresh._cache["exact_whole_rows"]
    assert solved and sum(solved) == len(kept) <= len(np.unique(vts)), "each far source is solved at most once"


# ----------------------------------------------------------------------------- DiffusionNet Table 5

D3 = np.array([[0.0, 1.0, 2.0],
               [1.0, 0.0, 1.5],
               [2.0, 1.5, 0.0]])  # a 3-vertex "template": max 2


def test_table5_pools_all_vertices_of_a_kind():
    a = ("iso", [0, 1, 2], [0, 2, 2])  # errors 0, 1.5, 0   (÷ 2 → 0, .75, 0)
    b = ("iso", [1], [0])              # error 1            (÷ 2 → .5)
    c = ("mc", [2, 2], [0, 2])         # errors 2, 0        (÷ 2 → 1, 0)
    np.testing.assert_allclose(metrics.table5_errors(D3, *a[1:]), [0, 0.75, 0])
    scores = metrics.table5_scores(D3, [a, b, c])
    # pooled: (0 + .75 + 0 + .5) / 4 — not the mean of the two shapes' means, (.25 + .5) / 2
    assert scores["iso"] == pytest.approx(100 * 1.25 / 4)
    assert scores["iso"] != pytest.approx(100 * (0.25 + 0.5) / 2)
    assert scores["mc"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="one entry per test vertex"):
        metrics.table5_errors(D3, [0, 1], [0])
    with pytest.raises(IndexError):
        metrics.table5_errors(D3, [3], [0])
    # the caller's maximum, read once, gives the same errors; a bad one is refused
    np.testing.assert_allclose(metrics.table5_errors(D3, *a[1:], diameter=2.0), [0, 0.75, 0])
    with pytest.raises(ValueError, match="maximum"):
        metrics.table5_errors(D3, *a[1:], diameter=0.0)


def test_table5_matrix_is_exact_symmetric_and_filled(monkeypatch, tmp_path):
    from test_geodesics import tube, tube_distance

    monkeypatch.setenv("SHAPELIB_CACHE", str(tmp_path))
    sh = tube(8, 4, 1.0, 1.0)
    D = metrics.table5_geodesic_matrix(sh)
    ref = np.array([[tube_distance(8, 4, 1.0, 1.0, i, j) for j in range(sh.n_vertices)] for i in range(sh.n_vertices)])
    np.testing.assert_allclose(D, ref, atol=1e-6)
    # a template in two pieces: unreachable entries take the largest finite value (geometry.py l. 877–879)
    V = np.r_[sh.vertices, sh.vertices + [9.0, 0, 0]]
    two = Shape(V, np.r_[sh.faces, sh.faces + sh.n_vertices])
    D2 = metrics.table5_geodesic_matrix(two)
    assert np.isfinite(D2).all() and D2[0, sh.n_vertices] == pytest.approx(D.max(), rel=1e-6)


def test_zero_error_accuracy():
    assert metrics.zero_error_accuracy([0, 1, 2, 5], [0, 1, 3, 4]) == 0.5
    with pytest.raises(ValueError):
        metrics.zero_error_accuracy([0, 1], [0])


# ----------------------------------------------------------------------------- real data


def test_fmaps_ground_truth_map_on_a_real_pair(real_data):
    """On FAUST_r the ground-truth map built from the .vts rows (first row wins on a repeated vertex
    of shape 2) is NOT error-free under the authors' averaging: rows that repeat a vertex of shape 2
    with another vertex of shape 1 keep a small error. Exact geodesics, only on those rows."""
    from shapelib.data import real

    items = {it.name: it for it in real.r_dataset("faust_r", names=["tr_reg_080", "tr_reg_081"])}
    pair = real.r_pair(items["tr_reg_080"], items["tr_reg_081"])
    vts1, vts2 = items["tr_reg_080"].meta["corres"], items["tr_reg_081"].meta["corres"]
    assert len(vts1) == len(vts2) == 5000
    from shapelib.geodesics import exact_backend

    if exact_backend() == "igl":  # ~10x slower per solve than gdist: score a quarter of the rows
        vts1, vts2 = vts1[:1250], vts2[:1250]
    err = metrics.fmaps_row_errors(pair.shape1, pair.p2p_21, vts1, vts2, geodesics="exact_pairs")
    wrong = pair.p2p_21[vts2] != vts1
    assert (err[~wrong] == 0).all() and (err[wrong] > 0).all()
    assert 0 < 100 * err.mean() < 1.0


# ---- DiffusionNet Table 7: per face, pooled over the test shapes (human_segmentation_original.py)
class _FixedLogits(torch.nn.Module):
    """A 'network' that returns the logits stored in the item's x."""

    def forward(self, x, ops=None):
        return x


def _seg_item(vertices, faces, logits, y):
    return {"shape": Shape(np.asarray(vertices, float), np.asarray(faces)), "x": torch.tensor(logits, dtype=torch.float32),
            "ops": None, "y": torch.tensor(y)}


def test_face_labels_majority_of_vertices():
    from shapelib.train import face_labels

    F = np.array([[0, 1, 2], [1, 2, 3], [0, 2, 3], [0, 1, 3]])
    y = np.array([0, 0, 1, 2])
    assert face_labels(F, y).tolist() == [0, -1, -1, 0]
    assert face_labels([[0, 1, 2]], [5, 3, 3]).tolist() == [3]
    with pytest.raises(ValueError, match="triangles"):
        face_labels(np.array([0, 1, 2]), y)


def test_face_prediction_averages_vertex_outputs():
    from shapelib.train import predict_face_labels, predict_labels

    # vertices 0 and 1 lean weakly to class 0, vertex 2 strongly to class 1: the face mean picks 1
    it = _seg_item(np.eye(3), [[0, 1, 2]], [[1.0, 0.9], [1.0, 0.9], [0.0, 5.0]], [0, 0, 0])
    net = _FixedLogits()
    assert predict_labels(net, it).tolist() == [0, 0, 1]
    assert predict_face_labels(net, it).tolist() == [1]


def test_face_accuracy_pools_faces_over_shapes():
    from shapelib.train import face_accuracy, predict_face_labels

    V = np.random.default_rng(0).standard_normal((4, 3))
    one_face = _seg_item(V, [[0, 1, 2]], np.eye(2)[[0, 0, 0, 0]], [0, 0, 0, 0])               # 1 of 1 face right
    three = _seg_item(V, [[0, 1, 2], [1, 2, 3], [0, 1, 3]], np.eye(2)[[0, 0, 1, 1]], [0, 0, 0, 0])
    # faces of `three`: means (2/3, 1/3) -> 0 right; (1/3, 2/3) -> 1 wrong; (2/3, 1/3) -> 0 right
    net = _FixedLogits()
    assert face_accuracy(net, [three]) == pytest.approx(2 / 3)
    # pooled over shapes: 3 right of 4 faces (the mean over shapes would be (1 + 2/3) / 2)
    assert face_accuracy(net, [one_face, three]) == pytest.approx(3 / 4)
    three["y_faces"] = np.array([0, 1, -1])                                                  # labels given per face
    assert face_accuracy(net, [three]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no faces"):
        predict_face_labels(net, {**three, "shape": Shape(V)})
