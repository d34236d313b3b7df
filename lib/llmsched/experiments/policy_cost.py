"""What a policy costs the scheduler: microseconds per admission with a deep waiting queue.

    admission_cost("ewsjf", n_waiting=10_000, n_admissions=20_000, bounds=...)   # -> µs per admission

The queue starts with `n_waiting` requests (prompt lengths uniform in 100-16,000 tokens, a random score hint);
each engine step calls `tick(now)`, admits `per_step` requests and adds as many new ones, so the queue stays at
its depth. Timed: ticks, scoring, routing, pops and adds — the work the engine's scheduler loop does per step.
artifact/benchmarks/ewsjf_overhead.py reports it for EWSJF at the issue's target sizes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.paths import results_dir
from llmsched.policies import PolicySpec


def admission_cost(name: str, n_waiting: int, n_admissions: int, per_step: int = 8, seed: int = 0,
                   **policy_args: Any) -> dict[str, float]:
    """µs per admission of policy `name` at a steady queue depth of `n_waiting` (see the module docstring)."""
    from llmsched.policies import RequestView, make_policy

    if n_waiting < 1 or n_admissions < per_step or per_step < 1:
        raise ValueError(f"need n_waiting >= 1 and n_admissions >= per_step >= 1, got {n_waiting}, "
                         f"{n_admissions}, {per_step}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(100, 16_000, n_waiting + n_admissions)
    scores = rng.random(n_waiting + n_admissions)
    views = [RequestView(f"r{i}", i * 1e-3, int(n), {"score": float(s), "ref_output_tokens": int(n) % 997 + 1})
             for i, (n, s) in enumerate(zip(lengths, scores, strict=True))]
    q = make_policy(name, **policy_args)
    for v in views[:n_waiting]:
        q.add_request(v)
    steps = n_admissions // per_step
    nxt, now = n_waiting, n_waiting * 1e-3
    tick = getattr(q, "tick", None)
    t0 = time.perf_counter()
    for _ in range(steps):
        now += 0.02
        if tick is not None:
            tick(now)
        for _ in range(per_step):
            q.pop_request()
            q.add_request(views[nxt])
            nxt += 1
    dt = time.perf_counter() - t0
    return {"us_per_admission": 1e6 * dt / (steps * per_step), "n_waiting": n_waiting,
            "admissions": steps * per_step, "queues": len(getattr(q, "queues", [])) or 1}


def equal_width_bounds(n_queues: int, lo: float = 100, hi: float = 16_000) -> list[list[float]]:
    """`n_queues` contiguous, disjoint [lo, hi] ranges of equal width (fixed EWSJF queues for cost runs)."""
    edges = np.linspace(lo, hi, n_queues + 1)
    return [[float(edges[i]), float(edges[i + 1]) - 1e-6] for i in range(n_queues)]


def policy_costs(n_waiting: int, n_admissions: int, n_queues: int = 30) -> pd.DataFrame:
    """The policies of both papers side by side; EWSJF with `n_queues` equal-width queues over 100-16,000."""
    bounds = equal_width_bounds(n_queues)
    cases = {
        "fcfs": PolicySpec("fcfs", {}),
        "sjf (score)": PolicySpec("sjf", {}),
        "pars (guard 1000)": PolicySpec("sjf", {"starvation_limit": 1000}),
        "oracle-sjf": PolicySpec("oracle-sjf", {}),
        "prompt-sjf": PolicySpec("prompt-sjf", {}),
        "ewsjf": PolicySpec("ewsjf", {"bounds": bounds, "max_queues": n_queues, "steptime": "a100-80gb_llama-2-13b",
                            "bubbles": False}),
        "ewsjf-released": PolicySpec("ewsjf-released", {"bounds": bounds, "max_queues": n_queues}),
    }
    rows = [{"policy": label, **admission_cost(spec.name, n_waiting, n_admissions, **spec.args)}
            for label, spec in cases.items()]
    return pd.DataFrame(rows)


def policy_cost_path(profile: str) -> Path:
    """Where the policy-cost table of run profile `profile` goes: results/overheads/<profile>/policy_cost.parquet."""
    return results_dir() / "overheads" / profile / "policy_cost.parquet"


def write_policy_costs(profile: str, n_waiting: int, n_admissions: int) -> pd.DataFrame:
    """policy_costs(n_waiting, n_admissions), written to policy_cost_path(profile); returns the table."""
    costs = policy_costs(n_waiting, n_admissions)
    path = policy_cost_path(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    costs.to_parquet(path, index=False)
    return costs
