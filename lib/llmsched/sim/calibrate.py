"""Calibrate a LinearStepTime profile against the real vLLM engine (in-process CPU build).

    python -m llmsched.sim calibrate --model gemma          # -> artifact/profiles/steptime/cpu-gemma-3-270m.json
    python -m llmsched.sim calibrate --model tiny --quick --out my-profile.json

What is measured. The simulator advances its clock by one `step_time(...)` per engine step and starts the
next step at once, so the quantity to fit is the *cycle* of the real serving loop: from the moment the engine
core enters `Scheduler.schedule()` for step i to the moment it enters it for step i+1. That cycle holds the
scheduling, the model forward pass and sampling, `update_from_output`, the output processor (detokenisation,
request metrics), and the host work of the driving loop between two `LLMEngine.step()` calls (adding requests
that arrived, bookkeeping). The driver here is the serving runner's loop (`EngineRunner`'s engine, its
SamplingParams: replay, ignore_eos, greedy), so per-step host overhead lands in the measurement and the fit
puts it in c0 (per step) and c_decode (per sequence: sampling, detokenisation, output processing).
A step without a successor (the engine ran dry after it) has no cycle and is not fitted.

How. `llmsched.serving.steps.StepRecorder` records every engine step: its composition (prefill_tokens,
decode_seqs, kv_tokens, num_seqs) and timestamps.

The plan (`calibration_plan`): a warm-up (discarded), then prefill-only steps (k prompts of P tokens, P from 16
to 1536, k * P within the 2048-token budget, max_tokens 1, plus one chunked prefill), decode "staircases"
(16 prompts of 16 or 256 tokens, 8 of 640, with staggered max_tokens, so the decode batch shrinks to 1) with
single prompts injected every few steps (mixed steps), and a short ShareGPT-shaped random workload that keeps
~16 sequences running (the serving regime). Prompts are random token ids (prefix caching is off, so content
does not matter). About 2.5 minutes of engine time for Gemma-3-270M on 2 cores, plus engine start-up.

The fit. Non-negative least squares (scipy.optimize.nnls) of cycle time on [1, prefill_tokens, decode_seqs,
kv_tokens], rows weighted by 1/measured time (minimises relative error: decode steps of 100 ms and prefill
steps of 2 s count alike). Outliers are dropped robustly for the shape of the fit (three rounds of refitting
without steps whose relative residual lies more than 4 scaled MADs from the median), then all coefficients are
scaled by the mean measured/predicted ratio over the training steps, outliers included: the simulator sums
step times, so it needs the mean step, stalls included (`fit_step_time`). Quality is reported on a held-out
random 25 % of the steps (never used for the fit): R^2, mean / median / p90 relative error, the error of the
summed time, and per step kind (prefill, decode, mixed).

NOTE: on a CPU the model is compute bound, so step time is close to linear in the tokens computed, which is
what LinearStepTime expresses. What it cannot express: (1) prefill attention is quadratic in the chunk length
(kv_tokens of a P-token prefill is P, while attention work grows with P^2 / 2): with Gemma-3-270M a single
1,500-token prompt takes ~12 % longer than the fit says and 8 prompts of 100 tokens ~15 % less; prompts of the
serving experiments (<= 512 tokens, mostly one per step) sit in between; (2) the LM head and sampler run once
per *scheduled* sequence, also for prefills (decode_seqs only counts decodes): ~2 tokens' worth, negligible.
Neither needs an extra term at the accuracy this machine allows: consecutive steps of identical composition
vary by ~10 % (mean |relative error| of a fit on a serving run's own steps), and the machine's speed drifts
by 10-20 % between runs minutes apart (c0, the per-step cost of streaming ~1 GB of fp32 weights, moves most),
so a profile is only as good as the period it was measured in; recalibrate right before the runs it should
predict. The interface stays (c0, c_prefill, c_decode, c_kv).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.paths import results_dir
from llmsched.serving.steps import StepRecorder, engine_core
from llmsched.sim.profiles import PROFILE_DIR, SCHEMA, load_profile
from llmsched.sim.steptime import LinearStepTime

logger = logging.getLogger(__name__)

FEATURES = ("prefill_tokens", "decode_seqs", "kv_tokens")


def step_kind(df: pd.DataFrame) -> pd.Series:
    """'prefill' (no decodes), 'decode' (no prefill tokens) or 'mixed', per step."""
    return pd.Series(np.where(df["decode_seqs"] == 0, "prefill", np.where(df["prefill_tokens"] == 0, "decode",
                                                                           "mixed")), index=df.index)


# ---------------------------------------------------------------------------------------------------------
# The calibration plan and its driver
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    """Requests submitted together when the phase starts (prompt tokens, max_tokens), plus injections:
    after the phase's k-th step, the requests in inject[k] are added."""

    name: str
    batch: list[tuple[int, int]]
    inject: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


