"""The notebook pipeline (llmsched.pipeline): skipping done stages, --force, failures naming the cell, inputs."""

from __future__ import annotations

import json

import nbformat
import pytest

from llmsched.pipeline import MissingInputError, notebook_params, require, run_pipeline, stage_key

WRITE = '''from pathlib import Path
from llmsched.paths import results_dir
from llmsched.pipeline import declare_outputs
out = results_dir() / "demo" / profile / "{name}.txt"
out.parent.mkdir(parents=True, exist_ok=True)
runs = int(out.read_text()) + 1 if out.exists() else 1
out.write_text(str(runs))
declare_outputs([out])'''


def _notebook(path, *cells, params='profile: str = "x"\nseed: int = 0'):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# demo"), p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


@pytest.fixture
def demo(tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv("LLMSCHED_RESULTS", str(results))
    monkeypatch.delenv("LLMSCHED_FORCE", raising=False)
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_first.ipynb", WRITE.format(name="first"))
    _notebook(nbs / "02_second.ipynb", "x = 1", 'raise ValueError("boom: input is bad")')
    return nbs, results


def _status(results):
    return [(r.notebook, r.status) for r in results]


@pytest.mark.slow
def test_failure_names_the_cell_then_done_stages_are_skipped(demo):
    nbs, results = demo
    first = run_pipeline("smoke", notebooks_dir=nbs, log=lambda *a, **k: None)
    assert _status(first) == [("01_first.ipynb", "ran"), ("02_second.ipynb", "failed")]
    msg = first[1].message
    assert "02_second.ipynb failed in cell 4 of the executed copy" in msg and "ValueError: boom: input is bad" in msg
    assert "raise ValueError" in msg
    out = results / "demo" / "smoke" / "first.txt"
    assert out.read_text() == "1"
    done = json.loads((results / "executed" / "smoke" / "01_first.done.json").read_text())
    assert done["outputs"] == [str(out.resolve())]
    assert not (results / "executed" / "smoke" / "02_second.done.json").exists()
    assert (results / "executed" / "smoke" / "02_second.ipynb").exists()  # the executed copy, error marked

    # fix the failing notebook: the first stage is skipped (its output kept), the second runs
    _notebook(nbs / "02_second.ipynb", "x = 1")
    second = run_pipeline("smoke", notebooks_dir=nbs, log=lambda *a, **k: None)
    assert _status(second) == [("01_first.ipynb", "skipped"), ("02_second.ipynb", "ran")]
    assert out.read_text() == "1"

    # a declared output removed: that stage reruns; --force reruns everything
    out.unlink()
    third = run_pipeline("smoke", notebooks_dir=nbs, log=lambda *a, **k: None)
    assert _status(third) == [("01_first.ipynb", "ran"), ("02_second.ipynb", "skipped")]
    forced = run_pipeline("smoke", force=True, notebooks_dir=nbs, log=lambda *a, **k: None)
    assert [s for _, s in _status(forced)] == ["ran", "ran"]
    assert out.read_text() == "2"

    # editing an earlier notebook invalidates the later ones
    _notebook(nbs / "01_first.ipynb", WRITE.format(name="first") + "\n# edited")
    edited = run_pipeline("smoke", notebooks_dir=nbs, log=lambda *a, **k: None)
    assert [s for _, s in _status(edited)] == ["ran", "ran"]


def test_only_and_bad_selection(demo):
    nbs, _ = demo
    with pytest.raises(ValueError, match="no notebook numbered"):
        run_pipeline("smoke", only=["07"], notebooks_dir=nbs)
    with pytest.raises(ValueError, match="valid profiles"):
        run_pipeline("laptop", notebooks_dir=nbs)


def test_stage_key_follows_parameters_code_and_upstream(tmp_path):
    a, b = tmp_path / "01_a.ipynb", tmp_path / "02_b.ipynb"
    _notebook(a, "x = 1")
    _notebook(b, "y = 2")
    base = stage_key(b, {"seed": 0}, [a])
    assert base == stage_key(b, {"seed": 0}, [a])
    assert base != stage_key(b, {"seed": 1}, [a])
    assert base != stage_key(b, {"seed": 0})
    _notebook(a, "x = 3")
    assert base != stage_key(b, {"seed": 0}, [a])


def test_require_names_the_producer(tmp_path):
    assert require(tmp_path, "anything") == tmp_path
    with pytest.raises(MissingInputError, match=r"written by notebooks/04_x\.ipynb; run `\./run_all\.sh cpu`"):
        require(tmp_path / "missing.parquet", "notebooks/04_x.ipynb", "cpu")


def test_notebook_params_keeps_profile_values_only():
    ns = {"profile": "cpu", "seed": 1, "pars_n_train": 5, "ewsjf_presets": ["100-2000"], "exp": object(),
          "In": [], "pd": object(), "h2h_loads": [1.0], "report_update_readme": False, "serving_max_num_seqs": 4}
    assert notebook_params(ns) == {"profile": "cpu", "seed": 1, "pars_n_train": 5, "ewsjf_presets": ["100-2000"],
                                   "h2h_loads": [1.0], "report_update_readme": False, "serving_max_num_seqs": 4}
