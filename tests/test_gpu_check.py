"""benchmarks/gpu_check.py keeps working where there is no GPU: its CPU smoke mode runs every
correctness check at small sizes and the timing code at toy sizes (CI runs it; the GPU run is
`make gpu-check` on a CUDA machine)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_smoke(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu-smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["mode"] == "cpu-smoke" and r["checks_failed"] == 0 and r["checks_passed"] >= 30
    checks = {c["check"]: c for c in r["checks"]}
    for what in ("soft map torch Pi@X", "soft map sdpa", "nearest/knn torch", "DiffusionNet implicit",
                 "MEPS", "CPNet", "implicit matching"):
        assert any(k.startswith(what) for k in checks), f"no check named {what}…"
    # the check sees the float32 expansion error it guards against: forced float32 logits show
    # it at sigma = 1e-2, the default (float64-formed logits) does not
    assert checks["soft map torch logits=float32 Pi@X sigma=1e-2 value"]["error"] > 1e-3
    assert checks["soft map torch Pi@X sigma=1e-2 value"]["error"] < 1e-5
    assert any(t.get("status") == "ok" for t in r["timings"]), "no timing row ran"
    assert r["versions"]["torch"] and "device" in r
