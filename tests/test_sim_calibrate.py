"""Calibration of step-time profiles (fit, profile file, a smoke run on the tiny model) and the validation
table of the simulator against the real engine."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from llmsched.records import COLUMNS
from llmsched.serving.calibrate import calibration_plan
from llmsched.sim import LinearStepTime, load_profile, simulate
from llmsched.sim.validate import compare_runs, comparison_table, format_table, relative_error, write_table
from llmsched.steptime.fit import build_profile, fit_step_time, predict, step_kind

TRUE = LinearStepTime(c0=0.012, c_prefill=2.0e-4, c_decode=4.0e-3, c_kv=1.5e-6)
LIMITS = {"num_blocks": 3000, "block_size": 16, "max_num_seqs": 16, "max_num_batched_tokens": 2048,
          "max_model_len": 2048}


def synthetic_steps(n: int = 400, noise: float = 0.03, seed: int = 1) -> pd.DataFrame:
    """Prefill, decode and mixed steps whose cycle follows TRUE with multiplicative noise and a few stalls."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, n)
    prefill = np.where(kind == 1, 0, rng.integers(16, 2049, n))
    decode = np.where(kind == 0, 0, rng.integers(1, 17, n))
    kv = prefill + decode * rng.integers(16, 1500, n)
    df = pd.DataFrame({"prefill_tokens": prefill, "decode_seqs": decode, "kv_tokens": kv,
                       "num_seqs": decode + (prefill > 0), "phase": "plan"})
    t = predict(TRUE, df) * rng.lognormal(0.0, noise, n)
    stalls = rng.choice(n, 8, replace=False)
    t[stalls] += 0.5  # another process took the CPU: outliers
    df["cycle_s"] = t
    df["stall"] = False
    df.loc[stalls, "stall"] = True
    df.loc[:4, "phase"] = "warmup"
    return df


def test_fit_recovers_known_coefficients_despite_noise_and_outliers() -> None:
    df = synthetic_steps()
    fit = fit_step_time(df, seed=0, mean_correct=False)
    m = fit.model
    for name in LinearStepTime.COEFFICIENTS:
        assert getattr(m, name) == pytest.approx(getattr(TRUE, name), rel=0.08), name
    # the mean correction scales the robust shape so that the stalls' time is accounted for on average
    corrected = fit_step_time(df, seed=0)
    scale = corrected.quality["mean_correction"]
    assert 1.0 < scale < 1.2 and fit.quality["mean_correction"] == 1.0
    assert corrected.model.c_prefill == pytest.approx(scale * m.c_prefill)
    q = fit.quality
    stall = df.stall.to_numpy()
    assert (fit.outliers == stall & ~fit.test & (df.phase != "warmup").to_numpy()).all()  # exactly the stalls
    assert not (fit.train & fit.test).any() and not (fit.train & fit.outliers).any()
    assert not fit.train[:5].any() and not fit.test[:5].any()  # warm-up is never used
    assert q["train"]["r2"] > 0.98 and q["train"]["rel_err_mean_abs"] < 0.05
    assert q["n_test"] == round(0.25 * (len(df) - 5))
    assert set(q["test_by_kind"]) == {"prefill", "decode", "mixed"}
    # noiseless data: exact
    exact = df.assign(cycle_s=predict(TRUE, df))
    m2 = fit_step_time(exact).model  # mean correction is 1 here
    assert predict(m2, exact) == pytest.approx(exact.cycle_s.to_numpy(), rel=1e-6)


def test_fit_keeps_coefficients_non_negative_and_rejects_too_few_steps() -> None:
    df = synthetic_steps(200, noise=0.01)
    df["cycle_s"] = 0.05 + 1e-4 * df["prefill_tokens"]  # no decode/kv dependence at all
    m = fit_step_time(df).model
    assert min(m.c0, m.c_prefill, m.c_decode, m.c_kv) >= 0
    assert m.c_decode == pytest.approx(0, abs=1e-6) and m.c_prefill == pytest.approx(1e-4, rel=1e-3)
    with pytest.raises(ValueError, match="usable steps"):
        fit_step_time(df.head(6))
    with pytest.raises(ValueError, match="no column"):
        fit_step_time(df, target="duration")


def test_step_kind() -> None:
    df = pd.DataFrame({"prefill_tokens": [100, 0, 50], "decode_seqs": [0, 4, 3]})
    assert step_kind(df).tolist() == ["prefill", "decode", "mixed"]


def test_profile_round_trips_through_load_profile(tmp_path) -> None:
    fit = fit_step_time(synthetic_steps())
    data = build_profile("cpu-test", fit, LIMITS, {"model": "test", "vllm_version": "0.32.0",
                                                   "machine": {"nproc": 2, "cpu_model": "x"}})
    path = tmp_path / "cpu-test.json"
    path.write_text(json.dumps(data))
    prof = load_profile(str(path))
    assert prof.name == "cpu-test" and prof.step_time == fit.model
    assert prof.engine == LIMITS and prof.sim_config().num_blocks == 3000
    assert prof.data["fit"]["n_test"] > 0 and "engine.num_blocks" in prof.data["sources"]
    # it drives the simulator
    from llmsched.workload.request import Request

    res = simulate([Request("a", "", 100, 10, 0.0)], prof.sim_config(), prof.step_time, "fcfs")
    assert res.frame.last_token.iloc[0] > 0


