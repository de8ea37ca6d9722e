"""Hostile input on the reproduction path (issue cases 8, 9, 11, 12 and the record messages of 15):
concurrent runs, the size limit, damaged records, a damaged listing, unknown protocol names."""
import json
import os
import subprocess
import sys

import pytest
import torch

from shapelib.experiments import checkpoints, runner
from shapelib.experiments.checkpoints import CheckpointError, Record

from _protocol_toy import TOY, toy_build


def test_a_second_run_of_the_same_protocol_is_refused_while_the_first_holds_its_lock(ckpt_dir, toy):
    """Case 8: two `make train MODEL=x` at once. The second stops at once, naming the process that
    trains; the first is not disturbed, and the lock is free again when it ends."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        "from shapelib.experiments import checkpoints\n"
        "with checkpoints.run_lock('toy'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(30)\n")], stdout=subprocess.PIPE, text=True, env={**os.environ, "SHAPELIB_CHECKPOINTS": str(ckpt_dir)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match=rf"already running \(pid {holder.pid}\)"):
            runner.train("toy", show_progress=False)
        assert checkpoints.load_state("toy") is None and "toy" not in checkpoints.available()
    finally:
        holder.kill()
        holder.wait()
    assert runner.train("toy", show_progress=False).complete           # released by the holder's death (kill -9)


def test_saves_use_temporary_files_of_their_own(ckpt_dir):
    """Case 8: the state and the weights are written through a temporary file unique to the
    process, so two writers never share (or delete) one; nothing is left behind."""
    checkpoints.save_state("x", {"epoch": 1})
    checkpoints.save("x", toy_build(TOY), {"config": TOY})
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["x.json", "x.pt", "x.state.pt"]
    assert checkpoints._tmp(ckpt_dir / "x.pt").name == f".x.pt.{os.getpid()}.tmp"


def test_a_checkpoint_over_the_size_limit_is_refused_with_its_size(ckpt_dir, monkeypatch):
    """Case 9: the message reads the size before the temporary file is removed (it used to raise
    FileNotFoundError instead of CheckpointError)."""
    monkeypatch.setattr(checkpoints, "MAX_BYTES", 100)
    with pytest.raises(CheckpointError, match=r"would be 0\.\d MB > 0 MB"):
        checkpoints.save("big", torch.nn.Linear(100, 100), {"config": TOY})
    assert list(ckpt_dir.iterdir()) == []


@pytest.mark.parametrize("content, message", [
    (b"[1, 2, 3]", "a training record is a JSON object, got list"),
    (b'{"experiment": "m", "config": [1, 2]}', "field 'config' should be a JSON object, got list"),
    (b'{"experiment": "m", "config": {}, "progress": {}}', "field 'progress' should be a JSON list"),
    (b'{"experiment": "m", "evaluation": {}}', "has no 'config'.*it has: experiment, evaluation"),
    (b"\xff\xfe not utf-8", "not valid UTF-8 JSON"),
    (b"{truncated", "not valid UTF-8 JSON"),
])
def test_a_damaged_record_is_a_checkpoint_error_naming_the_file(ckpt_dir, content, message):
    """Case 11 (and 15, a record without config): never an AttributeError, TypeError or
    UnicodeDecodeError from deep inside, always the file and the fix."""
    (ckpt_dir / "m.json").write_bytes(content)
    (ckpt_dir / "m.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=message) as err:
        checkpoints.load_record("m")
    assert "m.json" in str(err.value) and ("git" in str(err.value) or "retrain" in str(err.value))


def test_a_record_folder_in_place_of_the_file_is_named(ckpt_dir):
    (ckpt_dir / "m.json").mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        checkpoints.load_record("m")


def test_the_listing_names_a_damaged_entry_and_goes_on(ckpt_dir, toy, capsys):
    """Case 12: one damaged record or state does not abort `list`; it is listed as damaged."""
    (ckpt_dir / "toy.json").write_text("[]")
    (ckpt_dir / "toy.pt").write_bytes(b"")
    (ckpt_dir / "fmaps_faust_r_unsupervised.state.pt").write_bytes(b"not a torch file")
    assert runner.main(["list"]) == 0
    out = capsys.readouterr().out
    toy_line = next(line for line in out.splitlines() if line.startswith("toy "))
    fm_line = next(line for line in out.splitlines() if line.startswith("fmaps_faust_r_unsupervised "))
    assert "DAMAGED" in toy_line and "JSON object" in toy_line
    assert "DAMAGED" in fm_line and "resume state" in fm_line
    assert "diffusionnet_faust_table5" in out                    # the entries after them are listed too


@pytest.mark.parametrize("argv", [["train", "../x"], ["evaluate", "no_such_protocol"]])
def test_an_unknown_protocol_name_is_one_line_not_a_traceback(argv, capsys):
    assert runner.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown protocol") and "Traceback" not in err and len(err.splitlines()) == 1


def test_the_weights_mismatch_message_keeps_the_offending_keys(ckpt_dir):
    """Case 15: the names of the missing / unexpected tensors stay in the message."""
    checkpoints.save("m", toy_build(TOY), {"config": TOY})
    other = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Linear(8, 1))
    with pytest.raises(CheckpointError, match=r"Unexpected key\(s\) in state_dict: \"2\.weight\"") as err:
        checkpoints.load("m", other)
    assert "build the model from the checkpoint's config" in str(err.value)


def test_a_record_round_trips_unchanged_through_the_typed_record(tmp_path):
    """Loading and saving a committed record changes nothing in its file (field order, extra fields)."""
    for name in checkpoints.available():
        path = checkpoints.directory() / f"{name}.json"
        rec = checkpoints.load_record(name)
        assert isinstance(rec, Record) and rec.experiment == name
        assert json.dumps(rec.to_dict(), indent=1) + "\n" == path.read_text(), name
    odd = Record.from_dict({"config": {}, "zeta": 1, "experiment": "m", "status": "partial"})
    assert list(odd.to_dict())[:4] == ["config", "zeta", "experiment", "status"] and odd.extra == {"zeta": 1}
