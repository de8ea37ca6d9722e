"""Notebook 01's exercise solutions at small sizes (icospheres, synthetic humans): each gives the
outcome its exercise text announces."""
import numpy as np
import pytest

from shapelib import data, solutions
from shapelib.data.synthetic import variants


@pytest.fixture(scope="module")
def humans():
    coll = data.humans(source="synthetic")
    return coll[0].shape, coll[1].shape, coll


@pytest.fixture(scope="module")
def small_human(humans):
    return variants.make_variant(humans[0], "decimated", seed=0).shape


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


def test_ex01_descriptor_times(humans):
    out = solutions.ex01_descriptor_times(humans[0], humans[1], n_query=100)
    assert set(out) >= {"all 16 times", "small t only", "large t only"}
    assert all(0 <= v < 1 for v in out.values())


def test_ex01_noise(humans):
    out = solutions.ex01_noise(humans[0], humans[1], n_query=100)
    assert out["HKS clean"] < 0.5 and out["WKS noisy"] > 0 and len(out) == 4


def test_ex01_cloud_density(humans):
    out = solutions.ex01_cloud_density(humans[0], n_points=1000)
    full, sub = out.values()
    assert full < 0.1 and sub < 0.5
