"""The notebook pipeline behind ./run_all.sh: run notebooks/NN_*.ipynb in order with papermill for a profile.

    python -m llmsched.pipeline smoke [--force] [--only 02,06]
    python -m llmsched.pipeline gpu --check      # only the pre-flight check of the profile's keys

Each notebook is one stage. Its parameters are the profile's values (artifact/profiles/<profile>.yaml), injected
by papermill into its `parameters` cell; the executed copy goes to results/executed/<profile>/. Before any
notebook runs, every key of the profile must be a parameter that some notebook's `parameters` cell declares
(ValueError naming the profile file and the keys otherwise): a notebook receives only the keys it declares, so an
undeclared key, a typo say, would otherwise be dropped silently. A stage is
skipped when it ran before with the same notebook source and parameters and every output it declared still
exists (`declare_outputs`, called by the notebook's last cell, records them in the stage's `.done.json`);
`--force` reruns every stage. Inside a stage the library reuses what it cached by configuration (collected
lengths, ranker checkpoints, finished serving runs, the Optuna study): delete those folders to recompute them.
The run stops at the first failing notebook, naming it and the failing cell; results of earlier stages are left
as they are, and the failed stage's marker is removed so the next run retries it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmsched.kernel import KERNEL_NAME, ensure_kernel
from llmsched.paths import REPO_ROOT, results_dir

logger = logging.getLogger(__name__)

MANIFEST_ENV = "LLMSCHED_STAGE_MANIFEST"
NOTEBOOKS = REPO_ROOT / "notebooks"
PROFILES = REPO_ROOT / "artifact" / "profiles"
# the names of profile parameters: notebook_params passes these on to the drivers, and a profile sets no other
PARAM_NAMES = ("profile", "model", "seed")
PARAM_PREFIXES = ("serving_", "pars_", "ewsjf_", "h2h_", "report_")


class MissingInputError(FileNotFoundError):
    """A stage's input does not exist; the message names it and the command that produces it."""


def require(path: str | Path, producer: str, profile: str | None = None) -> Path:
    """`path` if it exists, else MissingInputError naming the notebook (stage) that writes it."""
    p = Path(path)
    if not p.exists():
        cmd = f"./run_all.sh {profile}" if profile else "./run_all.sh <profile>"
        raise MissingInputError(f"missing input {p}: it is written by {producer}; run `{cmd}` (it runs the "
                                f"notebooks in order and skips the stages that are done)")
    return p


def declare_outputs(paths: Iterable[str | Path]) -> list[str]:
    """Called by a notebook's last cell: the files and folders this stage wrote (checked before skipping it).

    Under the pipeline the list goes to the stage's manifest; run by hand, the call only checks the paths.
    """
    out = [str(Path(p).resolve()) for p in paths]
    missing = [p for p in out if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"the stage declared outputs it did not write: {missing}")
    target = os.environ.get(MANIFEST_ENV)
    if target:
        Path(target).write_text(json.dumps({"outputs": out}, indent=2) + "\n")
    return out


def is_param_name(name: str) -> bool:
    """Whether `name` names a profile parameter (PARAM_NAMES, or a name starting with one of PARAM_PREFIXES)."""
    return name in PARAM_NAMES or name.startswith(PARAM_PREFIXES)


