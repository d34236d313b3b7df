"""Typed driver settings: every profile builds them, unknown keys of a driver's prefix fail, values are checked."""

from __future__ import annotations

import pytest

from llmsched.experiments.settings import EWSJFSettings, HeadToHeadSettings, PARSSettings
from llmsched.experiments.stages import load_params

PROFILES = ("smoke", "cpu", "cpu-full", "gpu")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_builds_every_driver_settings(profile):
    params = load_params(profile)
    pars, ewsjf, h2h = (cls.from_params(params) for cls in (PARSSettings, EWSJFSettings, HeadToHeadSettings))
    assert pars.profile == ewsjf.profile == h2h.profile == params["profile"]
    assert pars.sim_n == params["pars_sim_n"] and ewsjf.max_queues == params["ewsjf_max_queues"]
    assert h2h.loads == tuple(params["h2h_loads"])  # lists from YAML become tuples
    assert pars.sim_steptime == params["pars_sim_steptime"]


def test_unknown_key_of_the_prefix_is_named_and_others_ignored():
    with pytest.raises(ValueError, match=r"PARSSettings: unknown parameter\(s\) \['pars_sim_nn'\]; valid: .*sim_n"):
        PARSSettings.from_params({"profile": "x", "pars_sim_nn": 3})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['ewsjf_seed'\]"):  # shared keys have no prefix
        EWSJFSettings.from_params({"ewsjf_seed": 3})
    s = EWSJFSettings.from_params({"profile": "x", "pars_sim_nn": 3, "h2h_loads": [1.0], "report_x": 1,
                                   "ewsjf_max_queues": 5})
    assert s.max_queues == 5 and s.sample_n == EWSJFSettings().sample_n  # the one default


@pytest.mark.parametrize(("cls", "params", "match"), [
    (PARSSettings, {"pars_sim_n": 0}, "pars_sim_n must be > 0"),
    (PARSSettings, {"pars_n_train": 2.5}, "pars_n_train must be an integer"),
    (PARSSettings, {"pars_sim_loads": []}, "pars_sim_loads must be positive"),
    (PARSSettings, {"pars_seeds": [42, 43], "pars_partner_seeds": 3}, r"pars_partner_seeds must be None .*1\.\.2"),
    (PARSSettings, {"pars_sim_proxy_n": 0}, "pars_sim_proxy_n must be None"),
    (EWSJFSettings, {"ewsjf_tune_trials": True}, "ewsjf_tune_trials must be a number"),
    (EWSJFSettings, {"ewsjf_sim_loads": [1.0, -1.0]}, "ewsjf_sim_loads must be positive"),
    (HeadToHeadSettings, {"h2h_mixed_n": -3}, "h2h_mixed_n must be > 0"),
    (HeadToHeadSettings, {"serving_max_num_seqs": 0}, "serving_max_num_seqs must be >= 1"),
])
def test_bad_values_are_rejected_with_the_key_and_value(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls.from_params(params)


def test_drivers_read_their_settings(tmp_path):
    from llmsched.experiments import EWSJFExperiments, HeadToHead, ParsExperiments

    params = {**load_params("smoke"), "pars_sim_n": 7, "ewsjf_max_queues": 3}
    assert ParsExperiments(params, out_root=tmp_path / "p").s.sim_n == 7
    assert EWSJFExperiments(params, out_root=tmp_path / "e").s.max_queues == 3
    h2h = HeadToHead(params, out_root=tmp_path / "h", pars_root=tmp_path / "p")
    assert h2h.ewsjf_s.max_queues == 3 and h2h.pars.s.sim_n == 7
    with pytest.raises(ValueError, match="pars_sim_nn"):
        ParsExperiments({**params, "pars_sim_nn": 1}, out_root=tmp_path / "p")
