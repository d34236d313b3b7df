"""Recording the steps of a live in-process vLLM engine: composition and timing of every step.

`StepRecorder` wraps the engine core's `scheduler.schedule` and `scheduler.update_from_output` (instance
attributes; vLLM 0.32 `EngineCore.step` calls both once per step) and records, per step, the composition the
simulator sees: prefill_tokens, decode_seqs, kv_tokens (context tokens attended: for every scheduled request
its computed tokens once the step is done, which vLLM has already advanced when `schedule()` returns),
num_seqs, plus timestamps (schedule entry, model done = `update_from_output` entry, output done). A decode is
a request scheduling exactly one token after its first output token, as in the simulator. A step's *cycle* runs
from its schedule() entry to the next step's: the serving loop's host work is inside it.

Used by the serving runner (`RunConfig(record_steps=True)` writes steps.parquet beside requests.parquet) and by
the simulator's calibration (llmsched.serving.calibrate).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

STEP_COLUMNS = [
    "step",  # index of the recorded step
    "phase",  # plan phase that was running ("warmup" steps are not fitted)
    "t_sched",  # schedule() entry, seconds since the recorder started
    "t_model_done",  # update_from_output() entry: forward pass and sampling done
    "t_output_done",  # update_from_output() exit
    "cycle_s",  # t_sched of the next step - t_sched (NaN when the engine ran dry after this step)
    "exec_s",  # t_model_done - t_sched: schedule + forward + sample
    "prefill_tokens",
    "decode_seqs",
    "kv_tokens",
    "num_seqs",
    "prefill_seqs",  # scheduled requests that are not decodes
    "prefill_attn",  # sum over prefill chunks of chunk * (context before + (chunk + 1) / 2): attention pairs
    "decode_kv",  # kv_tokens of the decoding requests
    "decode_max_context",  # longest context among the decoding requests
    "unfinished_after",  # requests still in the engine after the step
]



def engine_core(llm: Any) -> Any:
    """The in-process vLLM `EngineCore` of a `vllm.LLM` (VLLM_ENABLE_V1_MULTIPROCESSING=0, as llmsched builds
    it); ValueError when the engine core runs in another process."""
    client = llm.llm_engine.engine_core
    core = getattr(client, "engine_core", None)
    if core is None or not hasattr(core, "scheduler"):
        raise ValueError(f"the engine core is not in this process ({type(client).__name__}); build the engine with "
                         "VLLM_ENABLE_V1_MULTIPROCESSING=0 (llmsched.serving.engine.build_llm does)")
    return core


class StepRecorder:
    """Records every engine step of an in-process vLLM engine (see the module docstring for the columns).

        rec = StepRecorder(llm); ...drive the engine...; rec.detach(); df = rec.frame()

    The wrappers are instance attributes on the engine's scheduler, removed again by `detach()`. `phase` is
    a label copied into each step (set it while driving).
    """

    def __init__(self, llm: Any) -> None:
        self.core = engine_core(llm)
        self.scheduler = self.core.scheduler
        self.t0 = time.monotonic()
        self.phase = ""
        self.rows: list[dict[str, Any]] = []
        sched = self.scheduler
        if "schedule" in vars(sched) or "update_from_output" in vars(sched):
            raise RuntimeError("a StepRecorder is already attached to this engine")
        orig_schedule, orig_update = sched.schedule, sched.update_from_output

        def schedule(*args: Any, **kwargs: Any) -> Any:
            t = time.monotonic()
            out = orig_schedule(*args, **kwargs)
            self._on_schedule(t, out)
            return out

        def update_from_output(*args: Any, **kwargs: Any) -> Any:
            t = time.monotonic()
            res = orig_update(*args, **kwargs)
            if self.rows and math.isnan(self.rows[-1]["t_model_done"]):
                row = self.rows[-1]
                row["t_model_done"] = t - self.t0
                row["t_output_done"] = time.monotonic() - self.t0
                row["unfinished_after"] = int(sched.get_num_unfinished_requests())
            return res

        sched.schedule = schedule
        sched.update_from_output = update_from_output

    def _on_schedule(self, t: float, out: Any) -> None:
        reqs = self.scheduler.requests
        prefill = decode = kv = dec_kv = dec_max = 0
        attn = 0.0
        n = 0
        for rid, k in out.num_scheduled_tokens.items():
            if k <= 0:
                continue
            r = reqs.get(rid)
            if r is None:
                continue
            n += 1
            after = int(r.num_computed_tokens)  # vLLM advanced it inside schedule()
            before = after - k
            kv += after
            if k == 1 and r.num_tokens > r.num_prompt_tokens and before == r.num_tokens - 1:
                decode += 1
                dec_kv += after
                dec_max = max(dec_max, after)
            else:
                prefill += k
                attn += k * (before + (k + 1) / 2)
        self.rows.append({
            "step": len(self.rows), "phase": self.phase, "t_sched": t - self.t0, "t_model_done": math.nan,
            "t_output_done": math.nan, "prefill_tokens": prefill, "decode_seqs": decode, "kv_tokens": kv,
            "num_seqs": n, "prefill_seqs": n - decode, "prefill_attn": attn, "decode_kv": dec_kv,
            "decode_max_context": dec_max, "unfinished_after": -1,
        })

    def detach(self) -> None:
        for name in ("schedule", "update_from_output"):
            vars(self.scheduler).pop(name, None)

    def frame(self, continuous: bool = False) -> pd.DataFrame:
        """One row per step (STEP_COLUMNS). Steps that scheduled nothing are dropped. A step's cycle is known
        when the next step followed without an idle wait: when the engine still had requests after it, or for
        every step but the last with `continuous` (a driver that never idles between steps)."""
        df = pd.DataFrame(self.rows, columns=[c for c in STEP_COLUMNS if c not in ("cycle_s", "exec_s")])
        nxt = df["t_sched"].shift(-1)
        busy = np.ones(len(df), bool) if continuous else (df["unfinished_after"] > 0).to_numpy()
        df["cycle_s"] = np.where(busy, nxt - df["t_sched"], np.nan)
        df["exec_s"] = df["t_model_done"] - df["t_sched"]
        df = df[df["num_seqs"] > 0].reset_index(drop=True)
        for c in ("step", "prefill_tokens", "decode_seqs", "kv_tokens", "num_seqs", "prefill_seqs", "decode_kv",
                  "decode_max_context", "unfinished_after"):
            df[c] = df[c].astype("int64")
        return df[STEP_COLUMNS]
