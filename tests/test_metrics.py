"""shapelib.metrics: known values of the errors and distances every notebook reports."""
import numpy as np
import pytest

from shapelib import Shape
from shapelib.geodesics import exact_pair_distances
from shapelib.metrics import GeodesicEvaluator, accuracy_curve, auc, chamfer_distance, earth_movers_distance


def grid(n=12):
    """A flat unit square, ``n × n`` vertices (geodesic = Euclidean distance)."""
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    v = np.c_[x.ravel(), y.ravel(), np.zeros(n * n)]
    f = []
    for i in range(n - 1):
        for j in range(n - 1):
            a = i * n + j
            f += [[a, a + 1, a + n], [a + 1, a + n + 1, a + n]]
    return Shape(v, np.array(f), name="square")


def test_chamfer_of_a_shifted_set_is_twice_the_squared_shift():
    rng = np.random.default_rng(0)
    A = rng.uniform(size=(50, 3)) * 100                     # spread out: every nearest neighbour is its own shift
    assert chamfer_distance(A, A) == pytest.approx(0.0, abs=1e-12)
    assert chamfer_distance(A, A + [0.01, 0, 0]) == pytest.approx(2 * 0.01 ** 2, rel=1e-4)


def test_emd_is_the_mean_shift_and_symmetric():
    rng = np.random.default_rng(1)
    A = rng.uniform(size=(40, 3)) * 100
    B = rng.permutation(A + [0, 0.02, 0])                   # a shuffled copy, shifted
    assert earth_movers_distance(A, B) == pytest.approx(0.02, rel=1e-6)
    assert earth_movers_distance(B, A) == pytest.approx(earth_movers_distance(A, B))


def test_accuracy_curve_and_auc():
    t, a = accuracy_curve(np.array([0.0, 0.1, 0.2, 0.3]), max_threshold=0.25, n=6)
    np.testing.assert_allclose(t, [0, 0.05, 0.1, 0.15, 0.2, 0.25])
    np.testing.assert_allclose(a, [0.25, 0.25, 0.5, 0.5, 0.75, 0.75])
    assert auc(np.zeros(10)) == pytest.approx(1.0)
    assert auc(np.full(10, 1.0)) == pytest.approx(0.0)


def test_geodesic_errors_of_the_identity_and_of_a_known_shift_on_a_flat_square():
    """On a flat square the geodesic distance is the Euclidean one: the identity map scores 0, and
    mapping every vertex one grid step to the right scores exactly that step (÷ √area = 1) with
    exact geodesics — while the heat method reads short distances low (the bias the papers'
    yardsticks avoid: ~0.8× at one edge)."""
    s = grid()
    n = 12
    gt = np.arange(s.n_vertices)
    ev = GeodesicEvaluator(s, gt, normalize="area")
    assert ev.mean(gt) == pytest.approx(0.0, abs=1e-12)
    col = gt % n
    shifted = np.where(col < n - 1, gt + 1, gt - 1)         # one step along x (back at the last column)
    step = 1 / (n - 1)
    exact = exact_pair_distances(s, gt, shifted)
    np.testing.assert_allclose(exact, step, rtol=1e-6)
    heat = ev.mean(shifted) / 100
    assert 0.6 * step < heat < 0.95 * step, (heat, step)
