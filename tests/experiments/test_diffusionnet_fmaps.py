"""DiffusionNet Table 4 with the authors' published weights (shapelib/experiments/diffusionnet_fmaps.py):
the weight-name mapping against stored outputs of the reference code, the reference's fmap solve
and gradient regularisation, the REPORT rows, and a re-evaluation of stored pairs."""
from pathlib import Path

import numpy as np
import pytest
import torch

from shapelib.experiments import diffusionnet_fmaps as T4
from shapelib.fmaps import SpectralBasis, regularized_fmap
from shapelib.shape import Shape

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "diffusionnet_reference" / "reference.npz"
#: the fixture's features were made in float32 by the reference code with its own operators (ARPACK
#: eigenvectors, scipy gradients): shapelib reproduces them to ~1e-3 of their largest entry
FEATURE_TOL = 5e-3


def _weights_or_skip(*names):
    missing = [n for n in names if not (T4.weights_dir() / f"{n}.pth").exists()]
    if missing:
        pytest.skip(f"the authors' weights {missing} are not under {T4.weights_dir()} (set SHAPELIB_DATA)")


def _fixture_shapes():
    f = np.load(FIXTURE)
    A = T4.T4Shape(Shape(f["verts_a"].astype(np.float64), f["faces_a"], name="fixture_a"))
    B = T4.T4Shape(Shape(f["verts_b"].astype(np.float64), f["faces_b"], name="fixture_b"))
    return f, A, B


def test_fixture_is_small_and_documents_its_source():
    assert FIXTURE.stat().st_size < 1_000_000
    f = np.load(FIXTURE)
    assert str(f["commit"]) == "b1019b049597711d10259ce28250f7dfc4335a2b"
    assert "b1019b049597711d10259ce28250f7dfc4335a2b" in (FIXTURE.parent / "make_fixture.py").read_text()


def test_name_mapping_covers_every_weight_and_refuses_unknown_keys():
    """Every parameter of shapelib's DiffusionNet(128, 4 blocks, dropout) is named by the mapping of
    a reference-style state dict, and nothing else; a foreign key is refused by name."""
    from shapelib.diffusion import DiffusionNet

    net = DiffusionNet(16, 128, width=128, n_blocks=4, dropout=True)
    ref = {"feature_extractor.first_lin.weight": 0, "feature_extractor.first_lin.bias": 0,
           "feature_extractor.last_lin.weight": 0, "feature_extractor.last_lin.bias": 0}
    for b in range(4):
        ref[f"feature_extractor.block_{b}.diffusion.diffusion_time"] = 0
        ref[f"feature_extractor.block_{b}.gradient_features.A_re.weight"] = 0
        ref[f"feature_extractor.block_{b}.gradient_features.A_im.weight"] = 0
        for i in range(3):
            for p in ("weight", "bias"):
                ref[f"feature_extractor.block_{b}.mlp.miniMLP_mlp_layer_00{i}.{p}"] = 0
    assert set(T4.reference_state_dict(ref)) == set(net.state_dict())
    with pytest.raises(ValueError, match="block_0.norm.weight"):
        T4.reference_state_dict({"block_0.norm.weight": 0})


