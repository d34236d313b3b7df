"""Workload Parquet round trip (llmsched.workload.io)."""

from __future__ import annotations

import pytest

from llmsched.workload.io import load_workload, save_workload, workload_frame
from llmsched.workload.request import Request


def _workload() -> list[Request]:
    return [
        Request("a", "Hello, world", 4, 10, arrival_time=0.0, source="sharegpt"),
        Request("b", "café ☕ 你好\n\ttabs", 9, 0, arrival_time=0.1 + 0.2, source="mixed-100-2000",
                hints={"score": 0.30000000000000004, "rank": 3, "tags": ["x", None], "nested": {"ok": True}}),
        Request("c", "", 1, 1, arrival_time=1e-300, source="", hints={}),
    ]


def test_round_trip_exact(tmp_path):
    reqs = _workload()
    path = save_workload(reqs, tmp_path / "sub" / "w.parquet")
    assert load_workload(path) == reqs


def test_empty_workload(tmp_path):
    assert load_workload(save_workload([], tmp_path / "empty.parquet")) == []


def test_frame():
    df = workload_frame(_workload())
    assert list(df.columns) == ["request_id", "prompt", "prompt_tokens", "output_tokens", "arrival_time",
                                "source", "hints"]
    assert df["prompt_tokens"].tolist() == [4, 9, 1]


def test_bad_hints_and_files(tmp_path):
    with pytest.raises(ValueError, match="request x: hints"):
        save_workload([Request("x", "p", 1, 1, hints={"t": (1, 2)})], tmp_path / "t.parquet")
    with pytest.raises(ValueError, match="request y: hints"):
        save_workload([Request("y", "p", 1, 1, hints={"f": float("nan")})], tmp_path / "n.parquet")
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        load_workload(tmp_path / "missing.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="junk.parquet: not a readable Parquet file"):
        load_workload(junk)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"request_id": ["a"]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="other.parquet: not a workload table, missing column"):
        load_workload(tmp_path / "other.parquet")
