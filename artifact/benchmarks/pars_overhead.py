"""Overheads of PARS: ranker latency per request on CPU against its FLOP limit, its memory, and the policy's cost
per admission.

    PYTHONPATH=lib python artifact/benchmarks/pars_overhead.py            # targets: <= 3 ms/request for MiniLM
                                                                         #   at batch 32 (MPNet reported),
                                                                         #   <= 5 us/admission at 10,000
    PYTHONPATH=lib python artifact/benchmarks/pars_overhead.py --backbones minilm mpnet --max-tokens 128
    PYTHONPATH=lib python artifact/benchmarks/pars_overhead.py --checkpoint results/predictors/pars-<hash>
    PYTHONPATH=lib python artifact/benchmarks/pars_overhead.py --quick    # a few prompts: checks that it runs

Run it on an otherwise idle machine: torch's threads wait for each other, so another busy process on the same
cores slows every batch many times over, not by its share of the CPU (the header gives the load average;
--threads sets the torch threads, default all cores).

Ranker: each backbone of --backbones (prepared model names; default minilm and mpnet when mpnet is prepared)
with a linear head (a trained checkpoint with --checkpoint for its own backbone, else the untrained network,
seeded: latency depends on shapes, not weights) scores --n-prompts real ShareGPT first turns truncated to
--max-tokens tokens, at batch 1 and batch 32. Prompts are batched in order of length and each batch is padded
to its longest prompt (dynamic padding), as TrainedRanker.score does. Per batch size: ms/request end to end
(TrainedRanker.score, tokenization included; best of --repeats, median in brackets), tokenization alone (the
same tokenizer calls, best of --repeats) and the rest (the network: end to end minus tokenization). Tokens: the
mean tokens per prompt actually encoded, the share cut at --max-tokens, and the mean padded width at batch 32.

FLOP limit: multiply-accumulates per sequence of L tokens, from the backbone's config (layers N, hidden H,
feed-forward I): N * (L * (4 H^2 + 2 H I) + 2 L^2 H) (Q, K, V and output projections, feed-forward, attention
scores and their weighted sum over the L tokens), plus the pooler (H^2, computed though unused) and the head (H);
embeddings, layer norms, softmax and GELU are not counted. 2 FLOPs per MAC. Summed over the tokens actually
encoded (batch 1: each prompt's own length; batch 32: every row of a batch at the batch's padded width) and
divided by this machine's float32 matmul throughput (a large torch.matmul on all threads), it is the least time
the fp32 network can take: "x limit" says how far the measured end-to-end time is above it, and the target line
says what throughput 3 ms/request at batch 32 would take.

Variants per backbone: fp32 eager (the baseline); int8 (torch.ao.quantization.quantize_dynamic on every Linear
layer: int8 weights, activations quantized per batch), with the Kendall tau between its scores and fp32's on the
same prompts at batch 32 and their mean absolute difference in standard deviations of the fp32 scores (an
untrained head's scores vary little between prompts, so its tau understates a trained ranker's: --checkpoint
gives the figure that counts); ONNX Runtime (fp32, exported with torch.onnx) only when `import onnxruntime`
works, else the reason it was not tried. The FLOP limit is the fp32 one; int8 matmuls may run faster than it.

Memory: the peak resident set size of the process, and per backbone the RSS increase after loading and the peak
increase while scoring (fp32, then with the int8 copy), over the RSS before that backbone was loaded (the peak
is reset through /proc/self/clear_refs where the kernel allows it; elsewhere it is the process's peak so far).

Policy: 10,000 requests with random scores wait in the queue; each admission pops the best one and a new one
arrives (steady state), timed over 100,000 admissions; for FCFS, score SJF (no guard) and PARS with a guard of
1,000 admissions (shorter than the queue: every admission is a promotion) and of 1,000,000 (none is).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TARGET_MS = 3.0  # MiniLM, batch 32
BATCH_SIZES = (1, 32)
_peak_seen = 0.0  # the process's peak RSS before the last reset of the kernel's counter


def _status_mib(field: str) -> float | None:
    """VmRSS (current) or VmHWM (peak since the last reset) of this process in MiB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mib() -> float:
    """The process's peak resident set size so far (MiB), across resets of the kernel's counter."""
    return max(_peak_seen, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


def current_rss_mib() -> float:
    return _status_mib("VmRSS") or rss_mib()


def reset_peak() -> bool:
    """Restart the kernel's peak-RSS counter at the current RSS (Linux >= 4.0); False when not allowed."""
    global _peak_seen
    _peak_seen = rss_mib()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_since_reset_mib() -> float:
    return _status_mib("VmHWM") or rss_mib()


def matmul_gflops(n: int, repeats: int) -> float:
    """float32 GFLOP/s of an n x n @ n x n torch.matmul on all torch threads (best of `repeats`)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def encoder_dims(config: Any) -> tuple[int, int, int] | None:
    """(layers, hidden, feed-forward width) of a BERT-like config; None when it does not say them."""
    dims = [getattr(config, k, None) for k in ("num_hidden_layers", "hidden_size", "intermediate_size")]
    return None if any(not isinstance(d, int) for d in dims) else (dims[0], dims[1], dims[2])


def sequence_macs(dims: tuple[int, int, int], width: int, pooler: bool, n_outputs: int = 1) -> int:
    """Multiply-accumulates of the encoder + pooler + head over one sequence of `width` tokens."""
    n, h, ff = dims
    per_layer = width * (4 * h * h + 2 * h * ff) + 2 * width * width * h
    return n * per_layer + (h * h if pooler else 0) + h * n_outputs


def make_batches(tokenizer: Any, prompts: list[str], batch_size: int, max_tokens: int) -> list[tuple[Any, ...]]:
    """(index, input_ids, attention_mask) per batch, exactly as TrainedRanker.score forms them: prompts in order
    of length (characters), each batch padded to its longest prompt."""
    order = np.argsort([len(p) for p in prompts], kind="stable")
    out = []
    for start in range(0, len(prompts), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([prompts[i] for i in idx], truncation=True, padding=True, max_length=max_tokens,
                        return_tensors="pt")
        out.append((idx, enc["input_ids"], enc["attention_mask"]))
    return out


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(best seconds, median seconds, last result) of `fn` over `repeats` calls."""
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times)), result


