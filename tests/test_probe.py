"""The engine-speed probe (llmsched.serving.probe) and checking measured step-time profiles against it."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from llmsched.serving.probe import (
    PROBE_OUTPUT_TOKENS,
    PROBE_PROMPT_TOKENS,
    PROBE_REQUESTS,
    StaleProfileError,
    compare_steps,
    ensure_profile,
    probe_error,
    probe_step_frame,
)
from llmsched.sim import LinearStepTime, load_profile, profile_from_dict
from llmsched.steptime.fit import predict

TRUE = LinearStepTime(c0=0.02, c_prefill=4e-4, c_decode=3e-3, c_kv=2e-6)
LIMITS = {"num_blocks": 364, "block_size": 128, "max_num_seqs": 16, "max_num_batched_tokens": 2048,
          "max_model_len": 2048}
META = {"model": "tiny", "model_dir": "tiny-llama", "measured_at": "2026-01-02T03:04:05+00:00",
        "machine": {"nproc": 2, "cpu_model": "Test CPU", "memory_gib": 24.0}, "vllm_version": "0.32.0"}


def measured_profile(model: LinearStepTime, name: str = "cpu-test", meta: dict | None = None):
    coef = {k: getattr(model, k) for k in LinearStepTime.COEFFICIENTS}
    return profile_from_dict({"schema": "llmsched.steptime/1", "name": name, "kind": "linear",
                              "coefficients": coef, "engine": LIMITS, "calibration": meta or META})


def scaled(model: LinearStepTime, factor: float) -> LinearStepTime:
    return LinearStepTime(*(factor * getattr(model, k) for k in LinearStepTime.COEFFICIENTS))


def probe_frame(model: LinearStepTime = TRUE) -> pd.DataFrame:
    """The probe's steps as the recorder sees them, cycles from `model` (the last step has no cycle)."""
    df = probe_step_frame()
    df["cycle_s"] = np.where(np.isfinite(df["cycle_s"]), predict(model, df), np.nan)
    return df


def test_the_probe_step_frame_is_the_probe_workload() -> None:
    df = probe_step_frame()
    assert df["prefill_tokens"].sum() == PROBE_REQUESTS * PROBE_PROMPT_TOKENS
    assert len(df) == PROBE_OUTPUT_TOKENS and df["cycle_s"].isna().sum() == 1


def test_recorded_probe_numbers_check_a_profile_without_an_engine() -> None:
    steps = probe_frame(TRUE)
    recorded = {"probe_step_ms_mean": 1e3 * float(steps["cycle_s"].mean())}
    assert probe_error(measured_profile(TRUE), recorded)["rel_error"] == pytest.approx(0.0, abs=1e-9)
    assert probe_error(measured_profile(scaled(TRUE, 1.3)), recorded)["rel_error"] == pytest.approx(0.3)
    assert np.isnan(probe_error(measured_profile(TRUE), {})["rel_error"])


def test_provenance_says_when_and_where_a_profile_was_measured() -> None:
    prov = measured_profile(TRUE).provenance()
    assert prov["measured_at"] == META["measured_at"] and "2 cores, Test CPU" in prov["machine"]
    assert measured_profile(TRUE).measured
    assert not load_profile("h100-sxm_llama-3-8b").measured  # analytic: exempt from checks
    old = measured_profile(TRUE, meta={"date": "2026-11-23", "machine": {"nproc": 2}})
    assert old.provenance()["measured_at"] == "2026-11-23"  # profiles written before measured_at: the date


@pytest.mark.parametrize(("factor", "ok"), [(1.0, True), (1.05, True), (0.93, True), (1.3, False),
                                            (0.7, False)])