def test_calibration_plan_respects_engine_limits() -> None:
    for quick in (False, True):
        plan = calibration_plan(0, quick=quick)
        assert plan[0].name == "warmup"
        for ph in plan:
            items = ph.batch + [x for v in ph.inject.values() for x in v]
            assert all(1 <= p and p + o <= 2048 and o >= 1 for p, o in items)
    assert sum(len(ph.batch) for ph in calibration_plan(0, quick=True)) <= 10


# ---------------------------------------------------------------------------------------------------------
# The validation table
# ---------------------------------------------------------------------------------------------------------


def frame(arrival, first, last, outputs) -> pd.DataFrame:
    n = len(arrival)
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)], "source": "", "status": "ok", "error": "",
        "prompt_tokens": 10, "ref_output_tokens": outputs, "output_tokens": outputs, "arrival": arrival,
        "queued": arrival, "scheduled": arrival, "first_token": first, "last_token": last, "preemptions": 0,
    }, columns=COLUMNS)


def test_relative_errors_on_hand_made_frames(tmp_path) -> None:
    real = frame([0.0, 1.0], [1.0, 3.0], [4.0, 9.0], [10, 30])  # e2e 4, 8 -> mean 6; ttft 1, 2 -> 1.5
    sim = frame([0.0, 1.0], [1.5, 3.0], [4.5, 9.5], [10, 30])  # e2e 4.5, 8.5 -> 6.5; ttft 1.5, 2 -> 1.75
    row = compare_runs(real, sim)
    assert row["e2e_mean_real"] == pytest.approx(6.0) and row["e2e_mean_sim"] == pytest.approx(6.5)
    assert row["e2e_mean_err"] == pytest.approx(0.5 / 6)
    assert row["ttft_mean_err"] == pytest.approx(0.25 / 1.5)
    # throughput: 40 tokens over makespan 9 vs 9.5
    assert row["token_throughput_err"] == pytest.approx((40 / 9.5 - 40 / 9) / (40 / 9))
    assert relative_error(0.0, 1.0) != relative_error(0.0, 1.0)  # NaN
    assert relative_error(2.0, 1.0) == -0.5 and math.isnan(relative_error(math.nan, 1.0))

    table = comparison_table({("low", "fcfs"): (real, sim), ("low", "sjf"): (real, real)})
    assert list(table.index) == [("low", "fcfs"), ("low", "sjf")]
    assert not table.loc[("low", "fcfs"), "meets_targets"]  # TTFT off by 16.7 % > 15 %
    assert table.loc[("low", "sjf"), "meets_targets"]
    assert table.loc[("low", "sjf"), "e2e_p90_err"] == 0
    shown = format_table(table)
    assert "(+8.3%)" in shown.loc[("low", "fcfs"), "mean E2E (s)"]
    csv, md = write_table(table, tmp_path, "header")
    back = pd.read_csv(csv, index_col=[0, 1])
    assert back.loc[("low", "fcfs"), "e2e_mean_err"] == pytest.approx(0.5 / 6)
    assert md.read_text().startswith("header") and "| low | fcfs |" in md.read_text()


# ---------------------------------------------------------------------------------------------------------
# Smoke run on the real engine (tiny model)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.vllm
def test_calibration_smoke_on_tiny_model(tiny_model, tmp_path) -> None:
    from llmsched.serving.calibrate import calibrate

    out = tmp_path / "cpu-tiny.json"
    path, data = calibrate(tiny_model, out, steps_dir=tmp_path / "steps", quick=True, kv_cache_gib=1,
                           progress=False)
    prof = load_profile(str(path))
    c = prof.step_time
    assert isinstance(c, LinearStepTime) and c.c0 > 0
    assert min(c.c0, c.c_prefill, c.c_decode, c.c_kv) >= 0 and c.c_prefill + c.c_decode + c.c_kv > 0
    eng = prof.engine
    assert eng["max_num_seqs"] == 16 and eng["max_num_batched_tokens"] == 2048 and eng["max_model_len"] == 2048
    assert eng["num_blocks"] > 100 and eng["block_size"] > 0
    meta = data["calibration"]
    assert meta["vllm_version"] == "0.32.0" and meta["machine"]["nproc"] >= 1 and meta["num_steps"] >= 6
    assert meta["measured_at"].startswith(meta["date"]) and prof.measured
    assert prof.provenance()["measured_at"] == meta["measured_at"]
    steps = pd.read_parquet(tmp_path / "steps" / "steps.parquet")
    assert len(steps) == meta["num_steps"] and (steps.cycle_s.dropna() > 0).all()
    assert (steps.kind == "prefill").any() and (steps.kind == "decode").any()
    # the composition the recorder saw is the plan's: the prefill phase schedules 2 x 128 tokens at once
    assert (steps.prefill_tokens == 256).any()
    assert (steps.kv_tokens >= steps.prefill_tokens + steps.decode_seqs).all()


