"""Notebook 04 (functional maps): worked solutions to its exercises."""
from __future__ import annotations


def ex04_zoomout_step(C0, basis1, basis2, evaluate, k_final: int = 130, steps=(10, 1)) -> dict:
    """04, exercise 1: classic ZoomOut with step 1 (the original algorithm) vs 10: error and time."""
    import time

    from ..fmaps import zoomout

    out = {}
    for step in steps:
        t = time.perf_counter()
        _, p2p = zoomout(C0, basis1, basis2, k_final, step=step)
        out[step] = {"error": float(evaluate(p2p)), "seconds": time.perf_counter() - t}
    return out
