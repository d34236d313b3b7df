"""Policy queues: ordering, the vLLM RequestQueue protocol, removal, fallbacks, the factory."""

from __future__ import annotations

import math
import random

import pytest

from factories import request_view
from llmsched.policies import (
    POLICIES,
    FCFSQueue,
    OracleSJFQueue,
    PromptLengthSJFQueue,
    RequestView,
    ScoreSJFQueue,
    make_policy,
)


def drain(q) -> list[str]:
    out = []
    while q:
        assert q.peek_request() is q.peek_request()
        out.append(q.pop_request().request_id)
    return out


def test_fcfs_is_insertion_order_with_prepend_to_front():
    q = FCFSQueue()
    rs = [request_view(i, float(i)) for i in range(4)]
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
        q.add_request(request_view(i, float(i), ref_output_tokens=n))
    assert [r.request_id for r in q] == ["r1", "r3", "r2", "r0", "r4"]
    assert len(q) == 5
    assert drain(q) == ["r1", "r3", "r2", "r0", "r4"]
    with pytest.raises(IndexError):
        q.pop_request()
    with pytest.raises(IndexError):
        q.peek_request()


def test_sjf_missing_or_bad_scores_fall_back_to_arrival_order_after_scored():
    q = ScoreSJFQueue(score_key="score")
    q.add_request(request_view(0, 0.0))  # missing
    q.add_request(request_view(1, 1.0, score=math.nan))
    q.add_request(request_view(2, 2.0, score=5.0))
    q.add_request(request_view(3, 3.0, score="not a number"))
    q.add_request(request_view(4, 4.0, score=-1.0))
    q.add_request(request_view(5, 5.0, score=math.inf))
    assert drain(q) == ["r4", "r2", "r0", "r1", "r3", "r5"]
    assert q.stats["missing_score"] == 4


def test_sjf_remove_and_prepend_keep_order_and_length():
    rng = random.Random(0)
    q = ScoreSJFQueue()
    items = [request_view(i, float(i), score=rng.random()) for i in range(200)]
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
    r = request_view(0, 0.0, score=1.0)
    q.add_request(r)
    with pytest.raises(ValueError, match="already waiting"):
        q.add_request(r)


def test_prompt_length_sjf():
    q = PromptLengthSJFQueue()
    for i, p in enumerate([300, 20, 100]):
        q.add_request(request_view(i, float(i), prompt=p))
    assert drain(q) == ["r1", "r2", "r0"]


def test_views_are_computed_once_per_add_not_per_pop():
    calls = []

    def counting_view(item):
        calls.append(item)
        return item

    q = OracleSJFQueue(view=counting_view)
    for i in range(10):
        q.add_request(request_view(i, float(i), ref_output_tokens=10 - i))
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


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_starvation_guard_bounds_the_wait_of_a_long_request(limit):
    q = make_policy("pars", starvation_limit=limit)
    long = request_view(0, score=1000.0)
    q.add_request(long)
    admitted_before_long = 0
    i = 1
    # a steady stream of short requests: two arrive per admission, so the queue never drains
    while True:
        for _ in range(2):
            q.add_request(request_view(i, score=1.0))
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
    long = request_view(0, score=1000.0)
    q.add_request(long)
    for i in range(1, 200):
        q.add_request(request_view(i, score=1.0))
        assert q.pop_request() is not long


def test_guard_bound_with_older_requests_waiting():
    """A request finding W older requests waiting is admitted within K + W admissions."""
    k, w = 4, 5
    q = make_policy("sjf", starvation_limit=k)
    for i in range(w):
        q.add_request(request_view(i, score=500.0 + i))  # older, long
    target = request_view(w, score=900.0)
    q.add_request(target)
    n = w + 1
    admitted = 0
    while True:
        q.add_request(request_view(n, score=1.0))
        n += 1
        if q.pop_request() is target:
            break
        admitted += 1
    assert admitted <= k + w


def test_guard_iter_order_matches_pop_order_and_remove_works():
    q = make_policy("pars", starvation_limit=2)
    views = [request_view(i, score=s) for i, s in enumerate([9.0, 1.0, 8.0, 2.0, 7.0, 3.0])]
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


# ---------------------------------------------------------------------------------------------------------------
# vLLM's calls beyond admission: batch removal from both waiting queues, skips
# ---------------------------------------------------------------------------------------------------------------

