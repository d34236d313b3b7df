"""Trace replay (llmsched.workload.trace)."""

from __future__ import annotations

import numpy as np
import pytest

from factories import FIXTURES
from llmsched.workload.tokens import count_tokens
from llmsched.workload.trace import load_trace, trace_requests


def test_load_trace_sorts_and_shifts():
    tr = load_trace(FIXTURES / "trace_sample.csv")
    np.testing.assert_allclose(tr.arrival, [0.0, 0.5, 1.0, 2.25, 2.25])
    assert tr.prompt_tokens.tolist() == [12, 30, 8, 80, 25]
    assert tr.output_tokens.tolist() == [3, 5, 0, 40, 7]
    assert tr.row.tolist() == [2, 1, 4, 3, 5]  # stable for the tie at 12.25
    assert len(tr) == 5


def test_trace_requests_exact_prompt_lengths(tok, pool_texts):
    reqs = trace_requests(FIXTURES / "trace_sample.csv", tok, pool_texts, seed=0)
    assert [r.request_id for r in reqs] == ["trace-2", "trace-1", "trace-4", "trace-3", "trace-5"]
    assert [r.prompt_tokens for r in reqs] == [12, 30, 8, 80, 25]
    assert count_tokens(tok, [r.prompt for r in reqs], add_special_tokens=True) == [12, 30, 8, 80, 25]
    assert [r.output_tokens for r in reqs] == [3, 5, 0, 40, 7]
    assert [r.arrival_time for r in reqs] == [0.0, 0.5, 1.0, 2.25, 2.25]
    again = trace_requests(FIXTURES / "trace_sample.csv", tok, pool_texts, seed=0)
    assert [r.prompt for r in again] == [r.prompt for r in reqs]


@pytest.mark.parametrize("content,match", [
    ("timestamp,prompt_tokens\n0,5\n", "missing column.*output_tokens"),
    ("timestamp,prompt_tokens,output_tokens\n0,5,3\n1,abc,3\n", "row 2 .*'prompt_tokens'.*abc"),
    ("timestamp,prompt_tokens,output_tokens\n0,5,3\n1,5,-2\n", "row 2 .*'output_tokens'.*>= 0"),
    ("timestamp,prompt_tokens,output_tokens\n0,5,3\n,5,2\n", "row 2 .*'timestamp'.*not a finite number"),
    ("timestamp,prompt_tokens,output_tokens\n0,5.5,3\n", "row 1 .*whole number"),
    ("timestamp,prompt_tokens,output_tokens\n0,0,3\n", "row 1 .*'prompt_tokens'.*>= 1"),
    ("timestamp,prompt_tokens,output_tokens\n", "no rows"),
    ("", "not a readable CSV"),
])
def test_bad_traces_raise(tmp_path, content, match):
    path = tmp_path / "bad_trace.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match="bad_trace.csv: .*" + match):
        load_trace(path)


def test_missing_trace_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_trace(tmp_path / "nope.csv")
