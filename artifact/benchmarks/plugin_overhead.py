"""Cost of the plug-in: stock vLLM (its own FCFS queue) vs vLLM with llmsched's PolicyScheduler running FCFS.

    .venv/bin/python artifact/benchmarks/plugin_overhead.py                 # tiny model, ~2 min
    .venv/bin/python artifact/benchmarks/plugin_overhead.py --model gemma --n 64 --repeats 2

The same offline batch (all requests at t=0, fixed prompt and output lengths, replay mode) runs on each
engine `--repeats` times, alternating, after one warm-up batch. A tiny model makes the scheduler's share of
each step as large as it gets, so it is the hardest case for the plug-in. Prints output-token throughput and
mean E2E per engine, and writes results/benchmarks/plugin_overhead/<model>.csv.
"""

from __future__ import annotations

import argparse
import statistics

import pandas as pd

from llmsched.analysis.metrics import summarize
from llmsched.paths import results_dir
from llmsched.serving.engine import EngineConfig
from llmsched.serving.runner import EngineRunner, RunConfig
from llmsched.workload import Request


def batch(n: int, prompt_words: int, output_tokens: int, tag: str) -> list[Request]:
    return [
        Request(f"{tag}-{i}", f"request {i}: " + "lorem ipsum dolor sit amet " * (prompt_words // 5), prompt_words,
                output_tokens)
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--n", type=int, default=256, help="requests per batch")
    ap.add_argument("--prompt-words", type=int, default=100)
    ap.add_argument("--output-tokens", type=int, default=128)
    ap.add_argument("--max-num-seqs", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    engines = {
        "stock vLLM (FCFS)": EngineConfig(model=args.model, plugin=False, max_num_seqs=args.max_num_seqs),
        "llmsched plug-in (fcfs)": EngineConfig(model=args.model, policy="fcfs", max_num_seqs=args.max_num_seqs),
    }
    runners = {name: EngineRunner(cfg) for name, cfg in engines.items()}
    rows = []
    try:
        quiet = RunConfig(progress=False)
        for runner in runners.values():  # warm-up
            runner.run(batch(args.max_num_seqs, args.prompt_words, args.output_tokens, "warm"), quiet)
        for rep in range(args.repeats):
            for name, runner in runners.items():
                df = runner.run(batch(args.n, args.prompt_words, args.output_tokens, f"r{rep}"), quiet)
                s = summarize(df)
                rows.append({"engine": name, "repeat": rep, "token_throughput": s["token_throughput"],
                             "e2e_mean": s["e2e_mean"], "makespan": s["makespan"], "n_ok": s["n_ok"]})
                print(f"{name:26s} repeat {rep}: {s['token_throughput']:8.1f} output tok/s, "
                      f"mean E2E {s['e2e_mean']:.3f} s, {s['n_ok']}/{args.n} ok")
    finally:
        for runner in runners.values():
            runner.close()
    table = pd.DataFrame(rows)
    out = results_dir() / "benchmarks" / "plugin_overhead"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{args.model.replace('/', '_')}.csv", index=False)
    print()
    means = {}
    for name in engines:
        tp = table[table.engine == name].token_throughput.tolist()
        means[name] = statistics.mean(tp)
        sd = statistics.stdev(tp) if len(tp) > 1 else 0.0
        print(f"{name:26s} {means[name]:8.1f} ± {sd:.1f} output tok/s over {len(tp)} batches of {args.n}")
    stock, plug = means.values()
    print(f"plug-in / stock throughput: {plug / stock:.3f}")


if __name__ == "__main__":
    main()
