"""Shortest-job-first by a per-request score: oracle SJF, learned-ranker SJF, prompt-length SJF."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator

from llmsched.policies.base import PolicyQueue, RequestView, T, finite_hint, identity_view


class ScoreSJFQueue(PolicyQueue[T]):
    """Admit the waiting request with the lowest score first; ties by arrival time, then insertion order.

    The score is computed once, when the request enters the queue, by `score_of(view)`; lower means a
    shorter expected job. A request whose score is missing, non-numeric or not finite is ordered after every
    scored request, in arrival order among themselves (FCFS fallback), and counted in
    `stats["missing_score"]`; it is never dropped.

    Implementation: a binary heap with lazy deletion, so add/pop are O(log n) and remove is O(1) amortised
    (entries are tombstoned and the heap is rebuilt when more than half of it is dead).
    """

    name = "sjf"

    def __init__(
        self,
        view: Callable[[T], RequestView] = identity_view,
        score_key: str = "score",
    ) -> None:
        super().__init__(view)
        self.score_key = score_key
        self._heap: list[list] = []  # [score, arrival, seq, request, alive]
        self._entry: dict[int, list] = {}  # id(request) -> heap entry
        self._seq = itertools.count()

    def score_of(self, view: RequestView) -> float | None:
        return finite_hint(view, self.score_key)

    def _key(self, request: T) -> tuple[float, float]:
        v = self.view(request)
        score = self.score_of(v)
        if score is None:
            self._count("missing_score")
            score = math.inf
        return score, v.arrival_time

    def add_request(self, request: T) -> None:
        if id(request) in self._entry:
            raise ValueError(f"request {self.view(request).request_id} is already waiting in {self!r}")
        score, arrival = self._key(request)
        entry = [score, arrival, next(self._seq), request, True]
        self._entry[id(request)] = entry
        heapq.heappush(self._heap, entry)

    def _clean_top(self) -> None:
        while self._heap and not self._heap[0][4]:
            heapq.heappop(self._heap)

    def pop_request(self) -> T:
        self._clean_top()
        if not self._heap:
            raise IndexError("pop from an empty queue")
        entry = heapq.heappop(self._heap)
        del self._entry[id(entry[3])]
        return entry[3]

    def peek_request(self) -> T:
        self._clean_top()
        if not self._heap:
            raise IndexError("peek from an empty queue")
        return self._heap[0][3]

    def prepend_request(self, request: T) -> None:
        # NOTE: a score-ordered queue has no front; a preempted or skipped request re-enters at its score.
        self.add_request(request)

    def remove_request(self, request: T) -> None:
        entry = self._entry.pop(id(request), None)
        if entry is None:
            raise ValueError(f"request {self.view(request).request_id} is not waiting in {self!r}")
        entry[4] = False
        if len(self._heap) > 2 * len(self._entry) + 16:
            self._heap = [e for e in self._heap if e[4]]
            heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._entry)

    def __iter__(self) -> Iterator[T]:
        return iter([e[3] for e in sorted(self._entry.values())])


class OracleSJFQueue(ScoreSJFQueue[T]):
    """SJF by the true (reference) output length: the upper bound every predictor is compared with.

    Reads the hint `ref_output_tokens`, which the serving runner and the simulator set from the workload.
    """

    name = "oracle-sjf"

    def __init__(self, view: Callable[[T], RequestView] = identity_view) -> None:
        super().__init__(view, score_key="ref_output_tokens")


class PromptLengthSJFQueue(ScoreSJFQueue[T]):
    """SJF by prompt length (shortest prompt first): a predictor-free heuristic baseline."""

    name = "prompt-sjf"

    def __init__(self, view: Callable[[T], RequestView] = identity_view) -> None:
        super().__init__(view, score_key="")

    def score_of(self, view: RequestView) -> float | None:
        return float(view.prompt_tokens)
