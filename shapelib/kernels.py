"""The shared GPU kernel layer: soft maps, nearest neighbours and k-NN graphs that never store
an ``n × m`` matrix (notebook 04; reused by MEPS, CPNet and the implicit-matching notebooks).

The soft map (Magnet & Ovsjanikov, CVPR 2024, Eq. 3) between features ``F_src (n_src, p)`` and
``F_tgt (n_tgt, p)`` is the row-stochastic ``(n_tgt, n_src)`` matrix

    Π_ij = softmax_j( −‖F_tgt_i − F_src_j‖² / 2σ² ),

i.e. row ``i`` (a target point) is a distribution over source points. It is only ever used in
products ``Π @ X`` (``X (n_src, d)``, e.g. ``Π Φ_src`` for a proper functional map) and
``Πᵀ @ Y``, and its row ``argmax`` is the nearest source point of each target point.

Backends (``backend=``):

``'torch'``  chunks of target rows: memory ``O(chunk · n_src)``; a custom autograd Function
             stores only the per-row log-sum-exp and recomputes each chunk in backward
             (the FlashAttention recipe), so backward memory is also ``O(chunk · n_src)``.
``'keops'``  pykeops LazyTensors (symbolic matrices, compiled reductions). Compiles on first
             use (~8 s per formula on CPU, cached in ``.cache/keops``); probed once in a
             subprocess because some CUDA set-ups segfault instead of raising.
``'sdpa'``   ``torch.nn.functional.scaled_dot_product_attention`` with augmented queries/keys
             (``Π @ X`` only; the rest falls back to ``'torch'``): the soft map product is
             attention, ``softmax_j(F_tgt_i·F_src_j/σ² − ‖F_src_j‖²/2σ²) X_j``.
``'dense'``  the reference: materialises ``Π`` (``4·n_tgt·n_src`` bytes). Tests and benchmarks.
``'kdtree'`` :func:`nearest` / :func:`knn` only (soft maps use ``'torch'``): scipy's cKDTree on
             CPU, exact. Fast for low-dimensional points (3-D coordinates); in the 30–130
             dimensions of ZoomOut's spectral embeddings it is SLOWER than the chunked brute
             force of ``'torch'`` (on 5k-vertex FAUST_r pairs, 2–5× on one CPU thread: the
             ``nn-kdtree`` vs ``nn-torch`` rows of benchmarks/results/zoomout.json).
``'blas'``   :func:`nearest` on CPU only (k-NN with k > 1, self-graphs, GPUs and soft maps use
             ``'torch'``): float32 GEMM blocks through numpy's BLAS, then every row whose best
             two scores are closer than a rigorous bound on the float32 error is re-scored in
             float64 — for float64 points the nearest neighbours of ``'torch'``, exactly; for
             float32 points their exact nearest neighbours, which ``'torch'``'s float32 ranking
             misses on a few near-ties (``_nearest_blas``). 2-4.5× faster than ``'torch'`` on one
             CPU thread (5k × 5k points in 110 / 30 dimensions, benchmarks/zoomout_vs_pyfm.py).
``'auto'``   KeOps on CUDA when its probe passes, else ``'torch'`` (KeOps on CPU is slower than
             chunked torch on these machines: 57 s vs 29 s for a 50k × 50k soft map) — except
             :func:`nearest` of float64 points on CPU, which takes ``'blas'`` (same neighbours;
             float32 points keep ``'torch'`` so that float32 pipelines' maps stay as they were).

All products are stable for small σ (log-sum-exp with the row maximum subtracted; σ = 1e-2
gives finite values and gradients) and differentiable w.r.t. both feature sets and ``X``.
Everything runs on the device of its inputs.

Precision. The torch backend forms the logits ``−‖a−b‖²/2σ²`` by the GEMM expansion
``|a|² + |b|² − 2a·b``, whose float32 rounding error is about ``ε₃₂ · (|a|² + |b|²) / 2σ²`` — for a
130-d spectral embedding (``|a|² ≈ 140``) at σ = 1e-2 that is 1e-2 in every logit, i.e. a 1e-2
relative error in ``Π @ X``. Float32 features are therefore turned into logits in float64 (GEMM and
log-sum-exp; the exponentials and every product with ``X`` stay float32) whenever that estimate
exceeds :data:`LOGIT_TOL` (``logits='auto'``); ``logits='float32'`` forces the fast path (e.g. GPUs
with slow float64), ``'float64'`` the exact one; ``kernels.LOGIT_TOL = float('inf')`` sets the fast
path for every SoftMap (also those made inside ``fmaps.diff_zoomout``). Cost on one CPU thread
(``benchmarks/softmap_precision.py``): +20–40 % per product + backward. KeOps forms ``‖a−b‖²`` from the differences and
needs no such care; SDPA is the expansion inside a fused kernel and keeps its float32 error
(``benchmarks/gpu_check.py`` measures it: at σ = 1e-2 on features of norm ~14, 2e-1 in the values
and far more in the gradients — use it at large σ only).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from . import config
from .errors import require

BACKENDS = ("auto", "torch", "keops", "sdpa", "dense", "kdtree", "blas")
#: float32 logits are used while their estimated error ``ε₃₂ (max|a|² + max|b|²) / 2σ²`` stays below this
LOGIT_TOL = 1e-6
#: Logits (already shifted so that a row's largest is 0) are raised to this floor before their
#: exponential: exp(-80) ≈ 2e-35, so a floored entry weighs less than 1e-27 of its row even with
#: 1e8 columns — nothing at float32 or float64 precision — while the exponential of a very negative
#: number takes the CPU's slow underflow path (float32: 24 ns instead of 2 ns per entry on one
#: thread, the common case at σ = 1e-2, where almost every entry underflows).
#: ``benchmarks/softmap_exp.py`` measures it; ``None`` turns the floor off. Its products in the
#: backward pass can fall below float32's smallest normal: see :data:`FLUSH_DENORMALS`, without which
#: the floor slows some CPUs down instead.
EXP_FLOOR: float | None = -80.0
LOGITS = ("auto", "float32", "float64")
#: bytes of one ``(chunk, n_src)`` block the torch backend may allocate (several live at once)
BLOCK_BYTES = int(os.environ.get("SHAPELIB_BLOCK_BYTES", 2**27))
#: the same on a CUDA device (larger blocks keep the GPU busy: a 200k-column block of 128 MB is 80 rows)
BLOCK_BYTES_CUDA = int(os.environ.get("SHAPELIB_BLOCK_BYTES_CUDA", 2**30))
#: on a CPU, soft-map blocks of at most this many target rows: the half-dozen passes over a block
#: (logits, shift, floor, exp, sums, products) then run in cache (a 256 × 5,000 float64 block is
#: 10 MB) instead of streaming a 134 MB one from memory each time — an fmaps training step runs
#: 1.6× faster on one thread, on top of :data:`EXP_FLOOR` (``benchmarks/softmap_exp.py``); still wide
#: enough for efficient GEMMs
CPU_ROWS = int(os.environ.get("SHAPELIB_CPU_ROWS", 256))
#: on a CPU the soft-map kernel runs with denormal floats flushed to zero (FTZ/DAZ). Its gradient
#: products multiply entries near exp(EXP_FLOOR) ≈ 2e-35 by small gradients, which gives numbers
#: below float32's smallest normal (1.2e-38); on some CPUs (seen on an AVX-512 Xeon) every
#: operation on such a number takes a slow path: there a training step of the fmaps protocols ran
#: 6-9× slower than with them flushed, and 3× slower than with neither the floor nor the flush
#: (``benchmarks/softmap_exp.py``). Flushing changes nothing above 1.2e-38; the thread's
#: previous mode is restored afterwards. ``SHAPELIB_FLUSH_DENORMALS=0`` turns it off.
FLUSH_DENORMALS = os.environ.get("SHAPELIB_FLUSH_DENORMALS", "1") != "0"

# ----------------------------------------------------------------------------- input checks


def _check_features(F_src: torch.Tensor, F_tgt: torch.Tensor, what: str = "SoftMap") -> None:
    for name, F in (("F_src", F_src), ("F_tgt", F_tgt)):
        if not isinstance(F, torch.Tensor):
            raise TypeError(f"{what}: {name} must be a torch.Tensor, got {type(F).__name__}; "
                            "wrap arrays with torch.as_tensor(...).")
        if F.ndim != 2:
            raise ValueError(f"{what}: {name} must be 2-D (n, p), got shape {tuple(F.shape)}; "
                             "reshape per-vertex features to (n_vertices, n_features).")
        if not F.is_floating_point():
            raise TypeError(f"{what}: {name} must be a floating tensor, got {F.dtype}; call .float().")
    if F_src.shape[1] != F_tgt.shape[1]:
        raise ValueError(f"{what}: F_src has {F_src.shape[1]} features per point but F_tgt has "
                         f"{F_tgt.shape[1]}; both sides must live in the same feature space.")
    if F_src.device != F_tgt.device:
        raise ValueError(f"{what}: F_src is on {F_src.device} but F_tgt on {F_tgt.device}; "
                         "move both to one device with .to(device).")
    if F_src.dtype != F_tgt.dtype:
        raise TypeError(f"{what}: F_src is {F_src.dtype} but F_tgt {F_tgt.dtype}; cast one of them.")
    for name, F in (("F_src", F_src), ("F_tgt", F_tgt)):
        if not torch.isfinite(F.detach().sum()):  # one reduction, no n×p bool temporary; NaN/inf propagate
            raise ValueError(f"{what}: {name} contains NaN or inf; check the features (or the network "
                             "that produced them) before building a map.")


def _check_values(V: torch.Tensor, n: int, ref: torch.Tensor, name: str, side: str) -> torch.Tensor:
    if not isinstance(V, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor ({side}), got {type(V).__name__}.")
    if V.ndim not in (1, 2) or V.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, d) ({side}), got {tuple(V.shape)}.")
    if V.device != ref.device:
        raise ValueError(f"{name} is on {V.device} but the features are on {ref.device}; "
                         "move it with .to(features.device).")
    return V.to(ref.dtype)


def _rows_per_chunk(n_cols: int, chunk: int | None, width: int = 1, device=None, cpu_rows: int | None = None) -> int:
    """Rows of one block: ``chunk`` when given, else what fits the byte budget of the device —
    and on a CPU at most ``cpu_rows`` (cache-sized blocks, :data:`CPU_ROWS`) when given."""
    if chunk is not None:
        return max(1, int(chunk))
    cuda = device is not None and torch.device(device).type == "cuda"
    rows = max(16, min(65536, (BLOCK_BYTES_CUDA if cuda else BLOCK_BYTES) // (4 * max(1, n_cols) * max(1, width))))
    return rows if cuda or cpu_rows is None else min(rows, cpu_rows)


def sq_dist(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(len(A), len(B))`` by one GEMM, clamped at 0."""
    return ((A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T).clamp_min_(0.0)


def _centered(F_src, F_tgt):
    """Translate both feature sets by the source mean: distances are unchanged and the GEMM
    expansion ``|a|² + |b|² − 2a·b`` loses fewer digits in float32."""
    mu = F_src.mean(0, keepdim=True).detach()
    return F_src - mu, F_tgt - mu


# ----------------------------------------------------------------------------- torch backend


def _logits(ac, b, b2, s):
    """``−s/2 ‖a_i − b_j‖²`` for a chunk of rows ``ac (c, p)``: one GEMM plus two in-place passes."""
    S = torch.addmm(b2[None, :], ac, b.T, alpha=-2.0).add_((ac * ac).sum(1)[:, None]).clamp_min_(0.0)
    return S.mul_(-0.5 * s)


def logit_dtype(a: torch.Tensor, b: torch.Tensor, sigma: float, logits: str = "auto") -> torch.dtype:
    """The dtype the torch backend forms the logits in (see the module docstring, Precision):
    float64 for float32 features when ``ε₃₂ (max|a|² + max|b|²) / 2σ² > LOGIT_TOL``."""
    if logits not in LOGITS:
        raise ValueError(f"logits={logits!r}: choose one of {LOGITS}.")
    if a.dtype == torch.float64 or logits == "float32":
        return a.dtype
    if logits == "float64":
        return torch.float64
    with torch.no_grad():
        r2 = float((a * a).sum(1).max()) + float((b * b).sum(1).max())
    return torch.float64 if torch.finfo(a.dtype).eps * r2 / (2 * sigma**2) > LOGIT_TOL else a.dtype


def flushing_denormals() -> bool:
    """Whether the calling thread flushes denormal floats to zero now (torch has a setter only):
    a float32 below the smallest normal then reads back as 0."""
    return torch.tensor([1e-39], dtype=torch.float32).mul_(1.0).item() == 0.0


class flush_denormals:
    """Context: denormal floats flushed to zero on this thread's CPU arithmetic (torch's
    ``set_flush_denormal``), the previous mode restored on exit. Does nothing when ``enabled`` is
    False, when the mode is already on, or on a CPU without the flags. Per thread: with several
    torch threads, the worker threads keep their own mode."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.set = enabled, False

    def __enter__(self):
        if self.enabled and not flushing_denormals():
            self.set = bool(torch.set_flush_denormal(True))
        return self

    def __exit__(self, *exc):
        if self.set:
            torch.set_flush_denormal(False)
        return False


def _flushing(t: torch.Tensor) -> flush_denormals:
    """:class:`flush_denormals` for a kernel working on ``t``: on a CPU, per :data:`FLUSH_DENORMALS`."""
    return flush_denormals(FLUSH_DENORMALS and t.device.type == "cpu")


class _SoftMapProduct(torch.autograd.Function):
    """``Π @ V`` (``transpose=False``, V ``(n_src, d)``) or ``Πᵀ @ V`` (V ``(n_tgt, d)``),
    with ``Π = softmax_rows(−s/2 · ‖a_i − b_j‖²)``, chunked over target rows. The logits and the
    per-row log-sum-exp are formed in ``wide`` (float64 for float32 inputs at small σ), the rest
    in the inputs' dtype.

    Saves only the inputs, the output and the per-row log-sum-exp; backward recomputes each
    ``(chunk, n_src)`` block. With ``dS = P ∘ (dP − rowsum(P ∘ dP))``:
    ``∂a_i = −s(rowsum(dS)_i a_i − (dS b)_i)`` and ``∂b_j = s((dSᵀ a)_j − colsum(dS)_j b_j)``.
    """

    @staticmethod
    def forward(ctx, a, b, V, s: float, chunk: int, transpose: bool, wide: torch.dtype, mu):
        with _flushing(a):
            return _SoftMapProduct._forward(ctx, a, b, V, s, chunk, transpose, wide, mu)

    @staticmethod
    def backward(ctx, g):
        with _flushing(g):
            return _SoftMapProduct._backward(ctx, g)

    @staticmethod
    def _forward(ctx, a, b, V, s, chunk, transpose, wide, mu):
        n_tgt, n_src = a.shape[0], b.shape[0]
        out = V.new_zeros((n_src if transpose else n_tgt, V.shape[1]))
        lse = a.new_empty(n_tgt, dtype=wide)
        bw = _shift(b, wide, mu)
        b2 = (bw * bw).sum(1)
        for i in range(0, n_tgt, chunk):
            S = _logits(_shift(a[i:i + chunk], wide, mu), bw, b2, s)
            m = S.max(dim=1).values
            E = _floor(S.sub_(m[:, None]).to(V.dtype)).exp_()  # one exp pass; normalised below
            z = E.sum(1)
            lse[i:i + chunk] = m + z.log().to(wide)
            if transpose:
                out.addmm_(E.T, V[i:i + chunk] / z[:, None])
            else:
                out[i:i + chunk] = (E @ V).div_(z[:, None])
        ctx.save_for_backward(a, b, V, lse, out, mu)
        ctx.s, ctx.chunk, ctx.transpose, ctx.wide = s, chunk, transpose, wide
        return out

    @staticmethod
    def _backward(ctx, g):
        a, b, V, lse, out, mu = ctx.saved_tensors
        s, chunk, transpose, wide = ctx.s, ctx.chunk, ctx.transpose, ctx.wide
        need_a, need_b, need_V = ctx.needs_input_grad[:3]
        g = g.contiguous()
        ga = torch.zeros_like(a) if need_a else None
        gb = torch.zeros_like(b) if need_b else None
        gV = torch.zeros_like(V) if need_V else None
        bw = _shift(b, wide, mu)
        b2 = (bw * bw).sum(1)
        bc = bw.to(b.dtype)  # centred, for the gradient formulas
        for i in range(0, a.shape[0], chunk):
            sl = slice(i, i + chunk)
            aw = _shift(a[sl], wide, mu)
            ac = aw.to(a.dtype)
            P = _floor(_logits(aw, bw, b2, s).sub_(lse[sl, None]).to(V.dtype)).exp_()
            if transpose:  # out_j = Σ_i P_ij V_i
                PgV = P @ g  # (c, d)
                if need_V:
                    gV[sl] = PgV
                if not (need_a or need_b):
                    continue
                dP = V[sl] @ g.T
            else:  # out_i = Σ_j P_ij V_j
                if need_V:
                    gV.addmm_(P.T, g[sl])
                if not (need_a or need_b):
                    continue
                dP = g[sl] @ V.T
            # dS = P ∘ (dP − D) with D = rowsum(P ∘ dP) / rowsum(P) from this very block: rows of
            # dS then sum to 0 whatever the rounding of P (lse), and a one-hot row (σ far below
            # the point spacing) gives dS ≈ 0 instead of rounding noise multiplied by s
            dS = dP.mul_(P)
            D = dS.sum(1).div_(P.sum(1))
            dS.addcmul_(P, D[:, None], value=-1.0)
            if need_a:
                ga[sl] = -s * (dS.sum(1)[:, None] * ac - dS @ bc)
            if need_b:
                gb.addmm_(dS.T, ac, alpha=s).sub_(s * dS.sum(0)[:, None] * bc)
        return ga, gb, gV, None, None, None, None, None


def _floor(S):
    """``S`` (shifted logits, ≤ 0) raised in place to :data:`EXP_FLOOR` before ``exp_``."""
    return S if EXP_FLOOR is None else S.clamp_min_(EXP_FLOOR)


def _shift(x, wide, mu):
    """``x`` in the logits' dtype, centred there (``mu`` given) so that no float32 digit is lost."""
    return x.to(wide) if mu is None else x.to(wide) - mu


def _torch_product(F_tgt, F_src, V, sigma, chunk, transpose, logits="auto"):
    """Centres both sets on the source mean — in float64 inside the product when the logits are
    widened, so the translation itself rounds nothing."""
    b, a = _centered(F_src, F_tgt)
    wide = logit_dtype(a, b, sigma, logits)
    mu = None
    if wide != a.dtype:
        a, b, mu = F_tgt, F_src, F_src.detach().to(wide).mean(0, keepdim=True)
    chunk = _rows_per_chunk(F_src.shape[0], chunk, width=torch.finfo(wide).bits // 32, device=F_src.device,
                            cpu_rows=CPU_ROWS)
    return _SoftMapProduct.apply(a, b, V, 1.0 / sigma**2, chunk, transpose, wide, mu)


def _dense_pi(a, b, sigma):
    return torch.softmax(-sq_dist(a, b) / (2 * sigma**2), dim=1)


def _sdpa_product(a, b, V, sigma):
    """``Π @ V`` as one attention call: ``q = [a, 1]``, ``k = [b, −|b|²/2]``, scale ``1/σ²``.
    The fused CPU kernel needs equal head dims, so q, k, v are zero-padded to a common width."""
    import torch.nn.functional as F

    p, d = a.shape[1] + 1, V.shape[1]
    D = -(-max(p, d) // 8) * 8
    q = F.pad(torch.cat([a, torch.ones_like(a[:, :1])], 1), (0, D - p))
    k = F.pad(torch.cat([b, -0.5 * (b * b).sum(1, keepdim=True)], 1), (0, D - p))
    v = F.pad(V, (0, D - d))
    out = F.scaled_dot_product_attention(q[None, None], k[None, None], v[None, None], scale=1.0 / sigma**2)
    return out[0, 0, :, :d]


def sdpa_kernel_name(device="cpu", dtype=torch.float32, p: int = 33, d: int = 130) -> str:
    """Which SDPA implementation runs for the padded soft-map product ('flash', 'efficient',
    'cudnn' or 'math' — the math one materialises ``n × n``)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    a, V = torch.randn(64, p - 1, device=device, dtype=dtype), torch.randn(64, d, device=device, dtype=dtype)
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                     ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel([be]), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _sdpa_product(a, a, V, 1.0)
            return name
        except RuntimeError:
            continue
    return "math"


# ----------------------------------------------------------------------------- KeOps


def keops_cache_folder() -> Path:
    """Where KeOps compiles to: ``$KEOPS_CACHE_FOLDER``, else ``<repo>/.cache/keops`` (ignored by
    git; NOT the per-session operator cache, so compiled formulas survive test sessions)."""
    env = os.environ.get("KEOPS_CACHE_FOLDER")
    if env:
        return Path(env)
    base = config.REPO_ROOT / ".cache" if config.REPO_ROOT is not None else Path.home() / ".cache" / "shapelib"
    return base / "keops"


def _keops_env() -> dict:
    folder = keops_cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return {"KEOPS_CACHE_FOLDER": str(folder), "KEOPS_VERBOSE": "0", "PYKEOPS_VERBOSE": "0"}


_PROBE_SCRIPT = r"""
import sys, torch
from pykeops.torch import LazyTensor
dev = torch.device(sys.argv[1])
x, y = torch.randn(200, 3, device=dev), torch.randn(300, 3, device=dev)
D = ((LazyTensor(x[:, None, :]) - LazyTensor(y[None, :, :])) ** 2).sum(-1)
idx = D.argmin(dim=1).view(-1).cpu()
ref = torch.cdist(x, y).argmin(1).cpu()
assert (idx == ref).float().mean() > 0.99, "KeOps argmin disagrees with torch"
if dev.type == "cuda":  # the soft map's own reduction too (a second formula, compiled on the GPU)
    V = torch.randn(300, 4, device=dev)
    out = (D * -0.5).sumsoftmaxweight(LazyTensor(V[None, :, :]), axis=1)
    want = torch.softmax(-0.5 * torch.cdist(x, y) ** 2, 1) @ V
    assert (out - want).abs().max() < 1e-3, "KeOps sumsoftmaxweight disagrees with torch"
print("KEOPS_OK")
"""
_KEOPS_VERDICT: dict = {}
_WARNED: set = set()


def keops_available(device="cpu", timeout: float = 300.0) -> tuple[bool, str]:
    """Probe KeOps once per (device type, versions) in a subprocess — a crash there (segfault
    on some CUDA 13 set-ups) cannot take the caller down — and cache the verdict on disk.

    Returns ``(ok, reason)``.
    """
    device = torch.device(device)
    env = _keops_env()
    for k, v in env.items():  # before the first import: keopscore reads them once
        os.environ.setdefault(k, v)
    try:
        import pykeops  # noqa: F401  (version only; the probe itself runs in a subprocess)

        version = pykeops.__version__
    except Exception as exc:  # pragma: no cover - pykeops missing
        return False, f"pykeops does not import: {exc}"
    key = f"{device.type}-pykeops{version}-torch{torch.__version__}-cuda{torch.version.cuda}"
    if key in _KEOPS_VERDICT:
        return _KEOPS_VERDICT[key]
    verdict_file = Path(env["KEOPS_CACHE_FOLDER"]) / f"probe-{key}.json"
    if verdict_file.exists():
        try:
            v = json.loads(verdict_file.read_text())
            _KEOPS_VERDICT[key] = (bool(v["ok"]), str(v["reason"]))
            return _KEOPS_VERDICT[key]
        except Exception:
            pass
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE_SCRIPT, str(device)], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 0 and "KEOPS_OK" in proc.stdout:
            ok, reason = True, "probe passed"
        else:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            ok, reason = False, f"probe exited with code {proc.returncode} ({tail[0][:200]})"
    except subprocess.TimeoutExpired:  # maybe only a busy machine: not remembered on disk
        ok, reason = False, f"probe timed out after {timeout:.0f} s"
        _KEOPS_VERDICT[key] = (ok, reason)
        return ok, reason
    verdict_file.write_text(json.dumps({"ok": ok, "reason": reason}))
    _KEOPS_VERDICT[key] = (ok, reason)
    return ok, reason


def _import_keops():
    for key, value in _keops_env().items():  # before the first import: keopscore reads them once
        os.environ.setdefault(key, value)
    return require("pykeops.torch", "pykeops", purpose="the KeOps backend (backend='keops')").LazyTensor


KEOPS_PAD = 16  # KeOps compiles one formula per dimension: zero-pad dims to a multiple of this


def _pad_cols(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad columns to a multiple of ``KEOPS_PAD`` (distances and products are unchanged;
    ZoomOut's growing sizes 30, 40, …, 130 then reuse a few compiled formulas)."""
    extra = -x.shape[1] % KEOPS_PAD
    return torch.nn.functional.pad(x, (0, extra)) if extra else x


def _keops_sqdist(a, b):
    LazyTensor = _import_keops()
    a_i = LazyTensor(_pad_cols(a)[:, None, :].contiguous())
    b_j = LazyTensor(_pad_cols(b)[None, :, :].contiguous())
    return ((a_i - b_j) ** 2).sum(-1)


def _keops_product(a, b, V, sigma, transpose):
    LazyTensor = _import_keops()
    S = _keops_sqdist(a, b) * (-0.5 / sigma**2)
    d = V.shape[1]
    Vp = _pad_cols(V)
    if not transpose:
        out = S.sumsoftmaxweight(LazyTensor(Vp[None, :, :].contiguous()), axis=1)
    else:
        lse = S.logsumexp(axis=1)  # (n_tgt, 1)
        w = (S - LazyTensor(lse[:, None, :])).exp()
        out = (w * LazyTensor(Vp[:, None, :].contiguous())).sum(axis=0)
    return out[:, :d]


# ----------------------------------------------------------------------------- dispatch


def resolve_backend(backend: str, device) -> str:
    """The concrete backend for ``backend`` on ``device`` (``'auto'``: KeOps on CUDA when its
    probe passes — else one warning and ``'torch'``; ``'torch'`` on CPU). An explicit
    ``'keops'`` whose probe fails raises ``RuntimeError`` with the probe's reason."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: choose one of {BACKENDS}.")
    device = torch.device(device)
    if backend == "keops":
        ok, reason = keops_available(device)
        if not ok:
            raise RuntimeError(f"KeOps is not usable on {device.type}: {reason}. Use backend='torch' "
                               "(chunked, same results) or backend='auto'.")
        return "keops"
    if backend != "auto":
        return backend
    if device.type == "cuda":
        ok, reason = keops_available(device)
        if ok:
            return "keops"
        if device.type not in _WARNED:
            _WARNED.add(device.type)
            warnings.warn(f"KeOps is not usable on {device.type} ({reason}); shapelib.kernels falls back "
                          "to the chunked torch backend (same results, O(chunk·n) memory).", RuntimeWarning)
    return "torch"


class SoftMap:
    """The soft point-to-point map ``Π (n_tgt, n_src)``, ``Π_ij = softmax_j(−‖F_tgt_i − F_src_j‖²/2σ²)``,
    NEVER stored densely (except by ``backend='dense'``, the reference).

    F_src : ``(n_src, p) float`` features of the source shape (the columns of Π).
    F_tgt : ``(n_tgt, p) float`` features of the target shape (the rows: each target point gets a
        distribution over source points). In functional-map notation with ``P21 (n2, n1)``,
        ``SoftMap(F1, F2, σ)`` is ``Π21``: shape 2 = target rows, shape 1 = source columns.
    sigma : blur in feature units (> 0); the paper uses 1e-2.
    backend : see the module docstring. chunk : target rows per block (torch backend; default
        sized so one block is ≤ ``BLOCK_BYTES``, ``BLOCK_BYTES_CUDA`` on a GPU, and at most
        ``CPU_ROWS`` rows on a CPU). logits : ``'auto'`` / ``'float32'`` / ``'float64'``,
        the dtype the torch backend forms float32 features' logits in (module docstring, Precision).

    ``Π @ X`` (``X (n_src, d)`` → ``(n_tgt, d)``), ``Π.T @ Y`` (``Y (n_tgt, d)`` → ``(n_src, d)``),
    ``Π.argmax()`` (``(n_tgt,) long``, = nearest source point) — differentiable w.r.t. F_src,
    F_tgt and X/Y (argmax excepted).
    """

    def __init__(self, F_src: torch.Tensor, F_tgt: torch.Tensor, sigma: float, backend: str = "auto",
                 chunk: int | None = None, logits: str = "auto"):
        _check_features(F_src, F_tgt)
        sigma = float(sigma)
        if not sigma > 0:
            raise ValueError(f"SoftMap: sigma must be > 0, got {sigma}.")
        smallest = (0.5 / torch.finfo(F_src.dtype).max) ** 0.5  # below it 1/(2σ²) overflows the features' dtype
        if sigma < smallest:
            raise ValueError(
                f"SoftMap: sigma={sigma:g} is too small for {F_src.dtype} features: 1/(2σ²) overflows "
                f"{F_src.dtype} (σ must be ≥ {smallest:.1e}), and the map would be NaN. At such a σ the soft map "
                "is the hard nearest-neighbour map: use SoftMap(...).argmax() or kernels.nearest(F_src, F_tgt), "
                "or pass a σ on the scale of the feature distances (the paper uses 1e-2).")
        if logits not in LOGITS:
            raise ValueError(f"SoftMap: logits={logits!r}: choose one of {LOGITS}.")
        self.F_src, self.F_tgt, self.sigma, self.chunk, self.logits = F_src, F_tgt, sigma, chunk, logits
        self.backend = resolve_backend(backend, F_src.device)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.F_tgt.shape[0], self.F_src.shape[0])

    @property
    def T(self) -> "_TransposedSoftMap":
        return _TransposedSoftMap(self)

    def _product(self, V: torch.Tensor, transpose: bool) -> torch.Tensor:
        n = self.shape[0] if transpose else self.shape[1]
        V = _check_values(V, n, self.F_src, "Y" if transpose else "X",
                          "Πᵀ @ Y needs one row per target point" if transpose else "Π @ X needs one row per source point")
        squeeze = V.ndim == 1
        V = V[:, None] if squeeze else V
        backend = self.backend
        if (backend == "sdpa" and transpose) or backend in ("kdtree", "blas"):
            backend = "torch"
        if backend == "torch":
            out = _torch_product(self.F_tgt, self.F_src, V, self.sigma, self.chunk, transpose, self.logits)
            return out[:, 0] if squeeze else out
        b, a = _centered(self.F_src, self.F_tgt)
        if backend == "keops":
            out = _keops_product(a, b, V, self.sigma, transpose)
        elif backend == "sdpa":
            out = _sdpa_product(a, b, V, self.sigma)
        else:  # dense reference
            P = _dense_pi(a, b, self.sigma)
            out = P.T @ V if transpose else P @ V
        return out[:, 0] if squeeze else out

    def __matmul__(self, X: torch.Tensor) -> torch.Tensor:
        """``Π @ X``: ``X (n_src, d)`` (or ``(n_src,)``) → ``(n_tgt, d)``: pulls source functions back
        to the target (row-wise weighted averages)."""
        return self._product(X, transpose=False)

    matmul = __matmul__

    def argmax(self) -> torch.Tensor:
        """``(n_tgt,) long``: the most likely source point of each target point (= nearest neighbour)."""
        return nearest(self.F_src, self.F_tgt, backend=self.backend if self.backend != "sdpa" else "torch",
                       chunk=self.chunk)

    def dense(self) -> torch.Tensor:
        """The full ``(n_tgt, n_src)`` matrix — for tests and small plots only."""
        b, a = _centered(self.F_src, self.F_tgt)
        return _dense_pi(a, b, self.sigma)

    def __repr__(self) -> str:
        return f"SoftMap({self.shape[0]}×{self.shape[1]}, sigma={self.sigma:g}, backend={self.backend!r})"


class _TransposedSoftMap:
    def __init__(self, pi: SoftMap):
        self.pi = pi

    @property
    def shape(self):
        return self.pi.shape[::-1]

    def __matmul__(self, Y):
        """``Πᵀ @ Y``: ``Y (n_tgt, d)`` → ``(n_src, d)`` (pushes target functions forward, mass-weighted)."""
        return self.pi._product(Y, transpose=True)


# ----------------------------------------------------------------------------- nearest / k-NN


def nearest(F_src: torch.Tensor, F_tgt: torch.Tensor, backend: str = "auto", chunk: int | None = None,
            return_distances: bool = False):
    """For each target row, the index of the nearest source row.

    F_src ``(n_src, p)``, F_tgt ``(n_tgt, p)`` → ``(n_tgt,) long`` in ``[0, n_src)`` (and, with
    ``return_distances``, the ``(n_tgt,)`` squared distances). Brute force by chunked GEMM
    (``torch``; ``blas``: float32 GEMM with a float64 check of the near-ties, the CPU default for
    float64 points) or a KeOps ``argmin`` reduction: exact, memory ``O(chunk · n_src)``. Not
    differentiable (indices).
    """
    idx, d2 = knn(F_tgt, 1, Y=F_src, backend=backend, chunk=chunk)
    return (idx[:, 0], d2[:, 0]) if return_distances else idx[:, 0]


#: unit roundoff of float32 and float64 (the ``u`` of the error bounds in :func:`_nearest_blas`)
_U32, _U64 = 2.0 ** -24, 2.0 ** -53
#: :func:`_nearest_blas` checks at most this many candidate pairs per ambiguous row one by one in
#: float64; rows with more get their whole row recomputed in float64 (the ``'torch'`` search)
_MAX_CANDIDATES = 32


def _nearest_blas(X: torch.Tensor, Y: torch.Tensor, rows: int):
    """Exact nearest row of ``Y (m, p)`` for each row of ``X (n, p)`` (float32 or float64, CPU,
    detached): ``(idx (n,) long, sq_dist (n,) float64)`` — the ``'blas'`` search. Both are
    centred on the mean of ``Y`` in float64 first, as the ``'torch'`` search centres them.

    1. Ranking scores ``|y_j|² − 2 x_i·y_j`` by one float32 GEMM per block of ``rows`` rows
       (``[−2x_i, 1]·[y_j, |y_j|²]``, numpy's BLAS — OpenBLAS, 2-3× the speed of torch's float64 GEMM
       through MKL on one thread of these AMD CPUs), then the block's row minimum and second minimum.
    2. A rigorous bound ``e_i`` on the error of every score of row ``i`` (rounding the inputs to
       float32 and the float32 sum of ``p + 1`` products, the worst case of any summation order,
       plus the float64 error of the ``'torch'`` search): a row whose second-best score exceeds its
       best by more than ``2 e_i`` has its float32 argmin as exact nearest neighbour.
    3. Any other row: every column within ``2 e_i`` of its best is scored again in float64,
       ``|y_j|² − 2 x_i·y_j`` (its whole row by the ``'torch'`` search when more than
       :data:`_MAX_CANDIDATES` columns are), lowest index first among equal scores.

    For float64 points the result is the ``'torch'`` search's (the same float64 scores, the same
    lowest-index rule): the two can differ only where two scores of a row agree to float64 rounding
    (~1e-16 relative), whose order depends on the summation order of each GEMM. For float32 points
    it is their exact nearest neighbour (scored in float64), where the ``'torch'`` search ranks in
    float32 and may swap two neighbours whose distances agree to float32 rounding.
    """
    n, p = X.shape
    m = Y.shape[0]
    X, Y = X.double(), Y.double()
    mu = Y.mean(0)
    Xc, Yc = X - mu, Y - mu
    y2 = (Yc * Yc).sum(1)
    X64, Y64, y2_64 = Xc.numpy(), Yc.numpy(), y2.numpy()
    xn = np.sqrt(np.einsum("ij,ij->i", X64, X64))
    ymax, y2max = float(np.sqrt(y2_64.max())), float(y2_64.max())
    g32 = (p + 1) * _U32 / (1 - (p + 1) * _U32)
    g64 = (p + 2) * _U64 / (1 - (p + 2) * _U64)
    # |score32 - score| ≤ 4.0001u|x||y| (inputs rounded) + γ_{p+1}·Σ|terms| + u|y|² (|y|² rounded),
    # and the float64 scores of the 'torch' search are within γ64·Σ|terms| of the exact ones
    terms = 2 * xn * ymax * (1 + _U32) + y2max * (1 + _U32)
    margin = 2.02 * (4.0001 * _U32 * xn * ymax + (g32 + g64) * terms + _U32 * y2max) + 1e-30  # 2 e_i, 1 % slack
    Ya = np.empty((m, p + 1), np.float32)
    Ya[:, :p] = Y64
    Ya[:, p] = y2_64
    Xa = np.empty((n, p + 1), np.float32)
    np.multiply(X64, -2.0, out=Xa[:, :p])
    Xa[:, p] = 1.0
    YaT = Ya.T
    idx = np.empty(n, np.int64)
    buf = np.empty((min(rows, n), m), np.float32)
    redo = []  # rows with too many candidates: whole row in float64
    for i in range(0, n, rows):
        r = min(rows, n - i)
        D = buf[:r]
        np.matmul(Xa[i:i + r], YaT, out=D)
        j = D.argmin(1)
        ar = np.arange(r)
        best = D[ar, j]
        D[ar, j] = np.inf
        thr = best + margin[i:i + r]
        amb = np.flatnonzero(D.min(1) <= thr)
        idx[i:i + r] = j
        if amb.size == 0:
            continue
        cand = D[amb] <= thr[amb, None]
        cand[np.arange(amb.size), j[amb]] = True
        counts = cand.sum(1)
        few = counts <= _MAX_CANDIDATES
        redo.append(i + amb[~few])
        rr, cc = np.nonzero(cand[few])
        if rr.size == 0:
            continue
        rows_abs = i + amb[few][rr]
        s = y2_64[cc] - 2.0 * np.einsum("ij,ij->i", X64[rows_abs], Y64[cc])
        order = np.lexsort((cc, s, rows_abs))  # per row: smallest score, then lowest index
        first = np.ones(order.size, bool)
        first[1:] = rows_abs[order[1:]] != rows_abs[order[:-1]]
        idx[rows_abs[order[first]]] = cc[order[first]]
    idx_t = torch.from_numpy(idx)
    redo = np.concatenate(redo) if redo else np.zeros(0, np.int64)
    if redo.size:
        R = torch.from_numpy(redo)
        idx_t[R] = torch.addmm(y2[None, :], Xc[R], Yc.T, alpha=-2.0).min(1).indices
    return idx_t, ((Xc - Yc[idx_t]) ** 2).sum(1)


@torch.no_grad()
def knn(X: torch.Tensor, k: int, Y: torch.Tensor | None = None, backend: str = "auto", chunk: int | None = None,
        exclude_self: bool = True):
    """The ``k`` nearest rows of ``Y`` (default ``X`` itself) for every row of ``X``.

    X ``(n, p)``, Y ``(m, p)`` → ``(idx (n, k) long, sq_dist (n, k) float)``, nearest first.
    With ``Y=None`` and ``exclude_self`` the point itself is left out (k-NN graph construction).
    Chunked over rows of X (``torch``) or a KeOps ``argKmin``; any device.
    """
    self_graph = Y is None
    Y = X if Y is None else Y
    _check_features(Y, X, "knn")
    m = Y.shape[0]
    k = int(k)
    if not 1 <= k <= m - (1 if self_graph and exclude_self else 0):
        raise ValueError(f"knn: k={k} must be in [1, {m - (1 if self_graph and exclude_self else 0)}] for {m} points.")
    drop = self_graph and exclude_self
    blas_ok = (k == 1 and not drop and X.device.type == "cpu" and X.dtype in (torch.float32, torch.float64)
               and bool(X.detach().abs().max() < 1e15) and bool(Y.detach().abs().max() < 1e15))
    if backend == "auto" and blas_ok and X.dtype == torch.float64:  # float32: 'blas' on request (see _nearest_blas)
        backend = "blas"
    backend = resolve_backend(backend, X.device)  # 'sdpa' / 'dense' search like 'torch'
    if backend == "blas":
        if blas_ok:
            j, d = _nearest_blas(X.detach(), Y.detach(), _rows_per_chunk(m, chunk, device=X.device, cpu_rows=CPU_ROWS))
            return j[:, None], d.to(X.dtype)[:, None]
        backend = "torch"  # k > 1, self-graphs, GPUs: the chunked torch search
    Xc, Yc = X.detach() - Y.detach().mean(0), Y.detach() - Y.detach().mean(0)
    if backend == "kdtree":
        from scipy.spatial import cKDTree

        kk = k + 1 if drop else k
        d, j = cKDTree(Yc.cpu().double().numpy()).query(Xc.cpu().double().numpy(), k=kk, workers=-1)
        j = torch.as_tensor(j.reshape(len(Xc), kk), device=X.device)
        d = torch.as_tensor(d.reshape(len(Xc), kk), device=X.device, dtype=X.dtype) ** 2
        if drop:
            keep = j != torch.arange(len(Xc), device=X.device)[:, None]
            keep[:, -1] &= ~keep[:, :-1].all(1)
            j, d = j[keep].view(len(Xc), k), d[keep].view(len(Xc), k)
        return j, d
    if backend == "keops":
        D = _keops_sqdist(Xc, Yc)
        kk = k + 1 if drop else k
        idx = D.argKmin(kk, dim=1).view(X.shape[0], kk).long()
        if drop:  # remove self (first occurrence of i), keep the k others in order
            keep = idx != torch.arange(X.shape[0], device=X.device)[:, None]
            keep[:, -1] &= ~keep[:, :-1].all(1)  # self absent (duplicates): drop the farthest
            idx = idx[keep].view(X.shape[0], k)
        d2 = ((Xc[:, None, :] - Yc[idx]) ** 2).sum(-1)
        return idx, d2
    rows = _rows_per_chunk(m, chunk, device=X.device)
    idx = torch.empty((X.shape[0], k), dtype=torch.long, device=X.device)
    dist = torch.empty((X.shape[0], k), dtype=X.dtype, device=X.device)
    y2 = (Yc * Yc).sum(1)
    for i in range(0, X.shape[0], rows):
        xc = Xc[i:i + rows]
        D = torch.addmm(y2[None, :], xc, Yc.T, alpha=-2.0)  # |x|² is constant per row: left out of the ranking
        if drop:
            r = torch.arange(i, i + xc.shape[0], device=X.device)
            D[r - i, r] = float("inf")
        d, j = torch.topk(D, k, dim=1, largest=False) if k > 1 else D.min(1, keepdim=True)
        idx[i:i + rows], dist[i:i + rows] = j, (d + (xc * xc).sum(1)[:, None]).clamp_min_(0.0)
    return idx, dist