def test_a_profile_off_by_more_than_the_tolerance_is_flagged(factor, ok) -> None:
    steps = probe_frame(TRUE)
    seconds = float(predict(TRUE, steps).sum())
    check = compare_steps(measured_profile(scaled(TRUE, factor)), steps, seconds, tolerance=0.10,
                          engine_model="tiny-llama")
    assert check.ok is ok
    assert check.rel_error == pytest.approx(factor - 1.0)
    assert check.by_kind["prefill"] == pytest.approx(factor - 1.0)
    assert check.by_kind["decode"] == pytest.approx(factor - 1.0)
    assert check.predicted_output_tok_s == pytest.approx(check.measured_output_tok_s / factor)
    assert check.predicted_step_ms == pytest.approx(factor * check.measured_step_ms)
    assert check.same_model and check.provenance["measured_at"] == META["measured_at"]
    assert ("STALE" in check.message()) is (not ok)
    json.dumps(check.to_dict())  # recordable beside results


def test_a_profile_of_another_model_fails_the_check_even_when_the_speed_matches() -> None:
    steps = probe_frame(TRUE)
    check = compare_steps(measured_profile(TRUE), steps, float(predict(TRUE, steps).sum()),
                          engine_model="SmolLM2-135M-Instruct")
    assert check.same_model is False and not check.ok and "tiny-llama" in check.message()


def test_analytic_profiles_are_not_checked_and_policies_are_validated() -> None:
    prof = load_profile("h100-sxm_llama-3-8b")
    assert ensure_profile(prof, object(), on_mismatch="error") is prof  # no engine is touched
    assert load_profile("h100-sxm_llama-3-8b", check_against=object()).check is None
    with pytest.raises(ValueError, match="on_mismatch"):
        ensure_profile(prof, object(), on_mismatch="ignore")


# ---------------------------------------------------------------------------------------------------------
# On the real engine (tiny model)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner(tiny_model):
    from llmsched.serving.engine import EngineConfig
    from llmsched.serving.runner import EngineRunner

    with EngineRunner(EngineConfig(model=tiny_model, policy="oracle-sjf")) as r:
        yield r


@pytest.mark.vllm
def test_speed_probe_measures_and_leaves_the_engine_reusable(runner) -> None:
    from llmsched.serving.probe import speed_probe
    from llmsched.serving.runner import RunConfig
    from llmsched.workload.request import Request

    speed = speed_probe(runner)
    for key in ("probe_output_tok_s", "probe_prefill_tok_s", "probe_decode_tok_s", "probe_seconds",
                "probe_step_ms_mean"):
        assert speed[key] > 0, (key, speed)
    assert speed["probe_steps"] >= PROBE_OUTPUT_TOKENS
    assert speed["probe_output_tok_s"] == pytest.approx(
        PROBE_REQUESTS * PROBE_OUTPUT_TOKENS / speed["probe_seconds"])
    assert not runner.engine.has_unfinished_requests()
    reqs = [Request(f"r{i}", "hello there, how are you today?", 8, 5, arrival_time=0.01 * i) for i in range(3)]
    df = runner.run(reqs, RunConfig(progress=False))
    assert (df["status"] == "ok").all() and (df["output_tokens"] == 5).all()
    assert not runner.engine.has_unfinished_requests()
    again = speed_probe(runner)  # a second probe on the same engine does the same steps
    assert again["probe_steps"] == speed["probe_steps"]


@pytest.mark.vllm
def test_a_stale_profile_warns_raises_or_is_recalibrated(runner, tmp_path, caplog) -> None:
    from llmsched.serving.probe import check_profile

    # 100x slower than the tiny model on any machine: stale
    stale_path = tmp_path / "cpu-stale.json"
    stale = measured_profile(LinearStepTime(c0=1.0, c_prefill=1e-2, c_decode=1e-1, c_kv=1e-4), "cpu-stale",
                             {**META, "model_dir": runner.config.resolved_model().rsplit("/", 1)[-1]})
    stale_path.write_text(json.dumps(stale.data))
    check = check_profile(stale_path, runner)
    assert not check.ok and check.rel_error > 10 and check.same_model
    assert check.measured_output_tok_s > 0 and check.steps >= PROBE_OUTPUT_TOKENS - 1

    with pytest.raises(StaleProfileError, match="python -m llmsched.serving.calibrate"):
        ensure_profile(stale_path, runner, on_mismatch="error")

    with caplog.at_level(logging.WARNING, logger="llmsched.serving.probe"):
        warned = load_profile(str(stale_path), check_against=runner)  # "warn" is the default
    assert warned.name == "cpu-stale" and not warned.check.ok
    msgs = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert msgs and "cpu-stale" in msgs[0].getMessage()
    assert f"python -m llmsched.serving.calibrate --model {runner.config.model}" in msgs[0].getMessage()

    new = ensure_profile(stale_path, runner, on_mismatch="recalibrate", folder=tmp_path / "cal", quick=True)
    assert new.path is not None and new.path.parent == tmp_path / "cal" and new.path.exists()
    assert new.name.endswith("-recalibrated") and new.measured
    assert new.check.recalibrated_from["profile"] == "cpu-stale"
    assert abs(new.check.rel_error) < abs(check.rel_error)
    assert (tmp_path / "cal" / new.path.stem / "steps.parquet").exists()
    assert not runner.engine.has_unfinished_requests()


