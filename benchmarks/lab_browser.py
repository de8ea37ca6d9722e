"""Run notebooks the way a student does: JupyterLab in a (headless) browser, "Run All", default scale.

    python benchmarks/lab_browser.py                    # notebook 01
    python benchmarks/lab_browser.py 00 01 02 03 04 05 06
    python benchmarks/lab_browser.py 01 --scale standard --show   # a visible browser window

For each notebook it starts JupyterLab from the project venv on a scratch copy of ``notebooks/``
(so autosave never writes outputs into the repository), opens the notebook in Chromium through
selenium, runs "Run All" (JupyterLab's own command) and records:

* the wall time of Run All, and whether any cell raised;
* a screenshot of every interactive 3-D view (plotly) -> ``benchmarks/results/lab_browser_NN_view_K.png``,
  and whether the drawn shape touches the border of its view (a cropped shape does); a view that is
  not drawn within 120 s is recorded as ``"visible": false`` (and printed), not a crash of the run;
* that no solution is visible after Run All: no open solution block, and none of the text of the
  solution functions (``shapelib.solutions``) on screen;
* the scale line printed by the first code cell.

Results go to ``benchmarks/results/lab_browser.json``. The kernels get SHAPELIB_SCALE only when
``--scale`` is given: by default they run at shapelib's default scale, as in ``make lab``.

Needs, outside the project venv (it is a browser test, not a dependency of shapelib):
Debian/Ubuntu ``apt-get install chromium chromium-driver`` and ``pip install selenium pillow numpy``
in any Python (e.g. ``python3 -m venv /tmp/selvenv && /tmp/selvenv/bin/pip install selenium pillow
numpy``; then run this script with that Python). The project venv (``make venv``) provides
JupyterLab and the kernels.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results"
SECRETS: list[str] = []

#: run the JupyterLab command and resolve when every cell has run (NotebookActions.runAll awaits them)
#: starts "Run All" and returns at once; the result lands in window.__shapelibRunAll (polled, so no
#: single WebDriver command outlives the client's read timeout, 120 s, on a long notebook)
RUN_ALL_JS = """
const app = window.jupyterapp;
const t0 = performance.now();
window.__shapelibRunAll = null;
app.commands.execute('notebook:run-all-cells').then(
  ok => { window.__shapelibRunAll = {ok: ok, seconds: (performance.now() - t0) / 1000}; },
  err => { window.__shapelibRunAll = {ok: false, seconds: (performance.now() - t0) / 1000, error: String(err)}; });
