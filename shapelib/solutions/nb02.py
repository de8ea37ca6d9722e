"""Notebook 02 (DiffusionNet): worked solutions to its exercises."""
from __future__ import annotations

import numpy as np

from .. import Shape
from .. import operators as ops


def ex02_eigenpairs_for_diffusion(shape: Shape, u0: np.ndarray, times=(1e-3, 1e-2, 1e-1), ks=(16, 32, 64, 128)) -> dict:
    """02, exercise: how many eigenpairs does spectral diffusion need? Relative difference of the
    k-mode spectral heat flow to the implicit (untruncated) one, for each k and t."""
    O = ops.compute_operators(shape, k=max(ks))
    ref = {t: ops.heat_implicit(u0, O.L, O.M, t, steps=10) for t in times}
    return {k: {t: float(np.abs(ops.heat_spectral(u0, O.evals[:k], O.evecs[:, :k], O.M, t) - ref[t]).max()
                         / np.abs(ref[t]).max()) for t in times} for k in ks}
