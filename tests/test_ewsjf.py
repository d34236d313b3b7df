"""EWSJF: partitioning, routing with bubbles, scoring, the queue's admission order and starvation bound."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from factories import blocker_request, request_view
from llmsched.policies import make_policy
from llmsched.policies.ewsjf import EWSJFParams, ewsjf_score, kmeans_1d, refine_and_prune, released_score
from llmsched.policies.ewsjf.queue import EWSJFQueue


def test_refine_and_prune_finds_the_modes_of_a_multimodal_mix():
    rng = np.random.default_rng(0)
    modes = [100, 600, 1500, 4000, 9000]
    x = np.concatenate([rng.normal(m, m * 0.03, 300) for m in modes])
    part = refine_and_prune(x, max_queues=8)
    assert len(part) == 5
    for (lo, hi), m in zip(part.bounds, modes, strict=True):
        assert lo < m < hi
    assert sum(s.count for s in part.stats) == len(x)
    # prune: the same mix capped at 3 queues merges adjacent clusters, keeping contiguity and every point
    part3 = refine_and_prune(x, max_queues=3)
    assert len(part3) == 3 and sum(s.count for s in part3.stats) == len(x)
    assert all(a[1] < b[0] for a, b in zip(part3.bounds, part3.bounds[1:], strict=False))


def test_prune_merges_the_lowest_utility_pair():
    # three tight clusters: 10 (dense), 20 (dense, close to 10), 1000 (sparse, far): U(10,20) is highest,
    # U(20,1000) lowest -> with max 2 queues the far cluster is merged into the middle one
    x = [10.0] * 50 + [20.0] * 50 + [1000.0] * 5
    part = refine_and_prune(x, max_queues=2, min_size=3)
    assert part.bounds == [(10.0, 10.0), (20.0, 1000.0)]


@pytest.mark.parametrize("sample", [[7.0] * 20, [3.0, 9.0], [0.0, 0.0, 0.0], [5.0]])
def test_degenerate_samples_give_fewer_queues_not_errors(sample):
    part = refine_and_prune(sample)
    assert 1 <= len(part) <= len(set(sample))
    assert len(kmeans_1d(np.array(sample), 3)) == len(set(sample))


def test_bad_partition_input_is_a_clear_error():
    with pytest.raises(ValueError, match="empty window"):
        refine_and_prune([])
    with pytest.raises(ValueError, match="finite"):
        refine_and_prune([1.0, math.nan])
    with pytest.raises(ValueError, match="alpha"):
        refine_and_prune([1.0, 2.0], alpha=-1)


def test_score_on_hand_computed_values():
    p = EWSJFParams(a_u=0.001, b_u=0.5, a_f=0.002, b_f=0.1, w_base=1.0)
    # n=4 queues, index 1, mean 200, b=100, waited 2 s, prefill 0.5 s
    qf = (4 - 1) / 101
    w_urg, w_fair = 0.001 * 200 + 0.5, 0.002 * 200 + 0.1
    expected = qf * (1.0 + w_urg * 2.0 / 0.5 + w_fair * math.log(101))
    assert ewsjf_score(p, 4, 1, 200.0, 100, 2.0, 0.5) == pytest.approx(expected)
    # negative weights are clamped to zero, never inverted
    neg = EWSJFParams(a_u=-1.0, b_u=0.0, a_f=-1.0, b_f=0.0)
    assert ewsjf_score(neg, 2, 0, 50.0, 9, 100.0, 0.1) == pytest.approx(2 / 10 * 1.0)
    assert released_score(300, 2.0, step=128) == pytest.approx(2.0 * (1 + 0.5 * math.log(301)) * 128 / 3)


@pytest.mark.parametrize("bad", [{"a_u": math.nan}, {"b_f": math.inf}, {"alpha": 0.0}, {"alpha": -2},
                                 {"w_base": -1}, {"b_u": "x"}])
def test_bad_parameters_from_a_study_are_rejected(bad):
    with pytest.raises(ValueError, match="EWSJF parameter"):
        EWSJFParams(**bad)


def test_routing_tolerances_and_bubbles():
    q = EWSJFQueue(bounds=[[100, 200], [1000, 2000]], bubble_ttl=2)
    cases = {150: (100, 200), 215: (100, 200), 950: (1000, 2000), 2150: (1000, 2000), 95: (100, 200)}
    for i, (length, rng) in enumerate(cases.items()):
        q.add_request(request_view(i, 0.0, prompt=length))
        lq = next(w[0] for w in q._where.values() if w[1][2].request_id == f"r{i}")
        assert (lq.lo, lq.hi) == rng, length
    assert not q.stats.get("bubbles_created")
    q.add_request(request_view(9, 0.0, prompt=500))  # between 1.10*200 and 0.90*1000: a bubble
    assert q.stats["bubbles_created"] == 1
    assert q.partition_bounds == [(100, 200), (500, 500), (1000, 2000)]
    q.add_request(request_view(10, 0.0, prompt=480))  # 480 >= 0.90 * 500: joins the bubble, which widens
    assert q.stats["bubbles_created"] == 1 and q.partition_bounds[1] == (480, 500)
    # drain everything; an empty bubble is removed after bubble_ttl empty steps
    while len(q):
        q.tick(1.0)
        q.pop_request()
    q.tick(2.0)
    q.tick(3.0)
    assert q.partition_bounds == [(100, 200), (1000, 2000)] and q.stats["bubbles_removed"] == 1
    no_bubbles = EWSJFQueue(bounds=[[100, 200], [1000, 2000]], bubbles=False)
    no_bubbles.add_request(request_view(0, 0.0, prompt=300))
    no_bubbles.add_request(request_view(1, 0.0, prompt=800))
    assert no_bubbles.partition_bounds == [(100, 200), (1000, 2000)] and len(no_bubbles) == 2


def test_admits_best_queue_then_backfills_from_neighbours():
    q = EWSJFQueue(bounds=[[0, 99], [100, 999], [1000, 5000]], bubbles=False)
    for i, (n, t) in enumerate([(3000, 0.0), (500, 0.0), (50, 0.0), (60, 0.0), (700, 0.0)]):
        q.add_request(request_view(i, t, prompt=n))
    q.tick(1.0)
    order = [q.pop_request().request_id for _ in range(5)]
    # shortest queue scores best (qf), FIFO inside, then its neighbour (middle), then the far one
    assert order == ["r2", "r3", "r1", "r4", "r0"]


def test_repartition_loses_no_waiting_request():
    rng = np.random.default_rng(1)
    q = EWSJFQueue(sample=list(rng.integers(10, 100, 200)), repartition_every=50, window=100)
    lengths = np.concatenate([rng.integers(10, 100, 100), rng.integers(3000, 4000, 100)])
    for i, n in enumerate(lengths):
        q.add_request(request_view(i, float(i), prompt=int(n)))
        if i % 7 == 0:
            q.tick(float(i))
            q.pop_request()
    assert q.stats["repartitions"] == 4
    n_popped = len([i for i in range(len(lengths)) if i % 7 == 0])
    assert len(q) == len(lengths) - n_popped
    rest = []
    while len(q):
        q.tick(1e4)
        rest.append(q.pop_request().request_id)
    assert len(set(rest)) == len(lengths) - n_popped
    assert any(hi >= 3000 for _, hi in q.partition_bounds), "the window's long mode got its own queue"


def test_long_request_is_not_starved_beyond_the_bound():
    q = make_policy("ewsjf", bounds=[[0, 100], [1000, 8000]], max_wait_s=5.0)
    q.add_request(request_view(0, 0.0, prompt=6000))
    t, i, admitted_at = 0.0, 1, None
    while admitted_at is None and t < 100:
        q.add_request(request_view(i, t, prompt=20))  # a steady stream of short requests, one admission per step
        i += 1
        q.tick(t)
        if q.pop_request().request_id == "r0":
            admitted_at = t
        t += 0.5
    assert admitted_at is not None and admitted_at <= 5.0 + 0.5
    q2 = make_policy("ewsjf", bounds=[[0, 100], [1000, 8000]])  # no bound: the stream starves it
    q2.add_request(request_view(0, 0.0, prompt=6000))
    for k in range(1, 200):
        q2.add_request(request_view(k, k * 0.5, prompt=20))
        q2.tick(k * 0.5)
        assert q2.pop_request().request_id != "r0"


def test_released_variant_scores_by_wait_and_length():
    q = make_policy("ewsjf-released", bounds=[[0, 99], [100, 5000]])
    q.add_request(request_view(0, 0.0, prompt=2000))  # long, waited 10 s at t=10
    q.add_request(request_view(1, 9.0, prompt=20))    # short, waited 1 s
    q.tick(10.0)
    first = q.pop_request().request_id
    assert first == ("r0" if released_score(2000, 10.0) > released_score(20, 1.0) else "r1")


def test_optimizer_improves_over_its_first_trial_and_resumes(tmp_path):
    from llmsched.policies.ewsjf.meta import optimize

    def objective(p):  # synthetic: best at b_u = 4, alpha = 15
        return -((p.b_u - 4.0) ** 2) - ((p.alpha - 15.0) / 5.0) ** 2

    db = tmp_path / "study.sqlite"
    best, hist = optimize(objective, n_trials=25, seed=0, storage=db, name="t")
    assert len(hist) == 25 and hist.trial.iloc[0] == 0
    assert hist.value.iloc[0] == pytest.approx(objective(EWSJFParams()))  # trial 0 = the defaults
    assert hist.best_so_far.iloc[-1] > hist.value.iloc[0] + 1.0
    assert abs(best.b_u - 4.0) < 1.5
    _, more = optimize(objective, n_trials=30, seed=0, storage=db, name="t")  # resumes: 5 more trials
    assert len(more) == 30 and more.value.iloc[:25].tolist() == hist.value.tolist()


def _bimodal_sim_workload():
    """300 requests, 70 % short (100-300) / 30 % long (1500-2000) prompts, Poisson 40 req/s, on the A100 profile."""
    from llmsched.sim import load_profile
    from llmsched.workload import Request, assign_arrivals, make_arrivals

    prof = load_profile("a100-80gb_llama-2-13b")
    rng = np.random.default_rng(0)
    prompts = np.where(rng.random(300) < 0.7, rng.integers(100, 300, 300), rng.integers(1500, 2000, 300))
    reqs = assign_arrivals([Request(f"r{i}", "", int(p), 50) for i, p in enumerate(prompts)],
                           make_arrivals("poisson", 300, 40.0, seed=0))
    return prof, reqs, prof.sim_config(max_num_seqs=64)


def test_simulator_objective_and_online_tuner():
    from llmsched.experiments.ewsjf import SimObjective
    from llmsched.policies.ewsjf.meta import OnlineTuner, balance, compactness
    from llmsched.sim import simulate

    assert balance([5, 5, 5]) == pytest.approx(1.0) and balance([10]) == 1.0
    assert compactness(refine_and_prune([100.0] * 10)) == 1.0
    prof, reqs, config = _bimodal_sim_workload()
    obj = SimObjective(reqs, config, prof.step_time, {"max_queues": 6, "steptime": "a100-80gb_llama-2-13b"})
    value, terms = obj(EWSJFParams())
    assert math.isfinite(value) and 0 <= terms["C"] <= 1 and terms["U"] > 0
    tuner = OnlineTuner(every_s=2.0, seed=0)
    res = simulate(reqs, config, prof.step_time, make_policy(
        "ewsjf", sample=[r.prompt_tokens for r in reqs[:50]], steptime="a100-80gb_llama-2-13b", tuner=tuner))
    assert (res.frame.status == "ok").all()
    assert len(tuner.log) >= 2 and len({row["b_u"] for row in tuner.log}) >= 2, "parameters re-tuned online"


def _tuner_installing(params: dict[str, float], every_s: float = 1.0):
    """An OnlineTuner whose first trial is `params` (enqueued in its study): what it installs after window 1."""
    from llmsched.policies.ewsjf.meta import SPACE, OnlineTuner

    tuner = OnlineTuner(every_s=every_s, seed=0)
    tuner.study.enqueue_trial({k: float(params[k]) for k in SPACE})
    return tuner


def _admit_one(q: EWSJFQueue, prompt: int) -> None:
    """Window 1 of the tuner starts at step 0 with one admission (feedback); its next step after every_s
    scores the window and installs the tuner's trial."""
    q.tick(0.0)
    q.add_request(request_view(99, 0.0, prompt=prompt))
    assert q.pop_request().request_id == "r99"


