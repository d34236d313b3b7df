"""Simulator vs real engine: FCFS and oracle SJF on Gemma-3-270M (CPU), ShareGPT, at several arrival rates.

    PYTHONPATH=lib python artifact/benchmarks/sim_validation.py                  # ~20 min of engine time if
                                                                                  # nothing is cached
    PYTHONPATH=lib python artifact/benchmarks/sim_validation.py --sim-only       # only cases with real results

Each case "RATE:N" is a ShareGPT workload (experiment.sharegpt_workload with the model's tokenizer, seed,
prompt/output caps) served by the real engine through compare_policies (runs whose results exist for the same
config are reused: a matching folder of artifact/benchmarks/serving_fcfs_vs_sjf.py in
results/benchmarks/serving_fcfs_vs_sjf/<hash>/ first, else results/validation/real/<hash>/, where new runs also
record their engine steps), then simulated with the calibrated profile (`python -m llmsched.serving.calibrate`) on
the very same arrival times. Writes results/validation/<hash>/comparison.csv and .md (real, sim and relative
error (sim - real) / real of mean E2E, mean TTFT, p90 E2E, output-token throughput, mean normalized latency),
the simulated runs, and prints the table, the step-level check and the SJF-vs-FCFS comparison.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from llmsched.analysis.metrics import summarize
from llmsched.models import model_path
from llmsched.paths import results_dir
from llmsched.serving.engine import EngineConfig, config_hash
from llmsched.serving.experiment import compare_policies, run_dir, sharegpt_workload
from llmsched.serving.runner import RunConfig
from llmsched.sim import load_profile
from llmsched.sim.validate import (
    TARGETS,
    comparison_table,
    format_table,
    load_real_run,
    refit_profile,
    simulate_real_run,
    step_error_summary,
    write_table,
)


def parse_case(text: str) -> tuple[float, int]:
    try:
        rate, n = text.split(":")
        return float(rate), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a case is RATE:N (e.g. 0.2:100), got {text!r}") from None


def real_root(args: argparse.Namespace, rate: float, n: int) -> Path:
    """Where the real runs of a case live: the serving benchmark's folder when it has this exact config."""
    bench = {"model": args.model, "n": n, "rate": rate, "seed": args.seed, "max_prompt_tokens": args.max_prompt_tokens,
             "max_output_tokens": args.max_output_tokens, "max_num_seqs": args.max_num_seqs,
             "policies": args.policies}
    p = results_dir() / "benchmarks" / "serving_fcfs_vs_sjf" / config_hash(bench)
    if all((p / pol / "run_key.json").exists() for pol in args.policies):
        return p
    return results_dir() / "validation" / "real" / config_hash({**bench, "kind": "sim-validation"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma")
    ap.add_argument("--profile", default="cpu-gemma-3-270m", help="calibrated step-time profile (name or path)")
    ap.add_argument("--cases", nargs="+", type=parse_case, default=[(0.2, 100), (1.0, 120), (2.0, 120)],
                    help="RATE:N pairs (default 0.2:100 1.0:120 2.0:120)")
    ap.add_argument("--policies", nargs="+", default=["fcfs", "oracle-sjf"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-prompt-tokens", type=int, default=512)
    ap.add_argument("--max-output-tokens", type=int, default=256)
    ap.add_argument("--max-num-seqs", type=int, default=16)
    ap.add_argument("--sim-only", action="store_true", help="skip cases without real results instead of running")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    profile = load_profile(args.profile)
    engine = EngineConfig(model=args.model, max_num_seqs=args.max_num_seqs, max_model_len=2048, kv_cache_gib=2)
    key = {"cases": args.cases, "policies": args.policies, "seed": args.seed, "engine": engine.to_dict(),
           "max_prompt_tokens": args.max_prompt_tokens, "max_output_tokens": args.max_output_tokens,
           "profile": {"name": profile.name, "coefficients": profile.data.get("coefficients"),
                       "engine": profile.engine}}
    out = results_dir() / "validation" / config_hash(key)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(key, indent=2, default=str) + "\n")
    c = profile.step_time
    print(f"profile {profile.name}: {c}\nengine limits {profile.engine}\n")

    pairs = {}
    sims = {}
    roots = {}
    for rate, n in args.cases:
        case = f"rate {rate:g}, n {n}"
        root = real_root(args, rate, n)
        have = all((run_dir(root, p, 0) / "requests.parquet").exists() for p in args.policies)
        if not have and args.sim_only:
            print(f"{case}: no real results in {root}, skipped (--sim-only)")
            continue
        if not have:
            requests = sharegpt_workload(model_path(args.model), n, rate, args.seed,
                                         max_prompt_tokens=args.max_prompt_tokens,
                                         max_output_tokens=args.max_output_tokens)
            compare_policies(requests, engine, args.policies, root, RunConfig(time_limit_s=3600, record_steps=True))
        roots[case] = root
        for policy in args.policies:
            real = load_real_run(root, policy)
            sim = simulate_real_run(root, policy, profile, max_num_seqs=args.max_num_seqs)
            sim.write(out / "sim" / f"rate-{rate:g}_n-{n}" / policy)
            sim.steps.to_parquet(out / "sim" / f"rate-{rate:g}_n-{n}" / policy / "steps.parquet", index=False)
            pairs[(case, policy)] = (real, sim.frame)
            sims[(case, policy)] = sim

    table = comparison_table(pairs)
    header = (f"Simulator ({profile.name}) vs real engine ({args.model}, vLLM CPU); relative error = (sim - real) "
              f"/ real; targets |err| <= {TARGETS}. Real runs: " + ", ".join(f"{k}: {v}" for k, v in roots.items()))
    csv, md = write_table(table, out, header)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    print(format_table(table).to_string())
    print(f"\nwritten: {csv}, {md}\n")

    print("step level: real serving-loop cycles vs the profile's prediction (runs that recorded steps)")
    for (case, policy), _ in pairs.items():
        steps_file = run_dir(roots[case], policy, 0) / "steps.parquet"
        if steps_file.exists():
            s = step_error_summary(pd.read_parquet(steps_file), profile)
            print(f"-- {case}, {policy}\n{s.to_string(float_format=lambda v: f'{v:.3f}')}")
    # Diagnostic: each real run re-simulated with step times fitted on its own recorded steps.
    refit_pairs = {}
    own_profiles = {}
    for (case, policy), (real, _) in pairs.items():
        steps_file = run_dir(roots[case], policy, 0) / "steps.parquet"
        if steps_file.exists():
            own = own_profiles[(case, policy)] = refit_profile(profile, pd.read_parquet(steps_file))
            sim = simulate_real_run(roots[case], policy, own, max_num_seqs=args.max_num_seqs)
            refit_pairs[(case, policy)] = (real, sim.frame)
            print(f"   {case}, {policy}: own-steps fit {own.step_time}")
    if refit_pairs:
        t2 = comparison_table(refit_pairs)
        write_table(t2, out / "own_steps", "Diagnostic: each real run simulated with step times fitted on its own "
                    "recorded steps (not a validation: isolates scheduling fidelity from step-time error and drift)")
        print("\ndiagnostic: sim with step times fitted on the run's own steps\n" + format_table(t2).to_string())

    print("\nsimulated engine: steps, mean step (ms), busy time (s), mean running batch, prefill tokens per step")
    for (case, policy), sim in sims.items():
        st = sim.steps
        dur = st["end"] - st["start"]
        print(f"  {case:18s} {policy:11s} steps {len(st):5d}  mean {1e3 * dur.mean():6.1f} ms  busy "
              f"{dur.sum():7.1f} s  batch {st['num_seqs'].mean():5.2f}  prefill/step {st['prefill_tokens'].mean():6.1f}"
              f"  preemptions {sim.stats['num_preemptions']}")

    if "fcfs" in args.policies and "oracle-sjf" in args.policies:
        print("\nSJF vs FCFS (mean E2E, mean normalized latency): real | sim")
        for rate, n in args.cases:
            case = f"rate {rate:g}, n {n}"
            if (case, "fcfs") not in pairs:
                continue
            r = {p: summarize(pairs[(case, p)][0]) for p in ("fcfs", "oracle-sjf")}
            s = {p: summarize(pairs[(case, p)][1]) for p in ("fcfs", "oracle-sjf")}
            print(f"  {case:18s} E2E fcfs {r['fcfs']['e2e_mean']:7.2f} sjf {r['oracle-sjf']['e2e_mean']:7.2f} | "
                  f"fcfs {s['fcfs']['e2e_mean']:7.2f} sjf {s['oracle-sjf']['e2e_mean']:7.2f};  norm. latency "
                  f"fcfs {r['fcfs']['normalized_latency_mean']:.3f} sjf "
                  f"{r['oracle-sjf']['normalized_latency_mean']:.3f} | "
                  f"fcfs {s['fcfs']['normalized_latency_mean']:.3f} sjf "
                  f"{s['oracle-sjf']['normalized_latency_mean']:.3f}")
        # Both policies at one machine speed: each run's own step-time fit applied to both policies.
        for (case, fitted_on), own in own_profiles.items():
            e2e = {p: summarize(simulate_real_run(roots[case], p, own, max_num_seqs=args.max_num_seqs).frame)
                   for p in ("fcfs", "oracle-sjf")}
            print(f"  {case:18s} sim with the step times of the real {fitted_on} run: mean E2E fcfs "
                  f"{e2e['fcfs']['e2e_mean']:.2f} sjf {e2e['oracle-sjf']['e2e_mean']:.2f}; norm. latency fcfs "
                  f"{e2e['fcfs']['normalized_latency_mean']:.3f} sjf "
                  f"{e2e['oracle-sjf']['normalized_latency_mean']:.3f}")


if __name__ == "__main__":
    main()
