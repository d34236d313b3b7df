"""A discrete-event simulator of vLLM V1's scheduling loop (vLLM 0.32 `Scheduler.schedule()`).

One iteration is one engine step, as in vLLM:
 1. Requests whose arrival time has come (<= the step's start) enter the policy queue (`add_request`). With
    nothing running or waiting, time jumps to the next arrival.
 2. Under the policy's preemption hook (`victim = "rank"`, llmsched.policies.base) the running list is first
    ordered by the policy's rank and one running request may be swapped out for the waiting head (`plan_swap`),
    as the plug-in does before vLLM schedules (decode-only runs are then advanced together only where neither can
    change within them: see _Engine.__init__). RUNNING requests, in running order (admission order, or rank order
    under the hook), each get their remaining prefill chunk or one
    decode token, at most the token budget left (chunked prefill; `max_num_batched_tokens` per step). The
    loop stops when the budget is spent. KV blocks needed = ceil((computed + new) / block_size) - held, from
    a pool of num_blocks - 1 (vLLM keeps one block aside as its null block). When the free pool is short,
    the newest running request (`running[-1]`, vLLM's victim under its FCFS setting; under its PRIORITY
    setting, policies with `victim = "priority"`, the one with the largest (priority, arrival), wherever it
    stands; a step can then preempt its way to scheduling nothing: an empty step of no duration, as vLLM runs
    no model for an empty batch) is preempted by recompute: its blocks are freed, its computed tokens reset
    to 0 (on resuming it re-prefills prompt + generated tokens), it goes back through `prepend_request`,
    and its preemption count grows; when the victim is the request itself, no further running request is
    scheduled this step.
 3. Only if nobody was preempted in this step: WAITING requests are admitted in the policy queue's order
    (`peek_request`; if its KV blocks fit, `pop_request`) until the budget is spent, `max_num_seqs` run, or
    the head does not fit (stop; no skipping). With chunked prefill off (`SimConfig.chunked_prefill=False`,
    vLLM's `enable_chunked_prefill=False`) a head whose whole prompt (+ generated tokens when resuming) exceeds
    the budget left also stops admission: prompts are never split, and the RUNNING pass, which vLLM leaves
    unchanged, then only ever decodes. With `reserve_full_prompt` (vLLM's
    `scheduler_reserve_full_isl`, default on) the head must fit its whole prompt (+ generated tokens when
    resuming), otherwise its first chunk; the watermark is added when other requests run. An admitted request
    gets min(its tokens, budget left) and joins the end of the running list.
 4. The step lasts `step_time(prefill_tokens, decode_seqs, kv_tokens, num_seqs)` seconds. At its end the
    computed tokens advance; a request whose (re)prefill completes samples a token (its first output token
    the first time), a decoding request samples one; a request that has generated its reference number of
    tokens finishes (replay semantics, vLLM `max_tokens` + `ignore_eos`) and frees its blocks. A reference
    length of 0 generates 1 token, as the serving runner's max_tokens=max(1, output_tokens) does.

Code: `Simulator.run` drives an `_Engine` (the running list as parallel arrays, the KV pool, the clock, the
policy queue) through these phases, one method each: add_arrivals (1), schedule = _schedule_running (2) +
_schedule_waiting (3), execute (4), fast_forward_decodes (see Speed), finish (4); a `_Step` carries what one
step scheduled from phase to phase.

Timestamps follow vLLM's request metrics: `scheduled` = start of the first step that scheduled the request,
`first_token` / `last_token` = end of the step that sampled the token, `queued` = `arrival`.

Fidelity: tests/test_sim_vllm_scheduler.py drives vLLM's own `Scheduler` class (no model) with the same
workloads and step-time model and requires identical timestamps and preemption counts.
Not modelled: prefix caching (the serving runner disables it), async scheduling (vLLM's AsyncScheduler, used on
CUDA, overlaps a step's scheduling with the previous step's execution), speculative decoding, LoRA, multimodal
inputs, KV connectors, pipeline parallelism, `long_prefill_token_threshold`
(0 by default), aborts and EOS stops (replay runs to the reference length).

Speed: per-step work is a few numpy operations on arrays of the running requests, independent of token
counts. When a step only decodes (every running request decodes one token, no admission, no preemption),
the following steps repeat it until the next arrival, finish or block boundary that the free pool cannot
cover; they are advanced together (`max_batch_steps`), each step's time still computed one by one, so
results are identical to stepping one at a time (tests check this against a plain reference loop).
Why admission cannot restart inside such a run: it stopped because the queue was empty, max_num_seqs ran,
or the head's blocks did not fit a pool that only shrinks; none of that changes without an arrival or a finish,
*unless the policy's order depends on the clock* (`PolicyQueue.time_dependent`, e.g. EWSJF's waiting-time
scores, its `max_wait_s` bound and its ageing bubble queues). For such policies every represented step still
calls `tick(start)` and re-checks whether the (possibly new) head would be admitted; if it would, the batch ends
there and that step is simulated in full (without a second tick), so the policy sees exactly the ticks and
peeks of single-step simulation (tests check this for EWSJF and its released variant).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.policies import PolicyQueue, PolicySpec, RequestView, plan_swap
from llmsched.records import COLUMNS, OK, RequestRecord, records_to_frame, write_run
from llmsched.steptime.limits import SimConfig
from llmsched.steptime.models import StepTimeModel

STEP_COLUMNS = [
    "step",  # index of the engine step (0-based)
    "start",  # seconds
    "end",
    "scheduled_tokens",  # prefill_tokens + decode_seqs
    "prefill_tokens",
    "decode_seqs",
    "num_seqs",  # requests scheduled in the step
    "num_running",  # requests in the running list after scheduling (>= num_seqs)
    "num_waiting",  # requests in the policy queue after scheduling
    "kv_blocks_used",  # after this step's allocations
    "kv_tokens",  # context tokens attended (the step-time model's kv_tokens)
    "preempted",  # requests preempted while scheduling this step
    "admitted",  # waiting requests admitted this step
    "finished",  # requests finished at the end of this step
]


class SimRequest:
    """A request inside the simulator; it is also a RequestView-compatible object for the policy queues.

    num_tokens is prompt + generated tokens (vLLM's `Request.num_tokens`), kept up to date while the request
    is not running; target_tokens is the num_tokens at which it finishes.
    """

    __slots__ = ("request_id", "arrival_time", "prompt_tokens", "hints", "source", "ref_output_tokens",
                 "target_tokens", "num_tokens", "index", "view")

    def __init__(self, request_id: str, arrival_time: float, prompt_tokens: int, ref_output_tokens: int,
                 hints: Mapping[str, Any], source: str, index: int) -> None:
        self.request_id = request_id
        self.arrival_time = arrival_time
        self.prompt_tokens = prompt_tokens
        self.ref_output_tokens = ref_output_tokens
        self.hints = {"ref_output_tokens": ref_output_tokens, **hints}
        self.source = source
        self.target_tokens = prompt_tokens + max(1, ref_output_tokens)
        self.num_tokens = prompt_tokens
        self.index = index
        self.view = RequestView(request_id, arrival_time, prompt_tokens, self.hints)

    def __repr__(self) -> str:
        return (f"SimRequest({self.request_id!r}, arrival={self.arrival_time}, prompt={self.prompt_tokens}, "
                f"output={self.ref_output_tokens}, num_tokens={self.num_tokens})")


def sim_request_view(request: SimRequest) -> RequestView:
    """The RequestView of a simulator request: hints = {"ref_output_tokens": ..., **request.hints}, exactly
    what the serving runner sends in SamplingParams.extra_args. Pass it as `view` when building a policy
    queue for the simulator yourself."""
    return request.view


@dataclass
class SimResult:
    """What a simulation produced.

    records  one RequestRecord per request, ordered by (arrival, request_id) like the serving runner
    frame    the same as a DataFrame (llmsched.records schema)
    steps    per-step trace (STEP_COLUMNS) when run with trace_steps=True, else None
    stats    run-level counters: num_steps, num_iterations (loop iterations, < num_steps when decode steps
             were batched), num_preemptions, end_time, max_running, kv_blocks_used_end, policy_stats
    config   the resolved configuration (for write_run's config.json)
    """

    records: list[RequestRecord]
    frame: pd.DataFrame
    steps: pd.DataFrame | None
    stats: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    def write(self, out_dir: str | Path) -> Path:
        """requests.parquet + config.json in out_dir (`llmsched.records.write_run`)."""
        return write_run(out_dir, self.records, {**self.config, "stats": self.stats})


class Simulator:
    """Replays workloads through a simulated vLLM V1 scheduler with a policy queue.

    policy           a PolicySpec or a policy name with `policy_args` (checked here; a fresh queue per run,
                     `spec.build(view=sim_request_view)`), or a PolicyQueue instance, which must be empty when a
                     run starts; its view must accept SimRequest objects (sim_request_view, or identity_view: a
                     SimRequest has the RequestView attributes)
    max_batch_steps  most decode-only steps advanced together; 1 steps one at a time (same results, slower)
    """

    def __init__(
        self,
        config: SimConfig,
        step_time: StepTimeModel,
        policy: str | PolicySpec | PolicyQueue = "fcfs",
        policy_args: Mapping[str, Any] | None = None,
        max_batch_steps: int | None = None,
    ) -> None:
        if not isinstance(config, SimConfig):
            raise ValueError(f"config must be a SimConfig, got {type(config).__name__}")
        if not callable(getattr(step_time, "step_time", None)):
            raise ValueError(f"step_time must be a StepTimeModel (with a step_time method), got {step_time!r}")
        self.spec: PolicySpec | None = None
        if isinstance(policy, PolicyQueue | PolicySpec):
            if policy_args:
                raise ValueError("policy_args apply only when the policy is given by name")
            self.spec = policy if isinstance(policy, PolicySpec) else None
        elif not isinstance(policy, str):
            raise ValueError(f"policy must be a PolicySpec, a policy name or a PolicyQueue, got {policy!r}")
        else:
            self.spec = PolicySpec(policy, dict(policy_args or {}))  # fail early on bad names and arguments
        if max_batch_steps is not None and (
            isinstance(max_batch_steps, bool) or not isinstance(max_batch_steps, int) or max_batch_steps < 1
        ):
            raise ValueError(f"max_batch_steps must be an integer >= 1 or None, got {max_batch_steps!r}")
        self.config = config
        self.step_time = step_time
        self.policy = policy
        self.max_batch_steps = max_batch_steps

    # ------------------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """JSON-able description of this simulator (config.json beside the results)."""
        if self.spec is not None:
            policy, args = self.spec.name, self.spec.to_json()["args"]
        else:
            policy, args = getattr(self.policy, "name", "") or type(self.policy).__name__, {}
        to_dict = getattr(self.step_time, "to_dict", None)
        return {
            "backend": "sim",
            "sim": self.config.to_dict(),
            "step_time": to_dict() if callable(to_dict) else repr(self.step_time),
            "policy": policy,
            "policy_args": args,
        }

    def _queue(self) -> PolicyQueue:
        if isinstance(self.policy, PolicyQueue):
            if len(self.policy):
                raise ValueError(f"the policy queue {self.policy!r} must be empty when a simulation starts")
            return self.policy
        assert self.spec is not None
        return self.spec.build(view=sim_request_view)

    def _prepare(self, requests: Iterable[Any]) -> list[SimRequest]:
        """SimRequests sorted by (arrival, request_id); every request checked up front."""
        cfg = self.config
        items = list(requests)
        seen: set[str] = set()
        dups: list[str] = []
        for r in items:
            rid = getattr(r, "request_id", None)
            if not isinstance(rid, str) or not rid:
                raise ValueError(f"every request needs a non-empty string request_id, got {rid!r} in {r!r}")
            if rid in seen:
                dups.append(rid)
            seen.add(rid)
        if dups:
            raise ValueError(f"duplicate request ids in workload: {sorted(set(dups))[:5]}")
        out = []
        for r in items:
            rid = r.request_id
            p, o, a = r.prompt_tokens, r.output_tokens, r.arrival_time
            for name, v, low in (("prompt_tokens", p, 1), ("output_tokens", o, 0)):
                if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
                    raise ValueError(f"request {rid}: {name} must be an integer >= {low}, got {v!r}")
            if isinstance(a, bool) or not isinstance(a, int | float) or not math.isfinite(a) or a < 0:
                raise ValueError(f"request {rid}: arrival_time must be a finite number >= 0, got {a!r}")
            p, o = int(p), int(o)
            gen = max(1, o)
            if p + gen > cfg.max_model_len:
                raise ValueError(
                    f"request {rid}: prompt_tokens + output_tokens = {p} + {gen} = {p + gen} exceeds "
                    f"max_model_len {cfg.max_model_len}"
                )
            # The longest KV the request ever holds: its last decode step computes token p + gen - 1.
            blocks = -(-(p + gen - 1) // cfg.block_size)
            if blocks > cfg.usable_blocks:
                raise ValueError(
                    f"request {rid}: needs {blocks} KV blocks of {cfg.block_size} tokens at its longest "
                    f"({p} prompt + {gen} output tokens) but the cache has only {cfg.usable_blocks} usable "
                    f"(num_blocks={cfg.num_blocks} minus vLLM's null block); it could never complete"
                )
            hints = getattr(r, "hints", None) or {}
            out.append((float(a), rid, p, o, hints, str(getattr(r, "source", "") or "")))
        out.sort(key=lambda x: (x[0], x[1]))
        return [SimRequest(rid, a, p, o, hints, src, i) for i, (a, rid, p, o, hints, src) in enumerate(out)]

    # ------------------------------------------------------------------------------------------------------
    def run(self, requests: Iterable[Any], *, trace_steps: bool = False) -> SimResult:
        """Simulate `requests` (llmsched.workload.Request or anything with request_id, prompt_tokens,
        output_tokens, arrival_time, and optionally source and hints) until every one has finished.

        Raises ValueError for requests that could never run (checked before anything is simulated) and
        RuntimeError if a step makes no progress while work remains, or the step-time model returns a
        non-finite or negative duration.
        """
        reqs = self._prepare(requests)
        engine = _Engine(self.config, self.step_time, self._queue(), reqs, self.max_batch_steps, trace_steps)
        # One iteration is one engine step (EngineCore.step: schedule, execute the model, update from its output),
        # or a run of identical decode-only steps advanced together. NOTE: the phases are bound once, outside the
        # loop, which runs once per step.
        add_arrivals, schedule, execute = engine.add_arrivals, engine.schedule, engine.execute
        fast_forward_decodes, finish = engine.fast_forward_decodes, engine.finish
        n_req = len(reqs)
        while engine.done < n_req:
            if not add_arrivals():
                continue  # idle: the clock jumped to the next arrival
            step = schedule()
            execute(step)
            fast_forward_decodes(step)
            finish(step)
        return engine.result(self.describe())


def simulate(
    requests: Iterable[Any],
    config: SimConfig,
    step_time: StepTimeModel,
    policy: str | PolicySpec | PolicyQueue = "fcfs",
    *,
    policy_args: Mapping[str, Any] | None = None,
    trace_steps: bool = False,
    max_batch_steps: int | None = None,
) -> SimResult:
    """One simulation: `Simulator(config, step_time, policy, ...).run(requests, trace_steps=...)`."""
    sim = Simulator(config, step_time, policy, policy_args=policy_args, max_batch_steps=max_batch_steps)
    return sim.run(requests, trace_steps=trace_steps)


# ----------------------------------------------------------------------------------------------------------
# The engine loop, one phase per method (Simulator.run drives it)
# ----------------------------------------------------------------------------------------------------------


class _Step:
    """What one engine step scheduled: vLLM's SchedulerOutput reduced to the counts the simulator needs.

    start      the clock when the step started (vLLM's scheduled timestamp)
    free       KV blocks free, after the allocations made so far
    budget     token budget left (max_num_batched_tokens minus the tokens scheduled so far)
    scheduled  requests scheduled, always a prefix of the running list
    preempted  running requests preempted while scheduling
    swapped    running requests swapped out for a better-ranked waiting head before scheduling (victim="rank")
    admitted   waiting requests admitted
    decodes    scheduled requests that decode one token (the rest prefill); set by _Engine.execute
    kv_tokens  context tokens attended (computed tokens after the step); set by _Engine.execute
    """

    __slots__ = ("start", "free", "budget", "scheduled", "preempted", "swapped", "admitted", "decodes", "kv_tokens")

    def __init__(self, start: float, free: int, budget: int) -> None:
        self.start = start
        self.free = free
        self.budget = budget
        self.scheduled = 0
        self.preempted = 0
        self.swapped = 0
        self.admitted = 0
        self.decodes = 0
        self.kv_tokens = 0


class _Engine:
    """One simulation's state: the running list as parallel arrays in running order (length `n`), the KV pool
    (`used` blocks held of `n_blocks`), the clock `t`, the policy queue, and every request's timestamps.

    Its methods are the phases of an engine step, in the order Simulator.run calls them: add_arrivals,
    schedule (running pass, then admission), execute, fast_forward_decodes, finish; result assembles the
    SimResult at the end. NOTE: the hot paths copy attributes into locals and write them back once, so
    splitting the loop into methods costs a few attribute loads per step, not per request or token.
    """

    __slots__ = (
        # limits and the model (constant during a run)
        "bs", "n_blocks", "max_seqs", "budget_max", "wm_blocks", "reserve", "chunked", "model", "step_time",
        "max_batch",
        # the policy
        "queue", "timed", "by_priority", "ranked", "prio",
        # the workload and what happened to each request
        "reqs", "n_req", "arrivals", "scheduled", "first_token", "last_token", "preemptions", "trace",
        # the running list as parallel arrays
        "r_idx", "r_comp", "r_ntok", "r_tgt", "r_prompt", "chunk", "running",
        # clock and counters
        "t", "n", "used", "ai", "done", "step", "iterations", "total_preemptions", "max_running", "pre_ticked",
    )

    def __init__(self, cfg: SimConfig, model: StepTimeModel, queue: PolicyQueue, reqs: list[SimRequest],
                 max_batch_steps: int | None, trace_steps: bool) -> None:
        self.bs, self.n_blocks, self.max_seqs = cfg.block_size, cfg.usable_blocks, cfg.max_num_seqs
        self.budget_max = cfg.max_num_batched_tokens
        self.wm_blocks, self.reserve = cfg.watermark_blocks, cfg.reserve_full_prompt
        self.chunked = cfg.chunked_prefill
        self.model = model
        self.step_time = model.step_time
        self.max_batch = max_batch_steps or math.inf

        self.queue = queue
        self.timed = bool(getattr(queue, "time_dependent", False))
        victim = getattr(queue, "victim", "newest")
        self.by_priority = victim == "priority"
        self.ranked = victim == "rank"
        self.prio: list[int] = []
        if self.by_priority:
            self.prio = [queue.priority_of(r.view) for r in reqs]  # type: ignore[attr-defined]
        elif victim not in ("newest", "rank"):
            raise ValueError(f"policy {queue!r} asks for victim rule {victim!r}; the simulator models "
                             "'newest', 'priority' and 'rank'")
        # NOTE: a clock-dependent rank with swaps (ltr-released: promotions by step count) is simulated step by step:
        # batching its decode-only runs while a slot was free gave different results from single steps (found on the
        # smoke KV sweep; not explained yet). Otherwise a decode-only run cannot change the swap decision without an
        # arrival or a finish, and its running order matters only from the next full step on, which ranks it again.
        if self.ranked and self.timed and getattr(queue, "swap_limit", None) is not None:
            self.max_batch = 1

        n_req = len(reqs)
        self.reqs, self.n_req = reqs, n_req
        self.arrivals = [r.arrival_time for r in reqs]
        self.scheduled = [math.nan] * n_req
        self.first_token = np.full(n_req, math.nan)
        self.last_token = np.full(n_req, math.nan)
        self.preemptions = [0] * n_req
        self.trace: list[list[float]] | None = [] if trace_steps else None

        max_seqs = self.max_seqs
        self.r_idx = np.zeros(max_seqs, np.int64)  # index into reqs
        self.r_comp = np.zeros(max_seqs, np.int64)  # computed tokens
        self.r_ntok = np.zeros(max_seqs, np.int64)  # prompt + generated tokens
        self.r_tgt = np.zeros(max_seqs, np.int64)  # num_tokens at which the request finishes
        self.r_prompt = np.zeros(max_seqs, np.int64)
        self.chunk = np.zeros(max_seqs, np.int64)  # tokens scheduled this step
        self.running = (self.r_idx, self.r_comp, self.r_ntok, self.r_tgt, self.r_prompt)

        self.t = 0.0
        self.n = 0  # running requests
        self.used = 0  # KV blocks held
        self.ai = 0  # next arrival
        self.done = 0
        self.step = 0
        self.iterations = 0
        self.total_preemptions = 0
        self.max_running = 0
        self.pre_ticked = False  # fast_forward_decodes already ticked the step that starts now

    # ------------------------------------------------------------------------------------------------------
    def add_arrivals(self) -> bool:
        """Requests whose arrival time has come (<= the clock) enter the policy queue, as EngineCore.add_request
        → Scheduler.add_request → waiting.add_request. With nothing running or waiting the clock jumps to the
        next arrival (one exists while requests remain) and the answer is False: no step runs now."""
        arrivals, reqs, queue, n_req, t = self.arrivals, self.reqs, self.queue, self.n_req, self.t
        ai = self.ai
        while ai < n_req and arrivals[ai] <= t:
            queue.add_request(reqs[ai])
            ai += 1
        self.ai = ai
        if self.n == 0 and not len(queue):
            self.t = arrivals[ai]
            return False
        return True

    def schedule(self) -> _Step:
        """One call of vLLM's `Scheduler.schedule()`: tick the policy, schedule the RUNNING requests, then, only
        if nobody was preempted, admit WAITING requests. Raises RuntimeError when nothing can be scheduled."""
        self.iterations += 1
        start = self.t
        if self.pre_ticked:
            self.pre_ticked = False
        else:
            self.queue.tick(start)
        swapped = self._rank_running() if self.ranked and self.n else 0
        step = _Step(start, self.n_blocks - self.used, self.budget_max)
        step.swapped = swapped
        if self.n:
            self._schedule_running(step)
        if not step.preempted:
            self._schedule_waiting(step)
        self.total_preemptions += step.preempted
        if self.n > self.max_running:
            self.max_running = self.n
        if step.scheduled == 0 and not step.preempted:
            queue = self.queue
            head = queue.peek_request() if len(queue) else None
            raise RuntimeError(
                f"simulation made no progress at t={start:.6f}s (step {self.step}): nothing could be scheduled "
                f"with {self.n} running, {len(queue)} waiting (head {head!r}), {step.free} of {self.n_blocks} KV "
                f"blocks free, {self.done} of {self.n_req} requests done"
            )
        return step

    def _rank_running(self) -> int:
        """The plug-in's start of a step under `victim = "rank"` (llmsched.vllm_plugin.scheduler): order the running
        list by the policy's `rank_of` (stable), then, if `plan_swap` says so, preempt one running request for the
        waiting head (blocks freed, computed tokens reset, `prepend_request`). Returns the number swapped (0 or 1)."""
        n, reqs, queue, running_arrays = self.n, self.reqs, self.queue, self.running
        running = [reqs[i] for i in self.r_idx[:n].tolist()]
        if n > 1:
            keys = [queue.rank_of(r) for r in running]
            order = sorted(range(n), key=keys.__getitem__)
            if order != list(range(n)):
                perm = np.array(order)
                for arr in running_arrays:
                    arr[:n] = arr[:n][perm]
                running = [running[k] for k in order]
        preemptions = self.preemptions
        v = plan_swap(queue, running, self.max_seqs - n, lambda r: preemptions[r.index])
        if v is None:
            return 0
        req = running[v]
        req.num_tokens = int(self.r_ntok[v])
        self.used -= (int(self.r_comp[v]) + self.bs - 1) // self.bs
        preemptions[req.index] += 1
        self.total_preemptions += 1
        for arr in running_arrays:
            arr[v:n - 1] = arr[v + 1:n]
        self.n = n - 1
        queue.prepend_request(req)
        queue.stats["swaps"] = queue.stats.get("swaps", 0) + 1
        return 1

    def _schedule_running(self, step: _Step) -> None:
        """The RUNNING pass of `Scheduler.schedule()` ("First, schedule the RUNNING requests"): in running order,
        each request gets its remaining prefill chunk or one decode token, at most the budget left, and the KV
        blocks it newly needs (`kv_cache_manager.allocate_slots`). When every allocation fits (the common case)
        it is a few array operations; otherwise the victim rule's loop preempts."""
        n, bs, budget_max = self.n, self.bs, self.budget_max
        chunk = self.chunk
        comp = self.r_comp[:n]
        need = self.r_ntok[:n] - comp
        before = np.cumsum(need) - need  # budget used by the requests ahead
        ch = np.minimum(need, budget_max - before)
        np.maximum(ch, 0, out=ch)
        chunk[:n] = ch
        m = int(np.count_nonzero(ch))  # the budget runs out after the first m (a prefix)
        newblk = (comp[:m] + ch[:m] + (bs - 1)) // bs - (comp[:m] + (bs - 1)) // bs
        total = int(newblk.sum())
        if total <= step.free:
            step.free -= total
            step.scheduled = m
        elif self.by_priority:
            self._preempt_by_priority(step)
        else:
            self._preempt_newest(step, newblk, m)
        step.budget -= int(chunk[:step.scheduled].sum())

    def _preempt_newest(self, step: _Step, newblk: np.ndarray, m: int) -> None:
        """The RUNNING pass under vLLM's FCFS setting when the pool is short: for the first request whose new
        blocks do not fit, `running.pop()` is preempted (`Scheduler._preempt_request`) until they fit or the
        victim is the request itself, which ends the pass; then the pass continues after it.

        NOTE: vLLM allocates request by request; victims always come from behind the request being scheduled, so
        the requests ahead keep their allocations and budget: find the first failing request with a cumulative
        sum, preempt from the end, continue after it.
        """
        bs, queue, reqs, preemptions = self.bs, self.queue, self.reqs, self.preemptions
        r_idx, r_comp, r_ntok = self.r_idx, self.r_comp, self.r_ntok
        n, free, preempted = self.n, step.free, 0
        pos = 0
        stopped = False
        while pos < min(m, n):
            end = min(m, n)
            cb = np.cumsum(newblk[pos:end])
            if cb[-1] <= free:
                free -= int(cb[-1])
                pos = end
                break
            k = int(np.searchsorted(cb, free, side="right"))  # first request that does not fit
            if k:
                free -= int(cb[k - 1])
            f = pos + k
            need_f = int(newblk[f])
            while need_f > free:
                v = n - 1
                idx = int(r_idx[v])
                req = reqs[idx]
                req.num_tokens = int(r_ntok[v])
                free += (int(r_comp[v]) + bs - 1) // bs
                preemptions[idx] += 1
                preempted += 1
                n -= 1
                queue.prepend_request(req)
                if v == f:
                    stopped = True
                    break
            if stopped:
                pos = f
                break
            free -= need_f
            pos = f + 1
        self.n = n
        step.free, step.preempted, step.scheduled = free, preempted, pos

    def _preempt_by_priority(self, step: _Step) -> None:
        """The RUNNING pass under vLLM's PRIORITY setting when the pool is short, request by request.

        For each running request in order: its chunk is min(remaining tokens, budget left); while its new blocks do
        not fit, the running request with the largest (priority, arrival) is preempted (the first such in running
        order, as Python's max in vLLM); a victim *ahead* of the request gives back this step's tokens and all its
        blocks; a victim that is the request itself ends the pass. Rewrites `chunk` for the scheduled prefix.
        """
        bs, queue, reqs, prio, preemptions = self.bs, self.queue, self.reqs, self.prio, self.preemptions
        r_idx, r_comp, r_ntok, chunk = self.r_idx, self.r_comp, self.r_ntok, self.chunk
        arrays = (*self.running, chunk)
        n, free, budget = self.n, step.free, self.budget_max
        i = preempted = 0
        while i < n and budget > 0:
            comp = int(r_comp[i])
            c = min(int(r_ntok[i]) - comp, budget)
            need = (comp + c + bs - 1) // bs - (comp + bs - 1) // bs
            itself = False
            while need > free:
                v = max(range(n), key=lambda j: (prio[r_idx[j]], reqs[r_idx[j]].arrival_time))
                idx = int(r_idx[v])
                held = int(r_comp[v]) + (int(chunk[v]) if v < i else 0)
                free += (held + bs - 1) // bs
                if v < i:
                    budget += int(chunk[v])
                req = reqs[idx]
                req.num_tokens = int(r_ntok[v])
                preemptions[idx] += 1
                preempted += 1
                for arr in arrays:
                    arr[v:n - 1] = arr[v + 1:n]
                n -= 1
                queue.prepend_request(req)
                if v == i:
                    itself = True
                    break
                if v < i:
                    i -= 1
            if itself:
                break
            free -= need
            chunk[i] = c
            budget -= c
            i += 1
        self.n = n
        step.free, step.preempted, step.scheduled = free, preempted, i

    def _schedule_waiting(self, step: _Step) -> None:
        """The WAITING pass of `Scheduler.schedule()` ("Next, schedule the WAITING requests"; vLLM runs it only when
        nobody was preempted): admit the policy queue's head (`peek_request`, then `pop_request`) while budget,
        `max_num_seqs` and its KV blocks allow (`allocate_slots` with `full_sequence_must_fit` =
        reserve_full_prompt, and the watermark when others run); with chunked prefill off, also only while its
        whole remaining tokens fit the budget left; stop at the first head that does not fit (no skipping). An
        admitted request gets min(its tokens, budget left) and joins the end of the running list.
        NOTE: _head_fits repeats this loop's first test for fast_forward_decodes; change both together."""
        queue, n, budget, max_seqs = self.queue, self.n, step.budget, self.max_seqs
        if budget <= 0 or n >= max_seqs or not len(queue):
            return  # NOTE: the common step (budget spent, batch full or nobody waiting) unpacks nothing below
        bs, wm_blocks, reserve, chunked = self.bs, self.wm_blocks, self.reserve, self.chunked
        r_idx, r_comp, r_ntok, r_tgt, r_prompt, chunk = (*self.running, self.chunk)
        scheduled, start, free = self.scheduled, step.start, step.free
        admitted = 0
        while budget > 0 and n < max_seqs and len(queue):
            req = queue.peek_request()
            ntok = req.num_tokens
            if not chunked and ntok > budget:
                break  # vLLM: "If chunked_prefill is disabled, we can stop the scheduling here."
            wmb = wm_blocks if n else 0  # vLLM: the watermark applies when others are running
            if reserve and (ntok + bs - 1) // bs + wmb > free:
                break
            c = ntok if ntok < budget else budget
            nb = (c + bs - 1) // bs
            if nb + wmb > free:
                break
            got = queue.pop_request()
            if got is not req:
                raise RuntimeError(
                    f"policy queue {queue!r} popped {got!r} after peeking {req!r}; "
                    "pop_request must return the request peek_request returned"
                )
            idx = req.index
            r_idx[n], r_comp[n], r_ntok[n], r_tgt[n], r_prompt[n] = idx, 0, ntok, req.target_tokens, req.prompt_tokens
            chunk[n] = c
            n += 1
            free -= nb
            budget -= c
            admitted += 1
            if scheduled[idx] != scheduled[idx]:  # NaN: first time scheduled
                scheduled[idx] = start
        self.n = n
        step.free, step.budget, step.admitted = free, budget, admitted
        if admitted:
            step.scheduled = n

    def _head_fits(self, free: int, budget: int, n: int) -> bool:
        """Whether _schedule_waiting would admit the queue's head: the first test of its loop."""
        queue = self.queue
        if budget <= 0 or n >= self.max_seqs or not len(queue):
            return False
        bs = self.bs
        ntok = queue.peek_request().num_tokens
        if not self.chunked and ntok > budget:
            return False
        wmb = self.wm_blocks if n else 0
        if self.reserve and (ntok + bs - 1) // bs + wmb > free:
            return False
        c = ntok if ntok < budget else budget
        return (c + bs - 1) // bs + wmb <= free

    def _bad_step_time(self, dt: float, prefill: int, decodes: int, kv: int, seqs: int) -> RuntimeError:
        return RuntimeError(f"step-time model {self.model!r} returned {dt!r} for prefill_tokens={prefill}, "
                            f"decode_seqs={decodes}, kv_tokens={kv}, num_seqs={seqs}")

    def execute(self, step: _Step) -> None:
        """The model run and its bookkeeping: the step lasts step_time(prefill tokens, decodes, kv tokens, seqs);
        computed tokens advance (`Scheduler._update_after_schedule`), and at the step's end a request whose
        (re)prefill completed or that decoded samples a token (`update_from_output`); its first output token
        sets first_token. An empty step (only under priority victims) takes no time, as vLLM runs no model."""
        s, start, budget_max = step.scheduled, step.start, self.budget_max
        comp = self.r_comp[:s]
        ntok_s = self.r_ntok[:s]
        prompt_s = self.r_prompt[:s]
        decoding = (ntok_s - comp == 1) & (ntok_s > prompt_s)  # one token, after the first output token
        n_dec = int(np.count_nonzero(decoding))
        tokens = budget_max - step.budget
        comp += self.chunk[:s]
        kv = int(comp.sum())
        dt = self.step_time(tokens - n_dec, n_dec, kv, s) if s else 0.0
        if not (dt >= 0 and math.isfinite(dt)):
            raise self._bad_step_time(dt, tokens - n_dec, n_dec, kv, s)
        t = start + dt
        sampled = comp == ntok_s
        first = sampled & (ntok_s == prompt_s)
        if first.any():
            self.first_token[self.r_idx[:s][first]] = t
        ntok_s += sampled
        self.t = t
        self.used = used = self.n_blocks - step.free
        if self.trace is not None:
            self.trace.append([self.step, start, t, tokens, tokens - n_dec, n_dec, s, self.n, len(self.queue), used,
                               kv, step.preempted + step.swapped, step.admitted, 0])
        self.step += 1
        step.decodes, step.kv_tokens = n_dec, kv

    def fast_forward_decodes(self, step: _Step) -> None:
        """After a decode-only step (every running request decoded one token; no admission, no preemption),
        advance the following identical steps together, each step's time still computed one by one, until the
        first finish, the next arrival, a block boundary the free pool cannot cover, or `max_batch_steps`. For a
        clock-dependent policy each represented step ticks the queue and stops the run where admission would
        happen (module docstring). No vLLM counterpart: vLLM would schedule each of these steps the same way."""
        n = self.n
        if not (step.decodes == step.scheduled == n and not step.preempted and not step.admitted
                and not step.swapped and self.max_batch > 1):
            return
        # NOTE: admission stopped for a reason that persists until an arrival or a finish (empty queue, no budget,
        # max_num_seqs, or the head's blocks do not fit a pool that only shrinks), so each following step
        # schedules the same n decodes, until the first finish, the first arrival, or a block boundary the free
        # pool cannot cover (which would preempt). With chunked prefill off, a head longer than the budget left
        # (max_num_batched_tokens - n) stays too long for the same reason.
        r_comp, r_ntok, bs = self.r_comp, self.r_ntok, self.bs
        limit = min(int((self.r_tgt[:n] - r_ntok[:n]).min()) + 1, self.max_batch)  # +1: finish in last step
        if limit <= 1:
            return
        queue, trace, step_time, timed = self.queue, self.trace, self.step_time, self.timed
        t, kv, free, used, k = self.t, step.kv_tokens, step.free, self.used, self.step
        budget = self.budget_max - n
        next_arrival = self.arrivals[self.ai] if self.ai < self.n_req else math.inf
        # steps j >= 1 need a new block for request i when (comp_i + j - 1) % bs == 0
        due = np.bincount((-r_comp[:n]) % bs, minlength=bs).tolist()
        j = 1
        extra = 0
        while j < limit and t < next_arrival:
            nj = due[(j - 1) % bs]
            if extra + nj > free:
                break
            if timed:
                # NOTE: a clock-dependent order may bring a head that fits: tick this step and stop the batch if
                # admission would happen; the main loop then runs the step in full.
                queue.tick(t)
                if self._head_fits(free - extra - nj, budget, n):
                    self.pre_ticked = True
                    break
            extra += nj
            kv += n
            dt = step_time(0, n, kv, n)
            if not (dt >= 0 and math.isfinite(dt)):
                raise self._bad_step_time(dt, 0, n, kv, n)
            if trace is not None:
                trace.append([k, t, t + dt, n, 0, n, n, n, len(queue), used + extra, kv, 0, 0, 0])
            t = t + dt
            k += 1
            j += 1
        self.t, self.step = t, k
        if j > 1:
            r_comp[:n] += j - 1
            r_ntok[:n] += j - 1
            step.free = free - extra
            self.used = used + extra

    def finish(self, step: _Step) -> None:
        """Requests that generated their reference number of tokens finish at the clock (last_token) and free
        their blocks (`update_from_output` → `check_stop` with max_tokens and ignore_eos, `_free_request`); the
        running list closes up, keeping its order."""
        s, n = step.scheduled, self.n
        fin = self.r_ntok[:s] == self.r_tgt[:s]
        n_fin = int(np.count_nonzero(fin))
        if not n_fin:
            return
        self.last_token[self.r_idx[:s][fin]] = self.t
        self.used -= int(((self.r_comp[:s][fin] + (self.bs - 1)) // self.bs).sum())
        keep = np.ones(n, bool)
        keep[:s] = ~fin
        for arr in self.running:
            arr[: n - n_fin] = arr[:n][keep]
        self.n = n - n_fin
        self.done += n_fin
        if self.trace is not None:
            self.trace[-1][-1] = n_fin

    # ------------------------------------------------------------------------------------------------------
    def result(self, config: dict[str, Any]) -> SimResult:
        """The SimResult of a finished run: records, their frame, the step trace and run-level stats. Raises
        RuntimeError if blocks, running or waiting requests are left over (a bookkeeping bug)."""
        queue, reqs, n_req = self.queue, self.reqs, self.n_req
        if self.used != 0 or self.n != 0 or len(queue):
            raise RuntimeError(f"simulation ended with {self.used} KV blocks held, {self.n} running, "
                               f"{len(queue)} waiting")
        scheduled, preemptions, arrivals = self.scheduled, self.preemptions, self.arrivals
        first_l, last_l = self.first_token.tolist(), self.last_token.tolist()
        records = [
            RequestRecord(
                request_id=r.request_id, source=r.source, status=OK, prompt_tokens=r.prompt_tokens,
                ref_output_tokens=r.ref_output_tokens, output_tokens=r.target_tokens - r.prompt_tokens,
                arrival=r.arrival_time, queued=r.arrival_time, scheduled=scheduled[i], first_token=first_l[i],
                last_token=last_l[i], preemptions=preemptions[i],
            )
            for i, r in enumerate(reqs)
        ]
        # The same frame as records_to_frame(records), built by column (asdict per record is the slow part).
        frame = pd.DataFrame({
            "request_id": [r.request_id for r in reqs], "source": [r.source for r in reqs],
            "status": [OK] * n_req, "error": [""] * n_req,
            "prompt_tokens": np.array([r.prompt_tokens for r in reqs], np.int64),
            "ref_output_tokens": np.array([r.ref_output_tokens for r in reqs], np.int64),
            "output_tokens": np.array([r.target_tokens - r.prompt_tokens for r in reqs], np.int64),
            "arrival": np.array(arrivals, float), "queued": np.array(arrivals, float),
            "scheduled": np.array(scheduled, float), "first_token": self.first_token, "last_token": self.last_token,
            "preemptions": np.array(preemptions, np.int64),
        }, columns=COLUMNS) if n_req else records_to_frame(records)
        steps_df = None
        if self.trace is not None:
            steps_df = pd.DataFrame(self.trace, columns=STEP_COLUMNS)
            for col in STEP_COLUMNS:
                if col not in ("start", "end"):
                    steps_df[col] = steps_df[col].astype("int64")
        stats = {
            "num_requests": n_req,
            "num_steps": self.step,
            "num_iterations": self.iterations,
            "num_preemptions": self.total_preemptions,
            "end_time": self.t,
            "max_running": self.max_running,
            "kv_blocks_used_end": self.used,
            "policy_stats": dict(sorted(queue.stats.items())),
        }
        return SimResult(records=records, frame=frame, steps=steps_df, stats=stats, config=config)