def onnx_forward(model: Any, batches: list[tuple[Any, ...]], threads: int) -> Callable[[Any, Any], Any]:
    """The ranker exported to ONNX and run by ONNX Runtime (CPU, `threads` intra-op threads): raw outputs."""
    import onnxruntime as ort
    import torch

    _, ids, mask = batches[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "ranker.onnx")
        axes = {0: "batch", 1: "tokens"}
        torch.onnx.export(model, (ids, mask), path, input_names=["input_ids", "attention_mask"],
                          output_names=["raw"], dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                                              "raw": {0: "batch"}},
                          opset_version=17, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

    def forward(ids: Any, mask: Any) -> Any:
        return torch.from_numpy(session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0])

    return forward


def score_loop(forward: Callable[[Any, Any], Any], ranker: Any, prompts: list[str], batch_size: int) -> np.ndarray:
    """TrainedRanker._score with another forward (tokenize each length-ordered batch, run, objective scores)."""
    import torch

    scores = np.empty(len(prompts), dtype=np.float64)
    with torch.inference_mode():
        for idx, ids, mask in make_batches(ranker.tokenizer, prompts, batch_size, ranker.config.max_tokens):
            scores[idx] = ranker.objective.scores(forward(ids, mask))
    return scores


def load_backbone_ranker(backbone: str, args: argparse.Namespace, checkpoint: Any) -> tuple[Any, str]:
    """(TrainedRanker, label): the checkpoint when it is of this backbone, else the seeded untrained network."""
    import torch

    from llmsched.predictors.model import EncoderRanker, load_encoder
    from llmsched.predictors.ranker import TrainedRanker, load_ranker
    from llmsched.predictors.train import TrainConfig

    if checkpoint is not None and checkpoint[1] == backbone:
        ranker = load_ranker(checkpoint[0])
        return ranker, f"checkpoint {checkpoint[0]} (max {ranker.config.max_tokens} tokens)"
    torch.manual_seed(0)
    enc, tok = load_encoder(backbone)
    config = TrainConfig(backbone=backbone, max_tokens=args.max_tokens)
    return TrainedRanker(EncoderRanker(enc), tok, config, {"n_outputs": 1}), "untrained head"


