"""vLLM scheduler classes that install an llmsched policy as the waiting queue.

Use with any vLLM entry point (pinned vLLM 0.32; the scheduler interface is not public API, so this adapter
stays thin and touches only the two waiting queues):

    LLM(model=..., scheduler_cls="llmsched.vllm_plugin.PolicyScheduler",
        additional_config={"llmsched": {"policy": "oracle-sjf"}})

    python -m vllm.entrypoints.openai.api_server --model ... \
        --scheduler-cls llmsched.vllm_plugin.PolicyScheduler \
        --additional-config '{"llmsched": {"policy": "sjf", "args": {"score_key": "score"}}}'

Where the policy comes from, first match wins: `additional_config["llmsched"]` ({"policy": name, "args":
{...}}), then the environment variables LLMSCHED_POLICY and LLMSCHED_POLICY_ARGS (JSON). With neither, the
scheduler is stock vLLM: the waiting queues stay vLLM's own, FCFS or PRIORITY as `scheduling_policy` says, so a
user's request priorities act exactly as without the plug-in. Policies that *are* vLLM's priority scheduling
(`vllm-priority`, `pars-released`: llmsched.policies.priority) also keep vLLM's own queues and require
`scheduling_policy="priority"`; the requests carry their priority (LLM.generate(priority=...), the server's
`priority` field; the serving runner passes the policy's `priority_of`). Every other llmsched policy replaces
the queues and requires vLLM's FCFS setting (under PRIORITY vLLM would pick preemption victims by priority
values the policy does not set). Per-request hints come from `SamplingParams.extra_args` (`vllm_xargs` in an
OpenAI-API request body).

Which base class: `PolicyScheduler` subclasses vLLM's synchronous `Scheduler`, which vLLM picks on this CPU
build (the CPU executor does not support async scheduling); `AsyncPolicyScheduler` subclasses
`AsyncScheduler` for engines that run with async scheduling (CUDA), as vLLM's docs recommend there;
`AutoPolicyScheduler` becomes whichever of the two matches vLLM's resolved `async_scheduling`. Both
replace `self.waiting` and `self.kv_holding_waiting` right after vLLM builds them, before any request exists.
Everything else (budgets, KV allocation, preemption by recompute, victim = newest running request under
vLLM's FCFS setting, the largest (priority, arrival) under PRIORITY) is vLLM's own code.

The preemption hook (policies with `victim = "rank"`, llmsched.policies.base): at the start of every step, before
vLLM's `schedule()`, the plug-in sorts `self.running` by the policy's `rank_of` (a stable sort of vLLM's own list,
best first), so vLLM's running pass hands out token budget in rank order and its own FCFS victim, `running[-1]`,
is the worst-ranked request; with the policy's `swap_limit` it may then preempt one running request for the
waiting head through vLLM's own `_preempt_request` (`plan_swap` decides, the same code the simulator runs). Nothing
inside `schedule()` is replaced. Tested on the synchronous Scheduler (the CPU build); on AsyncScheduler a swap
drops the request's in-flight output only where vLLM itself would (`requires_kv_delivery`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from vllm.logger import init_logger
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.request_queue import RequestQueue, SchedulingPolicy
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request

from llmsched.policies import PolicyQueue, PolicySpec, RequestView, plan_swap

# under vLLM's logger tree, so the message appears in the engine's log with vLLM's format
logger = init_logger("vllm.plugins.llmsched")

# The policy queues implement RequestQueue's protocol; register them so isinstance checks in vLLM hold.
RequestQueue.register(PolicyQueue)


def policy_from_vllm_config(vllm_config: Any) -> PolicySpec | None:
    """The configured llmsched policy (module docstring: where it comes from), or None when none is configured
    (stock vLLM queues). ValueError for a malformed config, an unknown policy or bad arguments."""
    extra = getattr(vllm_config, "additional_config", None) or {}
    conf = extra.get("llmsched") if isinstance(extra, dict) else None
    if conf is not None:
        if not isinstance(conf, dict) or "policy" not in conf:
            raise ValueError(
                f'additional_config["llmsched"] must be {{"policy": name, "args": {{}}}}, got {conf!r}'
            )
        return PolicySpec(conf["policy"], dict(conf.get("args") or {}))
    name = os.environ.get("LLMSCHED_POLICY", "")
    raw = os.environ.get("LLMSCHED_POLICY_ARGS", "")
    if not name:
        if raw:
            raise ValueError("LLMSCHED_POLICY_ARGS is set but LLMSCHED_POLICY is not: name the policy")
        return None
    try:
        args = json.loads(raw) if raw else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"LLMSCHED_POLICY_ARGS is not valid JSON ({e}): {raw!r}") from None
    return PolicySpec(name, args)


def vllm_request_view(request: Request) -> RequestView:
    """The RequestView of a vLLM request; hints are the request's SamplingParams.extra_args."""
    params = request.sampling_params
    hints = (params.extra_args or {}) if params is not None else {}
    return RequestView(request.request_id, request.arrival_time, request.num_prompt_tokens, hints)


