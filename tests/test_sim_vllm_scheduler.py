"""The simulator against vLLM's own `Scheduler` class: same workload, same step-time model, same timestamps.

No engine and no model run here: vLLM's real V1 `Scheduler` (the pinned 0.32) is built from configs alone and
driven step by step with fake sampled tokens (one token per request whose prefill is done, like the model
runner), with step durations from the same step-time model as the simulator. For FCFS it uses vLLM's own
FCFS queue; for oracle SJF it installs llmsched's policy queue the way the plug-in does; for vLLM's PRIORITY
setting and PARS as released (scores mapped to priorities) it runs vLLM's own priority queue and victim choice,
with each request's priority from the policy's `priority_of`, as the serving runner passes it. The simulator must
reproduce every request's scheduled / first-token / last-token time and preemption count exactly.

Needs vllm importable and the tiny model's config (for vLLM's ModelConfig); importing vLLM takes ~15 s.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from factories import TIMED_STEP, random_workload, sim_configs
from llmsched.policies import PolicySpec, make_policy
from llmsched.sim import SimConfig, sim_request_view, simulate
from llmsched.workload.request import Request

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm")

MODEL_LEN = 512


@pytest.fixture(scope="module")
def vllm_bits():
    from llmsched.models import is_prepared

    if not is_prepared("tiny"):
        pytest.skip("the tiny model is not prepared (python -m llmsched.models prepare tiny)")
    from _vllm_helpers import ModelRunnerOutput, build_scheduler, scheduler_request, tiny_model_config

    model = tiny_model_config(MODEL_LEN)

    def build(cfg: SimConfig, policy, plugin: bool = False):
        return build_scheduler(model, cfg, policy, plugin=plugin)

    return build, scheduler_request, ModelRunnerOutput


def run_vllm(vllm_bits, requests: list[Request], cfg: SimConfig, policy, plugin: bool = False) -> dict[str, tuple]:
    build, make_request, ModelRunnerOutput = vllm_bits
    sched = build(cfg, policy, plugin)
    order = sorted(requests, key=lambda r: (r.arrival_time, r.request_id))
    times = {r.request_id: [math.nan, math.nan, math.nan, 0] for r in order}
    live: dict[str, object] = {}
    t, i = 0.0, 0
    while i < len(order) or sched.has_unfinished_requests():
        while i < len(order) and order[i].arrival_time <= t:
            vreq = make_request(order[i], policy)
            live[vreq.request_id] = vreq
            sched.add_request(vreq)
            i += 1
        if not sched.has_unfinished_requests():
            t = order[i].arrival_time
            continue
        out = sched.schedule()
        ids = list(out.num_scheduled_tokens)
        if not ids:
            # only under priority victims: the step preempted every candidate; no model runs, no time passes
            assert out.preempted_req_ids, f"vLLM scheduled nothing at t={t} and preempted nothing"
            sched.update_from_output(out, ModelRunnerOutput(req_ids=[], req_id_to_index={}, sampled_token_ids=[]))
            continue
        decode = prefill = kv = 0
        sampled = []
        for rid in ids:
            r, n = live[rid], out.num_scheduled_tokens[rid]
            before = r.num_computed_tokens - n  # schedule() already advanced it
            if n == 1 and r.num_tokens - before == 1 and r.num_tokens > r.num_prompt_tokens:
                decode += 1
            else:
                prefill += n
            kv += r.num_computed_tokens
            sampled.append([7] if r.num_computed_tokens >= r.num_tokens else [])
            if math.isnan(times[rid][0]):
                times[rid][0] = t
        end = t + TIMED_STEP.step_time(prefill, decode, kv, len(ids))
        for rid, tok in zip(ids, sampled, strict=True):
            if tok and math.isnan(times[rid][1]):
                times[rid][1] = end
        mro = ModelRunnerOutput(req_ids=ids, req_id_to_index={rid: k for k, rid in enumerate(ids)},
                                sampled_token_ids=sampled)
        sched.update_from_output(out, mro)
        for rid in ids:
            r = live[rid]
            if r.is_finished() and math.isnan(times[rid][2]):
                times[rid][2] = end
                times[rid][3] = r.num_preemptions
                assert r.num_output_tokens == max(1, next(q.output_tokens for q in order if q.request_id == rid))
        t = end
    return {rid: tuple(v) for rid, v in times.items()}


CONFIGS = sim_configs(max_model_len=MODEL_LEN)


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
@pytest.mark.parametrize("policy", ["fcfs", "oracle-sjf", "vllm-priority", "pars-released"])
@pytest.mark.parametrize("rate", [40.0, 400.0])
def test_simulator_matches_vllm_scheduler(vllm_bits, cfg_name: str, policy: str, rate: float) -> None:
    cfg = CONFIGS[cfg_name]
    # a noisy ranker score (correlated with the output length) and a few integer priority classes as hints
    reqs = random_workload(21, n=60, rate=rate, scored=True, prompt="x", source="")
    expected = run_vllm(vllm_bits, reqs, cfg, policy)
    res = simulate(reqs, cfg, TIMED_STEP, policy)
    got = {row.request_id: (row.scheduled, row.first_token, row.last_token, row.preemptions)
           for row in res.frame.itertuples()}
    mismatched = {rid: (got[rid], expected[rid]) for rid in expected if got[rid] != expected[rid]}
    assert not mismatched, f"{len(mismatched)} requests differ (sim, vLLM): {dict(list(mismatched.items())[:3])}"
    if cfg_name == "tight-kv":
        assert res.stats["num_preemptions"] > 0
    if cfg_name == "tight-kv" and policy == "pars-released":
        # the case is informative: vLLM's FCFS victim (the newest running request) would give other timings (with
        # a few priority classes admitted in priority order, the newest running request is mostly the victim anyway)
        queue = make_policy(policy, view=sim_request_view)
        queue.victim = "newest"
        assert not simulate(reqs, cfg, TIMED_STEP, queue).frame.equals(res.frame)


# --- the preemption hook: the plug-in's own class, ranking its running list --------------------------------------

# PARS with rank-aware victims (with and without swaps for better-ranked waiting requests) and LTR's scheduler as
# released (short starvation and quantum windows so that both act within 60 requests). EWSJF's rank victims are not
# here: under the plug-in its waiting-time scores follow the wall clock (tests/test_ewsjf.py covers its hook).
RANKED = {
    "pars-rank": ("pars", {"starvation_limit": 8, "victim": "rank"}),
    "pars-rank-swap": ("pars", {"starvation_limit": 8, "victim": "rank", "swap_limit": 1}),
    "ltr-released": ("ltr-released", {"starvation_steps": 30, "quantum_steps": 3}),
}
# small engines: few sequence slots, so that swaps happen, and a KV pool that forces preemptions
HOOK_CONFIGS = {
    "few-slots": SimConfig(num_blocks=400, block_size=8, max_num_seqs=3, max_num_batched_tokens=128,
                           max_model_len=MODEL_LEN),
    "tight-kv": CONFIGS["tight-kv"],
}


@pytest.mark.parametrize("cfg_name", list(HOOK_CONFIGS))
@pytest.mark.parametrize("label", list(RANKED))
def test_preemption_hook_matches_the_plugin_in_vllm(vllm_bits, cfg_name: str, label: str) -> None:
    cfg, spec = HOOK_CONFIGS[cfg_name], PolicySpec.parse(RANKED[label])
    reqs = random_workload(23, n=60, rate=400.0, scored=True, prompt="x", source="")
    expected = run_vllm(vllm_bits, reqs, cfg, spec, plugin=True)
    res = simulate(reqs, cfg, TIMED_STEP, spec)
    got = {row.request_id: (row.scheduled, row.first_token, row.last_token, row.preemptions)
           for row in res.frame.itertuples()}
    mismatched = {rid: (got[rid], expected[rid]) for rid in expected if got[rid] != expected[rid]}
    assert not mismatched, f"{len(mismatched)} requests differ (sim, vLLM): {dict(list(mismatched.items())[:3])}"
    swaps = res.stats["policy_stats"].get("swaps", 0)
    if cfg_name == "tight-kv":
        assert res.stats["num_preemptions"] > swaps  # KV victims chosen by rank
    if spec.args.get("swap_limit") and cfg_name == "few-slots":
        assert swaps > 0
        assert max(got[r][3] for r in got) <= spec.args["swap_limit"]  # no KV pressure: swaps only, bounded
    # informative: vLLM's own victim (the newest running request, admission order) gives other timings
    plain = dict(spec.args, victim="newest", swap_limit=None) if spec.name != "ltr-released" else None
    if plain is not None and cfg_name == "tight-kv":
        assert not simulate(reqs, cfg, TIMED_STEP, PolicySpec(spec.name, plain)).frame.equals(res.frame)


# --- chunked prefill off -------------------------------------------------------------------------------------------

# Prompts up to 400 tokens against a budget of MODEL_LEN = 512 (vLLM needs budget >= max_model_len without chunked
# prefill), so that two prompts rarely fit one step: admission often stops at a head longer than the budget left.
NO_CHUNK_CONFIGS = {
    "roomy": SimConfig(num_blocks=4000, block_size=16, max_num_seqs=8, max_num_batched_tokens=MODEL_LEN,
                       max_model_len=MODEL_LEN, chunked_prefill=False),
    "tight-kv": SimConfig(num_blocks=90, block_size=8, max_num_seqs=16, max_num_batched_tokens=MODEL_LEN,
                          max_model_len=MODEL_LEN, chunked_prefill=False),
    "first-chunk-watermark": SimConfig(num_blocks=300, block_size=4, max_num_seqs=6, max_num_batched_tokens=600,
                                       max_model_len=MODEL_LEN, watermark=0.05, reserve_full_prompt=False,
                                       chunked_prefill=False),
}


@pytest.fixture
def vllm_no_chunk(vllm_bits, monkeypatch):
    """vllm_bits whose Scheduler runs with vLLM's `enable_chunked_prefill=False` (and vLLM's own check that the
    budget covers max_model_len)."""
    import _vllm_helpers

    real = _vllm_helpers.SchedulerConfig

    def no_chunk(**kwargs):
        return real(**{**kwargs, "enable_chunked_prefill": False})

    monkeypatch.setattr(_vllm_helpers, "SchedulerConfig", no_chunk)
    return vllm_bits


@pytest.mark.parametrize("cfg_name", list(NO_CHUNK_CONFIGS))
@pytest.mark.parametrize("policy", ["fcfs", "oracle-sjf", "vllm-priority"])
@pytest.mark.parametrize("rate", [40.0, 400.0])
def test_simulator_matches_vllm_scheduler_without_chunked_prefill(vllm_no_chunk, cfg_name: str, policy: str,
                                                                  rate: float) -> None:
    cfg = NO_CHUNK_CONFIGS[cfg_name]
    reqs = random_workload(22, n=60, rate=rate, max_prompt=400, max_output=100, scored=True, prompt="x", source="")
    sched = vllm_no_chunk[0](cfg, policy)
    assert sched.scheduler_config.enable_chunked_prefill is False
    expected = run_vllm(vllm_no_chunk, reqs, cfg, policy)
    res = simulate(reqs, cfg, TIMED_STEP, policy, trace_steps=True)
    got = {row.request_id: (row.scheduled, row.first_token, row.last_token, row.preemptions)
           for row in res.frame.itertuples()}
    mismatched = {rid: (got[rid], expected[rid]) for rid in expected if got[rid] != expected[rid]}
    assert not mismatched, f"{len(mismatched)} requests differ (sim, vLLM): {dict(list(mismatched.items())[:3])}"
    # no prompt was split: a request never preempted samples its first token at the end of its first step
    steps = res.steps
    assert steps is not None
    end_of = dict(zip(steps["start"], steps["end"], strict=True))
    once = res.frame[res.frame["preemptions"] == 0]
    assert len(once) and (once["first_token"] == once["scheduled"].map(end_of)).all()
    # informative: with chunking on, the same workload runs differently
    chunked = simulate(reqs, dataclasses.replace(cfg, chunked_prefill=True), TIMED_STEP, policy).frame
    assert not chunked.equals(res.frame)
    if cfg_name == "tight-kv":
        assert res.stats["num_preemptions"] > 0
