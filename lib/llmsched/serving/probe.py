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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.steptime.fit import predict, time_errors
from llmsched.steptime.models import LinearStepTime
from llmsched.steptime.profiles import Profile, load_profile

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


# ---------------------------------------------------------------------------------------------------------
# Checking a measured profile against the probe
# ---------------------------------------------------------------------------------------------------------


class StaleProfileError(RuntimeError):
    """A measured step-time profile does not predict this engine's speed (on_mismatch="error")."""


@dataclass
class ProfileCheck:
    """A measured step-time profile against the engine-speed probe on this machine now.

    rel_error is the profile's error on the probe's summed serving-loop time, (predicted - measured) / measured,
    over the probe's steps with a known cycle (positive: the profile is too slow); by_kind the same for the
    prefill-only and decode-only steps. ok: |rel_error| <= tolerance and, where the profile names its model,
    the engine serves that model. provenance: when and where the profile was measured (Profile.provenance).
    """

    profile: str
    ok: bool
    rel_error: float
    tolerance: float
    measured_step_ms: float
    predicted_step_ms: float
    measured_output_tok_s: float
    predicted_output_tok_s: float
    steps: int
    by_kind: dict[str, float]
    provenance: dict[str, Any]
    engine_model: str | None = None
    same_model: bool | None = None
    checked_at: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, float] = field(default_factory=dict)
    recalibrate_command: str = ""
    recalibrated_from: dict[str, Any] | None = None  # the stale profile's check, when this profile replaced it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        """One paragraph: the verdict, the numbers, and (when it fails) the command to recalibrate."""
        prov = self.provenance
        when = f"measured {prov.get('measured_at') or '(date unknown)'} on {prov.get('machine') or '(machine unknown)'}"
        head = (f"step-time profile {self.profile} ({when}) vs this engine's speed probe now: predicted "
                f"{self.predicted_output_tok_s:.1f} output tok/s, measured {self.measured_output_tok_s:.1f}; mean "
                f"step {self.predicted_step_ms:.1f} ms predicted, {self.measured_step_ms:.1f} ms measured "
                f"({self.rel_error:+.1%} step time, tolerance {self.tolerance:.0%})")
        if self.same_model is False:
            head += f"; the profile was measured on {prov.get('model')}, the engine serves {self.engine_model}"
        load, cores = self.machine.get("load_avg_1m"), self.machine.get("nproc")
        if load is not None and cores and load > cores:
            head += (f"; the machine was busy during the probe (load average {load} on {cores} cores): other jobs "
                     "slow the engine, measure alone")
        if self.ok:
            return head + ": within tolerance."
        return (f"STALE STEP-TIME PROFILE. {head}. Simulator numbers made with it are off by about as much. "
                f"Recalibrate on this machine: {self.recalibrate_command}")


def compare_steps(profile: Profile, steps: pd.DataFrame, seconds: float, *,
                  tolerance: float = DEFAULT_TOLERANCE, engine_model: str | None = None) -> ProfileCheck:
    """The check of `profile` on recorded probe steps (pure: `check_profile` runs the probe, then this)."""
    from datetime import UTC, datetime

    if not isinstance(profile.step_time, LinearStepTime):
        raise ValueError(f"only measured (linear) step-time profiles can be checked, got {profile.name!r} "
                         f"({profile.step_time!r})")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    errors = time_errors(profile.step_time, steps)
    if not errors:
        raise ValueError("no probe step with a known cycle: nothing to compare")
    pred = predict(profile.step_time, steps)
    measured = steps["cycle_s"].to_numpy(float)
    cyc = np.isfinite(measured)
    rel = errors.pop("all")
    by_kind = errors
    summary = probe_summary(steps, seconds)
    out_tokens = PROBE_REQUESTS * PROBE_OUTPUT_TOKENS
    prov = profile.provenance()
    same = None
    if engine_model and prov.get("model"):
        same = Path(str(prov["model"])).name == Path(engine_model).name
    return ProfileCheck(
        profile=profile.name, ok=abs(rel) <= tolerance and same is not False, rel_error=rel, tolerance=tolerance,
        measured_step_ms=float(1e3 * measured[cyc].mean()), predicted_step_ms=float(1e3 * pred[cyc].mean()),
        measured_output_tok_s=summary["probe_output_tok_s"], predicted_output_tok_s=float(out_tokens / pred.sum()),
        steps=int(cyc.sum()), by_kind=by_kind, provenance=prov, engine_model=engine_model, same_model=same,
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"), probe=summary,
    )


