"""The headroom map (llmsched.experiments.headroom): the power transform, the ratio table on a tiny engine, the
operating-point finder, the settings' checks and the figures."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from llmsched.experiments.headroom import (
    LABELS,
    RATIO_COLUMNS,
    SHAREGPT,
    check_settings,
    operating_points,
    power_tail,
    run_headroom,
)
from llmsched.experiments.settings import PARSSettings
from llmsched.predictors.metrics import kendall_tau
from llmsched.workload import Request

matplotlib.use("Agg")


def _pool(m: int, seed: int = 0, sigma: float = 0.8, median: float = 150) -> list[Request]:
    """m requests with log-normal output lengths, uniform prompt lengths and noisy PARS/LTR scores."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(median), 1.0, m).round(), 1, 3000).astype(int)
    prompts = rng.integers(5, 400, m)
    return [Request(f"r{i}", "", int(p), int(n), hints={"score_pars": float(np.log(n) + rng.normal(0, sigma)),
                                                         "score_ltr": float(np.log(n) + rng.normal(0, sigma))})
            for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))]


# ------------------------------------------------------------------------------------------------ power_tail
@pytest.mark.parametrize("gamma", [1.5, 2.0, 3.0])
def test_power_tail_keeps_order_mean_and_the_cap(gamma):
    pool = _pool(500)
    out, info = power_tail(pool, gamma, max_model_len=4096)
    before = np.array([r.output_tokens for r in pool])
    after = np.array([r.output_tokens for r in out])
    order = np.argsort(before, kind="stable")
    assert (np.diff(after[order]) >= 0).all()  # monotone: a longer response never becomes shorter
    assert after.mean() == pytest.approx(before.mean(), rel=2e-3)
    assert (after >= 1).all() and (after <= info.cap).all()
    assert all(r.prompt_tokens + r.output_tokens <= 4096 for r in out)  # every request fits the engine
    assert info.cap == 4096 - max(r.prompt_tokens for r in pool)
    assert np.percentile(after, 99) > np.percentile(before, 99)  # a heavier tail
    # the prompts, ids and scores travel unchanged, so a ranker's τ moves only by rounding ties
    assert [(r.request_id, r.prompt_tokens, r.hints) for r in out] == [(r.request_id, r.prompt_tokens, r.hints)
                                                                       for r in pool]
    scores = [r.hints["score_pars"] for r in pool]
    assert kendall_tau(scores, after) == pytest.approx(kendall_tau(scores, before), abs=0.03)


def test_power_tail_clips_at_the_shared_cap_and_still_keeps_the_mean():
    pool = _pool(400, seed=1)
    out, info = power_tail(pool, 3.0, max_model_len=2400)  # a cap the cube of the longest lengths exceeds
    after = np.array([r.output_tokens for r in out])
    assert info.clipped > 0 and after.max() == info.cap
    assert after.mean() == pytest.approx(np.mean([r.output_tokens for r in pool]), rel=2e-3)
    before = np.array([r.output_tokens for r in pool])
    assert (np.diff(after[np.argsort(before, kind="stable")]) >= 0).all()


def test_power_tail_rejects_what_it_cannot_do():
    pool = _pool(50)
    with pytest.raises(ValueError, match="gamma"):
        power_tail(pool, 0.0, 4096)
    with pytest.raises(ValueError, match="cannot keep the mean"):
        power_tail(pool, 2.0, max_model_len=max(r.prompt_tokens for r in pool) + 10)


