"""The kernel layer: every backend equals the dense soft map (values and gradients), stays
finite at σ = 1e-2, never saves an n² tensor for backward; nearest / k-NN are exact."""
import warnings

import pytest
import torch

from shapelib import kernels
from shapelib.kernels import SoftMap, keops_available, knn, nearest

RTOL = 1e-5


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.fixture(scope="module")
def feats():
    g = torch.Generator().manual_seed(0)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_(True)  # noqa: E731
    return {"src": mk(90, 4), "tgt": mk(70, 4), "X": mk(90, 5), "Y": mk(70, 3)}


def _value_and_grads(backend, feats, sigma, transpose, chunk=None):
    pi = SoftMap(feats["src"], feats["tgt"], sigma, backend=backend, chunk=chunk)
    V = feats["Y"] if transpose else feats["X"]
    out = pi.T @ V if transpose else pi @ V
    # a non-linear scalar so that every gradient path matters
    grads = torch.autograd.grad((out * torch.cos(out)).sum(), (feats["src"], feats["tgt"], V))
    return (out.detach(),) + grads


@pytest.mark.parametrize("transpose", [False, True], ids=["Pi@X", "PiT@Y"])
@pytest.mark.parametrize("backend", ["torch", "sdpa"])
def test_backend_equals_dense_reference(feats, backend, transpose):
    ref = _value_and_grads("dense", feats, 0.4, transpose)
    got = _value_and_grads(backend, feats, 0.4, transpose, chunk=16)  # several chunks
    for name, a, b in zip(("value", "d/dF_src", "d/dF_tgt", "d/dV"), got, ref):
        assert rel(a, b) < RTOL, f"{backend} {name} differs from the dense reference by {rel(a, b):.2e}"


def test_dense_reference_is_the_formula(feats):
    """The reference itself: Π_ij = softmax_j(−‖F_tgt_i − F_src_j‖²/2σ²), rows sum to 1."""
    a, b, s = feats["tgt"].detach(), feats["src"].detach(), 0.4
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    P = torch.exp(-d2 / (2 * s * s))
    P = P / P.sum(1, keepdim=True)
    pi = SoftMap(b, a, s, backend="dense")
    assert rel(pi.dense(), P) < 1e-12
    assert rel(pi @ feats["X"].detach(), P @ feats["X"].detach()) < 1e-12