def measure_backbone(backbone: str, prompts: list[str], args: argparse.Namespace, gflops: float,
                     checkpoint: Any) -> tuple[dict[str, float], float]:
    """Print one backbone's tokens, FLOPs, variant latencies and memory; (batch-32 ms/request per variant, FLOPs
    per request as padded at batch 32 or NaN)."""
    import torch
    from torch import nn

    from llmsched.predictors.metrics import kendall_tau
    from llmsched.predictors.ranker import TrainedRanker

    gc.collect()
    rss0 = current_rss_mib()
    peak_reset = reset_peak()
    ranker, label = load_backbone_ranker(backbone, args, checkpoint)
    rss_loaded = current_rss_mib()
    model, tok, max_tokens = ranker.model, ranker.tokenizer, ranker.config.max_tokens
    dims = encoder_dims(model.encoder.config)
    pooler = getattr(model.encoder, "pooler", None) is not None
    n_params = sum(p.numel() for p in model.parameters())
    shape = f"{dims[0]} layers, hidden {dims[1]}, feed-forward {dims[2]}" if dims else "config without BERT sizes"
    print(f"{backbone} ({Path(str(model.encoder.config.name_or_path)).name}: {shape}, "
          f"{n_params / 1e6:.1f} M parameters; {label})")

    # tokens actually encoded, and the FLOP limit at each batch size
    batches = {bs: make_batches(tok, prompts, bs, max_tokens) for bs in BATCH_SIZES}
    lengths = np.concatenate([m.sum(1).numpy() for _, _, m in batches[1]])
    padded = np.concatenate([np.full(len(i), ids.shape[1]) for i, ids, _ in batches[32]])
    print(f"  tokens/prompt encoded: {lengths.mean():.1f} mean (median {np.median(lengths):.0f}, "
          f"{100 * np.mean(lengths >= max_tokens):.0f}% cut at {max_tokens}); batch 32 pads to "
          f"{padded.mean():.1f} mean ({100 * (padded.sum() / lengths.sum() - 1):.1f}% padding)")
    limit_ms: dict[int, float] = {}
    at32 = float("nan")
    if dims:
        real = sum(sequence_macs(dims, int(n), pooler) for n in lengths) * 2 / len(prompts)
        at32 = sum(sequence_macs(dims, int(w), pooler) for w in padded) * 2 / len(prompts)
        attn = sum(2 * dims[0] * int(n) ** 2 * dims[1] for n in lengths) * 2 / len(prompts) / real
        limit_ms = {1: 1000 * real / (gflops * 1e9), 32: 1000 * at32 / (gflops * 1e9)}
        print(f"  FLOPs/request: {real / 1e9:.3f} GFLOP on the prompt's own tokens (attention scores "
              f"{100 * attn:.1f}%), {at32 / 1e9:.3f} GFLOP as padded at batch 32 -> FLOP limit at "
              f"{gflops:.0f} GFLOP/s: {limit_ms[1]:.3f} ms/request (batch 1), {limit_ms[32]:.3f} (batch 32)")
    else:
        print("  FLOPs/request: not counted (the config does not give num_hidden_layers, hidden_size, "
              "intermediate_size)")

    # tokenization alone: the same calls as the scoring loop makes
    tok_ms = {}
    for bs in BATCH_SIZES:
        best, _, _ = timed(lambda bs=bs: make_batches(tok, prompts, bs, max_tokens), args.repeats)
        tok_ms[bs] = 1000 * best / len(prompts)

    print(f"  {'variant':<13}{'batch':>5}{'ms/request':>12}{'(median)':>10}{'tokenize':>10}{'network':>9}"
          f"{'x limit':>9}{'tau vs fp32':>13}{'|diff|/sd':>11}")
    results: dict[str, float] = {}
    fp32_scores: np.ndarray | None = None

    def run_variant(name: str, score: Callable[[list[str], int], np.ndarray]) -> None:
        nonlocal fp32_scores
        score(prompts[:8], 8)  # warm-up
        for bs in BATCH_SIZES:
            best, median, scores = timed(lambda bs=bs: score(prompts, bs), args.repeats)
            ms = 1000 * best / len(prompts)
            far = f"{ms / limit_ms[bs]:8.1f}x" if bs in limit_ms else f"{'-':>9}"
            tau = diff = ""
            if fp32_scores is None and bs == 32:
                fp32_scores, tau = scores, "(baseline)"
            elif bs == 32 and fp32_scores is not None:
                tau = f"{kendall_tau(scores, fp32_scores):.4f}"
                diff = f"{np.mean(np.abs(scores - fp32_scores)) / max(float(np.std(fp32_scores)), 1e-12):.3f}"
            print(f"  {name:<13}{bs:>5}{ms:12.2f}{1000 * median / len(prompts):10.2f}{tok_ms[bs]:10.2f}"
                  f"{ms - tok_ms[bs]:9.2f}{far}{tau:>13}{diff:>11}".rstrip())
            if bs == 32:
                results[name] = ms

    def ranker_score(r: Any) -> Callable[[list[str], int], np.ndarray]:
        def score(ps: list[str], bs: int) -> np.ndarray:
            r.batch_size = bs
            return r.score(ps)
        return score

    run_variant("fp32 eager", ranker_score(ranker))
    peak_fp32 = peak_since_reset_mib()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        qranker = TrainedRanker(qmodel, tok, ranker.config, ranker.info)
        run_variant("int8 dynamic", ranker_score(qranker))
    peak_int8 = peak_since_reset_mib()
    del qranker, qmodel

    onnx = "installed" if importlib.util.find_spec("onnx") else "not installed"
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        print(f"  onnxruntime: not tried (import onnxruntime failed: {e}; torch.onnx.export also needs the onnx "
              f"package: {onnx}; this script installs nothing)")
    else:
        try:
            fwd = onnx_forward(model, batches[32], torch.get_num_threads())
            run_variant("onnxruntime", lambda ps, bs: score_loop(fwd, ranker, ps, bs))
        except Exception as e:  # an export or runtime failure is a result to print, not a crash
            print(f"  onnxruntime: failed ({e.__class__.__name__}: {str(e)[:300]})")

    where = "" if peak_reset else " (peak counter not resettable here: process peak so far)"
    print(f"  memory: RSS +{rss_loaded - rss0:.0f} MiB after loading; peak +{peak_fp32 - rss0:.0f} MiB while "
          f"scoring fp32, +{peak_int8 - rss0:.0f} MiB with the int8 copy too (over {rss0:.0f} MiB before "
          f"loading{where})")
    return results, at32


