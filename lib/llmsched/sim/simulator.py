"""A discrete-event simulator of vLLM V1's scheduling loop (vLLM 0.32 `Scheduler.schedule()`).

One iteration is one engine step, as in vLLM:
 1. Requests whose arrival time has come (<= the step's start) enter the policy queue (`add_request`). With
    nothing running or waiting, time jumps to the next arrival.
 2. RUNNING requests, in running order (admission order), each get their remaining prefill chunk or one
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
    the head does not fit (stop; no skipping). With `reserve_full_prompt` (vLLM's
    `scheduler_reserve_full_isl`, default on) the head must fit its whole prompt (+ generated tokens when
    resuming), otherwise its first chunk; the watermark is added when other requests run. An admitted request
    gets min(its tokens, budget left) and joins the end of the running list.
 4. The step lasts `step_time(prefill_tokens, decode_seqs, kv_tokens, num_seqs)` seconds. At its end the
    computed tokens advance; a request whose (re)prefill completes samples a token (its first output token
    the first time), a decoding request samples one; a request that has generated its reference number of
    tokens finishes (replay semantics, vLLM `max_tokens` + `ignore_eos`) and frees its blocks. A reference
    length of 0 generates 1 token, as the serving runner's max_tokens=max(1, output_tokens) does.

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

from llmsched.policies import PolicyQueue, RequestView, make_policy
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

    policy           a policy name (a fresh queue per run, `make_policy(name, view=sim_request_view,
                     **policy_args)`), or a PolicyQueue instance, which must be empty when a run starts; its
                     view must accept SimRequest objects (sim_request_view, or identity_view: a SimRequest
                     has the RequestView attributes)
    max_batch_steps  most decode-only steps advanced together; 1 steps one at a time (same results, slower)
    """

    def __init__(
        self,
        config: SimConfig,
        step_time: StepTimeModel,
        policy: str | PolicyQueue = "fcfs",
        policy_args: Mapping[str, Any] | None = None,
        max_batch_steps: int | None = None,
    ) -> None:
        if not isinstance(config, SimConfig):
            raise ValueError(f"config must be a SimConfig, got {type(config).__name__}")
        if not callable(getattr(step_time, "step_time", None)):
            raise ValueError(f"step_time must be a StepTimeModel (with a step_time method), got {step_time!r}")
        if isinstance(policy, PolicyQueue):
            if policy_args:
                raise ValueError("policy_args apply only when the policy is given by name")
        elif not isinstance(policy, str):
            raise ValueError(f"policy must be a policy name or a PolicyQueue, got {policy!r}")
        else:
            make_policy(policy, view=sim_request_view, **dict(policy_args or {}))  # fail early on bad names
        if max_batch_steps is not None and (
            isinstance(max_batch_steps, bool) or not isinstance(max_batch_steps, int) or max_batch_steps < 1
        ):
            raise ValueError(f"max_batch_steps must be an integer >= 1 or None, got {max_batch_steps!r}")
        self.config = config
        self.step_time = step_time
        self.policy = policy
        self.policy_args = dict(policy_args or {})
        self.max_batch_steps = max_batch_steps

    # ------------------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """JSON-able description of this simulator (config.json beside the results)."""
        policy = self.policy if isinstance(self.policy, str) else getattr(self.policy, "name", "") or type(
            self.policy).__name__
        to_dict = getattr(self.step_time, "to_dict", None)
        return {
            "backend": "sim",
            "sim": self.config.to_dict(),
            "step_time": to_dict() if callable(to_dict) else repr(self.step_time),
            "policy": policy,
            "policy_args": self.policy_args,
        }

    def _queue(self) -> PolicyQueue:
        if isinstance(self.policy, PolicyQueue):
            if len(self.policy):
                raise ValueError(f"the policy queue {self.policy!r} must be empty when a simulation starts")
            return self.policy
        return make_policy(self.policy, view=sim_request_view, **self.policy_args)

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

    def _running_with_priority_victims(self, reqs: list[SimRequest], arrays: tuple[np.ndarray, ...],
                                       chunk: np.ndarray, n: int, free: int, budget: int, prio: list[int],
                                       preemptions: list[int], queue: PolicyQueue) -> tuple[int, int, int, int]:
        """vLLM's running loop under its PRIORITY setting, request by request, when the pool is short.

        For each running request in order: its chunk is min(remaining tokens, budget left); while its new blocks do
        not fit, the running request with the largest (priority, arrival) is preempted (the first such in running
        order, as Python's max in vLLM); a victim *ahead* of the request gives back this step's tokens and all its
        blocks; a victim that is the request itself ends the loop. Mutates the running arrays and `chunk`; returns
        (scheduled prefix length, running count, free blocks, preemptions).
        """
        bs = self.config.block_size
        r_idx, r_comp, r_ntok = arrays[0], arrays[1], arrays[2]
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
                for arr in (*arrays, chunk):
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
        return i, n, free, preempted

    def _head_fits(self, queue: PolicyQueue, free: int, budget: int, n: int) -> bool:
        """Whether the admission loop would admit the queue's head: the first test of that loop in run()."""
        cfg = self.config
        if budget <= 0 or n >= cfg.max_num_seqs or not len(queue):
            return False
        bs = cfg.block_size
        ntok = queue.peek_request().num_tokens
        wmb = cfg.watermark_blocks if n else 0
        if cfg.reserve_full_prompt and (ntok + bs - 1) // bs + wmb > free:
            return False
        c = ntok if ntok < budget else budget
        return (c + bs - 1) // bs + wmb <= free

    # ------------------------------------------------------------------------------------------------------
    def run(self, requests: Iterable[Any], *, trace_steps: bool = False) -> SimResult:
        """Simulate `requests` (llmsched.workload.Request or anything with request_id, prompt_tokens,
        output_tokens, arrival_time, and optionally source and hints) until every one has finished.

        Raises ValueError for requests that could never run (checked before anything is simulated) and
        RuntimeError if a step makes no progress while work remains, or the step-time model returns a
        non-finite or negative duration.
        """
        cfg = self.config
        reqs = self._prepare(requests)
        queue = self._queue()
        n_req = len(reqs)
        bs, n_blocks, max_seqs = cfg.block_size, cfg.usable_blocks, cfg.max_num_seqs
        budget_max = cfg.max_num_batched_tokens
        wm_blocks, reserve = cfg.watermark_blocks, cfg.reserve_full_prompt
        step_time = self.step_time.step_time
        max_batch = self.max_batch_steps or math.inf

        # The running list as parallel arrays, in running order, length n.
        r_idx = np.zeros(max_seqs, np.int64)  # index into reqs
        r_comp = np.zeros(max_seqs, np.int64)  # computed tokens
        r_ntok = np.zeros(max_seqs, np.int64)  # prompt + generated tokens
        r_tgt = np.zeros(max_seqs, np.int64)  # num_tokens at which the request finishes
        r_prompt = np.zeros(max_seqs, np.int64)
        chunk = np.zeros(max_seqs, np.int64)  # tokens scheduled this step
        running_arrays = (r_idx, r_comp, r_ntok, r_tgt, r_prompt)

        scheduled = [math.nan] * n_req
        first_token = np.full(n_req, math.nan)
        last_token = np.full(n_req, math.nan)
        preemptions = [0] * n_req
        arrivals = [r.arrival_time for r in reqs]

        trace: list[list[float]] = [] if trace_steps else None  # type: ignore[assignment]
        timed = bool(getattr(queue, "time_dependent", False))
        by_priority = getattr(queue, "victim", "newest") == "priority"
        if by_priority:
            prio = [queue.priority_of(r.view) for r in reqs]  # type: ignore[attr-defined]
        elif getattr(queue, "victim", "newest") != "newest":
            raise ValueError(f"policy {queue!r} asks for victim rule {queue.victim!r}; the simulator models "
                             "'newest' and 'priority'")
        pre_ticked = False  # the batched decode loop already ticked the step that starts now
        t = 0.0
        n = 0  # running requests
        used = 0  # KV blocks held
        ai = 0  # next arrival
        done = 0
        step = 0
        iterations = 0
        total_preemptions = 0
        max_running = 0

        while done < n_req:
            while ai < n_req and arrivals[ai] <= t:
                queue.add_request(reqs[ai])
                ai += 1
            if n == 0 and not len(queue):
                t = arrivals[ai]  # idle: jump to the next arrival (one exists: done < n_req)
                continue
            iterations += 1
            start = t
            if pre_ticked:
                pre_ticked = False
            else:
                queue.tick(start)
            free = n_blocks - used
            budget = budget_max
            preempted = 0
            s = 0  # scheduled requests: always a prefix of the running list

            # --- 1. RUNNING requests, in order --------------------------------------------------------
            if n:
                comp = r_comp[:n]
                need = r_ntok[:n] - comp
                before = np.cumsum(need) - need  # budget used by the requests ahead
                ch = np.minimum(need, budget_max - before)
                np.maximum(ch, 0, out=ch)
                chunk[:n] = ch
                m = int(np.count_nonzero(ch))  # the budget runs out after the first m (a prefix)
                newblk = (comp[:m] + ch[:m] + (bs - 1)) // bs - (comp[:m] + (bs - 1)) // bs
                total = int(newblk.sum())
                if total <= free:
                    free -= total
                    s = m
                elif by_priority:
                    s, n, free, preempted = self._running_with_priority_victims(
                        reqs, running_arrays, chunk, n, free, budget_max, prio, preemptions, queue)
                else:
                    # NOTE: vLLM allocates request by request and, when the pool is short, preempts
                    # running[-1] until the allocation fits or the victim is the request itself. Victims
                    # always come from behind the request being scheduled, so the requests ahead keep their
                    # allocations and budget: find the first failing request with a cumulative sum, preempt
                    # from the end, continue after it.
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
                    s = pos
                budget -= int(chunk[:s].sum())

            # --- 2. WAITING requests, in the policy's order (only if nobody was preempted) ---------------
            admitted = 0
            if not preempted:
                # NOTE: _head_fits repeats this loop's first test for the batched decode path; change both together
                while budget > 0 and n < max_seqs and len(queue):
                    req = queue.peek_request()
                    ntok = req.num_tokens
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
                    r_idx[n], r_comp[n], r_ntok[n], r_tgt[n], r_prompt[n] = (
                        idx, 0, ntok, req.target_tokens, req.prompt_tokens)
                    chunk[n] = c
                    n += 1
                    free -= nb
                    budget -= c
                    admitted += 1
                    if scheduled[idx] != scheduled[idx]:  # NaN: first time scheduled
                        scheduled[idx] = start
                if admitted:
                    s = n
            total_preemptions += preempted
            max_running = max(max_running, n)

            if s == 0 and not preempted:
                head = queue.peek_request() if len(queue) else None
                raise RuntimeError(
                    f"simulation made no progress at t={start:.6f}s (step {step}): nothing could be scheduled "
                    f"with {n} running, {len(queue)} waiting (head {head!r}), {free} of {n_blocks} KV blocks "
                    f"free, {done} of {n_req} requests done"
                )

            # --- 3. the step -----------------------------------------------------------------------------
            comp = r_comp[:s]
            ntok_s = r_ntok[:s]
            prompt_s = r_prompt[:s]
            decoding = (ntok_s - comp == 1) & (ntok_s > prompt_s)  # one token, after the first output token
            n_dec = int(np.count_nonzero(decoding))
            tokens = budget_max - budget
            comp += chunk[:s]
            kv = int(comp.sum())
            # NOTE: under priority victims a step can preempt every candidate and schedule nothing; vLLM then runs
            # no model (an empty batch), so the step takes no time.
            dt = step_time(tokens - n_dec, n_dec, kv, s) if s else 0.0
            if not (dt >= 0 and math.isfinite(dt)):
                raise RuntimeError(f"step-time model {self.step_time!r} returned {dt!r} for prefill_tokens="
                                   f"{tokens - n_dec}, decode_seqs={n_dec}, kv_tokens={kv}, num_seqs={s}")
            t = start + dt
            sampled = comp == ntok_s
            first = sampled & (ntok_s == prompt_s)
            if first.any():
                first_token[r_idx[:s][first]] = t
            ntok_s += sampled
            used = n_blocks - free
            if trace is not None:
                trace.append([step, start, t, tokens, tokens - n_dec, n_dec, s, n, len(queue), used, kv,
                              preempted, admitted, 0])
            step += 1

            # --- 3b. repeat a decode-only step while nothing can change ------------------------------------
            if n_dec == s == n and not preempted and not admitted and max_batch > 1:
                # NOTE: admission stopped for a reason that persists until an arrival or a finish (empty
                # queue, no budget, max_num_seqs, or the head's blocks do not fit a pool that only shrinks),
                # so each following step schedules the same n decodes, until the first finish, the first
                # arrival, or a block boundary the free pool cannot cover (which would preempt).
                limit = min(int((r_tgt[:n] - r_ntok[:n]).min()) + 1, max_batch)  # +1: finish in last step
                if limit > 1:
                    next_arrival = arrivals[ai] if ai < n_req else math.inf
                    # steps j >= 1 need a new block for request i when (comp_i + j - 1) % bs == 0
                    due = np.bincount((-r_comp[:n]) % bs, minlength=bs).tolist()
                    j = 1
                    extra = 0
                    while j < limit and t < next_arrival:
                        nj = due[(j - 1) % bs]
                        if extra + nj > free:
                            break
                        if timed:
                            # NOTE: a clock-dependent order may bring a head that fits: tick this step and stop
                            # the batch if admission would happen; the main loop then runs the step in full.
                            queue.tick(t)
                            if self._head_fits(queue, free - extra - nj, budget_max - n, n):
                                pre_ticked = True
                                break
                        extra += nj
                        kv += n
                        dt = step_time(0, n, kv, n)
                        if not (dt >= 0 and math.isfinite(dt)):
                            raise RuntimeError(f"step-time model {self.step_time!r} returned {dt!r} for "
                                               f"prefill_tokens=0, decode_seqs={n}, kv_tokens={kv}, num_seqs={n}")
                        if trace is not None:
                            trace.append([step, t, t + dt, n, 0, n, n, n, len(queue), used + extra, kv, 0, 0, 0])
                        t = t + dt
                        step += 1
                        j += 1
                    if j > 1:
                        r_comp[:n] += j - 1
                        r_ntok[:n] += j - 1
                        free -= extra
                        used += extra

            # --- 4. finishes ---------------------------------------------------------------------------
            fin = r_ntok[:s] == r_tgt[:s]
            n_fin = int(np.count_nonzero(fin))
            if n_fin:
                last_token[r_idx[:s][fin]] = t
                used -= int(((r_comp[:s][fin] + (bs - 1)) // bs).sum())
                keep = np.ones(n, bool)
                keep[:s] = ~fin
                for arr in running_arrays:
                    arr[: n - n_fin] = arr[:n][keep]
                n -= n_fin
                done += n_fin
                if trace is not None:
                    trace[-1][-1] = n_fin

        if used != 0 or n != 0 or len(queue):
            raise RuntimeError(f"simulation ended with {used} KV blocks held, {n} running, {len(queue)} waiting")

        first_l, last_l = first_token.tolist(), last_token.tolist()
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
            "scheduled": np.array(scheduled, float), "first_token": first_token, "last_token": last_token,
            "preemptions": np.array(preemptions, np.int64),
        }, columns=COLUMNS) if n_req else records_to_frame(records)
        steps_df = None
        if trace is not None:
            steps_df = pd.DataFrame(trace, columns=STEP_COLUMNS)
            for col in STEP_COLUMNS:
                if col not in ("start", "end"):
                    steps_df[col] = steps_df[col].astype("int64")
        stats = {
            "num_requests": n_req,
            "num_steps": step,
            "num_iterations": iterations,
            "num_preemptions": total_preemptions,
            "end_time": t,
            "max_running": max_running,
            "kv_blocks_used_end": used,
            "policy_stats": dict(sorted(queue.stats.items())),
        }
        return SimResult(records=records, frame=frame, steps=steps_df, stats=stats,
                         config=self.describe())


def simulate(
    requests: Iterable[Any],
    config: SimConfig,
    step_time: StepTimeModel,
    policy: str | PolicyQueue = "fcfs",
    *,
    policy_args: Mapping[str, Any] | None = None,
    trace_steps: bool = False,
    max_batch_steps: int | None = None,
) -> SimResult:
    """One simulation: `Simulator(config, step_time, policy, ...).run(requests, trace_steps=...)`."""
    sim = Simulator(config, step_time, policy, policy_args=policy_args, max_batch_steps=max_batch_steps)
    return sim.run(requests, trace_steps=trace_steps)