def test_torch_backend_gradcheck():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(12, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(15, 3, generator=g, dtype=torch.float64, requires_grad=True)
    X = torch.randn(15, 2, generator=g, dtype=torch.float64, requires_grad=True)
    Y = torch.randn(12, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, X: SoftMap(b, a, 0.7, backend="torch", chunk=5) @ X, (a, b, X))
    assert torch.autograd.gradcheck(lambda a, b, Y: SoftMap(b, a, 0.7, backend="torch", chunk=5).T @ Y, (a, b, Y))


@pytest.mark.parametrize("backend", ["torch", "sdpa"])
def test_small_sigma_is_stable(backend):
    """σ = 1e-2 with unit-scale features: a naive exp underflows to 0 for every entry of some
    rows (0/0 = NaN); the stabilised product stays finite in forward and backward, float32."""
    g = torch.Generator().manual_seed(2)
    src = torch.randn(400, 8, generator=g).requires_grad_(True)
    tgt = torch.randn(300, 8, generator=g).requires_grad_(True)
    X = torch.randn(400, 6, generator=g).requires_grad_(True)
    naive = torch.exp(-torch.cdist(tgt, src) ** 2 / (2 * 1e-4))
    assert (naive.sum(1) == 0).any(), "test premise: the naive kernel should underflow"
    out = SoftMap(src, tgt, 1e-2, backend=backend) @ X
    out.square().sum().backward()
    for name, t in (("output", out), ("d/dF_src", src.grad), ("d/dF_tgt", tgt.grad), ("d/dX", X.grad)):
        assert torch.isfinite(t).all(), f"{backend}: {name} not finite at sigma=1e-2"
    # at such a small σ the soft map is the hard nearest-neighbour map
    assert torch.allclose(out, X[nearest(src, tgt)], atol=1e-3)


def test_torch_backend_saves_no_quadratic_tensor():
    """The autograd graph keeps O(n) tensors only (inputs, output, per-row log-sum-exp)."""
    n, p, d = 3000, 16, 8
    src, tgt = torch.randn(n, p, requires_grad=True), torch.randn(n, p, requires_grad=True)
    X = torch.randn(n, d, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                  lambda t: t):
        out = SoftMap(src, tgt, 0.5, backend="torch", chunk=256) @ X
    assert max(saved) < n * max(p, d) * 4 * 2, f"a saved tensor has {max(saved)} bytes"
    assert sum(saved) < 0.05 * n * n * 4, "saved tensors should be far below the dense n² bytes"
    out.sum().backward()
    assert torch.isfinite(src.grad).all()


def test_nearest_and_knn_are_exact():
    g = torch.Generator().manual_seed(3)
    A, B = torch.randn(700, 5, generator=g), torch.randn(500, 5, generator=g)
    D = torch.cdist(A, B)
    assert torch.equal(nearest(B, A, chunk=64), D.argmin(1))
    assert torch.equal(nearest(B, A, backend="kdtree"), D.argmin(1))
    assert torch.equal(knn(A, 3, backend="kdtree")[0], knn(A, 3, backend="torch")[0])
    idx, d2 = knn(A, 6, Y=B, chunk=100)
    ref = D.topk(6, dim=1, largest=False)
    assert torch.equal(idx, ref.indices)
    assert torch.allclose(d2, ref.values ** 2, atol=1e-4)
    # self graph: no point is its own neighbour, neighbours sorted by distance
    idx, d2 = knn(A, 4, chunk=128)
    assert not (idx == torch.arange(len(A))[:, None]).any()
    assert (d2[:, 1:] >= d2[:, :-1] - 1e-6).all()
    DA = torch.cdist(A, A).fill_diagonal_(float("inf"))
    assert torch.equal(idx, DA.topk(4, dim=1, largest=False).indices)
    # the soft map's row argmax is the nearest neighbour
    assert torch.equal(SoftMap(B, A, 0.3).argmax(), D.argmin(1))


def test_clear_errors():
    a, b = torch.randn(10, 3), torch.randn(12, 4)
    with pytest.raises(ValueError, match="same feature space"):
        SoftMap(a, b, 0.1)
    bad = torch.randn(12, 3)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        SoftMap(a, bad, 0.1)
    with pytest.raises(ValueError, match="one row per source point"):
        SoftMap(a, torch.randn(12, 3), 0.1) @ torch.randn(12, 2)
    with pytest.raises(ValueError, match="sigma"):
        SoftMap(a, a, 0.0)
    with pytest.raises(ValueError, match="backend"):
        SoftMap(a, a, 0.1, backend="cuda")
    with pytest.raises(ValueError, match="device"):
        SoftMap(a, torch.randn(5, 3, device="meta"), 0.1)


def test_auto_falls_back_with_one_warning(monkeypatch):
    """When the KeOps probe fails (e.g. the CUDA 13 segfault), 'auto' uses torch and warns once."""
    monkeypatch.setattr(kernels, "keops_available", lambda device="cpu", timeout=0: (False, "probe exited with code -11"))
    monkeypatch.setattr(kernels, "_WARNED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert kernels.resolve_backend("auto", "cuda") == "torch"
        assert kernels.resolve_backend("auto", "cuda") == "torch"
    assert len([w for w in caught if "KeOps" in str(w.message)]) == 1
    with pytest.raises(RuntimeError, match="code -11"):
        kernels.resolve_backend("keops", "cpu")
    assert kernels.resolve_backend("auto", "cpu") == "torch"


@pytest.fixture(scope="module")
def keops_ok():
    ok, reason = keops_available("cpu")
    if not ok:
        pytest.skip(f"KeOps unusable here: {reason}")


def test_keops_equals_dense_reference(keops_ok, feats):
    """Few formulas on purpose: each compiles ~8 s on CPU the first time (cached in .cache/keops)."""
    ref = _value_and_grads("dense", feats, 0.4, False)
    got = _value_and_grads("keops", feats, 0.4, False)
    for name, a, b in zip(("value", "d/dF_src", "d/dF_tgt", "d/dX"), got, ref):
        assert rel(a, b) < RTOL, f"keops {name} differs from the dense reference by {rel(a, b):.2e}"
    piT = SoftMap(feats["src"].detach(), feats["tgt"].detach(), 0.4, backend="keops").T @ feats["Y"].detach()
    assert rel(piT, SoftMap(feats["src"].detach(), feats["tgt"].detach(), 0.4, backend="dense").T @ feats["Y"].detach()) < RTOL
    A, B = feats["tgt"].detach(), feats["src"].detach()
    assert torch.equal(nearest(B, A, backend="keops"), torch.cdist(A, B).argmin(1))


@pytest.mark.parametrize("transpose", [False, True], ids=["Pi@X", "PiT@Y"])
def test_float32_matches_float64_at_small_sigma(transpose):
    """σ = 1e-2 on features of norm ~14 (like a 130-d spectral embedding): the float32 GEMM
    expansion |a|² + |b|² − 2a·b alone would err by ~1e-2 in every logit; the product must match
    the float64 computation from the same float32 inputs (values 1e-5, gradients 3e-4)."""
    g = torch.Generator().manual_seed(4)
    p = 32
    centres = torch.randn(30, p, generator=g, dtype=torch.float64) * 2.5  # |c|² ≈ 200
    src = centres.repeat_interleave(10, 0) + 0.004 * torch.randn(300, p, generator=g, dtype=torch.float64)
    tgt = centres.repeat_interleave(8, 0) + 0.004 * torch.randn(240, p, generator=g, dtype=torch.float64)
    X, Y = torch.randn(300, 5, generator=g, dtype=torch.float64), torch.randn(240, 5, generator=g, dtype=torch.float64)
    f32 = {"src": src.float(), "tgt": tgt.float(), "X": X.float(), "Y": Y.float()}
    f64 = {k: v.double().requires_grad_(True) for k, v in f32.items()}  # the same float32 numbers
    f32 = {k: v.requires_grad_(True) for k, v in f32.items()}
    ref = _value_and_grads("dense", f64, 1e-2, transpose)
    P = SoftMap(f64["src"], f64["tgt"], 1e-2, backend="dense").dense()
    assert 0.05 < float(P.max(1).values.mean()) < 0.9, "test premise: Π is neither uniform nor one-hot"
    got = _value_and_grads("torch", f32, 1e-2, transpose, chunk=100)
    # values ~2e-7; feature gradients ~1e-4 (float32 dS @ F with |F| ~ 14 ≫ the ~0.03 distances that matter)
    for name, a, b, tol in zip(("value", "d/dF_src", "d/dF_tgt", "d/dV"), got, ref, (1e-5, 3e-4, 3e-4, 1e-5)):
        assert rel(a.double(), b) < tol, f"float32 {name} differs from float64 by {rel(a.double(), b):.1e}"


def test_exp_floor_changes_nothing(monkeypatch):
    """The kernel raises shifted logits to EXP_FLOOR before exp (speed): at σ small enough that
    nearly every entry is floored, the product and its gradients equal the unfloored kernel's."""
    from shapelib import kernels
    from shapelib.kernels import SoftMap

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 8, generator=g, dtype=torch.float64), torch.randn(400, 8, generator=g, dtype=torch.float64)
    X = torch.randn(300, 5, generator=g, dtype=torch.float64)     # a function on the source points a
    sigma = 0.05 * float(torch.cdist(b, a).min(1).values.mean())

    def run():
        fa, fb, fx = (t.clone().requires_grad_(True) for t in (a, b, X))
        out = SoftMap(fa, fb, sigma, backend="torch", chunk=64) @ fx
        return (out.detach(),) + torch.autograd.grad((out * out.cos()).sum(), (fa, fb, fx))

    floored = -0.5 * torch.cdist(b, a) ** 2 / sigma**2              # rows: target points b
    floored = floored - floored.max(1, keepdim=True).values
    assert float((floored < kernels.EXP_FLOOR).double().mean()) > 0.9, "test premise: most entries are floored"
    with_floor = run()
    monkeypatch.setattr(kernels, "EXP_FLOOR", None)
    without = run()
    for name, x, y in zip(("Π @ X", "d/d F_src", "d/d F_tgt", "d/d X"), with_floor, without):
        # entries made only of floored weights (a source point no target is near) differ by ~1e-31
        # in absolute terms: negligible against the result's scale, which is what matters
        assert rel(x, y) <= 1e-12, name


def test_flush_denormals_sets_and_restores_the_threads_mode():
    """``flush_denormals`` turns flushing on for its block and back off after (also after an
    error); when it was already on, it leaves it on."""
    assert not kernels.flushing_denormals(), "test premise: torch's default keeps denormals"
    tiny = torch.tensor([1e-39], dtype=torch.float32)
    with kernels.flush_denormals():
        assert kernels.flushing_denormals() and float(tiny * 1.0) == 0.0
    assert not kernels.flushing_denormals() and float(tiny * 1.0) > 0.0
    with pytest.raises(RuntimeError), kernels.flush_denormals():
        raise RuntimeError("inside")
    assert not kernels.flushing_denormals()
    with kernels.flush_denormals(enabled=False):
        assert not kernels.flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        with kernels.flush_denormals():
            pass
        assert kernels.flushing_denormals(), "a mode that was on stays on"
    finally:
        torch.set_flush_denormal(False)


def test_soft_map_flushes_denormals_on_cpu_and_changes_nothing(monkeypatch):
    """The CPU kernel runs forward and backward with denormals flushed (speed: its gradient products
    of entries near exp(EXP_FLOOR) and small gradients fall below float32's smallest normal) and
    restores the mode after; the product and its gradients equal the unflushed kernel's."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 8, generator=g), torch.randn(400, 8, generator=g)
    X = torch.randn(300, 5, generator=g)
    sigma = 0.3 * float(torch.cdist(b, a).min(1).values.mean())
    seen = []
    for part in ("_forward", "_backward"):
        fn = getattr(kernels._SoftMapProduct, part)
        monkeypatch.setattr(kernels._SoftMapProduct, part,
                            staticmethod(lambda *args, fn=fn, part=part: seen.append((part, kernels.flushing_denormals()))
                                         or fn(*args)))

    def run():
        fa, fb, fx = (t.clone().requires_grad_(True) for t in (a, b, X))
        out = SoftMap(fa, fb, sigma, backend="torch", chunk=64) @ fx
        return (out.detach(),) + torch.autograd.grad((out * 1e-30).sum(), (fa, fb, fx))   # tiny gradients

    flushed = run()
    assert seen == [("_forward", True), ("_backward", True)] and not kernels.flushing_denormals()
    monkeypatch.setattr(kernels, "FLUSH_DENORMALS", False)
    seen.clear()
    kept = run()
    assert seen == [("_forward", False), ("_backward", False)]
    for name, x, y in zip(("Π @ X", "d/d F_src", "d/d F_tgt", "d/d X"), flushed, kept):
        assert rel(x.double(), y.double()) <= 1e-5, name
