"""Save and load a workload (a list of `Request`s) as a Parquet table; the round trip is exact.

Columns: request_id (string), prompt (string), prompt_tokens (int64), output_tokens (int64),
arrival_time (float64), source (string), hints (string: the hints dict as JSON). Hints must survive JSON
unchanged (str keys; str, finite numbers, bool, None, lists and dicts as values) or saving raises ValueError
naming the request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .request import Request

SCHEMA_VERSION = "1"
_META_KEY = b"llmsched.workload"
_COLUMNS = ("request_id", "prompt", "prompt_tokens", "output_tokens", "arrival_time", "source", "hints")


def _schema():
    import pyarrow as pa

    return pa.schema([
        ("request_id", pa.string()), ("prompt", pa.string()), ("prompt_tokens", pa.int64()),
        ("output_tokens", pa.int64()), ("arrival_time", pa.float64()), ("source", pa.string()),
        ("hints", pa.string()),
    ])


def _hints_json(r: Request) -> str:
    try:
        text = json.dumps(r.hints, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"request {r.request_id}: hints are not JSON-serialisable ({e}): {r.hints!r}") from e
    if json.loads(text) != r.hints:
        raise ValueError(f"request {r.request_id}: hints change through JSON (tuples? non-str keys?): "
                         f"{r.hints!r}")
    return text


def save_workload(requests: Sequence[Request], path: str | Path) -> Path:
    """Write the requests to a Parquet file (parent folders created); returns the path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    columns = {
        "request_id": [r.request_id for r in requests],
        "prompt": [r.prompt for r in requests],
        "prompt_tokens": [int(r.prompt_tokens) for r in requests],
        "output_tokens": [int(r.output_tokens) for r in requests],
        "arrival_time": [float(r.arrival_time) for r in requests],
        "source": [r.source for r in requests],
        "hints": [_hints_json(r) for r in requests],
    }
    table = pa.table(columns, schema=_schema().with_metadata({_META_KEY: SCHEMA_VERSION.encode()}))
    p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, p)
    return p


def load_workload(path: str | Path) -> list[Request]:
    """Read a workload written by `save_workload`.

    Raises FileNotFoundError naming a missing file and ValueError naming a file that is not such a table.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"workload file not found: {p}")
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{p}: not a readable Parquet file ({e})") from e
    missing = [c for c in _COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{p}: not a workload table, missing column(s) {', '.join(missing)}")
    rows = table.select(list(_COLUMNS)).to_pylist()
    try:
        return [Request(request_id=row["request_id"], prompt=row["prompt"],
                        prompt_tokens=row["prompt_tokens"], output_tokens=row["output_tokens"],
                        arrival_time=row["arrival_time"], source=row["source"],
                        hints=json.loads(row["hints"])) for row in rows]
    except (TypeError, ValueError) as e:
        raise ValueError(f"{p}: invalid workload row ({e})") from e


def workload_frame(requests: Sequence[Request]) -> pd.DataFrame:
    """The requests as a DataFrame (one row each, hints as dicts), for analysis and plots."""
    return pd.DataFrame({c: [getattr(r, c) for r in requests] for c in _COLUMNS}, columns=list(_COLUMNS))
