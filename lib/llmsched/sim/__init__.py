"""Discrete-event simulator of vLLM V1's scheduling loop, driven by the same policy queues as the plug-in.

    simulator   Simulator / simulate: replay a workload, get the serving runner's per-request records
    sweep       rate sweeps of several policies over one workload
    validate    the simulator against a real engine run on the same workload

The engine limits (SimConfig) and step-time models it runs under live in llmsched.steptime and are re-exported
here for convenience. Typical use:
    prof = load_profile("h100-sxm_llama-3-8b")
    res = simulate(requests, prof.sim_config(max_num_seqs=256), prof.step_time, "oracle-sjf")
    summarize(res.frame)

A measured CPU profile (`cpu-*`) holds only on the machine state that measured it. Check it against the engine
whose runs it should predict before trusting simulator numbers made with it:
    with EngineRunner(EngineConfig(model="smollm2")) as runner:
        prof = load_profile("cpu-SmolLM2-135M-Instruct", check_against=runner)   # warns when stale
        prof.check.rel_error, prof.check.ok, prof.provenance()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmsched.sim.simulator import STEP_COLUMNS, SimRequest, SimResult, Simulator, sim_request_view, simulate
from llmsched.steptime import (
    AnalyticStepTime,
    LinearStepTime,
    Profile,
    SimConfig,
    StepTimeModel,
    analytic_profile,
    available_profiles,
    profile_from_dict,
    step_time_from_dict,
)
from llmsched.steptime import load_profile as _load_profile


def load_profile(path_or_name: str | Path, *, check_against: Any = None, on_mismatch: str = "warn",
                 tolerance: float = 0.10, calibration_dir: str | Path | None = None) -> Profile:
    """A step-time profile by name or path (llmsched.steptime.load_profile).

    Opt-in check (`check_against`: an open EngineRunner, or an EngineConfig to open one for the check): a
    measured profile (`Profile.measured`, the `cpu-*` files) is compared with the engine's speed probe now
    (llmsched.serving.probe.ensure_profile), the result in `.check` (a ProfileCheck: predicted vs measured,
    relative error, ok, when and where the profile was measured). When it misses by more than `tolerance`,
    `on_mismatch` decides: "warn" (a WARNING with the command to recalibrate; the default), "error" (raise
    StaleProfileError) or "recalibrate" (measure this engine now, cached under `calibration_dir`, and return
    that profile). Analytic (GPU) profiles are returned unchecked: nothing on this machine can check them.
    """
    prof = _load_profile(path_or_name)
    if check_against is None or not prof.measured:
        return prof
    from llmsched.serving.probe import ensure_profile

    return ensure_profile(prof, check_against, on_mismatch=on_mismatch, tolerance=tolerance,
                          folder=calibration_dir)


__all__ = [
    "STEP_COLUMNS",
    "AnalyticStepTime",
    "LinearStepTime",
    "Profile",
    "SimConfig",
    "SimRequest",
    "SimResult",
    "Simulator",
    "StepTimeModel",
    "analytic_profile",
    "available_profiles",
    "load_profile",
    "profile_from_dict",
    "sim_request_view",
    "simulate",
    "step_time_from_dict",
]
