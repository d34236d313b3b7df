"""EWSJF as a policy queue: prompt-length queues from Refine-and-Prune, dynamic routing with bubble queues,
density-weighted queue scoring, backfill from neighbours, online re-partitioning and (optionally) online
re-tuning. The same object runs in the simulator and, through the plug-in, in vLLM.

Each engine step (`tick(now)`, called by the simulator and the plug-in before admission) the queues' head
requests are scored (llmsched.policies.ewsjf.scoring) and the admission order for the step is fixed: the best
queue first, then its neighbours by distance (i−1, i+1, i−2, ...), each FIFO. The engine pops while its token
budget and sequence slots remain, so "admit from the best queue, backfill from its neighbours while budget
remains" is exactly the pops it makes. A queue head that has waited `max_wait_s` or longer overrides the scores
(oldest first): the starvation bound.

Routing of a request of prompt length L (queues sorted by length range [lo, hi]):
    inside a queue's range → that queue; between Q_i and Q_i+1: Q_i if L ≤ 1.10 · hi_i, else Q_i+1 if
    L ≥ 0.90 · lo_i+1, else a new bubble queue [L, L] (widened by later arrivals routed into it); below the first
    or above the last queue likewise with one neighbour. Bubbles empty for `bubble_ttl` consecutive steps are
    removed (their range then routes to neighbours); at most `max_bubbles` exist, beyond that L goes to the
    nearest queue. With `bubbles=False` no bubble is ever created.

Online re-partitioning (`repartition_every` > 0): every that many arrivals, Refine-and-Prune runs on the last
`window` arrival lengths; all waiting requests are re-routed in arrival order, none lost. A window that cannot
be partitioned (empty) falls back to one queue, every request kept; an initial state without sample or bounds is
one queue.

Online re-tuning (`tuner`, e.g. meta.OnlineTuner): the tuner installs new parameters Θ with `set_params`. The
scoring weights (a_u, b_u, a_f, b_f, w_base) are read at every scoring, so they act from the next admission order
on; α acts only through Refine-and-Prune, so a changed α re-partitions the queues on the arrival window at once
(independently of `repartition_every`; an empty window keeps the current queues).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from llmsched.policies.base import PolicyQueue, RequestView, T, check_preemption_options, identity_view
from llmsched.policies.ewsjf.partition import DEFAULT_MAX_QUEUES, Partition, refine_and_prune
from llmsched.policies.ewsjf.scoring import EWSJFParams, ewsjf_score, prefill_cost, released_score
from llmsched.steptime.models import StepTimeModel, step_time_from_dict
from llmsched.steptime.profiles import load_profile

logger = logging.getLogger(__name__)

LOW_TOL, HIGH_TOL = 0.90, 1.10
DEFAULT_STEPTIME = "cpu-gemma-3-270m"  # C_prefill's step-time profile when none is given


def _step_time_model(steptime: StepTimeModel | Mapping[str, Any] | str | None) -> StepTimeModel:
    """A StepTimeModel from a model, its to_dict() form, a profile name or path, or None (DEFAULT_STEPTIME)."""
    if isinstance(steptime, StepTimeModel):
        return steptime
    if isinstance(steptime, Mapping):
        return step_time_from_dict(steptime)
    if steptime is None or isinstance(steptime, str):
        return load_profile(steptime or DEFAULT_STEPTIME).step_time
    raise ValueError(f"steptime must be a StepTimeModel, its dict, a profile name or None, got {steptime!r}")


class _LQ:
    """One length queue: its range, mean length, FIFO of entries [arrival, seq, view, request, alive]."""

    __slots__ = ("lo", "hi", "mean", "items", "live", "bubble", "empty_rounds")

    def __init__(self, lo: float, hi: float, mean: float, bubble: bool = False) -> None:
        self.lo, self.hi, self.mean, self.bubble = lo, hi, mean, bubble
        self.items: deque[list] = deque()
        self.live = 0
        self.empty_rounds = 0

    def head(self) -> list | None:
        items = self.items
        while items and not items[0][4]:
            items.popleft()
        return items[0] if items else None


class EWSJFQueue(PolicyQueue[T]):
    """EWSJF (paper description). Arguments are JSON-able so the plug-in can pass them from a config.

    bounds / sample     initial queues: explicit [[lo, hi], ...], or lengths to run Refine-and-Prune on
    params              EWSJFParams fields (a_u, b_u, a_f, b_f, w_base, alpha)
    steptime            the step-time model C_prefill is read from (llmsched.steptime): a StepTimeModel, or its
                        to_dict() form (how the plug-in's JSON config carries it); None: DEFAULT_STEPTIME.
                        A profile name (e.g. "a100-80gb_llama-2-13b") is resolved once by `resolve_args`
                        (PolicySpec does this), never inside the queue
    max_queues          Refine-and-Prune's cap; refine=False skips the gap splitting (K-means only)
    bubbles, bubble_ttl, max_bubbles   dynamic routing (module docstring)
    repartition_every, window           online re-partitioning (0 = off)
    max_wait_s          starvation bound: a head waiting this long is served first (None = off)
    tuner               an object with `observe(queue, now)` called every step (online meta-optimisation)
    online_tune_every_s JSON-able alternative: an OnlineTuner re-tuning every that many seconds (seeded `seed`)
    clock               time source when the engine does not call tick() (default time.time, vLLM's clock)
    victim              "newest" (vLLM's victim, the default) or "rank": under KV pressure the running request
                        with the longest prompt (EWSJF's job size: its queues and C_prefill are by prompt length)
                        is preempted first (the preemption hook, llmsched.policies.base)
    """

    name = "ewsjf"
    time_dependent = True  # scores grow with waiting time; max_wait_s; bubbles age by ticks

    @classmethod
    def resolve_args(cls, args: Mapping[str, Any]) -> dict[str, Any]:
        """A profile name (or None) under `steptime` becomes its StepTimeModel, loaded here, once."""
        out = dict(args)
        if "steptime" in out and not isinstance(out["steptime"], StepTimeModel):
            out["steptime"] = _step_time_model(out["steptime"])
        return out

    @classmethod
    def json_args(cls, args: Mapping[str, Any]) -> dict[str, Any]:
        """`steptime` travels as the model's dict (rebuilt by the constructor in the engine process)."""
        out = dict(args)
        if isinstance(out.get("steptime"), StepTimeModel):
            out["steptime"] = out["steptime"].to_dict()
        return out

    def __init__(
        self,
        view: Callable[[T], RequestView] = identity_view,
        bounds: Sequence[Sequence[float]] | None = None,
        sample: Sequence[float] | None = None,
        params: dict[str, float] | EWSJFParams | None = None,
        steptime: StepTimeModel | Mapping[str, Any] | None = None,
        max_queues: int = DEFAULT_MAX_QUEUES,
        refine: bool = True,
        bubbles: bool = True,
        bubble_ttl: int = 50,
        max_bubbles: int = 8,
        repartition_every: int = 0,
        window: int = 2000,
        max_wait_s: float | None = None,
        tuner: Any = None,
        online_tune_every_s: float | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        victim: str = "newest",
    ) -> None:
        super().__init__(view)
        self.victim, self.swap_limit = check_preemption_options(victim, None)
        if tuner is None and online_tune_every_s is not None:
            from llmsched.policies.ewsjf.meta import OnlineTuner

            tuner = OnlineTuner(every_s=online_tune_every_s, seed=seed)
        self.params = params if isinstance(params, EWSJFParams) else EWSJFParams.from_dict(params)
        if max_wait_s is not None and not (max_wait_s > 0 and math.isfinite(max_wait_s)):
            raise ValueError(f"max_wait_s must be None or a positive number, got {max_wait_s!r}")
        if bubble_ttl < 1 or max_bubbles < 0 or repartition_every < 0 or window < 1 or max_queues < 1:
            raise ValueError(f"bad EWSJF settings: bubble_ttl={bubble_ttl}, max_bubbles={max_bubbles}, "
                             f"repartition_every={repartition_every}, window={window}, max_queues={max_queues}")
        self.steptime = _step_time_model(steptime)
        self.cost = prefill_cost(self.steptime)
        self.max_queues, self.refine = max_queues, refine
        self.bubbles, self.bubble_ttl, self.max_bubbles = bubbles, bubble_ttl, max_bubbles
        self.repartition_every, self.max_wait_s, self.tuner = repartition_every, max_wait_s, tuner
        self.clock = clock
        self.window: deque[float] = deque(maxlen=window)
        self._seq = itertools.count()
        self._where: dict[int, tuple[_LQ, list]] = {}
        self._order: list[_LQ] | None = None
        self._ticked = False
        self._now = 0.0
        self._arrivals = 0
        self.admission_waits: deque[tuple[float, float]] = deque(maxlen=10_000)  # (now, wait) per admission
        self._step_pops: dict[int, tuple[float, float]] = {}  # this step's pops; skips are removed again
        self.queues: list[_LQ] = []
        if bounds is not None:
            self._set_queues(Partition.single(), bounds=[(float(lo), float(hi)) for lo, hi in bounds])
        elif sample is not None and len(sample):
            self._set_queues(self._partition(sample))
        else:
            self._set_queues(Partition.single())

    def rank_of(self, request: T) -> float:
        """Prompt tokens: with victim="rank" the running request with the longest prompt is preempted first."""
        return float(self.view(request).prompt_tokens)

    # ------------------------------------------------------------------ partitioning
    def _partition(self, lengths: Sequence[float]) -> Partition:
        try:
            alpha = self.params.alpha if self.refine else math.inf
            return refine_and_prune(lengths, alpha=alpha if math.isfinite(alpha) else 1e300,
                                    max_queues=self.max_queues)
        except ValueError as e:
            logger.warning("EWSJF: cannot partition (%s); using one queue", e)
            self._count("partition_fallback")
            return Partition.single(lengths)

    def _set_queues(self, part: Partition, bounds: list[tuple[float, float]] | None = None) -> None:
        if bounds is not None:
            if not bounds or any(not (0 <= lo <= hi) for lo, hi in bounds):
                raise ValueError(f"bounds must be non-empty [lo, hi] pairs with 0 <= lo <= hi, got {bounds}")
            self.queues = [_LQ(lo, hi, (lo + hi) / 2 if math.isfinite(hi) else lo) for lo, hi in sorted(bounds)]
        else:
            self.queues = [_LQ(s.lo, s.hi, s.mean) for s in part.stats]
        self._order = None

    def repartition(self, lengths: Sequence[float] | None = None) -> None:
        """Rebuild the queues from `lengths` (default: the arrival window) and re-route every waiting request."""
        part = self._partition(list(lengths if lengths is not None else self.window))
        live = sorted((e for _, e in self._where.values()), key=lambda e: (e[0], e[1]))
        self._set_queues(part)
        self._where.clear()
        for e in live:
            lq = self._route(e[2].prompt_tokens)
            lq.items.append(e)
            lq.live += 1
            self._where[id(e[3])] = (lq, e)
        self._count("repartitions")

    def set_params(self, params: EWSJFParams | dict[str, float]) -> None:
        """Install new parameters Θ (the online tuner calls this between engine steps, from `tick`).

        The scoring weights act from the next admission order on (this step's order is recomputed). When α
        changed (and refine=True, the only case in which α matters) the queues are re-partitioned on the arrival
        window, every waiting request re-routed, none lost; with an empty window the current queues stay.
        Counted in stats: "param_updates", and "repartitions" for the α case.
        """
        new = params if isinstance(params, EWSJFParams) else EWSJFParams.from_dict(params)
        old, self.params = self.params, new
        self._order = None
        self._count("param_updates")
        if new.alpha != old.alpha and self.refine and len(self.window):
            self.repartition()

    @property
    def partition_bounds(self) -> list[tuple[float, float]]:
        return [(q.lo, q.hi) for q in self.queues]

    # ------------------------------------------------------------------ routing
    def _route(self, length: float) -> _LQ:
        qs = self.queues
        los = [q.lo for q in qs]
        i = bisect.bisect_right(los, length) - 1  # last queue with lo <= length
        if i >= 0 and length <= qs[i].hi:
            return qs[i]
        below = qs[i] if i >= 0 else None
        above = qs[i + 1] if i + 1 < len(qs) else None
        if below is not None and length <= HIGH_TOL * below.hi:
            return below
        if above is not None and length >= LOW_TOL * above.lo:
            return above
        n_bubbles = sum(q.bubble for q in qs)
        if not self.bubbles or n_bubbles >= self.max_bubbles:
            if below is None or (above is not None and above.lo - length < length - below.hi):
                return above  # type: ignore[return-value]
            return below
        bubble = _LQ(length, length, length, bubble=True)
        qs.insert(i + 1, bubble)
        self._order = None
        self._count("bubbles_created")
        return bubble

    # ------------------------------------------------------------------ the queue interface
    def tick(self, now: float) -> None:
        """Start of an engine step: fix this step's admission order; age and drop empty bubbles."""
        self._ticked = True
        self._now = now
        self._order = None
        # the previous step's pops that were not handed back (skips) were admissions
        self.admission_waits.extend(self._step_pops.values())
        self._step_pops.clear()
        kept = []
        for q in self.queues:
            if q.bubble and q.live == 0:
                q.empty_rounds += 1
                if q.empty_rounds >= self.bubble_ttl:
                    self._count("bubbles_removed")
                    continue
            else:
                q.empty_rounds = 0
            kept.append(q)
        self.queues = kept
        if self.tuner is not None:
            self.tuner.observe(self, now)

    def add_request(self, request: T) -> None:
        if id(request) in self._where:
            raise ValueError(f"request {self.view(request).request_id} is already waiting in {self!r}")
        v = self.view(request)
        self._put(request, v, front=False)
        self._arrivals += 1
        self.window.append(float(v.prompt_tokens))
        if self.repartition_every and self._arrivals % self.repartition_every == 0:
            self.repartition()

    def _put(self, request: T, v: RequestView, front: bool) -> None:
        lq = self._route(v.prompt_tokens)
        if lq.bubble:
            lq.lo, lq.hi = min(lq.lo, v.prompt_tokens), max(lq.hi, v.prompt_tokens)
            lq.mean = (lq.lo + lq.hi) / 2
        e = [v.arrival_time, next(self._seq), v, request, True]
        (lq.items.appendleft if front else lq.items.append)(e)
        lq.live += 1
        self._where[id(request)] = (lq, e)

    def prepend_request(self, request: T) -> None:
        # NOTE: a preempted request goes back to the front of its length queue.
        if id(request) in self._where:
            raise ValueError(f"request {self.view(request).request_id} is already waiting in {self!r}")
        self._put(request, self.view(request), front=True)

    def _score(self, i: int, q: _LQ, head: list, now: float) -> float:
        b = head[2].prompt_tokens
        return ewsjf_score(self.params, len(self.queues), i, q.mean, b, now - head[0], self.cost(b))

    def _compute_order(self) -> list[_LQ]:
        now = self._now if self._ticked else self.clock()
        heads = [(i, q, h) for i, q in enumerate(self.queues) if (h := q.head()) is not None]
        if not heads:
            return []
        if self.max_wait_s is not None:
            starving = [(h[0], h[1], i) for i, q, h in heads if now - h[0] >= self.max_wait_s]
            if starving:
                self._count("starvation_overrides")
                best = min(starving)[2]
                return self._neighbour_order(best)
        best = max(heads, key=lambda t: self._score(t[0], t[1], t[2], now))[0]
        return self._neighbour_order(best)

    def _neighbour_order(self, best: int) -> list[_LQ]:
        qs = self.queues
        order = [qs[best]]
        for d in range(1, len(qs)):
            for j in (best - d, best + d):
                if 0 <= j < len(qs):
                    order.append(qs[j])
        return order

    def _next(self) -> tuple[_LQ, list] | None:
        if self._order is None or not self._ticked:
            self._order = self._compute_order()
        for q in self._order:
            h = q.head()
            if h is not None:
                return q, h
        return None

    def peek_request(self) -> T:
        got = self._next()
        if got is None:
            raise IndexError("peek from an empty queue")
        return got[1][3]

    def pop_request(self) -> T:
        got = self._next()
        if got is None:
            raise IndexError("pop from an empty queue")
        q, e = got
        q.items.popleft()
        q.live -= 1
        e[4] = False
        del self._where[id(e[3])]
        now = self._now if self._ticked else self.clock()
        if self._ticked:
            self._step_pops[id(e[3])] = (now, now - e[0])
        else:
            self.admission_waits.append((now, now - e[0]))
        return e[3]

    def prepend_requests(self, requests: Iterable[T]) -> None:
        """Requests the engine skipped in this step go back to the front of their queues; their pops were not
        admissions (dropped from the feedback window)."""
        for request in list(requests):
            if self._step_pops.pop(id(request), None) is not None:
                self._count("skips")
            self.prepend_request(request)

    def remove_request(self, request: T) -> None:
        got = self._where.pop(id(request), None)
        if got is None:
            raise ValueError(f"request {self.view(request).request_id} is not waiting in {self!r}")
        q, e = got
        e[4] = False
        q.live -= 1

    def __contains__(self, request: object) -> bool:
        return id(request) in self._where

    def __len__(self) -> int:
        return len(self._where)

    def __iter__(self) -> Iterator[T]:
        order = self._order if self._order is not None else self._compute_order()
        seen = [q for q in order] + [q for q in self.queues if q not in order]
        return iter([e[3] for q in seen for e in q.items if e[4]])


class ReleasedEWSJFQueue(EWSJFQueue[T]):
    """The authors' released scheduler: fixed length queues (offline clustering only), head score
    wait × (1 + 0.5 ln(b+1)) × step / (⌊b/step⌋ + 1), admission FIFO from the single best queue (then the next
    best by score, not by neighbourhood); no bubbles, no online re-partitioning, no tuning."""

    name = "ewsjf-released"

    def __init__(self, view: Callable[[T], RequestView] = identity_view,
                 bounds: Sequence[Sequence[float]] | None = None, sample: Sequence[float] | None = None,
                 max_queues: int = DEFAULT_MAX_QUEUES, step: int = 128, max_wait_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(view, bounds=bounds, sample=sample, max_queues=max_queues, bubbles=False,
                         max_wait_s=max_wait_s, clock=clock)
        self.step = step

    def _compute_order(self) -> list[_LQ]:
        now = self._now if self._ticked else self.clock()
        heads = [(q, q.head()) for q in self.queues]
        scored = sorted(((released_score(h[2].prompt_tokens, now - h[0], self.step), -h[1], q)
                         for q, h in heads if h is not None), key=lambda t: (t[0], t[1]), reverse=True)
        return [q for _, _, q in scored]