def recalibrate_command(config: Any, out: str | Path | None = None) -> str:
    """The command line that recalibrates a profile for the engine of `config` (an EngineConfig)."""
    from llmsched.serving.engine import EngineConfig

    default = EngineConfig()
    parts = ["python -m llmsched.serving.calibrate", f"--model {config.model}"]
    if out is not None:
        parts.append(f"--out {out}")
    for name in ("max_num_seqs", "max_num_batched_tokens", "max_model_len", "dtype"):
        if getattr(config, name) != getattr(default, name):
            parts.append(f"--{name.replace('_', '-')} {getattr(config, name)}")
    return " ".join(parts)


def _as_profile(profile: Profile | str | Path) -> Profile:
    return profile if isinstance(profile, Profile) else load_profile(profile)


def _check_on(runner: Any, prof: Profile, tolerance: float, seed: int) -> ProfileCheck:
    import os

    from llmsched.serving.calibrate import machine_info

    load_before = os.getloadavg()[0]
    steps, seconds = probe_steps(runner, seed=seed)
    check = compare_steps(prof, steps, seconds, tolerance=tolerance,
                          engine_model=Path(runner.config.resolved_model()).name)
    # NOTE: the load average says whether other jobs shared the cores while the probe ran (the engine itself
    # keeps about one core busy): a busy machine is a reason for a mismatch the check should name
    check.machine = {**machine_info(), "load_avg_1m": round(max(load_before, os.getloadavg()[0]), 2)}
    # recalibrating writes over the profile's own file, unless it describes another model
    check.recalibrate_command = recalibrate_command(runner.config, prof.path if check.same_model else None)
    return check


class _Engine:
    """An open EngineRunner for an EngineConfig (opened on first use, closed at exit), or a given runner."""

    def __init__(self, engine: Any) -> None:
        self.given = engine if hasattr(engine, "engine") and hasattr(engine, "run") else None
        self.config = engine.config if self.given is not None else engine
        self.runner: Any = self.given

    def get(self) -> Any:
        if self.runner is None:
            from llmsched.serving.runner import EngineRunner

            self.runner = EngineRunner(self.config)
        return self.runner

    def __enter__(self) -> _Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None and self.given is None:
            self.runner.close()


def check_profile(profile: Profile | str | Path, engine: Any, *, tolerance: float = DEFAULT_TOLERANCE,
                  seed: int = 0) -> ProfileCheck:
    """Run the speed probe on `engine` (an open EngineRunner, left empty and reusable, or an EngineConfig: an
    engine is opened for the probe and closed) and compare `profile`'s prediction for the recorded steps with
    their measured time. `profile`: a Profile, a name or a path; it must be a linear (measured) profile."""
    prof = _as_profile(profile)
    with _Engine(engine) as eng:
        return _check_on(eng.get(), prof, tolerance, seed)