@pytest.mark.vllm
def test_the_agreement_table_records_its_calibration_and_the_check(tmp_path, caplog) -> None:
    """PARS's agreement stage on a serve folder (one simulated stand-in run): the shipped CPU profile of the
    smoke parameters is checked against the smoke engine (tiny model; the profile is Gemma's, so it fails and
    warns), and table and JSON say which calibration ran, when and where it was measured, and the check."""
    from llmsched.experiments.pars import ParsExperiments
    from llmsched.experiments.stages import load_params
    from llmsched.records import write_run
    from llmsched.sim import SimConfig, simulate
    from llmsched.workload.io import save_workload
    from llmsched.workload.request import Request

    params = {**load_params("smoke"), "pars_agreement_calibrate": False, "serving_on_mismatch": "warn"}
    exp = ParsExperiments(params, out_root=tmp_path)
    reqs = [Request(f"r{i}", "hello", 20 + 3 * i, 5 + i, arrival_time=0.1 * i) for i in range(6)]
    save_workload(reqs, tmp_path / "serve" / "workload.parquet")
    res = simulate(reqs, SimConfig(**LIMITS), TRUE, "fcfs")
    write_run(tmp_path / "serve" / "fcfs" / "run-0", res.records,
              {"engine": {"policy": "fcfs", "policy_args": {}, "max_num_seqs": 16, "max_num_batched_tokens": 2048,
                          "max_model_len": 2048}})
    pd.DataFrame({"label": ["fcfs"], "run": [0], "probe_step_ms_mean": [1.0]}).to_parquet(
        tmp_path / "serve" / "runs.parquet")  # the speed probe recorded before the run: 1 ms per step
    with caplog.at_level(logging.WARNING, logger="llmsched.serving.probe"):
        table = exp.agreement()
    shipped = load_profile(exp.s.serving_steptime)
    assert any("STALE" in r.getMessage() for r in caplog.records)
    row = table.iloc[0]
    assert row["profile"] == shipped.name and row["profile_measured_at"] == shipped.provenance()["measured_at"]
    assert not row["profile_check_ok"]
    saved = json.loads((tmp_path / "agreement" / "agreement.json").read_text())
    assert saved["profile"] == shipped.name and saved["profile_machine"] == shipped.provenance()["machine"]
    assert saved["profile_check"]["ok"] is False and saved["profile_check"]["same_model"] is False
    assert saved["profile_check"]["measured_output_tok_s"] > 0
    assert saved["profile_state"] == "stale" and (table["profile_state"] == "stale").all()  # kept: not judged
    # the profile against the probe recorded at serve time: its predicted mean step over 1 ms
    expected = probe_error(shipped, {"probe_step_ms_mean": 1.0})["rel_error"]
    assert saved["serve_probe_step_err"] == {"fcfs": pytest.approx(expected)} and expected > 10
    assert row["serve_probe_step_err"] == pytest.approx(expected)
    md = (tmp_path / "agreement" / "comparison.md").read_text()
    assert shipped.name in md and "OUTSIDE" in md and str(shipped.provenance()["measured_at"]) in md
