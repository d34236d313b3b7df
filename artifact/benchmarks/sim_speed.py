"""Speed of the simulator: 10,000 ShareGPT-like requests at saturation, oracle SJF, H100 / Llama-3-8B profile.

    PYTHONPATH=lib python artifact/benchmarks/sim_speed.py                       # the target: <= 5 s
    PYTHONPATH=lib python artifact/benchmarks/sim_speed.py --n 2000 --rate 5 --policy fcfs --max-num-seqs 256

Lengths are synthetic, drawn with a seeded numpy Generator from lognormals shaped like ShareGPT (means ~250
prompt and ~200 output tokens, sigma 1), capped so prompt + output fits max_model_len. Arrivals are Poisson at
`--rate` requests/s (default 1000/s, far above what one H100 serves, so the queue grows: saturation). Prints
the wall time of the simulation alone (workload generation excluded), requests simulated per second, engine
steps per second, and what the simulated engine did.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from llmsched.analysis.metrics import summarize
from llmsched.sim import load_profile, simulate
from llmsched.workload.request import Request


def sharegpt_like(n: int, rate: float, seed: int, max_model_len: int) -> list[Request]:
    rng = np.random.default_rng(seed)
    sigma = 1.0
    prompts = rng.lognormal(np.log(250) - sigma**2 / 2, sigma, n)
    outputs = rng.lognormal(np.log(200) - sigma**2 / 2, sigma, n)
    prompts = np.clip(np.rint(prompts), 1, max_model_len // 2).astype(int)
    outputs = np.clip(np.rint(outputs), 1, max_model_len // 2).astype(int)
    arrivals = np.concatenate(([0.0], np.cumsum(rng.exponential(1.0 / rate, n - 1))))
    return [Request(f"req-{i:05d}", "", int(p), int(o), float(a), source="synthetic-sharegpt")
            for i, (p, o, a) in enumerate(zip(prompts, outputs, arrivals, strict=True))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=1000.0, help="arrival rate, requests/s")
    ap.add_argument("--policy", default="oracle-sjf")
    ap.add_argument("--profile", default="h100-sxm_llama-3-8b")
    ap.add_argument("--max-num-seqs", type=int, default=None, help="override the profile's (vLLM default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    prof = load_profile(args.profile)
    overrides = {"max_num_seqs": args.max_num_seqs} if args.max_num_seqs else {}
    cfg = prof.sim_config(**overrides)
    reqs = sharegpt_like(args.n, args.rate, args.seed, cfg.max_model_len)
    print(f"profile {prof.name}: {cfg}")
    print(f"workload: {len(reqs)} requests, mean prompt {np.mean([r.prompt_tokens for r in reqs]):.0f}, "
          f"mean output {np.mean([r.output_tokens for r in reqs]):.0f} tokens, Poisson {args.rate:g} req/s")
    walls = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = simulate(reqs, cfg, prof.step_time, args.policy)
        walls.append(time.perf_counter() - t0)
    wall = min(walls)
    st = res.stats
    summ = summarize(res.frame)
    print(f"simulated: {st['num_steps']} engine steps ({st['num_iterations']} loop iterations), "
          f"{st['num_preemptions']} preemptions, max {st['max_running']} running, "
          f"{st['end_time']:.1f} s of engine time, {summ['request_throughput']:.1f} req/s, "
          f"{summ['token_throughput']:.0f} output tok/s, mean TTFT {summ['ttft_mean']:.2f} s")
    print(f"wall time {wall:.3f} s (best of {len(walls)}): {len(reqs) / wall:,.0f} requests/s, "
          f"{st['num_steps'] / wall:,.0f} steps/s")


if __name__ == "__main__":
    main()
