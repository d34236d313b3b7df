"""The policy interface's preemption hook (llmsched.policies.base: `victim = "rank"`, `rank_of`, `swap_limit`,
`plan_swap`) and LTR's scheduler as released (llmsched.policies.ltr), on constructed states and in the simulator.

The plug-in's side (vLLM's own Scheduler ordering its running list and swapping) is held to the simulator in
tests/test_sim_vllm_scheduler.py; aborts, finishes and preemptions under these policies in tests/test_vllm_aborts.py.
"""

from __future__ import annotations

import math

import pytest

from factories import TIMED_STEP, random_workload
from llmsched.policies import PolicySpec, RequestView, make_policy, plan_swap
from llmsched.sim import SimConfig, simulate


def view(rid: str, score: float | None, prompt: int = 10, arrival: float = 0.0) -> RequestView:
    return RequestView(rid, arrival, prompt, {} if score is None else {"score": score})


def no_preemptions(_: RequestView) -> int:
    return 0


# --- plan_swap ------------------------------------------------------------------------------------------------------

def swapping_queue(waiting_scores: list[float], swap_limit: int | None = 2):
    q = make_policy("sjf", victim="rank", swap_limit=swap_limit)
    for i, s in enumerate(waiting_scores):
        q.add_request(view(f"w{i}", s))
    return q


def test_plan_swap_takes_the_worst_running_request_for_a_better_head() -> None:
    q = swapping_queue([2.0, 9.0])
    running = [view("r0", 1.0), view("r1", 3.0), view("r2", 5.0)]  # best first, as the engine keeps them
    assert plan_swap(q, running, 0, no_preemptions) == 2


def test_plan_swap_needs_a_strictly_better_head_and_no_free_slot() -> None:
    running = [view("r0", 1.0), view("r1", 3.0)]
    assert plan_swap(swapping_queue([3.0]), running, 0, no_preemptions) is None  # a tie does not swap
    assert plan_swap(swapping_queue([0.5]), running, 1, no_preemptions) is None  # a free slot admits it anyway
    assert plan_swap(swapping_queue([]), running, 0, no_preemptions) is None
    assert plan_swap(swapping_queue([0.5], swap_limit=None), running, 0, no_preemptions) is None


def test_plan_swap_skips_requests_at_the_preemption_bound() -> None:
    q = swapping_queue([2.5])
    running = [view("r0", 1.0), view("r1", 3.0), view("r2", 5.0)]
    counts = {"r0": 0, "r1": 0, "r2": 2}
    assert plan_swap(q, running, 0, lambda r: counts[r.request_id]) == 1  # r2 was preempted twice: r1 instead
    counts["r1"] = 2
    assert plan_swap(q, running, 0, lambda r: counts[r.request_id]) is None  # r0 ranks better than the head


def test_rank_of_a_score_queue_puts_missing_scores_last() -> None:
    q = make_policy("pars", victim="rank")
    assert q.rank_of(view("a", 0.3)) == 0.3
    assert q.rank_of(view("b", None)) == math.inf
    assert make_policy("ewsjf", victim="rank").rank_of(view("c", 0.3, prompt=77)) == 77.0


@pytest.mark.parametrize("name, args", [
    ("sjf", {"victim": "priority"}),  # vLLM's priority victims need vLLM's priority queue
    ("sjf", {"victim": "oldest"}),
    ("pars", {"victim": "rank", "swap_limit": 0}),
    ("pars", {"victim": "rank", "swap_limit": 1.5}),
    ("pars", {"swap_limit": 2}),  # swaps follow a ranking
    ("ewsjf", {"victim": "bogus"}),
    ("ltr-released", {"starvation_steps": 0}),
    ("ltr-released", {"quantum_steps": -1}),
    ("ltr-released", {"swap_limit": 0}),
])
def test_bad_preemption_options_are_rejected(name: str, args: dict) -> None:
    with pytest.raises(ValueError):
        PolicySpec(name, args).build()


def test_the_base_queue_does_not_rank() -> None:
    with pytest.raises(NotImplementedError):
        make_policy("fcfs").rank_of(view("a", 1.0))


# --- LTR as released --------------------------------------------------------------------------------------------

def ltr(starvation_steps: int = 3, quantum_steps: int = 2, swap_limit: int | None = 2):
    return make_policy("ltr-released", starvation_steps=starvation_steps, quantum_steps=quantum_steps,
                       swap_limit=swap_limit)