class _PolicyQueues:
    """Mixin: after vLLM's Scheduler.__init__, swap in the configured policy's queues (module docstring)."""

    waiting: Any
    kv_holding_waiting: Any
    running: list[Any]
    vllm_config: Any
    policy: SchedulingPolicy

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spec = policy_from_vllm_config(self.vllm_config)
        self.policy_spec = spec
        self._installed = False
        if spec is None:
            logger.info("llmsched: no policy configured; vLLM's own %s waiting queues", self.policy.value)
            return
        queue = spec.build(view=vllm_request_view)  # ValueError for bad argument values
        if queue.uses_vllm_priority:
            if self.policy != SchedulingPolicy.PRIORITY:
                raise ValueError(f"llmsched policy {spec.name!r} is vLLM's priority scheduling: start vLLM with "
                                 f"scheduling_policy='priority' (--scheduling-policy priority), got "
                                 f"{self.policy.value!r}")
            logger.info("llmsched: policy %s runs vLLM's own priority queues (requests carry their priority)",
                        spec.name)
            return
        if self.policy != SchedulingPolicy.FCFS:
            raise ValueError(f"llmsched policy {spec.name!r} replaces vLLM's waiting queues and needs vLLM's "
                             f"scheduling_policy='fcfs', got {self.policy.value!r} (vLLM would choose preemption "
                             f"victims by request priorities the policy does not set)")
        if len(self.waiting) or len(self.kv_holding_waiting):
            raise RuntimeError("llmsched: vLLM queued requests before the policy queue was installed")
        self.waiting = queue
        self.kv_holding_waiting = spec.build(view=vllm_request_view)
        self._installed = True
        logger.info("llmsched: waiting queues use policy %s %s", spec.name, spec.to_json()["args"] or "")

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        if self._installed:
            # vLLM stamps Request.arrival_time with time.time(); time-aware policies get the same clock.
            now = time.time()
            self.waiting.tick(now)
            self.kv_holding_waiting.tick(now)
            if self.waiting.victim == "rank" and self.running:
                self._rank_running()
        return super().schedule(*args, **kwargs)  # type: ignore[misc]

    def _rank_running(self) -> None:
        """The preemption hook (module docstring): order the running list by the policy's rank, then swap out the
        request `plan_swap` names, if any, with vLLM's own preemption."""
        queue = self.waiting
        self.running.sort(key=queue.rank_of)
        free_slots = self.max_num_running_reqs - len(self.running)  # type: ignore[attr-defined]
        v = plan_swap(queue, self.running, free_slots, lambda r: r.num_preemptions)
        if v is None or not self._request_blocks_can_be_freed(self.running[v]):  # type: ignore[attr-defined]
            return  # (as vLLM's own preemption: a deferred block free would not make room now)
        victim = self.running.pop(v)
        self._preempt_request(victim, time.monotonic(),  # type: ignore[attr-defined]
                              drop_stale_output=self.requires_kv_delivery)  # type: ignore[attr-defined]
        queue.stats["swaps"] = queue.stats.get("swaps", 0) + 1

    def policy_stats(self) -> dict[str, int]:
        """Counters of both queues (e.g. requests that arrived without a score); empty with vLLM's own queues."""
        out: dict[str, int] = {}
        if not self._installed:
            return out
        for q in (self.waiting, self.kv_holding_waiting):
            for k, v in q.stats.items():
                out[k] = out.get(k, 0) + v
        return out


class PolicyScheduler(_PolicyQueues, Scheduler):
    """vLLM's synchronous Scheduler with an llmsched policy as its waiting queues."""


class AsyncPolicyScheduler(_PolicyQueues, AsyncScheduler):
    """vLLM's AsyncScheduler with an llmsched policy as its waiting queues."""


class AutoPolicyScheduler:
    """Whichever of the two vLLM resolved: `PolicyScheduler` when vLLM settled on synchronous scheduling,
    `AsyncPolicyScheduler` when on async (it decides `async_scheduling=None` from the platform and executor, after
    the scheduler class is named). Constructing it returns an instance of the chosen class."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        vllm_config = kwargs.get("vllm_config", args[0] if args else None)
        use_async = bool(getattr(getattr(vllm_config, "scheduler_config", None), "async_scheduling", False))
        return (AsyncPolicyScheduler if use_async else PolicyScheduler)(*args, **kwargs)