def calibration_plan(seed: int = 0, *, max_num_seqs: int = 16, max_num_batched_tokens: int = 2048,
                     max_model_len: int = 2048, quick: bool = False) -> list[Phase]:
    """The phases of a calibration run (module docstring). `quick`: a handful of steps (smoke tests)."""
    rng = np.random.default_rng(seed)
    b, budget = max_num_seqs, max_num_batched_tokens
    cap = max_model_len - 1  # a prompt + at least one output token must fit

    def clip(p: int) -> int:
        return int(min(max(p, 1), cap))

    if quick:
        return [
            Phase("warmup", [(clip(64), 3)] * 2),
            Phase("prefill", [(clip(128), 1)] * 2),
            Phase("prefill", [(clip(256), 1)]),
            Phase("decode", [(clip(32), 3 + 2 * i) for i in range(min(4, b))], inject={2: [(clip(96), 1)]}),
        ]
    phases = [
        Phase("warmup", [(clip(256), 4)] * min(4, b)),
        Phase("warmup", [(clip(32), 6)] * b),
    ]
    for p in (16, 64, 128, 256, 512, 1024, 1536):
        for k in (1, 2, 4, 8):
            if k <= b and k * p <= budget:
                jitter = int(rng.integers(-p // 8, p // 8 + 1))
                phases.append(Phase("prefill", [(clip(p + jitter), 1)] * k))
    phases.append(Phase("prefill", [(clip(1536), 1)] * 2))  # chunked: 2048 + 1024 tokens
    # decode staircases: the batch shrinks from `size` to 1, two steps per size; a prompt injected every 5 steps
    for ctx, size in ((16, b), (256, b), (640, max(1, b // 2))):
        inject = {s: [(clip(int(rng.integers(16, 769))), 1)] for s in range(3, 2 * size, 5)}
        phases.append(Phase("decode", [(clip(ctx), 1 + 2 * (i + 1)) for i in range(size)], inject=inject))
    # ShareGPT-shaped: lognormal prompt / output lengths (capped at 512 / 128), 2 b requests, ~b running
    n = 2 * b
    prompts = np.clip(rng.lognormal(np.log(200), 0.9, n), 8, 512).astype(int)
    outputs = np.clip(rng.lognormal(np.log(60), 0.8, n), 2, 128).astype(int)
    inject = {}
    for j in range(b, n):  # after the first b, one new request every 4 steps
        inject.setdefault(4 * (j - b + 1), []).append((clip(int(prompts[j])), int(outputs[j])))
    phases.append(Phase("serving", [(clip(int(p)), int(o)) for p, o in zip(prompts[:b], outputs[:b],
                                                                             strict=True)], inject=inject))
    return phases


def run_plan(runner: Any, phases: Sequence[Phase], seed: int = 0,
             progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Drive the runner's engine through `phases` the way EngineRunner.run drives it (add what is due, one
    `engine.step()`, read the outputs, repeat), the next phase submitted right after the step in which the
    previous one drained. Returns the StepRecorder frame."""
    from vllm import TokensPrompt

    from llmsched.serving.runner import RunConfig
    from llmsched.workload.request import Request

    engine = runner.engine
    if engine.has_unfinished_requests():
        raise RuntimeError("engine still has unfinished requests")
    vocab = int(getattr(runner.llm.get_tokenizer(), "vocab_size", 1000) or 1000)
    lo, hi = min(10, vocab - 1), max(min(vocab, 100_000), 11)
    rng = np.random.default_rng(seed)
    run_cfg = RunConfig()
    counter = 0

    def submit(items: list[tuple[int, int]]) -> None:
        nonlocal counter
        for p, o in items:
            rid = f"cal-{counter:05d}"
            counter += 1
            req = Request(rid, "x", int(p), int(o))
            ids = rng.integers(lo, hi, int(p)).tolist()
            engine.add_request(rid, TokensPrompt(prompt_token_ids=ids), runner.sampling_params(req, run_cfg))

    rec = StepRecorder(runner.llm)
    try:
        queue = list(phases)
        while queue:
            ph = queue.pop(0)
            rec.phase = ph.name
            submit(ph.batch)
            pending = sorted(ph.inject.items())
            k = 0
            while engine.has_unfinished_requests():
                engine.step()
                k += 1
                # what is due now, or everything left when the engine drained early
                while pending and (pending[0][0] <= k or not engine.has_unfinished_requests()):
                    submit(pending.pop(0)[1])
            if progress:
                progress(f"{ph.name}: {k} steps")
    finally:
        rec.detach()
    return rec.frame(continuous=True)


# ---------------------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    """A fitted LinearStepTime and how well it fits (see `fit_step_time`)."""

    model: LinearStepTime
    quality: dict[str, Any]
    train: np.ndarray  # boolean masks over the frame given to fit_step_time
    test: np.ndarray
    outliers: np.ndarray


def design(df: pd.DataFrame) -> np.ndarray:
    return np.column_stack([np.ones(len(df)), *(df[c].to_numpy(float) for c in FEATURES)])


def predict(model: LinearStepTime, df: pd.DataFrame) -> np.ndarray:
    c = np.array([model.c0, model.c_prefill, model.c_decode, model.c_kv])
    return design(df) @ c


def _nnls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    scale = np.maximum(np.abs(x).max(axis=0), 1e-12)  # column scaling: kv_tokens is ~1e4, the intercept 1
    coef, _ = nnls(x * w[:, None] / scale, y * w)
    return coef / scale


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    ss = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - p) ** 2).sum()) / ss if ss > 0 else math.nan


def _errors(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    if not len(y):
        return {"n": 0}
    rel = (p - y) / y
    return {
        "n": int(len(y)),
        "r2": _r2(y, p),
        "rel_err_mean_abs": float(np.abs(rel).mean()),
        "rel_err_median_abs": float(np.median(np.abs(rel))),
        "rel_err_p90_abs": float(np.percentile(np.abs(rel), 90)),
        "rel_err_bias": float(rel.mean()),
        "total_time_rel_err": float(p.sum() / y.sum() - 1.0),
        "measured_mean_s": float(y.mean()),
    }


def fit_step_time(df: pd.DataFrame, target: str = "cycle_s", *, test_fraction: float = 0.25, seed: int = 0,
                  mad_k: float = 4.0, rounds: int = 3, relative: bool = True,
                  mean_correct: bool = True) -> FitResult:
    """Fit LinearStepTime to measured steps (columns prefill_tokens, decode_seqs, kv_tokens and `target`).

    Rows with a missing or non-positive target or in a phase named "warmup" are ignored. A seeded random
    `test_fraction` of the rest is held out; the fit (NNLS, rows weighted by 1/target when `relative`) drops
    outliers in `rounds` refits (relative residual more than `mad_k` scaled MADs from the median).
    With `mean_correct`, the coefficients are then scaled by the mean of measured / predicted over all training
    steps, outliers included.
    NOTE: the robust relative fit gives the shape (how time grows with each feature) of a *typical* step;
    the simulator sums step times, so it needs the *mean* step, and stalls (another process, the allocator,
    the VM's neighbours) are real time the engine loses at some rate: on this machine the relative fit alone
    underestimates summed time by 3-15 %. The correction puts that rate back, uniformly.
    Quality: errors on the fitted steps, the held-out steps (outliers included there: no peeking), per step kind.
    """
    if target not in df.columns:
        raise ValueError(f"step frame has no column {target!r}; has {list(df.columns)}")
    y_all = df[target].to_numpy(float)
    usable = np.isfinite(y_all) & (y_all > 0)
    if "phase" in df.columns:
        usable &= (df["phase"] != "warmup").to_numpy()
    idx = np.flatnonzero(usable)
    if len(idx) < 8:
        raise ValueError(f"only {len(idx)} usable steps (finite {target} > 0, not warm-up): need at least 8")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(df), bool)
    test[rng.choice(idx, int(round(test_fraction * len(idx))), replace=False)] = True
    train = usable & ~test
    x_all = design(df)
    keep = train.copy()
    for _ in range(max(1, rounds)):
        w = 1.0 / y_all[keep] if relative else np.ones(int(keep.sum()))
        coef = _nnls(x_all[keep], y_all[keep], w)
        rel = (x_all @ coef - y_all) / np.where(usable, y_all, 1.0)
        med = float(np.median(rel[train]))
        mad = 1.4826 * float(np.median(np.abs(rel[train] - med)))
        new_keep = train & (np.abs(rel - med) <= mad_k * max(mad, 1e-3))
        if (new_keep == keep).all():
            break
        keep = new_keep
    w = 1.0 / y_all[keep] if relative else np.ones(int(keep.sum()))
    coef = _nnls(x_all[keep], y_all[keep], w)
    scale = float(np.mean(y_all[train] / np.maximum(x_all[train] @ coef, 1e-12))) if mean_correct else 1.0
    coef = coef * scale
    model = LinearStepTime(*(float(c) for c in coef))
    pred = x_all @ coef
    kinds = step_kind(df).to_numpy()
    quality: dict[str, Any] = {
        "target": target,
        "weighting": "relative (rows weighted by 1/measured)" if relative else "absolute",
        "mean_correction": scale,
        "n_steps": int(len(df)),
        "n_usable": int(usable.sum()),
        "n_train": int(train.sum()),
        "n_outliers": int((train & ~keep).sum()),
        "n_test": int(test.sum()),
        "train": _errors(y_all[keep], pred[keep]),
        "test": _errors(y_all[test], pred[test]),
        "test_by_kind": {k: _errors(y_all[test & (kinds == k)], pred[test & (kinds == k)])
                         for k in ("prefill", "decode", "mixed")},
    }
    return FitResult(model, quality, train & keep, test, train & ~keep)


# ---------------------------------------------------------------------------------------------------------
# Profile
# ---------------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem = math.nan
    return {"nproc": os.cpu_count(), "cpu_model": cpu or platform.processor(), "machine": platform.machine(),
            "memory_gib": round(mem, 1), "python": platform.python_version()}


def engine_limits(llm: Any) -> dict[str, int]:
    """The SimConfig fields of a live engine: num_blocks from vLLM's KV-cache sizing, the scheduler limits."""
    cfg = engine_core(llm).vllm_config
    return {
        "num_blocks": int(cfg.cache_config.num_gpu_blocks),
        "block_size": int(cfg.cache_config.block_size),
        "max_num_seqs": int(cfg.scheduler_config.max_num_seqs),
        "max_num_batched_tokens": int(cfg.scheduler_config.max_num_batched_tokens),
        "max_model_len": int(cfg.model_config.max_model_len),
    }


def build_profile(name: str, fit: FitResult, engine: dict[str, int], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON dict of a linear profile (loadable by llmsched.sim.load_profile)."""
    m = fit.model
    q = fit.quality
    model = meta.get("model_dir") or meta.get("model", "?")
    return {
        "schema": SCHEMA,
        "name": name,
        "kind": "linear",
        "description": (
            f"Step time (serving-loop cycle) of {model} on vLLM {meta.get('vllm_version', '?')} "
            f"CPU, {meta.get('machine', {}).get('nproc', '?')} cores ({meta.get('machine', {}).get('cpu_model', '?')})"
            f", fitted by llmsched.sim.calibrate (NNLS): held-out R^2 {q['test'].get('r2', math.nan):.3f}, mean "
            f"|relative error| {q['test'].get('rel_err_mean_abs', math.nan):.1%}."
        ),
        "coefficients": {"c0": m.c0, "c_prefill": m.c_prefill, "c_decode": m.c_decode, "c_kv": m.c_kv},
        "engine": engine,
        "fit": q,
        "caveat": "valid for the machine and the period it was measured in: on a shared small VM the engine's speed "
                  "drifts (10-25 % between runs minutes apart on the 2-core development machine); recalibrate "
                  "right before the runs it should predict (llmsched.sim.calibrate module doc)",
        "calibration": meta,
        "sources": {
            "coefficients": "NNLS fit of measured serving-loop cycles (schedule() entry to the next schedule() "
                            "entry) of the real engine: llmsched.sim.calibrate; raw steps in "
                            f"{meta.get('steps_file', '?')}",
            "engine.num_blocks": "vllm_config.cache_config.num_gpu_blocks of the calibrated engine (KV cache of "
                                 f"{meta.get('engine_config', {}).get('kv_cache_gib', '?')} GiB)",
            "engine.block_size": "vllm_config.cache_config.block_size of the calibrated engine",
            "engine.max_num_seqs": "the calibrated engine's scheduler_config (as in the serving experiments)",
            "engine.max_num_batched_tokens": "the calibrated engine's scheduler_config",
            "engine.max_model_len": "the calibrated engine's model_config",
        },
    }


def default_profile_name(model: str) -> str:
    from llmsched.serving.engine import EngineConfig

    return f"cpu-{Path(EngineConfig(model=model).resolved_model()).name}"


def calibrate(model: str = "gemma", out: str | Path | None = None, *, steps_dir: str | Path | None = None,
              seed: int = 0, quick: bool = False, max_num_seqs: int = 16, max_num_batched_tokens: int = 2048,
              max_model_len: int = 2048, kv_cache_gib: int = 2, progress: bool = True) -> tuple[Path, dict]:
    """Measure the engine over the calibration plan, fit, write the profile JSON (and steps.parquet under
    `steps_dir`, default results/calibration/<profile name>/). Returns (profile path, profile dict)."""
    from llmsched.serving.engine import EngineConfig
    from llmsched.serving.runner import EngineRunner

    name = default_profile_name(model)
    out_path = Path(out) if out is not None else PROFILE_DIR / f"{name}.json"
    name = out_path.stem
    sdir = Path(steps_dir) if steps_dir is not None else results_dir() / "calibration" / name
    cfg = EngineConfig(model=model, policy="fcfs", max_num_seqs=max_num_seqs,
                       max_num_batched_tokens=max_num_batched_tokens, max_model_len=max_model_len,
                       kv_cache_gib=kv_cache_gib)
    plan = calibration_plan(seed, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                            max_model_len=max_model_len, quick=quick)
    say = (lambda s: print(f"[calibrate] {s}", flush=True)) if progress else None
    t_start = time.monotonic()
    with EngineRunner(cfg) as runner:
        if say:
            say(f"engine up in {runner.startup_s:.1f} s; {len(plan)} phases")
        limits = engine_limits(runner.llm)
        t_run = time.monotonic()
        steps = run_plan(runner, plan, seed=seed, progress=say if not quick else None)
        run_s = time.monotonic() - t_run
    fit = fit_step_time(steps, seed=seed)
    steps = steps.assign(kind=step_kind(steps), predicted_s=predict(fit.model, steps), fit_train=fit.train,
                         fit_test=fit.test, fit_outlier=fit.outliers)
    sdir.mkdir(parents=True, exist_ok=True)
    steps_file = sdir / "steps.parquet"
    steps.to_parquet(steps_file, index=False)
    import vllm

    try:
        import torch

        torch_version, threads = torch.__version__, torch.get_num_threads()
    except ImportError:  # pragma: no cover - vllm depends on torch
        torch_version, threads = "", 0
    try:
        steps_ref = str(steps_file.relative_to(results_dir().parent))
    except ValueError:
        steps_ref = str(steps_file)
    meta = {
        "model": model,
        "model_dir": Path(cfg.resolved_model()).name,
        "engine_config": cfg.to_dict(),
        "vllm_version": vllm.__version__,
        "torch_version": torch_version,
        "torch_threads": threads,
        "machine": machine_info(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "seed": seed,
        "quick": quick,
        "plan_phases": len(plan),
        "num_steps": int(len(steps)),
        "engine_run_s": round(run_s, 1),
        "total_s": round(time.monotonic() - t_start, 1),
        "steps_file": steps_ref,
        "step_definition": "serving-loop cycle: schedule() entry to the next schedule() entry (module doc of "
                           "llmsched.sim.calibrate)",
    }
    data = build_profile(name, fit, limits, meta)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(data, indent=2) + "\n")
    load_profile(out_path)  # what was written loads
    return out_path, data


def report(data: dict[str, Any]) -> str:
    """A few lines on a calibrated profile: coefficients and fit quality."""
    c, q = data["coefficients"], data["fit"]
    lines = [
        f"profile {data['name']}: c0 = {c['c0'] * 1e3:.2f} ms, c_prefill = {c['c_prefill'] * 1e6:.1f} us/token, "
        f"c_decode = {c['c_decode'] * 1e3:.2f} ms/seq, c_kv = {c['c_kv'] * 1e6:.3f} us/token",
        f"engine limits: {data['engine']}",
        f"steps: {q['n_steps']} recorded, {q['n_train']} fitted ({q['n_outliers']} outliers dropped), "
        f"{q['n_test']} held out; mean correction x{q.get('mean_correction', 1.0):.3f}",
    ]
    for part in ("train", "test"):
        e = q[part]
        lines.append(f"{part:5s}: R^2 {e['r2']:.4f}  |rel err| mean {e['rel_err_mean_abs']:.1%} median "
                     f"{e['rel_err_median_abs']:.1%} p90 {e['rel_err_p90_abs']:.1%}  bias {e['rel_err_bias']:+.1%}  "
                     f"summed time {e['total_time_rel_err']:+.1%}")
    for k, e in q["test_by_kind"].items():
        if e.get("n"):
            lines.append(f"  test {k:7s} n={e['n']:3d} |rel err| mean {e['rel_err_mean_abs']:.1%} bias "
                         f"{e['rel_err_bias']:+.1%} (mean measured {e['measured_mean_s'] * 1e3:.0f} ms)")
    return "\n".join(lines)


def iter_phases(phases: Sequence[Phase]) -> Iterator[tuple[str, int, int]]:
    """(phase name, requests, prompt tokens) per phase: for a summary of a plan."""
    for ph in phases:
        items = ph.batch + [x for v in ph.inject.values() for x in v]
        yield ph.name, len(items), sum(p for p, _ in items)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmsched.sim calibrate",
                                 description="Fit a LinearStepTime profile to the real vLLM engine's steps.")
    ap.add_argument("--model", default="gemma", help="prepared model name (gemma, tiny) or path")
    ap.add_argument("--out", default=None, help="profile JSON (default artifact/profiles/steptime/cpu-<model>.json)")
    ap.add_argument("--steps-dir", default=None, help="where steps.parquet goes (default results/calibration/<name>)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a handful of steps (smoke test)")
    ap.add_argument("--max-num-seqs", type=int, default=16)
    ap.add_argument("--max-num-batched-tokens", type=int, default=2048)
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--kv-cache-gib", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for k, v in {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
        os.environ.setdefault(k, v)
    path, data = calibrate(args.model, args.out, steps_dir=args.steps_dir, seed=args.seed, quick=args.quick,
                           max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
                           max_model_len=args.max_model_len, kv_cache_gib=args.kv_cache_gib)
    print(report(data))
    meta = data["calibration"]
    print(f"wrote {path} (engine run {meta['engine_run_s']} s, total {meta['total_s']} s)")
