"""Style and static checks run with the suite, so CI enforces them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed: ./run_tests.sh installs it (the dev extra)")
    proc = subprocess.run([ruff, "check", "lib", "tests", "artifact"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_mypy_is_clean(tmp_path):
    """The type check (settings in pyproject.toml, [tool.mypy]): the library's annotations hold."""
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")], cwd=ROOT,
                          capture_output=True, text=True)
    if "No module named mypy" in proc.stderr:
        pytest.fail("mypy is not installed: ./run_tests.sh installs it (the dev extra)")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_notebooks_are_committed_without_outputs():
    import json

    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"]
        dirty = [i for i, c in code if c.get("outputs") or c.get("execution_count")]
        assert not dirty, f"{nb.name}: code cells {dirty} have outputs; clear them (executed copies go to results/)"
