"""Discrete-event simulator of vLLM V1's scheduling loop, driven by the same policy queues as the plug-in.

    simulator   Simulator / simulate: replay a workload, get the serving runner's per-request records
    sweep       rate sweeps of several policies over one workload
    validate    the simulator against a real engine run on the same workload

The engine limits (SimConfig) and step-time models it runs under live in llmsched.steptime and are re-exported
here for convenience. Typical use:
    prof = load_profile("h100-sxm_llama-3-8b")
    res = simulate(requests, prof.sim_config(max_num_seqs=256), prof.step_time, "oracle-sjf")
    summarize(res.frame)
"""

from llmsched.sim.simulator import STEP_COLUMNS, SimRequest, SimResult, Simulator, sim_request_view, simulate
from llmsched.steptime import (
    AnalyticStepTime,
    LinearStepTime,
    Profile,
    SimConfig,
    StepTimeModel,
    analytic_profile,
    available_profiles,
    load_profile,
    profile_from_dict,
    step_time_from_dict,
)

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
