"""Evidence that the plug-in schedules a real engine: FCFS vs oracle SJF on Gemma-3-270M (CPU), ShareGPT.

    .venv/bin/python artifact/benchmarks/serving_fcfs_vs_sjf.py            # defaults below, ≈7 min measured
    .venv/bin/python artifact/benchmarks/serving_fcfs_vs_sjf.py --n 40 --model tiny   # quick look

The arrival rate is set above the engine's capacity, so a queue builds up and the order matters. Writes
results/benchmarks/serving_fcfs_vs_sjf/<config hash>/ (workload, one folder per policy, summary.csv/.md) and
prints the summary. Prepare the model first (./run_all.sh does; or `python -m llmsched.models prepare gemma`).
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from llmsched.analysis.metrics import per_request
from llmsched.models import model_path
from llmsched.paths import results_dir
from llmsched.records import read_run
from llmsched.serving.engine import EngineConfig, config_hash
from llmsched.serving.experiment import compare_policies, run_dir, sharegpt_workload
from llmsched.serving.runner import RunConfig

SHOWN = ["n_ok", "e2e_mean", "normalized_latency_mean", "ttft_mean", "e2e_p90", "request_throughput",
         "token_throughput", "makespan"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma", help="prepared model name or path (default gemma)")
    ap.add_argument("--n", type=int, default=120, help="number of ShareGPT requests")
    ap.add_argument("--rate", type=float, default=1.0, help="Poisson arrival rate, req/s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-prompt-tokens", type=int, default=512)
    ap.add_argument("--max-output-tokens", type=int, default=256)
    ap.add_argument("--max-num-seqs", type=int, default=16)
    ap.add_argument("--policies", nargs="+", default=["fcfs", "oracle-sjf"])
    ap.add_argument("--force", action="store_true", help="rerun policies whose results exist")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    engine = EngineConfig(model=args.model, max_num_seqs=args.max_num_seqs, max_model_len=2048, kv_cache_gib=2)
    params = {k: v for k, v in vars(args).items() if k != "force"}
    out = results_dir() / "benchmarks" / "serving_fcfs_vs_sjf" / config_hash(params)
    requests = sharegpt_workload(
        model_path(args.model) if "/" not in args.model else args.model, args.n, args.rate, args.seed,
        max_prompt_tokens=args.max_prompt_tokens, max_output_tokens=args.max_output_tokens,
    )
    out_tokens = sum(r.output_tokens for r in requests)
    print(f"workload: {len(requests)} requests over {requests[-1].arrival_time:.0f} s, {out_tokens} output tokens "
          f"(mean {out_tokens / len(requests):.0f}), prompts mean "
          f"{sum(r.prompt_tokens for r in requests) / len(requests):.0f} tokens")
    table = compare_policies(requests, engine, args.policies, out, RunConfig(time_limit_s=3600), force=args.force)
    print(f"\nresults: {out}\n")
    print(table[SHOWN].to_string(float_format=lambda v: f"{v:.3f}"))
    if "fcfs" in table.index:
        for p in table.index.drop("fcfs"):
            print(f"{p}: mean E2E {table.loc['fcfs', 'e2e_mean'] / table.loc[p, 'e2e_mean']:.2f}x lower than FCFS, "
                  f"mean normalized latency "
                  f"{table.loc['fcfs', 'normalized_latency_mean'] / table.loc[p, 'normalized_latency_mean']:.2f}x")

    print("\nmean queueing delay / E2E (s) by reference output-length quartile:")
    rows = {}
    for p in table.index:
        df = per_request(read_run(run_dir(out, p, 0))[0])
        df["quartile"] = pd.qcut(df.ref_output_tokens, 4, labels=["Q1 (short)", "Q2", "Q3", "Q4 (long)"])
        m = df.groupby("quartile", observed=True)[["queue_delay", "e2e"]].mean()
        rows[p] = {q: f"{w:.1f} / {e:.1f}" for q, (w, e) in m.iterrows()}
    print(pd.DataFrame(rows).to_string())


if __name__ == "__main__":
    main()
