"""Per-request records: the one schema written by the real serving runner and by the simulator.

All times are seconds relative to the start of the run (the moment the first request of the workload could
arrive), so records of the real engine and of the simulator compare directly. A timestamp that never happened
(a rejected request has no first token) is NaN.

Columns
    request_id          str
    source              str     dataset of the prompt
    status              str     one of STATUSES
    error               str     why a request is not "ok" ("" when ok)
    prompt_tokens       int
    ref_output_tokens   int     reference output length of the workload
    output_tokens       int     tokens actually generated
    arrival             float   when the request was handed to the engine
    queued              float   when the engine queued it
    scheduled           float   when it was first scheduled (first prefill chunk)
    first_token         float   when its first output token was produced
    last_token          float   when its last output token was produced
    preemptions         int     times the engine preempted it
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

OK = "ok"
FAILED = "failed"  # the engine raised or returned an error for this request
REJECTED = "rejected"  # invalid before reaching the engine (empty prompt, too long, ...)
TIMEOUT = "timeout"  # still unfinished when the run's wall-time limit hit; aborted
STATUSES = (OK, FAILED, REJECTED, TIMEOUT)

NAN = math.nan


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    source: str = ""
    status: str = OK
    error: str = ""
    prompt_tokens: int = 0
    ref_output_tokens: int = 0
    output_tokens: int = 0
    arrival: float = NAN
    queued: float = NAN
    scheduled: float = NAN
    first_token: float = NAN
    last_token: float = NAN
    preemptions: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"request {self.request_id}: status must be one of {STATUSES}, got {self.status!r}")


COLUMNS = [f for f in RequestRecord.__dataclass_fields__ if f != "extra"]


def records_to_frame(records: list[RequestRecord]) -> pd.DataFrame:
    """One row per record, columns in COLUMNS order; `extra` keys become additional columns."""
    rows = []
    for r in records:
        row = {k: v for k, v in asdict(r).items() if k != "extra"}
        row.update(r.extra)
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else COLUMNS)
    for col in ("prompt_tokens", "ref_output_tokens", "output_tokens", "preemptions"):
        df[col] = df[col].astype("int64")
    return df


def write_run(out_dir: str | Path, records: list[RequestRecord], config: dict[str, Any]) -> Path:
    """Write `requests.parquet` beside `config.json` (the resolved config that produced it) in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records_to_frame(records).to_parquet(out / "requests.parquet", index=False)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    return out


def read_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    run = Path(run_dir)
    if not (run / "requests.parquet").exists():
        raise FileNotFoundError(f"no requests.parquet in {run}: run the serving experiment that writes it first")
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    return pd.read_parquet(run / "requests.parquet"), config
