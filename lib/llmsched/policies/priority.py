"""vLLM's own PRIORITY scheduling as a policy, and PARS as its authors released it (scores mapped to priorities).

PARS's released instructions: score every prompt once, map the score to vLLM's request `priority` (lower is
served first) and run vLLM with `scheduling_policy="priority"`. That differs from the queue-based `pars` policy
(llmsched.policies.sjf.PARSQueue) in two ways:
- preemption: under KV pressure vLLM's priority scheduler preempts the running request with the largest
  (priority, arrival_time), i.e. the one predicted longest, which may be ahead of the request being scheduled
  (its tokens of this step are given back); the `pars` queue leaves vLLM's FCFS choice, the newest running request;
- no starvation guard: a request keeps its priority however long it waits (`pars` promotes a request after
  `starvation_limit` admissions).
Admission order is the same: ascending score, ties by arrival (then request id).

In the real engine these policies run *without* an llmsched queue: the plug-in keeps vLLM's own
`PriorityRequestQueue` (EngineConfig sets `scheduling_policy="priority"`), and the serving runner passes each
request's `priority_of(view)` to vLLM. In the simulator the queue classes below stand in for vLLM's queue and
declare vLLM's victim rule (`victim = "priority"`); tests/test_sim_vllm_scheduler.py holds the simulator to
vLLM's own Scheduler under PRIORITY.

To run PARS as released yourself: `scores_to_priorities(scores)` → `LLM.generate(prompts, params, priority=...)`,
or the field `"priority"` of an OpenAI-API request body, on an engine started with `--scheduling-policy priority`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import ClassVar

from llmsched.policies.base import PolicyQueue, RequestView, T, finite_hint, identity_view

# Priorities are integers in vLLM: score × PRIORITY_SCALE, rounded. Scores closer than 1 / PRIORITY_SCALE tie and
# fall back to arrival order (a ranker's scores are O(1); 1e-3 resolves them far below its ranking error).
PRIORITY_SCALE = 1000.0
# The priority of a request without a usable score: after every scored request, like the SJF queues' fallback.
MISSING_PRIORITY = 2**62


def score_to_priority(score: float | None, scale: float = PRIORITY_SCALE) -> int:
    """vLLM request priority for a ranker score (higher score = longer = later); MISSING_PRIORITY when the score
    is None, NaN or infinite."""
    if score is None or isinstance(score, bool):
        return MISSING_PRIORITY
    x = float(score)
    if not math.isfinite(x):
        return MISSING_PRIORITY
    return max(-MISSING_PRIORITY + 1, min(MISSING_PRIORITY - 1, int(round(x * scale))))


def _checked_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    return float(scale)


def scores_to_priorities(scores: Iterable[float | None], scale: float = PRIORITY_SCALE) -> list[int]:
    """Priorities for `LLM.generate(..., priority=...)` / the server's `priority` field, one per score."""
    scale = _checked_scale(scale)
    return [score_to_priority(s, scale) for s in scores]


class VLLMPriorityQueue(PolicyQueue[T]):
    """vLLM's PriorityRequestQueue: admit by (priority, arrival_time, request_id); a preempted or skipped request
    re-enters by its priority. The priority of a request is the integer hint `priority_key` (vLLM's default 0 when
    absent). Victim under KV pressure (`victim = "priority"`): the running request with the largest
    (priority, arrival_time), as vLLM's Scheduler picks it."""

    name = "vllm-priority"
    victim = "priority"
    # the real engine runs vLLM's own queue with scheduling_policy="priority"; the runner passes priority_of()
    uses_vllm_priority: ClassVar[bool] = True

    def __init__(self, view: Callable[[T], RequestView] = identity_view, priority_key: str = "priority") -> None:
        super().__init__(view)
        self.priority_key = priority_key
        self._heap: list[list] = []  # [priority, arrival, request_id, seq, request, alive]
        self._entry: dict[int, list] = {}
        self._seq = itertools.count()

    def priority_of(self, view: RequestView) -> int:
        x = finite_hint(view, self.priority_key)
        return 0 if x is None else int(x)

    def add_request(self, request: T) -> None:
        if id(request) in self._entry:
            raise ValueError(f"request {self.view(request).request_id} is already waiting in {self!r}")
        v = self.view(request)
        entry = [self.priority_of(v), v.arrival_time, v.request_id, next(self._seq), request, True]
        self._entry[id(request)] = entry
        heapq.heappush(self._heap, entry)

    def _top(self) -> list | None:
        heap = self._heap
        while heap and not heap[0][5]:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def peek_request(self) -> T:
        top = self._top()
        if top is None:
            raise IndexError("peek from an empty queue")
        return top[4]

    def pop_request(self) -> T:
        top = self._top()
        if top is None:
            raise IndexError("pop from an empty queue")
        heapq.heappop(self._heap)
        del self._entry[id(top[4])]
        return top[4]

    def prepend_request(self, request: T) -> None:
        # NOTE: like vLLM's PriorityRequestQueue, there is no front: the request re-enters by its priority.
        self.add_request(request)

    def remove_request(self, request: T) -> None:
        entry = self._entry.pop(id(request), None)
        if entry is None:
            raise ValueError(f"request {self.view(request).request_id} is not waiting in {self!r}")
        entry[5] = False
        if len(self._heap) > 2 * len(self._entry) + 16:
            self._heap = [e for e in self._heap if e[5]]
            heapq.heapify(self._heap)

    def __contains__(self, request: object) -> bool:
        return id(request) in self._entry

    def __len__(self) -> int:
        return len(self._entry)

    def __iter__(self) -> Iterator[T]:
        return iter([e[4] for e in sorted(self._entry.values(), key=lambda e: e[:4])])


class PARSReleasedQueue(VLLMPriorityQueue[T]):
    """PARS as released: vLLM's priority scheduler with priority = round(score × scale) of the ranker score hint
    `score_key` (module docstring); requests without a usable score get MISSING_PRIORITY (served last)."""

    name = "pars-released"

    def __init__(self, view: Callable[[T], RequestView] = identity_view, score_key: str = "score",
                 scale: float = PRIORITY_SCALE) -> None:
        super().__init__(view, priority_key="")
        self.score_key, self.scale = score_key, _checked_scale(scale)

    def priority_of(self, view: RequestView) -> int:
        return score_to_priority(finite_hint(view, self.score_key), self.scale)