def ranker_latency(args: argparse.Namespace) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    from llmsched.models import MODEL_NAMES, is_prepared
    from llmsched.predictors.trained import META
    from llmsched.workload import load_sharegpt

    hf_logging.disable_progress_bar()
    base = rss_mib()
    checkpoint = None
    if args.checkpoint:
        checkpoint = (args.checkpoint, json.loads((Path(args.checkpoint) / META).read_text())["config"]["backbone"])
    backbones = args.backbones
    if not backbones:
        backbones = [checkpoint[1]] if checkpoint else ["minilm", "mpnet"]
        if not checkpoint and not is_prepared("mpnet"):
            backbones = ["minilm"]
            print("note: mpnet is not prepared (python -m llmsched.models prepare mpnet): measuring minilm only")
    records, _ = load_sharegpt()
    rng = np.random.default_rng(0)
    prompts = [records[i].prompt for i in rng.permutation(len(records))[: args.n_prompts]]
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    gflops = matmul_gflops(args.matmul_size, 5)
    n = args.matmul_size
    print(f"ranker: {len(prompts)} ShareGPT first turns (seed 0), max {args.max_tokens} tokens, {threads} torch "
          f"threads ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}); float32 matmul {n}x{n}: "
          f"{gflops:.1f} GFLOP/s (best of 5)")
    results, flops32 = {}, {}
    for backbone in backbones:
        if backbone in MODEL_NAMES and not is_prepared(backbone):
            print(f"{backbone}: not prepared (python -m llmsched.models prepare {backbone}): skipped")
            continue
        results[backbone], flops32[backbone] = measure_backbone(backbone, prompts, args, gflops, checkpoint)
        gc.collect()
    if "minilm" in results:
        name, ms = min(results["minilm"].items(), key=lambda kv: kv[1])
        need = flops32["minilm"] / (TARGET_MS / 1000) / 1e9
        print(f"target: MiniLM <= {TARGET_MS:g} ms/request at batch 32 -> {'met' if ms <= TARGET_MS else 'NOT met'} "
              f"(fastest: {name}, {ms:.2f} ms/request); fp32 at this padding would need {need:.0f} GFLOP/s for the "
              f"network alone, {need / gflops:.1f}x the measured matmul throughput")
    print(f"peak RSS {rss_mib():.0f} MiB (interpreter + torch before loading: {base:.0f} MiB)")


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
    ap.add_argument("--backbones", nargs="+", default=None,
                    help="prepared model names (default: minilm mpnet, or minilm when mpnet is not prepared)")
    ap.add_argument("--max-tokens", type=int, default=128, help="truncation of the untrained rankers' prompts")
    ap.add_argument("--n-prompts", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's, all cores)")
    ap.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n matmul timed for GFLOP/s")
    ap.add_argument("--waiting", type=int, default=10_000)
    ap.add_argument("--admissions", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true",
                    help="16 prompts of at most 64 tokens, 1 repeat, 10,000 admissions, a 1024 matmul: checks that "
                         "the script runs (its figures are not the measurement)")
    args = ap.parse_args()
    if args.quick:
        args.n_prompts, args.repeats, args.max_tokens = min(args.n_prompts, 16), 1, min(args.max_tokens, 64)
        args.admissions, args.matmul_size = min(args.admissions, 10_000), min(args.matmul_size, 1024)
    policy_cost(args.waiting, args.admissions)
    ranker_latency(args)


if __name__ == "__main__":
    main()
