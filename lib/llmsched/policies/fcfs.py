"""First-come-first-served: vLLM's default order, as a policy queue."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from llmsched.policies.base import PolicyQueue, RequestView, T, identity_view


class FCFSQueue(PolicyQueue[T]):
    """Admit in insertion order; preempted and skipped requests go back to the front.

    Identical semantics to vLLM's `FCFSRequestQueue`, so the plug-in running this queue must reproduce
    stock vLLM's behaviour (the overhead benchmark in benchmarks/ checks that it costs nothing measurable).
    """

    name = "fcfs"

    def __init__(self, view: Callable[[T], RequestView] = identity_view) -> None:
        super().__init__(view)
        self._q: deque[T] = deque()

    def add_request(self, request: T) -> None:
        self._q.append(request)

    def pop_request(self) -> T:
        if not self._q:
            raise IndexError("pop from an empty queue")
        return self._q.popleft()

    def peek_request(self) -> T:
        if not self._q:
            raise IndexError("peek from an empty queue")
        return self._q[0]

    def prepend_request(self, request: T) -> None:
        self._q.appendleft(request)

    def prepend_requests(self, requests: Iterable[T]) -> None:
        # NOTE: like vLLM's deque.extendleft, the last of `requests` ends up first. The scheduler relies on
        # this: it collects skipped requests with appendleft, so prepending them restores their order.
        self._q.extendleft(requests)

    def remove_request(self, request: T) -> None:
        self._q.remove(request)

    def remove_requests(self, requests: Iterable[T]) -> None:
        drop = {id(r) for r in requests}  # absent requests are ignored, as in vLLM's FCFSRequestQueue
        self._q = deque(r for r in self._q if id(r) not in drop)

    def __contains__(self, request: object) -> bool:
        return any(r is request for r in self._q)

    def __len__(self) -> int:
        return len(self._q)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._q))
