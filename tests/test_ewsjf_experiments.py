"""The EWSJF simulator experiments on the smoke profile: tuning history, sweep tables, metrics."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmsched.experiments.ewsjf import TUNE_SEED_OFFSET, EWSJFExperiments, mixed_lengths_workload
from llmsched.experiments.stages import load_params


def frame_seeds(root) -> list[int]:
    return pd.read_parquet(root / "sim" / "100-2000" / "per_seed.parquet")["seed"].tolist()


def _lengths(preset: str, n: int, seed: int) -> list[float]:
    return [float(r.prompt_tokens) for r in mixed_lengths_workload(preset, n, seed)]


def test_tune_then_sim_write_their_tables_from_disjoint_draws(tmp_path):
    p = load_params("smoke")
    exp = EWSJFExperiments(p, out_root=tmp_path)
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

    # tuning and the partition sample are a draw of their own (seed + offset), never the evaluated requests
    seed, tune_seed = p["seed"], p["seed"] + TUNE_SEED_OFFSET
    tune = json.loads((tmp_path / "tune" / "data.json").read_text())
    assert tune["tuning"]["seed"] == tune_seed != tune["evaluation_seed"] == seed
    assert tune["tuning"]["arrivals_seed"] == tune_seed
    # the re-evaluations (convergence noise) use further tuning draws, never the tuned or the evaluated one
    noise = pd.read_parquet(tmp_path / "tune" / "noise.parquet")
    assert sorted(set(noise.seed)) == [tune_seed + k for k in (1, 2, 3)] and len(noise) == 6
    assert set(noise.params) == {"defaults", "tuned"} and noise.groupby("params").value.nunique().min() > 1
    # the tuning workload the objective simulated is the tune-seed draw, not a prefix of the evaluated one
    _, tuned_reqs, *_ = exp._tune_workload()
    assert [r.prompt_tokens for r in tuned_reqs] == _lengths("100-2000", p["ewsjf_tune_n"], tune_seed)
    evaluated = _lengths("100-2000", p["ewsjf_sim_n"], seed)
    assert [r.prompt_tokens for r in tuned_reqs][:20] != evaluated[:20]
    sweep = json.loads((tmp_path / "sim" / "100-2000" / "sweep.json").read_text())
    assert sweep["data"]["evaluation"]["seed"] == seed and sweep["data"]["evaluation"]["arrivals_seed"] == seed
    assert sweep["seeds"] == list(range(seed, seed + exp.s.sim_seeds))  # the sweep's seeds start at `seed`
    assert (table.n_seeds == exp.s.sim_seeds).all() and sorted(set(frame_seeds(tmp_path))) == sweep["seeds"]
    assert (table.e2e_mean_ci_low <= table.e2e_mean).all() and (table.e2e_mean <= table.e2e_mean_ci_high).all()
    assert sweep["data"]["partition_sample"]["seed"] == sweep["data"]["tuning"]["seed"] == tune_seed
    sample = sweep["policies"]["ewsjf"]["args"]["sample"]  # what the EWSJF queues were partitioned on
    assert sample == _lengths("100-2000", p["ewsjf_sample_n"], tune_seed)
    assert sample[: len(evaluated)] != evaluated
    frame = pd.read_parquet(tmp_path / "sim" / "100-2000" / "requests.parquet")
    ewsjf = frame[(frame.label == "ewsjf") & (frame.load == 1.5) & (frame.seed == seed)].set_index("request_id")
    ids = [f"100-2000-{i}" for i in range(p["ewsjf_sim_n"])]
    assert ewsjf.loc[ids, "prompt_tokens"].tolist() == evaluated  # the evaluated requests are the seed draw
    online = exp.online()
    record = json.loads((tmp_path / "online" / "online.json").read_text())
    assert record["data"] == sweep["data"] and record["n"] == p["ewsjf_sim_n"]
    assert (online.n_ok == p["ewsjf_sim_n"]).all()
    queues = exp.partition()
    assert json.loads((tmp_path / "partitions" / "100-2000.json").read_text())["seed"] == tune_seed
    assert queues[queues.variant == "refine-and-prune"]["count"].sum() == p["ewsjf_sample_n"]


def test_serve_cuts_its_partition_sample_from_prompts_disjoint_from_the_served_ones(tmp_path, pool_texts, tok):
    from llmsched.workload.records import PromptRecord

    p = load_params("smoke")
    exp = EWSJFExperiments({**p, "ewsjf_sample_n": 50}, out_root=tmp_path)
    records = [PromptRecord(f"doc{i}", t, "", "fixture") for i, t in enumerate(pool_texts)]
    pool = len(records) // 2
    reqs, sample, data = exp.serve_workloads(records, tok, pool=pool)
    served, part = data["served"], data["partition_sample"]
    assert served["seed"] == p["seed"] and part["seed"] == p["seed"] + TUNE_SEED_OFFSET
    assert served["record_ids"] and part["record_ids"]
    assert not set(served["record_ids"]) & set(part["record_ids"])
    assert len(reqs) == served["n"] == p["ewsjf_serving_n"] and len(sample) == part["n"] == 50
    served_text = " ".join(r.prompt for r in reqs)
    sample_docs = [t for t in pool_texts[pool: 2 * pool] if len(t) > 80]
    assert not any(t[:80] in served_text for t in sample_docs)  # no sample-pool text was served ...
    assert any(t[:80] in served_text for t in pool_texts[:pool])  # ... while served-pool text was
    with pytest.raises(ValueError, match="prompt records"):
        exp.serve_workloads(records[: pool], tok, pool=pool)


def test_partition_stage_records_queues_of_both_variants(tmp_path):
    exp = EWSJFExperiments(load_params("smoke"), out_root=tmp_path)
    n = exp.p["ewsjf_sample_n"]
    queues = exp.partition()
    assert set(queues.variant) == {"refine-and-prune", "kmeans-only"}
    for _variant, q in queues.groupby("variant"):
        assert q["count"].sum() == n and len(q) <= exp.p["ewsjf_max_queues"]
        assert (q["lo"].to_numpy()[1:] > q["hi"].to_numpy()[:-1]).all()  # contiguous, ordered, disjoint
    # the bimodal 100-2000 mix: some queue below 300 tokens and one above 1800
    assert queues["hi"].min() < 300 and queues["lo"].max() > 1800
    record = json.loads((tmp_path / "partitions" / "100-2000.json").read_text())
    assert record["n"] == n and len(record["refine-and-prune"]) == len(queues[queues.variant == "refine-and-prune"])
    assert len(pd.read_parquet(tmp_path / "partitions" / "lengths.parquet")) == n


def test_online_stage_compares_online_offline_tuned_and_default(tmp_path):
    exp = EWSJFExperiments(load_params("smoke"), out_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="tune stage"):
        exp.online()
    tune = tmp_path / "tune"
    tune.mkdir()
    tuned = {"a_u": 0.0, "b_u": 4.0, "a_f": 0.0, "b_f": 0.5, "w_base": 1.0, "alpha": 3.0}
    (tune / "best.json").write_text(json.dumps(tuned))  # as the tune stage writes it (fast: no study)
    table = exp.online()
    assert list(table.label) == ["ewsjf", "ewsjf-tuned", "ewsjf-online"]
    assert (table.n_ok == exp.p["ewsjf_sim_n"]).all() and table.rate.nunique() == 1  # one evaluation workload
    rows = table.set_index("label")
    assert rows.loc["ewsjf-online", "policy_param_updates"] >= 3
    assert rows.loc["ewsjf-online", "policy_repartitions"] >= 1  # alpha changes re-partitioned the live queues
    assert rows[["ttft_mean", "e2e_mean"]].nunique().min() == 3, "three different sets of decisions"
    trials = pd.read_parquet(tmp_path / "online" / "trials.parquet")
    assert len(trials) >= 3 and (trials.window.diff().dropna() == 1).all()
    assert trials.alpha.nunique() > 1 and trials.n_queues.nunique() > 1  # alpha installed and acting
    assert (trials.time.diff().dropna() >= exp.p["ewsjf_online_every_s"]).all()
    record = json.loads((tmp_path / "online" / "online.json").read_text())
    assert record["tuned"] == tuned and record["windows"] == len(trials)


def test_mixed_lengths_workload_is_deterministic_and_in_range():
    a = mixed_lengths_workload("100-16000", 200, seed=3)
    b = mixed_lengths_workload("100-16000", 200, seed=3)
    assert [r.prompt_tokens for r in a] == [r.prompt_tokens for r in b]
    assert all(100 <= r.prompt_tokens <= 16000 and 1 <= r.output_tokens <= 100 for r in a)
