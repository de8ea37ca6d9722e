"""The one training loop (shapelib.train.fit): schedules, clipping, resuming from weights."""
import numpy as np
import pytest
import torch


@pytest.mark.parametrize("schedule, expected", [(dict(decay_every=2, decay=0.5), [2, 4, 6]),
                                                (dict(decay_every=1, decay=0.5, min_lr=0.3), [1, 2]),
                                                (dict(decay_every=3, decay=0.1), [3, 6]), ({}, [])])
def test_lr_drops_are_the_epochs_where_fit_lowered_the_learning_rate(schedule, expected):
    """train.lr_drops reads a schedule as fit() applies it: the epochs whose learning rate (in the
    optimizer state fit hands to its checkpoint callback) is below the previous epoch's, with
    min_lr's floor."""
    from shapelib.train import fit, lr_drops

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    items = [torch.randn(2) for _ in range(3)]
    lrs = [1.0]                                       # the learning rate of epoch 0, then after each epoch

    def keep(state):
        lrs.append(state["optimizer"]["param_groups"][0]["lr"])
        return False

    fit(model, items, lambda m, x: m(x).pow(2).sum(), epochs=7, lr=1.0, progress=False, checkpoint=keep, **schedule)
    seen = [e for e in range(1, 7) if lrs[e] < lrs[e - 1] - 1e-12]
    cfg = {"lr": 1.0, "epoch_size": 3, **schedule}
    assert seen == expected
    assert lr_drops(cfg, 7) == seen


def test_gradient_clipping_by_norm_and_by_value():
    """``clip_mode="value"`` (the scalable-fmaps code) clips every entry to [-1, 1] and keeps the
    small ones; ``"norm"`` rescales the whole gradient to norm 1; another mode is refused."""
    from shapelib.train import clip_gradients

    def grads(mode):
        p = torch.nn.Parameter(torch.zeros(3))
        p.grad = torch.tensor([3.0, -0.5, 0.2])
        clip_gradients([p], 1.0, mode)
        return p.grad

    torch.testing.assert_close(grads("value"), torch.tensor([1.0, -0.5, 0.2]))
    g = grads("norm")
    assert float(g.norm()) == pytest.approx(1.0, rel=1e-5) and float(g[0] / g[1]) == pytest.approx(-6.0)
    with pytest.raises(ValueError, match="clip"):
        grads("max")


@pytest.mark.parametrize("schedule", [dict(decay_every=2, decay=0.5), dict(decay_every=1, decay=0.5, min_lr=2e-3)])
def test_fit_resumed_from_weights_alone_runs_at_the_schedules_rate(schedule):
    """``fit(resume={... "optimizer": None, "scheduler": None})`` starts at the learning rate an
    uninterrupted run has at that epoch (StepLR, and LambdaLR with a floor), and follows it on."""
    from shapelib.train import fit

    def lrs(resume=None):
        seen = []
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        xs = [torch.randn(4, 3, generator=torch.Generator().manual_seed(i)) for i in range(6)]
        fit(model, xs, lambda m, x: (m(x) - x.sum(1, keepdim=True)).pow(2).mean(), epochs=5, lr=1e-2, progress=False, resume=resume,
            checkpoint=lambda st: seen.append(st["optimizer"]["param_groups"][0]["lr"]) or False, **schedule)
        return seen

    whole = lrs()
    assert len(set(whole)) > 1, "the schedule changes the rate"
    assert lrs({"epoch": 3, "optimizer": None, "scheduler": None, "loss": [0.0] * 3}) == pytest.approx(whole[3:])


def test_prepare_takes_a_transform_and_coordinates_as_given():
    """prepare's transform reaches operators and inputs (labels still from the item); normalize_xyz=False
    keeps the transformed coordinates, the default centres them in the unit sphere; gradient_eps
    reaches the gradient operators."""
    from types import SimpleNamespace

    from shapelib import Shape
    from shapelib.train import prepare

    rng = np.random.default_rng(0)
    shape = Shape(rng.normal(size=(200, 3)) + 5.0)
    item = SimpleNamespace(shape=shape, y=np.arange(200) % 4)
    scale = lambda s: s.copy(vertices=2.0 * s.vertices)          # noqa: E731
    raw = prepare([item], "y", k=8, progress=False, transform=scale, normalize_xyz=False, gradient_eps=1e-2)[0]
    np.testing.assert_allclose(raw["x"].numpy(), 2.0 * shape.vertices, rtol=1e-6)
    assert torch.equal(raw["y"], torch.as_tensor(item.y)) and np.allclose(raw["shape"].vertices, 2.0 * shape.vertices)
    plain = prepare([item], "y", k=8, progress=False, transform=scale)[0]
    unit = plain["x"]
    assert abs(float(unit.mean(0).abs().max())) < 1e-5 and abs(float(unit.norm(dim=1).max()) - 1.0) < 1e-5
    assert not torch.allclose(raw["ops"]["grad_x"].to_dense(), plain["ops"]["grad_x"].to_dense()), "gradient_eps ignored"
