"""Lab defaults set in one place (shapelib.config): threads per process, and figures in a Jupyter
kernel that inherited MPLBACKEND=Agg."""
import json
import os
import subprocess
import sys

import pytest

from shapelib import config

PROBE = """
import json, shapelib, torch, scipy.linalg
from threadpoolctl import threadpool_info
print(json.dumps({"torch": torch.get_num_threads(), "pools": sorted({i["num_threads"] for i in threadpool_info()}),
                  "omp": __import__("os").environ.get("OMP_NUM_THREADS")}))
"""


def _probe(**env):
    base = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and k != "SHAPELIB_THREADS"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_thread_default_and_override_reach_torch_and_blas():
    default = _probe()
    assert default == {"torch": config.DEFAULT_THREADS, "pools": [config.DEFAULT_THREADS], "omp": str(config.DEFAULT_THREADS)}
    two = _probe(SHAPELIB_THREADS="2", OMP_NUM_THREADS="7")
    assert two == {"torch": 2, "pools": [2], "omp": "2"}, "SHAPELIB_THREADS is the one knob"


def test_threads_parsing(monkeypatch):
    monkeypatch.setenv("SHAPELIB_THREADS", "all")
    assert config.threads() == (os.cpu_count() or 1)
    monkeypatch.setenv("SHAPELIB_THREADS", "0")
    assert config.threads() is None and config.apply_thread_defaults(0) is None
    monkeypatch.setenv("SHAPELIB_THREADS", "two")
    with pytest.raises(ValueError, match="SHAPELIB_THREADS='two'.*positive integer"):
        config.threads()


def test_kernel_with_agg_backend_still_shows_figures(tmp_path):
    """A notebook executed with MPLBACKEND=Agg in the environment (as a server started by a
    headless Makefile would pass it on) gets PNG figures once it imports shapelib."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nimport shapelib\nplt.plot([0, 1]); plt.show()"),
        nbformat.v4.new_code_cell("import matplotlib\nprint(matplotlib.get_backend())"),
    ])
    env_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        if env_before is None:
            os.environ.pop("MPLBACKEND")
        else:
            os.environ["MPLBACKEND"] = env_before
    kinds = [list(o.get("data", {})) for o in nb.cells[0].outputs]
    assert any("image/png" in k for k in kinds), f"no figure in the notebook output: {kinds}"
    assert "inline" in nb.cells[1].outputs[0]["text"]


def test_plain_python_keeps_agg():
    out = subprocess.run([sys.executable, "-c", "import shapelib, matplotlib; print(matplotlib.get_backend())"],
                         env={**os.environ, "MPLBACKEND": "Agg"}, capture_output=True, text=True, check=True)
    assert out.stdout.strip().lower() == "agg" and not config.notebook_figures()


def test_lab_is_the_default_scale(monkeypatch):
    """A bare kernel (no SHAPELIB_SCALE) runs at `lab`: quick's sizes, and its first line says how
    to change the scale; `make reproduce` runs lab (CPU) / full (GPU) through batch_scale."""
    monkeypatch.delenv("SHAPELIB_SCALE", raising=False)
    assert config.scale() == "lab" and config.small()
    assert config.pick(1, 2, 3) == 1 and config.pick(1, 2, 3, lab=4) == 4
    info = str(config.run_info())
    assert info.startswith("scale=lab") and "SHAPELIB_SCALE=standard make lab" in info
    assert config.batch_scale() == ("full" if config._cuda_available() else "lab")
    monkeypatch.setenv("SHAPELIB_SCALE", "standard")
    assert config.batch_scale() == "standard" and not config.small() and config.pick(1, 2, 3) == 2
    monkeypatch.setenv("SHAPELIB_SCALE", "paper")
    with pytest.raises(ValueError, match="lab"):
        config.scale()


@pytest.mark.skipif(not __import__("shutil").which("make"), reason="no make")
@pytest.mark.parametrize("scale", [None, "standard"])
def test_make_lab_passes_the_scale_to_the_kernels(scale):
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "SHAPELIB_SCALE"}
    if scale:
        env["SHAPELIB_SCALE"] = scale
    out = subprocess.run(["make", "-n", "-o", ".venv/.installed", "lab"], cwd=repo, env=env,
                         capture_output=True, text=True, check=True).stdout
    lab_line = [ln for ln in out.splitlines() if "jupyter lab" in ln][0]
    assert f"SHAPELIB_SCALE={scale or 'lab'} " in lab_line, lab_line
    assert "scale_hint()" in out, "the banner says which scale is on and how to change it"


def test_reproduce_eta_reads_the_last_run_at_the_same_scale(tmp_path):
    from shapelib.experiments.reproduce import expected_seconds

    (tmp_path / "01_a.json").write_text('{"scale": "lab", "ok": true, "seconds": 30.5}')
    (tmp_path / "02_b.json").write_text('{"scale": "standard", "ok": true, "seconds": 900}')
    (tmp_path / "03_c.json").write_text('{"scale": "lab", "ok": false, "seconds": 5}')
    nbs = [tmp_path / f"{n}.ipynb" for n in ("01_a", "02_b", "03_c", "04_d")]
    assert expected_seconds(tmp_path, nbs, "lab") == {"01_a": 30.5}
    assert expected_seconds(tmp_path, nbs, "standard") == {"02_b": 900.0}
