"""Notebook 01's exercise solutions at small sizes (icospheres, synthetic humans): each gives the
outcome its exercise text announces."""
import numpy as np

from shapelib import solutions


def test_ex01_convergence():
    out = solutions.ex01_convergence(subdivisions=(2, 3, 4))
    assert np.all(np.diff(out["max_rel_error"]) < 0) and 1.5 < out["order"] < 2.5, out


def test_ex01_mass_matrices():
    out = solutions.ex01_mass_matrices(subdivision=3)
    # consistent mass: Rayleigh-Ritz upper bounds (too high); lumped mass: biased low here
    assert out["full_mean_signed_error"] > 0 > out["lumped_mean_signed_error"], out


def test_ex01_intrinsic_delaunay(small_human):
    out = solutions.ex01_intrinsic_delaunay(small_human, k=20)
    assert 0 < out["obtuse_fraction"] < 1 and out["median_rel_diff"] < 0.1


def test_ex01_descriptor_times(real_data, monkeypatch):
    """The announced outcome, on the real FAUST pair of the exercise: the small (local) times alone
    are ambiguous, far worse than all 16 or the large times."""
    from shapelib.data import real

    monkeypatch.setenv("SHAPELIB_DATA", str(real_data))
    a, b = real.faust_registrations([0, 1])
    out = solutions.ex01_descriptor_times(a.shape, b.shape, n_query=100)
    assert out["small t only"] > 2 * out["all 16 times"], f"local curvature alone is ambiguous: {out}"
    assert out["small t only"] > 2 * out["large t only"], f"the global times place a point on the body: {out}"


def test_ex01_noise(humans):
    out = solutions.ex01_noise(humans[0], humans[1], n_query=100)
    assert out["HKS clean"] < 0.5 and out["WKS noisy"] > 0 and len(out) == 4


def test_ex01_cloud_density(humans):
    out = solutions.ex01_cloud_density(humans[0], n_points=1000)
    full, sub = out.values()
    assert full < 0.1 and sub < 0.5
