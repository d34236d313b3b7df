"""Rate sweeps in the simulator: the same workload under several policies, from light load to overload.

    cap = saturation_throughput(requests, config, step_time)          # req/s with everything queued at once
    table = rate_sweep(requests, [0.5 * cap, cap, 2 * cap], policies, config, step_time, seed=0, out_dir=...)

`policies` maps a label to a PolicySpec (or a (name, args) pair), e.g.
{"pars": PolicySpec("sjf", {"score_key": "score_pars", "starvation_limit": 1000})}, so one policy class can
appear with different scores (PARS, LTR, pointwise rankers) and settings. Each rate
gets fresh arrival times from the same seed (the same arrival pattern, scaled), shared by all policies.

Outputs in `out_dir`: summary.parquet (one row per label × rate: llmsched.analysis.metrics summary columns
plus label, policy, rate, load = rate / saturation throughput when given) and requests.parquet (every
request's record with label and rate), plus sweep.json with the engine limits, step-time model and policies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from llmsched.analysis.metrics import summarize
from llmsched.policies import PolicySpec
from llmsched.sim.simulator import simulate
from llmsched.steptime.limits import SimConfig
from llmsched.steptime.models import StepTimeModel
from llmsched.workload import Request, assign_arrivals, make_arrivals

logger = logging.getLogger(__name__)

PolicySpecs = Mapping[str, PolicySpec | tuple[str, Mapping[str, Any]]]


def saturation_throughput(requests: Sequence[Request], config: SimConfig, step_time: StepTimeModel) -> float:
    """Requests per second the engine admits while a backlog lasts: every request waits at time 0 (FCFS), and
    the rate is n / (time the last one is admitted).

    NOTE: n / makespan would understate it: the makespan ends with the longest responses decoding in a
    nearly empty batch, which says nothing about the rate the engine can take new requests at.
    """
    at_once = assign_arrivals(list(requests), [0.0] * len(requests))
    frame = simulate(at_once, config, step_time, "fcfs").frame
    last_admitted = float(pd.to_numeric(frame["scheduled"], errors="coerce").max())
    if not last_admitted > 0:
        raise ValueError("the engine admitted the whole workload at once: no saturation rate to measure")
    return len(frame) / last_admitted


def rate_sweep(
    requests: Sequence[Request],
    rates: Sequence[float],
    policies: PolicySpecs,
    config: SimConfig,
    step_time: StepTimeModel,
    *,
    seed: int,
    arrivals: str = "poisson",
    burstiness: float = 1.0,
    capacity: float | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Simulate every (policy label, rate); return the summary table (and write it with `out_dir`)."""
    if not rates or any(not r > 0 for r in rates):
        raise ValueError(f"rates must be a non-empty list of positive numbers, got {list(rates)}")
    if not policies:
        raise ValueError("no policies to sweep")
    specs = {label: PolicySpec.parse(s) for label, s in policies.items()}  # all checked before the first run
    rows, frames = [], []
    jobs = [(rate, label) for rate in rates for label in policies]
    for rate, label in tqdm(jobs, desc="sim sweep", disable=not progress, unit="run"):
        times = make_arrivals(arrivals, len(requests), rate, seed=seed, burstiness=burstiness)
        timed = assign_arrivals(list(requests), times)
        spec = specs[label]
        res = simulate(timed, config, step_time, spec)
        row = {"label": label, "policy": spec.name, "rate": float(rate), **summarize(res.frame)}
        if capacity:
            row["load"] = float(rate) / capacity
        pstats = res.stats.get("policy_stats", {})
        row["promoted"] = int(pstats.get("promoted", 0))
        row["missing_score"] = int(pstats.get("missing_score", 0))
        rows.append(row)
        frames.append(res.frame.assign(label=label, rate=float(rate)))
    table = pd.DataFrame(rows)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_parquet(out / "summary.parquet", index=False)
        pd.concat(frames, ignore_index=True).to_parquet(out / "requests.parquet", index=False)
        meta = {"engine": config.to_dict(),
                "step_time": repr(step_time), "policies": {k: s.to_json() for k, s in specs.items()},
                "rates": list(map(float, rates)), "seed": seed, "arrivals": arrivals, "burstiness": burstiness,
                "n_requests": len(requests), "capacity_req_s": capacity}
        (out / "sweep.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return table
