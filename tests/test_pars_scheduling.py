"""PARS scheduling glue: length collection, scoring workloads, ranker policies in the simulator and in vLLM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factories import admission_order, blocker_request, queued_requests
from llmsched.policies import PolicySpec
from llmsched.predictors import OraclePredictor, PromptLengthPredictor, RandomPredictor
from llmsched.predictors.scheduling import (
    PROXY_SOURCE,
    looks_like_math_or_code,
    ranker_policies,
    reasoning_proxy,
    score_key,
    score_workload,
)
from llmsched.sim import load_profile
from llmsched.sim.sweep import rate_sweep, saturation_throughput
from llmsched.workload import Request


def _workload(n: int, seed: int) -> list[Request]:
    rng = np.random.default_rng(seed)
    out = rng.lognormal(4.5, 1.0, n).astype(int) + 1
    return [Request(f"r{i}", "word " * int(5 + i % 7), int(20 + i % 50), int(o)) for i, o in enumerate(out)]


def test_score_workload_puts_each_ranker_in_its_own_hint():
    reqs = _workload(20, 0)
    scored, reports = score_workload(reqs, {"len": PromptLengthPredictor(), "rnd": RandomPredictor(1)})
    assert [r.request_id for r in scored] == [r.request_id for r in reqs]
    assert all(score_key("len") in r.hints and score_key("rnd") in r.hints for r in scored)
    assert reports["len"].scored == reports["rnd"].scored == 20
    assert all(not r.hints for r in reqs), "inputs unchanged"


def test_ranker_policies_specs():
    specs = ranker_policies(["pars", "ltr"], starvation_limit=50)
    assert list(specs) == ["fcfs", "pars", "pars-released", "pars-rank", "ltr", "ltr-released", "oracle-sjf"]
    # every ranker schedules through the same guarded score-SJF queue, reading its own score
    assert specs["ltr"] == PolicySpec("sjf", {"score_key": "score_ltr", "starvation_limit": 50})
    assert specs["pars"] == PolicySpec("sjf", {"score_key": "score_pars", "starvation_limit": 50})
    assert specs["pars-released"] == PolicySpec("pars-released", {"score_key": "score_pars"})  # as its authors run it
    # the preemption hook: PARS with rank victims, LTR's scheduler as released
    assert specs["pars-rank"] == PolicySpec("sjf", {"score_key": "score_pars", "starvation_limit": 50,
                                                    "victim": "rank"})
    assert specs["ltr-released"] == PolicySpec("ltr-released", {"score_key": "score_ltr"})
    assert list(ranker_policies(["x"], baselines=False)) == ["x"]


def test_reasoning_proxy_keeps_math_and_code_and_stretches_lengths():
    reqs = [
        Request("m", "Solve the equation 3x + 5 = 11", 10, 100),
        Request("c", "Write a python function that sorts a list", 10, 200),
        Request("t", "Tell me about your favourite holiday", 10, 300),
    ]
    assert [looks_like_math_or_code(r.prompt) for r in reqs] == [True, True, False]
    proxy = reasoning_proxy(reqs, seed=0, median_factor=8.0, sigma=0.0, max_output_tokens=1000)
    assert [r.request_id for r in proxy] == ["m", "c"]
    assert [r.output_tokens for r in proxy] == [800, 1000]  # x8, the second capped
    assert {r.source for r in proxy} == {PROXY_SOURCE}
    a = reasoning_proxy(reqs, seed=3)
    assert [r.output_tokens for r in a] == [r.output_tokens for r in reasoning_proxy(reqs, seed=3)]
    with pytest.raises(ValueError, match="proxy parameters"):
        reasoning_proxy(reqs, seed=0, sigma=-1)


def test_rate_sweep_light_load_to_overload(tmp_path):
    prof = load_profile("h100-sxm_llama-3-8b")
    config = prof.sim_config(max_num_seqs=32, num_blocks=2000)
    reqs, _ = score_workload(_workload(300, 1), {"oracle": OraclePredictor(
        [(r.prompt, 0) for r in _workload(300, 1)])})  # constant scores: ties, i.e. arrival order
    cap = saturation_throughput(reqs, config, prof.step_time)
    assert cap > 0
    specs = ranker_policies(["oracle"], starvation_limit=None)
    table = rate_sweep(reqs, [0.3 * cap, 2.0 * cap], specs, config, prof.step_time, seed=0, capacity=cap,
                       out_dir=tmp_path, progress=False)
    assert len(table) == 2 * len(specs)
    assert set(table["label"]) == set(specs) and (table["n_ok"] == 300).all()
    over = table[table["rate"] == 2.0 * cap].set_index("label")
    light = table[table["rate"] == 0.3 * cap].set_index("label")
    # overload: SJF by true length beats FCFS on normalized latency; light load: ordering matters little
    assert over.loc["oracle-sjf", "normalized_latency_mean"] < 0.7 * over.loc["fcfs", "normalized_latency_mean"]
    assert light.loc["oracle-sjf", "e2e_mean"] == pytest.approx(light.loc["fcfs", "e2e_mean"], rel=0.25)
    # equal scores for every request: the score policy is FCFS
    assert over.loc["oracle", "e2e_mean"] == pytest.approx(over.loc["fcfs", "e2e_mean"], rel=1e-9)
    assert table["load"].round(6).tolist()[0] == 0.3
    for name in ("summary.parquet", "requests.parquet", "sweep.json"):
        assert (tmp_path / name).exists()
    assert len(pd.read_parquet(tmp_path / "requests.parquet")) == 300 * len(table)
    with pytest.raises(ValueError, match="rates"):
        rate_sweep(reqs, [], specs, config, prof.step_time, seed=0)
    with pytest.raises(ValueError, match="rates"):
        rate_sweep(reqs, [0.0], specs, config, prof.step_time, seed=0)


@pytest.mark.vllm
def test_ranker_scores_reach_the_real_engine_and_order_admission(tiny_model, tmp_path):
    from llmsched.serving.engine import EngineConfig
    from llmsched.serving.experiment import compare_policies, run_dir
    from llmsched.serving.runner import RunConfig

    blocker = blocker_request()
    queued = queued_requests()
    # the "ranker" scores by true length; the blocker gets no score (it is admitted first anyway)
    oracle = OraclePredictor([(r.prompt, r.output_tokens) for r in queued] + [(blocker.prompt, 0.0)])
    scored, _ = score_workload([blocker, *queued], {"rk": oracle})
    specs = ranker_policies(["rk"], starvation_limit=None, baselines=False)
    specs["rk-guard1"] = ("pars", {"score_key": score_key("rk"), "starvation_limit": 1})
    compare_policies(scored, EngineConfig(model=tiny_model, max_num_seqs=1), specs, tmp_path,
                     run=RunConfig(progress=False))

    def order(label: str) -> list[str]:
        return admission_order(pd.read_parquet(run_dir(tmp_path, label, 0) / "requests.parquet"))

    assert order("rk") == [r.request_id for r in sorted(queued, key=lambda r: r.output_tokens)]
    # with a guard of one admission, the oldest waiting request goes next after every admission
    assert order("rk-guard1") != order("rk")


@pytest.mark.vllm
def test_collect_lengths_with_samples_and_cache(tiny_model, tmp_path, monkeypatch):
    from llmsched.serving.engine import EngineConfig
    from llmsched.serving.lengths import LengthSampling, collect_lengths, prompt_lengths

    reqs = [Request(f"p{i}", f"prompt number {i} tell me more", 8, 0) for i in range(4)]
    reqs.append(Request("blank", "   ", 0, 0))
    sampling = LengthSampling(max_tokens=12, n_samples=2, template="{prompt}", stop=())
    table = collect_lengths(reqs, EngineConfig(model=tiny_model, max_num_seqs=4), sampling, root=tmp_path,
                            progress=False)
    assert len(table) == 10 and sorted(table["sample"].unique()) == [0, 1]
    blank = table[table.request_id == "blank"]
    assert (blank.status == "rejected").all(), "a blank prompt is recorded, not dropped"
    ok = table[table.status == "ok"]
    assert ((ok.output_tokens >= 1) & (ok.output_tokens <= 12)).all()
    assert (ok.truncated == (ok.output_tokens == 12)).all()
    summary = prompt_lengths(table)
    assert sorted(summary.request_id) == [f"p{i}" for i in range(4)] and (summary.n_samples == 2).all()

    def no_engine(*a, **k):
        raise AssertionError("regenerated although the lengths are cached")

    monkeypatch.setattr("llmsched.serving.lengths.EngineRunner", no_engine)
    again = collect_lengths(reqs, EngineConfig(model=tiny_model, max_num_seqs=4), sampling, root=tmp_path)
    pd.testing.assert_frame_equal(again, table)
    with pytest.raises(ValueError, match="template"):
        LengthSampling(template="no placeholder")


def test_reasoning_proxy_respects_the_context_length():
    reqs = [Request("a", "solve 2 + 2", 100, 500), Request("b", "solve 3 * 3", 990, 500)]
    proxy = reasoning_proxy(reqs, seed=0, sigma=0.0, max_model_len=1000)
    assert [(r.request_id, r.output_tokens) for r in proxy] == [("a", 900), ("b", 10)]
