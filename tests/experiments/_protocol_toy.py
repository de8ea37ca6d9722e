"""A toy protocol (a small regression that trains in a second) for the runner and record tests."""
import numpy as np
import torch


def toy_build(cfg):
    torch.manual_seed(cfg["seed"])
    return torch.nn.Sequential(torch.nn.Linear(3, cfg["width"]), torch.nn.Dropout(0.2), torch.nn.Linear(cfg["width"], 1))


def toy_items(cfg, device):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 16, 3, generator=g)
    return [(xi, xi.sum(1, keepdim=True) ** 2) for xi in x]


def toy_loss(cfg):
    return lambda model, item: torch.nn.functional.mse_loss(model(item[0]), item[1])


def toy_eval(model, cfg, device, subset=None):
    items = toy_items(cfg, device)
    with torch.no_grad():
        per = {f"s{i}": {"mse": float(torch.nn.functional.mse_loss(model(x), y))} for i, (x, y) in enumerate(items)
               if subset is None or f"s{i}" in subset}
    return {"per_shape": per, "summary": {"mse": float(np.mean([v["mse"] for v in per.values()]))}}


TOY = dict(width=8, epochs=4, lr=1e-2, decay_every=2, decay=0.5, seed=3)
