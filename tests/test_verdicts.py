"""Every rule of the claims table on a weak input and a strong one (llmsched.analysis.verdicts)."""

import math

import numpy as np
import pandas as pd
import pytest

from llmsched.analysis.verdicts import (
    PARTLY_SMALLER,
    REPRODUCED,
    REVERSED,
    TIE,
    UNDECIDED,
    best_row,
    convergence_verdict,
    gain_verdict,
    low_load_informative,
    order_verdict,
    seed_ratios,
    throughput_testable,
    transfer_verdict,
)

NAN = math.nan


def test_gain_verdict_judges_the_interval_not_the_point():
    assert gain_verdict((4.2, 3.7, 4.8), target=4.0)[0] == REPRODUCED  # strong: the whole interval ≥ 3.6
    assert gain_verdict((1.8, 1.5, 2.1), target=4.0)[0] == PARTLY_SMALLER  # a real gain, well short of 4×
    assert gain_verdict((3.5, 2.0, 5.0), target=4.0)[0] == UNDECIDED
    assert gain_verdict((1.3, 0.8, 1.9))[0] == TIE  # weak: a point above 1 whose interval includes 1
    assert gain_verdict((1.3, 1.1, 1.5))[0] == REPRODUCED
    assert gain_verdict((0.7, 0.6, 0.8))[0] == REVERSED
    assert gain_verdict((4.1, NAN, NAN), target=4.0)[0] == "reproduced (no interval)"
    assert gain_verdict((1.2, NAN, NAN), target=4.0)[0] == "partly: a gain, smaller than claimed (no interval)"
    assert gain_verdict((NAN, NAN, NAN))[0] == "not run here"
    assert "3.6×" in gain_verdict((1, 1, 1), target=4.0)[1]


def _per_seed(gain: float, noise: float, seeds=range(5)) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for s in seeds:
        for load in (0.5, 1.0):
            base = 10.0 * rng.lognormal(0, noise)
            rows += [{"label": "fcfs", "load": load, "seed": s, "ttft": base},
                     {"label": "ewsjf", "load": load, "seed": s, "ttft": base / (gain if load == 1.0 else 1.0)
                      * rng.lognormal(0, noise)}]
    return pd.DataFrame(rows)


def test_seed_ratios_give_an_interval_per_load():
    strong = seed_ratios(_per_seed(gain=4.0, noise=0.02), "fcfs", "ewsjf", "ttft").set_index("load")
    assert list(strong.n_seeds) == [5, 5]
    assert strong.loc[1.0, "ci_low"] > 3.6 and gain_verdict(tuple(strong.loc[1.0, ["ratio", "ci_low", "ci_high"]]),
                                                           4.0)[0] == REPRODUCED
    weak = pd.DataFrame([{"label": lab, "load": 1.0, "seed": s, "ttft": v}
                         for s, r in enumerate((0.9, 1.2, 1.0, 1.3, 0.85))
                         for lab, v in (("fcfs", 10.0 * r), ("ewsjf", 10.0))])  # FCFS/EWSJF ratios around 1
    w = seed_ratios(weak, "fcfs", "ewsjf", "ttft").iloc[0]
    assert w.ratio == pytest.approx(1.05) and w.ci_low < 1 < w.ci_high
    one = seed_ratios(_per_seed(4.0, 0.02).query("seed == 0").drop(columns="seed"), "fcfs", "ewsjf", "ttft")
    assert one.n_seeds.eq(1).all() and one.ci_low.isna().all()  # one seed: no interval, not a fake one
    assert seed_ratios(_per_seed(4.0, 0.02), "fcfs", "ltr", "ttft").empty
    assert best_row(strong.reset_index())["load"] == 1.0
    assert best_row(strong.reset_index(), strong.reset_index()["load"] < 1)["load"] == 0.5


def test_low_load_half_is_informative_only_where_requests_queue():
    def summary(queue):
        return pd.DataFrame({"label": ["fcfs", "fcfs"], "load": [0.5, 2.0], "queue_delay_mean": [queue, 30.0],
                             "e2e_mean": [10.0, 40.0]})
    assert low_load_informative(summary(0.01)) == (False, pytest.approx(0.001))  # nobody waits: by construction
    assert low_load_informative(summary(2.0))[0]


def test_throughput_is_testable_only_when_the_engine_falls_behind():
    assert not throughput_testable({"rate": 10.0, "request_throughput": 9.8})  # served as fast as they arrive
    assert throughput_testable({"rate": 10.0, "request_throughput": 6.0})


def test_order_verdict_checks_the_whole_order():
    order = ("encoder", "decoder", "encoder-decoder")
    assert order_verdict({"encoder": 0.3, "decoder": 0.2, "encoder-decoder": 0.1}, order)[0] == REPRODUCED
    assert order_verdict({"encoder": 0.3, "decoder": 0.1, "encoder-decoder": 0.2}, order)[0] == "not reproduced"
    assert order_verdict({"encoder": 0.3, "decoder": 0.2}, order)[0] == "partly (not every kind ran)"
    assert order_verdict({"encoder": 0.2, "decoder": 0.3}, order)[0] == "not reproduced"
    assert order_verdict({"encoder": 0.3}, order)[0] == "not run here"


def test_convergence_needs_a_gain_beyond_the_noise():
    fast = [1.0, 1.2, 1.9, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    verdict, trial, _ = convergence_verdict(fast, noise_sd=0.05)
    assert verdict == REPRODUCED and trial == 4  # counted from 1: 1.9 < 1.95, 2.0 at trial 4
    assert convergence_verdict(fast, noise_sd=0.6)[0] == "no significant gain over the defaults"
    slow = [1.0] * 9 + [2.0]
    assert convergence_verdict(slow, noise_sd=0.05)[:2] == ("not reproduced", 10)
    assert convergence_verdict(fast, noise_sd=NAN)[0] == "not decidable (no noise estimate)"


def test_transfer_needs_a_ranker_trained_on_the_serving_models_lengths():
    assert transfer_verdict(0.26, 0.28) == REPRODUCED  # strong: 93 % of the in-model ranker's τ
    assert transfer_verdict(0.10, 0.40) == "not reproduced"  # weak: a quarter of it
    assert transfer_verdict(0.05, 0.05) == "not reproduced"  # equal, but no better than chance-level τ
    assert transfer_verdict(0.26, NAN).startswith("not testable")  # no in-model ranker (pars_collect_train: 0)
    assert transfer_verdict(NAN, 0.3) == "not run here"
