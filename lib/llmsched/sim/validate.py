"""Validate the simulator against the real engine: the same workload, arrivals and policies on both.

For each case (a ShareGPT workload at some rate) and policy, the real engine's run (llmsched.serving
compare_policies: `<run root>/workload.parquet` and `<run root>/<policy>/requests.parquet`) is replayed in the
simulator with a calibrated profile, on the *same* arrival times and the engine's own prompt token counts, and
the two are compared on the metrics below; relative error = (sim - real) / real.

    real = load_real_run(run_root, "fcfs")
    sim = simulate_real_run(run_root, "fcfs", load_profile("cpu-gemma-3-270m"))
    table = comparison_table({("rate 1.0", "fcfs"): (real, sim.frame)})

Step-level check: real runs made with `RunConfig(record_steps=True)` record their engine's steps
(llmsched.serving.steps.StepRecorder) into `<out_dir>/steps.parquet` beside requests.parquet, so the measured
serving-loop cycles of a real run can be compared with the profile's prediction (`step_error_summary`), and
the run can be re-simulated with step times fitted on its own steps (`refit_profile`: a diagnostic that
separates scheduling fidelity from step-time error and from the machine's speed drifting between runs).

Cross-run check (`cross_run_validation`): with several recorded runs, calibrate on each run's steps and predict
the others (step time and, through the simulator, mean E2E and throughput). A same-run refit only shows that the
step-time model can describe a run; a calibration predicting runs it never saw is the validation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.analysis.metrics import summarize
from llmsched.analysis.tables import to_markdown
from llmsched.records import OK, read_run
from llmsched.sim.simulator import SimResult, simulate
from llmsched.steptime.fit import fit_step_time, predict, step_kind
from llmsched.steptime.models import LinearStepTime
from llmsched.steptime.profiles import Profile
from llmsched.workload.io import load_workload
from llmsched.workload.request import Request

# metric of llmsched.analysis.metrics.summarize -> label
METRICS: dict[str, str] = {
    "e2e_mean": "mean E2E (s)",
    "ttft_mean": "mean TTFT (s)",
    "e2e_p90": "p90 E2E (s)",
    "token_throughput": "output tok/s",
    "normalized_latency_mean": "mean normalized latency (s/token)",
}
# |relative error| targets of the validation
TARGETS: dict[str, float] = {"e2e_mean": 0.10, "token_throughput": 0.10, "ttft_mean": 0.15}


def relative_error(real: float, sim: float) -> float:
    """(sim - real) / real; NaN when real is 0 or either is not finite."""
    if not (math.isfinite(real) and math.isfinite(sim)) or real == 0:
        return math.nan
    return (sim - real) / real


def compare_runs(real: pd.DataFrame, sim: pd.DataFrame, metrics: Sequence[str] = tuple(METRICS)) -> dict[str, float]:
    """{metric_real, metric_sim, metric_err} for each metric of `summarize` over two request frames."""
    r, s = summarize(real), summarize(sim)
    out: dict[str, float] = {"n_real": r["n_ok"], "n_sim": s["n_ok"]}
    for m in metrics:
        out[f"{m}_real"] = float(r[m])
        out[f"{m}_sim"] = float(s[m])
        out[f"{m}_err"] = relative_error(float(r[m]), float(s[m]))
    return out


def comparison_table(pairs: Mapping[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]],
                     metrics: Sequence[str] = tuple(METRICS),
                     targets: Mapping[str, float] = TARGETS) -> pd.DataFrame:
    """One row per (case, policy) with real, sim and relative error of each metric, and `meets_targets`
    (every |error| within `targets`, for the targeted metrics present)."""
    rows = []
    for (case, policy), (real, sim) in pairs.items():
        row: dict[str, Any] = {"case": case, "policy": policy, **compare_runs(real, sim, metrics)}
        errs = [abs(row[f"{m}_err"]) <= t for m, t in targets.items() if f"{m}_err" in row]
        row["meets_targets"] = bool(errs) and all(errs)
        rows.append(row)
    return pd.DataFrame(rows).set_index(["case", "policy"])


def format_table(table: pd.DataFrame, metrics: Sequence[str] = tuple(METRICS)) -> pd.DataFrame:
    """A readable version of comparison_table: per metric "real / sim (err %)"."""
    out = pd.DataFrame(index=table.index)
    for m in metrics:
        if f"{m}_real" not in table.columns:
            continue
        digits = 4 if m.startswith("normalized") else 2
        out[METRICS.get(m, m)] = [
            f"{r:.{digits}f} / {s:.{digits}f} ({e:+.1%})"
            for r, s, e in zip(table[f"{m}_real"], table[f"{m}_sim"], table[f"{m}_err"], strict=True)
        ]
    out["meets targets"] = table["meets_targets"].map({True: "yes", False: "no"})
    return out


def write_table(table: pd.DataFrame, out_dir: str | Path, header: str = "") -> tuple[Path, Path]:
    """comparison.csv (every number) and comparison.md (readable) in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv")
    flat = format_table(table).reset_index()
    md = (header + "\n\n" if header else "") + to_markdown(flat, index=False)
    (out / "comparison.md").write_text(md)
    return out / "comparison.csv", out / "comparison.md"


