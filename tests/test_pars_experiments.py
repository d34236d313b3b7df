"""The PARS experiment stages end to end on the smoke profile (tiny model, tiny sizes): files and tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmsched.experiments.pars import ParsExperiments, main
from llmsched.experiments.stages import load_params

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    mp = pytest.MonkeyPatch()
    mp.setenv("LLMSCHED_RESULTS", str(root))
    exp = ParsExperiments(load_params("smoke"))
    yield exp, root
    mp.undo()


def test_stages_write_their_tables(smoke):
    exp, root = smoke
    lengths = exp.collect()
    assert len(lengths) == 40 * 3 and lengths.output_tokens.nunique() > 1  # 3 samples per prompt (smoke)
    assert all(sorted(s.tolist()) == [0, 1, 2] for _, s in lengths.groupby("request_id")["sample"])
    split = exp.split()
    assert not {r.prompt.strip() for r in split.train} & {r.prompt.strip() for r in split.test}  # no text on both sides
    tables = exp.study()
    quality = tables["quality"]
    methods = {"pars", "ltr", "pointwise", "classify", "prompt-length", "random", "oracle"}
    assert set(quality.method) == methods
    assert set(quality.eval_lengths) == {"chatgpt", "tiny"}
    assert (quality[quality.method == "oracle"].kendall_tau > 0.99).all()
    assert set(quality[quality.method.isin(["pars", "ltr"])].path) == {"fine-tuned"}  # smoke fine-tunes its rankers
    assert set(quality[quality.method.isin(["random", "oracle"])].path) == {"-"}
    assert quality.kendall_tau.between(-1, 1).all()
    assert set(tables["ablation_delta"]["delta"]) == {0.0, 0.1, 0.2, 0.4}
    assert len(tables["transfer"]) == 6
    backbones = tables["ablation_backbone"].set_index("backbone")
    assert list(backbones.index) == ["minilm", "tiny"]  # the smoke profile's pars_backbones
    assert dict(backbones.kind) == {"minilm": "encoder", "tiny": "decoder"}
    assert backbones.loc["minilm", "width"] == 384 and (backbones.pooling == "mean").all()
    assert backbones.kendall_tau.between(-1, 1).all() and (backbones.parameters_m > 0).all()
    assert (backbones.n == 30).all() and (tables["ablation_truncation"].n == 30).all()  # pars_backbone_test
    assert (quality[quality.eval_lengths == "chatgpt"].n == 40).all()  # the main comparison keeps every test prompt
    noise = tables["noise"].set_index("target")
    assert noise.loc["tiny", "samples_per_prompt"] == 3 and noise.loc["chatgpt", "samples_per_prompt"] == 1
    tiny_rows = quality[quality.eval_lengths == "tiny"]
    assert 0 <= noise.loc["tiny", "ceiling_median"] <= 1 and noise.loc["tiny", "prompts"] == 20
    assert (tiny_rows.noise_ceiling == noise.loc["tiny", "ceiling_median"]).all()
    assert quality[quality.eval_lengths == "chatgpt"].noise_ceiling.isna().all()  # one sample: not estimable
    per_seed = tables["methods_ablation_settings"]
    assert sorted(set(per_seed.seed)) == [42, 43, 44]  # the smoke profile's pars_seeds
    seeds = tables["methods_seeds"]
    # PARS with the other pair sampling runs on pars_partner_seeds = 1 seed, every other row on all three
    assert sorted(seeds.seeds) == [1] + [3] * (len(seeds) - 1) and seeds.kendall_tau_sd.dropna().ge(0).all()
    assert seeds[seeds.seeds == 1].method.tolist() == ["pars"]
    assert set(seeds.path) == {"probe (frozen encoder)"}
    assert len(per_seed) == 3 * (len(seeds) - 1) + 1
    trunc = tables["ablation_truncation"].set_index("max_tokens")
    assert list(trunc.index) == [16, 64]  # the smoke profile's pars_truncations
    assert trunc.loc[16, "test_prompts_truncated"] > trunc.loc[64, "test_prompts_truncated"]
    for name in ("quality", "transfer", "methods_ablation_settings", "methods_seeds", "noise", "ablation_delta",
                 "ablation_margin", "ablation_backbone", "ablation_truncation", "scores"):
        for ext in ("parquet", "csv", "md"):
            assert (exp.out / "rankers" / f"{name}.{ext}").stat().st_size > 0
    study = json.loads((exp.out / "rankers" / "study.json").read_text())
    assert set(study["runs"]) >= {"pars", "ltr", "pointwise", "classify", "pars-on-tiny", "pars-backbone-minilm",
                                  "pars-backbone-tiny"}

    sim = exp.sim()
    assert set(sim.label) == {"fcfs", "pars", "pars-released", "pars-rank", "ltr", "ltr-released", "pointwise",
                              "oracle-sjf", "pars-noguard"}
    assert len(sim) == 9 * 2 and (sim.n_ok == 400).all()
    seeds = list(range(exp.s.seed, exp.s.seed + exp.s.sim_seeds))
    assert (sim.n_seeds == len(seeds)).all() and (sim.e2e_mean_ci_low <= sim.e2e_mean).all()
    per_seed = pd.read_parquet(exp.out / "sim" / "per_seed.parquet")
    assert sorted(set(per_seed.seed)) == seeds and len(per_seed) == len(sim) * len(seeds)
    assert json.loads((exp.out / "sim" / "sweep.json").read_text())["seeds"] == seeds
    proxy = exp.proxy()
    assert (pd.read_parquet(exp.out / "sim_proxy" / "requests.parquet").source == "sharegpt-reasoning-proxy").all()
    assert len(proxy) == 18 and (proxy.n_ok == 200).all()  # pars_sim_proxy_n requests per run
    costs = [json.loads(f.read_text()) for f in (exp.out / "scored").glob("*.json")]
    assert costs and all(set(c) == {"pars", "ltr", "pointwise"} for c in costs)
    # the scoring cost is timed on a sample with one encoder pass per ranker; every request is scored
    assert all(0 < c["pars"]["n_requests"] <= 16 and c["pars"]["seconds"] > 0 for c in costs)
    assert all(c[k]["scored"]["scored"] == c[k]["scored"]["n_requests"] for c in costs for k in c)

    served = exp.serve()
    assert list(served.index) == exp.p["pars_serving_policies"]  # ewsjf among them: the real-engine head-to-head
    assert (served.n_ok == 10).all()
    released = json.loads((exp.out / "serve" / "pars-released" / "run-0" / "config.json").read_text())["engine"]
    assert released["policy"] == "pars-released" and released["policy_args"] == {"score_key": "score_pars"}
    ewsjf_run = exp.out / "serve" / "ewsjf" / "run-0"
    ewsjf_args = json.loads((ewsjf_run / "config.json").read_text())["engine"]["policy_args"]
    # EWSJF's queues are learned from prompts the engine does not serve: the training split's
    assert ewsjf_args["sample"] == [r.prompt_tokens for r in exp.split().train[:10]]
    # C_prefill from the engine's checked (here: recalibrated) step-time profile, carried as the model itself
    prof = exp.engine_profile()
    assert prof.check is not None and prof.check.recalibrated_from is not None  # Gemma's profile, the tiny engine
    assert ewsjf_args["steptime"] == prof.step_time.to_dict()
    # the operating point: load x this engine's capacity for the served requests, chosen on other draws
    point = json.loads((exp.out / "serve" / "operating_point.json").read_text())
    assert point["load"] in exp.p["pars_serving_loads"] and point["profile_state"] == "recalibrated"
    assert point["rate"] == pytest.approx(point["load"] * point["capacity"]) and point["capacity"] > 0
    assert {r["seed"] for r in point["chosen_from"]}.isdisjoint({exp.s.seed})
    runs = pd.read_parquet(exp.out / "serve" / "runs.parquet")
    assert runs.offered_rate.gt(0).all() and runs.waited_share.between(0, 1).all()

    agreement = exp.agreement()  # the same runs replayed in the simulator
    assert sorted(agreement.index.get_level_values("policy")) == sorted(served.index)
    assert (agreement.n_sim == agreement.n_real).all()
    assert agreement.e2e_mean_sim.gt(0).all() and agreement.e2e_mean_err.notna().all()
    assert (exp.out / "agreement" / "comparison.md").stat().st_size > 0
    steps_err = json.loads((exp.out / "agreement" / "agreement.json").read_text())["step_time_err"]
    assert set(steps_err) == set(served.index) and all("all" in v for v in steps_err.values())

    # the model answering naturally: free mode, PARS trained on its own lengths beside ChatGPT's, oracle by medians
    # (off in the smoke pipeline, whose tiny-model answers all hit the cap; the collected lengths here vary)
    own_exp = ParsExperiments({**exp.p, "pars_serving_own": True}, out_root=exp.out)
    own = own_exp.serve_own()
    assert sorted(own.index) == ["fcfs", "oracle-sjf", "pars", "pars-own"] and (own.n_ok == 10).all()
    run_cfg = json.loads((exp.out / "serve_own" / "pars-own" / "run-0" / "config.json").read_text())
    assert run_cfg["run"]["mode"] == "free" and run_cfg["engine"]["policy_args"]["score_key"] == "score_pars-own"
    wl = pd.read_parquet(exp.out / "serve_own" / "workload.parquet")
    medians = exp.lengths_table().set_index("request_id")["model_tokens"]
    ids = wl.request_id.str.split("~").str[0]  # repeat_requests' ids: <id>~<cycle>
    assert (wl.output_tokens.to_numpy() == medians.loc[ids].round().astype(int).to_numpy()).all()

    table = exp.lengths_table()
    assert len(table) == 40 and set(table.split) == {"train", "test"}
    assert table.model_tokens.ge(0).all() and table.truncated_share.between(0, 1).all()
    assert (exp.out / "lengths.parquet").exists()


def test_head_to_head_learns_ewsjf_queues_apart_from_the_evaluated_requests(smoke):
    from llmsched.experiments.headtohead import HeadToHead

    exp, _ = smoke
    h2h = HeadToHead(exp.p, out_root=exp.out / "h2h", pars_root=exp.out)
    split = exp.split()
    assert not {r.request_id for r in split.train} & {r.request_id for r in split.test}
    sample, where = h2h.partition_sample("sharegpt")  # the sweep serves the test split
    assert sample == [r.prompt_tokens for r in split.train[: exp.p["ewsjf_sample_n"]]] and "training" in where
    mixed, where = h2h.partition_sample("mixed")
    assert len(mixed) == exp.p["ewsjf_sample_n"] and f"seed {exp.p['seed'] + 1000}" in where
    assert h2h.policies("mixed")["ewsjf"].args["sample"] == [float(x) for x in mixed]

    # each seed serves its own draw of each workload; the summary pools the seeds at every load
    two = HeadToHead({**exp.p, "h2h_seeds": 2}, out_root=exp.out / "h2h", pars_root=exp.out)
    assert two.seeds() == [exp.p["seed"], exp.p["seed"] + 1]
    draws = [[r.prompt_tokens for r in two.workload("mixed", s)] for s in two.seeds()]
    assert draws[0] != draws[1] and draws[0] == [r.prompt_tokens for r in two.workload("mixed")]
    table = two.run()
    assert set(table.workload) == {"sharegpt", "mixed"} and (table.n_seeds == 2).all()
    assert len(table) == 2 * len(two.policies("mixed")) * len(exp.p["h2h_loads"])
    assert (table.ttft_mean_ci_low <= table.ttft_mean).all() and (table.ttft_mean <= table.ttft_mean_ci_high).all()
    per_seed = pd.read_parquet(exp.out / "h2h" / "mixed" / "per_seed.parquet")
    assert sorted(set(per_seed.seed)) == two.seeds() and per_seed.groupby("seed").capacity.first().nunique() == 2


def test_serving_policy_list_is_checked(smoke):
    exp, _ = smoke
    bad = ParsExperiments({**exp.p, "pars_serving_policies": ["fcfs", "nope"]}, out_root=exp.out)
    with pytest.raises(ValueError, match=r"unknown serving policies \['nope'\]"):
        bad.serve()


def test_reasoning_stage_needs_the_gpu_profile(smoke):
    exp, _ = smoke
    with pytest.raises(ValueError, match="gpu profile"):
        exp.reasoning()


def test_backbone_test_sample_is_checked():
    from llmsched.predictors.study import StudyConfig

    with pytest.raises(ValueError, match="backbone_test must be None or >= 10 test prompts, got 5"):
        StudyConfig(backbone_test=5)
    assert StudyConfig(backbone_test=10).backbone_test == 10


def test_cli_rejects_unknown_stage_and_profile(capsys):
    with pytest.raises(SystemExit):
        main(["--profile", "smoke", "--stages", "bogus"])
    assert "unknown stages" in capsys.readouterr().err
    with pytest.raises(ValueError, match="valid profiles"):
        load_params("nope")


def test_the_prompt_split_is_drawn_once_and_read_back(smoke, caplog):
    exp, root = smoke
    first = exp.split()
    files = list((root / "cache" / "splits").glob("*.parquet"))
    assert len(files) == 1
    with caplog.at_level("INFO", logger="llmsched.experiments.pars"):
        again = ParsExperiments(load_params("smoke")).split()
    assert "prompt split: read" in caplog.text
    assert again.train == first.train and again.test == first.test and again.extra == first.extra
    assert again.repeated_prompts == first.repeated_prompts
    other = ParsExperiments({**load_params("smoke"), "seed": 1}).split()  # another draw, its own file
    assert [r.request_id for r in other.test] != [r.request_id for r in first.test]
    assert len(list((root / "cache" / "splits").glob("*.parquet"))) == 2