def notebook_params(namespace: dict[str, Any], profiles_dir: Path = PROFILES) -> dict[str, Any]:
    """The profile parameters among a notebook's globals: the keys the experiment drivers read, so a notebook
    passes on exactly what its parameters cell (and the profile) set.

    Under the pipeline the values are the profile's, injected by papermill. Run by hand (JupyterLab, or papermill
    outside ./run_all.sh), the profile file named by `profile` is the source of truth as well: its values replace
    the parameters cell's (whose defaults are the smoke profile's), each replaced value is logged, so setting
    `profile = "cpu"` in the cell looks at the cpu profile's results, reusing what its run left. A `profile` with no
    file under artifact/profiles/ keeps the cell's values (a reviewer's own parameter set)."""
    params = {k: v for k, v in namespace.items()
              if is_param_name(k) and isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    profile = params.get("profile")
    if os.environ.get(MANIFEST_ENV) or not isinstance(profile, str):
        return params
    path = profiles_dir / f"{profile}.yaml"
    if not path.exists():
        logger.info("profile %r has no file in %s: the parameters cell's values apply", profile, _shown(profiles_dir))
        return params
    _, values = load_profile_file(profile, profiles_dir)
    changed = {k: v for k, v in values.items() if k in params and params[k] != v}
    for k, v in changed.items():
        logger.info("%s: %s = %r (the cell's %r replaced)", _shown(path), k, v, params[k])
    logger.info("run by hand: %d of this notebook's parameters are %s's (%d differ from the cell's)",
                sum(k in params for k in values), _shown(path), len(changed))
    return {**params, **{k: v for k, v in values.items() if k in params}}


def _parameters(notebook: Path) -> dict[str, Any]:
    """The parameters the notebook's `parameters` cell declares (papermill's inference)."""
    import papermill as pm

    return pm.inspect_notebook(str(notebook))


def _code(notebook: Path) -> list[str]:
    nb = json.loads(notebook.read_text())
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"]


def stage_key(notebook: Path, params: dict[str, Any], upstream: Iterable[Path] = ()) -> str:
    """Hash of the notebook's code cells, the parameters and the code of the notebooks before it: what makes a
    previous run of the stage reusable (an edited earlier stage invalidates the later ones)."""
    code = [_code(nb) for nb in [*upstream, notebook]]
    blob = json.dumps({"code": code, "params": params}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class StageResult:
    notebook: str
    status: str  # ran, skipped, failed
    seconds: float
    message: str = ""


def load_profile_file(profile: str, profiles_dir: Path = PROFILES) -> tuple[Path, dict[str, Any]]:
    """The profile's file and its parameters; ValueError listing the valid profiles for an unknown one."""
    import yaml

    path = profiles_dir / f"{profile}.yaml"
    if not path.exists():
        valid = sorted(p.stem for p in profiles_dir.glob("*.yaml"))
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(valid)}")
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise ValueError(f"{_shown(path)} is not a mapping of parameter names to values")
    return path, params


def _shown(path: Path) -> str:
    """`path` relative to the repository where it lies inside it (artifact/profiles/gpu.yaml)."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def check_profile_keys(profile_file: Path, params: dict[str, Any], declared: dict[Path, dict[str, Any]]) -> None:
    """ValueError naming the profile file and every key of `params` that no notebook declares (`declared`: each
    notebook's parameters), or that notebook_params would not pass on to the drivers.

    NOTE: no key is exempt, not even one the notebooks only print or use in paths (`profile`): a key that no
    parameters cell declares never reaches a notebook, so it is a typo or a stage that is not wired.
    """
    names = set().union(*declared.values()) if declared else set()
    unknown = sorted(k for k in params if k not in names)
    dropped = sorted(k for k in params if k in names and not is_param_name(k))
    problems = []
    if unknown:
        where = ", ".join(nb.name for nb in declared) or "no notebooks"
        problems.append(f"{_shown(profile_file)} sets {', '.join(unknown)} which no notebook declares (checked the "
                        f"parameters cells of {where}): declare each in the parameters cell of the notebook that "
                        "reads it, or remove it from the profile")
    if dropped:
        problems.append(f"{_shown(profile_file)} sets {', '.join(dropped)}, which notebook_params does not pass on "
                        f"to the drivers: profile parameters are {', '.join(PARAM_NAMES)} or start with "
                        f"{', '.join(PARAM_PREFIXES)}")
    if problems:
        raise ValueError("; ".join(problems))


def check_profile(profile: str, notebooks_dir: Path = NOTEBOOKS,
                  profiles_dir: Path = PROFILES) -> tuple[dict[str, Any], dict[Path, dict[str, Any]]]:
    """The pipeline's pre-flight check, which executes nothing: the profile's parameters and each numbered
    notebook's declared parameters, after checking that every key of the profile reaches a notebook
    (check_profile_keys). The keys of all the notebooks count, whichever run_pipeline(only=...) selects."""
    path, params = load_profile_file(profile, profiles_dir)
    notebooks = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no numbered notebooks in {notebooks_dir}")
    declared = {nb: _parameters(nb) for nb in notebooks}
    check_profile_keys(path, params, declared)
    return params, declared


def _failure(exc: BaseException, notebook: Path) -> str:
    """One paragraph naming the notebook, the failing cell and the error."""
    cell = getattr(exc, "cell_index", None)
    count = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    src = (getattr(exc, "source", "") or "").strip().splitlines()
    # NOTE: cell_index counts the executed copy's cells, which include papermill's injected-parameters cell
    where = f"cell {cell} of the executed copy" if cell is not None else "before any cell ran"
    if count is not None:
        where += f" (execution count {count})"
    first = f", the cell that begins {src[0][:100]!r}" if src else ""
    return f"{notebook.name} failed in {where}{first}\n  {ename}: {evalue}"


def run_stage(notebook: Path, profile: str, params: dict[str, Any], out_dir: Path, force: bool,
              upstream: Iterable[Path] = ()) -> StageResult:
    """Run one notebook with `params` (the profile values of the parameters it declares), unless up to date."""
    import papermill as pm

    executed = out_dir / notebook.name
    marker = out_dir / f"{notebook.stem}.done.json"
    key = stage_key(notebook, params, upstream)
    if not force and marker.exists() and executed.exists():
        done = json.loads(marker.read_text())
        missing = [p for p in done.get("outputs", []) if not Path(p).exists()]
        if done.get("key") == key and not missing:
            return StageResult(notebook.name, "skipped", 0.0, "up to date")
    marker.unlink(missing_ok=True)
    manifest = out_dir / f"{notebook.stem}.outputs.json"
    manifest.unlink(missing_ok=True)
    os.environ[MANIFEST_ENV] = str(manifest)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters=params, cwd=str(notebook.parent),
                            log_output=True, progress_bar=False, kernel_name=KERNEL_NAME)
    except Exception as exc:  # papermill's PapermillExecutionError carries the cell; others fail before cells
        return StageResult(notebook.name, "failed", time.perf_counter() - t0, _failure(exc, notebook))
    finally:
        os.environ.pop(MANIFEST_ENV, None)
    seconds = time.perf_counter() - t0
    outputs = json.loads(manifest.read_text())["outputs"] if manifest.exists() else []
    marker.write_text(json.dumps({"key": key, "profile": profile, "seconds": round(seconds, 1),
                                  "outputs": outputs}, indent=2) + "\n")
    return StageResult(notebook.name, "ran", seconds)


def run_pipeline(profile: str, force: bool = False, only: Iterable[str] | None = None,
                 notebooks_dir: Path = NOTEBOOKS, log=print, profiles_dir: Path = PROFILES) -> list[StageResult]:
    """Run every notebook (or those whose number is in `only`) in order; stop at the first failure.

    ValueError before any notebook runs for an unknown profile, a key no notebook declares, or a bad `only`."""
    params, declared_by = check_profile(profile, notebooks_dir, profiles_dir)
    ensure_kernel()  # the notebooks run on the project's kernel (llmsched.kernel), as they do in JupyterLab
    notebooks = list(declared_by)
    chosen = set(only) if only else None
    if chosen is not None:
        unknown = chosen - {nb.name[:2] for nb in notebooks}
        if unknown:
            raise ValueError(f"no notebook numbered {sorted(unknown)}; have {[nb.name for nb in notebooks]}")
    out_dir = results_dir() / "executed" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i, nb in enumerate(notebooks):
        if chosen is not None and nb.name[:2] not in chosen:
            continue
        log(f"== {nb.name} ({profile})", flush=True)
        declared = declared_by[nb]
        unset = sorted(set(declared) - set(params))
        if unset:
            log(f"   the profile does not set {unset}: the notebook's defaults apply", flush=True)
        res = run_stage(nb, profile, {k: v for k, v in params.items() if k in declared}, out_dir, force,
                        notebooks[:i])
        results.append(res)
        if res.status == "skipped":
            log("   skipped: outputs exist for the same notebook and parameters (--force reruns)", flush=True)
        elif res.status == "failed":
            log(f"   FAILED after {res.seconds:.0f} s", flush=True)
            break
        else:
            log(f"   done in {res.seconds:.0f} s", flush=True)
    return results


def summary(profile: str, results: list[StageResult]) -> str:
    lines = [f"profile {profile}: " + ("all notebooks ran" if all(r.status != "failed" for r in results)
                                        else "stopped at a failure") +
             f" in {sum(r.seconds for r in results):.0f} s"]
    for r in results:
        lines.append(f"  {r.notebook:<40} {r.status:<8} {r.seconds:7.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llmsched.pipeline", description=__doc__.split("\n")[0])
    ap.add_argument("profile")
    ap.add_argument("--force", action="store_true", help="rerun stages whose outputs exist")
    ap.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 02,06")
    ap.add_argument("--check", action="store_true", help="only check that every profile key reaches a notebook")
    args = ap.parse_args(argv)
    try:
        if args.check:
            params, declared = check_profile(args.profile)
            print(f"{_shown(PROFILES / f'{args.profile}.yaml')}: each of its {len(params)} keys is declared by "
                  f"one of {len(declared)} notebooks")
            return 0
        results = run_pipeline(args.profile, args.force, [s for s in args.only.split(",") if s] or None)
    except ValueError as exc:
        print(f"run_all: {exc}", file=sys.stderr)
        return 2
    print()
    print(summary(args.profile, results))
    from llmsched.webreport import write_report

    # the web report, whatever happened: it lists what a stopped run did not produce
    print(f"\nreport: {write_report(args.profile)}  (open it in a browser; the folder can be zipped and sent)")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        out = results_dir() / "executed" / args.profile
        print(f"\nrun_all: {failed[0].message}\n  executed copy with the failing cell: {out / failed[0].notebook}\n"
              f"  results of the stages before it are kept; fix the cause and rerun (done stages are skipped)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
