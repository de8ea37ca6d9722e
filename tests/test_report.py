"""The reproduction report: per-notebook records assembled into one REPORT.md."""
import json

from shapelib.experiments import report
from shapelib.experiments.report import write_report


def _record(out, name, ok=True, scale="standard", rows=()):
    (out / "records").mkdir(parents=True, exist_ok=True)
    rec = {"notebook": name, "ok": ok, "error": "" if ok else "AssertionError: x", "seconds": 12.3,
           "date": "2026-01-01 00:00 UTC", "scale": scale, "machine": "test-machine", "data_root": "/d",
           "rows": list(rows)}
    (out / "records" / f"{name[:-6]}.json").write_text(json.dumps(rec))


def test_report_merges_runs_and_lists_missing(tmp_path):
    nbs = [tmp_path / n for n in ("00_a.ipynb", "01_b.ipynb", "02_c.ipynb")]
    row = dict(quantity="q1", paper="1.0", ours="0.9", data="synthetic: x", scale="quick", notebook="00 A")
    _record(tmp_path, "00_a.ipynb", rows=[row])
    _record(tmp_path, "01_b.ipynb", ok=False, scale="quick")
    text = write_report(tmp_path, nbs).read_text()
    assert "| 00_a.ipynb | ok | 12 s | 2026-01-01 00:00 UTC | standard |" in text
    assert "FAILED: AssertionError: x" in text
    assert "| 02_c.ipynb | not run yet |" in text
    assert "## 00 A" in text and "| q1 | 1.0 | 0.9 | synthetic: x | — | — | — | quick |" in text
    assert text.count("scale `") == 2  # one stamp per (scale, machine)


def test_markdown_table_escapes_pipes_and_fills_missing():
    text = report.markdown_table([dict(quantity="a|b", ours=None)])
    assert "a\\|b" in text and "—" in text


def test_rows_carry_protocol_and_values_and_no_machine_paths(tmp_path, monkeypatch):
    """Paper rows name their protocol, sample size and seeds, keep machine-readable values, and
    never carry a path of the machine they ran on."""
    from shapelib import config

    data = tmp_path / "datasets"
    monkeypatch.setenv("SHAPELIB_DATA", str(data))
    sink = tmp_path / "rows.jsonl"
    monkeypatch.setenv("SHAPELIB_RESULTS", str(sink))
    text = report.results_table("02 X", [dict(quantity="Table 5, iso", paper=0.68, ours="0.70", protocol="paper", n=20,
                                              seeds=[0], ours_value=0.70, paper_value=0.68, unit="error x100",
                                              spread={"std": 0.1}, data=f"real: FAUST ({data / 'faust'})")], show=False)
    assert "| Table 5, iso | 0.68 | 0.70 | real: FAUST ($SHAPELIB_DATA/faust) | paper | 20 | [0] |" in text
    row = json.loads(sink.read_text())
    assert row["ours_value"] == 0.70 and row["paper_value"] == 0.68 and row["spread"] == {"std": 0.1}
    assert str(tmp_path) not in sink.read_text() and str(config.data_root()) not in sink.read_text()


def test_a_shown_table_is_displayed_once(monkeypatch, capsys):
    """In a notebook the table is displayed; the call returns None, so a cell ending in it does not
    print the raw Markdown a second time (as Out[n])."""
    monkeypatch.delenv("SHAPELIB_RESULTS", raising=False)
    assert report.results_table("01 X", [dict(quantity="q", paper="—", ours="1")]) is None
    assert "| q | — | 1 |" in report.results_table("01 X", [dict(quantity="q", paper="—", ours="1")], show=False)


def test_exported_html_typesets_its_equations_offline(tmp_path):
    """The HTML of an executed notebook loads MathJax from a local copy beside it (no CDN), with a
    configuration that copy ships, and the copy is trimmed."""
    import nbformat
    import pytest

    from shapelib.experiments.reproduce import MATHJAX_CONFIG, html_exporter

    pytest.importorskip("jupyter_server_mathjax")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("$$\\lambda = 1$$")])
    html, _ = html_exporter(tmp_path).from_notebook_node(nb)
    assert f'src="mathjax/MathJax.js?config={MATHJAX_CONFIG}"' in html.replace("&amp;", "&")
    assert "cdnjs" not in html.split("MathJax.js")[0][-300:]
    assert (tmp_path / "mathjax" / "MathJax.js").exists()
    assert (tmp_path / "mathjax" / "config" / (MATHJAX_CONFIG.split(",")[0] + ".js")).exists()
    assert not (tmp_path / "mathjax" / "localization").exists()


def test_headline_picks_each_claims_row_and_marks_the_missing(tmp_path):
    from shapelib.experiments import report as rep

    headline = (("P", "claim one", "02", "Table 5, iso"), ("Q", "claim two", "06", "CPNet Table 2"))
    rows = [{"notebook": "02 DiffusionNet", "quantity": "Table 5, iso: error (checkpoint)", "paper": 0.68,
             "ours": "0.65", "protocol": "paper", "n": 20, "scale": "paper-protocol checkpoint"},
            {"notebook": "04 fmaps", "quantity": "CPNet Table 2 (wrong notebook)", "ours": "x"}]
    out = rep.headline_rows(rows, headline)
    assert [r["paper"] for r in out] == ["P", "Q"]
    assert out[0]["ours"] == "0.65" and out[0]["paper value"] == 0.68 and out[0]["n"] == 20
    assert out[1]["ours"] == "not run yet", "a row of another notebook must not stand in for the claim"
    # the report itself: the headline section comes before the per-notebook sections
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "02.json").write_text(json.dumps(
        {"notebook": "02_d.ipynb", "ok": True, "error": None, "seconds": 1, "date": "d", "scale": "quick",
         "machine": "m", "rows": rows[:1]}))
    text = rep.write_report(tmp_path, [tmp_path / "02_d.ipynb"]).read_text()
    assert text.index("## Headline") < text.index("## 02 DiffusionNet")