def test_ltr_promotes_a_request_after_its_idle_steps_and_orders_promoted_by_score() -> None:
    q = ltr(starvation_steps=3)
    for rid, s in (("long", 9.0), ("longer", 12.0)):
        q.add_request(view(rid, s))
    q.tick(0.0)
    for i in range(2):
        q.add_request(view(f"s{i}", 1.0 + i))
    assert [r.request_id for r in q] == ["s0", "s1", "long", "longer"]
    q.tick(0.0)
    assert q.stats == {}
    q.tick(0.0)  # long and longer have now waited 3 steps; s0, s1 only 2
    assert q.stats["promoted"] == 2
    assert [r.request_id for r in q] == ["long", "longer", "s0", "s1"]
    assert q.rank_of(q.peek_request()) == (-1, 9.0)
    popped = [q.pop_request().request_id for _ in range(4)]
    assert popped == ["long", "longer", "s0", "s1"] and len(q) == 0


def test_ltr_quantum_protects_a_promoted_admission_from_swaps() -> None:
    q = ltr(starvation_steps=2, quantum_steps=2)
    starving = view("starving", 9.0)
    q.add_request(starving)
    q.tick(0.0)
    q.tick(0.0)
    assert q.pop_request() is starving  # admitted while promoted
    q.add_request(view("short", 1.0))
    assert q.rank_of(starving) == (-1, 9.0)
    assert plan_swap(q, [starving], 0, no_preemptions) is None  # outranks the short head for its quantum
    q.tick(0.0)
    assert plan_swap(q, [starving], 0, no_preemptions) is None
    q.tick(0.0)  # the quantum is over: an ordinary long request again
    assert q.rank_of(starving) == (0, 9.0)
    assert plan_swap(q, [starving], 0, no_preemptions) == 0


def test_ltr_starvation_bound_under_a_stream_of_shorter_requests() -> None:
    """Each step one shorter request arrives and one request is admitted: the long one is admitted exactly when it
    has waited starvation_steps steps, and a swap right after cannot take it during its quantum."""
    limit = 7
    q = ltr(starvation_steps=limit, quantum_steps=3)
    long = view("long", 100.0)
    q.add_request(long)
    admitted_at = None
    for step in range(1, 3 * limit):
        q.tick(float(step))
        q.add_request(view(f"s{step}", 1.0))
        got = q.pop_request()
        if got is long:
            admitted_at = step
            break
    assert admitted_at == limit
    q.add_request(view("short", 0.5))
    running = sorted([view("other", 2.0), long], key=q.rank_of)  # as the engine orders them
    assert [r.request_id for r in running] == ["long", "other"]
    assert plan_swap(q, running, 0, no_preemptions) == 1  # the unprotected one goes


def test_ltr_skip_keeps_promotion_and_nothing_is_lost() -> None:
    q = ltr(starvation_steps=2)
    a, b = view("a", 5.0), view("b", 1.0)
    q.add_request(a)
    q.tick(0.0)
    q.add_request(b)
    q.tick(0.0)  # a promoted, b not yet
    assert q.pop_request() is a
    q.prepend_requests([a])  # a skip in the same step: a comes back promoted
    assert q.stats["skips"] == 1 and q.peek_request() is a and q.rank_of(a) == (-1, 5.0)
    q.remove_requests([a, view("unknown", 0.0)])  # an abort; requests the queue does not hold are ignored
    assert list(q) == [b] and a not in q
    q.prepend_request(a)  # preempted later: it re-enters and its idle count restarts
    assert q.rank_of(a) == (0, 5.0) and [r.request_id for r in q] == ["b", "a"]


# --- in the simulator --------------------------------------------------------------------------------------------

FEW_SLOTS = SimConfig(num_blocks=2000, block_size=8, max_num_seqs=3, max_num_batched_tokens=128, max_model_len=512)
TIGHT_KV = SimConfig(num_blocks=41, block_size=8, max_num_seqs=16, max_num_batched_tokens=128, max_model_len=512)