def _hinted(i: int, arrival: float) -> RequestView:
    # hints every policy can read: a score, the reference length, a priority
    return request_view(i, arrival, prompt=10 + 37 * i % 200, score=float((7 * i) % 5),
                        ref_output_tokens=(11 * i) % 13, priority=i % 3)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_batch_removal_ignores_requests_the_queue_does_not_hold(name):
    # vLLM's finish_requests passes the same list to `waiting` and `kv_holding_waiting`: each queue must drop what
    # it holds and ignore the rest (vLLM's own queues do), while a single remove of an absent request still raises.
    waiting, kv_holding = make_policy(name), make_policy(name)
    rs = [_hinted(i, float(i)) for i in range(8)]
    for r in rs[:6]:
        waiting.add_request(r)
    for r in rs[6:]:
        kv_holding.add_request(r)
    gone = [rs[1], rs[4], rs[7]]
    for q in (waiting, kv_holding):
        q.remove_requests(gone)
    assert sorted(r.request_id for r in waiting) == ["r0", "r2", "r3", "r5"]
    assert [r.request_id for r in kv_holding] == ["r6"]
    assert rs[0] in waiting and rs[1] not in waiting and rs[6] not in waiting
    with pytest.raises(ValueError):
        waiting.remove_request(rs[1])
    out = []
    while waiting:
        out.append(waiting.pop_request().request_id)
    assert sorted(out) == ["r0", "r2", "r3", "r5"]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_skipped_requests_come_back_in_their_place(name):
    # vLLM's skip_request pops the head and hands it back with prepend_requests at the end of the step: the
    # admission order afterwards is the same as if the skip had never happened.
    def fresh():
        q = make_policy(name)
        for i in range(10):
            q.add_request(rs[i])
        q.tick(20.0)
        return q

    rs = [_hinted(i, float(i)) for i in range(10)]
    plain = fresh()
    expected = [plain.pop_request().request_id for _ in range(10)]
    q = fresh()
    skipped = []
    for _ in range(3):
        skipped.insert(0, q.pop_request())  # vLLM collects skips with appendleft
    q.prepend_requests(skipped)
    q.tick(20.0)
    assert [q.pop_request().request_id for _ in range(10)] == expected


def test_starvation_guard_counts_admissions_not_skips():
    # A long request and a stream of short ones; at every step the engine pops the long request's neighbours and
    # skips one request (pops it, hands it back). Skips must neither count as admissions nor reset the skipped
    # request's own count: the long request is promoted after exactly `limit` real admissions.
    limit = 5
    q = ScoreSJFQueue(starvation_limit=limit)
    long = request_view(0, 0.0, score=1e6)
    q.add_request(long)
    shorts = [request_view(i, float(i), score=1.0) for i in range(1, 40)]
    for r in shorts:
        q.add_request(r)
    admitted = []
    step = 0
    while long not in admitted:
        q.tick(float(step))
        first = q.pop_request()
        if first is long:
            admitted.append(first)
            break
        q.prepend_requests([first])  # skipped: not an admission
        q.tick(float(step) + 0.5)
        admitted.append(q.pop_request())  # the same request, now admitted
        step += 1
        assert step < 100
    assert admitted.index(long) == limit
    assert q.stats["skips"] == limit
    # a skipped starving request stays promoted
    q2 = ScoreSJFQueue(starvation_limit=1)
    a, b, c = request_view(1, 0.0, score=9.0), request_view(2, 1.0, score=1.0), request_view(3, 2.0, score=1.0)
    for r in (a, b, c):
        q2.add_request(r)
    assert q2.pop_request() is b
    q2.tick(1.0)
    got = q2.pop_request()
    assert got is a  # promoted after one admission
    q2.prepend_requests([got])  # the engine could not schedule it yet
    q2.tick(2.0)
    assert q2.pop_request() is a  # still promoted: its count was not reset


def test_missing_score_counts_requests_not_insertions():
    q = ScoreSJFQueue()
    a, b = request_view(1, 0.0), request_view(2, 1.0, score=2.0)
    q.add_request(a)
    q.add_request(b)
    assert q.pop_request() is b
    got = q.pop_request()
    assert got is a
    q.prepend_request(got)  # preempted: re-enters
    q.tick(1.0)
    got = q.pop_request()
    q.prepend_requests([got])  # skipped: re-enters
    q.add_request(request_view(3, 2.0, score=math.nan))
    assert q.stats["missing_score"] == 2