# ---------------------------------------------------------------------------------------------------------
# Replaying a real run in the simulator
# ---------------------------------------------------------------------------------------------------------


def load_real_run(run_root: str | Path, policy: str, run: int = 0) -> pd.DataFrame:
    """The real engine's request records of run `run` of `policy` in a compare_policies folder."""
    from llmsched.serving.experiment import run_dir

    return read_run(run_dir(run_root, policy, run))[0]


def sim_requests(run_root: str | Path, real: pd.DataFrame | None = None) -> list[Request]:
    """The workload of a compare_policies folder (workload.parquet: arrival times, reference lengths, hints);
    with `real`, prompt lengths are the ones the engine counted (its requests.parquet prompt_tokens)."""
    reqs = load_workload(Path(run_root) / "workload.parquet")
    if real is not None:
        ok = real[real["status"] == OK].set_index("request_id")["prompt_tokens"]
        for r in reqs:
            if r.request_id in ok.index:
                r.prompt_tokens = int(ok.loc[r.request_id])
    return reqs


def simulate_real_run(run_root: str | Path, policy: str, profile: Profile, *, trace_steps: bool = True,
                      **config_overrides: Any) -> SimResult:
    """Simulate `policy` on the workload (same arrivals) of a real compare_policies folder with `profile`'s
    step time and engine limits (overridable, e.g. max_num_seqs=16)."""
    real = load_real_run(run_root, policy)
    reqs = sim_requests(run_root, real)
    return simulate(reqs, profile.sim_config(**config_overrides), profile.step_time, policy, trace_steps=trace_steps)


# ---------------------------------------------------------------------------------------------------------
# Step level
# ---------------------------------------------------------------------------------------------------------


def step_error_summary(steps: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Measured serving-loop cycles of a run vs the profile's prediction, per step kind and overall: steps,
    mean measured and predicted (ms), summed time error, mean relative error, and the mean host time after
    the model (cycle - exec)."""
    df = steps[np.isfinite(steps["cycle_s"])].copy()
    model = profile.step_time
    if not isinstance(model, LinearStepTime):
        raise ValueError(f"step-time checks need a linear (calibrated) profile, got {profile.name!r} ({model!r})")
    df["pred_s"] = predict(model, df)
    df["kind"] = step_kind(df)
    rows = {}
    for kind, g in [*df.groupby("kind"), ("all", df)]:
        rows[kind] = {
            "steps": len(g),
            "measured_ms": 1e3 * g["cycle_s"].mean(),
            "predicted_ms": 1e3 * g["pred_s"].mean(),
            "summed_time_err": g["pred_s"].sum() / g["cycle_s"].sum() - 1,
            "mean_rel_err": ((g["pred_s"] - g["cycle_s"]) / g["cycle_s"]).mean(),
            "host_after_model_ms": 1e3 * (g["cycle_s"] - g["exec_s"]).mean(),
            "measured_total_s": g["cycle_s"].sum(),
        }
    return pd.DataFrame(rows).T


def busy_time(steps: pd.DataFrame) -> float:
    """Seconds the real engine spent in steps with a known cycle."""
    return float(steps["cycle_s"].sum())


def refit_profile(profile: Profile, steps: pd.DataFrame, suffix: str = "refit") -> Profile:
    """`profile` with its step time refitted (fit_step_time, nothing held out) on the recorded steps of a real
    run. A diagnostic, not a validation: simulating a run with step times fitted on that very run separates
    the simulator's scheduling fidelity from step-time calibration error and machine-speed drift."""
    fit = fit_step_time(steps, test_fraction=0.0)
    data = {**profile.data, "coefficients": {k: getattr(fit.model, k) for k in fit.model.COEFFICIENTS},
            "fit": fit.quality}
    return Profile(f"{profile.name}-{suffix}", fit.model, dict(profile.engine), data, None)


# ---------------------------------------------------------------------------------------------------------
# Cross-run validation: calibrate on one run, predict the others
# ---------------------------------------------------------------------------------------------------------


@dataclass
class RecordedRun:
    """A real-engine run recorded with `RunConfig(record_steps=True)`: its engine steps, and for simulating it
    its request records, workload (same arrivals, the engine's prompt token counts), policy and engine limits."""

    steps: pd.DataFrame
    real: pd.DataFrame | None = None
    requests: list[Request] | None = None
    policy: str = "fcfs"
    policy_args: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)  # SimConfig overrides (max_num_seqs, ...)