"""

#: errors and the first code cell's text, read from the notebook model (independent of what is drawn)
MODEL_JS = """
const nb = window.jupyterapp.shell.currentWidget;
const cells = [];
const model = nb.content.model;
for (let i = 0; i < model.cells.length; i++) {
  const c = model.cells.get(i);
  if (c.type !== 'code') continue;
  const outs = c.outputs.toJSON();
  cells.push({index: i, tags: c.getMetadata('tags') || [],
              errors: outs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
              text: outs.map(o => o.text || (o.data && o.data['text/plain']) || '').join('')});
}
return cells;
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, port: int, token: str, scale: str | None, settings: Path) -> subprocess.Popen:
    """JupyterLab from the project venv on ``root``, with the app exposed to scripts and every cell
    rendered (no windowing), like `make lab` otherwise (MPLBACKEND unset, one thread)."""
    jupyter = REPO / ".venv" / "bin" / "jupyter"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if scale:
        env["SHAPELIB_SCALE"] = scale
    else:
        env.pop("SHAPELIB_SCALE", None)
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(settings / "workspaces")
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    cmd = [str(jupyter), "lab", "--no-browser", f"--port={port}", f"--ServerApp.token={token}",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise RuntimeError("JupyterLab did not start within 120 s")


def browser(show: bool):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary:
        opts.binary_location = binary
    args = ["--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # WebGL (plotly 3-D) without a GPU
    if not show:
        args.append("--headless=new")
    for a in args:
        opts.add_argument(a)
    driver = shutil.which("chromedriver")
    return webdriver.Chrome(options=opts, service=Service(driver) if driver else None)


def _border_touch(png: Path) -> dict:
    """Where the drawn shape is in a screenshot of one plotly view: the bounding box of the pixels
    that are neither background nor the colour bar, and whether it touches the view's border."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    h, w, _ = img.shape
    drawn = np.abs(img - img[2, 2]).sum(axis=2) > 30
    drawn[:, int(0.88 * w):] = False   # the colour bar and its labels sit at the right
    drawn[: int(0.08 * h)] = False     # the title
    if not drawn.any():
        return {"empty": True}
    ys, xs = np.nonzero(drawn)
    box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    edge = 2
    return {"bbox": box, "size": [w, h],
            "touches_border": bool(box[0] <= edge or box[2] >= int(0.88 * w) - edge - 1
                                   or box[1] <= int(0.08 * h) + edge or box[3] >= h - edge - 1)}


SOLUTION_TEXTS = """
import inspect, json
from shapelib import solutions
out = []
for name in solutions.available():
    src = inspect.getsource(getattr(solutions, name))
    body = [ln.strip() for ln in src.splitlines()[1:] if len(ln.strip()) > 40
            and not ln.strip().startswith(('"', '#', 'import ', 'from '))]   # an import is not an answer
    out += [f"def {name}("] + body[:2]
print(json.dumps(out))
"""


def portable(text: str) -> str:
    """``text`` with this machine's data root and repository path replaced by ``$SHAPELIB_DATA`` and
    ``<repo>`` (the JSON is committed and read on other machines)."""
    subs = [(str(REPO), "<repo>")]
    data = os.environ.get("SHAPELIB_DATA")
    if data:
        subs += [(str(Path(data).resolve()), "$SHAPELIB_DATA"), (data, "$SHAPELIB_DATA")]
    for old, new in sorted(subs, key=lambda t: -len(t[0])):
        text = text.replace(old, new)
    return text


def solution_texts() -> list[str]:
    """Distinctive lines of every solution function (what a student must not see), read with the
    project venv's Python (this script may run in another one, where selenium is)."""
    py = REPO / ".venv" / "bin" / "python"
    out = subprocess.run([str(py), "-c", SOLUTION_TEXTS], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_one(driver, port: int, token: str, name: str, timeout: int, shots: Path) -> dict:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"http://127.0.0.1:{port}/lab/tree/{name}?reset&token={token}")   # reset: no restored tabs
    # the notebook asked for, not a tab the restored workspace still shows (JupyterLab reopens the
    # notebooks of the previous page), with its kernel idle
    WebDriverWait(driver, 180).until(lambda d: d.execute_script(
        "const a = window.jupyterapp; const w = a && a.shell.currentWidget;"
        "return !!(w && w.context && w.context.path === arguments[0] && w.sessionContext"
        " && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle');", name))
    t0 = time.perf_counter()
    driver.execute_script(RUN_ALL_JS)
    res = WebDriverWait(driver, timeout, poll_frequency=2).until(
        lambda d: d.execute_script("return window.__shapelibRunAll"))
    wall = time.perf_counter() - t0
    time.sleep(3)  # let plotly draw
    cells = driver.execute_script(MODEL_JS)
    errors = [f"cell {c['index']}: {e}" for c in cells for e in c["errors"]]
    first = next((c["text"] for c in cells if c["text"]), "")
    scale = re.search(r"scale=(\w+)", first)
    # solutions: nothing open, none of their text on screen
    n_open = driver.execute_script("return document.querySelectorAll('details.shapelib-solution[open]').length")
    n_closed = driver.execute_script("return document.querySelectorAll('details.shapelib-solution').length")
    visible = driver.execute_script("return window.jupyterapp.shell.currentWidget.node.innerText")
    leaks = [t for t in SECRETS if t in visible]
    # the check itself must be able to see a solution: open one block, look again, close it
    sensitive = None
    if n_closed:
        driver.execute_script("document.querySelector('details.shapelib-solution').open = true")
        opened = driver.execute_script("return window.jupyterapp.shell.currentWidget.node.innerText")
        sensitive = any(t in opened for t in SECRETS)
        driver.execute_script("document.querySelector('details.shapelib-solution').open = false")
    # every 3-D view
    views = driver.execute_script(       # this notebook's views only (other open tabs are hidden)
        "return Array.from(window.jupyterapp.shell.currentWidget.node.querySelectorAll('.jp-OutputArea .js-plotly-plot'));")
    shots.mkdir(parents=True, exist_ok=True)
    view_info = []
    for k, el in enumerate(views):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
        try:
            WebDriverWait(driver, 120).until(EC.visibility_of(el))   # a loaded machine draws slowly
        except TimeoutException:                  # recorded as a failed view; the other notebooks still run
            view_info.append({"file": None, "visible": False, "touches_border": None})
            continue
        time.sleep(2)
        png = shots / f"lab_browser_{name.split('_')[0]}_view_{k}.png"
        el.screenshot(str(png))
        view_info.append({"file": str(png.relative_to(REPO)), **_border_touch(png)})
    return {"notebook": name, "run_all_ok": bool(res.get("ok")) and not errors, "seconds": round(res["seconds"], 1),
            "wall_seconds": round(wall, 1), "errors": errors[:5], "scale_line": portable(first.splitlines()[0]) if first else "",
            "scale": scale.group(1) if scale else None, "solution_blocks": n_closed, "solution_blocks_open": n_open,
            "solution_text_visible": leaks[:5], "leak_check_sees_an_opened_solution": sensitive, "views": view_info}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("only", nargs="*", default=["01"], help="notebook prefixes (default: 01)")
    ap.add_argument("--scale", help="SHAPELIB_SCALE for the kernels (default: unset, i.e. shapelib's default)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed for one Run All")
    ap.add_argument("--show", action="store_true", help="a visible browser window instead of headless")
    ap.add_argument("--out", default=str(OUT / "lab_browser.json"))
    args = ap.parse_args(argv)

    names = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.name.startswith(tuple(args.only)))
    scratch = Path(tempfile.mkdtemp(prefix="shapelib-lab-"))
    root = scratch / "notebooks"
    shutil.copytree(REPO / "notebooks", root)
    port, token = _free_port(), os.urandom(8).hex()
    lab = start_lab(root, port, token, args.scale, scratch / "settings")
    driver = browser(args.show)
    results = []
    global SECRETS
    SECRETS = solution_texts()
    try:
        for name in names:
            print(f"{name}: Run All ...", end=" ", flush=True)
            r = run_one(driver, port, token, name, args.timeout, OUT)
            results.append(r)
            crop = [v["file"] for v in r["views"] if v.get("touches_border")]
            hidden = sum(1 for v in r["views"] if v.get("visible") is False)
            print(f"{'ok' if r['run_all_ok'] else 'FAILED'} in {r['seconds']:.0f} s at scale {r['scale']}; "
                  f"{len(r['views'])} 3-D view(s){', cropped: ' + ', '.join(crop) if crop else ''}"
                  f"{f', NOT VISIBLE within 120 s: {hidden}' if hidden else ''}; "
                  f"solutions: {r['solution_blocks']} closed block(s), {r['solution_blocks_open']} open, "
                  f"{len(r['solution_text_visible'])} solution line(s) visible", flush=True)
            for e in r["errors"]:
                print("   ", e)
            # a fresh kernel for the next notebook: shut this one down
            driver.execute_script("return window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    finally:
        driver.quit()
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)
    import platform

    rec = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": f"{platform.machine()} · {os.cpu_count()} cores",
           "load_average": os.getloadavg(), "scale_requested": args.scale, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=1))
    print(f"wrote {args.out}")
    bad = [r["notebook"] for r in results if not r["run_all_ok"] or r["solution_blocks_open"] or r["solution_text_visible"]
           or r["leak_check_sees_an_opened_solution"] is False
           or any(v.get("touches_border") for v in r["views"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
