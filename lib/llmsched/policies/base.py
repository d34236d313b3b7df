"""The policy interface: a waiting queue.

vLLM V1 keeps waiting requests in a `RequestQueue` and asks it, every engine step, which request to admit
next (`peek_request` / `pop_request`). A policy here is exactly such a queue. It stores the engine's own
request objects (vLLM `Request`s in the plug-in, simulator requests in `llmsched.sim`) and reads them only
through a `RequestView`, so the same queue class and the same code path serve both backends.

When the engine calls each method (vLLM 0.32 `Scheduler`, mirrored by the simulator):
    tick(now)          a scheduling step starts (time-aware policies fix their order for the step)
    add_request        a new request arrives (or a finished streaming chunk re-enters)
    peek_request       the admission loop looks at the next candidate while token budget and slots remain
    pop_request        the candidate is admitted (or skipped: then it comes back via prepend_requests)
    prepend_request    a running request was preempted; it waits again
    prepend_requests   requests skipped during this step (popped, then found not schedulable: a structured-output
                       grammar still compiling, a LoRA slot, a remote KV transfer) are put back, at the end of the
                       step that popped them
    remove_request     one request leaves the queue; raises ValueError if it is not there (as vLLM's queues do)
    remove_requests    requests aborted or finished while waiting (client disconnects, aborts, grammar errors,
                       stopped preempted requests): vLLM passes the *same* list to both of its waiting queues
                       (`waiting` and `kv_holding_waiting`), so requests the queue does not hold are ignored
    __len__/__iter__   statistics and diagnostics; __iter__ yields in admission order
    __contains__       whether the queue holds the request (identity, not equality)
    rank_of            (policies with victim = "rank") a request's rank: the engine orders its running requests by
                       it at the start of every step, so vLLM's victim is the worst-ranked; with `swap_limit` it also
                       swaps a running request out for a better-ranked waiting head (`plan_swap`)

A pop is an admission unless the request comes back through `prepend_requests` in the same step (a skip); queues
whose state counts admissions (the starvation guard, EWSJF's feedback window) undo a skipped pop there.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a policy may know about a request: nothing the engine would not know at arrival time."""

    request_id: str
    arrival_time: float
    prompt_tokens: int
    hints: Mapping[str, Any] = field(default_factory=dict)


def identity_view(item: Any) -> RequestView:
    """View function for items that already are RequestViews (tests, simple simulations)."""
    return item


