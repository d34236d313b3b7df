"""Overheads of EWSJF: policy cost per admission with 10,000 waiting across 30 queues, and repartition time.

    PYTHONPATH=lib python artifact/benchmarks/ewsjf_overhead.py   # targets: <= 20 us/admission, <= 50 ms/repartition

Policy: 30 queues (bounds from 30 equal-width ranges over 100-16,000 tokens), 10,000 waiting requests with
uniform prompt lengths; each engine step (tick) admits 8 requests and 8 new ones arrive; timed over 100,000
admissions (ticks, scoring, routing and pops included). Repartition: Refine-and-Prune of 10,000 lengths
(the 100-16000 bimodal mix and uniform), best of 5.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from llmsched.experiments.policy_cost import admission_cost, equal_width_bounds
    from llmsched.policies.ewsjf import refine_and_prune
    from llmsched.workload.mixed import MixedConfig, draw_prompt_lengths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--waiting", type=int, default=10_000)
    ap.add_argument("--admissions", type=int, default=100_000)
    ap.add_argument("--queues", type=int, default=30)
    ap.add_argument("--per-step", type=int, default=8)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    bounds = equal_width_bounds(args.queues)
    for name in ("ewsjf", "ewsjf-released"):
        extra = {"steptime": "a100-80gb_llama-2-13b", "bubbles": False} if name == "ewsjf" else {}
        cost = admission_cost(name, args.waiting, args.admissions, per_step=args.per_step, bounds=bounds,
                              max_queues=args.queues, **extra)
        print(f"{name:>15}: {cost['us_per_admission']:6.2f} us/admission ({args.waiting} waiting, "
              f"{cost['queues']} queues, {args.per_step} admissions per step)")
    for dist in ("bimodal", "uniform"):
        x = draw_prompt_lengths(MixedConfig.preset("100-16000", n=10_000, distribution=dist), rng)
        best = min(_timed(lambda x=x: refine_and_prune(x, max_queues=args.queues)) for _ in range(5))
        part = refine_and_prune(x, max_queues=args.queues)
        print(f"repartition of 10,000 lengths ({dist}): {1000 * best:6.2f} ms, {len(part)} queues")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
