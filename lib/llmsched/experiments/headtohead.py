"""PARS, LTR and EWSJF head to head on the same workloads and the same engine model (neither paper does this).

    python -m llmsched.experiments.headtohead --profile cpu

Workloads, in the simulator with the PARS profile's step-time model (`pars_sim_steptime`):
    sharegpt  the held-out ShareGPT prompts with their ChatGPT response lengths (PARS's setting), repeated to
              `pars_sim_n` requests, scored once by every ranker (ParsExperiments.scored_test)
    mixed     EWSJF's bimodal 100-2000 prompt mix cut from real ShareGPT text with outputs of 1-100 tokens
              (EWSJF's setting), `h2h_mixed_n` requests, scored by the same rankers; its outputs are synthetic
              and unrelated to the text, so a ranker can only help through what the text says of its length
Policies: FCFS, PARS and LTR (SJF on their scores, the profile's starvation guard), PARS as released (vLLM's
priority scheduler), EWSJF (queues learned from `ewsjf_sample_n` prompt lengths of a draw the sweep never serves:
the training split's prompts for sharegpt, a mixed draw with seed + TUNE_SEED_OFFSET for mixed; C_prefill from
the same step-time model), the authors' released EWSJF, prompt-length SJF and oracle SJF. Loads are `h2h_loads`
× the workload's saturation throughput.
Outputs under results/headtohead/<profile>/<workload>/: the rate sweep's summary.parquet, requests.parquet and
sweep.json. The real-engine head-to-head is ParsExperiments.serve with `pars_serving_ewsjf: true`.
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

    def workload(self, name: str) -> list[Any]:
        from llmsched.experiments.pars import repeat_requests

        if name == "sharegpt":
            return repeat_requests(self.pars.scored_test(), self.pars.s.sim_n)
        if name == "mixed":
            from llmsched.predictors.data import model_tokenizer
            from llmsched.workload.mixed import MixedConfig, mixed_workload

            cfg = MixedConfig.preset("100-2000", n=self.s.mixed_n, distribution="bimodal")
            texts = [r.prompt for r in self.pars.split().extra] or [r.prompt for r in self.pars.split().train]
            reqs = mixed_workload(cfg, model_tokenizer(self.s.model), texts, seed=self.s.seed)
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
        specs["prompt-sjf"] = PolicySpec("prompt-sjf", {})
        specs["oracle-sjf"] = oracle
        return specs

    def run(self, workloads: tuple[str, ...] = WORKLOADS) -> pd.DataFrame:
        from llmsched.sim import load_profile
        from llmsched.sim.sweep import rate_sweep, saturation_throughput

        prof = load_profile(self.pars.s.sim_steptime)
        config = prof.sim_config(**self.pars.s.sim_overrides)
        tables = []
        for name in workloads:
            reqs = self.workload(name)
            cap = saturation_throughput(reqs, config, prof.step_time)
            rates = [cap * f for f in self.s.loads]
            logger.info("head-to-head %s: %d requests, saturation %.2f req/s", name, len(reqs), cap)
            table = rate_sweep(reqs, rates, self.policies(name), config, prof.step_time, seed=self.s.seed,
                               capacity=cap, out_dir=self.out / name)
            (self.out / name / "data.json").write_text(json.dumps({
                "evaluated": f"{len(reqs)} requests (workload {name!r}, seed {self.s.seed})",
                "ewsjf_partition_sample": self.partition_sample(name)[1]}, indent=2) + "\n")
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
