"""Data-parallel training of a protocol over several processes (``make train MODEL=NAME NPROC=k``).

``make train MODEL=NAME NPROC=k`` runs ``python -m shapelib.experiments train NAME --nproc k``, which
checks the request (:func:`check_nproc`, :func:`check_batch`) and replaces itself with PyTorch's own
launcher, ``torchrun --nproc_per_node k [TORCHRUN_ARGS] -m shapelib.experiments train NAME``
(:func:`launch_command`). Every process torchrun starts finds its place from torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): :func:`from_env` joins the
process group (``nccl`` with one GPU per process when CUDA is used, ``gloo`` on CPU) and returns a
:class:`World`, which the runner hands to :func:`shapelib.train.fit`. Several machines: the same
command on each, with torchrun's rendezvous flags (``TORCHRUN_ARGS="--nnodes 2 --rdzv-backend c10d
--rdzv-endpoint host:29500 --rdzv-id RUN"``).

What a step is does not change: each of the ``batch_size`` items of a step goes to one process
(:meth:`World.shard`, item ``i`` of the batch to rank ``i mod k``), every process backpropagates
``loss / batch_size`` of its items, and :meth:`World.reduce_gradients` sums the gradients over the
processes: the result is the single-process gradient of the same batch (up to the order of float
additions), so the weights stay the weights of the single-process run and a record does not depend on
``NPROC``. The global batch is the protocol's; ``batch_size < k`` would leave processes without items
and is refused (``NPROC=1`` trains it as before).

Why an explicit all-reduce, not :class:`torch.nn.parallel.DistributedDataParallel`: DDP *averages*
gradients over the processes, which is the batch's gradient only when every process has as many items
(a batch of 5 over 2 processes, or the last short batch of an epoch, would be weighted wrongly); it
reduces at every backward, so the items of a process's shard would need ``no_sync``; and it wraps the
model, whose ``module.`` names would reach the losses (which call the model's own methods) and the
checkpoints. One all-reduce of the flattened gradients per step, after the shard's backward passes,
is exact for any shard sizes and leaves the model, the losses and :func:`~shapelib.train.fit` as they
are but for a three-line hook. Parameters without a gradient on any process stay without one (Adam
skips them, as in the single-process run).

Only rank 0 reads and writes the run's files (the lock, its resume state every epoch, the progress
log, the checkpoint and record) and prints; the others receive what it read (the resume state) and
its decisions (stop after this epoch, or an error) through :meth:`World.on_main`, and wait for it
there, so all processes resume from the same state and stop at the same epoch.

What is not the single-process run's, and why: random numbers (dropout) are drawn per process (rank
``r`` seeds ``seed + epoch + r * 1000003`` at each epoch, rank 0 the single-process seed), so a
stochastic loss is the same in distribution, not bit for bit — a resumed run still equals an
uninterrupted one of the same ``NPROC``; floating buffers (BatchNorm running statistics) are averaged
over the processes after each step, each process having seen its shard only; and a loss that counts
its own calls (a schedule by step) sees the calls of its shard only — the protocols schedule by
``start_epoch`` instead, and :func:`check_batch` refuses the ones whose ``batch_size`` cannot be shared.
"""
from __future__ import annotations

import datetime
import logging
import os
import shlex
import sys

import torch
import torch.distributed as dist

from .. import config
from .checkpoints import CheckpointError

#: how long a process waits for the others at a collective (rank 0 writing a state, loading data)
TIMEOUT = datetime.timedelta(hours=3)
#: rank ``r`` seeds torch's RNG with ``seed + epoch + r * SEED_STRIDE`` at each epoch
SEED_STRIDE = 1_000_003


def check_nproc(value) -> int:
    """``value`` (``NPROC``, ``--nproc``) as a positive integer, else a CheckpointError saying how to give it."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise CheckpointError(f"NPROC={value!r} is not a number of processes: give a positive integer, e.g. "
                              "`make train MODEL=NAME NPROC=2` (or leave NPROC out for one process).")
    return n


def check_batch(name: str, cfg: dict, size: int) -> None:
    """Refuse to share protocol ``name`` over ``size`` processes when its batch (``cfg['batch_size']``,
    default 1) has fewer items than processes: some would have nothing to do at every step."""
    batch = int(cfg.get("batch_size", 1))
    if size > batch:
        raise CheckpointError(
            f"{name}: trains {batch} item{'s' if batch > 1 else ''} per step (batch_size={batch}), which cannot be "
            f"shared by {size} processes (each takes whole items of a step, the step stays the protocol's): "
            + (f"use NPROC<={batch}." if batch > 1 else "train it in one process (NPROC=1, or leave NPROC out)."))


def check_devices(nproc: int, device=None) -> None:
    """Refuse more processes per machine than CUDA devices when training on CUDA (one GPU each)."""
    wanted = torch.device(device) if device is not None else config.device()
    if wanted.type != "cuda":
        return
    if wanted.index is not None and nproc > 1:
        raise CheckpointError(f"--device {wanted} names one GPU, but each of the NPROC={nproc} processes takes its own "
                              "(that of its local rank): pass --device cuda, or NPROC=1 to use that GPU alone.")
    count = torch.cuda.device_count()
    if count == 0:
        raise CheckpointError(f"--device {wanted}, but this machine has no CUDA device: train the NPROC={nproc} "
                              "processes on CPU (TRAIN_ARGS=\"--device cpu\", gloo), or on a machine with GPUs.")
    if nproc > count:
        raise CheckpointError(f"NPROC={nproc} processes on this machine, but it has {count} CUDA device(s) (one per "
                              f"process): use NPROC<={count}, or TRAIN_ARGS=\"--device cpu\" to train on CPU "
                              "processes (gloo).")


def launch_command(nproc: int, argv: list[str], torchrun_args: str = "",
                   entry: tuple[str, ...] = ("-m", "shapelib.experiments")) -> list[str]:
    """The torchrun command that runs ``python -m shapelib.experiments`` (or ``entry``, a script) with
    ``argv`` in ``nproc`` processes per machine (``torchrun_args``: its rendezvous flags for several
    machines; without them a single machine, ``--standalone``)."""
    extra = shlex.split(torchrun_args or "")
    if not any(a.startswith(("--nnodes", "--rdzv", "--master", "--standalone")) for a in extra):
        extra = ["--standalone", *extra]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), *extra,
            *entry, *argv]


def launched() -> bool:
    """Whether this process was started by torchrun (its environment names a world)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


