"""Real-engine operating points relative to the engine's capacity, and the one step-time profile behind them.

The unit tests use a shipped measured profile and the simulator only. The engine tests (tiny model) play a machine
whose speed differs from its profile: a profile of the tiny engine made deliberately 4x too slow. The default
recalibrates, its capacity puts the run where it queues, and its replay agrees with the run; with recalibration
off the profile is kept, marked stale, and the verdicts resting on it are not judged.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from factories import random_workload
from llmsched.analysis.metrics import operating_point, summarize
from llmsched.analysis.verdicts import REPRODUCED, STALE_PROFILE, engine_verdict
from llmsched.experiments.capacity import OperatingPoint, capacity, choose_load, profile_state
from llmsched.serving.engine import EngineConfig
from llmsched.steptime.profiles import load_profile

SHIPPED = "cpu-gemma-3-270m"
TOL = 0.3  # the probe's tolerance here: the tiny engine's 2 ms steps vary by more than the default 10 %


def _requests(seed: int, n: int = 40) -> list:
    return [r for r in random_workload(seed, n=n, max_prompt=300, max_output=200)]


def test_the_rate_is_load_times_the_capacity_and_follows_the_engine_speed() -> None:
    """A slower engine (every step cost x3) has a third of the capacity: the same load asks a third of the rate."""
    import dataclasses

    prof = load_profile(SHIPPED)
    eng = EngineConfig(model="tiny", max_num_seqs=8)
    reqs = _requests(0)
    point = OperatingPoint.at(reqs, prof, eng, 2.0)
    assert point.rate == pytest.approx(2.0 * point.capacity) and point.capacity > 0
    assert point.profile_state == "unchecked" and point.judged  # never probed: nothing says it is stale
    st = prof.step_time
    slow = dataclasses.replace(prof, step_time=dataclasses.replace(st, **{k: 3 * getattr(st, k) for k in
                                                                          ("c0", "c_prefill", "c_decode", "c_kv")}))
    assert capacity(reqs, slow, eng) == pytest.approx(point.capacity / 3, rel=0.02)
    with pytest.raises(ValueError, match="load must be > 0"):
        OperatingPoint.at(reqs, prof, eng, 0.0)


def test_the_load_is_chosen_on_other_draws_as_the_smallest_reaching_the_target() -> None:
    prof = load_profile(SHIPPED)
    eng = EngineConfig(model="tiny", max_num_seqs=8)
    draws = {1000 + k: _requests(1000 + k) for k in range(2)}
    easy, rows, rule = choose_load(draws, prof, eng, [3.0, 0.5, 1.5], target_gain=1.0)
    assert easy == 0.5 and "smallest" in rule  # any load reaches a gain of 1
    assert {r["seed"] for r in rows} == set(draws) and sorted({r["load"] for r in rows}) == [0.5, 1.5, 3.0]
    gains = pd.DataFrame(rows).groupby("load")["oracle_gain"].mean()
    assert gains[3.0] > gains[0.5]  # more room to reorder under more load
    hard, _, _ = choose_load(draws, prof, eng, [0.5, 1.5], target_gain=1e6)
    assert hard == 1.5  # none reaches it: the largest
    with pytest.raises(ValueError, match="positive"):
        choose_load(draws, prof, eng, [0.0], 1.5)


def test_the_achieved_operating_point_is_read_from_the_run() -> None:
    """Arrivals faster than the engine serves: requests wait and the completion rate falls behind."""
    from llmsched.sim import simulate

    prof = load_profile(SHIPPED)
    eng = EngineConfig(model="tiny", max_num_seqs=4)
    config = prof.sim_config(max_num_seqs=4)
    reqs = _requests(3)
    from llmsched.workload import assign_arrivals, make_arrivals

    cap = capacity(reqs, prof, eng)
    busy = operating_point(simulate(assign_arrivals(reqs, make_arrivals("poisson", len(reqs), 3 * cap, seed=0)),
                                    config, prof.step_time, "fcfs").frame)
    idle = operating_point(simulate(assign_arrivals(reqs, make_arrivals("poisson", len(reqs), 0.1 * cap, seed=0)),
                                    config, prof.step_time, "fcfs").frame)
    assert busy["waited_share"] > 0.5 and busy["completion_rate"] < busy["offered_rate"]
    assert idle["waited_share"] < 0.2 and idle["wait_mean"] < busy["wait_mean"]
    assert busy["offered_rate"] == pytest.approx(3 * cap, rel=0.5)


def test_engine_verdicts_need_a_fresh_profile_and_a_queue() -> None:
    assert engine_verdict(REPRODUCED, "recalibrated", 0.8)[0] == REPRODUCED  # strong: judged as its numbers say
    assert engine_verdict(REPRODUCED, "checked", 0.5)[0] == REPRODUCED
    assert engine_verdict(REPRODUCED, "stale", 0.9)[0] == STALE_PROFILE  # weak: the load rests on a stale profile
    assert engine_verdict(REPRODUCED, "recalibrated", 0.1)[0].startswith("not judged: requests did not queue")
    assert engine_verdict(REPRODUCED, None, math.nan)[0].startswith("not judged")


def test_the_engine_dtype_and_threads_follow_the_machine(monkeypatch) -> None:
    import dataclasses

    from llmsched.serving import engine as E

    assert E.machine_dtype(frozenset({"avx2", "avx512f", "avx512_bf16"}), cuda=False)[0] == "bfloat16"
    assert E.machine_dtype(frozenset({"avx2", "amx_bf16"}), cuda=False)[0] == "bfloat16"
    assert E.machine_dtype(frozenset({"avx2", "fma"}), cuda=False)[0] == "float32"  # bf16 emulated: 2x slower
    assert E.machine_dtype(frozenset({"avx512_bf16"}), cuda=True)[0] == "auto"  # a GPU: the model's own
    monkeypatch.setattr(E, "machine_dtype", lambda: ("float32", "test machine"))
    cfg = EngineConfig(model="tiny")
    assert cfg.dtype == "float32" and cfg.dtype_reason == "float32: test machine"  # recorded with the config
    assert cfg.to_dict()["dtype_reason"] == "float32: test machine"
    assert dataclasses.replace(cfg, max_num_seqs=2).dtype_reason == "float32: test machine"  # kept when unchanged
    assert dataclasses.replace(cfg, dtype="bfloat16").dtype_reason == "bfloat16: set by the caller"
    assert EngineConfig(model="tiny", dtype="float32").dtype_reason == "float32: set by the caller"
    cpus = E.machine_threads()
    assert cpus and all(part.replace("-", "").isdigit() for part in cpus.split(","))
    assert EngineConfig(model="tiny").cpu_threads == cpus
    assert EngineConfig(model="tiny", cpu_threads="auto").cpu_threads == "auto"
    with pytest.raises(ValueError, match="cpu_threads"):
        EngineConfig(model="tiny", cpu_threads="")


# ------------------------------------------------------------------------------------------------ real engine
def _scaled(prof, factor: float, path) -> str:
    """`prof`'s file with every step-time coefficient x factor: a profile of this engine from a slower machine."""
    data = json.loads(prof.path.read_text())
    data["coefficients"] = {k: factor * v for k, v in data["coefficients"].items()}
    data["name"] = path.stem
    path.write_text(json.dumps(data, indent=2) + "\n")
    return str(path)


