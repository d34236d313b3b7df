"""EWSJF under its authors' benchmark protocol in the simulator, and where admission order can change throughput.

    python -m llmsched.experiments.protocol --profile cpu [--stages benchmark,sweeps,engine_runs]

    exp = ProtocolExperiments(params)   # a profile's flat parameters; reads the ewsjf_protocol_* keys
    exp.benchmark(); exp.sweeps()       # → results/ewsjf/<profile>/protocol/ (or out_root)

The protocol (the authors' released benchmarks on their vLLM 0.11 fork, PAPERS.md):
- chunked prefill on, max_num_batched_tokens 2,048 (vLLM 0.11's engine default; 7,000 in a later script),
  max_num_seqs 128; admission checks only the KV blocks of a waiting request's first chunk, as vLLM 0.11 did
  (full-prompt admission, `scheduler_reserve_full_isl`, came later, vLLM PR #37307, and is 0.32's default):
  `ewsjf_protocol_reserve_full_prompt` (default False);
- constant-interval arrivals at 10 and 20 req/s (`ewsjf_protocol_rates`);
- synthetic prompts of 100-2,000 and 100-16,000 tokens (`ewsjf_protocol_presets`), uniform lengths by default;
- max_tokens 100; the outputs are taken as exactly 100 tokens ("fixed", the benchmark forces no EOS) or drawn
  uniformly in [1, 100] ("uniform": a model that may stop early), `ewsjf_protocol_outputs`;
- Llama-3-8B, and Llama-2-13B on an A100: the analytic step-time profiles a100-80gb_llama-2-13b,
  a100-80gb_llama-3-8b and h100-sxm_llama-3-8b (`ewsjf_protocol_steptimes`);
- throughput = output tokens / (first send → last completion) (`protocol_throughput`).
- Their scheduler also waits up to 100 ms per step for a background scoring thread: with
  `ewsjf_protocol_scoring_delay_s` > 0 EWSJF runs once more with that time added to every step (its worst case),
  labelled "ewsjf+wait" and reported beside plain EWSJF, never instead of it.

Policies: FCFS, prompt-length SJF and EWSJF (queues learned from a partition sample of the same prompt
distribution, its own draw with seed + TUNE_SEED_OFFSET as in llmsched.experiments.ewsjf; C_prefill from the
simulated profile), optionally the released variant. Each condition runs `ewsjf_protocol_seeds` prompt-length draws
(seeds seed, seed + 1, ...; constant arrivals are deterministic); every table gives the mean over seeds and a
95 % Student-t interval (`t_interval`); gains against FCFS are paired by seed (same requests).

Stages:
  benchmark  the protocol on every profile × preset × rate → protocol/benchmark/
  sweeps     on one profile, preset and rate (`ewsjf_protocol_sweep_*`), one factor at a time, each with chunked
             prefill on and off: KV capacity (num_blocks, from the profile's own down to a few long prompts'
             worth) and the token budget (max_num_batched_tokens) → protocol/sweeps/
             NOTE: as in vLLM, chunked prefill off needs max_num_batched_tokens >= max_model_len; max_model_len is
             the workload's longest sequence (hi + max_tokens), so the chunked-off runs of the KV sweep use
             max(budget, max_model_len) and the budget sweep skips smaller budgets when chunked prefill is off.
  engine     (`ewsjf_protocol_engine_n` > 0) the protocol scaled down onto the real engine: uniform prompts of
             `ewsjf_protocol_engine_preset` cut from ShareGPT text, max_tokens output tokens each, constant arrivals
             at `ewsjf_protocol_engine_load` × its capacity, FCFS / prompt-length SJF / EWSJF in interleaved
             repeats → protocol/engine/ (ProtocolExperiments.engine_runs; the serving experiments' files)
The two simulator stages write runs.parquet (one row per run: condition, label, seed, RUN_METRICS), summary.parquet (per
condition, label and metric: mean, ci_low, ci_high, n_seeds), gains.parquet (per condition, policy ≠ FCFS and
GAIN_METRICS: paired by seed, mean, ci_low, ci_high) and <stage>.json with every parameter, the engine limits
of each condition and the policy specs.

Metrics of a run (RUN_METRICS): throughput (output tok/s, as the authors define it), request throughput, mean
TTFT (all requests; short = prompt <= middle of the preset's range; long), mean E2E, preemptions, recomputed
tokens (tokens computed again after a preemption: scheduled tokens minus the prompt + output - 1 every request
needs) and their share of all scheduled tokens, idle budget share (1 - tokens scheduled / budget, weighted by
step duration), busy share (time the engine runs steps / makespan) and the makespan.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llmsched.analysis.intervals import t_interval
from llmsched.experiments.ewsjf import TUNE_SEED_OFFSET, ewsjf_specs
from llmsched.experiments.settings import EWSJFSettings
from llmsched.paths import results_dir
from llmsched.policies import PolicySpec
from llmsched.steptime.models import StepTimeModel
from llmsched.workload import Request, assign_arrivals, make_arrivals

logger = logging.getLogger(__name__)

STAGES = ("benchmark", "sweeps")
OUTPUT_MODES = ("fixed", "uniform")
DELAY_LABEL = "ewsjf+wait"  # EWSJF with the released scheduler's per-step wait for its scoring thread
RUN_METRICS = ("throughput", "request_throughput", "ttft_mean", "ttft_short_mean", "ttft_long_mean", "e2e_mean",
               "preemptions", "recomputed_tokens", "recomputed_share", "budget_idle_share", "busy_share",
               "makespan")
# policy vs FCFS on the same requests (paired by seed): throughput gain in %, and FCFS / policy for latencies
GAIN_METRICS = ("throughput_gain_pct", "ttft_speedup", "ttft_short_speedup", "e2e_speedup")
CONDITION = ("steptime", "preset", "rate", "sweep", "num_blocks", "max_num_batched_tokens", "chunked_prefill",
             "reserve_full_prompt")
TEST_PARAMS: dict[str, Any] = {  # a protocol small enough for tests (seconds): profile keys
    "ewsjf_protocol_steptimes": ["a100-80gb_llama-2-13b"], "ewsjf_protocol_presets": ["100-2000"],
    "ewsjf_protocol_rates": [20.0], "ewsjf_protocol_n": 80, "ewsjf_protocol_seeds": 3,
    "ewsjf_protocol_sweep_n": 80, "ewsjf_protocol_sweep_kv_blocks": [0, 150],
    "ewsjf_protocol_sweep_budgets": [1024, 4096], "ewsjf_protocol_workers": 1, "ewsjf_sample_n": 100,
}


# --------------------------------------------------------------------------------------------------------------
# The workload, the throughput definition, intervals
# --------------------------------------------------------------------------------------------------------------


def preset_range(preset: str) -> tuple[int, int]:
    """(lo, hi) prompt tokens of a mixed-workload preset ("100-2000", "100-16000")."""
    from llmsched.workload.mixed import MixedConfig

    cfg = MixedConfig.preset(preset)
    return cfg.lo, cfg.hi


def protocol_workload(preset: str, n: int, rate: float, seed: int, *, max_tokens: int = 100,
                      outputs: str = "fixed", distribution: str = "uniform") -> list[Request]:
    """n requests of the authors' benchmark: prompt lengths in the preset's range (`distribution`, drawn with
    `seed`), output lengths max_tokens ("fixed") or uniform in [1, max_tokens] ("uniform", drawn after the
    prompts), constant-interval arrivals at `rate` req/s from t = 0. No prompt text: simulator only."""
    from llmsched.workload.mixed import MixedConfig, draw_prompt_lengths

    if outputs not in OUTPUT_MODES:
        raise ValueError(f"outputs must be one of {', '.join(OUTPUT_MODES)}, got {outputs!r}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    cfg = MixedConfig.preset(preset, n=n, distribution=distribution)
    rng = np.random.default_rng(seed)
    prompts = draw_prompt_lengths(cfg, rng)
    outs = (np.full(n, max_tokens) if outputs == "fixed"
            else rng.integers(1, max_tokens, size=n, endpoint=True))
    reqs = [Request(f"{preset}-{i}", "", int(p), int(o), source=cfg.source)
            for i, (p, o) in enumerate(zip(prompts, outs, strict=True))]
    return assign_arrivals(reqs, make_arrivals("constant", n, rate))


def protocol_throughput(frame: pd.DataFrame) -> float:
    """The authors' throughput: output tokens of the completed requests / (first send → last completion), in
    tokens per second (first send = the earliest arrival, last completion = the latest last token)."""
    span = float(frame["last_token"].max() - frame["arrival"].min())
    return float(frame["output_tokens"].sum()) / span if span > 0 else math.nan


@dataclass(frozen=True)
class DelayedStepTime(StepTimeModel):
    """A step-time model with a fixed delay added to every step: the released EWSJF scheduler waiting for its
    background scoring thread (up to 100 ms per step; modelled as its worst case, every step)."""

    base: StepTimeModel
    delay_s: float

    def __post_init__(self) -> None:
        if not (isinstance(self.delay_s, int | float) and math.isfinite(self.delay_s) and self.delay_s >= 0):
            raise ValueError(f"DelayedStepTime.delay_s must be a finite number >= 0, got {self.delay_s!r}")

    def step_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int, num_seqs: int) -> float:
        return self.base.step_time(prefill_tokens, decode_seqs, kv_tokens, num_seqs) + self.delay_s

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "delayed", "base": self.base.to_dict(), "delay_s": self.delay_s}


def run_metrics(frame: pd.DataFrame, steps: pd.DataFrame, stats: Mapping[str, Any], budget: int,
                split_at: float) -> dict[str, float]:
    """RUN_METRICS of one simulated run (its request frame, step trace and stats)."""
    from llmsched.analysis.metrics import per_request, recompute_cost

    m = per_request(frame)
    short = m["prompt_tokens"] <= split_at
    recomputed, recomputed_share = recompute_cost(frame, steps)
    dur = (steps["end"] - steps["start"]).to_numpy()
    makespan = float(frame["last_token"].max() - frame["arrival"].min())
    busy = float(dur.sum())
    return {
        "throughput": protocol_throughput(frame),
        "request_throughput": len(frame) / makespan if makespan > 0 else math.nan,
        "ttft_mean": float(m["ttft"].mean()),
        "ttft_short_mean": float(m.loc[short, "ttft"].mean()),
        "ttft_long_mean": float(m.loc[~short, "ttft"].mean()),
        "e2e_mean": float(m["e2e"].mean()),
        "preemptions": int(stats["num_preemptions"]),
        "recomputed_tokens": recomputed,
        "recomputed_share": recomputed_share,
        "budget_idle_share": 1.0 - float((steps["scheduled_tokens"].to_numpy() / budget * dur).sum() / busy)
        if busy > 0 else math.nan,
        "busy_share": busy / makespan if makespan > 0 else math.nan,
        "makespan": makespan,
    }


# --------------------------------------------------------------------------------------------------------------
# One run (a job): plain data, so that a process pool can run it
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One simulated run: a condition (engine limits, workload), a policy and a seed."""

    stage: str
    steptime: str  # step-time profile name
    preset: str
    rate: float
    sweep: str  # "protocol" in the benchmark; the swept factor in the sweeps ("kv_blocks", "budget")
    engine: dict[str, Any]  # SimConfig fields
    label: str
    policy: tuple[str, dict[str, Any]]  # (registered name, arguments)
    seed: int
    n: int
    max_tokens: int
    outputs: str
    distribution: str
    delay_s: float = 0.0

    def condition(self) -> dict[str, Any]:
        return {"steptime": self.steptime, "preset": self.preset, "rate": self.rate, "sweep": self.sweep,
                "num_blocks": self.engine["num_blocks"],
                "max_num_batched_tokens": self.engine["max_num_batched_tokens"],
                "chunked_prefill": self.engine["chunked_prefill"],
                "reserve_full_prompt": self.engine["reserve_full_prompt"]}


