"""Step-time cost models: how long one engine step takes, given what it computes (ground floor).

    models     StepTimeModel, LinearStepTime (calibrated coefficients), AnalyticStepTime (roofline)
    limits     SimConfig: the engine limits a profile implies (KV blocks, budgets, max_num_seqs, ...)
    profiles   JSON step-time profiles in artifact/profiles/steptime/ and their loader
    fit        the pure calibration fit: measured steps -> LinearStepTime -> profile JSON

Used by the simulator (the clock) and by EWSJF (a request's prefill cost). The engine side of calibration
(driving a real vLLM engine and recording its steps) is llmsched.serving.calibrate.

    python -m llmsched.steptime write|list     # write the shipped analytic profiles / list the profiles
"""

from llmsched.steptime.limits import SimConfig
from llmsched.steptime.models import AnalyticStepTime, LinearStepTime, StepTimeModel, step_time_from_dict
from llmsched.steptime.profiles import Profile, analytic_profile, available_profiles, load_profile, profile_from_dict

__all__ = [
    "AnalyticStepTime",
    "LinearStepTime",
    "Profile",
    "SimConfig",
    "StepTimeModel",
    "analytic_profile",
    "available_profiles",
    "load_profile",
    "profile_from_dict",
    "step_time_from_dict",
]
