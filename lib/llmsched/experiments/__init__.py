"""The top floor: drivers that compose the library into the notebooks' stages. Notebooks import from here.

    ParsExperiments      PARS: collect lengths, ranker study, simulator sweeps, real-engine serving, agreement
    EWSJFExperiments     EWSJF: partitions, Optuna tuning on the simulator, sweeps, online tuning, serving
    HeadToHead           PARS, LTR and EWSJF on the same simulated workloads
    write_policy_costs   the admission cost of every policy (results/overheads/<profile>/policy_cost.parquet)
    serving_outputs      what notebook 04 writes, for the pipeline's skip check
    Report               notebook 06: figures, tables and the claims table from every stage's results
    PARSSettings, EWSJFSettings, HeadToHeadSettings   the drivers' typed settings (llmsched.experiments.settings)

Each driver also runs from the command line: python -m llmsched.experiments.pars|ewsjf|headtohead --profile P.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmsched.experiments.ewsjf import EWSJFExperiments
from llmsched.experiments.headtohead import HeadToHead
from llmsched.experiments.pars import ParsExperiments
from llmsched.experiments.policy_cost import policy_cost_path, policy_costs, write_policy_costs
from llmsched.experiments.report import Report
from llmsched.experiments.settings import EWSJFSettings, HeadToHeadSettings, PARSSettings


def serving_outputs(params: dict[str, Any], reasoning: bool = False) -> list[Path]:
    """The files notebook 04 (serving experiments) writes for `params`; with `reasoning`, the reasoning stage's."""
    pars, ewsjf, h2h = ParsExperiments(params), EWSJFExperiments(params), HeadToHead(params)
    out = [pars.out / d / "summary.parquet" for d in ("sim", "sim_proxy")] + [pars.out / "headroom" / "ratios.parquet"]
    out += [pars.out / "serve" / "summary.csv", pars.out / "agreement" / "comparison.csv",
            ewsjf.out / "serve" / "summary.csv"]
    out += [h2h.out / w / "summary.parquet" for w in ("sharegpt", "mixed")]
    out.append(policy_cost_path(pars.s.profile))
    if pars.s.kv_fractions:
        out.append(pars.out / "kv" / "summary.csv")
    if pars.s.kv_serving_blocks:
        out.append(pars.out / "serve_kv" / "summary.csv")
    if reasoning:
        out.append(pars.out / "reasoning" / "summary.parquet")
    return out


__all__ = [
    "EWSJFExperiments",
    "EWSJFSettings",
    "HeadToHead",
    "HeadToHeadSettings",
    "PARSSettings",
    "ParsExperiments",
    "Report",
    "policy_cost_path",
    "policy_costs",
    "serving_outputs",
    "write_policy_costs",
]
