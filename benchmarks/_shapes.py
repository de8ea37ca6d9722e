"""Shared by the benchmark scripts: benchmark meshes at any resolution, and a timer."""
from __future__ import annotations

import time

import numpy as np


def bumpy_torus(major: int, minor: int, turn: float = 0.0):
    """A torus (R=1, r=0.35) with smooth bumps: n = major·minor vertices, no poles, no symmetry
    that would make the eigensolver's life unusually easy. ``turn`` (in sections) rotates the
    sampling about z before the bumps are applied: the same surface, other vertices."""
    import trimesh

    from shapelib import Shape

    m = trimesh.creation.torus(major_radius=1.0, minor_radius=0.35, major_sections=major, minor_sections=minor)
    a = 2 * np.pi * turn / major
    v = m.vertices @ np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]])
    bump = 1 + 0.08 * np.sin(5 * np.arctan2(v[:, 1], v[:, 0])) * np.cos(3 * v[:, 2] / 0.35)
    ring = np.c_[v[:, :2] / np.linalg.norm(v[:, :2], axis=1, keepdims=True), np.zeros(len(v))]
    v = ring + (v - ring) * bump[:, None]
    return Shape(v, m.faces, name=f"torus{len(v)}")


def median_time(fn, reps: int, sync=lambda: None) -> float:
    """Median wall time (s) of ``reps`` calls of ``fn``; ``sync`` (e.g. ``torch.cuda.synchronize``)
    runs before and after each call so asynchronous GPU work is counted."""
    out = []
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return float(np.median(out))


def diffusionnet_step(shape, ops, dev):
    """The DiffusionNet timing set-up of the paper's Table 6 (width 128, 4 blocks, xyz in, an
    8-class octant segmentation): returns ``(step, net, x, o)`` with ``step()`` one training step
    (forward + backward + Adam) on ``dev``; ``ops`` from ``compute_operators(shape, k=128)``."""
    import torch

    from shapelib.diffusion import DiffusionNet, input_features

    v = shape.vertices
    y = torch.as_tensor((v[:, 0] > 0) * 4 + (v[:, 1] > 0) * 2 + (v[:, 2] > 0)).to(dev)
    o = ops.to_torch(dev)
    x = input_features(shape, "xyz", device=dev)
    torch.manual_seed(0)
    net = DiffusionNet(3, 8, width=128, n_blocks=4).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        loss = torch.nn.functional.cross_entropy(net(x, o), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step, net, x, o