@pytest.mark.parametrize("spec", [
    ("pars", {"victim": "rank", "swap_limit": 1}),
    ("pars", {"victim": "rank", "swap_limit": 3}),
    ("ltr-released", {"starvation_steps": 20, "quantum_steps": 2, "swap_limit": 2}),
])
def test_swaps_lose_no_request_and_respect_the_bound(spec) -> None:
    reqs = random_workload(5, n=120, rate=200.0, scored=True)
    res = simulate(reqs, FEW_SLOTS, TIMED_STEP, PolicySpec.parse(spec))
    frame = res.frame
    assert len(frame) == len(reqs) and frame.request_id.is_unique and (frame.status == "ok").all()
    assert (frame.output_tokens == [max(1, r.output_tokens) for r in reqs]).all()
    swaps = res.stats["policy_stats"].get("swaps", 0)
    assert swaps > 0 and swaps == res.stats["num_preemptions"]  # a roomy KV pool: every preemption is a swap
    assert frame.preemptions.max() <= PolicySpec.parse(spec).args["swap_limit"]


def test_rank_victims_protect_short_requests_under_kv_pressure() -> None:
    """With the same admission order, preempting the longest-predicted running request instead of the newest
    moves preemptions onto requests with higher scores."""
    reqs = random_workload(7, n=200, rate=300.0, scored=True)
    score = {r.request_id: r.hints["score"] for r in reqs}

    def victims_mean_score(victim: str) -> float:
        frame = simulate(reqs, TIGHT_KV, TIMED_STEP, PolicySpec("pars", {"victim": victim})).frame
        hit = frame[frame.preemptions > 0]
        assert len(hit) > 0
        return float((hit.request_id.map(score) * hit.preemptions).sum() / hit.preemptions.sum())

    assert victims_mean_score("rank") > victims_mean_score("newest")


# --- the KV sweep's metrics and settings (llmsched.experiments.preemption) ------------------------------------

def test_preemption_metrics_count_the_recomputed_tokens() -> None:
    from llmsched.experiments.preemption import preemption_metrics
    from llmsched.sim import Simulator

    reqs = random_workload(7, n=120, rate=300.0, scored=True)
    for cfg, preempts in ((FEW_SLOTS, False), (TIGHT_KV, True)):
        res = Simulator(cfg, TIMED_STEP, PolicySpec("pars", {"victim": "rank"})).run(reqs, trace_steps=True)
        m = preemption_metrics(res, cfg)
        assert (m["preemptions"] > 0) == preempts and m["swaps"] == 0
        assert (m["recomputed_tokens"] > 0) == preempts and (m["recomputed_share"] > 0) == preempts
        assert m["recomputed_tokens"] >= 0 and m["e2e_mean"] > 0
    with pytest.raises(ValueError, match="step trace"):
        preemption_metrics(Simulator(FEW_SLOTS, TIMED_STEP, "fcfs").run(reqs), FEW_SLOTS)


@pytest.mark.parametrize("bad", [{"pars_kv_fractions": [0.0]}, {"pars_kv_fractions": [1.5]},
                                 {"pars_kv_fractions": [0.5], "pars_kv_seeds": 1}, {"pars_kv_n": 0}])
def test_kv_sweep_settings_are_checked(bad: dict) -> None:
    from llmsched.experiments.settings import PARSSettings

    with pytest.raises(ValueError):
        PARSSettings.from_params({"profile": "t", "model": "tiny", "seed": 0, **bad})


@pytest.mark.parametrize("spec", [("pars", {"victim": "rank", "swap_limit": 2}), ("ewsjf", {"victim": "rank"})])
@pytest.mark.parametrize("cfg", [FEW_SLOTS, TIGHT_KV], ids=["few-slots", "tight-kv"])
def test_decode_fast_forward_is_exact_under_rank_victims(spec, cfg) -> None:
    """Static ranks (or no swaps): decode-only runs are still advanced together, with the results of stepping one
    step at a time."""
    from llmsched.sim import Simulator

    reqs = random_workload(11, n=150, rate=150.0, scored=True)
    spec = PolicySpec.parse(spec)
    fast = Simulator(cfg, TIMED_STEP, spec).run(reqs)
    slow = Simulator(cfg, TIMED_STEP, spec, max_batch_steps=1).run(reqs)
    assert fast.frame.equals(slow.frame)
    assert fast.stats["num_steps"] == slow.stats["num_steps"] and fast.stats["num_iterations"] < slow.stats[
        "num_iterations"]
