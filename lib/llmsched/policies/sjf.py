"""Shortest-job-first by a per-request score: oracle SJF, learned-ranker SJF, prompt-length SJF."""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from llmsched.policies.base import PolicyQueue, RequestView, T, check_preemption_options, finite_hint, identity_view


class ScoreSJFQueue(PolicyQueue[T]):
    """Admit the waiting request with the lowest score first; ties by arrival time, then insertion order.

    The score is computed once, when the request enters the queue, by `score_of(view)`; lower means a
    shorter expected job. A request whose score is missing, non-numeric or not finite is ordered after every
    scored request, in arrival order among themselves (FCFS fallback), and counted once per request in
    `stats["missing_score"]` (re-entries after a preemption or a skip do not count again); it is never dropped.

    Admissions: a pop is an admission unless the engine hands the request back through `prepend_requests` in the
    same step (vLLM's `skip_request`: the request was popped but could not be scheduled yet). Such a skipped
    request returns with its original place (score, arrival, insertion order) and its admission count, and its
    pop is not counted (`stats["skips"]`).

    Starvation guard (`starvation_limit=K`, off when None): a request that has seen K admissions since it
    entered the queue is promoted; promoted requests are admitted before all others, oldest entry first.
    Bound: a request entering the queue when W requests are already waiting is admitted within K + W
    admissions; of those, at most K are requests that entered after it (FCFS would admit it after exactly the
    W older ones it finds waiting, so the guard costs it at most K admissions over FCFS). Proof sketch: after K
    admissions it is promoted, and from then on only promoted requests that entered before it go first. Not
    counted: admissions made while the engine itself skips the request (it is popped and handed back, so the
    policy did choose it). Within one step, pops that are later handed back count until they come back, which
    can only promote a request earlier. A preempted request re-enters the queue and its count restarts.
    Counted in `stats["promoted"]`.

    Preemption (`victim`, `swap_limit`: the policy interface's preemption hook, llmsched.policies.base): with
    `victim="rank"` the engine keeps running requests in score order and preempts the highest-scored (longest
    predicted) one when KV blocks run out, instead of vLLM's newest; `swap_limit=k` also swaps a running request
    out for a waiting head with a lower score, each request at most k preemptions deep. Both off by default.

    Implementation: a binary heap with lazy deletion, so add/pop are O(log n) and remove is O(1) amortised
    (entries are tombstoned and the heap is rebuilt when more than half of it is dead); the guard adds a FIFO
    of entries in entry order whose head is the only candidate for promotion, so it costs O(1) per admission.
    """

    name = "sjf"

    def __init__(
        self,
        view: Callable[[T], RequestView] = identity_view,
        score_key: str = "score",
        starvation_limit: int | None = None,
        victim: str = "newest",
        swap_limit: int | None = None,
    ) -> None:
        super().__init__(view)
        self.victim, self.swap_limit = check_preemption_options(victim, swap_limit)
        if starvation_limit is not None and (isinstance(starvation_limit, bool) or int(starvation_limit) < 1
                                             or int(starvation_limit) != starvation_limit):
            raise ValueError(f"starvation_limit must be None or an integer >= 1, got {starvation_limit!r}")
        self.score_key = score_key
        self.starvation_limit = None if starvation_limit is None else int(starvation_limit)
        self._heap: list[list] = []  # [score, arrival, seq, request, alive, admissions at entry]
        self._entry: dict[int, list] = {}  # id(request) -> heap entry
        self._fifo: deque[list] = deque()  # entries in entry order (only with a starvation limit)
        self._seq = itertools.count()
        self._admitted = 0
        self._popped: dict[int, tuple[list, bool]] = {}  # id(request) -> (entry, promoted), pops since tick()
        self._missing: set[str] = set()  # request ids counted in stats["missing_score"]

    def score_of(self, view: RequestView) -> float | None:
        return finite_hint(view, self.score_key)

    def rank_of(self, request: T) -> float:
        """The score (missing: +inf, after every scored request): the running request with the highest is the victim."""
        score = self.score_of(self.view(request))
        return math.inf if score is None else score

    def _key(self, request: T) -> tuple[float, float]:
        v = self.view(request)
        score = self.score_of(v)
        if score is None:
            if v.request_id not in self._missing:
                self._missing.add(v.request_id)
                self._count("missing_score")
            score = math.inf
        return score, v.arrival_time

    def tick(self, now: float) -> None:
        # Requests popped in the previous step were admitted (skips came back through prepend_requests).
        self._popped.clear()

    def add_request(self, request: T) -> None:
        if id(request) in self._entry:
            raise ValueError(f"request {self.view(request).request_id} is already waiting in {self!r}")
        score, arrival = self._key(request)
        entry = [score, arrival, next(self._seq), request, True, self._admitted]
        self._entry[id(request)] = entry
        heapq.heappush(self._heap, entry)
        if self.starvation_limit is not None:
            self._fifo.append(entry)

    def _restore(self, old: list) -> None:
        """Put back a request popped in this step as if it had never been popped (a skip).

        The returning entry keeps its seq, so its tombstone (still in the heap or the FIFO until lazily dropped)
        is removed first: seqs stay unique and entries never compare beyond it. O(n), and skips are rare."""
        self._heap = [e for e in self._heap if e is not old]
        heapq.heapify(self._heap)
        entry = [*old[:4], True, old[5]]
        self._entry[id(entry[3])] = entry
        heapq.heappush(self._heap, entry)
        if self.starvation_limit is not None:
            # NOTE: the FIFO is in insertion order (seq); the returning entry goes back to its place.
            fifo = deque(e for e in self._fifo if e is not old)
            i = len(fifo)
            while i > 0 and fifo[i - 1][2] > entry[2]:
                i -= 1
            fifo.insert(i, entry)
            self._fifo = fifo

    def _next(self) -> list | None:
        """The entry to admit next: the oldest starving one if any, else the heap's top; None when empty."""
        fifo = self._fifo
        if self.starvation_limit is not None:
            while fifo and not fifo[0][4]:
                fifo.popleft()
            if fifo and self._admitted - fifo[0][5] >= self.starvation_limit:
                return fifo[0]
        self._clean_heap_top()
        return self._heap[0] if self._heap else None

    def _clean_heap_top(self) -> None:
        heap = self._heap
        while heap and not heap[0][4]:
            heapq.heappop(heap)

    def pop_request(self) -> T:
        entry = self._next()
        if entry is None:
            raise IndexError("pop from an empty queue")
        promoted = False
        if self._fifo and entry is self._fifo[0]:
            self._fifo.popleft()
            if self._admitted - entry[5] >= self.starvation_limit:
                self._clean_heap_top()
                if entry is not self._heap[0]:
                    promoted = True
                    self._count("promoted")  # admitted ahead of a lower score
        entry[4] = False  # tombstone: the heap (or the FIFO) drops it when it reaches the top
        del self._entry[id(entry[3])]
        self._admitted += 1
        self._popped[id(entry[3])] = (entry, promoted)
        self._maybe_compact()
        return entry[3]

    def peek_request(self) -> T:
        entry = self._next()
        if entry is None:
            raise IndexError("peek from an empty queue")
        return entry[3]

    def prepend_request(self, request: T) -> None:
        # NOTE: a score-ordered queue has no front; a preempted request re-enters at its score, counting anew.
        self.add_request(request)

    def prepend_requests(self, requests: Iterable[T]) -> None:
        """Requests the engine skipped in this step: those popped since the last tick() come back with their
        place and admission count, and their pops are not admissions; any other request is added."""
        for request in list(requests):
            got = self._popped.pop(id(request), None)
            if got is None or id(request) in self._entry:
                self.add_request(request)
                continue
            old, promoted = got
            self._admitted -= 1
            self._count("skips")
            if promoted:
                self.stats["promoted"] -= 1
            self._restore(old)

    def remove_request(self, request: T) -> None:
        entry = self._entry.pop(id(request), None)
        if entry is None:
            raise ValueError(f"request {self.view(request).request_id} is not waiting in {self!r}")
        entry[4] = False
        self._maybe_compact()

    def __contains__(self, request: object) -> bool:
        return id(request) in self._entry

    def _maybe_compact(self) -> None:
        if len(self._heap) > 2 * len(self._entry) + 16:
            self._heap = [e for e in self._heap if e[4]]
            heapq.heapify(self._heap)
        if len(self._fifo) > 2 * len(self._entry) + 16:
            self._fifo = deque(e for e in self._fifo if e[4])

    def __len__(self) -> int:
        return len(self._entry)

    def __iter__(self) -> Iterator[T]:
        """Waiting requests in admission order if nothing else arrives (the guard's promotions included)."""
        if self.starvation_limit is None:
            return iter([e[3] for e in sorted(self._entry.values(), key=lambda e: e[:3])])
        order: list[T] = []
        heap = sorted(self._entry.values(), key=lambda e: e[:3])
        fifo = [e for e in self._fifo if e[4]]
        taken: set[int] = set()
        admitted, h, f = self._admitted, 0, 0
        while len(order) < len(self._entry):
            while f < len(fifo) and id(fifo[f]) in taken:
                f += 1
            if f < len(fifo) and admitted - fifo[f][5] >= self.starvation_limit:
                entry = fifo[f]
            else:
                while id(heap[h]) in taken:
                    h += 1
                entry = heap[h]
            taken.add(id(entry))
            order.append(entry[3])
            admitted += 1
        return iter(order)


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


class PARSQueue(ScoreSJFQueue[T]):
    """PARS: SJF by a learned ranker's score (hint `score`, set by llmsched.predictors.score_requests), with the
    starvation guard on by default (a request is promoted after `starvation_limit` admissions; see
    ScoreSJFQueue for the bound). `starvation_limit=None` gives plain ranker SJF as in the paper.
    """

    name = "pars"
    DEFAULT_STARVATION_LIMIT = 1000

    def __init__(
        self,
        view: Callable[[T], RequestView] = identity_view,
        score_key: str = "score",
        starvation_limit: int | None = DEFAULT_STARVATION_LIMIT,
        victim: str = "newest",
        swap_limit: int | None = None,
    ) -> None:
        super().__init__(view, score_key=score_key, starvation_limit=starvation_limit, victim=victim,
                         swap_limit=swap_limit)