def ensure_profile(profile: Profile | str | Path, engine: Any, *, on_mismatch: str = "warn",
                   tolerance: float = DEFAULT_TOLERANCE, folder: str | Path | None = None, seed: int = 0,
                   quick: bool = False) -> Profile:
    """`profile`, checked on `engine` (an EngineRunner or EngineConfig) if it is a measured profile, with the
    check in `.check`; analytic (GPU) and hand-made profiles are returned unchecked (`.check` None).

    When the check fails (`ProfileCheck.ok` False), `on_mismatch` decides:
        "recalibrate"  calibrate on this engine (llmsched.serving.calibrate.calibrate_runner, `quick` for a
                       handful of steps) into `folder` (default results/calibration/), as
                       <folder>/<engine's profile name>-recalibrated.json with steps.parquet beside it, and
                       return that profile (its own check in `.check`, the stale profile's in
                       `.check.recalibrated_from`). A profile already there that passes the check is reused.
        "warn"         log a WARNING naming the profile, its error and the command to recalibrate; return it
        "error"        raise StaleProfileError with the same message
    """
    import dataclasses

    if on_mismatch not in ON_MISMATCH:
        raise ValueError(f"on_mismatch must be one of {ON_MISMATCH}, got {on_mismatch!r}")
    prof = _as_profile(profile)
    if not prof.measured:
        return prof
    with _Engine(engine) as eng:
        runner = eng.get()
        check = _check_on(runner, prof, tolerance, seed)
        if check.ok:
            logger.info("%s", check.message())
            return dataclasses.replace(prof, check=check)
        if on_mismatch == "error":
            raise StaleProfileError(check.message())
        if on_mismatch == "warn":
            logger.warning("%s", check.message())
            return dataclasses.replace(prof, check=check)
        from llmsched.paths import results_dir
        from llmsched.serving.calibrate import calibrate_runner, default_profile_name

        out_dir = Path(folder) if folder is not None else results_dir() / "calibration"
        path = out_dir / f"{default_profile_name(runner.config.model)}-recalibrated.json"
        logger.warning("%s -> recalibrating on this engine into %s", check.message(), path)
        if path.exists():
            cached = load_profile(path)
            again = _check_on(runner, cached, tolerance, seed)
            if again.ok:
                again.recalibrated_from = check.to_dict()
                return dataclasses.replace(cached, check=again)
        calibrate_runner(runner, path, steps_dir=path.parent / path.stem, seed=seed, quick=quick, progress=False)
        new = load_profile(path)
        new_check = _check_on(runner, new, tolerance, seed)
        new_check.recalibrated_from = check.to_dict()
        if not new_check.ok:
            logger.warning("the profile just recalibrated still misses the probe: %s", new_check.message())
        return dataclasses.replace(new, check=new_check)


def probe_step_frame() -> pd.DataFrame:
    """The steps the probe makes on an engine with max_num_seqs >= PROBE_REQUESTS and a token budget >= their
    prompts (the serving experiments' engines): one prefill of every prompt, then one decode step per further
    output token; as the recorder reports them, the last step without a cycle (cycle_s NaN, other columns set)."""
    n, p, o = PROBE_REQUESTS, PROBE_PROMPT_TOKENS, PROBE_OUTPUT_TOKENS
    rows = [{"prefill_tokens": n * p, "decode_seqs": 0, "kv_tokens": n * p, "num_seqs": n}]
    rows += [{"prefill_tokens": 0, "decode_seqs": n, "kv_tokens": n * (p + 1 + i), "num_seqs": n}
             for i in range(o - 1)]
    df = pd.DataFrame(rows)
    df["cycle_s"] = 1.0
    df.loc[len(df) - 1, "cycle_s"] = math.nan
    return df


def probe_error(profile: Profile, probe: dict[str, float]) -> dict[str, float]:
    """A measured profile against probe numbers recorded earlier (`speed_probe`'s dict, e.g. the per-run probe
    of a serving comparison's runs.parquet), without an engine: the profile's mean step over the probe's known
    steps (`probe_step_frame`) vs the recorded probe_step_ms_mean. Returns predicted and measured mean step (ms)
    and rel_error = predicted / measured - 1 (NaN when the record has no probe)."""
    if not isinstance(profile.step_time, LinearStepTime):
        raise ValueError(f"only measured (linear) step-time profiles can be checked, got {profile.name!r}")
    df = probe_step_frame()
    pred = predict(profile.step_time, df)[np.isfinite(df["cycle_s"].to_numpy(float))]
    predicted = float(1e3 * pred.mean())
    measured = float(probe.get("probe_step_ms_mean", math.nan))
    ok = math.isfinite(measured) and measured > 0
    return {"predicted_step_ms": predicted, "measured_step_ms": measured,
            "rel_error": predicted / measured - 1.0 if ok else math.nan}
