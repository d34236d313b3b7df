"""The EWSJF experiments in the simulator: mixed prompt lengths across request rates, policies and ablations.

    python -m llmsched.experiments.ewsjf --profile cpu [--stages partition,tune,sim,online,serve]

    partition  Refine-and-Prune on each preset's partition sample (and K-means only, the no-refine ablation) →
          partitions/<preset>.json (boundaries and per-queue count, mean, std, density) + lengths.parquet
    tune  offline Bayesian meta-optimisation (SimObjective, seeded TPE, sqlite under
          results/ewsjf/<profile>/tune/study.sqlite, resumable) on the 100-2000 tuning workload at
          `ewsjf_tune_load` × saturation → tune/ (trials.parquet, best.json, data.json), and the defaults and
          tuned parameters re-evaluated on `ewsjf_tune_noise_seeds` further tuning draws → tune/noise.parquet
    sim   for each preset (100-2000, 100-16000; bimodal short/long mix, outputs 1-100 tokens, Poisson arrivals)
          and each load (rate / saturation throughput): FCFS, prompt-length SJF, EWSJF (default parameters),
          EWSJF with the tuned parameters, the authors' released variant, and ablations (no refine = K-means only,
          no bubbles) → sim/<preset>/summary.parquet + requests.parquet + sweep.json
    serve the real engine at reduced scale (the profile's model, e.g. SmolLM2-135M-Instruct on CPU): the
          100-2000 mixed workload cut from real ShareGPT text, Poisson arrivals at `ewsjf_serving_load` × the
          engine's capacity for it (llmsched.experiments.capacity), FCFS / prompt-length SJF / EWSJF / released
          variant, C_prefill from the engine's checked or recalibrated step-time profile, each policy
          `ewsjf_serving_repeats` times interleaved → serve/ (llmsched.serving.experiment's files, + data.json,
          operating_point.json, prefill_profile.json)
    online the evaluation workload of the 100-2000 preset at the tuning load, three ways: EWSJF with default
          parameters, with the offline-tuned ones (tune/best.json), and re-tuned online (meta.OnlineTuner, every
          `ewsjf_online_every_s` seconds of simulated time from the live window, starting from the defaults)
          → online/summary.parquet (three rows) + trials.parquet (one row per window) + online.json

Tuning and evaluation never share data. Evaluated requests (sim, online, serve) are drawn with `seed`; the
partition sample (`ewsjf_sample_n` prompt lengths the queues are learned from, in partition, sim, online and
serve) and the tuning workload (`ewsjf_tune_n` requests and their arrivals) are a separate draw with
seed + TUNE_SEED_OFFSET; serve cuts its partition sample from ShareGPT prompts disjoint from the served ones
(the next SERVE_POOL records). Each stage records the seeds (and for serve the prompt ids) in its JSON output.

Step-time model: the analytic A100-80GB / Llama-2-13B profile (`ewsjf_sim_steptime`); the 100-16000 preset
needs a 16k context, beyond Llama-2-13B's 4,096, so its runs raise max_model_len to 16,384 with the same
per-token costs (a stated extrapolation). Metrics per run: the summary metrics (token throughput, E2E, TTFT,
worst queueing delay = queue_delay_max) plus mean TTFT of short and of long requests (prompt below / above the
middle of the range), and utilisation = share of the step token budget used, averaged over engine time.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.analysis.metrics import summarize
from llmsched.experiments.settings import EWSJFSettings
from llmsched.experiments.stages import select_policies
from llmsched.paths import results_dir
from llmsched.policies import PolicySpec
from llmsched.policies.ewsjf.meta import LAMBDAS, balance, compactness, reward
from llmsched.policies.ewsjf.partition import DEFAULT_MAX_QUEUES, Partition, refine_and_prune
from llmsched.policies.ewsjf.queue import EWSJFQueue
from llmsched.policies.ewsjf.scoring import EWSJFParams
from llmsched.sim import simulate

logger = logging.getLogger(__name__)

STAGES = ("partition", "tune", "sim", "online", "serve")
TUNE_SEED_OFFSET = 1000  # the tuning/partition draw's seed = seed + this (the evaluated requests use seed)
SERVE_POOL = 2000  # ShareGPT prompts per pool: served prompts are cut from the first, the partition sample's from
#                    the next (disjoint records)
ONLINE_PRESET = "100-2000"  # the tuning workload's preset (tune) and the online comparison's


def mixed_lengths_workload(preset: str, n: int, seed: int, distribution: str = "bimodal") -> list[Any]:
    """Requests with EWSJF's mixed prompt lengths and short outputs (no prompt text: simulator only)."""
    from llmsched.workload import Request
    from llmsched.workload.mixed import MixedConfig, draw_prompt_lengths

    cfg = MixedConfig.preset(preset, n=n, distribution=distribution)
    rng = np.random.default_rng(seed)
    prompts = draw_prompt_lengths(cfg, rng)
    outputs = rng.integers(cfg.output_lo, cfg.output_hi, size=n, endpoint=True)
    return [Request(f"{preset}-{i}", "", int(p), int(o), source=cfg.source)
            for i, (p, o) in enumerate(zip(prompts, outputs, strict=True))]


