"""Policies that choose whom to preempt, under KV pressure (notebook 04, simulator).

Every policy of the artifact admits by its own order, but until the preemption hook (llmsched.policies.base) all
of them left the victim to vLLM: the newest running request. This stage sweeps the KV pool from the profile's own
size down to a few percent of it and compares, on the PARS ShareGPT test workload (scored prompts, pars_kv_n
requests per run at pars_kv_load × saturation throughput, pars_kv_seeds draws):

    fcfs, pars, ltr, oracle-sjf   admission order only, vLLM's victim (the newest running request)
    pars-rank                     PARS with rank-aware victims: the running request with the highest score goes
    ltr-released                  LTR's scheduler as its authors ran it (llmsched.policies.ltr): rank victims, swaps
                                  of running requests for better-ranked waiting ones, step-based starvation control

Reported per run, beside the usual latency metrics: preemptions (every kind), swaps (preemptions to admit a better
waiting request), recomputed tokens (tokens scheduled beyond the tokens each request needs once: the prefill that
preemption by recompute repeats) and their share of all scheduled tokens.

    from llmsched.experiments.preemption import kv_sweep
    table = kv_sweep(pars_experiments)        # → <pars out>/kv/ (summary, per_seed, sweep.json per pool size)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from llmsched.policies import PolicySpec

if TYPE_CHECKING:
    from llmsched.experiments.pars import ParsExperiments
    from llmsched.sim import SimConfig, SimResult

logger = logging.getLogger(__name__)

LABELS = ("fcfs", "pars", "pars-rank", "ltr", "ltr-released", "oracle-sjf")


def preemption_metrics(result: SimResult, config: SimConfig) -> dict[str, Any]:
    """The sweep's default metrics plus the cost of preemption: preemptions, swaps, recomputed tokens and share."""
    from llmsched.analysis.metrics import recompute_cost
    from llmsched.sim.sweep import default_metrics

    if result.steps is None:
        raise ValueError("preemption_metrics needs the step trace (seed_sweep(..., trace_steps=True))")
    recomputed, share = recompute_cost(result.frame, result.steps)
    # default_metrics (summarize) already counts the preemptions of every request
    return {**default_metrics(result, config), "swaps": int(result.stats.get("policy_stats", {}).get("swaps", 0)),
            "recomputed_tokens": recomputed, "recomputed_share": share}


def check_kv_fits(blocks: int, block_size: int, requests: Sequence[Any], what: str) -> None:
    """ValueError when a KV pool of `blocks` blocks (one is vLLM's null block) cannot hold the longest of `requests`
    (prompt + output tokens): no policy could serve it. `what` names the setting in the message."""
    longest = max(r.prompt_tokens + max(1, r.output_tokens) for r in requests)
    if (blocks - 1) * block_size < longest:
        raise ValueError(f"{what}: {blocks} blocks of {block_size} tokens hold fewer than the {longest} tokens of "
                         "the longest request; no policy could serve it")


def policies(starvation_limit: int | None) -> dict[str, PolicySpec]:
    """The compared policies by label (module docstring)."""
    from llmsched.predictors.scheduling import ranker_policies

    specs = ranker_policies(["pars", "ltr"], starvation_limit=starvation_limit)
    return {label: specs[label] for label in LABELS}


def kv_sweep(exp: ParsExperiments) -> pd.DataFrame:
    """The KV-capacity sweep (module docstring) → <exp.out>/kv/blocks-<n>/ per pool size; returns the summary over
    seeds of every pool size (columns kv_fraction, num_blocks first)."""
    from llmsched.sim import load_profile
    from llmsched.sim.sweep import seed_sweep, sweep_seeds
    from llmsched.workload import repeat_requests

    s = exp.s
    if not s.kv_fractions:
        raise ValueError("pars_kv_fractions is empty: the KV sweep is off in this profile")
    prof = load_profile(s.sim_steptime)
    base = prof.sim_config(**s.sim_overrides)
    pool = exp.scored_test()
    seeds = sweep_seeds(s.seed, s.kv_seeds)
    workloads = {sd: repeat_requests(pool, s.kv_n, seed=sd) for sd in seeds}
    specs = policies(s.starvation_limit)
    tables = []
    for fraction in s.kv_fractions:
        blocks = max(2, round(base.num_blocks * fraction))
        check_kv_fits(blocks, base.block_size, pool, f"pars_kv_fractions ({fraction} of {base.num_blocks})")
        config = dataclasses.replace(base, num_blocks=blocks)
        logger.info("KV sweep: %d blocks (%.3g of %d), %d seeds x %d policies", blocks, fraction, base.num_blocks,
                    len(seeds), len(specs))
        table = seed_sweep(workloads, [s.kv_load], specs, config, prof.step_time, metrics=preemption_metrics,
                           trace_steps=True, keys={"kv_fraction": float(fraction), "num_blocks": blocks},
                           out_dir=exp.out / "kv" / f"blocks-{blocks}", desc=f"KV sweep {blocks} blocks",
                           meta={"pool": len(pool), "profile_blocks": base.num_blocks})
        tables.append(table)
    out = pd.concat(tables, ignore_index=True)
    out.to_csv(exp.out / "kv" / "summary.csv", index=False)
    return out