# ------------------------------------------------------------------------------------------------ the stage
TINY = {"pars_sim_overrides": {"max_num_seqs": 8, "max_num_batched_tokens": 1024}, "pars_headroom_n": 80,
        "pars_headroom_loads": [0.2, 3.0], "pars_headroom_gammas": [2.0], "pars_headroom_seeds": 5,
        "pars_headroom_proxy_n": 0, "pars_headroom_lengths_factors": [1, 2], "pars_headroom_lengths_loads": [3.0]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("headroom")
    settings = PARSSettings.from_params(TINY)
    ratios = run_headroom(settings, {SHAREGPT: _pool(40, seed=3, median=30)}, out, workers=1)
    return ratios, out


def test_ratio_table_columns_and_intervals(tiny):
    ratios, out = tiny
    assert set(RATIO_COLUMNS) <= set(ratios.columns)
    assert set(ratios["label"]) == set(LABELS) - {"fcfs"}
    assert set(ratios["metric"]) == {"normalized_latency_mean", "e2e_mean"}
    assert (ratios["n_seeds"] == 5).all()
    finite = ratios[np.isfinite(ratios["ci_low"])]
    assert len(finite) == len(ratios)
    assert (finite["ci_low"] <= finite["ratio"] + 1e-12).all() and (finite["ratio"] <= finite["ci_high"] + 1e-12).all()
    keys = set(zip(ratios["gamma"], ratios["n"], ratios["load"], strict=True))
    assert keys == {(1.0, 80, 0.2), (1.0, 80, 3.0), (2.0, 80, 0.2), (2.0, 80, 3.0), (1.0, 160, 3.0), (2.0, 160, 3.0)}
    assert ratios.loc[ratios["label"] == "oracle-sjf", "kendall_tau"].to_numpy() == pytest.approx(1.0)
    per_seed = pd.read_parquet(out / "per_seed.parquet")
    assert len(per_seed) == 5 * len(LABELS) * len(keys)
    meta = json.loads((out / "headroom.json").read_text())
    assert meta["settings"]["headroom_n"] == 80 and "2" in meta["power_tails"]


def test_longer_runs_keep_the_arrival_rate(tiny):
    ratios, _ = tiny
    x = ratios[(ratios["load"] == 3.0) & (ratios["label"] == "pars")].drop_duplicates(["gamma", "n"])
    rates = x.pivot_table(index="gamma", columns="n", values="rate_req_s")
    assert rates[160].to_numpy() == pytest.approx(rates[80].to_numpy(), rel=1e-9)


def test_oracle_sjf_gains_under_overload_and_ties_at_low_load(tiny):
    ratios, _ = tiny
    oracle = ratios[(ratios["label"] == "oracle-sjf") & (ratios["metric"] == "normalized_latency_mean")]
    low, high = oracle[oracle["load"] == 0.2], oracle[oracle["load"] == 3.0]
    assert low["ratio"].to_numpy() == pytest.approx(1.0, abs=0.1)
    assert (high["ci_low"] > 1.0).all()
    assert (high["ratio"].to_numpy() > low["ratio"].to_numpy().max()).all()
    share = ratios[(ratios["label"] == "oracle-sjf") & (ratios["load"] == 3.0)]["oracle_share"]
    assert share.to_numpy() == pytest.approx(1.0)  # the oracle's share of its own reduction


def test_headroom_figures(tiny):
    import matplotlib.pyplot as plt

    from llmsched.analysis.figures import headroom_vs_length, headroom_vs_load

    ratios, _ = tiny
    fig = headroom_vs_load(ratios)
    assert "h100-sxm_llama-3-8b" in fig._suptitle.get_text() and fig.axes[0].get_yscale() == "log"
    plt.close(fig)
    fig = headroom_vs_length(ratios, "e2e_mean")
    assert len(fig.axes) == 2  # ShareGPT and its γ = 2 tail at load 3
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ operating points
def _table(rows):
    return pd.DataFrame([{"distribution": "sharegpt", "gamma": g, "n": n, "load": load, "label": label,
                          "metric": "normalized_latency_mean", "ratio": r, "ci_low": lo, "ci_high": hi, "n_seeds": 5}
                         for g, n, load, label, r, lo, hi in rows])


def test_operating_points_finds_a_strong_row():
    t = _table([(1.0, 2000, 3.0, "pars", 2.0, 1.8, 2.2), (2.0, 8000, 3.0, "pars", 16.0, 14.5, 17.5),
                (2.0, 8000, 2.0, "pars", 15.0, 13.0, 17.0), (1.0, 2000, 3.0, "ltr", 3.0, 2.6, 3.4)])
    found = operating_points(t, {"pars": 15.7, "ltr": 2.8})
    pars = found[found["label"] == "pars"]
    assert len(pars) == 1 and bool(pars["found"].iloc[0])  # 13.0 < 0.9 × 15.7: the second row does not count
    assert (pars[["gamma", "n", "load"]].iloc[0].tolist() == [2.0, 8000, 3.0])
    assert pars["verdict"].iloc[0].startswith("reached")
    assert bool(found.loc[found["label"] == "ltr", "found"].iloc[0])


def test_operating_points_on_a_weak_table_returns_the_best_ratio_and_none():
    t = _table([(1.0, 2000, 2.0, "pars", 1.5, 1.4, 1.6), (1.0, 2000, 3.0, "pars", 2.4, 2.1, 2.7),
                (1.0, 2000, 3.0, "ltr", 2.6, 2.2, 3.0)])  # LTR's interval spans 2.8× but its low end does not reach it
    found = operating_points(t, {"pars": 15.7, "ltr": 2.8}).set_index("label")
    assert not found["found"].any()
    assert found.loc["pars", "ratio"] == 2.4 and found.loc["pars", "load"] == 3.0
    assert found.loc["pars", "verdict"].startswith("none: best ratio 2.4×")
    assert found.loc["ltr", "verdict"].startswith("none")


# ------------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(("key", "value", "match"), [
    ("pars_headroom_loads", [], "headroom_loads"),
    ("pars_headroom_loads", [1.0, -2.0], "headroom_loads"),
    ("pars_headroom_gammas", [1.0], "headroom_gammas"),
    ("pars_headroom_seeds", 3, "headroom_seeds"),
    ("pars_headroom_n", 5, "headroom_n"),
    ("pars_headroom_proxy_n", -1, "headroom_proxy_n"),
    ("pars_headroom_lengths_factors", [2, 4], "must include 1"),
    ("pars_headroom_lengths_factors", [1, 2.5], "headroom_lengths_factors"),
    ("pars_headroom_lengths_loads", [2.5], "not in pars_headroom_loads"),
])
def test_bad_settings_are_rejected(key, value, match):
    with pytest.raises(ValueError, match=match):
        check_settings(PARSSettings.from_params({key: value}))


def test_settings_defaults_pass_and_types_are_checked():
    s = PARSSettings.from_params({})
    check_settings(s)
    assert s.headroom_seeds >= 5 and 1 in s.headroom_lengths_factors
    assert set(s.headroom_lengths_loads) <= set(s.headroom_loads)
    with pytest.raises(ValueError, match="headroom_n"):
        PARSSettings.from_params({"pars_headroom_n": "many"})
    with pytest.raises(ValueError, match="unknown parameter"):
        PARSSettings.from_params({"pars_headroom_load": [1.0]})
    assert math.isfinite(s.headroom_loads[0])
