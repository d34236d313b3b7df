"""Requests that leave vLLM while waiting, running or preempted, under every registered llmsched policy.

vLLM 0.32's `Scheduler.finish_requests` (aborts, client disconnects, grammar compile errors, stopped preempted
requests) passes the *same* list of requests to `remove_requests` of both of its waiting queues, `waiting` and
`kv_holding_waiting`, which the plug-in replaces with llmsched policy queues: a queue must ignore the requests it
does not hold, or the engine dies with the first abort of a waiting request. Checked at two levels:

- scheduler: vLLM's own `Scheduler` built from configs without a model (tests/_vllm_helpers.py) as the plug-in's
  class `PolicyScheduler`, stepped with fake model outputs; `finish_requests(..., FINISHED_ABORTED)` on requests
  waiting, running, preempted, all three in one call, and a waiting request whose grammar failed to compile.
- engine: the in-process `LLMEngine` of the serving runner (tiny model) with its KV cache capped at 10 blocks of
  32 tokens, so two running requests preempt each other; `LLMEngine.abort_request` on a waiting, a running and a
  preempted request, and a structured-output request whose grammar fails to compile while it waits: with the
  outlines backend, vLLM's submission check parses the regex `a\\Z` with Python's `re` (valid), and the engine
  core's compile with outlines-core's regex engine fails (no `\\Z` there).

After each: every other request generates exactly its max_tokens, the waiting queues and the running list are
empty, the KV cache is free, and the engine serves one more request.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest

from factories import one_per_implementation, policy_hints
from llmsched.policies import POLICIES, RequestView
from llmsched.sim import SimConfig
from llmsched.workload.request import Request

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm")

# every registered policy, and the preemption hook's options of PARS and EWSJF (rank victims, swaps)
POLICY_NAMES = [*sorted(POLICIES), ("pars", {"victim": "rank", "swap_limit": 1}), ("ewsjf", {"victim": "rank"})]


# --- scheduler level: vLLM's Scheduler without a model ---------------------------------------------------------

SCHED_MODEL_LEN = 256
# 12 usable blocks of 8 tokens: two 30-token prompts (4 blocks each) collide after about 20 output tokens each
SCHED_CFG = SimConfig(num_blocks=13, block_size=8, max_num_seqs=2, max_num_batched_tokens=64,
                      max_model_len=SCHED_MODEL_LEN)
LONG_PROMPT, LONG_OUT, SHORT_PROMPT, SHORT_OUT = 30, 40, 6, 4


@pytest.fixture(scope="module")
def sched_model():
    from llmsched.models import is_prepared

    if not is_prepared("tiny"):
        pytest.skip("the tiny model is not prepared (python -m llmsched.models prepare tiny)")
    from _vllm_helpers import tiny_model_config

    return tiny_model_config(SCHED_MODEL_LEN)


def failed_grammar() -> Future:
    fut: Future = Future()
    fut.set_exception(ValueError("the grammar failed to compile"))
    return fut


@pytest.mark.parametrize("case", ["waiting", "running", "preempted", "all-three", "grammar-error"])
@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_scheduler_finishes_requests_in_every_state(sched_model, policy: str, case: str) -> None:
    from vllm.sampling_params import StructuredOutputsParams
    from vllm.v1.request import RequestStatus as S

    from _vllm_helpers import build_scheduler, fake_step, scheduler_request

    sched = build_scheduler(sched_model, SCHED_CFG, policy, plugin=True)

    def make(rid: str, prompt: int, out: int, **params: Any):
        r = Request(rid, "x", prompt, out, arrival_time=time.time(), hints=policy_hints(out))
        return scheduler_request(r, policy, **params)

    long = [make(f"p{i}", LONG_PROMPT, LONG_OUT) for i in range(2)]
    for r in long:
        sched.add_request(r)
    fake_step(sched)
    assert [r.status for r in long] == [S.RUNNING, S.RUNNING]
    short = [make(f"w{i}", SHORT_PROMPT, SHORT_OUT) for i in range(3)]
    bad = None
    if case == "grammar-error":
        # no structured-output backend here: the compile result is what the engine core's manager stores when
        # compiling fails (a Future holding the exception); the scheduler finds it when it peeks the request
        bad = make("bad-grammar", SHORT_PROMPT, SHORT_OUT,
                   structured_outputs=StructuredOutputsParams(json={"type": "object"}))
        bad.structured_output_request.grammar = failed_grammar()
    for r in [*short, *([bad] if bad else [])]:
        sched.add_request(r)
    fake_step(sched)
    # max_num_seqs=2: the short ones wait in the policy's queue behind the two running long ones; a policy that
    # swaps (its preemption hook's swap_limit) has swapped a long one out for a short one instead
    swaps = getattr(sched.waiting, "swap_limit", None) is not None
    everyone = [*long, *short]
    if swaps:
        assert sum(r.status == S.PREEMPTED for r in long) == 1 and sched.waiting.stats.get("swaps") == 1
        assert sum(r.status == S.RUNNING for r in short) == 1
    else:
        assert all(r.status == S.WAITING and r in sched.waiting for r in short)
    if bad is not None:
        assert bad.status == S.WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR and bad in sched.waiting

    targets: list = []
    if case == "waiting":
        targets = [next(r for r in sched.waiting if r.status == S.WAITING)]  # the one the policy admits next
    elif case == "running":
        targets = [sched.running[-1]]
    elif case in ("preempted", "all-three"):
        for _ in range(4 * LONG_OUT):
            if any(r.status == S.PREEMPTED for r in everyone):
                break
            fake_step(sched)
        preempted = [r for r in everyone if r.status == S.PREEMPTED]
        assert len(preempted) == 1, f"no preemption under KV pressure: {[r.status for r in everyone]}"
        victim = preempted[0]
        assert victim.num_preemptions == 1 and victim in sched.waiting and victim not in sched.running
        targets = [victim]
        if case == "all-three":
            running = next(r for r in sched.running if r is not victim)
            waiting = next(r for r in sched.waiting if r.status == S.WAITING)
            assert running.status == S.RUNNING and running in sched.running
            targets += [running, waiting]
    if targets:
        target_ids = {r.request_id for r in targets}
        done = sched.finish_requests(target_ids, S.FINISHED_ABORTED)
        assert {r.request_id for r in done} == target_ids
        for r in targets:
            assert r.status == S.FINISHED_ABORTED
            assert r not in sched.waiting and r not in sched.kv_holding_waiting and r not in sched.running
            assert r.request_id not in sched.requests

    for _ in range(20 * LONG_OUT):
        if not sched.has_unfinished_requests():
            break
        fake_step(sched)
    assert not sched.has_unfinished_requests()
    for r in [*long, *short]:
        if r in targets:
            continue
        assert r.status == S.FINISHED_LENGTH_CAPPED, (r.request_id, r.status)
        assert r.num_output_tokens == r.max_tokens, r.request_id
    if bad is not None:
        assert bad.status == S.FINISHED_ERROR and bad.num_output_tokens == 0
    assert len(sched.waiting) == 0 and len(sched.kv_holding_waiting) == 0
    assert not sched.running and not sched.requests
    assert sched.get_kv_cache_usage() == 0.0
    if case in ("preempted", "all-three"):
        assert any(r.num_preemptions for r in long)


# --- engine level: the in-process LLMEngine, tiny model -------------------------------------------------------

ENGINE_MODEL_LEN = 256
# 10 blocks of 32 tokens (9 usable): two 110-token prompts (4 blocks each) collide after ~19 output tokens each.
# The outlines backend: see BAD_REGEX. (lm-format-enforcer, which compiles JSON schemas only in the engine core,
# does not load on this build: its vLLM integration imports a tokenizer class vLLM 0.32 no longer has.)
ENGINE_EXTRA = {"block_size": 32, "num_gpu_blocks_override": 10,
                "structured_outputs_config": {"backend": "outlines"}}
# Valid for Python's `re` (vLLM's submission check for the outlines backend), not for outlines-core's regex
# engine, which compiles the grammar in the engine core: "Failed to build DFA".
BAD_REGEX = r"a\Z"
P_PROMPT, P_OUT, W_PROMPT, W_OUT = 110, 60, 8, 6
MAX_STEPS = 1000


@dataclass
class Harness:
    """An engine, its scheduler and the requests handed to it, by external request id."""

    runner: Any
    policy: str
    internal: dict[str, str] = field(default_factory=dict)  # external id -> the scheduler's request id
    max_tokens: dict[str, int] = field(default_factory=dict)
    finished: dict[str, Any] = field(default_factory=dict)  # external id -> final RequestOutput

    @property
    def engine(self) -> Any:
        return self.runner.engine

    @property
    def sched(self) -> Any:
        return self.engine.engine_core.engine_core.scheduler

    def submit(self, rid: str, prompt_tokens: int, max_tokens: int, **params: Any) -> None:
        """Hand one request to the engine as the serving runner does: hints in SamplingParams.extra_args, and
        for vLLM's priority policies the priority the policy gives it."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from _vllm_helpers import request_priority

        h = policy_hints(max_tokens)
        sp = SamplingParams(max_tokens=max_tokens, ignore_eos=True, temperature=0.0, extra_args=h, **params)
        prompt = [10 + (len(self.internal) * 37 + k) % 3000 for k in range(prompt_tokens)]
        priority = request_priority(self.policy, RequestView(rid, time.time(), prompt_tokens, h))
        self.internal[rid] = self.engine.add_request(rid, TokensPrompt(prompt_token_ids=prompt), sp,
                                                     priority=priority)
        self.max_tokens[rid] = max_tokens

    def request(self, rid: str) -> Any:
        """The scheduler's request object, or None once it left the scheduler."""
        return self.sched.requests.get(self.internal[rid])

    def step(self) -> None:
        for out in self.engine.step():
            if out.finished:
                assert out.request_id not in self.finished
                self.finished[out.request_id] = out

    def abort(self, rid: str) -> None:
        self.engine.abort_request([rid])
        assert self.request(rid) is None, f"{rid} still in the scheduler after the abort"

    def run_to_end(self) -> None:
        for _ in range(MAX_STEPS):
            if not self.engine.has_unfinished_requests():
                return
            self.step()
        raise AssertionError(f"unfinished after {MAX_STEPS} steps")

    def check_all_done(self, aborted: set[str], errored: set[str] = frozenset()) -> None:
        """Every request not aborted or errored generated its max_tokens; nothing is left behind."""
        expected = set(self.internal) - aborted
        assert set(self.finished) == expected
        for rid in expected - errored:
            out = self.finished[rid].outputs[0]
            assert len(out.token_ids) == self.max_tokens[rid] and out.finish_reason == "length", rid
        sched = self.sched
        assert len(sched.waiting) == 0 and len(sched.kv_holding_waiting) == 0
        assert not sched.running and not sched.requests
        assert sched.get_kv_cache_usage() == 0.0
        # and the engine still serves
        self.submit("after", W_PROMPT, 3)
        self.run_to_end()
        assert len(self.finished["after"].outputs[0].token_ids) == 3


