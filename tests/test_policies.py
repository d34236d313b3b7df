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


# ---------------------------------------------------------------- starvation guard of score SJF / PARS


def _v(i: int, score: float, t: float | None = None) -> RequestView:
    return RequestView(f"r{i}", float(i if t is None else t), 10, {"score": score})


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_starvation_guard_bounds_the_wait_of_a_long_request(limit):
    q = make_policy("pars", starvation_limit=limit)
    long = _v(0, 1000.0)
    q.add_request(long)
    admitted_before_long = 0
    i = 1
    # a steady stream of short requests: two arrive per admission, so the queue never drains
    while True:
        for _ in range(2):
            q.add_request(_v(i, 1.0))
            i += 1
        r = q.pop_request()
        if r is long:
            break
        admitted_before_long += 1
        assert admitted_before_long <= limit, "long request starved past the bound"
    assert admitted_before_long == limit
    assert q.stats["promoted"] == 1


def test_without_guard_the_long_request_starves():
    q = make_policy("sjf", starvation_limit=None)
    long = _v(0, 1000.0)
    q.add_request(long)
    for i in range(1, 200):
        q.add_request(_v(i, 1.0))
        assert q.pop_request() is not long


def test_guard_bound_with_older_requests_waiting():
    """A request finding W older requests waiting is admitted within K + W admissions."""
    k, w = 4, 5
    q = make_policy("sjf", starvation_limit=k)
    for i in range(w):
        q.add_request(_v(i, 500.0 + i))  # older, long
    target = _v(w, 900.0)
    q.add_request(target)
    n = w + 1
    admitted = 0
    while True:
        q.add_request(_v(n, 1.0))
        n += 1
        if q.pop_request() is target:
            break
        admitted += 1
    assert admitted <= k + w


def test_guard_iter_order_matches_pop_order_and_remove_works():
    q = make_policy("pars", starvation_limit=2)
    views = [_v(i, s) for i, s in enumerate([9.0, 1.0, 8.0, 2.0, 7.0, 3.0])]
    for v in views:
        q.add_request(v)
    q.pop_request()  # admits r1 (score 1); r0 has seen 1 admission
    q.remove_request(views[2])
    expected = list(q)
    got = [q.pop_request() for _ in range(len(q))]
    assert got == expected
    assert views[2] not in got and len(got) == 4
    with pytest.raises(IndexError):
        q.peek_request()


def test_guard_rejects_bad_limits():
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="starvation_limit"):
            make_policy("pars", starvation_limit=bad)