class PolicyQueue(ABC, Generic[T]):
    """A waiting queue that decides admission order.

    `view` maps an engine request object to a RequestView; it is called once per add/prepend, never
    in peek/pop, so a policy's per-admission cost does not depend on how expensive the view is.
    Subclasses implement the ordering; `stats` counts notable events (e.g. requests without a score).
    """

    name: ClassVar[str] = ""
    # True when the admission order can change with the clock alone (waiting-time terms, time-based starvation
    # bounds, ageing queues): the simulator then calls tick() for every engine step it represents, even when it
    # advances several decode-only steps at once.
    time_dependent: ClassVar[bool] = False
    # The preemption hook. `victim`: which running request the engine preempts when KV blocks run out:
    #   "newest"    vLLM's own choice under its FCFS setting: running[-1], the latest admitted (the default)
    #   "priority"  vLLM's PRIORITY setting: the largest (priority_of(view), arrival) (llmsched.policies.priority)
    #   "rank"      the policy's choice: at the start of every step the engine orders its running requests by
    #               `rank_of` (stable sort, lower = better), so the running pass hands out token budget in rank
    #               order and vLLM's own victim, running[-1], is the worst-ranked running request.
    # `swap_limit` (only with "rank"; None = off): at the start of every step, when no sequence slot is free and
    # the waiting head ranks strictly better than the worst-ranked running request that has been preempted fewer
    # than `swap_limit` times, that request is preempted (by recompute) to make room for the head: at most one
    # such swap per step, and at most `swap_limit` preemptions of any kind before a request is never swapped out
    # again, so no request thrashes (`plan_swap`). Instances may override both (policy options).
    victim: str = "newest"
    swap_limit: int | None = None
    # True for policies that are vLLM's own priority queue: the real engine keeps vLLM's PriorityRequestQueue
    # (scheduling_policy="priority") and receives each request's priority_of(view) (llmsched.policies.priority).
    uses_vllm_priority: ClassVar[bool] = False

    def __init__(self, view: Callable[[T], RequestView] = identity_view) -> None:
        self.view = view
        self.stats: dict[str, int] = {}

    @classmethod
    def resolve_args(cls, args: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments from the JSON-able ones a profile or the plug-in's config gives (e.g. a
        step-time profile name becomes the model object). Called once, when a PolicySpec is made."""
        return dict(args)

    @classmethod
    def json_args(cls, args: Mapping[str, Any]) -> dict[str, Any]:
        """The inverse of resolve_args: arguments that survive JSON (the plug-in's config to the engine)."""
        return dict(args)

    def rank_of(self, request: T) -> Any:
        """The rank of a request for the preemption hook (`victim = "rank"`): lower is better (kept running, admitted
        first); any totally ordered value. Waiting and running requests are compared on the same scale. A rank that
        changes from step to step by itself (ticks, the clock) needs `time_dependent = True`."""
        raise NotImplementedError(f"{type(self).__name__} does not rank requests (victim={self.victim!r})")

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def tick(self, now: float) -> None:
        """Called by the engine at the start of every scheduling step, before admission, with the current
        time on the clock of the requests' arrival_time (the simulator's time; time.time() in vLLM). Policies
        whose order depends on waiting time use it; the default does nothing."""

    @abstractmethod
    def add_request(self, request: T) -> None:
        """A request enters the queue: vLLM's `Scheduler.add_request` for a new request (or a streaming
        request's next chunk); the simulator when the request's arrival time has come. The view is computed here,
        once. Holds afterwards: `request in self`, len grows by one."""

    @abstractmethod
    def pop_request(self) -> T:
        """Remove and return the next request to admit (the one `peek_request` returned). Called by the
        admission loop of `Scheduler.schedule()` when the request fits the step's token budget and KV cache.
        The engine may still hand it back in the same step (`prepend_requests`: a skip). IndexError when empty."""

    @abstractmethod
    def peek_request(self) -> T:
        """The next request to admit, left in place. Called by `Scheduler.schedule()` before each admission,
        while sequence slots and token budget remain; must agree with the next `pop_request`. IndexError when
        empty."""

    @abstractmethod
    def prepend_request(self, request: T) -> None:
        """A running request was preempted (its KV blocks freed; it recomputes when admitted again) and waits
        again: vLLM's `_preempt_request`, the simulator's preemption. Where it ranks is the policy's choice
        (vLLM's FCFS queue puts it first)."""

    def prepend_requests(self, requests: Iterable[T]) -> None:
        """Requests popped in this step that the engine could not schedule after all (vLLM's `skip_request`)
        come back, at the end of that step. Default: `prepend_request` each."""
        for request in requests:
            self.prepend_request(request)

    @abstractmethod
    def remove_request(self, request: T) -> None:
        """Remove one request the queue holds (ValueError if it does not, as vLLM's queues do). Used by
        `remove_requests` and by engines that remove a single waiting request."""

    def remove_requests(self, requests: Iterable[T]) -> None:
        """Remove those of `requests` that this queue holds; the others are ignored (vLLM's contract).
        Called by `Scheduler.finish_requests` (aborts, client disconnects, grammar errors, stopped requests)
        with the same list on both waiting queues."""
        for request in list(requests):
            if request in self:
                self.remove_request(request)

    @abstractmethod
    def __contains__(self, request: object) -> bool:
        """Whether the queue holds this very request object (identity, not equality)."""

    @abstractmethod
    def __len__(self) -> int:
        """Waiting requests held; vLLM reads it for its statistics and to decide whether to admit at all."""

    @abstractmethod
    def __iter__(self) -> Iterator[T]:
        """The waiting requests in admission order (statistics, diagnostics, tests); does not change state."""

    def __bool__(self) -> bool:
        return len(self) > 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(len={len(self)})"


def finite_hint(view: RequestView, key: str) -> float | None:
    """The hint `key` as a finite float, or None when it is missing, non-numeric, NaN or infinite."""
    value = view.hints.get(key) if view.hints else None
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def check_preemption_options(victim: str, swap_limit: int | None) -> tuple[str, int | None]:
    """Validated (victim, swap_limit) policy options; ValueError for values the engines do not know."""
    if victim not in ("newest", "rank"):
        raise ValueError(f"victim must be 'newest' (vLLM's choice) or 'rank' (the policy's), got {victim!r}")
    if swap_limit is not None:
        if isinstance(swap_limit, bool) or not isinstance(swap_limit, int) or swap_limit < 1:
            raise ValueError(f"swap_limit must be None or an integer >= 1, got {swap_limit!r}")
        if victim != "rank":
            raise ValueError("swap_limit needs victim='rank': swaps follow the policy's ranking")
    return victim, swap_limit


def plan_swap(queue: PolicyQueue[T], running: Sequence[T], free_slots: int,
              preemptions_of: Callable[[T], int]) -> int | None:
    """Which running request to swap out for the waiting head at the start of a step, as an index into `running`
    (ordered best rank first, as the engine keeps it under `victim = "rank"`), or None.

    A swap happens only when the policy sets `swap_limit`, no sequence slot is free (`free_slots` <= 0: otherwise the
    head is admitted without one), and the head ranks strictly better than the worst-ranked running request with
    fewer than `swap_limit` preemptions so far (`preemptions_of`: vLLM's `Request.num_preemptions`, the simulator's
    count). The plug-in and the simulator both call this, so their decisions are the same code."""
    limit = queue.swap_limit
    if limit is None or free_slots > 0 or not running or not len(queue):
        return None
    for i in range(len(running) - 1, -1, -1):
        if preemptions_of(running[i]) < limit:
            return i if queue.rank_of(queue.peek_request()) < queue.rank_of(running[i]) else None
    return None
