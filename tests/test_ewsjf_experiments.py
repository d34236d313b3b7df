"""The EWSJF simulator experiments on the smoke profile: tuning history, sweep tables, metrics."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmsched.policies.ewsjf.experiments import EWSJFExperiments, mixed_lengths_workload
from llmsched.stages import load_params


def test_tune_then_sim_write_their_tables(tmp_path):
    exp = EWSJFExperiments(load_params("smoke"), out_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="tune stage"):
        exp.sim()
    best, hist = exp.tune()
    assert len(hist) == 3 and set(best) >= {"a_u", "b_u", "a_f", "b_f", "alpha"}
    assert {"C", "L", "S", "U"} <= set(hist.columns)
    table = exp.sim()
    labels = {"fcfs", "prompt-sjf", "ewsjf", "ewsjf-tuned", "ewsjf-released", "ewsjf-norefine", "ewsjf-nobubbles"}
    assert set(table.label) == labels and len(table) == 2 * len(labels)
    assert table.utilisation.between(0, 1).all() and (table.n_ok == 300).all()
    over = table[table.load == 1.5].set_index("label")
    assert over.loc["ewsjf", "ttft_short_mean"] < over.loc["fcfs", "ttft_short_mean"]
    saved = pd.read_parquet(tmp_path / "sim" / "100-2000" / "summary.parquet")
    assert len(saved) == len(table)
    assert json.loads((tmp_path / "tune" / "best.json").read_text()) == best


def test_partition_stage_records_queues_of_both_variants(tmp_path):
    exp = EWSJFExperiments(load_params("smoke"), out_root=tmp_path)
    queues = exp.partition()
    assert set(queues.variant) == {"refine-and-prune", "kmeans-only"}
    for _variant, q in queues.groupby("variant"):
        assert q["count"].sum() == 300 and len(q) <= exp.p["ewsjf_max_queues"]
        assert (q["lo"].to_numpy()[1:] > q["hi"].to_numpy()[:-1]).all()  # contiguous, ordered, disjoint
    # the bimodal 100-2000 mix: some queue below 300 tokens and one above 1800
    assert queues["hi"].min() < 300 and queues["lo"].max() > 1800
    record = json.loads((tmp_path / "partitions" / "100-2000.json").read_text())
    assert record["n"] == 300 and len(record["refine-and-prune"]) == len(queues[queues.variant == "refine-and-prune"])
    assert len(pd.read_parquet(tmp_path / "partitions" / "lengths.parquet")) == 300


def test_online_stage_retunes_every_window(tmp_path):
    exp = EWSJFExperiments(load_params("smoke"), out_root=tmp_path)
    table = exp.online()
    assert list(table.label) == ["ewsjf", "ewsjf-online"] and (table.n_ok == 200).all()
    trials = pd.read_parquet(tmp_path / "online" / "trials.parquet")
    assert len(trials) >= 3 and (trials.window.diff().dropna() == 1).all()
    assert trials.alpha.nunique() > 1  # new parameters installed after each window
    assert (trials.time.diff().dropna() >= exp.p["ewsjf_online_every_s"]).all()


def test_mixed_lengths_workload_is_deterministic_and_in_range():
    a = mixed_lengths_workload("100-16000", 200, seed=3)
    b = mixed_lengths_workload("100-16000", 200, seed=3)
    assert [r.prompt_tokens for r in a] == [r.prompt_tokens for r in b]
    assert all(100 <= r.prompt_tokens <= 16000 and 1 <= r.output_tokens <= 100 for r in a)
