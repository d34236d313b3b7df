"""Builders the test files share: policy request views, workload requests and random workloads, the simulator's
engine settings and step-time models, hints every policy reads, and the engine tests' blocker workload.

Tests import them by name (`from factories import request_view`), the way they import tests/_vllm_helpers.py;
unlike that module this one never imports vLLM. Every builder is deterministic: the same arguments give equal
objects, so a test's inputs are written once, here or in its call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.policies import POLICIES, RequestView
from llmsched.sim import LinearStepTime, SimConfig
from llmsched.workload.request import Request

# small data files the tests read (text pool, traces, dataset samples); conftest.py names it too, since it imports
# no library code
FIXTURES = Path(__file__).parent / "fixtures"

# --- policy request views ----------------------------------------------------------------------------------------


def request_view(i: int, arrival: float | None = None, prompt: int = 10, **hints: Any) -> RequestView:
    """The RequestView of request "r{i}": arrives at `arrival` (default float(i): request i at i seconds), a
    `prompt`-token prompt, `hints` as its hints (e.g. score=0.3, ref_output_tokens=12, priority=1)."""
    return RequestView(f"r{i}", float(i) if arrival is None else arrival, prompt, hints)


def policy_hints(output_tokens: int) -> dict[str, Any]:
    """Hints every registered policy can read, all growing with the output length, so short requests go first
    under the SJF and priority policies: a score (output_tokens / 10), the reference length, a priority."""
    return {"score": output_tokens / 10.0, "ref_output_tokens": output_tokens, "priority": output_tokens}


# --- workload requests -------------------------------------------------------------------------------------------


def make_request(rid: str, prompt_tokens: int, output_tokens: int, arrival: float = 0.0, *, prompt: str | None = None,
                 source: str = "test", **hints: Any) -> Request:
    """A workload Request `rid` arriving at `arrival`, with `hints` as its hints (e.g. score=0.7); its prompt text
    is "prompt of {rid}" unless `prompt` is given (the simulator reads only the token counts)."""
    text = f"prompt of {rid}" if prompt is None else prompt
    return Request(rid, text, prompt_tokens, output_tokens, arrival, source=source, hints=hints)


def random_workload(seed: int, n: int = 60, rate: float = 20.0, max_prompt: int = 200, max_output: int = 120, *,
                    scored: bool = False, prompt: str | None = None, source: str = "test") -> list[Request]:
    """n requests r000, r001, ... (make_request) drawn from numpy's default_rng(seed): Poisson arrivals at `rate`
    per second from t=0, prompts uniform in [1, max_prompt] tokens, outputs uniform in [0, max_output] (0 still
    generates one token, as in the serving runner). scored=True adds two hints drawn after those: `score`, a noisy
    ranker score correlated with the output length (output / 40 + N(0, 1)), and `priority`, one of 4 classes."""
    rng = np.random.default_rng(seed)
    arrivals = np.concatenate(([0.0], np.cumsum(rng.exponential(1 / rate, n - 1))))
    prompts = rng.integers(1, max_prompt + 1, n)
    outputs = rng.integers(0, max_output + 1, n)
    hints: list[dict[str, Any]] = [{} for _ in range(n)]
    if scored:
        scores = outputs / 40.0 + rng.normal(0.0, 1.0, n)
        classes = rng.integers(0, 4, n)
        hints = [{"score": float(sc), "priority": int(c)} for sc, c in zip(scores, classes, strict=True)]
    rows = zip(prompts, outputs, arrivals, hints, strict=True)
    return [make_request(f"r{i:03d}", int(p), int(o), float(a), prompt=prompt, source=source, **h)
            for i, (p, o, a, h) in enumerate(rows)]


# --- the simulator's engine settings and step-time models ---------------------------------------------------------

UNIT_STEP = LinearStepTime(c0=1.0)  # every step takes exactly one second: hand-computable timestamps
TIMED_STEP = LinearStepTime(c0=0.004, c_prefill=2e-5, c_decode=3e-4, c_kv=1e-6)  # a few ms, growing with the work


def sim_configs(max_model_len: int = 512) -> dict[str, SimConfig]:
    """The engine settings the simulator is checked under, by name: "roomy" (never short of KV blocks),
    "tight-kv" (41 blocks of 8 tokens: preemptions), "first-chunk-watermark" (admission checks only the first
    prefill chunk, with a 5 % watermark)."""
    return {
        "roomy": SimConfig(num_blocks=4000, block_size=16, max_num_seqs=8, max_num_batched_tokens=256,
                           max_model_len=max_model_len),
        "tight-kv": SimConfig(num_blocks=41, block_size=8, max_num_seqs=16, max_num_batched_tokens=128,
                              max_model_len=max_model_len),
        "first-chunk-watermark": SimConfig(num_blocks=90, block_size=4, max_num_seqs=6, max_num_batched_tokens=64,
                                           max_model_len=max_model_len, watermark=0.05, reserve_full_prompt=False),
    }


# --- the engine tests' blocker workload ----------------------------------------------------------------------------

QUEUED_OUTPUT_TOKENS = (40, 8, 30, 16, 24, 4)  # reference output lengths of queued_requests(), in arrival order


def blocker_request(prompt_tokens: int = 32, output_tokens: int = 150) -> Request:
    """"blocker", arriving at 0: with max_num_seqs=1 it holds the engine's only sequence slot while the requests
    that arrive after it wait in the policy's queue."""
    return Request("blocker", "the first request keeps the engine busy " * 4, prompt_tokens, output_tokens,
                   arrival_time=0.0)