@lru_cache(maxsize=8)
def _profile(name: str) -> Any:
    from llmsched.sim import load_profile

    return load_profile(name)


def run_job(job: Job) -> dict[str, Any]:
    """Simulate one job; its condition, label, seed and RUN_METRICS as one row."""
    from llmsched.sim import SimConfig, simulate

    cfg = SimConfig(**job.engine)
    model = _profile(job.steptime).step_time
    if job.delay_s:
        model = DelayedStepTime(model, job.delay_s)
    reqs = protocol_workload(job.preset, job.n, job.rate, job.seed, max_tokens=job.max_tokens, outputs=job.outputs,
                             distribution=job.distribution)
    res = simulate(reqs, cfg, model, PolicySpec(*job.policy), trace_steps=True)
    assert res.steps is not None
    lo, hi = preset_range(job.preset)
    return {**job.condition(), "label": job.label, "policy": job.policy[0], "seed": job.seed,
            "delay_s": job.delay_s,
            **run_metrics(res.frame, res.steps, res.stats, cfg.max_num_batched_tokens, (lo + hi) / 2)}


def run_jobs(jobs: Sequence[Job], workers: int = 1, desc: str = "protocol") -> pd.DataFrame:
    """Every job's row (in job order); `workers` > 1 runs them in a process pool (same results)."""
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(tqdm(pool.map(run_job, jobs, chunksize=1), total=len(jobs), desc=desc, unit="run"))
    else:
        rows = [run_job(j) for j in tqdm(jobs, desc=desc, unit="run")]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# Tables over seeds