class Engines:
    """One in-process engine per policy, shared by that policy's engine tests; an engine a test left with
    requests in it (a failed test, a crashed step) is replaced, so every test starts from an empty engine."""

    def __init__(self, model: str, policy: str) -> None:
        self.model, self.policy, self.runner = model, policy, None

    def get(self) -> Any:
        if self.runner is None:
            from llmsched.serving.engine import EngineConfig
            from llmsched.serving.runner import EngineRunner

            cfg = EngineConfig(model=self.model, policy=self.policy, max_num_seqs=2,
                               max_model_len=ENGINE_MODEL_LEN, max_num_batched_tokens=512,
                               extra=dict(ENGINE_EXTRA))
            self.runner = EngineRunner(cfg)
        return self.runner

    def release(self) -> None:
        runner = self.runner
        try:
            clean = not runner.engine.has_unfinished_requests()
        except Exception:  # noqa: BLE001 - a dead engine core
            clean = False
        if not clean:
            self.close()

    def close(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.close()


# engine level: one engine per queue implementation (the scheduler-level test above runs every policy and option;
# LLMSCHED_SERVER_TESTS=all runs every policy here too)
@pytest.fixture(scope="module", params=one_per_implementation("fcfs", "~15 s"))
def engines(request, tiny_model):
    pool = Engines(tiny_model, request.param)
    yield pool
    pool.close()


@pytest.fixture
def h(engines) -> Harness:
    yield Harness(engines.get(), engines.policy)
    engines.release()


@pytest.mark.parametrize("state", ["waiting", "running", "preempted"])
def test_engine_survives_abort(h: Harness, state: str) -> None:
    from vllm.v1.request import RequestStatus as S

    for rid in ("p0", "p1"):
        h.submit(rid, P_PROMPT, P_OUT)
    h.step()
    assert h.request("p0").status == S.RUNNING and h.request("p1").status == S.RUNNING
    for rid in ("w0", "w1", "w2"):
        h.submit(rid, W_PROMPT, W_OUT)
    h.step()
    # a policy that swaps (ltr-released) has swapped a long request out for a short one instead
    swaps = getattr(h.sched.waiting, "swap_limit", None) is not None
    if not swaps:
        assert all(h.request(w).status == S.WAITING and h.request(w) in h.sched.waiting for w in ("w0", "w1", "w2"))
    rid_of = {iid: rid for rid, iid in h.internal.items()}

    if state == "waiting":
        head = next(r for r in h.sched.waiting if r.status == S.WAITING)  # the one the policy admits next
        target = rid_of[head.request_id]
        assert target.startswith("w")
    elif state == "running":
        target = rid_of[h.sched.running[-1].request_id]
    else:
        live = [rid for rid in h.internal if h.request(rid) is not None]
        for _ in range(4 * P_OUT):
            if any(h.request(r).status == S.PREEMPTED for r in live if h.request(r) is not None):
                break
            h.step()
        preempted = [r for r in live if h.request(r) is not None and h.request(r).status == S.PREEMPTED]
        assert len(preempted) == 1, "the capped KV cache did not force a preemption"
        target = preempted[0]
        victim = h.request(target)
        assert victim.num_preemptions == 1 and victim in h.sched.waiting and victim not in h.sched.running
    h.abort(target)
    h.run_to_end()
    h.check_all_done(aborted={target})
    if state == "preempted" and not swaps:
        # the request that kept running finished all its tokens; it was never preempted itself
        survivor = "p1" if target == "p0" else "p0"
        assert h.finished[survivor].metrics.num_preemptions == 0


def test_engine_survives_grammar_error_while_waiting(h: Harness) -> None:
    from vllm.sampling_params import StructuredOutputsParams
    from vllm.v1.request import RequestStatus as S

    for rid in ("p0", "p1"):
        h.submit(rid, W_PROMPT, 12)
    h.step()
    h.submit("bad-grammar", W_PROMPT, W_OUT, structured_outputs=StructuredOutputsParams(regex=BAD_REGEX))
    h.submit("w0", W_PROMPT, W_OUT)
    h.step()
    bad = h.request("bad-grammar")
    assert bad.status == S.WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR and bad in h.sched.waiting
    h.run_to_end()
    out = h.finished["bad-grammar"].outputs[0]
    assert out.finish_reason == "error" and len(out.token_ids) == 0
    h.check_all_done(aborted=set(), errored={"bad-grammar"})
