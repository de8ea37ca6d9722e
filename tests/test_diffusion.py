"""DiffusionNet layers: diffusion limits, implicit == spectral, invariances, gradcheck, training."""
import numpy as np
import pytest
import torch

from shapelib import Shape
from shapelib.diffusion import (
    DiffusionNet,
    DiffusionNetBlock,
    LearnedTimeDiffusion,
    SpatialGradientFeatures,
    diffuse,
    input_features,
    random_rotation,
)
from shapelib.operators import Operators, compute_operators, gradient_operator, neighbor_pairs


@pytest.fixture(scope="module")
def bumpy():
    """A small asymmetric closed mesh (642 v): an icosphere with smooth bumps."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3)
    v = m.vertices * (1 + 0.15 * np.sin(3 * m.vertices[:, :1]) + 0.1 * m.vertices[:, 1:2] ** 2)
    return Shape(v * [1.0, 0.8, 1.2], m.faces, name="bumpy")


@pytest.fixture(scope="module")
def bumpy_ops(bumpy):
    return compute_operators(bumpy, k=64, cache=False)


def t64(ops: Operators):
    return ops.to_torch(dtype=torch.float64)


def layer(channels, method, t):
    d = LearnedTimeDiffusion(channels, method).double()
    with torch.no_grad():
        d.diffusion_time.copy_(torch.as_tensor(t, dtype=torch.float64))
    return d


def test_spectral_t0_is_identity_on_the_basis_and_large_t_is_the_mean(bumpy_ops):
    ops = t64(bumpy_ops)
    u = ops["evecs"][:, :10] @ torch.randn(10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(layer(3, "spectral", [0, 0, 0])(u, ops), u, atol=1e-5)  # t is clamped to 1e-8
    x = torch.randn(ops["M"].shape[0], 2, dtype=torch.float64)
    mean = (ops["M"][:, None] * x).sum(0) / ops["M"].sum()
    for method in ("spectral", "implicit"):
        out = layer(2, method, [1e4, 1e4])(x, ops)
        assert torch.allclose(out, mean.expand_as(out), atol=1e-3 * x.abs().max()), method


def test_implicit_agrees_with_spectral_on_smooth_signals(bumpy_ops):
    ops = t64(bumpy_ops)
    u = ops["evecs"][:, 1:6] @ torch.ones(5, 1, dtype=torch.float64)  # smooth, in the basis
    for t in (1e-3, 1e-2, 1e-1):
        a = layer(1, "spectral", [t])(u, ops)
        b = layer(1, "implicit", [t])(u, ops)
        # one implicit Euler step: e^{−λt} vs 1/(1+λt), O((λt)²) apart for the low modes here
        lam_t = float(bumpy_ops.evals[5] * t)
        assert (a - b).abs().max() <= 0.6 * lam_t**2 * u.abs().max() + 1e-8, t


def test_gradcheck_diffusion_spectral_and_implicit():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=1)  # 42 vertices: a small Jacobian
    ops = compute_operators(Shape(m.vertices * [1, 0.7, 1.3], m.faces), k=20, cache=False).to_torch(dtype=torch.float64)
    n = ops["M"].shape[0]
    x = torch.randn(n, 2, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.05, 0.2], dtype=torch.float64, requires_grad=True)
    for method in ("spectral", "implicit"):
        assert torch.autograd.gradcheck(lambda x, t: diffuse(x, t, ops, method), (x, t), eps=1e-6, atol=1e-5, rtol=1e-4), method


def _rotate_frames(ops: Operators, shape: Shape, theta: np.ndarray) -> dict:
    """Operators with every tangent frame rotated by its own angle θ_i about n̂."""
    fr = ops.frames.copy()
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    fr[:, 0], fr[:, 1] = c * ops.frames[:, 0] + s * ops.frames[:, 1], -s * ops.frames[:, 0] + c * ops.frames[:, 1]
    gx, gy = gradient_operator(shape.vertices, fr, *neighbor_pairs(shape))
    return Operators(ops.L, ops.M, ops.evals, ops.evecs, gx, gy, fr).to_torch(dtype=torch.float64)


@pytest.mark.parametrize("mode", ["complex", "real"])
def test_gradient_features_invariant_to_tangent_basis(bumpy, bumpy_ops, mode):
    torch.manual_seed(0)
    block = DiffusionNetBlock(8, dropout=False, gradient_mode=mode).double().eval()
    with torch.no_grad():
        block.diffusion.diffusion_time.fill_(0.01)
    x = torch.randn(bumpy.n_vertices, 8, dtype=torch.float64)
    theta = np.random.default_rng(0).uniform(0, 2 * np.pi, bumpy.n_vertices)
    a = block(x, t64(bumpy_ops))
    b = block(x, _rotate_frames(bumpy_ops, bumpy, theta))
    assert torch.allclose(a, b, atol=1e-10)
    # and the raw gradients did change (the test is not vacuous)
    gx0 = torch.sparse.mm(t64(bumpy_ops)["grad_x"], x)
    gx1 = torch.sparse.mm(_rotate_frames(bumpy_ops, bumpy, theta)["grad_x"], x)
    assert (gx0 - gx1).abs().max() > 1e-2


def test_rigid_motion_with_hks_leaves_outputs_unchanged(bumpy):
    torch.manual_seed(0)
    net = DiffusionNet(16, 5, width=16, n_blocks=2, dropout=False).double().eval()
    moved = bumpy.transformed(random_rotation(torch.Generator().manual_seed(3)).double().numpy(), [0.3, -1.0, 2.0])
    outs = []
    for s in (bumpy, moved):
        ops = compute_operators(s, k=64, cache=False)
        outs.append(net(input_features(ops, "hks").double(), ops.to_torch(dtype=torch.float64)))
    assert torch.allclose(outs[0], outs[1], atol=1e-6)


def test_mirror_image_only_complex_A_sees_orientation(bumpy):
    """Paper Fig. 5: reflecting a shape (faces inverted) keeps HKS, L, M; real A gives the same
    features on the mirror image, complex A can tell the two apart."""
    mirror = Shape(bumpy.vertices * [-1, 1, 1], bumpy.faces[:, ::-1])
    ops = [compute_operators(s, k=64, cache=False) for s in (bumpy, mirror)]
    x = torch.randn(bumpy.n_vertices, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    for mode, same in (("real", True), ("complex", False)):
        feat = SpatialGradientFeatures(6, mode).double()
        f = [feat(torch.sparse.mm(o.to_torch(dtype=torch.float64)["grad_x"], x),
                  torch.sparse.mm(o.to_torch(dtype=torch.float64)["grad_y"], x)) for o in ops]
        assert torch.allclose(f[0], f[1], atol=1e-8) == same, mode


def test_outputs_at_and_input_checks(bumpy, bumpy_ops):
    ops = bumpy_ops.to_torch()
    x = input_features(bumpy, "xyz")
    assert x.shape == (bumpy.n_vertices, 3) and x.norm(dim=1).max() <= 1 + 1e-6
    faces = torch.as_tensor(bumpy.faces)
    assert DiffusionNet(3, 4, width=8, n_blocks=1, outputs_at="faces")(x, ops, faces=faces).shape == (bumpy.n_faces, 4)
    assert DiffusionNet(3, 4, width=8, n_blocks=1, outputs_at="global_mean")(x, ops).shape == (4,)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        DiffusionNet(16, 4, width=8, n_blocks=1)(x, ops)
    with pytest.raises(ValueError, match="same shape"):
        DiffusionNet(3, 4, width=8, n_blocks=1)(x[:10], ops)


def test_short_training_reduces_loss(bumpy, bumpy_ops):
    """Segment the bumpy sphere into octants from HKS + xyz: loss must drop clearly."""
    torch.manual_seed(0)
    ops = bumpy_ops.to_torch()
    x = torch.cat([input_features(bumpy, "xyz"), input_features(bumpy_ops, "hks")], dim=1)
    v = bumpy.vertices
    labels = torch.as_tensor((v[:, 0] > 0) * 4 + (v[:, 1] > 0) * 2 + (v[:, 2] > 0))
    net = DiffusionNet(x.shape[1], 8, width=32, n_blocks=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(net(x, ops), labels)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    times = np.concatenate(net.diffusion_times())  # initialised at 0: training must grow them
    assert np.median(times) > 1e-3 and times.max() > 0.05, times


def test_conjugate_gradient_path_matches_direct_solver(bumpy_ops):
    """The device-agnostic CG solver (used off-CPU) gives the CPU direct solver's answer."""
    from shapelib.diffusion import _sparse_diag, batched_cg

    ops = t64(bumpy_ops)
    x = torch.randn(ops["M"].shape[0], 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1e-3, 1e-2, 1e-1], dtype=torch.float64)
    direct = diffuse(x, t, ops, "implicit")
    L, M, d = ops["L"], ops["M"], _sparse_diag(ops["L"])
    cg = batched_cg(lambda Y: M[:, None] * Y + torch.sparse.mm(L, Y) * t[None, :], M[:, None] * x, M[:, None] + d[:, None] * t[None, :])
    assert torch.allclose(direct, cg, atol=1e-8)


def test_random_rotation_about_an_axis_keeps_that_axis_and_varies_the_angle():
    """Table 5's augmentation: rotations about the vertical (y) only — orthogonal, det +1, y fixed,
    the angle uniform (not a fixed rotation); a wrong axis is refused by name."""
    g = torch.Generator().manual_seed(0)
    Rs = [random_rotation(g, dtype=torch.float64, axis=1) for _ in range(200)]
    for R in Rs[:5]:
        assert torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
        assert abs(float(torch.det(R)) - 1) < 1e-12
        assert torch.allclose(R[:, 1], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)) and R[1, 1] == 1
    angles = np.array([np.arctan2(float(R[2, 0]), float(R[0, 0])) for R in Rs])
    assert np.ptp(angles) > 5.5 and abs(np.mean(np.cos(angles))) < 0.2, "angles should cover the circle"
    with pytest.raises(ValueError, match="axis"):
        random_rotation(g, axis=3)
