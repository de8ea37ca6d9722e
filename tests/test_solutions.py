"""Every exercise solution in shapelib.solutions runs, at small sizes, and gives the outcome the
notebook's exercise text announces."""
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


def test_every_solution_is_tested_and_revealable(capsys):
    names = solutions.available()
    assert len(names) >= 11 and all(n.startswith("ex0") for n in names)
    import re
    from pathlib import Path

    text = "".join(f.read_text() for f in Path(__file__).parent.glob("test_solutions*.py"))
    tested = set(re.findall(r"^def test_(ex\d\d_\w+)\(", text, re.M))
    assert set(names) <= tested, f"solutions without a test: {set(names) - tested}"
    assert "def ex01_convergence" in solutions.reveal("ex01_convergence")
    with pytest.raises(KeyError, match="available"):
        solutions.reveal("ex99_nothing")


def test_reveal_in_jupyter_is_a_closed_block():
    """Run All must not show answers: in a kernel, reveal() outputs a closed <details> block (the
    plain-text fallback holds no code either); show=True opens it."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('from shapelib import solutions\nsolutions.reveal("ex01_convergence");'),
        nbformat.v4.new_code_cell('solutions.reveal("ex01_convergence", show=True);'),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    closed, opened = (c.outputs for c in nb.cells)
    assert len(closed) == 1 and closed[0]["output_type"] == "display_data", closed
    html, plain = closed[0]["data"]["text/html"], closed[0]["data"]["text/plain"]
    assert html.startswith("<details") and "<details open" not in html and "ex01_convergence" in html
    assert "def" not in plain and "show=True" in plain, plain
    assert opened[0]["data"]["text/html"].startswith("<details class=\"shapelib-solution\" open")


def test_ex00_variant_ground_truth(humans):
    out = solutions.ex00_variant_ground_truth(humans[0], "decimated")
    assert out["n_vertices"] < out["of"] and out["max_gt_distance_in_edges"] < 1


def test_ex00_geodesic_vs_euclidean(small_human, humans):
    out = solutions.ex00_geodesic_vs_euclidean(small_human)
    assert out["max_ratio"] > 2 and out["geodesic"] > out["euclidean"]


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


@pytest.fixture(scope="module")
def meps_task(humans):
    from shapelib.meps import label_set, prepare

    coll = humans[2]
    ref = coll[0].shape.vertices
    L = label_set(ref, 60, 12)
    train = [coll[i].shape.vertices[L.points] for i in range(3)]
    test = [coll[i].shape.vertices[L.points] for i in (3, 4)]
    P_train = prepare(train, [L.labels] * 3, k=8)
    P_test = prepare(test, [L.labels] * 2, k=8)
    return dict(L=L, ref=ref, coll=coll, train=train, test=test, P_train=P_train, P_test=P_test)


def test_ex03_equal_compute(meps_task):
    t = meps_task
    out = solutions.ex03_equal_compute(t["P_train"], t["P_test"], t["L"].labels, t["L"].n_labels, epochs=2, meta_widths=(8, 16, 16))
    assert out["epochs for equal time"] >= 2 and all(0 <= out[k] <= 100 for k in ("MEPS", "FeaStNet-S, same seconds"))


def test_ex03_shared_gap(meps_task):
    t = meps_task
    out = solutions.ex03_shared_gap(t["P_train"], t["P_test"], t["L"].labels, t["L"].n_labels, epochs=2, meta_widths=(8, 16, 16))
    assert set(out) == {"MEPS", "shared f (§3.3)"}


def test_ex03_exact_labels(meps_task):
    t = meps_task
    out = solutions.ex03_exact_labels([t["coll"][i].shape.vertices for i in range(2)], [t["coll"][3].shape.vertices], t["ref"],
                                      sizes=(30, 60), epochs=2, meta_widths=(8, 16, 16), k=8)
    assert list(out) == [30, 60] and all(0 <= a <= 100 for a in out.values())


def test_ex03_rotations(meps_task):
    from shapelib.meps import PointSignatureNet

    t = meps_task
    out = solutions.ex03_rotations({"FeaStNet-S": PointSignatureNet(t["L"].n_labels, "feast")}, t["test"], t["L"].labels,
                                   degrees=30, k=8)
    assert set(out["FeaStNet-S"]) == {"upright", "rotated 30°"}


def test_ex02_eigenpairs_for_diffusion(small_human):
    u0 = np.exp(-(np.linalg.norm(small_human.vertices - small_human.vertices[0], axis=1) / 0.1) ** 2)
    out = solutions.ex02_eigenpairs_for_diffusion(small_human, u0, times=(1e-2, 1e-1), ks=(8, 64))
    assert out[64][1e-2] < out[8][1e-2], "more eigenpairs, closer to the untruncated flow"
    assert out[64][1e-1] < 0.1


def test_ex04_zoomout_step(small_human):
    import torch

    from shapelib.fmaps import SpectralBasis, p2p_to_fmap
    from shapelib.metrics import GeodesicEvaluator
    from shapelib.operators import compute_operators

    s1 = small_human
    s2 = s1.copy(vertices=s1.vertices + np.random.default_rng(0).normal(0, 2e-3, s1.vertices.shape))
    b1, b2 = (SpectralBasis.from_operators(compute_operators(s, k=40), device="cpu") for s in (s1, s2))
    gt = np.arange(s1.n_vertices)
    noisy = np.where(np.random.default_rng(1).random(len(gt)) < 0.3, np.random.default_rng(2).integers(0, len(gt), len(gt)), gt)
    C0 = p2p_to_fmap(noisy, b1, b2, 10, 10)
    ev = GeodesicEvaluator(s1, gt, n_samples=200)
    out = solutions.ex04_zoomout_step(C0, b1, b2, ev.mean, k_final=30, steps=(10, 5))
    assert out[5]["error"] < ev.mean(noisy) and out[10]["error"] < ev.mean(noisy) and isinstance(C0, torch.Tensor)


def test_ex05_collapsed_pairs():
    x = np.random.default_rng(0).random((200, 3))
    y = x.copy()
    y[1] = y[0] + 1e-6                                  # one pair collapses
    out = solutions.ex05_collapsed_pairs(x, y)
    assert out["collapsed pairs"] == 1 and out["min distance after"] < 1e-5 < out["min distance before"]


def test_ex06_cloud_geodesics():
    import trimesh

    from shapelib import Shape

    ico = trimesh.creation.icosphere(subdivisions=3)
    out = solutions.ex06_cloud_geodesics(Shape(ico.vertices, ico.faces), [0, 5], sizes=(128, 1024))
    assert set(out) == {128, 1024} and all(0 < v < 0.1 for v in out.values()), out
