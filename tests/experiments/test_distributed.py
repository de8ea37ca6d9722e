"""Data-parallel training (``make train MODEL=NAME NPROC=k``, :mod:`shapelib.experiments.distributed`).

The toy protocol with steps of 5 of its 6 items (shards of 3 + 2 and 1 + 0 items over 2 processes),
trained by 2 CPU processes (gloo) under torchrun, ends with the weights of the single-process run; a
2-process run stopped after its first epoch and resumed equals an uninterrupted one (with dropout:
each process draws its own masks, the same ones again on resume). Hostile requests are refused
before anything starts.

Run as a script, this file is the torchrun worker: it registers the test protocols and runs the
runner's command line (``python -m torch.distributed.run ... test_distributed.py train toy_ddp``).
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from shapelib.experiments import checkpoints, distributed, registry, runner
from shapelib.experiments.registry import Protocol

from _protocol_toy import TOY, toy_build, toy_eval, toy_items, toy_loss

REPO = Path(__file__).resolve().parents[2]
#: 6 items, steps of 5: each epoch a step of 5 items (3 + 2 over 2 processes) and one of 1 (1 + 0).
#: Weight decay makes the scale of the gradient count (Adam alone is blind to it: a doubled gradient,
#: or one averaged instead of summed, would give the same weights).
TOY_DDP = dict(TOY, batch_size=5, weight_decay=1.0, epochs=6)


def _build_without_dropout(cfg):
    model = toy_build(cfg)
    model[1].p = 0.0          # a deterministic loss: the 2-process run must give the 1-process weights
    return model


PROTOCOLS = {
    "toy_ddp": Protocol("toy_ddp", "toy regression, steps of 5 items, no dropout", TOY_DDP, _build_without_dropout,
                        toy_items, toy_loss, toy_eval, ["s0"]),
    "toy_ddp_dropout": Protocol("toy_ddp_dropout", "toy regression, steps of 5 items, dropout 0.2", TOY_DDP, toy_build,
                                toy_items, toy_loss, toy_eval, ["s0"]),
}

needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this torch build has no torch.distributed with the gloo backend")


@pytest.fixture
def toy_ddp(monkeypatch):
    for name, proto in PROTOCOLS.items():
        monkeypatch.setitem(registry._PROTOCOLS, name, proto)


def _torchrun(ckpt: Path, *argv: str, fails: bool = False) -> str:
    """Run ``train ...`` in 2 CPU processes under torchrun with checkpoints in ``ckpt``; its output
    (``fails``: it must fail, and the output includes the error stream)."""
    cmd = distributed.launch_command(2, list(argv), entry=(str(Path(__file__).resolve()),))
    env = {**os.environ, "SHAPELIB_CHECKPOINTS": str(ckpt), "SHAPELIB_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "SHAPELIB_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    if fails:
        assert out.returncode != 0, out.stdout
        return out.stdout + out.stderr
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """Both test protocols trained straight through by 2 processes (one torchrun launch): their folder."""
    ckpt = tmp_path_factory.mktemp("straight")
    _torchrun(ckpt, "train", "toy_ddp", "toy_ddp_dropout")
    return ckpt


def _weights(ckpt: Path, name: str, monkeypatch) -> dict:
    monkeypatch.setenv("SHAPELIB_CHECKPOINTS", str(ckpt))
    model, record = registry.load_model(name)
    return {k: v.clone() for k, v in model.state_dict().items()}, record


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@needs_gloo
def test_two_processes_train_the_single_process_weights(ckpt_dir, toy_ddp, monkeypatch, straight):
    """Same global batch, gradients summed over the 2 processes: the weights, the loss curve and the
    evaluation of the single-process run; rank 0 alone prints and writes the record."""
    t0 = time.perf_counter()
    one = runner.train("toy_ddp", show_progress=False)
    w_one, _ = _weights(ckpt_dir, "toy_ddp", monkeypatch)
    w_two, two = _weights(straight, "toy_ddp", monkeypatch)
    diff = _max_diff(w_one, w_two)
    print(f"\nmax |w(1 process) - w(2 processes)| = {diff:.3g} ({time.perf_counter() - t0:.1f} s)")
    assert diff < 1e-5
    assert two.status == "complete" and two.epochs_done == 6 and two.steps_done == one.steps_done == 12
    torch.testing.assert_close(torch.tensor(two.loss_curve), torch.tensor(one.loss_curve), rtol=1e-5, atol=1e-6)
    assert two.evaluation["summary"]["mse"] == pytest.approx(one.evaluation["summary"]["mse"], rel=1e-5)
    assert sorted(p.name for p in straight.iterdir() if not p.name.endswith(".lock")) == [
        "toy_ddp.json", "toy_ddp.pt", "toy_ddp_dropout.json", "toy_ddp_dropout.pt"]


@needs_gloo
def test_a_stopped_two_process_run_resumes_to_the_uninterrupted_result(ckpt_dir, toy_ddp, monkeypatch, straight):
    """With dropout (random masks per process): 2 processes stopped after epoch 1 (--max-minutes 0)
    and started again give the weights of 2 processes run straight through; rank 0 alone prints."""
    t0 = time.perf_counter()
    out = _torchrun(ckpt_dir, "train", "toy_ddp_dropout", "--max-minutes", "0", "--train-only")
    assert out.count("2 processes") == 1, out                          # rank 0 alone prints
    assert checkpoints.load_state("toy_ddp_dropout")["epoch"] == 1 and checkpoints.available() == []
    with checkpoints.run_lock("toy_ddp_dropout"):          # another run holds it: rank 0's refusal ends both
        out = _torchrun(ckpt_dir, "train", "toy_ddp_dropout", fails=True)
    assert "toy_ddp_dropout: already running" in out and checkpoints.load_state("toy_ddp_dropout")["epoch"] == 1
    out = _torchrun(ckpt_dir, "train", "toy_ddp_dropout")
    assert out.count("resuming at epoch 1/6") == 1 and out.count("toy_ddp_dropout: saved (complete") == 1, out
    w_straight, uninterrupted = _weights(straight, "toy_ddp_dropout", monkeypatch)
    w_resumed, resumed = _weights(ckpt_dir, "toy_ddp_dropout", monkeypatch)
    diff = _max_diff(w_straight, w_resumed)
    print(f"\nmax |w(2 processes, straight) - w(2 processes, stopped + resumed)| = {diff:.3g} "
          f"({time.perf_counter() - t0:.1f} s)")
    assert diff < 1e-6
    assert resumed.status == "complete" and [(g["from_epoch"], g["to_epoch"]) for g in resumed.segments] == [(0, 1), (1, 6)]
    torch.testing.assert_close(torch.tensor(resumed.loss_curve), torch.tensor(uninterrupted.loss_curve), rtol=1e-6, atol=1e-7)


def test_hostile_requests_are_refused_before_anything_starts(ckpt_dir, toy, toy_ddp, monkeypatch, capsys):
    """NPROC not a positive integer, more processes than a step has items, more than the GPUs, a
    --finalize over processes: one-line errors naming the fix; a valid request execs torchrun."""
    for bad in ("0", "-1", "two", "2.5", "", "1 2"):
        with pytest.raises(checkpoints.CheckpointError, match="positive integer"):
            distributed.check_nproc(bad)
    assert distributed.check_nproc(" 3 ") == 3
    launched = []
    monkeypatch.setattr(runner.os, "execv", lambda path, cmd: launched.append(cmd))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cases = [(["train", "toy_ddp", "--nproc", "abc"], "NPROC='abc' is not a number of processes"),
             (["train", "toy", "--nproc", "2"], r"batch_size=1.*NPROC=1"),
             (["train", "toy_ddp", "--nproc", "6"], r"batch_size=5.*NPROC<=5"),
             (["train", "toy_ddp", "--nproc", "2", "--finalize"], "leave NPROC"),
             (["train", "toy_ddp", "--nproc", "2", "--device", "cuda:0"], "names one GPU")]
    if torch.cuda.device_count() < 4:
        cases.append((["train", "toy_ddp", "--nproc", "4", "--device", "cuda"], "CUDA device"))
    for argv, message in cases:
        assert runner.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and re.search(message, err), (argv, err)
    assert launched == []
    # a valid request: torchrun with the same train command, --standalone on one machine ...
    runner.main(["train", "toy_ddp", "--nproc", "2", "--max-minutes", "5", "--device", "cpu"])
    cmd = launched.pop()
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "2"] and "--standalone" in cmd
    assert cmd[cmd.index("-m", 2):] == ["-m", "shapelib.experiments", "train", "toy_ddp", "--max-minutes", "5.0",
                                        "--device", "cpu"]
    # ... the rendezvous flags of several machines passed through instead
    runner.main(["train", "toy_ddp", "--nproc", "2", "--torchrun-args=--nnodes 2 --rdzv-endpoint node0:29500"])
    cmd = launched.pop()
    assert "--standalone" not in cmd and cmd[5:9] == ["--nnodes", "2", "--rdzv-endpoint", "node0:29500"]


def test_the_makefile_launches_torchrun_only_with_nproc():
    """`make train MODEL=x` runs exactly the command it always ran; NPROC and TORCHRUN_ARGS add the flags."""
    def dry(*args):
        out = subprocess.run(["make", "-n", "-s", "train", *args], cwd=REPO, capture_output=True, text=True)
        return [line for line in out.stdout.splitlines() if "shapelib.experiments train" in line][-1].strip()

    if subprocess.run(["make", "--version"], capture_output=True).returncode != 0:
        pytest.skip("make is not installed")
    assert dry("MODEL=x").endswith("-m shapelib.experiments train x")
    assert dry("MODEL=x", "NPROC=2").endswith("train x  --nproc '2'")
    assert dry("MODEL=x", "NPROC=2", "TORCHRUN_ARGS=--nnodes 2").endswith("--nproc '2' --torchrun-args='--nnodes 2'")


if __name__ == "__main__":         # the torchrun worker of the tests above
    registry._PROTOCOLS.update(PROTOCOLS)
    sys.exit(runner.main(sys.argv[1:]))
