"""PARS, LTR and EWSJF head to head on the same workloads and the same engine model (neither paper does this).

    python -m llmsched.experiments.headtohead --profile cpu

Workloads, in the simulator with the PARS profile's step-time model (`pars_sim_steptime`):
    sharegpt  the held-out ShareGPT prompts with their ChatGPT response lengths (PARS's setting), scored once by
              every ranker (ParsExperiments.scored_test), drawn to `pars_sim_n` requests per seed (repeat_requests)
    mixed     EWSJF's bimodal 100-2000 prompt mix cut from real ShareGPT text with outputs of 1-100 tokens
              (EWSJF's setting), `h2h_mixed_n` requests per seed, scored by the same rankers; its outputs are synthetic
              and unrelated to the text, so a ranker can only help through what the text says of its length
Policies: FCFS, PARS and LTR (SJF on their scores, the profile's starvation guard), PARS as released (vLLM's
priority scheduler), EWSJF (queues learned from `ewsjf_sample_n` prompt lengths of a draw the sweep never serves:
the training split's prompts for sharegpt, a mixed draw with seed + TUNE_SEED_OFFSET for mixed; C_prefill from
the same step-time model), the authors' released EWSJF, prompt-length SJF and oracle SJF. Loads are `h2h_loads`
× the saturation throughput of each seed's draw.
Each workload is swept over `h2h_seeds` seeds (seed, seed + 1, ...; each a draw of the workload and its arrivals).
Outputs under results/headtohead/<profile>/<workload>/: llmsched.sim.sweep.seed_sweep's summary.parquet (mean and
95 % interval over seeds), per_seed.parquet, requests.parquet and sweep.json, and data.json. The real-engine
head-to-head is ParsExperiments.serve with `pars_serving_ewsjf: true`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from llmsched.experiments.settings import EWSJFSettings, HeadToHeadSettings
from llmsched.paths import results_dir
from llmsched.policies import PolicySpec

logger = logging.getLogger(__name__)

WORKLOADS = ("sharegpt", "mixed")


class HeadToHead:
    def __init__(self, params: dict[str, Any], out_root: str | Path | None = None,
                 pars_root: str | Path | None = None) -> None:
        from llmsched.experiments.pars import ParsExperiments

        self.p = dict(params)  # the profile's raw parameters, as given (the stages read only `s`)
        self.s = HeadToHeadSettings.from_params(params)
        self.ewsjf_s = EWSJFSettings.from_params(params)
        self.out = Path(out_root) if out_root is not None else results_dir() / "headtohead" / self.s.profile
        self.pars = ParsExperiments(params, out_root=pars_root)

    def seeds(self) -> list[int]:
        """The sweep's seeds: `h2h_seeds` of them from the profile's seed (each a workload draw and its arrivals)."""
        from llmsched.experiments.ewsjf import TUNE_SEED_OFFSET
        from llmsched.sim.sweep import sweep_seeds

        if self.s.seeds > TUNE_SEED_OFFSET:
            raise ValueError(f"h2h_seeds={self.s.seeds} would reach the seed of the mixed workload's partition sample "
                             f"(seed + {TUNE_SEED_OFFSET}); use at most {TUNE_SEED_OFFSET} seeds")
        return sweep_seeds(self.s.seed, self.s.seeds)

    def workload(self, name: str, seed: int | None = None) -> list[Any]:
        """Workload `name` drawn with `seed` (default: the profile's seed): the scored test prompts drawn to
        pars_sim_n requests (sharegpt), or h2h_mixed_n requests of the mix cut from ShareGPT text and scored
        (mixed; each draw is scored once and cached)."""
        from llmsched.workload import repeat_requests

        seed = int(self.s.seed) if seed is None else int(seed)
        if name == "sharegpt":
            return repeat_requests(self.pars.scored_test(), self.pars.s.sim_n, seed=seed)
        if name == "mixed":
            from llmsched.predictors.data import model_tokenizer
            from llmsched.workload.mixed import MixedConfig, mixed_workload

            cfg = MixedConfig.preset("100-2000", n=self.s.mixed_n, distribution="bimodal")
            texts = [r.prompt for r in self.pars.split().extra] or [r.prompt for r in self.pars.split().train]
            reqs = mixed_workload(cfg, model_tokenizer(self.s.model), texts, seed=seed)
            return self.pars.scored_test(reqs)
        raise ValueError(f"unknown workload {name!r}; valid: {', '.join(WORKLOADS)}")

    def partition_sample(self, name: str) -> tuple[list[int], str]:
        """Prompt lengths EWSJF learns its queues from, drawn apart from the evaluated requests, and where from."""
        n = self.ewsjf_s.sample_n
        if name == "sharegpt":
            return [r.prompt_tokens for r in self.pars.split().train[:n]], "the training split's prompts"
        if name == "mixed":
            from llmsched.experiments.ewsjf import TUNE_SEED_OFFSET, mixed_lengths_workload

            seed = int(self.s.seed) + TUNE_SEED_OFFSET
            return ([r.prompt_tokens for r in mixed_lengths_workload("100-2000", n, seed)],
                    f"a bimodal 100-2000 length draw with seed {seed}")
        raise ValueError(f"unknown workload {name!r}; valid: {', '.join(WORKLOADS)}")

    def policies(self, name: str) -> dict[str, PolicySpec]:
        from llmsched.experiments.ewsjf import ewsjf_specs
        from llmsched.predictors.scheduling import ranker_policies

        specs = ranker_policies(["pars", "ltr"], starvation_limit=self.pars.s.starvation_limit)
        oracle = specs.pop("oracle-sjf")
        specs |= ewsjf_specs(self.partition_sample(name)[0], self.pars.s.sim_steptime, self.ewsjf_s.max_queues)
        # EWSJF with rank-aware victims (the longest-prompt running request is preempted first)
        specs["ewsjf-rank"] = PolicySpec("ewsjf", {**specs["ewsjf"].args, "victim": "rank"})
        specs["prompt-sjf"] = PolicySpec("prompt-sjf", {})
        specs["oracle-sjf"] = oracle
        return specs

    def run(self, workloads: tuple[str, ...] = WORKLOADS) -> pd.DataFrame:
        """Each workload's sweep over the seeds: seed s serves its own draw of the workload with arrivals seeded by
        s, at h2h_loads × that draw's saturation throughput → <workload>/ (summary over seeds with 95 %
        intervals, per_seed, requests, sweep.json, data.json)."""
        from llmsched.sim import load_profile
        from llmsched.sim.sweep import seed_sweep

        prof = load_profile(self.pars.s.sim_steptime)
        config = prof.sim_config(**self.pars.s.sim_overrides)
        seeds = self.seeds()
        tables = []
        for name in workloads:
            draws = {s: self.workload(name, s) for s in seeds}
            logger.info("head-to-head %s: %d seeds of %d requests", name, len(seeds), len(draws[seeds[0]]))
            where = self.partition_sample(name)[1]
            table = seed_sweep(draws, self.s.loads, self.policies(name), config, prof.step_time,
                               out_dir=self.out / name, meta={"workload": name, "ewsjf_partition_sample": where},
                               desc=f"head-to-head {name}")
            n = len(draws[seeds[0]])
            (self.out / name / "data.json").write_text(json.dumps({
                "evaluated": f"{n} requests (workload {name!r}, seeds {seeds}: one draw and its arrivals each)",
                "seeds": seeds, "ewsjf_partition_sample": where}, indent=2) + "\n")
            tables.append(table.assign(workload=name))
        return pd.concat(tables, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from llmsched.experiments.stages import load_params

    ap = argparse.ArgumentParser(prog="python -m llmsched.experiments.headtohead", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s", stream=sys.stderr)
    table = HeadToHead(load_params(args.profile)).run(tuple(w for w in args.workloads.split(",") if w))
    cols = [c for c in ("workload", "label", "load", "e2e_mean", "normalized_latency_mean", "ttft_mean",
                        "token_throughput", "queue_delay_max") if c in table]
    print(table[cols].round(3).to_string(max_rows=200))
    return 0


if __name__ == "__main__":
    sys.exit(main())
