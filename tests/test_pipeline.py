"""The notebook pipeline (llmsched.pipeline): skipping done stages, --force, failures naming the cell, inputs."""

from __future__ import annotations

import ast
import json

import nbformat
import papermill as pm
import pytest

from llmsched.pipeline import (
    MANIFEST_ENV,
    NOTEBOOKS,
    PROFILES,
    MissingInputError,
    check_profile,
    notebook_params,
    require,
    run_pipeline,
    stage_key,
)

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
    """Two notebooks declaring `profile` and `seed`, a profiles folder whose `smoke` sets exactly those."""
    results = tmp_path / "results"
    monkeypatch.setenv("LLMSCHED_RESULTS", str(results))
    monkeypatch.delenv("LLMSCHED_FORCE", raising=False)
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_first.ipynb", WRITE.format(name="first"))
    _notebook(nbs / "02_second.ipynb", "x = 1", 'raise ValueError("boom: input is bad")')
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "smoke.yaml").write_text("profile: smoke\nseed: 0\n")
    return nbs, results, profiles


def _status(results):
    return [(r.notebook, r.status) for r in results]


@pytest.mark.slow
def test_failure_names_the_cell_then_done_stages_are_skipped(demo):
    nbs, results, profiles = demo
    run = dict(notebooks_dir=nbs, profiles_dir=profiles, log=lambda *a, **k: None)
    first = run_pipeline("smoke", **run)
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
    second = run_pipeline("smoke", **run)
    assert _status(second) == [("01_first.ipynb", "skipped"), ("02_second.ipynb", "ran")]
    assert out.read_text() == "1"

    # a declared output removed: that stage reruns; --force reruns everything
    out.unlink()
    third = run_pipeline("smoke", **run)
    assert _status(third) == [("01_first.ipynb", "ran"), ("02_second.ipynb", "skipped")]
    forced = run_pipeline("smoke", force=True, **run)
    assert [s for _, s in _status(forced)] == ["ran", "ran"]
    assert out.read_text() == "2"

    # editing an earlier notebook invalidates the later ones
    _notebook(nbs / "01_first.ipynb", WRITE.format(name="first") + "\n# edited")
    edited = run_pipeline("smoke", **run)
    assert [s for _, s in _status(edited)] == ["ran", "ran"]


def test_only_and_bad_selection(demo):
    nbs, _, profiles = demo
    with pytest.raises(ValueError, match="no notebook numbered"):
        run_pipeline("smoke", only=["07"], notebooks_dir=nbs, profiles_dir=profiles)
    with pytest.raises(ValueError, match="unknown profile 'laptop'; valid profiles: smoke"):
        run_pipeline("laptop", notebooks_dir=nbs, profiles_dir=profiles)


@pytest.mark.parametrize("profile", sorted(p.stem for p in PROFILES.glob("*.yaml")))
def test_every_profile_key_is_a_parameter_some_notebook_declares(profile):
    """Each key of the shipped profiles reaches a notebook (the pipeline passes a notebook only the keys its
    parameters cell declares), and each declared parameter reaches the drivers through notebook_params."""
    params, declared = check_profile(profile)
    assert params["profile"] == profile
    assert sorted(declared) == sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    names = set().union(*declared.values())
    assert set(params) <= names, sorted(set(params) - names)
    for nb, decl in declared.items():
        assert decl == pm.inspect_notebook(str(nb))  # papermill's reading of the parameters cell
        assert set(notebook_params(dict.fromkeys(decl))) == set(decl), nb.name


def test_a_key_no_notebook_declares_fails_before_any_notebook_runs(demo):
    nbs, results, profiles = demo
    (profiles / "typo.yaml").write_text("profile: typo\nseed: 0\npars_n_trian: 5\nh2h_lods: [1.0]\n")
    with pytest.raises(ValueError) as err:
        run_pipeline("typo", notebooks_dir=nbs, profiles_dir=profiles, log=lambda *a, **k: None)
    msg = str(err.value)
    assert f"{profiles / 'typo.yaml'} sets h2h_lods, pars_n_trian which no notebook declares" in msg
    assert "01_first.ipynb" in msg  # where it looked
    assert not (results / "executed").exists() and not (results / "demo").exists()
    # --only does not narrow the check: the keys of every notebook count, and an unknown one fails all the same
    with pytest.raises(ValueError, match="pars_n_trian"):
        run_pipeline("typo", only=["02"], notebooks_dir=nbs, profiles_dir=profiles, log=lambda *a, **k: None)

    # a declared key that notebook_params would not pass on to the drivers (no profile prefix) fails too
    _notebook(nbs / "01_first.ipynb", "x = 1", params='profile: str = "x"\nseed: int = 0\ndpi: int = 100')
    (profiles / "odd.yaml").write_text("profile: odd\nseed: 0\ndpi: 200\n")
    with pytest.raises(ValueError, match=r"odd\.yaml sets dpi, which notebook_params does not pass on"):
        check_profile("odd", notebooks_dir=nbs, profiles_dir=profiles)


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


def test_notebook_params_keeps_profile_values_only(monkeypatch):
    monkeypatch.setenv(MANIFEST_ENV, "stage.outputs.json")  # under the pipeline: the injected values as they are
    ns = {"profile": "cpu", "seed": 1, "pars_n_train": 5, "ewsjf_presets": ["100-2000"], "exp": object(),
          "In": [], "pd": object(), "h2h_loads": [1.0], "report_update_readme": False, "serving_max_num_seqs": 4}
    assert notebook_params(ns) == {"profile": "cpu", "seed": 1, "pars_n_train": 5, "ewsjf_presets": ["100-2000"],
                                   "h2h_loads": [1.0], "report_update_readme": False, "serving_max_num_seqs": 4}


def test_notebook_params_by_hand_take_the_named_profile_file(tmp_path, monkeypatch):
    """Run by hand (no pipeline), the file of the profile the cell names wins over the cell's values; a profile
    without a file keeps the cell's values."""
    monkeypatch.delenv(MANIFEST_ENV, raising=False)
    (tmp_path / "cpu.yaml").write_text("profile: cpu\nseed: 3\npars_n_train: 7000\npars_sim_loads: [0.5, 1.0]\n")
    cell = {"profile": "cpu", "seed": 0, "pars_n_train": 60, "h2h_loads": [1.0], "pd": object()}
    got = notebook_params(cell, profiles_dir=tmp_path)
    # the profile's values for the keys the notebook declares; a key the notebook lacks stays out
    assert got == {"profile": "cpu", "seed": 3, "pars_n_train": 7000, "h2h_loads": [1.0]}
    mine = {"profile": "mine", "seed": 0, "pars_n_train": 60}
    assert notebook_params(mine, profiles_dir=tmp_path) == mine
    # the shipped notebooks' defaults are the smoke profile's: by hand, smoke changes nothing they declare
    import yaml
    smoke = yaml.safe_load((PROFILES / "smoke.yaml").read_text())
    for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        declared = {k: v for k, v in pm.inspect_notebook(str(nb)).items()}
        cell = {k: ast.literal_eval(v["default"]) for k, v in declared.items()}
        assert notebook_params(cell) == {**cell, **{k: v for k, v in smoke.items() if k in cell}}
        differ = {k for k in cell if k in smoke and cell[k] != smoke[k]}
        assert not differ, f"{nb.name}: parameters cell defaults differ from smoke.yaml: {sorted(differ)}"
