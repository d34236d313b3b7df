"""Simulator sweeps over seeds: seeded workload draws and arrivals, mean and 95 % interval over seeds, the same
tables whatever the number of worker processes, and the seed settings of every driver."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from llmsched.experiments.ewsjf import mixed_lengths_workload
from llmsched.experiments.pars import repeat_requests
from llmsched.experiments.settings import EWSJFSettings, HeadToHeadSettings, PARSSettings
from llmsched.policies import PolicySpec
from llmsched.sim import load_profile
from llmsched.sim import sweep as sweep_mod
from llmsched.sim.sweep import resolve_workers, seed_sweep, summarize_seeds, sweep_seeds
from llmsched.workload import Request

SPECS = {"fcfs": PolicySpec("fcfs", {}), "prompt-sjf": PolicySpec("prompt-sjf", {})}
LOADS = [0.5, 1.5]


def _engine():
    prof = load_profile("a100-80gb_llama-2-13b")
    return prof.sim_config(), prof.step_time


def _workloads(seeds, n=80):
    return {s: mixed_lengths_workload("100-2000", n, s) for s in seeds}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    config, st = _engine()
    table = seed_sweep(_workloads([0, 1, 2]), LOADS, SPECS, config, st, out_dir=out, workers=1, progress=False)
    return table, out


def test_repeat_requests_is_a_seeded_permutation_per_cycle():
    pool = [Request(f"r{i}", f"prompt {i}", 10 + i, 5) for i in range(10)]
    a = repeat_requests(pool, 25, seed=3)
    assert [r.request_id for r in a] == [r.request_id for r in repeat_requests(pool, 25, seed=3)]  # same seed
    b = repeat_requests(pool, 25, seed=4)
    assert [r.request_id for r in a] != [r.request_id for r in b]  # another seed: another order
    assert len(a) == 25 and len({r.request_id for r in a}) == 25  # ids unique
    for cycle in (0, 1):  # every prompt once per full cycle
        assert sorted(r.request_id for r in a if r.request_id.endswith(f"~{cycle}")) == \
            sorted(f"r{i}~{cycle}" for i in range(10))
    last = [r for r in a if r.request_id.endswith("~2")]
    assert len(last) == 5 and len({r.prompt for r in last}) == 5  # the partial cycle: 5 distinct prompts
    assert {(r.request_id.split("~")[0], r.prompt_tokens) for r in a} <= {(r.request_id, r.prompt_tokens) for r in pool}
    with pytest.raises(ValueError, match="no requests"):
        repeat_requests([], 5, seed=0)


def test_summary_is_the_mean_over_seeds_with_an_interval(swept):
    table, out = swept
    per_seed = pd.read_parquet(out / "per_seed.parquet")
    assert sorted(per_seed.seed.unique()) == [0, 1, 2] and len(per_seed) == 3 * len(LOADS) * len(SPECS)
    assert len(table) == len(LOADS) * len(SPECS) and (table.n_seeds == 3).all()
    assert list(table.columns[:2]) == ["label", "load"] and set(table.load) == set(LOADS)
    means = per_seed.groupby(["label", "load"])[["e2e_mean", "rate", "token_throughput"]].mean()
    got = table.set_index(["label", "load"]).loc[means.index]
    np.testing.assert_allclose(got[means.columns].to_numpy(), means.to_numpy())
    for m in ("e2e_mean", "normalized_latency_mean", "ttft_mean", "token_throughput", "total_token_throughput",
              "request_throughput"):
        assert (table[f"{m}_ci_low"] <= table[m]).all() and (table[m] <= table[f"{m}_ci_high"]).all(), m
        assert (table[f"{m}_ci_high"] > table[f"{m}_ci_low"]).all(), m  # seeds differ: a real width
    assert (table.n_requests == 80).all() and pd.api.types.is_integer_dtype(table.n_requests)
    # loads are relative to each seed's own saturation throughput
    caps = per_seed.groupby("seed")["capacity"].first()
    assert caps.nunique() > 1
    np.testing.assert_allclose(per_seed.rate, per_seed.load * per_seed.seed.map(caps))


def test_seeds_change_the_workload_and_the_arrivals_and_the_same_seed_repeats_them(swept):
    _, out = swept
    frame = pd.read_parquet(out / "requests.parquet")
    assert sorted(frame.seed.unique()) == [0, 1, 2]  # small: every seed kept
    one = frame[(frame.label == "fcfs") & (frame.load == 0.5)]
    by_seed = {s: g.set_index("request_id").sort_index() for s, g in one.groupby("seed")}
    assert not by_seed[0].prompt_tokens.equals(by_seed[1].prompt_tokens)  # another workload draw
    assert not np.allclose(by_seed[0].arrival.to_numpy(), by_seed[1].arrival.to_numpy())  # other arrivals
    # the summary row's rate names every seed's requests of that row; arrival_rate is each seed's own
    assert one.rate.nunique() == 1 and one.arrival_rate.nunique() > 1
    record = json.loads((out / "sweep.json").read_text())
    assert record["seeds"] == [0, 1, 2] and record["requests_parquet_seeds"] == [0, 1, 2]
    assert record["loads"] == LOADS and set(record["capacity_req_s"]) == {"0", "1", "2"}
    config, st = _engine()
    again = seed_sweep(_workloads([1]), LOADS, SPECS, config, st, workers=1, progress=False)
    per_seed = pd.read_parquet(out / "per_seed.parquet")
    seed1 = per_seed[per_seed.seed == 1].reset_index(drop=True)
    np.testing.assert_allclose(again.e2e_mean.to_numpy(), seed1.e2e_mean.to_numpy())  # same seed, same run
    assert (again.n_seeds == 1).all() and again.e2e_mean_ci_low.isna().all()  # one seed: no interval


def test_parallel_workers_give_the_serial_tables(tmp_path):
    config, st = _engine()
    w = _workloads([5, 6], n=60)
    serial = seed_sweep(w, LOADS, SPECS, config, st, out_dir=tmp_path / "s", workers=1, progress=False)
    parallel = seed_sweep(w, LOADS, SPECS, config, st, out_dir=tmp_path / "p", workers=2, progress=False)
    pd.testing.assert_frame_equal(serial, parallel)
    for name in ("per_seed.parquet", "requests.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s" / name), pd.read_parquet(tmp_path / "p" / name))


def test_large_sweeps_keep_the_first_seeds_requests(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_mod, "MAX_REQUEST_ROWS", 100)
    config, st = _engine()
    seed_sweep(_workloads([0, 1], n=30), [1.0], SPECS, config, st, out_dir=tmp_path, workers=1, progress=False)
    assert set(pd.read_parquet(tmp_path / "requests.parquet").seed) == {0}
    assert json.loads((tmp_path / "sweep.json").read_text())["requests_parquet_seeds"] == [0]


def test_summarize_seeds_keeps_keys_and_text_columns():
    per_seed = pd.DataFrame({"preset": "p", "label": ["a", "a", "b", "b"], "load": 1.0, "seed": [0, 1, 0, 1],
                             "policy": ["fcfs", "fcfs", "sjf", "sjf"], "n_ok": [10, 10, 10, 10],
                             "e2e_mean": [1.0, 3.0, 2.0, 2.0], "makespan": [5.0, 6.0, 5.0, 6.0]})
    out = summarize_seeds(per_seed, ["preset", "label", "load"])
    assert list(out.columns[:3]) == ["preset", "label", "load"] and list(out.policy) == ["fcfs", "sjf"]
    assert list(out.e2e_mean) == [2.0, 2.0] and list(out.n_ok) == [10, 10] and list(out.n_seeds) == [2, 2]
    assert out.loc[1, "e2e_mean_ci_low"] == out.loc[1, "e2e_mean_ci_high"] == 2.0  # equal values: zero width
    assert "makespan_ci_low" not in out  # intervals only for the main metrics


def test_seed_lists_and_worker_counts_are_checked(monkeypatch):
    assert sweep_seeds(7, 3) == [7, 8, 9]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="whole number of seeds"):
            sweep_seeds(0, bad)  # type: ignore[arg-type]
    assert resolve_workers(1, 10) == 1 and resolve_workers(64, 3) <= 3
    monkeypatch.setenv(sweep_mod.WORKERS_ENV, "1")
    assert resolve_workers(None, 10) == 1
    monkeypatch.setenv(sweep_mod.WORKERS_ENV, "many")
    with pytest.raises(ValueError, match="LLMSCHED_SIM_WORKERS"):
        resolve_workers(None, 10)
    with pytest.raises(ValueError, match="no seeds"):
        config, st = _engine()
        seed_sweep({}, LOADS, SPECS, config, st)


@pytest.mark.parametrize(("cls", "key"), [(PARSSettings, "pars_sim_seeds"), (EWSJFSettings, "ewsjf_sim_seeds"),
                                          (HeadToHeadSettings, "h2h_seeds")])
def test_seed_settings_default_to_five_and_reject_bad_values(cls, key):
    field = key.removeprefix(cls.prefix)
    assert getattr(cls.from_params({}), field) == 5
    assert getattr(cls.from_params({key: 3}), field) == 3
    for bad in (0, -2, 2.5, [0, 1], "5", True):
        with pytest.raises(ValueError, match=rf"{key} must be a number of seeds, a whole number >= 1 .*got "):
            cls.from_params({key: bad})


def test_sweep_figures_draw_the_mean_and_a_band(swept):
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from llmsched.analysis import figures

    table, _ = swept
    fig = figures.latency_vs_rate(table, "t")
    ax = fig.axes[0]
    assert len([ln for ln in ax.get_lines() if len(ln.get_xdata()) == len(LOADS)]) == len(SPECS)
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == len(SPECS)  # one band each
    assert "mean and 95 % CI over 3 seeds" in fig._suptitle.get_text()
    plt.close(fig)
    grid = figures.head_to_head(table.assign(workload="mixed"))
    assert "mean and 95 % CI over 3 seeds" in grid._suptitle.get_text()
    assert any(isinstance(c, PolyCollection) for c in grid.axes[0].collections)
    plt.close(grid)
    plain = figures.latency_vs_rate(table.drop(columns=[c for c in table if "_ci_" in c or c == "n_seeds"]), "t")
    assert plain._suptitle.get_text() == "t" and not plain.axes[0].collections  # one-seed tables: lines only
    plt.close(plain)


def test_an_identical_sweep_is_reused_and_any_change_reruns(tmp_path, monkeypatch):
    """seed_sweep(out_dir=...) returns the tables of an identical earlier sweep without simulating; a changed
    request, load or policy, or reuse=False, simulates again."""
    config, st = _engine()
    w = _workloads([0, 1], n=40)
    first = seed_sweep(w, LOADS, SPECS, config, st, out_dir=tmp_path, workers=1, progress=False)
    key = json.loads((tmp_path / "sweep.json").read_text())["sweep_key"]
    simulated = []
    real = sweep_mod._simulate
    monkeypatch.setattr(sweep_mod, "_simulate", lambda ctx, run: simulated.append(run) or real(ctx, run))

    again = seed_sweep(w, LOADS, SPECS, config, st, out_dir=tmp_path, workers=1, progress=False)
    assert simulated == []  # reused
    pd.testing.assert_frame_equal(first, again)

    changed = {**w, 1: [dataclasses.replace(w[1][0], output_tokens=w[1][0].output_tokens + 7), *w[1][1:]]}
    for args in [(changed, LOADS, SPECS), (w, [0.5, 1.0], SPECS), (w, LOADS, {"fcfs": SPECS["fcfs"]})]:
        simulated.clear()
        seed_sweep(*args, config, st, out_dir=tmp_path, workers=1, progress=False)
        assert simulated, "a changed sweep must simulate"
        assert json.loads((tmp_path / "sweep.json").read_text())["sweep_key"] != key
    seed_sweep(w, LOADS, SPECS, config, st, out_dir=tmp_path, workers=1, progress=False)  # back to the first
    simulated.clear()
    seed_sweep(w, LOADS, SPECS, config, st, out_dir=tmp_path, workers=1, progress=False, reuse=False)
    assert len(simulated) == 2 * len(LOADS) * len(SPECS)