def ewsjf_specs(sample: Sequence[float], steptime: Any, max_queues: int) -> dict[str, PolicySpec]:
    """Policy specs of EWSJF (C_prefill from `steptime`, a step-time model or profile name) and the authors'
    released variant, both with queues learned from `sample` (prompt lengths)."""
    sample = [float(x) for x in sample]
    return {"ewsjf": PolicySpec("ewsjf", {"sample": sample, "steptime": steptime, "max_queues": max_queues}),
            "ewsjf-released": PolicySpec("ewsjf-released", {"sample": sample, "max_queues": max_queues})}


def run_metrics(frame: pd.DataFrame, steps: pd.DataFrame, budget: int, split_at: float) -> dict[str, float]:
    from llmsched.analysis.metrics import per_request, summarize

    out = dict(summarize(frame))
    m = per_request(frame)
    ok = m["status"] == "ok"
    short = ok & (m["prompt_tokens"] <= split_at)
    out["ttft_short_mean"] = float(m.loc[short, "ttft"].mean())
    out["ttft_long_mean"] = float(m.loc[ok & ~short, "ttft"].mean())
    dur = (steps["end"] - steps["start"]).to_numpy()
    out["utilisation"] = float((steps["scheduled_tokens"].to_numpy() / budget * dur).sum() / dur.sum())
    return out


def sweep_metrics(result: Any, config: Any, split_at: float) -> dict[str, Any]:
    """run_metrics of a simulated run plus its policy's counters (`policy_<name>`): the sim stage's columns."""
    return {**run_metrics(result.frame, result.steps, config.max_num_batched_tokens, split_at),
            **{f"policy_{k}": v for k, v in result.stats.get("policy_stats", {}).items()}}


@dataclass
class SimObjective:
    """EWSJF's offline meta-optimisation objective (R of llmsched.policies.ewsjf.meta): simulate `requests`
    under EWSJF with trial parameters.

    base_args are further EWSJFQueue arguments (e.g. max_queues, profile, max_wait_s); the FCFS reference TTFT
    is simulated once.
    """

    requests: list[Any]
    config: Any
    step_time: Any
    base_args: Mapping[str, Any]
    lambdas: Sequence[float] = LAMBDAS

    def __post_init__(self) -> None:
        # a step-time profile named in base_args is loaded once here, not once per trial
        self.base_args = EWSJFQueue.resolve_args(self.base_args)
        self.sample = [float(r.prompt_tokens) for r in self.requests]
        self.fcfs_ttft = float(summarize(simulate(self.requests, self.config, self.step_time, "fcfs").frame)
                               ["ttft_mean"])

    def __call__(self, params: EWSJFParams) -> tuple[float, dict[str, float]]:
        max_q = int(self.base_args.get("max_queues", DEFAULT_MAX_QUEUES))
        try:
            part = refine_and_prune(self.sample, alpha=params.alpha, max_queues=max_q)
        except ValueError:
            part = Partition.single(self.sample)
        args = {**self.base_args, "sample": self.sample, "params": params.to_dict()}
        res = simulate(self.requests, self.config, self.step_time, "ewsjf", policy_args=args)
        ttft = float(summarize(res.frame)["ttft_mean"])
        terms = {"C": compactness(part), "L": balance([s.count for s in part.stats]), "S": len(part) / max_q,
                 "U": ttft / self.fcfs_ttft if self.fcfs_ttft > 0 else math.nan, "ttft_mean": ttft,
                 "n_queues": len(part)}
        return reward(terms["C"], terms["L"], terms["S"], terms["U"], self.lambdas), terms


