import math

import numpy as np
import pandas as pd
import pytest

from llmsched.analysis.metrics import (
    SLO,
    SUMMARY_COLUMNS,
    compare,
    meets_slo,
    per_request,
    summarize,
    summary_frame,
)
from llmsched.records import RequestRecord, records_to_frame

NAN = math.nan


def _frame() -> pd.DataFrame:
    """Three ok requests plus one failed, one rejected and one timed-out request (values hand-chosen)."""
    R = RequestRecord
    return records_to_frame([
        R("a", status="ok", prompt_tokens=10, output_tokens=5, arrival=1.0, queued=1.0, scheduled=1.5,
          first_token=2.0, last_token=4.0),
        R("b", status="ok", prompt_tokens=20, output_tokens=1, arrival=2.0, queued=2.0, scheduled=2.0,
          first_token=3.0, last_token=3.0),
        R("c", status="ok", prompt_tokens=30, output_tokens=11, arrival=3.0, queued=3.0, scheduled=5.0,
          first_token=6.0, last_token=8.0, preemptions=1),
        # reached the engine at 0.5 (starts the makespan), then errored
        R("d", status="failed", error="boom", prompt_tokens=40, arrival=0.5, queued=0.5, scheduled=0.6),
        # never reached the engine: its arrival must not start the makespan
        R("e", status="rejected", error="too long", prompt_tokens=50, arrival=0.0),
        # aborted at the time limit: its late last_token must not end the makespan
        R("f", status="timeout", prompt_tokens=60, output_tokens=3, arrival=1.5, queued=1.5, scheduled=2.5,
          first_token=3.5, last_token=9.0),
    ])  # fmt: skip


def test_per_request_values_and_non_ok_rows_are_nan():
    df = _frame()
    before = df.copy()
    m = per_request(df).set_index("request_id")
    pd.testing.assert_frame_equal(df, before)  # input unchanged
    assert "ttft" not in df.columns
    exp = {
        "a": dict(ttft=1.0, e2e=3.0, queue_delay=0.5, tpot=0.5, normalized_latency=0.6),
        "b": dict(ttft=1.0, e2e=1.0, queue_delay=0.0, tpot=NAN, normalized_latency=1.0),
        "c": dict(ttft=3.0, e2e=5.0, queue_delay=2.0, tpot=0.2, normalized_latency=5 / 11),
    }
    for rid, vals in exp.items():
        for col, v in vals.items():
            assert m.loc[rid, col] == pytest.approx(v, nan_ok=True), (rid, col)
    for rid in ("d", "e", "f"):
        assert m.loc[rid, ["ttft", "e2e", "queue_delay", "tpot", "normalized_latency"]].isna().all(), rid


def test_zero_output_tokens_gives_nan_normalized_latency_and_tpot():
    df = records_to_frame([RequestRecord("z", output_tokens=0, arrival=0.0, scheduled=0.0, first_token=1.0,
                                         last_token=1.0)])  # fmt: skip
    m = per_request(df)
    assert math.isnan(m.loc[0, "normalized_latency"]) and math.isnan(m.loc[0, "tpot"])
    assert m.loc[0, "ttft"] == pytest.approx(1.0)


def test_summarize_every_metric_hand_computed():
    s = summarize(_frame())
    assert list(s) == SUMMARY_COLUMNS
    assert (s["n_requests"], s["n_ok"], s["n_failed"], s["n_rejected"], s["n_timeout"]) == (6, 3, 1, 1, 1)
    # linear percentiles of sorted v0, v1, v2: p90 = v1 + 0.8 (v2 - v1), p99 = v1 + 0.98 (v2 - v1)
    exp = {
        "ttft_mean": 5 / 3, "ttft_p50": 1.0, "ttft_p90": 2.6, "ttft_p99": 2.96,
        # tpot of b (1 output token) is undefined: stats over [0.5, 0.2]
        "tpot_mean": 0.35, "tpot_p50": 0.35, "tpot_p90": 0.47, "tpot_p99": 0.497,
        "e2e_mean": 3.0, "e2e_p50": 3.0, "e2e_p90": 4.6, "e2e_p99": 4.96,
        "normalized_latency_mean": (0.6 + 1.0 + 5 / 11) / 3, "normalized_latency_p50": 0.6,
        "normalized_latency_p90": 0.92, "normalized_latency_p99": 0.992,
        "queue_delay_mean": (0.5 + 0.0 + 2.0) / 3, "queue_delay_max": 2.0,  # ok rows: a waits 0.5, b 0, c 2
        "makespan": 7.5,  # last ok token 8.0 - first arrival that reached the engine 0.5
        "request_throughput": 3 / 7.5,
        "token_throughput": 17 / 7.5,
        "total_token_throughput": (60 + 17) / 7.5,
        "goodput": 3 / 7.5,  # no SLO: every ok request is good
        "slo_attainment": 3 / 6,  # failed, rejected, timeout count as misses
    }  # fmt: skip
    for k, v in exp.items():
        assert s[k] == pytest.approx(v), k


