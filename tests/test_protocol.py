"""EWSJF under its authors' benchmark protocol (llmsched.experiments.protocol) and the simulator without chunked
prefill: the workload, the throughput definition, intervals over seeds, the tables a tiny run writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from factories import UNIT_STEP, make_request
from llmsched.experiments.protocol import (
    DELAY_LABEL,
    GAIN_METRICS,
    TEST_PARAMS,
    Job,
    ProtocolExperiments,
    paired_gains,
    protocol_throughput,
    protocol_workload,
    run_job,
    with_settings,
)
from llmsched.sim import SimConfig, simulate


def test_constant_arrivals_at_the_given_rate() -> None:
    reqs = protocol_workload("100-2000", 50, 20.0, seed=3)
    t = np.array([r.arrival_time for r in reqs])
    assert t[0] == 0.0
    assert np.allclose(np.diff(t), 1 / 20.0)
    # the arrival times do not depend on the prompt draw
    assert [r.arrival_time for r in protocol_workload("100-2000", 50, 20.0, seed=4)] == t.tolist()


@pytest.mark.parametrize("preset,lo,hi", [("100-2000", 100, 2000), ("100-16000", 100, 16000)])
def test_prompt_lengths_in_range_and_outputs(preset: str, lo: int, hi: int) -> None:
    fixed = protocol_workload(preset, 400, 10.0, seed=1)
    p = np.array([r.prompt_tokens for r in fixed])
    assert p.min() >= lo and p.max() <= hi
    assert p.std() > (hi - lo) / 5  # spread over the range (uniform: sd = range / sqrt(12))
    assert {r.output_tokens for r in fixed} == {100}
    drawn = protocol_workload(preset, 400, 10.0, seed=1, outputs="uniform", max_tokens=100)
    o = np.array([r.output_tokens for r in drawn])
    assert o.min() >= 1 and o.max() <= 100 and len(set(o)) > 50
    assert [r.prompt_tokens for r in drawn] == p.tolist()  # outputs are drawn after the prompts
    assert [r.prompt_tokens for r in protocol_workload(preset, 400, 10.0, seed=2)] != p.tolist()
    with pytest.raises(ValueError, match="outputs"):
        protocol_workload(preset, 4, 10.0, seed=1, outputs="poisson")


def test_throughput_is_output_tokens_over_first_send_to_last_completion() -> None:
    frame = pd.DataFrame({"arrival": [1.0, 2.0, 3.0], "first_token": [1.5, 4.0, 6.0],
                          "last_token": [5.0, 11.0, 9.0], "output_tokens": [100, 50, 30],
                          "prompt_tokens": [10, 20, 30]})
    assert protocol_throughput(frame) == pytest.approx(180 / (11.0 - 1.0))


def test_paired_gains_compare_each_seed_with_fcfs() -> None:
    runs = pd.DataFrame({
        "preset": "p", "label": ["fcfs", "ewsjf", "fcfs", "ewsjf"], "seed": [0, 0, 1, 1],
        "throughput": [100.0, 130.0, 200.0, 220.0], "ttft_mean": [4.0, 2.0, 6.0, 3.0],
        "ttft_short_mean": [4.0, 1.0, 6.0, 1.5], "e2e_mean": [5.0, 5.0, 8.0, 8.0]})
    g = paired_gains(runs, ["preset", "label"]).set_index("metric")
    assert set(g.index) == set(GAIN_METRICS) and set(g["label"]) == {"ewsjf"}
    assert g.loc["throughput_gain_pct", "mean"] == pytest.approx(20.0)  # +30 % and +10 %, not +16.7 % pooled
    assert g.loc["ttft_speedup", ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx([2.0, 2.0, 2.0])
    assert g.loc["ttft_short_speedup", "mean"] == pytest.approx(4.0)


def test_chunked_prefill_off_admits_only_whole_prompts() -> None:
    # budget 100: "a" (60 tokens) runs first; "b" (50 tokens) is longer than the 40 tokens left
    reqs = [make_request("a", 60, 3, 0.0), make_request("b", 50, 1, 0.0)]
    on = SimConfig(num_blocks=100, block_size=4, max_num_seqs=4, max_num_batched_tokens=100, max_model_len=100)
    off = SimConfig(num_blocks=100, block_size=4, max_num_seqs=4, max_num_batched_tokens=100, max_model_len=100,
                    chunked_prefill=False)
    f_on = simulate(reqs, on, UNIT_STEP).frame.set_index("request_id")
    f_off = simulate(reqs, off, UNIT_STEP).frame.set_index("request_id")
    # chunked: b gets a 40-token chunk in step 0 and its last 10 in step 1, beside a's first decode
    assert (f_on.loc["b", "scheduled"], f_on.loc["b", "first_token"]) == (0.0, 2.0)
    # not chunked: b waits for a step whose budget left (100 - 1 decode) holds its whole prompt
    assert (f_off.loc["b", "scheduled"], f_off.loc["b", "first_token"]) == (1.0, 2.0)
    assert f_off.loc["a", "last_token"] == f_on.loc["a", "last_token"] == 3.0
    # a head that does not fit stops admission: the short request behind it waits too (no skipping)
    hol = [make_request("a", 60, 3, 0.0), make_request("b", 50, 1, 0.0), make_request("c", 10, 1, 0.0)]
    f_hol = simulate(hol, off, UNIT_STEP).frame.set_index("request_id")
    assert f_hol.loc["c", "scheduled"] == 1.0
    # a prompt longer than the whole budget: chunked over steps when on; vLLM's configuration check when off
    long_cfg = SimConfig(num_blocks=100, block_size=4, max_num_seqs=4, max_num_batched_tokens=64, max_model_len=128)
    f_long = simulate([make_request("x", 90, 1, 0.0)], long_cfg, UNIT_STEP).frame
    assert f_long["first_token"].iloc[0] == 2.0  # 64 + 26 tokens: two steps
    with pytest.raises(ValueError, match="max_num_batched_tokens .* must be >= max_model_len"):
        SimConfig(num_blocks=100, max_num_batched_tokens=64, max_model_len=128, chunked_prefill=False)
    with pytest.raises(ValueError, match="chunked_prefill must be a bool"):
        SimConfig(num_blocks=100, chunked_prefill="no")  # type: ignore[arg-type]


def _job(num_blocks: int, label: str = "fcfs", reserve: bool = True) -> Job:
    engine = SimConfig(num_blocks=num_blocks, block_size=16, max_num_seqs=128, max_num_batched_tokens=2048,
                       max_model_len=2100, reserve_full_prompt=reserve).to_dict()
    return Job(stage="t", steptime="a100-80gb_llama-2-13b", preset="100-2000", rate=20.0, sweep="kv_blocks",
               engine=engine, label=label, policy=(label, {}), seed=0, n=60, max_tokens=100, outputs="fixed",
               distribution="uniform")


def test_fcfs_preempts_and_recomputes_when_kv_is_short() -> None:
    ample, short = run_job(_job(20000)), run_job(_job(150))
    assert ample["preemptions"] == 0 and ample["recomputed_tokens"] == 0
    assert short["preemptions"] > 0 and short["recomputed_tokens"] > 0 and 0 < short["recomputed_share"] < 1
    assert short["throughput"] < ample["throughput"]
    # first-chunk admission (vLLM 0.11) preempts more than full-prompt admission on the same cache
    assert run_job(_job(150, reserve=False))["preemptions"] > short["preemptions"]


def test_scoring_wait_slows_ewsjf() -> None:
    params = with_settings(TEST_PARAMS, n=40, seeds=2, scoring_delay_s=0.1)
    runs = ProtocolExperiments(params).benchmark_plan().jobs
    assert {j.label for j in runs} == {"fcfs", "prompt-sjf", "ewsjf", DELAY_LABEL}
    plain = next(j for j in runs if j.label == "ewsjf" and j.seed == 0)
    wait = next(j for j in runs if j.label == DELAY_LABEL and j.seed == 0)
    assert wait.delay_s == 0.1 and plain.delay_s == 0.0 and wait.policy == plain.policy
    assert run_job(wait)["throughput"] < run_job(plain)["throughput"]


def test_tiny_protocol_writes_tables_with_intervals(tmp_path) -> None:
    exp = ProtocolExperiments(with_settings(TEST_PARAMS, n=50, sweep_n=50), out_root=tmp_path)
    bench = exp.benchmark()
    sweeps = exp.sweeps()
    for path in exp.outputs():
        assert path.exists(), path
    for tables in (bench, sweeps):
        for name in ("summary", "gains"):
            t = tables[name]
            assert {"mean", "ci_low", "ci_high", "n_seeds"} <= set(t.columns)
            ok = t.dropna(subset=["ci_low"])
            assert len(ok) and (ok["ci_low"] <= ok["mean"] + 1e-9).all() and (ok["mean"] <= ok["ci_high"] + 1e-9).all()
            assert set(t["n_seeds"]) == {3}
        assert "fcfs" not in set(tables["gains"]["label"])
    runs = bench["runs"]
    assert len(runs) == 3 * 3 and set(runs["seed"]) == {0, 1, 2}
    assert (runs["reserve_full_prompt"] == False).all()  # noqa: E712 - the protocol's first-chunk admission
    # the sweeps: both factors, chunked prefill on and off; budgets below max_model_len only with chunking
    s = sweeps["runs"]
    assert set(s["sweep"]) == {"kv_blocks", "budget"} and set(s["chunked_prefill"]) == {True, False}
    assert set(s.loc[(s["sweep"] == "budget") & ~s["chunked_prefill"], "max_num_batched_tokens"]) == {4096}
    assert set(s.loc[s["sweep"] == "kv_blocks", "num_blocks"]) == {3748, 150}
    record = json.loads((tmp_path / "sweeps" / "sweeps.json").read_text())
    assert record["seeds"] == [0, 1, 2] and record["settings"]["protocol_n"] == 50
    assert record["skipped"] and record["skipped"][0]["max_num_batched_tokens"] == 1024
    assert {c["engine"]["chunked_prefill"] for c in record["conditions"]} == {True, False}
    # the figures draw the paper's +30 % as a reference line
    from llmsched.analysis import figures

    figs = (figures.protocol_benchmark(bench["gains"]), figures.protocol_sweeps(sweeps["gains"], sweeps["summary"]))
    for fig in figs:
        refs = [line for ax in fig.axes for line in ax.get_lines() if list(line.get_ydata()) == [30.0, 30.0]]
        assert refs and all(line.get_label() == figures.PAPER_THROUGHPUT_LABEL for line in refs)
        figures.plt.close(fig)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="ewsjf_protocol_outputs"):
        ProtocolExperiments(with_settings(TEST_PARAMS, outputs="sometimes"))
    with pytest.raises(ValueError, match="ewsjf_protocol_policies"):
        ProtocolExperiments(with_settings(TEST_PARAMS, policies=["ewsjf"]))
    with pytest.raises(ValueError, match="unknown parameter"):
        ProtocolExperiments(with_settings(TEST_PARAMS, nn=3))
    with pytest.raises(ValueError, match="ewsjf_protocol_engine_load"):
        ProtocolExperiments(with_settings(TEST_PARAMS, engine_load=0))
    with pytest.raises(ValueError, match="ewsjf_protocol_engine_preset"):
        ProtocolExperiments(with_settings(TEST_PARAMS, engine_preset="1-2"))
    with pytest.raises(ValueError, match="engine runs are off"):
        ProtocolExperiments(with_settings(TEST_PARAMS, engine_n=0)).engine_runs()


@pytest.mark.vllm
def test_the_protocol_on_the_real_engine(tmp_path) -> None:
    """The scaled-down protocol on vLLM (tiny model): every request has a prompt in the preset's range and exactly
    max_tokens output tokens, arrivals are evenly spaced, each policy runs on the same requests, and the summary
    carries the authors' throughput with the paired ratios to FCFS."""
    params = with_settings({**TEST_PARAMS, "model": "tiny", "serving_steptime": "cpu-gemma-3-270m",
                            "serving_max_num_seqs": 4}, engine_n=6, engine_load=2.0,
                           engine_repeats=1,
                           max_tokens=12, engine_preset="100-2000")
    exp = ProtocolExperiments(params, out_root=tmp_path)
    table = exp.engine_runs()
    assert set(table.label) == {"fcfs", "prompt-sjf", "ewsjf"} and (table.token_throughput > 0).all()
    runs = pd.read_parquet(tmp_path / "engine" / "runs.parquet")
    assert sorted(runs.label) == ["ewsjf", "fcfs", "prompt-sjf"]
    wl = pd.read_parquet(tmp_path / "engine" / "workload.parquet")
    assert len(wl) == 6 and wl.prompt_tokens.between(100, 2000).all() and (wl.output_tokens == 12).all()
    point = json.loads((tmp_path / "engine" / "operating_point.json").read_text())
    assert point["load"] == 2.0 and point["rate"] == pytest.approx(2.0 * point["capacity"])
    np.testing.assert_allclose(np.diff(np.sort(wl.arrival_time)), 1 / point["rate"])
    ratios = pd.read_parquet(tmp_path / "engine" / "ratios.parquet")
    assert {"prompt-sjf", "ewsjf"} <= set(ratios.label)
    record = json.loads((tmp_path / "engine" / "engine.json").read_text())
    assert record["arrivals"] == "constant" and record["n"] == 6 and record["max_tokens"] == 12
