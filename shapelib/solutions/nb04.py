"""Notebook 04 (functional maps): worked solutions to its exercises."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..fmaps import (axiomatic_zoomout, default_extractor, diff_zoomout, fmap_to_p2p, FmapTrainConfig as C, pair_losses,
                     predict_map, train_unsupervised, zoomout)
from ..kernels import sdpa_kernel_name, SoftMap
from ..experiments import checkpoints, fmaps, scoring


def ex04_zoomout_step(C0, basis1, basis2, evaluate, k_final: int = 130, steps=(10, 1)) -> dict:
    """04, exercise 1: classic ZoomOut with step 1 (the original algorithm) vs 10: error and time."""
    out = {}
    for step in steps:
        t = time.perf_counter()
        _, p2p = zoomout(C0, basis1, basis2, k_final, step=step)
        out[step] = {"error": float(evaluate(p2p)), "seconds": time.perf_counter() - t}
    return out


def ex04_sigma_sweep(C_init, basis1, basis2, evaluate, sigmas=(1e-3, 1e-2, 1e-1), n_iter: int = 10, step: int = 10) -> dict:
    """04, exercise 2: differentiable ZoomOut for several σ from the same C_init: error of its map,
    distance to the hard ZoomOut's C (same schedule) and the norm of the gradient w.r.t. C_init of
    ‖[C_refined]_{1:k,1:k} − C_init‖² taken through the refinement (the consistency loss's path)."""
    import torch

    k = C_init.shape[0]
    C_hard, _ = zoomout(C_init, basis1, basis2, k + n_iter * step, step=step)
    out = {}
    for s in sigmas:
        C0 = C_init.detach().clone().requires_grad_(True)
        C = diff_zoomout(C0, basis1, basis2, sigma=s, n_iter=n_iter, step=step)
        (g,) = torch.autograd.grad(((C[:k, :k] - C0.detach()) ** 2).sum(), C0)
        out[s] = {"error": float(evaluate(fmap_to_p2p(C.detach(), basis1, basis2))),
                  "‖C − C_hard‖ / ‖C_hard‖": float(torch.linalg.norm(C.detach() - C_hard) / torch.linalg.norm(C_hard)),
                  "‖grad‖": float(torch.linalg.norm(g))}
    return out


def ex04_orientation_term(pair: dict, evaluate, w_orients=(0.0, 1.0, 1e3), **settings) -> dict:
    """04, exercise 3: the axiomatic pipeline without, with and with an overweighted orientation
    term (``pair``: a dict of the notebook's ``prepare``): errors before/after ZoomOut and ‖C_init‖."""
    import torch

    out = {}
    for w in w_orients:
        r = axiomatic_zoomout(pair["o1"], pair["o2"], pair["b1"], pair["b2"], w_orient=w, **settings)
        out[w] = {"‖C_init‖": float(torch.linalg.norm(r["C_init"])), "WKS fmap": float(evaluate(r["p2p_init"])),
                  "ZoomOut": float(evaluate(r["p2p"]))}
    return out


def ex04_backends_timing(sizes=(2000, 10000, 20000), backends=("torch", "sdpa"), p: int = 32, d: int = 130,
                         sigma: float = 0.1, seed: int = 0) -> dict:
    """04, exercise 4: ``SoftMap(F1, F2, σ, backend=b) @ X`` forward and forward + backward on random
    float32 features; seconds, time relative to the torch backend, and the largest relative
    difference of the result and of the gradients from torch's (add "keops" to ``backends`` when
    ``kernels.keops_available()``: its first call compiles, minutes on a laptop CPU)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {"sdpa kernel": sdpa_kernel_name(p=p + 1, d=d)}
    for n in sizes:
        F1, F2 = (0.1 * torch.randn(n, p, generator=g) for _ in range(2))
        X = torch.randn(n, d, generator=g)
        res, ref = {}, None
        for b in backends:
            a1, a2 = F1.clone().requires_grad_(True), F2.clone().requires_grad_(True)
            t = time.perf_counter()
            Y = SoftMap(a1, a2, sigma, backend=b) @ X
            t_fwd = time.perf_counter() - t
            Y.square().sum().backward()
            t_all = time.perf_counter() - t
            vals = (Y.detach(), a1.grad, a2.grad)
            ref = ref or vals
            res[b] = {"forward s": t_fwd, "fwd+bwd s": t_all, "time / torch's": t_all / res.get(backends[0], {"fwd+bwd s": t_all})["fwd+bwd s"],
                      "max rel. diff": max(float((v - r).abs().max() / r.abs().max()) for v, r in zip(vals, ref))}
        out[n] = res
    return out


def _fmap_net(train_data: list, cfg, n_steps: int, width: int, refine_every: int, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    net, _ = default_extractor(train_data[0].x.shape[1], cfg.n_features, width=width)
    net = net.to(train_data[0].x.device)
    theta0 = torch.cat([p.detach().flatten() for p in net.parameters()])
    if n_steps:
        train_unsupervised(net, train_data, cfg, n_steps=n_steps, seed=seed, refine_every=refine_every, progress=False)
    net.weight_change = float(torch.linalg.norm(torch.cat([p.detach().flatten() for p in net.parameters()]) - theta0)
                              / torch.linalg.norm(theta0))   # how far training moved the weights (relative)
    return net


def _fmap_errors(net, test_data: list, evaluators: list, cfg) -> dict:
    return {name: float(np.median([ev(predict_map(net, a, b, cfg, stage=stage)[0]) for (a, b), ev in zip(test_data, evaluators)]))
            for name, stage in (("features NN", "features"), ("+ ZoomOut", "zoomout"))}


def ex04_consistency_loss(train_data: list, test_data: list, evaluators: list, cfg=None, n_steps: int = 100,
                          width: int = 64, refine_every: int = 5, trained=None) -> dict:
    """04, exercise 5: single-branch training with and without the consistency term, same seed and
    steps: median test errors, the median consistency residual ‖C_init − [C_refined]₁:k,₁:k‖² over the
    test pairs (the quantity the term penalises, through the differentiable ZoomOut of ``cfg``) and the
    features' Dirichlet energy on a test shape (Σ FᵀLF / Σ FᵀMF of the centred features: a mean
    eigenvalue — smaller is smoother). ``trained``: a network already trained with ``cfg`` (the
    notebook's), used as the "with consistency" run. A short run is one draw: compare several seeds
    before ranking the two."""
    import torch

    cfg = cfg or FmapTrainConfig.paper()
    a = test_data[0][0]
    nets = {"with consistency": trained or _fmap_net(train_data, cfg, n_steps, width, refine_every),
            "without": _fmap_net(train_data, replace(cfg, w_consist=(0.0, 0.0)), n_steps, width, refine_every=n_steps + 1)}
    out = {}
    for name, net in nets.items():
        with torch.no_grad():
            F = net(a.x, a.ops).double()
            M, L = a.ops["M"].double(), a.ops["L"].double()
            F = F - (M[:, None] * F).sum(0) / M.sum()
            dirichlet = float((F * torch.sparse.mm(L, F)).sum() / (M[:, None] * F ** 2).sum())
            residual = float(np.median([float(pair_losses(net(s.x, s.ops), net(t.x, t.ops), s.basis, t.basis, cfg)["consist"])
                                        for s, t in test_data]))
        out[name] = {**_fmap_errors(net, test_data, evaluators, cfg), "consistency residual": residual,
                     "feature Dirichlet energy": dirichlet}
    return out


def ex04_paper_vs_code(train_data: list, test_data: list, evaluators: list, n_steps: int = 20, width: int = 64,
                       refine_every: int = 5, configs: dict | None = None) -> dict:
    """04, exercise 6: the same short training under the paper's settings, the public code's, and the
    code's with one of its differences undone at a time: median test errors before (same seed, same
    evaluation settings) and after training, and how far training moved the weights (relative change)."""
    configs = configs or {"paper": C.paper(), "code": C.code(), "code, lr 1e-3": C.code(lr=1e-3),
                          "code, k 30 -> 130": C.code(k_init=30), "code, absolute sigma": C.code(relative_sigma=False),
                          "code, unscaled losses": C.code(loss_scale=1.0, normalize_by_k2=False),
                          "code, no clipping": C.code(grad_clip=None),
                          "code, gradient through ZoomOut": C.code(consist_detach=False),
                          "code + Laplacian 1e2": C.code(w_lap=1e2)}
    untrained, out = {}, {}
    for name, cfg in configs.items():
        key = (cfg.k_init, cfg.n_iter, cfg.step, cfg.sigma, cfg.relative_sigma)   # what the evaluation depends on
        if key not in untrained:
            untrained[key] = _fmap_errors(_fmap_net(train_data, cfg, 0, width, refine_every), test_data, evaluators, cfg)
        net = _fmap_net(train_data, cfg, n_steps, width, refine_every)
        out[name] = {"untrained": untrained[key], "trained": _fmap_errors(net, test_data, evaluators, cfg),
                     "weight change": net.weight_change}
    return out


def ex04_train_vs_test(name: str = "fmaps_faust_r_unsupervised", n_pairs: int = 12, seed: int = 0,
                       pairs=None, threshold: float = 10.0) -> dict:
    """04, exercise 7: the committed model on random FAUST_r *training* pairs (two shapes of 000–079,
    ``pairs`` or ``n_pairs`` drawn with ``seed``) next to its record's 190 test pairs: each side's
    :func:`shapelib.experiments.scoring.failure_anatomy` (share of pairs above ``threshold``, median, the share
    of the large errors on mirror-side vertices), the training pairs' scores with their training loss
    at the final weights, and the mean loss of the pairs above ``threshold`` and of the others. The
    same failure on pairs it was trained on says it is not a generalisation gap; a higher loss on
    those pairs says the objective sees the failure, so that more training pushes against it.
    About 15 s a pair on one CPU thread."""
    if pairs is None:
        rng, chosen = np.random.default_rng(seed), set()
        while len(chosen) < n_pairs:
            a, b = sorted(int(i) for i in rng.choice(80, 2, replace=False))
            chosen.add(f"tr_reg_{a:03d}<-tr_reg_{b:03d}")
        pairs = sorted(chosen)
    results = {p: fmaps.trained_pair(p, name) for p in pairs}
    scores = {p: {**r["score"], "loss": r["loss"]["loss"]} for p, r in results.items()}
    train = scoring.failure_anatomy(list(scores), [s["error"] for s in scores.values()],
                                       [s["mirror_share"] for s in scores.values()],
                                       [s["flipped"] for s in scores.values()], threshold)
    test = fmaps.anatomy_of_record(checkpoints.load_record(name), threshold=threshold)
    swapped = [s["loss"] for s in scores.values() if s["error"] > threshold]
    others = [s["loss"] for s in scores.values() if s["error"] <= threshold]
    return {"train": train, "test": test, "train_pairs": scores,
            "share above threshold": {"train": train["n_bad"] / train["n"], "test": test["n_bad"] / test["n"]},
            "mean training loss": {"pairs above threshold": float(np.mean(swapped)) if swapped else None,
                                   "others": float(np.mean(others)) if others else None}}
