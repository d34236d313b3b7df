"""Calibrate a LinearStepTime profile against the real vLLM engine (in-process CPU build).

    python -m llmsched.serving.calibrate --model gemma          # -> artifact/profiles/steptime/cpu-gemma-3-270m.json
    python -m llmsched.serving.calibrate --model tiny --quick --out my-profile.json

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

The fit, the profile it becomes and its report are pure functions of the step frame: llmsched.steptime.fit.
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
from llmsched.steptime.fit import build_profile, fit_step_time, predict, report, step_kind
from llmsched.steptime.profiles import PROFILE_DIR, load_profile

logger = logging.getLogger(__name__)

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


def default_profile_name(model: str) -> str:
    from llmsched.serving.engine import EngineConfig

    return f"cpu-{Path(EngineConfig(model=model).resolved_model()).name}"


def calibrate(model: str = "gemma", out: str | Path | None = None, *, steps_dir: str | Path | None = None,
              seed: int = 0, quick: bool = False, max_num_seqs: int = 16, max_num_batched_tokens: int = 2048,
              max_model_len: int = 2048, kv_cache_gib: int = 2, progress: bool = True,
              dtype: str = "machine") -> tuple[Path, dict]:
    """Measure the engine over the calibration plan, fit, write the profile JSON (and steps.parquet under
    `steps_dir`, default results/calibration/<profile name>/). Returns (profile path, profile dict)."""
    from llmsched.serving.engine import EngineConfig
    from llmsched.serving.runner import EngineRunner

    cfg = EngineConfig(model=model, policy="fcfs", max_num_seqs=max_num_seqs,
                       max_num_batched_tokens=max_num_batched_tokens, max_model_len=max_model_len,
                       kv_cache_gib=kv_cache_gib, dtype=dtype)
    t_start = time.monotonic()
    with EngineRunner(cfg) as runner:
        if progress:
            print(f"[calibrate] engine up in {runner.startup_s:.1f} s", flush=True)
        return calibrate_runner(runner, out, steps_dir=steps_dir, seed=seed, quick=quick, progress=progress,
                                t_start=t_start)


def calibrate_runner(runner: Any, out: str | Path | None = None, *, steps_dir: str | Path | None = None,
                     seed: int = 0, quick: bool = False, progress: bool = True,
                     t_start: float | None = None) -> tuple[Path, dict]:
    """`calibrate` on an already open EngineRunner (its model and engine limits, whatever its policy): the
    calibration plan, the fit, the profile JSON and steps.parquet. The engine is left empty and reusable.
    Used to recalibrate on the very engine a stale profile was checked against (llmsched.serving.probe)."""
    cfg = runner.config
    name = default_profile_name(cfg.model)
    out_path = Path(out) if out is not None else PROFILE_DIR / f"{name}.json"
    name = out_path.stem
    sdir = Path(steps_dir) if steps_dir is not None else results_dir() / "calibration" / name
    limits = engine_limits(runner.llm)
    plan = calibration_plan(seed, max_num_seqs=limits["max_num_seqs"],
                            max_num_batched_tokens=limits["max_num_batched_tokens"],
                            max_model_len=limits["max_model_len"], quick=quick)
    say = (lambda s: print(f"[calibrate] {s}", flush=True)) if progress else None
    if say:
        say(f"{name}: {len(plan)} phases")
    t_start = time.monotonic() if t_start is None else t_start
    measured_at = datetime.now(UTC)
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
        "model": cfg.model,
        "model_dir": Path(cfg.resolved_model()).name,
        "engine_config": cfg.to_dict(),
        "vllm_version": vllm.__version__,
        "torch_version": torch_version,
        "torch_threads": threads,
        "machine": machine_info(),
        "date": measured_at.strftime("%Y-%m-%d"),
        "measured_at": measured_at.isoformat(timespec="seconds"),
        "seed": seed,
        "quick": quick,
        "plan_phases": len(plan),
        "num_steps": int(len(steps)),
        "engine_run_s": round(run_s, 1),
        "total_s": round(time.monotonic() - t_start, 1),
        "steps_file": steps_ref,
        "step_definition": "serving-loop cycle: schedule() entry to the next schedule() entry (module doc of "
                           "llmsched.serving.calibrate)",
    }
    data = build_profile(name, fit, limits, meta)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(data, indent=2) + "\n")
    load_profile(out_path)  # what was written loads
    return out_path, data


def iter_phases(phases: Sequence[Phase]) -> Iterator[tuple[str, int, int]]:
    """(phase name, requests, prompt tokens) per phase: for a summary of a plan."""
    for ph in phases:
        items = ph.batch + [x for v in ph.inject.values() for x in v]
        yield ph.name, len(items), sum(p for p, _ in items)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmsched.serving.calibrate",
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
    ap.add_argument("--dtype", default="machine", help="engine dtype (default: follow this machine's CPU, as the "
                    "pipeline's engines do; float32, bfloat16, auto)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for k, v in {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
        os.environ.setdefault(k, v)
    path, data = calibrate(args.model, args.out, steps_dir=args.steps_dir, seed=args.seed, quick=args.quick,
                           max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
                           max_model_len=args.max_model_len, kv_cache_gib=args.kv_cache_gib, dtype=args.dtype)
    print(report(data))
    meta = data["calibration"]
    print(f"wrote {path} (engine run {meta['engine_run_s']} s, total {meta['total_s']} s)")


if __name__ == "__main__":
    main()
