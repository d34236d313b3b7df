"""The project's Jupyter kernel (llmsched.kernel): registered for this environment, named by every notebook, and a
notebook runs through it by that name."""

from __future__ import annotations

import json
import sys

import nbformat
import papermill as pm
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from llmsched.kernel import KERNEL_ENV, KERNEL_NAME, ensure_kernel, kernel_dir
from llmsched.pipeline import MANIFEST_ENV, NOTEBOOKS


def test_ensure_kernel_registers_this_interpreter_once(tmp_path):
    folder = ensure_kernel(prefix=tmp_path)
    assert folder == kernel_dir(tmp_path) == tmp_path / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and "ipykernel_launcher" in spec["argv"]
    assert spec["env"] == KERNEL_ENV and spec["env"]["HF_HUB_OFFLINE"] == "1"
    stamp = (folder / "kernel.json").stat().st_mtime_ns
    ensure_kernel(prefix=tmp_path)
    assert (folder / "kernel.json").stat().st_mtime_ns == stamp  # already current: left alone
    # a spec written by another interpreter (a moved environment) is replaced
    (folder / "kernel.json").write_text(json.dumps({**spec, "argv": ["/gone/python", *spec["argv"][1:]]}))
    ensure_kernel(prefix=tmp_path)
    assert json.loads((folder / "kernel.json").read_text())["argv"][0] == sys.executable


def test_every_notebook_names_the_project_kernel():
    for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        assert nbformat.read(nb, 4).metadata.kernelspec.name == KERNEL_NAME, nb.name


@pytest.mark.slow
def test_a_notebook_runs_through_the_kernel_by_its_name(tmp_path, monkeypatch):
    """Notebook 03 run by hand (plain papermill, no kernel given: the notebook's own kernelspec) in a kernel
    process that Jupyter finds by the name `llmsched`, with its defaults (the smoke profile)."""
    ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert spec.argv[0] == sys.executable and spec.env == KERNEL_ENV
    monkeypatch.setenv("LLMSCHED_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv(MANIFEST_ENV, raising=False)
    out = tmp_path / "03.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "03_partition_workloads.ipynb"), str(out), cwd=str(NOTEBOOKS),
                        progress_bar=False)
    done = nbformat.read(out, 4)
    assert done.metadata.kernelspec.name == KERNEL_NAME
    assert not any(o.get("output_type") == "error" for c in done.cells for o in c.get("outputs", []))
    parts = tmp_path / "results" / "ewsjf" / "smoke" / "partitions"
    assert (parts / "queues.parquet").exists() and (parts / "lengths.parquet").exists()