def test_online_tuner_installs_weights_that_change_the_admission_order():
    # a long request has waited 200 s, a short one 0.1 s: the default weights (b_u = 1, a_u = 0) serve the short
    # queue first (qf favours short prompts); urgency growing with the queue's mean length (a_u = 1e-3, b_u = 0)
    # serves the long one first
    tuned = {"a_u": 1e-3, "b_u": 0.0, "a_f": 0.0, "b_f": 0.1, "alpha": EWSJFParams().alpha}
    orders = {}
    for label, tuner in (("default", None), ("tuned", _tuner_installing(tuned))):
        q = EWSJFQueue(bounds=[[0, 99], [1000, 5000]], bubbles=False, tuner=tuner)
        _admit_one(q, 50)
        q.add_request(request_view(0, 0.0, prompt=2000))
        q.add_request(request_view(1, 199.9, prompt=50))
        q.tick(200.0)
        orders[label] = [q.pop_request().request_id for _ in range(2)]
        if tuner is not None:
            assert q.params == EWSJFParams(**tuned) and q.stats["param_updates"] == 1
            assert "repartitions" not in q.stats  # alpha unchanged: the queues stay
    assert orders == {"default": ["r1", "r0"], "tuned": ["r0", "r1"]}


# two short clusters of 2 sub-modes each and a long one: alpha = 8 (default) gives 3 queues, alpha = 3 gives 5
SUBMODES = [float(x) for x in [*range(100, 160, 4), *range(180, 240, 4), *range(260, 320, 4), *range(340, 400, 4),
                               *range(3000, 3100, 4)]]