@pytest.mark.parametrize(("module", "expect"), [("llmsched.serving.calibrate", "--quick"),
                                                 ("llmsched.steptime", "write")])
def test_calibration_and_profile_command_lines_answer(module, expect):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and expect in proc.stdout, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------------------
# Cross-run validation: calibrate on one run, predict the others
# ---------------------------------------------------------------------------------------------------------


def recorded_run(truth: LinearStepTime, seed: int):
    """A "real" run whose truth is known: the simulator under `truth` stands in for the engine; its step trace
    becomes the recorded steps (cycle = the step's duration)."""
    from llmsched.sim import SimConfig
    from llmsched.sim.validate import RecordedRun
    from llmsched.workload.request import Request

    rng = np.random.default_rng(seed)
    n = 40
    arrivals = np.cumsum(rng.exponential(0.4, n))
    reqs = [Request(f"r{i}", "x", int(rng.integers(16, 600)), int(rng.integers(4, 80)), float(arrivals[i]))
            for i in range(n)]
    res = simulate(reqs, SimConfig(**LIMITS), truth, "fcfs", trace_steps=True)
    st = res.steps
    steps = pd.DataFrame({"prefill_tokens": st.prefill_tokens, "decode_seqs": st.decode_seqs,
                          "kv_tokens": st.kv_tokens, "num_seqs": st.num_seqs, "cycle_s": st.end - st.start,
                          "phase": "serve"})
    return RecordedRun(steps, res.frame, reqs, "fcfs", {}, {})


def test_cross_run_validation_reports_predictions_of_runs_the_fit_never_saw() -> None:
    from llmsched.sim import profile_from_dict
    from llmsched.sim.validate import cross_run_summary, cross_run_validation

    slow = LinearStepTime(*(1.3 * getattr(TRUE, k) for k in LinearStepTime.COEFFICIENTS))
    runs = {"a1": recorded_run(TRUE, 1), "a2": recorded_run(TRUE, 2), "slow": recorded_run(slow, 3)}
    base = profile_from_dict({"kind": "linear", "name": "cpu-base", "engine": LIMITS,
                              "coefficients": {"c0": 1.0, "c_prefill": 0.0, "c_decode": 0.0, "c_kv": 0.0}})
    table = cross_run_validation(runs, base)
    assert len(table) == 9 and table["same_run"].sum() == 3
    # the same machine state: a calibration on one run predicts another run of it
    for fit_on, pred in (("a1", "a2"), ("a2", "a1"), ("a1", "a1")):
        row = table.loc[(fit_on, pred)]
        assert abs(row["step_time_err"]) < 0.02 and abs(row["e2e_mean_err"]) < 0.03, row
        assert abs(row["token_throughput_err"]) < 0.03
    # the machine got 30 % slower: a calibration from before under-predicts the step time by 1 - 1/1.3
    row = table.loc[("a1", "slow")]
    assert row["step_time_err"] == pytest.approx(1 / 1.3 - 1, abs=0.02)
    assert row["e2e_mean_err"] < -0.15 and row["token_throughput_err"] > 0
    assert table.loc[("slow", "a2"), "step_time_err"] == pytest.approx(0.3, abs=0.03)
    assert abs(table.loc[("slow", "slow"), "e2e_mean_err"]) < 0.03  # a same-run refit hides the drift
    summary = cross_run_summary(table)
    assert summary.loc[("cross-run", "step_time_err"), "n"] == 6
    assert summary.loc[("cross-run", "step_time_err"), "max"] > 0.25
    assert summary.loc[("same-run", "step_time_err"), "max"] < 0.02


def test_a_recorded_run_folder_loads_for_cross_run_validation(tmp_path) -> None:
    from llmsched.records import write_run
    from llmsched.sim import SimConfig
    from llmsched.sim.validate import load_recorded_run

    run = recorded_run(TRUE, 4)
    res = simulate(run.requests, SimConfig(**LIMITS), TRUE, "fcfs")
    write_run(tmp_path / "fcfs", res.records, {"engine": {"policy": "fcfs", "policy_args": {}, "max_num_seqs": 8,
                                                          "max_num_batched_tokens": 2048, "max_model_len": 2048}})
    with pytest.raises(FileNotFoundError, match="record_steps"):
        load_recorded_run(tmp_path / "fcfs")
    run.steps.to_parquet(tmp_path / "fcfs" / "steps.parquet")
    loaded = load_recorded_run(tmp_path / "fcfs")
    assert loaded.limits["max_num_seqs"] == 8 and loaded.policy == "fcfs" and len(loaded.steps) == len(run.steps)
    assert sorted((r.request_id, r.prompt_tokens, r.output_tokens, r.arrival_time) for r in loaded.requests) == \
        sorted((r.request_id, r.prompt_tokens, r.output_tokens, r.arrival_time) for r in run.requests)