def test_authors_weights_through_shapelib_reproduce_the_reference_outputs():
    """faust_xyz and faust_hks through the mapping, on shapelib's operators (gradient eps 1e-5,
    face-mean normals): features within FEATURE_TOL (max |difference| / max |reference|), the same
    eigenvalues and HKS inputs, the 30x30 map within 1e-3 (up to eigenvector signs) and the same
    vertex map."""
    _weights_or_skip("faust_xyz", "faust_hks")
    f, A, B = _fixture_shapes()
    np.testing.assert_allclose(A.basis.evals.numpy(), f["evals_a"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(A.hks.numpy(), f["hks_a"], rtol=1e-4, atol=1e-5)
    for w in ("faust_xyz", "faust_hks"):
        net = T4.load_authors_model(w)
        kind = T4.WEIGHTS[w][0]
        F, G = A.features(net, kind), B.features(net, kind)
        ref = f[f"feat_{w}"]
        err = np.abs(F.numpy() - ref).max() / np.abs(ref).max()
        assert err < FEATURE_TOL, f"{w}: features differ from the reference by {err:.2e} of their scale"
        maps = T4.pair_map(F, G, A, B)
        C, Cr = maps["C"].numpy(), f[f"C_{w}"]
        assert np.linalg.norm(np.abs(C) - np.abs(Cr)) < 1e-3 * np.linalg.norm(Cr) + 1e-3, w
        agree = (maps["fmap"].numpy() == f[f"p2p_{w}"]).mean()
        assert agree >= 0.99, f"{w}: only {agree:.1%} of the vertex map agrees with the reference"


def test_reference_operators_matter():
    """Without the reference's gradient regularisation (eps 1e-5) or with shapelib's area-weighted
    normals, the same weights give visibly different features (> 5x the tolerance met above):
    the settings in T4Shape are needed, not decoration."""
    _weights_or_skip("faust_xyz")
    f = np.load(FIXTURE)
    net = T4.load_authors_model("faust_xyz")
    S = Shape(f["verts_a"].astype(np.float64), f["faces_a"], name="fixture_a")
    ref = f["feat_faust_xyz"]
    from shapelib.operators import compute_operators

    def features(shape, eps):
        ops = compute_operators(shape, k=128, method="cotan", gradient_eps=eps).to_torch()
        with torch.no_grad():
            return net(torch.as_tensor(shape.vertices, dtype=torch.float32), ops).numpy()

    unit = T4.reference_shape(S)
    err = lambda F: np.abs(F - ref).max() / np.abs(ref).max()  # noqa: E731
    assert err(features(unit, 1e-5)) < FEATURE_TOL
    assert err(features(unit, 0.0)) > 5 * FEATURE_TOL
    assert err(features(unit.copy(normals=None), 1e-5)) > 5 * FEATURE_TOL


def test_gradient_eps_damps_the_gradient_and_is_part_of_the_cache_key():
    """On a flat grid the gradient of a linear function is exact without eps, and shrinks by
    eps/(eigenvalue + eps) with it; the two operators do not share a cache entry."""
    from shapelib.operators import compute_operators

    g = np.linspace(0, 1, 9)
    X, Y = np.meshgrid(g, g)
    V = np.c_[X.ravel(), Y.ravel(), np.zeros(X.size)]
    F = []
    for i in range(8):
        for j in range(8):
            a, b, c, d = i * 9 + j, i * 9 + j + 1, (i + 1) * 9 + j, (i + 1) * 9 + j + 1
            F += [[a, b, d], [a, d, c]]
    S = Shape(V, np.array(F), name="grid")
    u = V[:, 0] * 2.0 + V[:, 1]
    exact = compute_operators(S, k=8, method="cotan")
    damped = compute_operators(S, k=8, method="cotan", gradient_eps=1e-2)
    assert damped.params.get("gradient_eps") == 1e-2 and "gradient_eps" not in exact.params
    inner = np.flatnonzero((V[:, 0] > 0) & (V[:, 0] < 1) & (V[:, 1] > 0) & (V[:, 1] < 1))
    ge, gd = np.abs(exact.gradient(u))[inner], np.abs(damped.gradient(u))[inner]
    np.testing.assert_allclose(ge, np.sqrt(5.0), rtol=1e-6)
    assert (gd < ge * 0.99).all() and (gd > ge * 0.5).all()
    with pytest.raises(ValueError, match="gradient_eps"):
        compute_operators(S, k=8, gradient_eps=-1.0)


def test_regularized_fmap_solves_its_energy():
    """The row-wise closed form is the minimiser of ‖CA − B‖² + λ Σ (λ1_j − λ2_i)² C_ij²: the
    gradient of that energy vanishes at it, and λ = 0 gives the least-squares map B A⁺."""
    gen = torch.Generator().manual_seed(0)
    n, k, d = 60, 8, 20
    bases = []
    for s in range(2):
        Q, _ = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
        M = torch.full((n,), 1.0 / n, dtype=torch.float64)
        bases.append(SpectralBasis(Q * np.sqrt(n), torch.sort(torch.rand(k, generator=gen, dtype=torch.float64) * 50)[0], M))
    F1 = torch.randn(n, d, generator=gen, dtype=torch.float64)
    F2 = torch.randn(n, d, generator=gen, dtype=torch.float64)
    lam = 1e-2
    C = regularized_fmap(F1, F2, bases[0], bases[1], k=k, lam=lam).requires_grad_(True)
    A, B = bases[0].project(F1, k), bases[1].project(F2, k)
    D = (bases[0].evals[None, :] - bases[1].evals[:, None]) ** 2
    E = ((C @ A - B) ** 2).sum() + lam * (D * C**2).sum()
    (grad,) = torch.autograd.grad(E, C)
    assert grad.abs().max() < 1e-8 * max(1.0, float(E.detach()))
    C0 = regularized_fmap(F1, F2, bases[0], bases[1], k=k, lam=0.0)
    torch.testing.assert_close(C0, B @ torch.linalg.pinv(A))
    with pytest.raises(ValueError, match="same d"):
        regularized_fmap(F1, F2[:, :3], bases[0], bases[1], k=k)


def _toy_record():
    stats = lambda m: {"mean": m, "median": m - 0.2, "std": 0.5, "n": 190}  # noqa: E731
    return {"protocol": "p", "yardstick": T4.YARDSTICK, "zoomout": T4.ZOOMOUT, "config": T4.CONFIG,
            "summary": {"faust_xyz": {"fmap": {**stats(2.8), "paper": 2.7}, "zoomout": {**stats(2.2), "paper": 1.9}},
                        "scape_hks": {"fmap": {**stats(3.1), "paper": 3.0}, "zoomout": stats(2.0)}}}


def test_failed_pairs_name_the_shape_they_share():
    rec = _toy_record()
    rec["per_pair"] = {"faust_xyz": {"a<-b": {"fmap": 30.0, "zoomout": 29.0}, "a<-c": {"fmap": 20.0, "zoomout": 1.0},
                                     "b<-c": {"fmap": 2.0, "zoomout": 1.5}}}
    f = T4.failed_pairs(rec, "faust_xyz")
    assert f["pairs"] == ["a<-b", "a<-c"] and next(iter(f["shapes"])) == "a" and f["shapes"]["a"] == 2
    assert f["rest_mean"] == 2.0 and f["n_rest"] == 1
    row = next(r for r in T4.report_rows(rec) if "xyz network" in r["quantity"])
    assert "2 pairs above 10 (2 of them with a), the other 1 pairs 2.00" in row["ours"]


def test_report_rows_name_protocol_pairs_paper_and_yardstick():
    rows = T4.report_rows(_toy_record())
    assert len(rows) == 4
    by = {r["quantity"]: r for r in rows}
    xyz = next(r for q, r in by.items() if "FAUST: DiffusionNet-xyz network" in q)
    assert xyz["paper_value"] == 2.7 and xyz["ours_value"] == 2.8 and xyz["n"] == 190
    assert "within 10 % of the paper: yes" in xyz["ours"]
    zo = next(r for q, r in by.items() if "FAUST: DiffusionNet-xyz + ZoomOut" in q)
    assert "within 10 % of the paper: no" in zo["ours"]          # 2.2 vs 1.9: 16 % over
    hks_zo = next(r for q, r in by.items() if "S on F: DiffusionNet-hks + ZoomOut" in q)
    assert hks_zo["paper"] == "not reported" and hks_zo["paper_value"] is None and "within" not in hks_zo["ours"]
    for r in rows:
        assert T4.YARDSTICK in r["protocol"] and r["unit"].startswith("geodesic error x100")
    assert "S on F" in T4.table4_text(_toy_record())


STORED_PAIRS = ["tr_reg_080<-tr_reg_081", "tr_reg_090<-tr_reg_099"]


@pytest.mark.parametrize("weights", ["faust_hks", "faust_xyz"])
def test_stored_pairs_reevaluate_to_the_record(weights):
    """Two stored pairs of the committed Table 4 record, recomputed from the authors' weights
    (xyz with the record's seeded rotations; exact geodesics pair by pair, no cache): the same
    errors (within 2 %, eigen-solver and thread differences)."""
    rec = T4.load_results()
    if rec is None or weights not in rec["per_pair"]:
        pytest.skip(f"no stored Table 4 record with {weights} ({T4.RESULTS_PATH})")
    from shapelib.data import registry

    if not registry.get("faust_r").found():
        pytest.skip("FAUST_r not found (set SHAPELIB_DATA)")
    _weights_or_skip(weights)
    zo = T4.ZOOMOUT if "zoomout" in rec["summary"][weights] else None
    res = T4.evaluate([weights], subset=STORED_PAIRS, zoomout=zo, geodesics="exact_pairs", progress=False)
    for pair in STORED_PAIRS:
        for stage, value in res["per_pair"][weights][pair].items():
            stored = rec["per_pair"][weights][pair][stage]
            assert value == pytest.approx(stored, rel=0.02, abs=0.02), (pair, stage)
