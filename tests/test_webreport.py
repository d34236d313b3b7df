"""The web report (llmsched.webreport): what index.html holds and links, relative paths only, and the check in a real
headless Chromium (llmsched.webreport.browser) that every image loads and every link resolves."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from llmsched.webreport import write_report  # noqa: E402
from llmsched.webreport.browser import check_report, chromium_path  # noqa: E402

NO_CHROMIUM = "no Chromium on this machine (Debian: apt-get install chromium; .ci/run installs it when it can)"


def _results(tmp_path, with_claims=True):
    """A results/ tree of a profile `demo`: two figures, two tables (+ claims), two executed notebooks."""
    root, profiles = tmp_path / "results", tmp_path / "profiles"
    figs, tabs, exe = (root / d / "demo" for d in ("figures", "tables", "executed"))
    for d in (figs, tabs, exe, profiles):
        d.mkdir(parents=True)
    for name in ("pars_sim_latency_vs_rate", "ewsjf_sweep"):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1], [1, 2])
        ax.set_title(name)
        fig.savefig(figs / f"{name}.png")
        plt.close(fig)
    pd.DataFrame({"label": ["fcfs", "pars"], "e2e_mean": [2.5, 1.25]}).to_csv(tabs / "pars_sim.csv", index=False)
    pd.DataFrame({"policy": ["ewsjf"], "gain": [0.01]}).to_csv(tabs / "ewsjf_sim.csv", index=False)
    if with_claims:
        pd.DataFrame({"claim": ["PARS: lower latency than FCFS <b>"], "verdict": ["holds"]}).to_csv(
            tabs / "claims.csv", index=False)
    for i, name in enumerate(("01_collect_lengths", "02_train_rankers")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), nbformat.v4.new_code_cell("1 + 1")]
        nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
        nbformat.write(nb, exe / f"{name}.ipynb")
        if i == 0:
            (exe / f"{name}.done.json").write_text(json.dumps({"seconds": 12.5}))
    (profiles / "demo.yaml").write_text("profile: demo\nseed: 0\npars_sim_loads: [0.5, 1.0]\n")
    return root, profiles


def test_report_shows_every_result_with_relative_links(tmp_path):
    root, profiles = _results(tmp_path)
    index = write_report("demo", root, profiles_dir=profiles)
    out = root / "report" / "demo"
    assert index == out / "index.html"
    html = index.read_text()
    assert "PARS: lower latency than FCFS &lt;b&gt;" in html  # the claims table, its text escaped
    assert 'src="figures/pars_sim_latency_vs_rate.png"' in html and 'src="figures/ewsjf_sweep.png"' in html
    assert html.index("PARS: scheduling") < html.index("EWSJF")  # figures grouped by section, PARS first
    assert 'href="tables/pars_sim.csv"' in html and "1.25" in html  # each table linked and shown
    assert 'href="notebooks/01_collect_lengths.html"' in html and 'href="parameters.yaml"' in html
    assert "<pre>2</pre>" in (out / "notebooks" / "02_train_rankers.html").read_text()  # rendered by nbconvert
    assert "not finished" in html and ">12<" in html.replace(" ", "")  # 02 has no done marker; 01 took 12.5 s
    assert "pars_sim_loads" in html and (out / "parameters.yaml").exists()
    # every local reference is relative and inside the folder (it can be zipped and sent)
    refs = re.findall(r'(?:src|href)="([^"#]+)', html)
    local = [r for r in refs if not r.startswith(("http://", "https://"))]
    assert local and not [r for r in local if r.startswith("/") or ".." in r]
    assert all((out / r).exists() for r in local), [r for r in local if not (out / r).exists()]
    assert str(tmp_path) not in html


def test_a_partial_run_lists_what_is_missing(tmp_path):
    root, profiles = _results(tmp_path, with_claims=False)
    html = write_report("demo", root, profiles_dir=profiles).read_text()
    assert "Not produced by this run" in html and "the claims table" in html
    empty = write_report("nothing", root, profiles_dir=profiles).read_text()  # no results at all: still a page
    assert "figures (figures/nothing: notebook 06)" in empty and "no parameter file" in empty


@pytest.mark.skipif(chromium_path() is None, reason=NO_CHROMIUM)
def test_chromium_loads_every_image_and_link_and_catches_broken_ones(tmp_path):
    root, profiles = _results(tmp_path)
    index = write_report("demo", root, profiles_dir=profiles)
    good = check_report(index)
    assert good.ok, good.summary()
    assert len(good.pages) == 3  # index.html and the two rendered notebooks
    summary = json.loads((index.parent / "browser-check" / "browser-check.json").read_text())
    assert summary["images"] >= 2 and summary["broken_images"] == [] and summary["broken_links"] == []
    shot = index.parent / "browser-check" / "screenshot.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    # a figure file and a table file gone: the browser sees the broken image and the check the dead link
    (index.parent / "figures" / "ewsjf_sweep.png").unlink()
    (index.parent / "tables" / "pars_sim.csv").unlink()
    bad = check_report(index)
    assert not bad.ok
    assert any(b.endswith("figures/ewsjf_sweep.png") for b in bad.broken_images)
    assert any(b.endswith("tables/pars_sim.csv") for b in bad.broken_links)
