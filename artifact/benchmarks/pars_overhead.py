"""Overheads of PARS: ranker latency per request on CPU, its memory, and the policy's cost per admission.

    PYTHONPATH=lib python artifact/benchmarks/pars_overhead.py            # targets: <= 2 ms/request batched,
                                                                         #          <= 5 us/admission at 10,000
    PYTHONPATH=lib python artifact/benchmarks/pars_overhead.py --checkpoint results/predictors/pars-<hash>

Ranker: the MiniLM encoder + linear head (a trained checkpoint with --checkpoint, else the untrained network:
latency depends on shapes, not weights) scoring real ShareGPT prompts truncated to 128 tokens, at batch 1 and
batch 32 (prompts batched in length order, as TrainedRanker.score does), on all torch threads of this machine;
tokenization included. Memory: peak resident set size of the process after loading and scoring, and the
increase over the interpreter with torch imported.

Policy: 10,000 requests with random scores wait in the queue; each admission pops the best one and a new one
arrives (steady state), timed over 100,000 admissions; for FCFS, score SJF (no guard) and PARS with a guard of
1,000 admissions (shorter than the queue: every admission is a promotion) and of 1,000,000 (none is).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ranker_latency(args: argparse.Namespace) -> None:
    import torch

    from llmsched.predictors import load_ranker
    from llmsched.predictors.model import EncoderRanker, load_encoder
    from llmsched.predictors.ranker import TrainedRanker
    from llmsched.predictors.train import TrainConfig
    from llmsched.workload import load_sharegpt

    base = rss_mib()
    if args.checkpoint:
        ranker = load_ranker(args.checkpoint)
    else:
        enc, tok = load_encoder("minilm")
        ranker = TrainedRanker(EncoderRanker(enc), tok, TrainConfig(), {"n_outputs": 1})
    records, _ = load_sharegpt()
    rng = np.random.default_rng(0)
    prompts = [records[i].prompt for i in rng.permutation(len(records))[: args.n_prompts]]
    print(f"ranker: {'checkpoint ' + args.checkpoint if args.checkpoint else 'untrained MiniLM + head'}, "
          f"{torch.get_num_threads()} torch threads, {len(prompts)} ShareGPT prompts, max 128 tokens")
    ranker.score(prompts[:32])  # warm-up
    for bs in (1, 32):
        ranker.batch_size = bs
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            ranker.score(prompts)
            times.append(time.perf_counter() - t)
        best = min(times)
        print(f"  batch {bs:>2}: {1000 * best / len(prompts):7.2f} ms/request (best of {args.repeats}; "
              f"median {1000 * float(np.median(times)) / len(prompts):.2f})")
    print(f"  peak RSS {rss_mib():.0f} MiB (interpreter + torch before loading: {base:.0f} MiB)")


def policy_cost(n_waiting: int, n_ops: int) -> None:
    from llmsched.policies import RequestView, make_policy

    rng = np.random.default_rng(1)
    scores = rng.random(n_waiting + n_ops)
    views = [RequestView(f"r{i}", float(i), 100, {"score": float(s)}) for i, s in enumerate(scores)]
    print(f"policy: {n_waiting} waiting, {n_ops} admissions (pop best + add one)")
    # PARS with a guard shorter than the queue (every admission a promotion: the guard's worst case) and longer
    # than the run (no promotion: the guard's bookkeeping only)
    for name, kw in (("fcfs", {}), ("sjf", {}), ("pars", {"starvation_limit": 1000}),
                     ("pars", {"starvation_limit": 10 * n_ops})):
        q = make_policy(name, **kw)
        for v in views[:n_waiting]:
            q.add_request(v)
        t = time.perf_counter()
        for v in views[n_waiting:]:
            q.pop_request()
            q.add_request(v)
        dt = time.perf_counter() - t
        extra = f", guard {kw['starvation_limit']}, promoted {q.stats.get('promoted', 0)}" if name == "pars" else ""
        print(f"  {name:>5}: {1e6 * dt / n_ops:5.2f} us/admission (pop + add){extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="", help="a ranker checkpoint folder (default: untrained network)")
    ap.add_argument("--n-prompts", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--waiting", type=int, default=10_000)
    ap.add_argument("--admissions", type=int, default=100_000)
    args = ap.parse_args()
    policy_cost(args.waiting, args.admissions)
    ranker_latency(args)


if __name__ == "__main__":
    main()
