"""The engine-speed probe (llmsched.serving.probe) and checking measured step-time profiles against it."""

from __future__ import annotations

import pytest

from llmsched.serving.probe import PROBE_OUTPUT_TOKENS, PROBE_REQUESTS


@pytest.mark.vllm
def test_speed_probe_measures_and_leaves_the_engine_reusable(tiny_model) -> None:
    from llmsched.serving.engine import EngineConfig
    from llmsched.serving.probe import speed_probe
    from llmsched.serving.runner import EngineRunner, RunConfig
    from llmsched.workload.request import Request

    with EngineRunner(EngineConfig(model=tiny_model, policy="oracle-sjf")) as runner:
        speed = speed_probe(runner)
        for key in ("probe_output_tok_s", "probe_prefill_tok_s", "probe_decode_tok_s", "probe_seconds",
                    "probe_step_ms_mean"):
            assert speed[key] > 0, (key, speed)
        assert speed["probe_steps"] >= PROBE_OUTPUT_TOKENS
        assert speed["probe_output_tok_s"] == pytest.approx(
            PROBE_REQUESTS * PROBE_OUTPUT_TOKENS / speed["probe_seconds"])
        assert not runner.engine.has_unfinished_requests()
        reqs = [Request(f"r{i}", "hello there, how are you today?", 8, 5, arrival_time=0.01 * i) for i in range(3)]
        df = runner.run(reqs, RunConfig(progress=False))
        assert (df["status"] == "ok").all() and (df["output_tokens"] == 5).all()
        assert not runner.engine.has_unfinished_requests()
        again = speed_probe(runner)  # a second probe on the same engine works too
        assert again["probe_steps"] == speed["probe_steps"]
