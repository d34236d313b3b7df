"""./run_all.sh: profiles, the smoke run of every notebook and its outputs, resuming, failure reporting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["pars_lengths", "pars_ranker_quality", "pars_ablations", "pars_backbones", "pars_transfer",
           "pars_sim_latency_vs_rate", "pars_sim_throughput", "pars_sim_cdf", "pars_proxy_latency_vs_rate",
           "pars_headroom_vs_load", "pars_headroom_vs_length", "preemption_vs_kv", "preemption_serve_ratios",
           "pars_serve", "pars_serve_ratios", "pars_serve_cdf", "sim_vs_engine", "ewsjf_partitions", "ewsjf_sweep",
           "ewsjf_ablation", "ewsjf_convergence", "ewsjf_serve", "ewsjf_serve_ratios", "ewsjf_protocol",
           "ewsjf_constraints", "headtohead", "overheads"]
TABLES = ["ranker_quality", "ranker_transfer", "ranker_ablation_delta", "ranker_ablation_margin",
          "ranker_ablation_backbone", "ranker_ablation_truncation", "ranker_methods_seeds", "ranker_noise",
          "pars_sim", "pars_sim_proxy", "pars_headroom", "preemption_kv", "preemption_serve", "preemption_serve_ratios",
          "pars_serve", "pars_serve_ratios", "pars_serve_runs",
          "sim_vs_engine",
          "ewsjf_partitions", "ewsjf_sim", "ewsjf_serve", "ewsjf_serve_ratios", "ewsjf_serve_runs", "ewsjf_tuning",
          "ewsjf_tuning_noise", "ewsjf_protocol_gains", "ewsjf_constraint_gains", "ewsjf_protocol_engine",
          "ewsjf_protocol_engine_ratios", "headtohead", "overheads_policy",
          "overheads_ranker", "claims"]


def run_all(*args: str, results: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMSCHED_PYTHON": sys.executable, "LLMSCHED_RESULTS": str(results)}
    env.pop("LLMSCHED_FORCE", None)
    return subprocess.run([str(ROOT / "run_all.sh"), *args], env=env, capture_output=True, text=True, timeout=1800)


def test_unknown_profile_names_the_valid_ones(tmp_path):
    proc = run_all("laptop", results=tmp_path)
    assert proc.returncode == 2
    assert "unknown profile 'laptop'" in proc.stderr
    valid = proc.stderr.split("valid profiles:")[1].split()
    assert set(valid) == {"smoke", "cpu", "cpu-full", "gpu"}


def test_figures_before_the_experiments_name_what_is_missing(tmp_path):
    proc = run_all("smoke", "--only", "06", results=tmp_path)
    assert proc.returncode == 1
    assert "06_figures_tables_claims.ipynb failed" in proc.stderr
    assert "MissingInputError" in proc.stderr and "notebooks/01_collect_lengths.ipynb" in proc.stderr
    assert "./run_all.sh smoke" in proc.stderr


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """./run_all.sh smoke once for the module: (the finished process, its results folder, README before it)."""
    results = tmp_path_factory.mktemp("smoke-results")
    readme = (ROOT / "README.md").read_text()
    return run_all("smoke", results=results), results, readme


@pytest.mark.vllm
def test_smoke_profile_runs_every_notebook_and_writes_every_figure_and_table(smoke_run):
    proc, tmp_path, readme = smoke_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [n[:2] for n in notebooks] == ["01", "02", "03", "04", "05", "06"]
    for name in notebooks:
        assert (tmp_path / "executed" / "smoke" / name).stat().st_size > 0
        assert f"{name:<40} ran" in proc.stdout
    assert "profile smoke: all notebooks ran" in proc.stdout
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / "smoke" / f"{name}.{ext}").stat().st_size > 1000, name
    for name in TABLES:
        assert len(pd.read_csv(tmp_path / "tables" / "smoke" / f"{name}.csv")) > 0, name
        assert (tmp_path / "tables" / "smoke" / f"{name}.md").read_text().count("\n") > 2
    claims = pd.read_csv(tmp_path / "tables" / "smoke" / "claims.csv")
    assert len(claims) >= 15 and claims.ours.notna().all() and claims.rule.notna().all()
    kinds = ("reproduced", "partly", "not reproduced", "not run here", "measured", "tie", "undecided",
             "not testable in this setting", "not decidable", "no significant gain", "not judged")
    assert all(v.startswith(kinds) for v in claims.verdict), set(claims.verdict)
    assert claims.operating_point.notna().all() and claims.interval.notna().all()
    assert (ROOT / "README.md").read_text() == readme  # only the cpu profile writes the README's claims
    index = tmp_path / "report" / "smoke" / "index.html"
    assert f"report: {index}" in proc.stdout
    html = index.read_text()
    for name in FIGURES:
        assert f'src="figures/{name}.png"' in html, name
    for name in TABLES:
        assert name == "claims" or f'href="tables/{name}.csv"' in html, name
    assert html.count('.html">') == len(notebooks) and "Not produced by this run" not in html

    # resumable: a second run skips every stage and rewrites nothing
    stamp = (tmp_path / "tables" / "smoke" / "claims.csv").stat().st_mtime_ns
    again = run_all("smoke", results=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped: outputs exist") == len(notebooks)
    assert (tmp_path / "tables" / "smoke" / "claims.csv").stat().st_mtime_ns == stamp


@pytest.mark.vllm
def test_smoke_report_opens_in_headless_chromium(smoke_run):
    """The smoke run's web report in a real browser: every image loads, every link resolves, the notebooks' pages
    open; the screenshot lands under the run's results/report/smoke/browser-check/."""
    from llmsched.webreport.browser import check_report, chromium_path

    if chromium_path() is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; .ci/run installs it when it can):"
                    " the smoke report was written but not opened in a browser")
    proc, results, _ = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = check_report(results / "report" / "smoke" / "index.html")
    summary = check.summary()
    print(json.dumps(summary, indent=2))  # the screenshot's path, for whoever reads the test output
    assert check.ok, summary
    assert summary["pages"] == 1 + 6 and summary["images"] >= len(FIGURES)
    assert Path(summary["screenshot"]).stat().st_size > 20_000


@pytest.mark.slow
def test_lab_opens_jupyterlab_on_the_notebooks_with_the_project_kernel(tmp_path):
    """./run_all.sh --lab serves notebooks/ and offers the `llmsched` kernel (asked over JupyterLab's REST API)."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LLMSCHED_PYTHON": sys.executable, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    proc = subprocess.Popen([str(ROOT / "run_all.sh"), "--lab", "--no-browser", f"--port={port}",
                             "--ServerApp.token=t0k", "--ip=127.0.0.1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base, deadline, answer = f"http://127.0.0.1:{port}", time.monotonic() + 120, None
        while answer is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/api/kernelspecs?token=t0k", timeout=5) as r:
                    answer = json.load(r)
            except OSError:
                time.sleep(1)
        assert answer is not None, f"JupyterLab did not answer on port {port} (exit {proc.poll()})"
        assert "llmsched" in answer["kernelspecs"]
        with urllib.request.urlopen(f"{base}/api/contents?token=t0k", timeout=10) as r:
            names = {c["name"] for c in json.load(r)["content"]}
        assert {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")} <= names
        with urllib.request.urlopen(f"{base}/lab?token=t0k", timeout=10) as r:
            assert r.status == 200
    finally:
        proc.kill()  # nothing of the server's is kept
        proc.wait(timeout=30)