def test_alpha_change_repartitions_the_live_queues_on_the_arrival_window():
    window = [100.0, *SUBMODES]  # the arrival window: the first admission (100 tokens), then SUBMODES
    coarse, fine = refine_and_prune(window, alpha=8.0).bounds, refine_and_prune(window, alpha=3.0).bounds
    assert len(coarse) == 3 and len(fine) == 5
    tuned = {**EWSJFParams().to_dict(), "alpha": 3.0}
    q = EWSJFQueue(sample=SUBMODES, tuner=_tuner_installing(tuned))  # repartition_every = 0: no periodic one
    assert q.partition_bounds == coarse
    _admit_one(q, 100)
    for i, n in enumerate(SUBMODES):
        q.add_request(request_view(i, 0.5, prompt=int(n)))
    q.tick(2.0)
    assert q.params.alpha == 3.0 and q.stats["repartitions"] == 1
    assert q.partition_bounds == fine
    assert len(q) == len(SUBMODES)  # nothing lost on the repartition
    q.set_params(q.params)  # same alpha: no repartition
    assert q.stats["repartitions"] == 1 and q.stats["param_updates"] == 2
    q.tick(3.0)
    assert sorted(q.pop_request().request_id for _ in range(len(SUBMODES))) == sorted(
        f"r{i}" for i in range(len(SUBMODES)))
    empty = EWSJFQueue(sample=SUBMODES)  # no arrivals yet: an alpha change keeps the queues
    before = empty.partition_bounds
    empty.set_params(tuned)
    assert empty.partition_bounds == before and "repartitions" not in empty.stats


