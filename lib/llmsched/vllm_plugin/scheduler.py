"""vLLM scheduler classes that install an llmsched policy as the waiting queue.

Use with any vLLM entry point (pinned vLLM 0.32; the scheduler interface is not public API, so this adapter
stays thin and touches only the two waiting queues):

    LLM(model=..., scheduler_cls="llmsched.vllm_plugin.PolicyScheduler",
        additional_config={"llmsched": {"policy": "oracle-sjf"}})

    python -m vllm.entrypoints.openai.api_server --model ... \
        --scheduler-cls llmsched.vllm_plugin.PolicyScheduler \
        --additional-config '{"llmsched": {"policy": "sjf", "args": {"score_key": "score"}}}'

Where the policy comes from, first match wins: `additional_config["llmsched"]` ({"policy": name, "args":
{...}}), then the environment variables LLMSCHED_POLICY and LLMSCHED_POLICY_ARGS (JSON), else "fcfs".
Per-request hints come from `SamplingParams.extra_args` (`vllm_xargs` in an OpenAI-API request body).

Which base class: `PolicyScheduler` subclasses vLLM's synchronous `Scheduler`, which vLLM picks on this CPU
build (the CPU executor does not support async scheduling); `AsyncPolicyScheduler` subclasses
`AsyncScheduler` for engines that run with async scheduling (CUDA), as vLLM's docs recommend there. Both
replace `self.waiting` and `self.kv_holding_waiting` right after vLLM builds them, before any request exists.
Everything else (budgets, KV allocation, preemption by recompute, victim = newest running request under
vLLM's FCFS setting) is vLLM's own code.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from vllm.logger import init_logger
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.request_queue import RequestQueue
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request

from llmsched.policies import PolicyQueue, RequestView, make_policy

# under vLLM's logger tree, so the message appears in the engine's log with vLLM's format
logger = init_logger("vllm.plugins.llmsched")

# The policy queues implement RequestQueue's protocol; register them so isinstance checks in vLLM hold.
RequestQueue.register(PolicyQueue)


@dataclass(frozen=True)
class PolicySpec:
    name: str = "fcfs"
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_vllm_config(cls, vllm_config: Any) -> PolicySpec:
        extra = getattr(vllm_config, "additional_config", None) or {}
        conf = extra.get("llmsched") if isinstance(extra, dict) else None
        if conf is not None:
            if not isinstance(conf, dict) or "policy" not in conf:
                raise ValueError(
                    f'additional_config["llmsched"] must be {{"policy": name, "args": {{}}}}, got {conf!r}'
                )
            return cls(conf["policy"], dict(conf.get("args") or {}))
        name = os.environ.get("LLMSCHED_POLICY", "fcfs")
        raw = os.environ.get("LLMSCHED_POLICY_ARGS", "")
        try:
            args = json.loads(raw) if raw else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"LLMSCHED_POLICY_ARGS is not valid JSON ({e}): {raw!r}") from None
        return cls(name, args)


def vllm_request_view(request: Request) -> RequestView:
    """The RequestView of a vLLM request; hints are the request's SamplingParams.extra_args."""
    params = request.sampling_params
    hints = (params.extra_args or {}) if params is not None else {}
    return RequestView(request.request_id, request.arrival_time, request.num_prompt_tokens, hints)


class _PolicyQueues:
    """Mixin: after vLLM's Scheduler.__init__, swap in the configured policy's queues."""

    waiting: Any
    kv_holding_waiting: Any
    vllm_config: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        spec = PolicySpec.from_vllm_config(self.vllm_config)
        if len(self.waiting) or len(self.kv_holding_waiting):
            raise RuntimeError("llmsched: vLLM queued requests before the policy queue was installed")
        self.policy_spec = spec
        self.waiting = make_policy(spec.name, view=vllm_request_view, **spec.args)
        self.kv_holding_waiting = make_policy(spec.name, view=vllm_request_view, **spec.args)
        logger.info("llmsched: waiting queues use policy %s %s", spec.name, spec.args or "")

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        # vLLM stamps Request.arrival_time with time.time(); time-aware policies get the same clock.
        now = time.time()
        self.waiting.tick(now)
        self.kv_holding_waiting.tick(now)
        return super().schedule(*args, **kwargs)  # type: ignore[misc]

    def policy_stats(self) -> dict[str, int]:
        """Counters of both queues (e.g. requests that arrived without a score)."""
        out: dict[str, int] = {}
        for q in (self.waiting, self.kv_holding_waiting):
            for k, v in q.stats.items():
                out[k] = out.get(k, 0) + v
        return out


class PolicyScheduler(_PolicyQueues, Scheduler):
    """vLLM's synchronous Scheduler with an llmsched policy as its waiting queues."""


class AsyncPolicyScheduler(_PolicyQueues, AsyncScheduler):
    """vLLM's AsyncScheduler with an llmsched policy as its waiting queues."""