class World:
    """This process's place among the ``size`` processes of a data-parallel run (rank 0 the main one).
    ``World()`` is the single process: every method is then the plain thing."""

    def __init__(self, rank: int = 0, size: int = 1, device=None):
        self.rank, self.size = int(rank), int(size)
        self.device = torch.device(device) if device is not None else None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch):
        """This process's items of a step's ``batch``: every ``size``-th, from its rank."""
        return batch[self.rank::self.size]

    def seed(self, seed: int) -> int:
        """This process's seed where a single process seeds ``seed`` (an epoch of :func:`~shapelib.train.fit`; rank 0: ``seed``)."""
        return seed + self.rank * SEED_STRIDE

    def sum(self, value: float) -> float:
        """``value`` summed over the processes (the loss of the whole epoch from each one's share)."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t)

    def reduce_gradients(self, model: torch.nn.Module) -> None:
        """Sum the gradients of ``model``'s trainable parameters over the processes (one all-reduce of
        the flattened gradients and of a has-gradient flag per parameter), so each process holds the
        gradient of the whole batch; average its floating buffers (BatchNorm running statistics)."""
        if self.size == 1:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        if params:
            dtype = params[0].dtype if all(p.dtype == params[0].dtype for p in params) else torch.float64
            dev = self._comm_device()
            parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(dev, dtype) for p in params]
            flags = torch.tensor([p.grad is not None for p in params], dtype=dtype, device=dev)
            flat = torch.cat(parts + [flags])
            dist.all_reduce(flat)
            has_grad = (flat[-len(params):] > 0).tolist()      # on some process
            offset = 0
            for p, has in zip(params, has_grad):
                g = flat[offset:offset + p.numel()]
                offset += p.numel()
                p.grad = g.view_as(p).to(p.device, p.dtype).clone() if has else None
        buffers = [b for b in model.buffers() if b.is_floating_point()]
        if buffers:
            dev = self._comm_device()
            flat = torch.cat([b.reshape(-1).to(dev, torch.float64) for b in buffers])
            dist.all_reduce(flat)
            flat /= self.size
            offset = 0
            for b in buffers:
                b.copy_(flat[offset:offset + b.numel()].view_as(b))
                offset += b.numel()

    def on_main(self, fn):
        """Run ``fn()`` on rank 0 alone and give every process its result (rank 0 reads and writes the
        run's files; the others wait here). An error of rank 0 is raised on every process — a
        CheckpointError as one, so each ends with its one-line message."""
        if self.size == 1:
            return fn()
        box, error = [None], None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception as exc:           # noqa: BLE001 - passed on, then raised again here
                error = exc
                box[0] = ("error", type(exc).__name__, str(exc), isinstance(exc, CheckpointError))
        dist.broadcast_object_list(box, src=0, device=self._comm_device())
        if error is not None:
            raise error
        if box[0][0] == "error":
            _, kind, message, checkpoint_error = box[0]
            if checkpoint_error:
                raise CheckpointError(message)
            raise RuntimeError(f"rank 0 failed: {kind}: {message}")
        return box[0][1]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if self.device is not None and self.device.type == "cuda" else torch.device("cpu")


def from_env(device=None) -> World:
    """This process's :class:`World` from torchrun's environment, joining the process group (gloo on
    CPU, nccl on CUDA with the GPU of its local rank); ``World()`` outside torchrun or alone in it.
    ``device``: the runner's ``--device`` (default: CUDA when present)."""
    if not launched() or int(os.environ["WORLD_SIZE"]) == 1:
        return World()
    if not dist.is_available():
        raise CheckpointError("this torch build has no torch.distributed: train with NPROC=1.")
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    wanted = torch.device(device) if device is not None else config.device()
    if wanted.type == "cuda":
        check_devices(int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1)), device)
        if not dist.is_nccl_available():
            raise CheckpointError("CUDA training over several processes needs NCCL, which this torch build lacks: "
                                  "use NPROC=1, or TRAIN_ARGS=\"--device cpu\" (gloo).")
        wanted = torch.device("cuda", local_rank)
        torch.cuda.set_device(wanted)
        backend = "nccl"
    else:
        if not dist.is_gloo_available():
            raise CheckpointError("CPU training over several processes needs gloo, which this torch build lacks: "
                                  "use NPROC=1.")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=TIMEOUT)
    return World(rank, size, wanted)


def leave() -> None:
    """Leave the process group (at the end of a torchrun process), once every process has received
    all it was sent (a process that exits while a peer still reads from it aborts the peer), and end
    the process: with gloo, a worker that went on to the interpreter's normal shutdown after
    ``destroy_process_group`` aborted there now and then ("terminate called without an active
    exception", SIGABRT with no Python frame left: in 4 of 12 runs of tests/experiments/test_distributed.py
    on a busy 2-core machine, none of 8 since), which torchrun reports as a failed run although every
    file was written. So the streams are flushed and the worker exits at once with status 0. Does
    nothing outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)