def load_recorded_run(run_dir: str | Path, workload: str | Path | None = None) -> RecordedRun:
    """A run folder of the serving runner (requests.parquet, config.json, steps.parquet). The workload is
    `workload` (a workload.parquet), else the compare_policies one beside the folder, else rebuilt from the
    request records (arrival, the engine's prompt tokens, reference output length; no scheduler hints)."""
    run_dir = Path(run_dir)
    steps_file = run_dir / "steps.parquet"
    if not steps_file.exists():
        raise FileNotFoundError(f"{steps_file} missing: record the run with RunConfig(record_steps=True)")
    real, config = read_run(run_dir)
    wl = Path(workload) if workload is not None else run_dir.parent / "workload.parquet"
    if wl.exists():
        reqs = sim_requests(wl.parent, real) if wl.name == "workload.parquet" else load_workload(wl)
    else:
        ok = real[real["status"] == OK]
        reqs = [Request(str(r.request_id), "x", int(r.prompt_tokens), int(r.ref_output_tokens),
                        arrival_time=float(r.arrival)) for r in ok.itertuples()]
    eng = config.get("engine", {})
    limits = {k: int(eng[k]) for k in ("max_num_seqs", "max_num_batched_tokens", "max_model_len") if k in eng}
    return RecordedRun(pd.read_parquet(steps_file), real, reqs, eng.get("policy", "fcfs"),
                       dict(eng.get("policy_args") or {}), limits)


def _step_errors(model: LinearStepTime, steps: pd.DataFrame) -> dict[str, float]:
    df = steps[np.isfinite(steps["cycle_s"]) & (steps["cycle_s"] > 0)]
    pred, meas = predict(model, df), df["cycle_s"].to_numpy(float)
    return {"steps": int(len(df)), "step_time_err": float(pred.sum() / meas.sum() - 1.0),
            "step_rel_err_mean_abs": float(np.abs(pred / meas - 1.0).mean())}


def cross_run_validation(runs: Mapping[str, RecordedRun], base: Profile,
                         metrics: Sequence[str] = ("e2e_mean", "token_throughput", "ttft_mean")) -> pd.DataFrame:
    """Calibrate on each run's recorded steps (`refit_profile` of `base`: its engine limits, step time fitted on
    that run alone), then predict every run with it: per (calibrated_on, predicted) pair the step-level error
    (summed cycle time, mean |relative error| per step) and, for runs that carry their request records and
    workload, the simulator's relative error on `metrics` (mean E2E, throughput, ...) against the real run.

    Rows with same_run True are same-run refits (how well the model can describe one run); the others are the
    validation proper: how well a calibration predicts runs it never saw, e.g. on the same machine minutes later.
    """
    if len(runs) < 2:
        raise ValueError(f"cross-run validation needs at least 2 runs, got {len(runs)}")
    fitted = {label: refit_profile(base, run.steps, suffix=f"fit-{label}") for label, run in runs.items()}
    rows = []
    for fit_label, prof in fitted.items():
        assert isinstance(prof.step_time, LinearStepTime)
        for label, run in runs.items():
            row: dict[str, Any] = {"calibrated_on": fit_label, "predicted": label, "same_run": fit_label == label,
                                   **_step_errors(prof.step_time, run.steps)}
            if run.real is not None and run.requests:
                sim = simulate(run.requests, prof.sim_config(**run.limits), prof.step_time, run.policy,
                               policy_args=run.policy_args)
                row.update(compare_runs(run.real, sim.frame, metrics))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["calibrated_on", "predicted"])


def cross_run_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Range of each error column of `cross_run_validation` over the cross-run pairs and over the same-run
    refits: min, mean and max (rows "cross-run" and "same-run")."""
    errs = [c for c in table.columns if c.endswith("_err") or c == "step_rel_err_mean_abs"]
    out = {}
    for name, part in (("cross-run", table[~table["same_run"]]), ("same-run", table[table["same_run"]])):
        for c in errs:
            out[(name, c)] = {"min": part[c].min(), "mean": part[c].mean(), "max": part[c].max(), "n": len(part)}
    return pd.DataFrame(out).T