def test_online_tuning_in_the_simulator_changes_decisions():
    from llmsched.policies.ewsjf.meta import OnlineTuner
    from llmsched.sim import simulate

    prof, reqs, config = _bimodal_sim_workload()
    args = {"sample": [float(r.prompt_tokens) for r in reqs[:50]], "steptime": "a100-80gb_llama-2-13b"}
    fixed = simulate(reqs, config, prof.step_time, EWSJFQueue(**args))
    tuner = OnlineTuner(every_s=2.0, seed=0)
    live = EWSJFQueue(**args, tuner=tuner)
    online = simulate(reqs, config, prof.step_time, live)
    assert (online.frame.status == "ok").all() and len(online.frame) == len(fixed.frame)
    windows = pd.DataFrame(tuner.log)
    assert len(windows) >= 3 and windows.alpha.nunique() >= 3 and windows.b_u.nunique() >= 3
    assert live.stats["param_updates"] == len(windows) and live.stats["repartitions"] >= 1
    assert windows.n_queues.nunique() >= 2  # alpha acted on the live queues
    a = fixed.frame.set_index("request_id").scheduled
    b = online.frame.set_index("request_id").scheduled.reindex(a.index)
    assert (a != b).sum() >= 10, "online tuning changed which requests were admitted when"


@pytest.mark.vllm
def test_ewsjf_runs_unchanged_in_the_vllm_plugin(tiny_model):
    from llmsched.serving.engine import EngineConfig
    from llmsched.serving.runner import EngineRunner, RunConfig
    from llmsched.workload import Request

    blocker = blocker_request(prompt_tokens=0, output_tokens=120)
    word = "apple "
    # long prompts arrive first, short ones after: EWSJF serves the short queue first once the blocker is done
    queued = [Request(f"long{i}", word * 300, 0, 8, arrival_time=0.02 + 0.01 * i) for i in range(3)]
    queued += [Request(f"short{i}", word * 5, 0, 8, arrival_time=0.06 + 0.01 * i) for i in range(3)]
    args = {"bounds": [[0, 50], [200, 2000]], "steptime": "cpu-gemma-3-270m", "bubbles": False}
    with EngineRunner(EngineConfig(model=tiny_model, policy="ewsjf", policy_args=args, max_num_seqs=1)) as runner:
        df = runner.run([blocker, *queued], RunConfig(progress=False))
    assert (df.status == "ok").all()
    ok = df[df.request_id != "blocker"].sort_values("scheduled")
    assert list(ok.request_id[:3]) == ["short0", "short1", "short2"]


def test_empty_or_degenerate_window_keeps_every_request_and_falls_back():
    q = EWSJFQueue(sample=[10, 20, 3000, 3100] * 10, online_tune_every_s=1.0)
    for i in range(6):
        q.add_request(request_view(i, float(i), prompt=10 + 1000 * (i % 3)))
    q.repartition([])  # empty window: one queue, nothing lost
    assert len(q.queues) == 1 and q.stats["partition_fallback"] == 1 and len(q) == 6
    q.repartition([5.0] * 30)  # all equal: one queue
    assert len(q) == 6
    q.tick(10.0)
    assert sorted(q.pop_request().request_id for _ in range(6)) == [f"r{i}" for i in range(6)]
    assert q.tuner is not None
