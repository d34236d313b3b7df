"""The PARS experiments end to end, stage by stage, each cached on disk (the notebooks call the same stages).

    python -m llmsched.experiments.pars --profile cpu [--stages collect,study,sim,proxy,serve]

Stages (inputs → outputs under results/pars/<profile>/):
    collect  ShareGPT prompts → the serving model's response lengths on a train + test subset
             (llmsched.serving.lengths; cached under results/lengths/)
    study    rankers trained on ChatGPT lengths (+ PARS on the model's lengths) → rankers/ tables
             (llmsched.predictors.study; checkpoints under results/predictors/)
    sim      test prompts scored by every ranker → simulator rate sweep at paper scale (analytic GPU profile,
             ShareGPT ChatGPT lengths) → sim/
    proxy    the same on the reasoning proxy (math/code prompts from pars_proxy_pool further ShareGPT prompts,
             used neither for training nor testing; synthetic long-tailed lengths) → sim_proxy/
    headroom where FCFS/policy latency ratios grow (llmsched.experiments.headroom): loads up to 3 × saturation,
             heavier output-length tails, the reasoning proxy and longer runs under overload, with oracle SJF
             beside PARS and LTR → headroom/ (ratios.parquet: where the papers' 15.7× and 2.8× occur, if anywhere)
    serve    the real engine (the profile's model, e.g. SmolLM2-135M-Instruct on CPU) at a load relative to its
             capacity for the served requests (`pars_serving_loads` × capacity, from this engine's checked or
             recalibrated step-time profile: llmsched.experiments.capacity), FCFS / rankers / oracle (and EWSJF with
             `pars_serving_ewsjf`, the head-to-head on the real engine) → serve/ (operating_point.json: the
             capacity, load and rate asked for; runs.parquet: the operating point each run achieved)
    agreement  the serve runs replayed in the simulator with the same step-time profile of the engine
             (`serving_steptime` as checked or recalibrated before the runs, or with `pars_agreement_calibrate`
             one measured right after them), same arrivals and policy arguments → agreement/comparison.csv/.md
    serve_own  (`pars_serving_own`) the real engine answering naturally: the serving model's test prompts in its
             chat template, sampled as when its lengths were collected, stopping at EOS (free mode), scheduled by
             PARS trained on its own lengths ("pars-own") and on ChatGPT's ("pars"), FCFS, and oracle SJF ordering
             by the median of the model's collected samples (its best knowledge of a length it samples anew);
             same load as serve → serve_own/
    reasoning  (gpu profile only: needs the hub and a GPU) a reasoning model's lengths on MATH-plus → PARS
             trained on them → simulator sweep with those measured lengths → reasoning/

Parameters come from the profile YAML (artifact/profiles/<profile>.yaml, keys starting with `pars_`).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from llmsched.experiments.settings import EWSJFSettings, PARSSettings
from llmsched.experiments.stages import run_stages_cli, select_policies
from llmsched.paths import results_dir
from llmsched.policies import PolicySpec
from llmsched.workload import repeat_requests

logger = logging.getLogger(__name__)

STAGES = ("collect", "study", "sim", "proxy", "headroom", "serve", "agreement", "serve_own", "reasoning")
COST_SAMPLE = 16  # requests of each scored set timed for the rankers' scoring cost (scored_test)
CHOICE_DRAWS = 3  # draws of the served requests (seeds after seed + CHOICE_SEED_OFFSET) the load is chosen on
CHOICE_SEED_OFFSET = 1000  # ... never the served draw's seed
RANKERS = ("pars", "ltr", "pointwise")  # the learned rankers that also schedule


class ParsExperiments:
    """The stages of the PARS experiments for one parameter set (a profile's values)."""

    def __init__(self, params: dict[str, Any], out_root: str | Path | None = None) -> None:
        self.p = dict(params)  # the profile's raw parameters, as given (the stages read only `s`)
        self.s = PARSSettings.from_params(params)
        self._ewsjf_max_queues = EWSJFSettings.from_params(params).max_queues
        self.out = Path(out_root) if out_root is not None else results_dir() / "pars" / self.s.profile
        self.out.mkdir(parents=True, exist_ok=True)
        self._split = None
        self._point: Any = None
        self._serve_pool: list | None = None

    # ------------------------------------------------------------------ data
    def split(self):
        """The profile's ShareGPT prompt split (llmsched.predictors.data.sharegpt_split), drawn once and kept under
        results/cache/splits/ (keyed by the data file, the serving model, the split settings and the library's
        source), so every notebook and stage of a profile reads the same prompts without tokenizing the dataset
        again."""
        if self._split is None:
            self._split = self._cached_split()
        return self._split

    def _cached_split(self):
        from llmsched.predictors.data import PromptSplit, model_tokenizer, sharegpt_split
        from llmsched.serving.engine import config_hash
        from llmsched.sim.sweep import code_fingerprint
        from llmsched.workload import load_workload, save_workload
        from llmsched.workload.sharegpt import sharegpt_path

        data = sharegpt_path()
        stat = data.stat()
        key = config_hash({"data": [str(data), stat.st_size, stat.st_mtime_ns], "model": self.s.model,
                           "n_train": self.s.n_train, "n_test": self.s.n_test, "seed": self.s.seed,
                           "max_prompt_tokens": self.s.max_prompt_tokens, "n_extra": self.s.proxy_pool,
                           "code": code_fingerprint()})
        path = results_dir() / "cache" / "splits" / f"{key}.parquet"
        meta = path.with_suffix(".json")
        if path.exists() and meta.exists():
            sizes = json.loads(meta.read_text())
            reqs = load_workload(path)
            a, b = sizes["train"], sizes["train"] + sizes["test"]
            if len(reqs) == b + sizes["extra"]:
                logger.info("prompt split: read %s", path)
                return PromptSplit(train=reqs[:a], test=reqs[a:b], extra=reqs[b:],
                                   repeated_prompts=sizes["repeated_prompts"])
        split = sharegpt_split(model_tokenizer(self.s.model), self.s.n_train, self.s.n_test, seed=self.s.seed,
                               max_prompt_tokens=self.s.max_prompt_tokens, n_extra=self.s.proxy_pool)
        save_workload([*split.train, *split.test, *split.extra], path)
        meta.write_text(json.dumps({"train": len(split.train), "test": len(split.test), "extra": len(split.extra),
                                    "repeated_prompts": split.repeated_prompts}, indent=2) + "\n")
        return split

    def engine(self, **overrides: Any):
        from llmsched.serving.engine import EngineConfig

        return EngineConfig(**{"model": self.s.model, "seed": self.s.seed, **self.s.engine,
                               **overrides})

    # ------------------------------------------------------------------ stages
    def sampling(self) -> Any:
        """How the serving model answers when its lengths are collected (llmsched.serving.lengths.LengthSampling
        from pars_collect_*): also how it answers in the natural-answer runs (serve_own)."""
        from llmsched.serving.lengths import LengthSampling

        extra: dict[str, Any] = dict(self.s.collect_sampling)
        if "stop" in extra:
            extra["stop"] = tuple(extra["stop"])
        return LengthSampling(max_tokens=self.s.collect_max_tokens, n_samples=self.s.collect_samples, **extra)

    def collect(self) -> pd.DataFrame:
        from llmsched.serving.lengths import collect_lengths

        reqs = self.split().collection_set(self.s.collect_train, self.s.collect_test)
        return collect_lengths(reqs, self.engine(max_num_seqs=self.s.collect_max_num_seqs), self.sampling())

    def lengths_table(self) -> pd.DataFrame:
        """One row per collected prompt: split, prompt tokens, ChatGPT's length, the serving model's median length
        over ok samples (the training target) and their spread, share of its samples truncated → lengths.parquet
        (the collection stage's summary)."""
        table = self.collect()
        split = self.split()
        sets = {"train": split.train, "test": split.test}
        ref = {r.request_id: (name, r.prompt_tokens, r.output_tokens) for name, reqs in sets.items() for r in reqs}
        ok = table[table["status"] == "ok"]
        agg = ok.groupby("request_id").agg(model_tokens=("output_tokens", "median"),
                                           model_tokens_min=("output_tokens", "min"),
                                           model_tokens_max=("output_tokens", "max"),
                                           truncated_share=("truncated", "mean"), samples=("sample", "count"))
        rows = [{"request_id": rid, "split": ref[rid][0], "prompt_tokens": ref[rid][1],
                 "chatgpt_tokens": ref[rid][2], **agg.loc[rid].to_dict()}
                for rid in agg.index if rid in ref]
        frame = pd.DataFrame(rows)
        frame.to_parquet(self.out / "lengths.parquet", index=False)
        return frame

    def study(self) -> dict[str, pd.DataFrame]:
        from llmsched.predictors.study import StudyConfig, run_ranker_study

        cfg = StudyConfig(train=dict(self.s.train),
                          ablation_overrides=dict(self.s.ablation),
                          backbones=tuple(self.s.backbones), seeds=tuple(self.s.seeds),
                          partner_seeds=self.s.partner_seeds,
                          backbone_overrides=dict(self.s.backbone_train), backbone_test=self.s.backbone_test,
                          truncations=tuple(self.s.truncations),
                          target_name=self.s.model, seed=self.s.seed)
        return run_ranker_study(self.split(), cfg, self.out / "rankers", target_lengths=self.collect())

    def rankers(self) -> dict[str, Any]:
        """The trained main rankers (from the study's checkpoints; trained if missing)."""
        import numpy as np

        from llmsched.predictors.ranker import train_cached
        from llmsched.predictors.study import StudyConfig

        cfg = StudyConfig(train=dict(self.s.train))
        split = self.split()
        prompts = [r.prompt for r in split.train]
        lengths = np.array([r.output_tokens for r in split.train], dtype=float)
        return {m: train_cached(cfg.train_config(m), prompts, lengths) for m in RANKERS}

    def own_ranker(self) -> Any:
        """PARS trained on the serving model's own lengths (the median of its samples on the collected training
        prompts): the study's checkpoint, trained if missing. ValueError when the profile collected none."""
        import numpy as np

        from llmsched.predictors.ranker import train_cached
        from llmsched.predictors.study import StudyConfig, target_lengths_by_id

        by_id, _ = target_lengths_by_id(self.collect())
        kept = [r for r in self.split().train if r.request_id in by_id]
        if len(kept) < 10:
            raise ValueError(f"PARS on {self.s.model}'s own lengths needs >= 10 collected training prompts, the "
                             f"profile has {len(kept)}: raise pars_collect_train")
        cfg = StudyConfig(train=dict(self.s.train))
        return train_cached(cfg.train_config("pars"), [r.prompt for r in kept],
                            np.array([by_id[r.request_id] for r in kept], dtype=float))

    def scored_test(self, requests=None):
        """Test prompts (or `requests`) with every ranker's score, cached as a workload file."""
        from llmsched.predictors.scheduling import score_workload
        from llmsched.serving.engine import config_hash
        from llmsched.workload import load_workload, save_workload

        requests = list(requests if requests is not None else self.split().test)
        key = config_hash([(r.request_id, r.prompt, r.output_tokens, r.source) for r in requests])
        path = self.out / "scored" / f"{key}.parquet"
        if path.exists():
            return load_workload(path)
        rankers = self.rankers()
        # The scoring cost per request (the PARS overhead claim) is timed on a sample scored the way a serving
        # deployment would score it: every ranker running its own encoder pass, batch by batch.
        sample = requests[:COST_SAMPLE]
        cost = {k: score_workload(sample, {k: r})[1][k] for k, r in rankers.items()}
        for ranker in rankers.values():
            # NOTE: then the probes of one frozen backbone share its vectors of the whole prompt set (encoded once,
            # kept under results/predictors/embeddings): the rankers' scores cost one encoder pass, not one each
            ranker.cache_vectors = True
        scored, reports = score_workload(requests, rankers, batch_size=max(1, len(requests)), progress=True)
        save_workload(scored, path)
        record = {k: {**cost[k].to_dict(), "timed_on": f"the first {len(sample)} requests, one encoder pass per "
                      "ranker", "scored": v.to_dict()} for k, v in reports.items()}
        (path.with_suffix(".json")).write_text(json.dumps(record, indent=2) + "\n")
        return scored

    def _sweep(self, pool, name: str, rankers: tuple[str, ...] = RANKERS, n: int | None = None) -> pd.DataFrame:
        """Rate sweep over the seeds: seed s simulates `n` (default pars_sim_n) requests drawn from `pool` (scored
        prompts) by `repeat_requests(pool, n, seed=s)` with arrivals seeded by s, at pars_sim_loads × that draw's
        saturation throughput, for the pars_sim_seeds seeds from the profile's seed → <name>/ (summary over
        seeds with 95 % intervals, per_seed, requests, sweep.json). $LLMSCHED_SIM_WORKERS caps its processes."""
        from llmsched.predictors.scheduling import ranker_policies
        from llmsched.sim import load_profile
        from llmsched.sim.sweep import seed_sweep, sweep_seeds

        prof = load_profile(self.s.sim_steptime)
        config = prof.sim_config(**self.s.sim_overrides)
        specs = ranker_policies(list(rankers), starvation_limit=self.s.starvation_limit)
        specs["pars-noguard"] = PolicySpec("sjf", {"score_key": "score_pars", "starvation_limit": None})
        seeds = sweep_seeds(self.s.seed, self.s.sim_seeds)
        n = self.s.sim_n if n is None else int(n)
        workloads = {s: repeat_requests(pool, n, seed=s) for s in seeds}
        logger.info("%s: %d seeds x %d loads x %d policies, %d requests each", name, len(workloads),
                    len(self.s.sim_loads), len(specs), n)
        return seed_sweep(workloads, self.s.sim_loads, specs, config, prof.step_time, out_dir=self.out / name,
                          meta={"pool": len(pool), "draw": "repeat_requests: a seeded permutation of the pool "
                                "per cycle"}, desc=name)

    def sim(self) -> pd.DataFrame:
        """Paper-scale sweep: the test prompts (drawn to pars_sim_n requests per seed) with ChatGPT lengths."""
        return self._sweep(self.scored_test(), "sim")

    def proxy(self) -> pd.DataFrame:
        from llmsched.predictors.scheduling import reasoning_proxy
        from llmsched.sim import load_profile

        max_len = load_profile(self.s.sim_steptime).sim_config(**self.s.sim_overrides)
        proxy = reasoning_proxy(self.split().extra, seed=self.s.seed, max_model_len=max_len.max_model_len)
        if len(proxy) < 10:
            raise ValueError(f"only {len(proxy)} math/code prompts among {len(self.split().extra)} extra prompts; "
                             "raise pars_proxy_pool in the profile")
        return self._sweep(self.scored_test(proxy), "sim_proxy", n=self.s.sim_proxy_n)

    def serve_engine(self):
        """The real-engine configuration of the serve stages (its policy is replaced per run)."""
        return self.engine(max_num_seqs=self.s.serving_max_num_seqs)

    def engine_profile(self) -> Any:
        """This engine's step-time profile: `serving_steptime` checked against the engine's speed probe, and
        recalibrated on this engine when it misses (`serving_on_mismatch`), once per engine configuration and
        machine (llmsched.experiments.capacity.engine_profile). The serve stage's capacity, EWSJF's C_prefill in it
        and the agreement stage's replays all take this one profile."""
        from llmsched.experiments.capacity import engine_profile

        return engine_profile(self.s.serving_steptime, self.serve_engine(), on_mismatch=self.s.serving_on_mismatch,
                              quick=self.s.serving_calibration == "quick")

    def _serve_draw(self, seed: int) -> list:
        """pars_serving_n scored test prompts with ChatGPT lengths up to pars_serving_max_output_tokens, drawn with
        `seed` (repeat_requests: a seeded permutation of them), without arrival times."""
        if self._serve_pool is None:
            self._serve_pool = [r for r in self.scored_test() if r.output_tokens <= self.s.serving_max_output_tokens]
        pool = self._serve_pool
        if len(pool) < self.s.serving_n:
            raise ValueError(f"only {len(pool)} test prompts with <= {self.s.serving_max_output_tokens} "
                             f"output tokens, pars_serving_n is {self.s.serving_n}; raise pars_n_test")
        return repeat_requests(pool, self.s.serving_n, seed=seed)

    def operating_point(self) -> Any:
        """The serve stage's load and rate on this engine (llmsched.experiments.capacity.OperatingPoint): rate = load ×
        the engine's capacity for the served requests, simulated with `engine_profile()`. With several
        pars_serving_loads, the load is chosen (capacity.choose_load) on CHOICE_DRAWS draws of the served pool kept
        apart from the served draw (seeds seed + CHOICE_SEED_OFFSET + k): the smallest at which the simulated
        oracle-SJF gain reaches pars_serving_target_gain. Written to serve/operating_point.json."""
        if self._point is None:
            from llmsched.experiments.capacity import OperatingPoint, choose_load

            prof, eng = self.engine_profile(), self.serve_engine()
            loads = self.s.serving_loads
            if len(loads) > 1:
                draws = {self.s.seed + CHOICE_SEED_OFFSET + k: self._serve_draw(self.s.seed + CHOICE_SEED_OFFSET + k)
                         for k in range(CHOICE_DRAWS)}
                load, rows, rule = choose_load(draws, prof, eng, loads, self.s.serving_target_gain)
            else:
                load, rows, rule = loads[0], [], "the profile's one load (pars_serving_loads)"
            self._point = OperatingPoint.at(self._serve_draw(self.s.seed), prof, eng, load, chosen_from=rows,
                                            rule=rule)
            self._point.write(self.out / "serve" / "operating_point.json")
        return self._point

    def _serve_requests(self) -> list:
        """The real-engine workload: `_serve_draw(seed)` with Poisson arrivals (seeded by the profile's seed) at
        the operating point's rate (load × this engine's capacity for them)."""
        from llmsched.workload import assign_arrivals, make_arrivals

        reqs = self._serve_draw(self.s.seed)
        times = make_arrivals("poisson", len(reqs), self.operating_point().rate, seed=self.s.seed)
        return assign_arrivals(reqs, times)

    def serve_kv(self) -> pd.DataFrame:
        """The serve stage's requests and arrivals on an engine with a small KV cache (pars_kv_serving_blocks blocks
        of pars_kv_serving_block_size tokens), under pars_kv_serving_policies (admission-only PARS/LTR beside
        pars-rank and ltr-released: llmsched.experiments.preemption), pars_serving_repeats interleaved runs each →
        serve_kv/ (summary with intervals, runs, paired ratios to FCFS; each run's preemptions per request)."""
        from llmsched.experiments.preemption import check_kv_fits
        from llmsched.predictors.scheduling import ranker_policies
        from llmsched.serving.experiment import compare_policies
        from llmsched.serving.runner import RunConfig

        blocks, size = self.s.kv_serving_blocks, self.s.kv_serving_block_size
        if blocks <= 0:
            raise ValueError("pars_kv_serving_blocks is 0: the small-KV engine runs are off in this profile")
        reqs = self._serve_requests()
        check_kv_fits(blocks, size, reqs, "pars_kv_serving_blocks")
        specs = ranker_policies(list(RANKERS), starvation_limit=self.s.starvation_limit)
        specs = select_policies(specs, self.s.kv_serving_policies)
        extra = {**self.s.engine.get("extra", {}), "block_size": size, "num_gpu_blocks_override": blocks}
        # vLLM needs one request of max_model_len to fit the cache: the context is what the blocks hold (one block is
        # vLLM's null block)
        engine = self.engine(max_num_seqs=self.s.serving_max_num_seqs, max_model_len=(blocks - 1) * size, extra=extra)
        return compare_policies(reqs, engine, specs, self.out / "serve_kv", run=RunConfig(mode="replay"),
                                repeats=self.s.serving_repeats)

    def serve(self) -> pd.DataFrame:
        from llmsched.predictors.scheduling import ranker_policies
        from llmsched.serving.experiment import compare_policies
        from llmsched.serving.runner import RunConfig

        reqs = self._serve_requests()
        specs = ranker_policies(list(RANKERS), starvation_limit=self.s.starvation_limit)
        if self.s.serving_ewsjf:
            # EWSJF on the same workload: queues learned from prompt lengths the engine never serves (the training
            # split's, as many as served), C_prefill from this engine's checked or recalibrated step-time profile
            # (the head-to-head on the real engine)
            from llmsched.experiments.capacity import steptime_ref
            from llmsched.experiments.ewsjf import ewsjf_specs

            sample = [r.prompt_tokens for r in self.split().train[: len(reqs)]]
            specs["ewsjf"] = ewsjf_specs(sample, steptime_ref(self.engine_profile()),
                                         self._ewsjf_max_queues)["ewsjf"]
        specs = select_policies(specs, self.s.serving_policies)
        engine = self.serve_engine()
        # NOTE: each policy runs pars_serving_repeats times, interleaved, each run on a fresh engine probed for its
        # speed first: the summary is the mean over runs with intervals, ratios.parquet the paired ratios to FCFS.
        # Every engine step is recorded (steps.parquet per run): the agreement stage checks the step-time model on
        # the very steps of the runs it replays
        return compare_policies(reqs, engine, specs, self.out / "serve",
                                run=RunConfig(mode="replay", record_steps=True), repeats=self.s.serving_repeats)

    def serve_own(self) -> pd.DataFrame:
        """The serving model answering naturally on the real engine (`serve_own` in the module docstring):
        pars_serving_n collected test prompts in its chat template, scored by PARS trained on its own lengths and on
        ChatGPT's, free-mode sampling as in the collection (its max_tokens, temperature, top-p), Poisson arrivals at
        the serve stage's load × this engine's capacity for them (capacity simulated with the median lengths) →
        serve_own/ (compare_policies' files, operating_point.json)."""
        import dataclasses

        from llmsched.experiments.capacity import OperatingPoint
        from llmsched.models import load_model_tokenizer
        from llmsched.predictors.scheduling import score_workload
        from llmsched.predictors.study import target_lengths_by_id
        from llmsched.serving.experiment import compare_policies
        from llmsched.serving.lengths import _chat_formatter
        from llmsched.workload import assign_arrivals, make_arrivals
        from llmsched.workload.tokens import count_tokens

        if not self.s.serving_own:
            raise ValueError("pars_serving_own is false: the natural-answer runs are off in this profile")
        by_id, _ = target_lengths_by_id(self.collect())
        pool = [dataclasses.replace(r, output_tokens=int(round(by_id[r.request_id])))
                for r in self.split().test if r.request_id in by_id]
        if len(pool) < self.s.serving_n:
            raise ValueError(f"only {len(pool)} test prompts with {self.s.model} lengths, pars_serving_n is "
                             f"{self.s.serving_n}: raise pars_collect_test")
        reqs = repeat_requests(pool, self.s.serving_n, seed=self.s.seed)
        rankers = self.rankers()
        reqs, _ = score_workload(reqs, {"pars": rankers["pars"], "pars-own": self.own_ranker()})
        engine = self.serve_engine()
        # NOTE: scored on the raw prompt (as the rankers were trained), served as the lengths were collected: in
        # the model's chat template (pars_collect_sampling chat) or the collection's prompt template
        sampling = self.sampling()
        fmt = _chat_formatter(engine) if sampling.chat else (lambda text: sampling.template.format(prompt=text))
        texts = [fmt(r.prompt) for r in reqs]
        counts = count_tokens(load_model_tokenizer(self.s.model), texts, add_special_tokens=True)
        reqs = [dataclasses.replace(r, prompt=t, prompt_tokens=int(n)) for r, t, n in zip(reqs, texts, counts,
                                                                                          strict=True)]
        point = OperatingPoint.at(reqs, self.engine_profile(), engine, self.operating_point().load,
                                  rule="the serve stage's load")
        point.write(self.out / "serve_own" / "operating_point.json")
        reqs = assign_arrivals(reqs, make_arrivals("poisson", len(reqs), point.rate, seed=self.s.seed))
        specs = {"fcfs": PolicySpec("fcfs", {}),
                 "pars": PolicySpec("sjf", {"score_key": "score_pars", "starvation_limit": self.s.starvation_limit}),
                 "pars-own": PolicySpec("sjf", {"score_key": "score_pars-own",
                                                "starvation_limit": self.s.starvation_limit}),
                 "oracle-sjf": PolicySpec("oracle-sjf", {})}
        return compare_policies(reqs, engine, specs, self.out / "serve_own", run=sampling.run_config(),
                                repeats=self.s.serving_repeats)

    def agreement(self) -> pd.DataFrame:
        """Simulator vs real engine on the serve stage's runs: same workload, arrivals and policy arguments.
        The table and agreement.json say which calibration the simulator ran with: the profile's name, when and
        on what machine it was measured, and (for a shipped profile) its check against this engine now."""
        import math

        from llmsched.experiments.capacity import profile_state
        from llmsched.records import read_run
        from llmsched.serving.experiment import list_runs
        from llmsched.sim import simulate
        from llmsched.sim.validate import comparison_table, sim_requests, write_table

        root = self.out / "serve"
        # NOTE: the simulator is deterministic, so each label is simulated once and compared with its first run
        # (run 0); the later runs differ from it only by the machine's drift, which the serve summary reports
        first = list_runs(root).sort_values("run").groupby("label", sort=True).first()
        labels, run_dirs = list(first.index), dict(first["dir"])
        prof = self._agreement_profile()
        prov = prof.provenance()
        point_file = root / "operating_point.json"
        at = (f"load {json.loads(point_file.read_text())['load']:g}" if point_file.exists() else "the serve runs")
        check = prof.check.to_dict() if prof.check is not None else None
        pairs = {}
        for label in labels:
            real, config = read_run(run_dirs[label])
            eng = config["engine"]
            limits = {k: eng[k] for k in ("max_num_seqs", "max_num_batched_tokens", "max_model_len")}
            sim = simulate(sim_requests(root, real), prof.sim_config(**limits), prof.step_time, eng["policy"],
                           policy_args=eng.get("policy_args") or {})
            pairs[(f"{self.s.model} @ {at}", label)] = (real, sim.frame)
        table = comparison_table(pairs)
        table["profile"] = prof.name
        table["profile_measured_at"] = prov["measured_at"]
        table["profile_machine"] = prov["machine"]
        table["profile_check_err"] = check["rel_error"] if check else math.nan
        table["profile_check_ok"] = check["ok"] if check else None
        table["profile_state"] = profile_state(prof)
        # the profile against the speed probe each real run recorded just before its requests: how far the
        # calibration was from the engine's speed at the time of the very runs it is compared with
        serve_probe: dict[str, float] = {}
        if prof.measured and "probe_step_ms_mean" in first.columns:
            from llmsched.serving.probe import probe_error

            serve_probe = {label: probe_error(prof, {"probe_step_ms_mean": float(ms)})["rel_error"]
                           for label, ms in first["probe_step_ms_mean"].items()}
        table["serve_probe_step_err"] = [serve_probe.get(label, math.nan) for _, label in table.index]
        steps_err = {label: step_errors(prof, Path(run_dirs[label]) / "steps.parquet") for label in labels}
        table["step_time_err"] = [steps_err[label].get("all", math.nan) for _, label in table.index]
        if self.s.agreement_calibrate:
            verdict = "measured on this machine after the serve runs"
        elif check and check.get("recalibrated_from"):
            verdict = (f"recalibrated on this engine before the runs: the shipped profile missed its speed probe "
                       f"by {check['recalibrated_from']['rel_error']:+.1%}, the recalibrated one by "
                       f"{check['rel_error']:+.1%}")
        elif check:
            verdict = (f"checked against this engine's speed probe at {check['checked_at']}: step time "
                       f"{check['rel_error']:+.1%}, {'within' if check['ok'] else 'OUTSIDE'} "
                       f"{check['tolerance']:.0%}")
        else:
            verdict = "not checked (not a measured profile)"
        header = (f"Simulator ({prof.name}, measured {prov['measured_at']} on {prov['machine']}; {verdict}) vs "
                  "real engine, serve stage")
        write_table(table, self.out / "agreement", header=header)
        (self.out / "agreement" / "agreement.json").write_text(json.dumps({
            "profile": prof.name, "profile_path": str(prof.path) if prof.path else None,
            "profile_measured_at": prov["measured_at"], "profile_machine": prov["machine"], "provenance": prov,
            "profile_check": check, "measured_after_the_runs": bool(self.s.agreement_calibrate),
            "profile_state": profile_state(prof),
            "step_time_err": steps_err,
            "serve_probe_step_err": serve_probe, "policies": labels, "real_run": 0}, indent=2, default=str) + "\n")
        return table

    def _agreement_profile(self) -> Any:
        """The step-time profile the agreement stage simulates with: the one the serve stage's operating point
        came from (`engine_profile`: checked against this engine's probe, recalibrated when stale, the check
        recorded beside the table); with `pars_agreement_calibrate` one measured on this machine right after the
        runs (cached under agreement/calibration/)."""
        from llmsched.sim import load_profile

        folder = self.out / "agreement" / "calibration"
        eng = self.serve_engine()
        if not self.s.agreement_calibrate:
            return self.engine_profile()
        from llmsched.serving.calibrate import calibrate_runner, default_profile_name
        from llmsched.serving.engine import EngineConfig
        from llmsched.serving.runner import EngineRunner

        path = folder / f"{default_profile_name(self.s.model)}-measured.json"
        if not path.exists():
            # the serve runs' very engine (model, dtype, threads, limits), FCFS
            with EngineRunner(EngineConfig.for_policy(eng, "fcfs")) as runner:
                calibrate_runner(runner, path, steps_dir=folder, seed=self.s.seed,
                                 quick=self.s.serving_calibration == "quick", progress=False)
        return load_profile(path)

    def reasoning(self) -> pd.DataFrame:
        """Lengths of a reasoning model on MATH-plus, PARS trained on them, a sweep with the measured lengths."""
        import dataclasses

        import numpy as np

        from llmsched.predictors.data import model_tokenizer
        from llmsched.predictors.ranker import train_cached
        from llmsched.predictors.scheduling import score_workload
        from llmsched.predictors.study import StudyConfig, target_lengths_by_id
        from llmsched.serving.lengths import LengthSampling, collect_lengths
        from llmsched.workload import load_dataset_records, to_requests

        model = self.s.reasoning_model
        if not model:
            raise ValueError("this profile sets no pars_reasoning_model: the reasoning stage runs in the gpu "
                             "profile (a GPU, the hub for model and MATH-plus); offline, the proxy stage stands in")
        records, _ = load_dataset_records(self.s.reasoning_dataset, limit=self.s.reasoning_n * 2)
        reqs, _ = to_requests(records, model_tokenizer(model), limit=self.s.reasoning_n, seed=self.s.seed,
                              max_prompt_tokens=self.s.max_prompt_tokens)
        sampling = LengthSampling(template="{prompt}", stop=(), chat=True,
                                  max_tokens=self.s.reasoning_max_tokens, temperature=0.6, top_p=0.95)
        table = collect_lengths(reqs, self.engine(model=model, max_model_len=self.s.reasoning_max_model_len),
                                sampling)
        by_id, _ = target_lengths_by_id(table)
        measured = [dataclasses.replace(r, output_tokens=int(round(by_id[r.request_id]))) for r in reqs
                    if r.request_id in by_id]
        n_test = max(10, len(measured) // 10)
        train, test = measured[:-n_test], measured[-n_test:]
        cfg = StudyConfig(train=dict(self.s.train))
        pars = train_cached(cfg.train_config("pars"), [r.prompt for r in train],
                            np.array([r.output_tokens for r in train], dtype=float))
        scored, _ = score_workload(test, {"pars": pars})
        return self._sweep(scored, "reasoning", rankers=("pars",))

    def headroom(self) -> pd.DataFrame:
        """Where FCFS/policy latency ratios grow (llmsched.experiments.headroom): FCFS, PARS (guarded and not),
        LTR, oracle SJF and prompt-length SJF over loads, heavier-tailed output lengths (a monotone power
        transform of the ShareGPT lengths), the reasoning proxy and the run length under overload → headroom/
        (ratios.parquet, per_seed.parquet, headroom.json)."""
        from llmsched.experiments.headroom import PROXY, SHAREGPT, check_settings, run_headroom
        from llmsched.predictors.scheduling import reasoning_proxy
        from llmsched.sim import load_profile

        check_settings(self.s)
        pools = {SHAREGPT: self.scored_test()}
        if self.s.headroom_proxy_n:
            limits = load_profile(self.s.sim_steptime).sim_config(**self.s.sim_overrides)
            proxy = reasoning_proxy(self.split().extra, seed=self.s.seed, max_model_len=limits.max_model_len)
            if len(proxy) >= 10:
                pools[PROXY] = self.scored_test(proxy)
        return run_headroom(self.s, pools, self.out / "headroom")


def step_errors(prof: Any, steps_file: Path) -> dict[str, float]:
    """The step-time model of `prof` on a run's recorded engine steps (steps.parquet): (predicted - measured) /
    measured of the summed serving-loop time over the steps with a known cycle, overall ("all") and per step kind
    (prefill, decode, mixed). Empty when the run recorded no steps or the model is not linear: where a replay's
    error comes from the step times themselves rather than from the scheduling the simulator models."""
    from llmsched.steptime.fit import time_errors
    from llmsched.steptime.models import LinearStepTime

    if not steps_file.exists() or not isinstance(prof.step_time, LinearStepTime):
        return {}
    return time_errors(prof.step_time, pd.read_parquet(steps_file))


def _show(stage: str, result: Any) -> None:
    if isinstance(result, pd.DataFrame):
        print(f"== {stage}\n{result.to_string(max_rows=60)}")
    elif isinstance(result, dict):
        for name, frame in result.items():
            if name != "scores":
                print(f"== {stage}: {name}\n{frame.to_string(max_rows=60)}")


def main(argv: list[str] | None = None) -> int:
    return run_stages_cli("python -m llmsched.experiments.pars", __doc__.split("\n")[0], STAGES,
                          ParsExperiments, _show, argv)


if __name__ == "__main__":
    sys.exit(main())
