"""Notebook 00's exercise solutions at small sizes (synthetic humans): each gives the outcome its
exercise text announces."""
from shapelib import solutions


def test_ex00_variant_ground_truth(humans):
    out = solutions.ex00_variant_ground_truth(humans[0], "decimated")
    assert out["n_vertices"] < out["of"] and out["max_gt_distance_in_edges"] < 1


def test_ex00_geodesic_vs_euclidean(small_human, humans):
    out = solutions.ex00_geodesic_vs_euclidean(small_human)
    assert out["max_ratio"] > 2 and out["geodesic"] > out["euclidean"]
