"""Policy queues: ordering, the vLLM RequestQueue protocol, removal, fallbacks, the factory."""

from __future__ import annotations

import math
import random

import pytest

from llmsched.policies import (
    POLICIES,
    FCFSQueue,
    OracleSJFQueue,
    PromptLengthSJFQueue,
    RequestView,
    ScoreSJFQueue,
    make_policy,
)


def view(i: int, arrival: float, prompt: int = 10, **hints) -> RequestView:
    return RequestView(f"r{i}", arrival, prompt, hints)


def drain(q) -> list[str]:
    out = []
    while q:
        assert q.peek_request() is q.peek_request()
        out.append(q.pop_request().request_id)
    return out


def test_fcfs_is_insertion_order_with_prepend_to_front():
    q = FCFSQueue()
    rs = [view(i, float(i)) for i in range(4)]
    for r in rs:
        q.add_request(r)
    first = q.pop_request()
    q.prepend_request(first)  # a preempted request goes back to the front
    # vLLM collects skipped requests with appendleft and prepends them: the original order comes back
    a, b = q.pop_request(), q.pop_request()
    skipped = []
    for r in (a, b):
        skipped.insert(0, r)
    q.prepend_requests(skipped)
    assert drain(q) == ["r0", "r1", "r2", "r3"]


def test_oracle_sjf_orders_by_reference_length_then_arrival():
    q = OracleSJFQueue()
    lens = [50, 10, 30, 10, 70]
    for i, n in enumerate(lens):
        q.add_request(view(i, float(i), ref_output_tokens=n))
    assert [r.request_id for r in q] == ["r1", "r3", "r2", "r0", "r4"]
    assert len(q) == 5
    assert drain(q) == ["r1", "r3", "r2", "r0", "r4"]
    with pytest.raises(IndexError):
        q.pop_request()
    with pytest.raises(IndexError):
        q.peek_request()


def test_sjf_missing_or_bad_scores_fall_back_to_arrival_order_after_scored():
    q = ScoreSJFQueue(score_key="score")
    q.add_request(view(0, 0.0))  # missing
    q.add_request(view(1, 1.0, score=math.nan))
    q.add_request(view(2, 2.0, score=5.0))
    q.add_request(view(3, 3.0, score="not a number"))
    q.add_request(view(4, 4.0, score=-1.0))
    q.add_request(view(5, 5.0, score=math.inf))
    assert drain(q) == ["r4", "r2", "r0", "r1", "r3", "r5"]
    assert q.stats["missing_score"] == 4


def test_sjf_remove_and_prepend_keep_order_and_length():
    rng = random.Random(0)
    q = ScoreSJFQueue()
    items = [view(i, float(i), score=rng.random()) for i in range(200)]
    for r in items:
        q.add_request(r)
    removed = set(rng.sample(range(200), 120))
    q.remove_requests([items[i] for i in removed])
    q.remove_request(items[next(i for i in range(200) if i not in removed)])
    assert len(q) == 79
    head = q.pop_request()
    q.prepend_request(head)  # re-enters at its score: still the head
    assert q.peek_request() is head
    order = drain(q)
    kept = [r for i, r in enumerate(items) if i not in removed][1:]
    assert order == [r.request_id for r in sorted(kept, key=lambda r: r.hints["score"])]
    with pytest.raises(ValueError, match="not waiting"):
        q.remove_request(items[0])


def test_sjf_rejects_double_add():
    q = ScoreSJFQueue()
    r = view(0, 0.0, score=1.0)
    q.add_request(r)
    with pytest.raises(ValueError, match="already waiting"):
        q.add_request(r)


def test_prompt_length_sjf():
    q = PromptLengthSJFQueue()
    for i, p in enumerate([300, 20, 100]):
        q.add_request(view(i, float(i), prompt=p))
    assert drain(q) == ["r1", "r2", "r0"]


def test_views_are_computed_once_per_add_not_per_pop():
    calls = []

    def counting_view(item):
        calls.append(item)
        return item

    q = OracleSJFQueue(view=counting_view)
    for i in range(10):
        q.add_request(view(i, float(i), ref_output_tokens=10 - i))
    n = len(calls)
    drain(q)
    assert len(calls) == n == 10


def test_factory_builds_every_policy_and_names_valid_ones():
    for name in POLICIES:
        q = make_policy(name)
        assert type(q).name == name
        assert not q and len(q) == 0
    with pytest.raises(ValueError, match="valid policies: .*fcfs.*oracle-sjf"):
        make_policy("lifo")
    with pytest.raises(ValueError, match="bad arguments"):
        make_policy("fcfs", score_key="x")
