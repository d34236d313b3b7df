"""./run_all.sh: profiles, the smoke run of every notebook, failure reporting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_all(*args: str, results: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMSCHED_PYTHON": sys.executable, "LLMSCHED_RESULTS": str(results)}
    return subprocess.run([str(ROOT / "run_all.sh"), *args], env=env, capture_output=True, text=True, timeout=900)


def test_unknown_profile_names_the_valid_ones(tmp_path):
    proc = run_all("laptop", results=tmp_path)
    assert proc.returncode == 2
    assert "unknown profile 'laptop'" in proc.stderr and "smoke" in proc.stderr and "cpu" in proc.stderr


@pytest.mark.vllm
def test_smoke_profile_runs_every_notebook_and_writes_results(tmp_path):
    proc = run_all("smoke", results=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks
    for name in notebooks:
        assert (tmp_path / "executed" / "smoke" / name).stat().st_size > 0
    assert "all notebooks ran" in proc.stdout
    summaries = list((tmp_path / "serving" / "smoke" / "real").glob("*/summary.csv"))
    assert len(summaries) == 1
    table = pd.read_csv(summaries[0], index_col=0)
    assert set(table.index) == {"fcfs", "oracle-sjf"} and (table.n_ok > 0).all()
    assert (tmp_path / "figures" / "smoke" / "serving_e2e_cdf.png").stat().st_size > 0
