"""LTR's scheduler as its authors ran it (Fu et al., NeurIPS 2024, "Efficient LLM Scheduling by Learning to Rank"),
mapped onto vLLM V1.

The released scheduler (a vLLM 0.4 fork, schedule type "opt" with starvation control "starv200 period10") does,
every engine step:
  1. order *all* requests, waiting and running, by (starving first, then the ranker's score): shortest predicted
     first;
  2. build the batch from the front of that order while the token budget and `max_num_seqs` allow; running
     requests that fall below the cut are paused, and when KV blocks run short the lowest-ranked running requests
     are preempted first;
  3. starvation prevention: a request not scheduled for `starvation_steps` (200) consecutive steps is promoted to
     the front for `quantum_steps` (10) steps of running, then demoted.

Here, as a waiting queue with the preemption hook (llmsched.policies.base, `victim = "rank"`):
  - waiting requests are admitted by score, promoted ones first (by score among themselves); a request that has
    waited `starvation_steps` steps (ticks) since it entered the queue is promoted;
  - running requests are ranked by the same key, so the engine gives token budget in rank order and preempts the
    lowest-ranked running request when KV blocks run short (vLLM's own victim rule then picks it);
  - a request admitted while promoted keeps the top rank for `quantum_steps` steps, so it is neither swapped out nor
    chosen as the KV victim in that time;
  - when no sequence slot is free and the waiting head outranks the lowest-ranked running request, that request is
    preempted (recompute) to make room: one swap per step, each request at most `swap_limit` preemptions deep.
Differences from the fork, all forced by vLLM V1's structure: vLLM V1 has no pause state (a running request holds
its sequence slot), so "below the cut" becomes a swap by recompute, at most one per step and bounded per request
(the fork swaps to CPU memory without a bound); idle steps count from entering the waiting queue (a running request
in vLLM V1 is scheduled every step unless the token budget runs out); the quantum counts steps since admission.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator

from llmsched.policies.base import RequestView, T, identity_view
from llmsched.policies.sjf import ScoreSJFQueue


class LTRReleasedQueue(ScoreSJFQueue[T]):
    """LTR as released: score order with step-based starvation promotion and rank-aware preemption (module
    docstring). Scores are read from the hint `score_key` (lower = shorter, as every score here); a request without
    a score ranks after every scored one."""

    name = "ltr-released"
    time_dependent = True  # promotions depend on the step count: the simulator ticks every step
    DEFAULT_STARVATION_STEPS = 200
    DEFAULT_QUANTUM_STEPS = 10
    DEFAULT_SWAP_LIMIT = 2

    def __init__(
        self,
        view: Callable[[T], RequestView] = identity_view,
        score_key: str = "score",
        starvation_steps: int | None = DEFAULT_STARVATION_STEPS,
        quantum_steps: int = DEFAULT_QUANTUM_STEPS,
        swap_limit: int | None = DEFAULT_SWAP_LIMIT,
    ) -> None:
        super().__init__(view, score_key=score_key, starvation_limit=None, victim="rank", swap_limit=swap_limit)
        if starvation_steps is not None:
            _check_steps("starvation_steps", starvation_steps, 1)
        _check_steps("quantum_steps", quantum_steps, 0)
        self.starvation_steps = starvation_steps
        self.quantum_steps = quantum_steps
        self._steps = 0
        self._since: deque[list] = deque()  # entries in entry order (entry[5] = the step it entered the queue)
        self._promoted: list[list] = []  # heap of promoted entries
        self._quantum: dict[int, int] = {}  # id(request) -> step its top rank ends (admitted while promoted)
        self._quantum_fifo: deque[tuple[int, int]] = deque()  # (end step, id) in admission order, for cleanup

    # ------------------------------------------------------------------ the step clock and promotion
    def tick(self, now: float) -> None:
        super().tick(now)
        self._steps += 1
        steps = self._steps
        qf = self._quantum_fifo
        while qf and qf[0][0] <= steps:
            end, key = qf.popleft()
            if self._quantum.get(key) == end:
                del self._quantum[key]
        if self.starvation_steps is None:
            return
        since, limit = self._since, self.starvation_steps
        while since and (not since[0][4] or steps - since[0][5] >= limit):
            entry = since.popleft()
            if entry[4]:
                heapq.heappush(self._promoted, entry)
                self._count("promoted")

    def _promoted_entry(self, entry: list) -> bool:
        return self.starvation_steps is not None and self._steps - entry[5] >= self.starvation_steps

    def rank_of(self, request: T) -> tuple[int, float]:  # type: ignore[override]
        """(-1 while promoted (waiting and starving, or within its quantum after admission), else 0; score)."""
        entry = self._entry.get(id(request))
        if entry is not None:
            promoted = self._promoted_entry(entry)
        else:
            promoted = self._quantum.get(id(request), -1) > self._steps
        return (-1 if promoted else 0), super().rank_of(request)

    # ------------------------------------------------------------------ the queue
    def add_request(self, request: T) -> None:
        super().add_request(request)
        entry = self._entry[id(request)]
        entry[5] = self._steps
        self._since.append(entry)

    def _restore(self, old: list) -> None:
        """A skipped request comes back with its entry step: promoted again if it was, else in entry order."""
        super()._restore(old)
        entry = self._entry[id(old[3])]
        if self._promoted_entry(entry):
            heapq.heappush(self._promoted, entry)
            return
        since = [e for e in self._since if e is not old]
        i = len(since)
        while i > 0 and since[i - 1][5] > entry[5]:
            i -= 1
        since.insert(i, entry)
        self._since = deque(since)

    def _next(self) -> list | None:
        promoted = self._promoted
        while promoted and not promoted[0][4]:
            heapq.heappop(promoted)
        if promoted:
            return promoted[0]
        return super()._next()

    def pop_request(self) -> T:
        entry = self._next()
        was_promoted = entry is not None and bool(self._promoted) and entry is self._promoted[0]
        request = super().pop_request()
        if was_promoted and self.quantum_steps:
            end = self._steps + self.quantum_steps
            self._quantum[id(request)] = end
            self._quantum_fifo.append((end, id(request)))
        return request

    def _maybe_compact(self) -> None:
        super()._maybe_compact()
        if len(self._since) > 2 * len(self._entry) + 16:
            self._since = deque(e for e in self._since if e[4])
        if len(self._promoted) > 2 * len(self._entry) + 16:
            self._promoted = [e for e in self._promoted if e[4]]
            heapq.heapify(self._promoted)

    def __iter__(self) -> Iterator[T]:
        """Waiting requests in admission order until the next tick: promoted ones by score, then the rest."""
        live = list(self._entry.values())
        chosen = {id(e) for e in self._promoted if e[4]}
        promoted = sorted((e for e in live if id(e) in chosen), key=lambda e: e[:3])
        rest = sorted((e for e in live if id(e) not in chosen), key=lambda e: e[:3])
        return iter([e[3] for e in promoted + rest])


def _check_steps(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