class EWSJFExperiments:
    def __init__(self, params: dict[str, Any], out_root: str | Path | None = None) -> None:
        self.p = dict(params)  # the profile's raw parameters, as given (the stages read only `s`)
        self.s = EWSJFSettings.from_params(params)
        self.out = Path(out_root) if out_root is not None else results_dir() / "ewsjf" / self.s.profile
        self.out.mkdir(parents=True, exist_ok=True)

    def _engine(self, preset: str):
        from llmsched.sim import load_profile

        prof = load_profile(self.s.sim_steptime)
        hi = int(preset.split("-")[1])
        max_len = max(prof.engine["max_model_len"], 16384 if hi > 4000 else 0)
        return prof.sim_config(max_model_len=max_len), prof.step_time

    @property
    def tune_seed(self) -> int:
        """Seed of the tuning side: partition sample and tuning workload (never the evaluated requests' seed)."""
        return int(self.s.seed) + TUNE_SEED_OFFSET

    def _requests(self, preset: str) -> list[Any]:
        """The evaluated requests of `preset` (seed `seed`)."""
        return mixed_lengths_workload(preset, self.s.sim_n, self.s.seed)

    def _sample(self, preset: str) -> list[float]:
        """The partition sample of `preset`: `ewsjf_sample_n` prompt lengths of the tuning-side draw."""
        return [float(r.prompt_tokens)
                for r in mixed_lengths_workload(preset, self.s.sample_n, self.tune_seed)]

    def data_record(self) -> dict[str, Any]:
        """Which draw each part of the simulator experiments uses (written into their JSON outputs)."""
        return {"evaluation": {"seed": int(self.s.seed), "n": self.s.sim_n,
                               "arrivals_seed": int(self.s.seed)},
                "partition_sample": {"seed": self.tune_seed, "n": self.s.sample_n},
                "tuning": {"seed": self.tune_seed, "n": self.s.tune_n, "preset": ONLINE_PRESET,
                           "load": self.s.tune_load, "arrivals_seed": self.tune_seed},
                "tune_seed_offset": TUNE_SEED_OFFSET}

    def partition(self) -> pd.DataFrame:
        """Refine-and-Prune (and K-means only) on each preset's partition sample; one row per queue."""
        from llmsched.policies.ewsjf.partition import refine_and_prune
        from llmsched.policies.ewsjf.scoring import EWSJFParams

        out = self.out / "partitions"
        out.mkdir(parents=True, exist_ok=True)
        alpha, rows, lengths = EWSJFParams().alpha, [], []
        for preset in self.s.presets:
            sample = self._sample(preset)
            lengths.append(pd.DataFrame({"preset": preset, "prompt_tokens": sample}))
            record = {"preset": preset, "n": len(sample), "seed": self.tune_seed, "alpha": alpha,
                      "max_queues": self.s.max_queues}
            # NOTE: K-means only = no gap can exceed alpha x the mean gap (the queue's refine=False does the same)
            for variant, a in (("refine-and-prune", alpha), ("kmeans-only", 1e300)):
                part = refine_and_prune(sample, alpha=a, max_queues=self.s.max_queues)
                stats = [{"queue": i, "lo": s.lo, "hi": s.hi, "count": s.count, "mean": s.mean, "std": s.std,
                          "density": s.density} for i, s in enumerate(part.stats)]
                record[variant] = stats
                rows += [{"preset": preset, "variant": variant, **st} for st in stats]
            (out / f"{preset}.json").write_text(json.dumps(record, indent=2) + "\n")
        pd.concat(lengths, ignore_index=True).to_parquet(out / "lengths.parquet", index=False)
        table = pd.DataFrame(rows)
        table.to_parquet(out / "queues.parquet", index=False)
        return table

    def _tune_workload(self, seed: int | None = None):
        """The tuning workload: its own draw (tune_seed, or `seed`) of the 100-2000 preset at ewsjf_tune_load ×
        capacity."""
        from llmsched.sim.sweep import saturation_throughput
        from llmsched.workload import assign_arrivals, make_arrivals

        seed = self.tune_seed if seed is None else seed
        preset = ONLINE_PRESET
        config, st = self._engine(preset)
        reqs = mixed_lengths_workload(preset, self.s.tune_n, seed)
        cap = saturation_throughput(reqs, config, st)
        reqs = assign_arrivals(reqs, make_arrivals("poisson", len(reqs), cap * self.s.tune_load, seed=seed))
        return preset, reqs, config, st, cap

    def tune_noise(self, best: EWSJFParams) -> pd.DataFrame:
        """The defaults and the tuned parameters re-evaluated on `ewsjf_tune_noise_seeds` further draws of the
        tuning workload (seeds after tune_seed, never the evaluated requests'): how much the objective moves with
        the draw alone (the noise a convergence verdict must beat), and whether the tuned gain holds on data the
        tuner never saw. One row per (draw, parameters)."""
        rows = []
        for k in range(1, self.s.tune_noise_seeds + 1):
            seed = self.tune_seed + k
            _, reqs, config, st, _ = self._tune_workload(seed)
            obj = SimObjective(reqs, config, st, self._base_args())
            for name, params in (("defaults", EWSJFParams()), ("tuned", best)):
                value, terms = obj(params)
                rows.append({"seed": seed, "params": name, "value": value, **terms})
        return pd.DataFrame(rows)

    def tune(self) -> tuple[dict[str, float], pd.DataFrame]:
        from llmsched.policies.ewsjf.meta import optimize

        preset, reqs, config, st, cap = self._tune_workload()
        obj = SimObjective(reqs, config, st, self._base_args())
        # NOTE: the study's name names its data, so a changed tuning draw starts a new study instead of resuming
        # one whose trials were scored on other requests
        name = f"ewsjf-{preset}-n{len(reqs)}-load{self.s.tune_load}-seed{self.tune_seed}"
        best, hist = optimize(obj, self.s.tune_trials, seed=self.s.seed,
                              storage=self.out / "tune" / "study.sqlite", name=name)
        hist.to_parquet(self.out / "tune" / "trials.parquet", index=False)
        self.tune_noise(best).to_parquet(self.out / "tune" / "noise.parquet", index=False)
        (self.out / "tune" / "best.json").write_text(json.dumps(best.to_dict(), indent=2) + "\n")
        (self.out / "tune" / "data.json").write_text(json.dumps(
            {"study": name, "rate": cap * self.s.tune_load, "tuning": self.data_record()["tuning"],
             "evaluation_seed": int(self.s.seed)}, indent=2) + "\n")
        return best.to_dict(), hist

    def _base_args(self) -> dict[str, Any]:
        return {"max_queues": self.s.max_queues, "steptime": self.s.sim_steptime}

    def _tuned(self) -> dict[str, float]:
        best_file = self.out / "tune" / "best.json"
        if not best_file.exists():
            raise FileNotFoundError(f"{best_file} is missing: run the tune stage first (--stages tune)")
        return json.loads(best_file.read_text())

    def sim(self) -> pd.DataFrame:
        """Each preset's sweep over `ewsjf_sim_seeds` seeds (seed, seed + 1, ...): seed s evaluates its own draw of
        the preset (`ewsjf_sim_n` requests) with arrivals seeded by s, at `ewsjf_sim_loads` × that draw's
        saturation throughput; the policies (and their partition sample) are the same for every seed →
        sim/<preset>/ (summary over seeds with 95 % intervals, per_seed, requests, sweep.json)."""
        import functools

        from llmsched.sim.sweep import seed_sweep, sweep_seeds

        if self.s.sim_seeds > TUNE_SEED_OFFSET:
            raise ValueError(f"ewsjf_sim_seeds={self.s.sim_seeds} would reach the tuning draw's seed (seed + "
                             f"{TUNE_SEED_OFFSET}); use at most {TUNE_SEED_OFFSET} seeds")
        seeds = sweep_seeds(self.s.seed, self.s.sim_seeds)
        tuned = self._tuned()
        tables = []
        for preset in self.s.presets:
            config, st = self._engine(preset)
            both = ewsjf_specs(self._sample(preset), self.s.sim_steptime, self.s.max_queues)
            base = both["ewsjf"].args
            specs = {
                "fcfs": PolicySpec("fcfs", {}), "prompt-sjf": PolicySpec("prompt-sjf", {}),
                "ewsjf": both["ewsjf"], "ewsjf-tuned": PolicySpec("ewsjf", {**base, "params": tuned}),
                "ewsjf-released": both["ewsjf-released"],
                "ewsjf-norefine": PolicySpec("ewsjf", {**base, "refine": False}),
                "ewsjf-nobubbles": PolicySpec("ewsjf", {**base, "bubbles": False}),
            }
            lo, hi = (int(x) for x in preset.split("-"))
            workloads = {s: mixed_lengths_workload(preset, self.s.sim_n, s) for s in seeds}
            table = seed_sweep(workloads, self.s.sim_loads, specs, config, st,
                               metrics=functools.partial(sweep_metrics, split_at=(lo + hi) / 2), trace_steps=True,
                               keys={"preset": preset}, out_dir=self.out / "sim" / preset,
                               meta={"tuned": tuned, "data": self.data_record()}, desc=f"ewsjf sim {preset}")
            tables.append(table)
        return pd.concat(tables, ignore_index=True)

    def online(self) -> pd.DataFrame:
        """EWSJF on the evaluation workload (100-2000 at the tuning load) with default, offline-tuned and
        online-tuned parameters: one row each. The queues of all three start from the partition sample."""
        from llmsched.policies.ewsjf.meta import OnlineTuner
        from llmsched.policies.ewsjf.queue import EWSJFQueue
        from llmsched.sim import simulate
        from llmsched.sim.sweep import saturation_throughput
        from llmsched.workload import assign_arrivals, make_arrivals

        tuned = self._tuned()
        preset, load = ONLINE_PRESET, self.s.tune_load
        config, st = self._engine(preset)
        reqs = self._requests(preset)
        cap = saturation_throughput(reqs, config, st)
        reqs = assign_arrivals(reqs, make_arrivals("poisson", len(reqs), cap * load, seed=self.s.seed))
        sample = self._sample(preset)
        out = self.out / "online"
        out.mkdir(parents=True, exist_ok=True)
        tuner = OnlineTuner(every_s=self.s.online_every_s, seed=self.s.seed)
        lo, hi = (int(x) for x in preset.split("-"))
        rows = []
        for label, params, tn in (("ewsjf", None, None), ("ewsjf-tuned", tuned, None),
                                  ("ewsjf-online", None, tuner)):
            queue = EWSJFQueue(sample=sample, params=params, tuner=tn, **self._base_args())
            res = simulate(reqs, config, st, queue, trace_steps=True)
            rows.append({"preset": preset, "label": label, "load": load, "rate": cap * load,
                         **run_metrics(res.frame, res.steps, config.max_num_batched_tokens, (lo + hi) / 2),
                         **{f"policy_{k}": v for k, v in res.stats.get("policy_stats", {}).items()}})
        trials = pd.DataFrame(tuner.log)
        if len(trials):
            trials.insert(0, "window", range(len(trials)))
            trials["best_so_far"] = trials["value"].cummax()
        trials.to_parquet(out / "trials.parquet", index=False)
        table = pd.DataFrame(rows)
        table.to_parquet(out / "summary.parquet", index=False)
        (out / "online.json").write_text(json.dumps({
            "every_s": self.s.online_every_s, "windows": len(trials), "preset": preset, "n": len(reqs),
            "load": load, "rate": cap * load, "tuned": tuned, "data": self.data_record()}, indent=2) + "\n")
        return table

    def serve_workloads(self, records: Sequence[Any], tokenizer: Any, pool: int = SERVE_POOL,
                        ) -> tuple[list[Any], list[float], dict[str, Any]]:
        """The served requests and the partition sample of the serve stage, from disjoint prompt pools.

        records    ShareGPT prompt records (record_id, prompt), at least 2 × pool of them
        Returns the served requests (100-2000 mix cut from records[:pool], seed `seed`, no arrival times yet:
        `serve` sets them from the engine's capacity), the partition sample (ewsjf_sample_n prompt lengths of the
        same mix cut from records[pool:2·pool], seed tune_seed) and the record of both (seeds, pool record ids).
        """
        from llmsched.workload.mixed import MixedConfig, mixed_workload

        if len(records) < 2 * pool:
            raise ValueError(f"serve needs 2 x {pool} prompt records (served and sample pools), got {len(records)}")
        served_pool, sample_pool = records[:pool], records[pool:2 * pool]
        cfg = MixedConfig.preset("100-2000", n=self.s.serving_n, distribution="bimodal")
        reqs = mixed_workload(cfg, tokenizer, [r.prompt for r in served_pool], seed=self.s.seed)
        cfg_sample = MixedConfig.preset("100-2000", n=self.s.sample_n, distribution="bimodal")
        sample = [float(r.prompt_tokens)
                  for r in mixed_workload(cfg_sample, tokenizer, [r.prompt for r in sample_pool], seed=self.tune_seed)]
        data = {"served": {"seed": int(self.s.seed), "n": len(reqs), "pool": [0, pool],
                           "record_ids": [r.record_id for r in served_pool]},
                "partition_sample": {"seed": self.tune_seed, "n": len(sample), "pool": [pool, 2 * pool],
                                     "record_ids": [r.record_id for r in sample_pool]}}
        return reqs, sample, data

    @staticmethod
    def checked_prefill_profile(s: EWSJFSettings, engine: Any, folder: Path) -> Any:
        """The step-time profile of runs on `engine` (llmsched.experiments.capacity.engine_profile): serving_steptime
        checked against this engine's speed probe, recalibrated on this engine when it misses (the default), once
        per engine configuration. EWSJF's C_prefill and the runs' operating point come from it; the check is kept
        in <folder>/prefill_profile.json."""
        from llmsched.experiments.capacity import engine_profile, profile_state

        checked = engine_profile(s.serving_steptime, engine, on_mismatch=s.serving_on_mismatch,
                                 quick=s.serving_calibration == "quick")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prefill_profile.json").write_text(json.dumps(
            {**checked.provenance(), "state": profile_state(checked),
             "check": checked.check.to_dict() if checked.check is not None else None}, indent=2, default=str) + "\n")
        return checked

    def serve(self) -> pd.DataFrame:
        from llmsched.experiments.capacity import OperatingPoint, steptime_ref
        from llmsched.models import load_model_tokenizer
        from llmsched.serving.engine import EngineConfig
        from llmsched.serving.experiment import compare_policies
        from llmsched.serving.runner import RunConfig
        from llmsched.workload import assign_arrivals, load_sharegpt, make_arrivals

        records, _ = load_sharegpt()
        reqs, sample, data = self.serve_workloads(records, load_model_tokenizer(self.s.model))
        (self.out / "serve").mkdir(parents=True, exist_ok=True)
        (self.out / "serve" / "data.json").write_text(json.dumps(data, indent=2) + "\n")
        engine = EngineConfig(model=self.s.model, seed=self.s.seed, max_model_len=2304,
                              max_num_seqs=self.s.serving_max_num_seqs)
        prof = self.checked_prefill_profile(self.s, engine, self.out / "serve")
        point = OperatingPoint.at(reqs, prof, engine, self.s.serving_load,
                                  rule="the profile's load (ewsjf_serving_load)")
        point.write(self.out / "serve" / "operating_point.json")
        reqs = assign_arrivals(reqs, make_arrivals("poisson", len(reqs), point.rate, seed=self.s.seed))
        specs = {"fcfs": PolicySpec("fcfs", {}), "prompt-sjf": PolicySpec("prompt-sjf", {}),
                 **ewsjf_specs(sample, steptime_ref(prof), self.s.max_queues)}
        specs = select_policies(specs, self.s.serving_policies)
        # NOTE: ewsjf_serving_repeats interleaved runs per policy, each on a fresh engine probed for its speed first;
        # the tables add mean TTFT and E2E of short and long prompts (below / above the middle of the 100-2000
        # range, as in the sim stage), with intervals and paired ratios to FCFS
        split_at = (100 + 2000) / 2  # the served mix's range (serve_workloads)
        groups = {"short": lambda m: m["prompt_tokens"] <= split_at, "long": lambda m: m["prompt_tokens"] > split_at}
        table = compare_policies(reqs, engine, specs, self.out / "serve", run=RunConfig(mode="replay"),
                                 repeats=self.s.serving_repeats, groups=groups)
        table.insert(0, "label", table.index)
        return table.reset_index(drop=True)


def _show(stage: str, result: Any) -> None:
    frame = result[1] if isinstance(result, tuple) else result
    cols = [c for c in ("preset", "label", "load", "value", "best_so_far", "token_throughput", "ttft_short_mean",
                        "ttft_long_mean", "e2e_mean", "utilisation", "queue_delay_max") if c in frame]
    print(f"== {stage}\n{frame[cols].round(3).to_string(max_rows=200)}")


def main(argv: list[str] | None = None) -> int:
    from llmsched.experiments.stages import run_stages_cli

    return run_stages_cli("python -m llmsched.experiments.ewsjf", __doc__.split("\n")[0], STAGES,
                          EWSJFExperiments, _show, argv)


if __name__ == "__main__":
    sys.exit(main())