@pytest.mark.vllm
def test_a_machine_faster_than_its_profile_recalibrates_and_still_queues(tiny_model, tmp_path) -> None:
    from llmsched.experiments.capacity import engine_profile
    from llmsched.serving.experiment import compare_policies
    from llmsched.serving.runner import RunConfig
    from llmsched.sim import simulate
    from llmsched.workload import assign_arrivals, make_arrivals

    eng = EngineConfig(model=tiny_model, max_num_seqs=4, max_model_len=512)
    # the tiny engine's own profile (Gemma's misses it: recalibrated), then that profile made 4x slow
    own = engine_profile(SHIPPED, eng, root=tmp_path / "own", tolerance=TOL)
    assert profile_state(own) == "recalibrated" and own.check.recalibrated_from["same_model"] is False
    slow = _scaled(own, 4.0, tmp_path / "cpu-tiny-slow.json")

    fresh = engine_profile(slow, eng, root=tmp_path / "fresh", tolerance=TOL)  # the default: recalibrate
    assert profile_state(fresh) == "recalibrated"
    assert fresh.check.recalibrated_from["rel_error"] > 1.0  # the stale one predicted steps > 2x too long
    assert abs(fresh.check.rel_error) < 0.5  # the recalibrated one: near the probe
    assert json.loads((tmp_path / "fresh" / "check.json").read_text())["state"] == "recalibrated"

    reqs = [r for r in random_workload(7, n=24, max_prompt=200, max_output=60, prompt="hello there " * 8)]
    point = OperatingPoint.at(reqs, fresh, eng, 3.0)
    stale_cap = capacity(reqs, load_profile(slow), eng)
    assert point.capacity > 2 * stale_cap  # the stale profile would have asked for a rate the engine idles at
    served = assign_arrivals(reqs, make_arrivals("poisson", len(reqs), point.rate, seed=0))
    compare_policies(served, eng, ["fcfs"], tmp_path / "runs", run=RunConfig(mode="replay"), repeats=1)
    runs = pd.read_parquet(tmp_path / "runs" / "runs.parquet")
    assert runs.waited_share.iloc[0] >= 0.5  # it queues at its stated load
    assert runs.completion_rate.iloc[0] < runs.offered_rate.iloc[0]
    # the recalibrated profile replays the run: same requests and arrivals in the simulator
    real = pd.read_parquet(tmp_path / "runs" / "fcfs" / "run-0" / "requests.parquet")
    sim = simulate(served, fresh.sim_config(max_num_seqs=4, max_model_len=512), fresh.step_time, "fcfs").frame
    err = summarize(sim)["e2e_mean"] / summarize(real)["e2e_mean"] - 1
    stale_sim = simulate(served, load_profile(slow).sim_config(max_num_seqs=4, max_model_len=512),
                         load_profile(slow).step_time, "fcfs").frame
    stale_err = summarize(stale_sim)["e2e_mean"] / summarize(real)["e2e_mean"] - 1
    assert abs(err) < 0.5 and abs(err) < abs(stale_err) / 2

    kept = engine_profile(slow, eng, on_mismatch="warn", root=tmp_path / "kept", tolerance=TOL)  # no recalibration
    assert profile_state(kept) == "stale" and not OperatingPoint.at(reqs, kept, eng, 3.0).judged
    assert engine_verdict(REPRODUCED, profile_state(kept), 1.0)[0] == STALE_PROFILE
    assert np.isfinite(kept.check.rel_error)
