"""Discrete-event simulator of vLLM V1's scheduling loop, driven by the same policy queues as the plug-in.

    config      SimConfig: the engine limits (KV blocks, budgets, max_num_seqs, ...)
    steptime    step-time models: LinearStepTime (calibrated coefficients), AnalyticStepTime (roofline)
    profiles    JSON step-time profiles in artifact/profiles/steptime/ and their loader
    simulator   Simulator / simulate: replay a workload, get the serving runner's per-request records

Typical use:
    prof = load_profile("h100-sxm_llama-3-8b")
    res = simulate(requests, prof.sim_config(max_num_seqs=256), prof.step_time, "oracle-sjf")
    summarize(res.frame)
"""

from llmsched.sim.config import SimConfig
from llmsched.sim.profiles import Profile, analytic_profile, available_profiles, load_profile, profile_from_dict
from llmsched.sim.simulator import STEP_COLUMNS, SimRequest, SimResult, Simulator, sim_request_view, simulate
from llmsched.sim.steptime import AnalyticStepTime, LinearStepTime, StepTimeModel, step_time_from_dict

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
