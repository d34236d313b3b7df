"""A short, fixed engine-speed probe, and checking a measured step-time profile against it.

    with EngineRunner(EngineConfig(model="smollm2")) as runner:
        speed = speed_probe(runner)            # {"probe_output_tok_s": ..., "probe_step_ms_mean": ..., ...}
        check = check_profile("cpu-SmolLM2-135M-Instruct", runner)
        print(check.message())

The probe. On an open EngineRunner (any policy), a small warm-up (discarded), then PROBE_REQUESTS random-token
prompts of PROBE_PROMPT_TOKENS tokens submitted together, each generating PROBE_OUTPUT_TOKENS tokens (greedy,
ignore_eos: the serving runner's replay sampling), driven step by step exactly as the calibration drives the
engine (llmsched.serving.calibrate.run_plan) with every step recorded (llmsched.serving.steps.StepRecorder).
Prompt token ids are drawn from `seed`, so two probes with the same seed do identical work. The engine is left
empty: the next `runner.run(...)` starts from a clean queue. About 3 s for SmolLM2-135M on 2 cores.

Why. A CPU step-time profile holds only on the machine state that measured it: on a shared VM the engine's
speed differs between machines and drifts by 10-25 % over minutes (NOTES.md), and a profile measured on another
day or machine can be off by a third. `check_profile` replays the probe's recorded steps through the profile's
step-time model and compares the predicted with the measured serving-loop time of the same steps; `ensure_profile`
applies a policy when they disagree by more than a tolerance: recalibrate on this engine, warn loudly, or raise.
Only measured CPU profiles (kind "linear" with a "calibration" section, the `cpu-*` files) are checked;
analytic GPU profiles are exempt (there is nothing on this machine to check them against).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

PROBE_REQUESTS = 8
PROBE_PROMPT_TOKENS = 128
PROBE_OUTPUT_TOKENS = 32
ON_MISMATCH = ("recalibrate", "warn", "error")
DEFAULT_TOLERANCE = 0.10


def _probe_phases(max_model_len: int) -> tuple[list[Any], list[Any]]:
    from llmsched.serving.calibrate import Phase

    cap = max(1, max_model_len - PROBE_OUTPUT_TOKENS - 1)
    warmup = [Phase("warmup", [(min(64, cap), 4)] * 2)]
    probe = [Phase("probe", [(min(PROBE_PROMPT_TOKENS, cap), PROBE_OUTPUT_TOKENS)] * PROBE_REQUESTS)]
    return warmup, probe


def probe_steps(runner: Any, *, seed: int = 0) -> tuple[pd.DataFrame, float]:
    """Run the probe on `runner` (an open EngineRunner with an empty engine); returns its recorded steps
    (llmsched.serving.steps.STEP_COLUMNS, warm-up excluded) and the probe's wall time in seconds."""
    from llmsched.serving.calibrate import run_plan

    if runner.llm is None:
        raise RuntimeError("EngineRunner is closed")
    if runner.engine.has_unfinished_requests():
        raise RuntimeError("engine still has unfinished requests: probe an idle engine")
    if runner.config.enable_prefix_caching:
        runner.llm.reset_prefix_cache()  # the probe measures uncached prefills
    warmup, probe = _probe_phases(runner.max_model_len)
    run_plan(runner, warmup, seed=seed + 1)
    t = time.monotonic()
    steps = run_plan(runner, probe, seed=seed)
    seconds = time.monotonic() - t
    if runner.config.enable_prefix_caching:
        runner.llm.reset_prefix_cache()  # nothing of the probe stays behind for the next run
    return steps, seconds


def probe_summary(steps: pd.DataFrame, seconds: float) -> dict[str, float]:
    """The probe's speed numbers from its recorded steps (see `speed_probe`)."""
    cyc = steps[np.isfinite(steps["cycle_s"])]
    prefill = cyc[cyc["decode_seqs"] == 0]
    decode = cyc[cyc["prefill_tokens"] == 0]
    out_tokens = PROBE_REQUESTS * PROBE_OUTPUT_TOKENS

    def rate(tokens: float, s: float) -> float:
        return float(tokens / s) if s > 0 else math.nan

    return {
        "probe_seconds": float(seconds),
        "probe_steps": float(len(steps)),
        "probe_output_tok_s": rate(out_tokens, seconds),
        "probe_prefill_tok_s": rate(float(prefill["prefill_tokens"].sum()), float(prefill["cycle_s"].sum())),
        "probe_decode_tok_s": rate(float(decode["decode_seqs"].sum()), float(decode["cycle_s"].sum())),
        "probe_step_ms_mean": float(1e3 * cyc["cycle_s"].mean()) if len(cyc) else math.nan,
    }


def speed_probe(runner: Any, *, seed: int = 0) -> dict[str, float]:
    """Measure the engine's speed on the fixed probe workload (module docstring); the engine is left empty.

    Returns probe_output_tok_s (output tokens / probe wall time), probe_prefill_tok_s (prompt tokens / time of
    the prefill-only steps), probe_decode_tok_s (decode tokens / time of the decode-only steps), probe_seconds,
    probe_steps and probe_step_ms_mean (mean serving-loop cycle)."""
    steps, seconds = probe_steps(runner, seed=seed)
    return probe_summary(steps, seconds)
