"""PolicySpec: a policy as data, checked when made, carried by every layer; EngineConfig builds its queue up front."""

from __future__ import annotations

import json

import pytest

from llmsched.policies import POLICIES, PolicySpec, make_policy
from llmsched.policies.ewsjf import EWSJFQueue
from llmsched.sim import load_profile
from llmsched.steptime import LinearStepTime, StepTimeModel


def test_spec_is_checked_when_made():
    with pytest.raises(ValueError, match="unknown policy 'nope'; valid policies: "):
        PolicySpec("nope")
    with pytest.raises(ValueError, match="bad arguments .*'starvaton_limit'.* for policy 'sjf'"):
        PolicySpec("sjf", {"starvaton_limit": 3})
    with pytest.raises(ValueError, match="`view` is given to build"):
        PolicySpec("fcfs", {"view": None})
    with pytest.raises(ValueError, match="must be a mapping"):
        PolicySpec("fcfs", ["x"])  # type: ignore[arg-type]


def test_bad_argument_values_fail_when_built():
    spec = PolicySpec("sjf", {"starvation_limit": 0})  # the signature binds; the constructor rejects the value
    with pytest.raises(ValueError, match="starvation_limit must be None or an integer >= 1"):
        spec.build()


@pytest.mark.parametrize("form", ["sjf", ("sjf", {}), ["sjf", None], {"policy": "sjf"}, {"policy": "sjf", "args": {}}])
def test_parse_accepts_the_written_forms(form):
    assert PolicySpec.parse(form) == PolicySpec("sjf")


@pytest.mark.parametrize("form", [3, ("sjf",), {"name": "sjf"}, {"policy": "sjf", "extra": 1}])
def test_parse_rejects_other_forms(form):
    with pytest.raises(ValueError, match="a policy is a name"):
        PolicySpec.parse(form)


def test_every_registered_policy_builds_from_its_spec_and_round_trips_json():
    for name in POLICIES:
        spec = PolicySpec(name)
        queue = spec.build()
        assert queue.name == name and len(queue) == 0
        again = PolicySpec.parse(json.loads(json.dumps(spec.to_json())))
        assert again.name == name and type(again.build()) is type(queue)


def test_ewsjf_steptime_name_resolves_once_to_a_model_and_travels_as_its_dict():
    spec = PolicySpec("ewsjf", {"steptime": "a100-80gb_llama-2-13b", "sample": [100.0, 120.0, 1500.0, 1600.0]})
    model = spec.args["steptime"]
    assert isinstance(model, StepTimeModel)
    assert model == load_profile("a100-80gb_llama-2-13b").step_time
    wire = json.loads(json.dumps(spec.to_json()))  # what the plug-in's additional_config carries
    assert isinstance(wire["args"]["steptime"], dict)
    q = PolicySpec.parse(wire).build()
    assert isinstance(q, EWSJFQueue)
    assert q.cost(1000) == pytest.approx(float(model.step_time(1000, 0, 1000, 1)))
    # a model object passes through untouched
    lin = LinearStepTime(0.01, 1e-4, 1e-3, 0.0)
    assert PolicySpec("ewsjf", {"steptime": lin}).args["steptime"] is lin
    with pytest.raises(ValueError, match="unknown|not found|no such|profile"):
        PolicySpec("ewsjf", {"steptime": "no-such-profile"})


def test_make_policy_is_a_spec_build():
    q = make_policy("sjf", score_key="s", starvation_limit=5)
    assert q.starvation_limit == 5 and q.score_key == "s"
    with pytest.raises(ValueError, match="bad arguments"):
        make_policy("fcfs", score_key="s")


def test_engine_config_checks_and_builds_the_queue_before_vllm_loads():
    from llmsched.serving.engine import EngineConfig

    with pytest.raises(ValueError, match="bad arguments"):
        EngineConfig(policy="sjf", policy_args={"starvaton_limit": 3})
    with pytest.raises(ValueError, match="starvation_limit must be"):
        EngineConfig(policy="sjf", policy_args={"starvation_limit": -1})
    cfg = EngineConfig(policy="ewsjf", policy_args={"steptime": "a100-80gb_llama-2-13b"})
    assert cfg.build_policy() is cfg.build_policy()  # built once, when the config was made
    assert isinstance(cfg.policy_args["steptime"], dict)  # kept in JSON form: hashes and config.json stay JSON
    json.dumps(cfg.to_dict())
    assert cfg.llm_kwargs()["additional_config"] == {"llmsched": cfg.spec.to_json()}
    swapped = EngineConfig.for_policy(cfg, PolicySpec("sjf", {"score_key": "score_ltr"}))
    assert (swapped.policy, swapped.policy_args, swapped.model) == ("sjf", {"score_key": "score_ltr"}, cfg.model)