def queued_requests(output_tokens: tuple[int, ...] = QUEUED_OUTPUT_TOKENS) -> list[Request]:
    """q0, q1, ... arriving every 20 ms from 0.02 s (behind the blocker), 20-token prompts of distinct text,
    output_tokens[i] reference output tokens for q{i}."""
    return [Request(f"q{i}", f"queued request number {i} " * (3 + i), 20, n, arrival_time=0.02 * (i + 1))
            for i, n in enumerate(output_tokens)]


def admission_order(df: pd.DataFrame) -> list[str]:
    """The ids of a run's ok requests other than the blocker, in the order the engine scheduled them."""
    ok = df[(df.status == "ok") & (df.request_id != "blocker")]
    return list(ok.sort_values("scheduled").request_id)


# --- one test per queue implementation ------------------------------------------------------------------------

# the vLLM scheduler methods a waiting queue serves, and the plug-in's preemption hook it may use: policies running
# the same code share one engine or server start in the engine-level tests
QUEUE_METHODS = ("add_request", "pop_request", "peek_request", "prepend_request", "prepend_requests",
                 "remove_request", "remove_requests", "__contains__", "__len__", "__iter__", "tick", "rank_of")
ALL_POLICIES = os.environ.get("LLMSCHED_SERVER_TESTS", "") == "all"


def queue_implementation(policy: str) -> object:
    """What the engine runs for `policy`: vLLM's own priority queue, or the llmsched queue's methods (and its
    default victim rule: the plug-in's preemption hook runs only for victim="rank")."""
    cls = POLICIES[policy]
    if cls.uses_vllm_priority:
        return "vLLM's PriorityRequestQueue"
    return (*(getattr(cls, m) for m in QUEUE_METHODS), cls.victim)


def one_per_implementation(first: str, cost: str) -> list:
    """Every registered policy as a pytest param; those whose code an earlier one already runs are skipped unless
    LLMSCHED_SERVER_TESTS=all (`first`, then the others by name, represents its group). `cost` says what one start
    costs, in the skip reason."""
    import pytest

    rep: dict[object, str] = {}
    for name in sorted(POLICIES, key=lambda n: (n != first, n)):
        rep.setdefault(queue_implementation(name), name)
    params = []
    for name in sorted(POLICIES):
        owner = rep[queue_implementation(name)]
        marks = []
        if owner != name and not ALL_POLICIES:
            marks = [pytest.mark.skip(reason=f"same queue code as {owner!r}, tested here; one start costs {cost} "
                                             "(LLMSCHED_SERVER_TESTS=all runs every policy)")]
        params.append(pytest.param(name, marks=marks))
    return params