# --------------------------------------------------------------------------------------------------------------


def summarize_seeds(runs: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str] = RUN_METRICS,
                    level: float = 0.95) -> pd.DataFrame:
    """Per keys (condition + label) and metric: mean over seeds, t-interval (ci_low, ci_high), n_seeds."""
    rows = []
    for key, g in runs.groupby(list(keys), sort=False, dropna=False):
        for metric in metrics:
            mean, lo, hi = t_interval(g[metric].astype(float), level)
            rows.append({**dict(zip(keys, key, strict=True)), "metric": metric, "mean": mean, "ci_low": lo,
                         "ci_high": hi, "n_seeds": int(g["seed"].nunique())})
    return pd.DataFrame(rows)


def paired_gains(runs: pd.DataFrame, keys: Sequence[str], baseline: str = "fcfs",
                 level: float = 0.95) -> pd.DataFrame:
    """Per condition (keys, without label) and policy ≠ baseline: GAIN_METRICS per seed against the baseline on the
    same requests, then mean and t-interval over seeds."""
    keys = [k for k in keys if k != "label"]
    base = runs[runs["label"] == baseline].set_index([*keys, "seed"])
    rows = []
    for (label, *key), g in runs[runs["label"] != baseline].groupby(["label", *keys], sort=False, dropna=False):
        g = g.set_index([*keys, "seed"])
        b = base.loc[g.index]
        per_seed = {
            "throughput_gain_pct": 100.0 * (g["throughput"] / b["throughput"] - 1.0),
            "ttft_speedup": b["ttft_mean"] / g["ttft_mean"],
            "ttft_short_speedup": b["ttft_short_mean"] / g["ttft_short_mean"],
            "e2e_speedup": b["e2e_mean"] / g["e2e_mean"],
        }
        for metric, values in per_seed.items():
            mean, lo, hi = t_interval(values, level)
            rows.append({**dict(zip(keys, key, strict=True)), "label": label, "metric": metric, "mean": mean,
                         "ci_low": lo, "ci_high": hi, "n_seeds": len(values)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# The experiments
# --------------------------------------------------------------------------------------------------------------


def check_settings(s: EWSJFSettings) -> None:
    """ValueError naming the ewsjf_protocol_* key of any bad value."""
    from llmsched.steptime.profiles import load_profile
    from llmsched.workload.mixed import DISTRIBUTIONS, PRESETS

    def bad(key: str, what: str) -> ValueError:
        return ValueError(f"ewsjf_{key} must be {what}, got {getattr(s, key)!r}")

    for key in ("protocol_n", "protocol_seeds", "protocol_max_tokens", "protocol_max_num_batched_tokens",
                "protocol_max_num_seqs", "protocol_sweep_n", "protocol_workers", "protocol_sweep_rate"):
        if not getattr(s, key) > 0:
            raise bad(key, "> 0")
    if not (math.isfinite(s.protocol_scoring_delay_s) and s.protocol_scoring_delay_s >= 0):
        raise bad("protocol_scoring_delay_s", "a finite number >= 0")
    if not s.protocol_rates or any(not r > 0 for r in s.protocol_rates):
        raise bad("protocol_rates", "positive numbers")
    if not (isinstance(s.protocol_engine_n, int) and s.protocol_engine_n >= 0):
        raise bad("protocol_engine_n", "an integer >= 0 (0: no real-engine runs)")
    for key in ("protocol_engine_load", "protocol_engine_repeats"):
        if not getattr(s, key) > 0:
            raise bad(key, "> 0")
    for key in ("protocol_presets", "protocol_sweep_preset", "protocol_engine_preset"):
        v = getattr(s, key)
        if any(p not in PRESETS for p in ([v] if isinstance(v, str) else v)) or not v:
            raise bad(key, f"among {', '.join(PRESETS)}")
    for name in (*s.protocol_steptimes, s.protocol_sweep_steptime):
        load_profile(name)  # FileNotFoundError / ValueError naming the profile
    if not s.protocol_steptimes:
        raise bad("protocol_steptimes", "a non-empty list of step-time profiles")
    if not isinstance(s.protocol_reserve_full_prompt, bool):
        raise bad("protocol_reserve_full_prompt", "true or false")
    if s.protocol_outputs not in OUTPUT_MODES:
        raise bad("protocol_outputs", f"one of {', '.join(OUTPUT_MODES)}")
    if s.protocol_prompts not in DISTRIBUTIONS:
        raise bad("protocol_prompts", f"one of {', '.join(DISTRIBUTIONS)}")
    if "fcfs" not in s.protocol_policies:
        raise bad("protocol_policies", "a list of policy labels that includes fcfs (the gains' baseline)")
    if any(b < 0 or int(b) != b for b in s.protocol_sweep_kv_blocks):
        raise bad("protocol_sweep_kv_blocks", "integers >= 0 (0: the profile's own num_blocks)")
    if any(b <= 0 or int(b) != b for b in s.protocol_sweep_budgets):
        raise bad("protocol_sweep_budgets", "positive integers")


@dataclass
class _Plan:
    """The jobs of one stage and what its JSON records."""

    jobs: list[Job] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)


class ProtocolExperiments:
    """The benchmark and the sweeps (module docstring); `params` is a profile's flat dict (ewsjf_protocol_* keys
    and the shared seed / profile), out_root defaults to results/ewsjf/<profile>/protocol."""

    def __init__(self, params: Mapping[str, Any], out_root: str | Path | None = None) -> None:
        self.s = EWSJFSettings.from_params(params)
        check_settings(self.s)
        self.out = Path(out_root) if out_root is not None else results_dir() / "ewsjf" / self.s.profile / "protocol"

    @property
    def seeds(self) -> list[int]:
        return [int(self.s.seed) + k for k in range(self.s.protocol_seeds)]

    def sample(self, preset: str) -> list[float]:
        """EWSJF's partition sample for `preset`: `ewsjf_sample_n` prompt lengths of the protocol's prompt
        distribution, drawn with seed + TUNE_SEED_OFFSET (never one of the evaluated draws)."""
        reqs = protocol_workload(preset, self.s.sample_n, 1.0, int(self.s.seed) + TUNE_SEED_OFFSET,
                                 distribution=self.s.protocol_prompts)
        return [float(r.prompt_tokens) for r in reqs]

    def policies(self, preset: str, steptime: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """label → (policy name, arguments) of the compared policies on this preset and profile."""
        specs = ewsjf_specs(self.sample(preset), steptime, self.s.max_queues)
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        for label in self.s.protocol_policies:
            if label in specs:
                out[label] = (specs[label].name, dict(specs[label].args))
            else:
                PolicySpec(label)  # ValueError listing the valid names
                out[label] = (label, {})
        return out

    def engine(self, steptime: str, preset: str, *, num_blocks: int = 0, budget: int | None = None,
               chunked: bool = True) -> dict[str, Any]:
        """SimConfig fields of a condition: the profile's KV cache (or num_blocks), the protocol's
        max_num_seqs, budget and admission check (reserve_full_prompt), max_model_len = the preset's longest
        prompt + max_tokens."""
        prof = _profile(steptime)
        cfg = prof.sim_config(num_blocks=num_blocks or prof.engine["num_blocks"],
                              max_num_seqs=self.s.protocol_max_num_seqs,
                              max_num_batched_tokens=budget or self.s.protocol_max_num_batched_tokens,
                              max_model_len=preset_range(preset)[1] + self.s.protocol_max_tokens,
                              chunked_prefill=chunked, reserve_full_prompt=self.s.protocol_reserve_full_prompt)
        return cfg.to_dict()

    def _jobs(self, stage: str, plan: _Plan, steptime: str, preset: str, rate: float, sweep: str, n: int,
              engine: dict[str, Any]) -> None:
        pols = self.policies(preset, steptime)
        plan.policies[f"{steptime}/{preset}"] = {k: {"policy": v[0], "args": _jsonable(v[1])}
                                                 for k, v in pols.items()}
        plan.conditions.append({"steptime": steptime, "preset": preset, "rate": rate, "sweep": sweep,
                                "engine": engine})
        common: dict[str, Any] = {
            "stage": stage, "steptime": steptime, "preset": preset, "rate": float(rate), "sweep": sweep,
            "engine": engine, "n": n, "max_tokens": self.s.protocol_max_tokens, "outputs": self.s.protocol_outputs,
            "distribution": self.s.protocol_prompts}
        for seed in self.seeds:
            for label, pol in pols.items():
                plan.jobs.append(Job(label=label, policy=pol, seed=seed, **common))
            if self.s.protocol_scoring_delay_s and "ewsjf" in pols:
                plan.jobs.append(Job(label=DELAY_LABEL, policy=pols["ewsjf"], seed=seed,
                                     delay_s=self.s.protocol_scoring_delay_s, **common))

    def benchmark_plan(self) -> _Plan:
        plan = _Plan()
        for steptime in self.s.protocol_steptimes:
            for preset in self.s.protocol_presets:
                engine = self.engine(steptime, preset)
                for rate in self.s.protocol_rates:
                    self._jobs("benchmark", plan, steptime, preset, float(rate), "protocol", self.s.protocol_n,
                               engine)
        return plan

    def sweeps_plan(self) -> _Plan:
        s, plan = self.s, _Plan()
        steptime, preset, rate = s.protocol_sweep_steptime, s.protocol_sweep_preset, float(s.protocol_sweep_rate)
        max_len = preset_range(preset)[1] + s.protocol_max_tokens
        for chunked in (True, False):
            for nb in s.protocol_sweep_kv_blocks:
                budget = s.protocol_max_num_batched_tokens if chunked else max(s.protocol_max_num_batched_tokens,
                                                                               max_len)
                self._jobs("sweeps", plan, steptime, preset, rate, "kv_blocks", s.protocol_sweep_n,
                           self.engine(steptime, preset, num_blocks=int(nb), budget=budget, chunked=chunked))
            for budget in s.protocol_sweep_budgets:
                if not chunked and budget < max_len:
                    plan.skipped.append({"sweep": "budget", "max_num_batched_tokens": int(budget),
                                         "chunked_prefill": False,
                                         "why": f"vLLM needs max_num_batched_tokens >= max_model_len ({max_len}) "
                                                "without chunked prefill"})
                    continue
                self._jobs("sweeps", plan, steptime, preset, rate, "budget", s.protocol_sweep_n,
                           self.engine(steptime, preset, budget=int(budget), chunked=chunked))
        return plan

    def _run(self, stage: str, plan: _Plan) -> dict[str, pd.DataFrame]:
        import time

        t0 = time.perf_counter()
        runs = run_jobs(plan.jobs, self.s.protocol_workers, desc=f"protocol {stage}")
        elapsed = time.perf_counter() - t0
        keys = [*CONDITION, "label"]
        tables = {"runs": runs, "summary": summarize_seeds(runs, keys), "gains": paired_gains(runs, keys)}
        out = self.out / stage
        out.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            table.to_parquet(out / f"{name}.parquet", index=False)
        record = {"stage": stage, "settings": {k: v for k, v in asdict(self.s).items()
                                               if k.startswith("protocol_") or k in ("seed", "profile",
                                                                                     "sample_n", "max_queues")},
                  "seeds": self.seeds, "partition_sample_seed": int(self.s.seed) + TUNE_SEED_OFFSET,
                  "arrivals": "constant", "throughput": "output tokens / (first arrival -> last token)",
                  "short_prompt": "prompt_tokens <= (lo + hi) / 2 of the preset",
                  "ci": "95 % Student-t interval over seeds; gains paired by seed",
                  "conditions": plan.conditions, "skipped": plan.skipped, "policies": plan.policies,
                  "n_runs": len(plan.jobs), "elapsed_s": round(elapsed, 2), "workers": self.s.protocol_workers}
        (out / f"{stage}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        logger.info("protocol %s: %d runs in %.1f s", stage, len(plan.jobs), elapsed)
        return tables

    def engine_runs(self) -> pd.DataFrame:
        """The protocol scaled down onto the real engine → protocol/engine/ (compare_policies' files: summary with
        intervals, runs, paired ratios to FCFS).

        protocol_engine_n requests per run, prompt lengths uniform in protocol_engine_preset's range (real
        ShareGPT text cut to length, llmsched.workload.mixed), exactly protocol_max_tokens output tokens each (the
        benchmark forces no EOS: replay mode), constant-interval arrivals at protocol_engine_load × the engine's
        capacity for them (llmsched.experiments.capacity; → engine/operating_point.json); chunked
        prefill on with the protocol's token budget, serving_max_num_seqs sequences; protocol_policies, each
        protocol_engine_repeats times, interleaved, every run on a fresh engine probed for its speed first.
        EWSJF learns its queues from a partition sample of the same distribution cut from other prompts (seed +
        TUNE_SEED_OFFSET), C_prefill from the engine's step-time profile (serving_steptime, checked against this
        engine and recalibrated when stale, as in the serve stage). Throughput as the authors define it is
        `token_throughput` (output tokens / first arrival → last token)."""
        import dataclasses

        from llmsched.experiments.capacity import OperatingPoint, steptime_ref
        from llmsched.experiments.ewsjf import EWSJFExperiments
        from llmsched.models import load_model_tokenizer
        from llmsched.serving.engine import EngineConfig
        from llmsched.serving.experiment import compare_policies
        from llmsched.serving.runner import RunConfig
        from llmsched.workload import load_sharegpt
        from llmsched.workload.mixed import MixedConfig, mixed_workload

        s = self.s
        if s.protocol_engine_n <= 0:
            raise ValueError("ewsjf_protocol_engine_n is 0: the protocol's real-engine runs are off in this profile")
        lo, hi = preset_range(s.protocol_engine_preset)
        records, _ = load_sharegpt()
        pool = max(2 * s.protocol_engine_n, 200)
        if len(records) < 2 * pool:
            raise ValueError(f"the engine runs need 2 x {pool} ShareGPT records, got {len(records)}")
        tok = load_model_tokenizer(s.model)
        cfg = MixedConfig.preset(s.protocol_engine_preset, n=s.protocol_engine_n, distribution=s.protocol_prompts)
        reqs = mixed_workload(cfg, tok, [r.prompt for r in records[:pool]], seed=s.seed)
        if s.protocol_outputs == "fixed":
            reqs = [dataclasses.replace(r, output_tokens=s.protocol_max_tokens) for r in reqs]
        else:
            draw = np.random.default_rng(s.seed).integers(1, s.protocol_max_tokens, size=len(reqs), endpoint=True)
            reqs = [dataclasses.replace(r, output_tokens=int(o)) for r, o in zip(reqs, draw, strict=True)]
        cfg_sample = MixedConfig.preset(s.protocol_engine_preset, n=s.sample_n, distribution=s.protocol_prompts)
        sample = [float(r.prompt_tokens) for r in mixed_workload(cfg_sample, tok, [r.prompt for r in
                                                                                records[pool:2 * pool]],
                                                                 seed=int(s.seed) + TUNE_SEED_OFFSET)]
        out = self.out / "engine"
        out.mkdir(parents=True, exist_ok=True)
        engine = EngineConfig(model=s.model, seed=s.seed, max_model_len=hi + s.protocol_max_tokens + 64,
                              max_num_seqs=s.serving_max_num_seqs,
                              max_num_batched_tokens=s.protocol_max_num_batched_tokens)
        prof = EWSJFExperiments.checked_prefill_profile(s, engine, out)
        point = OperatingPoint.at(reqs, prof, engine, s.protocol_engine_load,
                                  rule="the profile's load (ewsjf_protocol_engine_load)")
        point.write(out / "operating_point.json")
        reqs = assign_arrivals(reqs, make_arrivals("constant", len(reqs), point.rate))
        specs = ewsjf_specs(sample, steptime_ref(prof), s.max_queues)
        pols = {label: specs[label] if label in specs else PolicySpec(label) for label in s.protocol_policies}
        (out / "engine.json").write_text(json.dumps({
            "preset": s.protocol_engine_preset, "prompts": s.protocol_prompts, "range": [lo, hi],
            "n": len(reqs), "load": s.protocol_engine_load, "rate": point.rate, "arrivals": "constant",
            "max_tokens": s.protocol_max_tokens, "outputs": s.protocol_outputs,
            "repeats": s.protocol_engine_repeats, "engine": dataclasses.asdict(engine),
            "partition_sample": {"n": len(sample), "seed": int(s.seed) + TUNE_SEED_OFFSET, "pool": [pool, 2 * pool]},
            "served": {"seed": int(s.seed), "pool": [0, pool]},
            "throughput": "token_throughput: output tokens / (first arrival -> last token)"}, indent=2,
            default=str) + "\n")
        split_at = (lo + hi) / 2
        groups = {"short": lambda m: m["prompt_tokens"] <= split_at, "long": lambda m: m["prompt_tokens"] > split_at}
        table = compare_policies(reqs, engine, pols, out, run=RunConfig(mode="replay"),
                                 repeats=s.protocol_engine_repeats, groups=groups)
        table.insert(0, "label", table.index)
        return table.reset_index(drop=True)

    def benchmark(self) -> dict[str, pd.DataFrame]:
        """The authors' protocol on every profile × preset × rate → protocol/benchmark/."""
        return self._run("benchmark", self.benchmark_plan())

    def sweeps(self) -> dict[str, pd.DataFrame]:
        """KV capacity and token budget, with chunked prefill on and off → protocol/sweeps/."""
        return self._run("sweeps", self.sweeps_plan())

    def outputs(self) -> list[Path]:
        """The files the two stages write."""
        return [self.out / st / f"{t}.parquet" for st in STAGES for t in ("runs", "summary", "gains")] + \
               [self.out / st / f"{st}.json" for st in STAGES]


def _jsonable(args: Mapping[str, Any]) -> dict[str, Any]:
    """Policy arguments for the JSON record (a long partition sample as its size and range)."""
    out = dict(args)
    if "sample" in out:
        x = np.asarray(out["sample"], float)
        out["sample"] = {"n": len(x), "min": float(x.min()), "max": float(x.max())}
    return {k: v.to_dict() if isinstance(v, StepTimeModel) else v if isinstance(v, str | int | float | bool | dict)
            else repr(v) for k, v in out.items()}


def with_settings(params: Mapping[str, Any], **protocol: Any) -> dict[str, Any]:
    """`params` with ewsjf_protocol_* keys replaced (e.g. with_settings(p, n=100) sets ewsjf_protocol_n)."""
    return {**params, **{f"ewsjf_protocol_{k}": v for k, v in protocol.items()}}


def _show(stage: str, tables: dict[str, pd.DataFrame] | pd.DataFrame) -> None:
    if isinstance(tables, pd.DataFrame):  # engine_runs: the serving summary
        cols = [c for c in ("label", "n_runs", "token_throughput", "token_throughput_ci_low",
                            "token_throughput_ci_high", "ttft_short_mean", "ttft_long_mean", "e2e_mean") if c in tables]
        print(f"== {stage}\n{tables[cols].round(3).to_string()}")
        return
    g = tables["gains"]
    g = g[g["metric"].isin(["throughput_gain_pct", "ttft_short_speedup"])]
    cols = [c for c in (*CONDITION, "label", "metric", "mean", "ci_low", "ci_high") if c in g]
    print(f"== {stage}\n{g[cols].round(3).to_string(max_rows=400)}")


def main(argv: list[str] | None = None) -> int:
    from llmsched.experiments.stages import run_stages_cli

    return run_stages_cli("python -m llmsched.experiments.protocol", __doc__.split("\n")[0], (*STAGES, "engine_runs"),
                          ProtocolExperiments, _show, argv)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["DELAY_LABEL", "GAIN_METRICS", "RUN_METRICS", "DelayedStepTime", "Job", "ProtocolExperiments",
           "paired_gains", "protocol_throughput", "protocol_workload", "run_job", "run_metrics",
           "summarize_seeds", "with_settings"]