@pytest.mark.parametrize(
    ("slo", "n_good"),
    [
        (SLO(), 3),
        (SLO(ttft=2.0), 2),  # c misses (3.0)
        (SLO(ttft=1.0), 2),  # threshold inclusive
        (SLO(tpot=0.3), 2),  # a misses (0.5); b's undefined tpot is met vacuously
        (SLO(ttft=2.0, e2e=2.0), 1),  # only b meets both
        (SLO(normalized_latency=0.5), 1),  # only c (5/11)
        (SLO(e2e=0.5), 0),
    ],
)
def test_goodput_and_attainment_count_slo_meeting_ok_requests(slo, n_good):
    s = summarize(_frame(), slo)
    assert s["goodput"] == pytest.approx(n_good / 7.5)
    assert s["slo_attainment"] == pytest.approx(n_good / 6)
    assert int(meets_slo(_frame(), slo).sum()) == n_good
    # the SLO never changes the latency statistics or throughput
    assert s["request_throughput"] == pytest.approx(3 / 7.5)


def test_meets_slo_excludes_non_ok_even_with_good_timestamps():
    met = meets_slo(_frame(), SLO(ttft=100.0, e2e=100.0)).to_numpy()
    assert met.tolist() == [True, True, True, False, False, False]


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, math.nan, math.inf, -math.inf, "1", True])
@pytest.mark.parametrize("field", ["ttft", "tpot", "e2e", "normalized_latency"])
def test_bad_slo_values_raise(field, bad):
    with pytest.raises(ValueError, match=field) as exc:
        SLO(**{field: bad})
    assert repr(bad) in str(exc.value)


def test_slo_is_frozen_and_accepts_ints():
    slo = SLO(ttft=1, e2e=np.float64(2.5))
    assert slo.thresholds() == {"ttft": 1.0, "e2e": 2.5}
    with pytest.raises(AttributeError):
        slo.ttft = 3.0  # type: ignore[misc]


def test_missing_columns_named():
    df = _frame().drop(columns=["arrival", "last_token"])
    with pytest.raises(ValueError, match=r"arrival.*last_token"):
        summarize(df)
    with pytest.raises(ValueError, match="arrival"):
        per_request(df)


def test_unknown_status_raises():
    df = _frame()
    df.loc[0, "status"] = "done"
    with pytest.raises(ValueError, match="done"):
        summarize(df)


def _assert_no_ok_summary(s, n_requests):
    assert s["n_ok"] == 0 and s["n_requests"] == n_requests
    for col in SUMMARY_COLUMNS:
        if col.split("_")[-1] in ("mean", "p50", "p90", "p99", "max") or col == "makespan":
            assert math.isnan(s[col]), col
    for col in ("request_throughput", "token_throughput", "total_token_throughput", "goodput"):
        assert s[col] == 0.0, col


def test_empty_frame():
    s = summarize(records_to_frame([]), SLO(ttft=1.0))
    _assert_no_ok_summary(s, 0)
    assert (s["n_failed"], s["n_rejected"], s["n_timeout"]) == (0, 0, 0)
    assert math.isnan(s["slo_attainment"])
    assert per_request(records_to_frame([])).empty


def test_frame_without_ok_requests():
    df = _frame()
    df = df[df["status"] != "ok"]
    s = summarize(df, SLO(ttft=1.0))
    _assert_no_ok_summary(s, 3)
    assert s["slo_attainment"] == 0.0


def test_summary_frame_and_compare():
    df = _frame()
    only_ok = df[df["status"] == "ok"]
    one = summary_frame(df)
    assert one.shape == (1, len(SUMMARY_COLUMNS)) and list(one.columns) == SUMMARY_COLUMNS
    table = compare({"fcfs": df, "pars": only_ok, "empty": records_to_frame([])}, SLO(ttft=2.0))
    assert list(table.index) == ["fcfs", "pars", "empty"] and table.index.name == "run"
    assert list(table.columns) == SUMMARY_COLUMNS
    assert table.loc["fcfs", "goodput"] == pytest.approx(2 / 7.5)
    # without the failed request the makespan starts at the first ok arrival: 8.0 - 1.0
    assert table.loc["pars", "makespan"] == pytest.approx(7.0)
    assert table.loc["pars", "slo_attainment"] == pytest.approx(2 / 3)
    assert table.loc["empty", "n_requests"] == 0
    assert compare({}).empty


def test_summarize_counts_the_preemptions_of_every_request():
    df = records_to_frame([RequestRecord(request_id=f"r{i}", source="t", status="ok", prompt_tokens=4,
                                         ref_output_tokens=2, output_tokens=2, arrival=0.0, queued=0.0,
                                         scheduled=0.1, first_token=0.2, last_token=0.3 + i, preemptions=p)
                           for i, p in enumerate([0, 2, 1])])
    assert summarize(df)["preemptions"] == 3
    assert summarize(df.drop(columns="preemptions"))["preemptions"] == 0
