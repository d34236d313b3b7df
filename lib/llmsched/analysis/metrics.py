"""Latency, throughput and SLO metrics over per-request records (schema: `llmsched.records`).

Per request (only status == "ok" rows get values; every other row is NaN):
    ttft                = first_token - arrival
    e2e                 = last_token - arrival
    queue_delay         = scheduled - arrival
    tpot                = (last_token - first_token) / (output_tokens - 1)     NaN when output_tokens <= 1
    normalized_latency  = e2e / output_tokens                                  NaN when output_tokens == 0

Per run (`summarize`):
    n_requests, n_ok, n_failed, n_rejected, n_timeout   row counts by status
    {m}_mean, {m}_p50, {m}_p90, {m}_p99                 for m in ttft, tpot, e2e, normalized_latency; over ok
                                                        rows with a defined value (linear-interpolated
                                                        percentiles); NaN when there is none
    queue_delay_mean        mean queue_delay (scheduled - arrival) of the ok requests
    queue_delay_max         worst queue_delay of an ok request
    makespan                max(last_token of ok) - min(arrival of every request that reached the engine,
                            i.e. status != "rejected")
    request_throughput      n_ok / makespan
    token_throughput        sum(output_tokens of ok) / makespan
    total_token_throughput  sum(prompt_tokens + output_tokens of ok) / makespan
    goodput                 (ok requests meeting every threshold of the SLO) / makespan
    slo_attainment          (ok requests meeting every threshold of the SLO) / n_requests; failed, rejected
                            and timed-out requests count as misses; NaN when n_requests == 0
Throughputs are 0 when makespan is not a positive number (no ok request, empty frame).

Repeated runs of each label (policy) on the same requests (`compare_repeats`, `paired_ratios`): point estimates
are means over runs of each run's metric, with intervals from llmsched.analysis.intervals (a two-stage bootstrap
over runs and requests for means over requests, a t-interval over runs for other per-run numbers), and paired
ratios against a baseline label (run k with run k, requests by id).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from llmsched.records import FAILED, OK, REJECTED, STATUSES, TIMEOUT

REQUIRED_COLUMNS = (
    "status",
    "prompt_tokens",
    "output_tokens",
    "arrival",
    "scheduled",
    "first_token",
    "last_token",
)
LATENCY_METRICS = ("ttft", "tpot", "e2e", "normalized_latency")
PERCENTILES = (50, 90, 99)
SUMMARY_COLUMNS = [
    "n_requests", "n_ok", "n_failed", "n_rejected", "n_timeout",
    *[f"{m}_{s}" for m in LATENCY_METRICS for s in ("mean", *(f"p{p}" for p in PERCENTILES))],
    "queue_delay_mean", "queue_delay_max", "makespan", "request_throughput", "token_throughput",
    "total_token_throughput", "goodput", "slo_attainment", "preemptions",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class SLO:
    """Per-request latency thresholds in seconds; None leaves that metric unconstrained.

    A request meets the SLO when it is ok and each set metric is <= its threshold. A metric undefined by
    construction (tpot with <= 1 output token, normalized_latency with 0 output tokens) is met vacuously; an
    ok request missing a timestamp (NaN ttft or e2e) misses. With no threshold set every ok request meets it.
    """

    ttft: float | None = None
    tpot: float | None = None
    e2e: float | None = None
    normalized_latency: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            if not ok or not math.isfinite(v) or v <= 0:
                raise ValueError(f"SLO.{f.name} must be positive finite seconds or None, got {v!r}")

    def thresholds(self) -> dict[str, float]:
        """The set thresholds, metric name -> seconds."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: float(v) for k, v in values.items() if v is not None}


def _check(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"request frame is missing required column(s) {missing}; has {list(df.columns)}")
    bad = sorted(set(df["status"].astype(str)) - set(STATUSES))
    if bad:
        raise ValueError(f"unknown status value(s) {bad}; expected one of {STATUSES}")


def per_request(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of df with ttft, e2e, queue_delay, tpot, normalized_latency columns (formulas: module doc)."""
    _check(df)
    out = df.copy()
    ok = (out["status"] == OK).to_numpy()
    t = {c: pd.to_numeric(out[c], errors="coerce").to_numpy(dtype=float) for c in REQUIRED_COLUMNS[1:]}
    n_out = t["output_tokens"]
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = {
            "ttft": t["first_token"] - t["arrival"],
            "e2e": t["last_token"] - t["arrival"],
            "queue_delay": t["scheduled"] - t["arrival"],
            "tpot": np.where(n_out > 1, (t["last_token"] - t["first_token"]) / (n_out - 1), np.nan),
            "normalized_latency": np.where(n_out > 0, (t["last_token"] - t["arrival"]) / n_out, np.nan),
        }
    for name, values in cols.items():
        out[name] = np.where(ok, values, np.nan)
    return out


def meets_slo(df: pd.DataFrame, slo: SLO | None = None) -> pd.Series:
    """Boolean per row: ok and meeting every threshold of slo (rules: `SLO` doc). Accepts raw records."""
    m = per_request(df)
    met = (m["status"] == OK).to_numpy().copy()
    n_out = np.asarray(pd.to_numeric(m["output_tokens"], errors="coerce"), dtype=float)
    vacuous = {"ttft": np.zeros(len(m), bool), "e2e": np.zeros(len(m), bool),
               "tpot": n_out <= 1, "normalized_latency": n_out == 0}  # fmt: skip
    for name, limit in (slo.thresholds() if slo else {}).items():
        v = m[name].to_numpy(dtype=float)
        met &= (v <= limit) | (np.isnan(v) & vacuous[name])
    return pd.Series(met, index=m.index, name="meets_slo")


def _stats(values: np.ndarray) -> list[float]:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return [math.nan] * (1 + len(PERCENTILES))
    return [float(v.mean()), *(float(np.percentile(v, p)) for p in PERCENTILES)]


def summarize(df: pd.DataFrame, slo: SLO | None = None) -> dict[str, float | int]:
    """Run-level metrics keyed as SUMMARY_COLUMNS (formulas: module doc). Never raises on empty input."""
    m = per_request(df)
    status = m["status"]
    ok = (status == OK).to_numpy()
    res: dict[str, float | int] = {
        "n_requests": len(m),
        "n_ok": int(ok.sum()),
        "n_failed": int((status == FAILED).sum()),
        "n_rejected": int((status == REJECTED).sum()),
        "n_timeout": int((status == TIMEOUT).sum()),
    }
    for name in LATENCY_METRICS:
        mean, *pcts = _stats(m[name].to_numpy(dtype=float)[ok])
        res[f"{name}_mean"] = mean
        res.update({f"{name}_p{p}": q for p, q in zip(PERCENTILES, pcts, strict=True)})
    qd = m["queue_delay"].to_numpy(dtype=float)
    res["queue_delay_mean"] = float(np.nanmean(qd)) if np.any(~np.isnan(qd)) else math.nan
    res["queue_delay_max"] = float(np.nanmax(qd)) if np.any(~np.isnan(qd)) else math.nan

    arrival = pd.to_numeric(m["arrival"], errors="coerce")[(status != REJECTED).to_numpy()].dropna()
    last = pd.to_numeric(m["last_token"], errors="coerce")[ok].dropna()
    makespan = float(last.max() - arrival.min()) if len(last) and len(arrival) else math.nan
    res["makespan"] = makespan
    good = int(meets_slo(m, slo).sum())
    n_out = float(pd.to_numeric(m["output_tokens"], errors="coerce")[ok].sum())
    n_prompt = float(pd.to_numeric(m["prompt_tokens"], errors="coerce")[ok].sum())
    valid = math.isfinite(makespan) and makespan > 0
    for key, amount in (("request_throughput", res["n_ok"]), ("token_throughput", n_out),
                        ("total_token_throughput", n_out + n_prompt), ("goodput", good)):  # fmt: skip
        res[key] = amount / makespan if valid else 0.0
    res["slo_attainment"] = good / len(m) if len(m) else math.nan
    # preemptions of every request (recompute: each repeats its prefill), 0 where the records have none
    pre = pd.to_numeric(df["preemptions"], errors="coerce") if "preemptions" in df else pd.Series([], dtype=float)
    res["preemptions"] = int(pre.fillna(0).sum())
    return res


def recompute_cost(frame: pd.DataFrame, steps: pd.DataFrame) -> tuple[int, float]:
    """Tokens a simulated run scheduled beyond what its requests need once (every request computes its prompt and
    all but its last output token; the rest is prefill that preemption by recompute repeated), and their share of
    all scheduled tokens (NaN when nothing was scheduled). `steps`: the run's step trace (SimResult.steps)."""
    needed = int((frame["prompt_tokens"] + frame["output_tokens"].clip(lower=1) - 1).sum())
    scheduled = int(steps["scheduled_tokens"].sum())
    return scheduled - needed, (scheduled - needed) / scheduled if scheduled else math.nan


def summary_frame(df: pd.DataFrame, slo: SLO | None = None) -> pd.DataFrame:
    """`summarize` as a one-row DataFrame with SUMMARY_COLUMNS."""
    return pd.DataFrame([summarize(df, slo)], columns=SUMMARY_COLUMNS)


def compare(runs: dict[str, pd.DataFrame], slo: SLO | None = None) -> pd.DataFrame:
    """One row per run label (e.g. policy; index named "run", in insertion order) with SUMMARY_COLUMNS."""
    rows = [summarize(df, slo) for df in runs.values()]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS, index=pd.Index(list(runs), name="run"))


# ---------------------------------------------------------------------------------------------------------
# Repeated runs: point estimates with intervals, and paired ratios against a baseline
# ---------------------------------------------------------------------------------------------------------

COUNT_COLUMNS = ("n_requests", "n_ok", "n_failed", "n_rejected", "n_timeout")
MEAN_METRICS = tuple(f"{m}_mean" for m in LATENCY_METRICS)  # each a mean over a run's requests
GROUP_METRICS = ("ttft", "e2e")  # per-request metrics also averaged within each request group
RequestGroups = Mapping[str, Callable[[pd.DataFrame], Any]]


def group_columns(groups: RequestGroups | None) -> list[str]:
    """The per-group mean columns `<metric>_<group>_mean` (e.g. ttft_short_mean) of `groups`."""
    return [f"{m}_{g}_mean" for g in (groups or {}) for m in GROUP_METRICS]


def request_values(df: pd.DataFrame, groups: RequestGroups | None = None) -> dict[str, pd.Series]:
    """The per-request values behind each mean-over-requests metric of a run, indexed by request id.

    `<m>_mean` -> m of the ok requests with a defined value (m in LATENCY_METRICS); with `groups` (name -> a
    function of the per-request frame returning a boolean mask, e.g. short prompts), also
    `<m>_<name>_mean` -> m of those ok requests in the group (m in GROUP_METRICS). The mean of each Series is
    the run's metric (summarize's `<m>_mean`, or the group mean)."""
    m = per_request(df)
    ok = (m["status"] == OK).to_numpy()
    ids = m["request_id"].astype(str) if "request_id" in m.columns else pd.Series(m.index.astype(str))
    index = pd.Index(ids.to_numpy(), name="request_id")
    masks = {"": ok, **{f"_{g}": ok & np.asarray(select(m), dtype=bool) for g, select in (groups or {}).items()}}
    out: dict[str, pd.Series] = {}
    for suffix, mask in masks.items():
        for name in LATENCY_METRICS if suffix == "" else GROUP_METRICS:
            v = pd.Series(m[name].to_numpy(dtype=float), index=index, name=f"{name}{suffix}_mean")[mask]
            out[f"{name}{suffix}_mean"] = v[np.isfinite(v.to_numpy())]
    return out


OPERATING_COLUMNS = ["offered_rate", "completion_rate", "waited", "waited_share", "wait_mean", "wait_max"]


def operating_point(df: pd.DataFrame) -> dict[str, float]:
    """The operating point a run achieved, read from its own records (not from the rate it was asked for):

        offered_rate     requests / arrival span: (n - 1) / (last arrival - first arrival)   (req/s)
        completion_rate  ok requests / (last ok finish - first arrival)                      (req/s)
        waited           ok requests whose queue delay exceeded one decode step (the run's median TPOT): they
                         were not admitted at the step after they arrived, so the order of the queue decided
                         when they ran
        waited_share     waited / ok requests
        wait_mean        mean queue delay of the requests that waited (s; 0 when none did)
        wait_max         the longest queue delay (s)

    A run queues, and scheduling order can matter, when completion_rate < offered_rate and a large share waited.
    NaN where the run has too few ok requests to tell."""
    m = per_request(df)
    ok = m[m["status"] == OK]
    arrivals = pd.to_numeric(m["arrival"], errors="coerce").dropna().to_numpy(float)
    out = dict.fromkeys(OPERATING_COLUMNS, math.nan)
    if len(arrivals) >= 2 and arrivals.max() > arrivals.min():
        out["offered_rate"] = float((len(arrivals) - 1) / (arrivals.max() - arrivals.min()))
    if len(ok) == 0:
        return out
    span = float(pd.to_numeric(ok["last_token"]).max() - arrivals.min())
    out["completion_rate"] = float(len(ok) / span) if span > 0 else math.nan
    delay = ok["queue_delay"].to_numpy(float)
    step = float(np.nanmedian(ok["tpot"].to_numpy(float))) if ok["tpot"].notna().any() else 0.0
    waited = delay > step
    out["waited"] = float(waited.sum())
    out["waited_share"] = float(waited.mean())
    out["wait_mean"] = float(delay[waited].mean()) if waited.any() else 0.0
    out["wait_max"] = float(np.nanmax(delay)) if np.isfinite(delay).any() else math.nan
    return out


def run_summary(df: pd.DataFrame, slo: SLO | None = None,
                groups: RequestGroups | None = None) -> dict[str, float | int]:
    """`summarize` plus the per-group means of `groups` (`request_values`; NaN for an empty group)."""
    res = summarize(df, slo)
    values = request_values(df, groups)
    for col in group_columns(groups):
        v = values[col]
        res[col] = float(v.mean()) if len(v) else math.nan
    return res


def compare_repeats(runs: Mapping[str, Sequence[pd.DataFrame]], slo: SLO | None = None,
                    groups: RequestGroups | None = None, *, level: float = 0.95, seed: int = 0,
                    n_boot: int | None = None) -> pd.DataFrame:
    """One row per label (index "label", insertion order) over that label's repeated runs.

    Columns: SUMMARY_COLUMNS (+ group means) as point estimates, each the MEAN OVER RUNS of the run's metric
    (a run's e2e_mean is the mean over its requests, so e2e_mean here is the mean of the runs' means);
    `n_runs`; and `<metric>_ci_low` / `<metric>_ci_high`, a `level` interval:
      - metrics that are means over requests (MEAN_METRICS, group means): `intervals.bootstrap_runs`, a
        two-stage bootstrap over runs and over requests within runs
      - every other per-run number (percentiles, queue_delay_max, makespan, throughputs, goodput,
        slo_attainment): `intervals.t_interval` over the runs' values (the spread between runs only)
      - counts (COUNT_COLUMNS): no interval
    With one run every bound is NaN: one run says nothing about the drift between runs. `n_boot`: bootstrap
    draws (default intervals.N_BOOT)."""
    from llmsched.analysis.intervals import N_BOOT, bootstrap_runs, t_interval

    means = [*MEAN_METRICS, *group_columns(groups)]
    point_cols = [*SUMMARY_COLUMNS, *group_columns(groups)]
    per_run = [c for c in point_cols if c not in COUNT_COLUMNS and c not in means]
    rows = []
    for label, frames in runs.items():
        if not frames:
            raise ValueError(f"compare_repeats: label {label!r} has no runs")
        summaries = pd.DataFrame([run_summary(f, slo, groups) for f in frames], columns=point_cols)
        row: dict[str, Any] = {c: float(summaries[c].mean()) for c in point_cols}
        row["n_runs"] = len(frames)
        values = [request_values(f, groups) for f in frames]
        for c in means:
            _, row[f"{c}_ci_low"], row[f"{c}_ci_high"] = bootstrap_runs([v[c] for v in values], level=level,
                                                                         seed=seed, n_boot=n_boot or N_BOOT)
        for c in per_run:
            _, row[f"{c}_ci_low"], row[f"{c}_ci_high"] = t_interval(summaries[c].to_numpy(float), level)
        rows.append(row)
    ci = [f"{c}_{s}" for c in point_cols if c not in COUNT_COLUMNS for s in ("ci_low", "ci_high")]
    return pd.DataFrame(rows, columns=[*point_cols, "n_runs", *ci], index=pd.Index(list(runs), name="label"))


RATIO_COLUMNS = ["label", "baseline", "metric", "ratio", "ci_low", "ci_high", "n_runs"]


def paired_ratios(runs: Mapping[str, Sequence[pd.DataFrame]], baseline: str = "fcfs",
                  groups: RequestGroups | None = None, *, level: float = 0.95, seed: int = 0,
                  n_boot: int | None = None) -> pd.DataFrame:
    """Each label's mean-over-requests metrics against `baseline`'s, one row per (label, metric).

    ratio = baseline mean / label mean (> 1: the label's mean is lower, i.e. better for a latency), from
    `intervals.paired_ratio`: run k of the baseline paired with run k of the label (they ran back to back) and
    requests paired by id, with its two-stage paired bootstrap interval (NaN bounds with one run; NaN
    throughout when a pair of runs shares no request with a value, e.g. an empty group). Raises ValueError when
    `baseline` is not a label or a label's number of runs differs from the baseline's. `n_boot`: bootstrap draws
    (default intervals.N_BOOT)."""
    from llmsched.analysis.intervals import N_BOOT, paired_ratio

    if baseline not in runs:
        raise ValueError(f"paired_ratios: baseline {baseline!r} is not among the labels {list(runs)}")
    metrics = [*MEAN_METRICS, *group_columns(groups)]
    base = [request_values(f, groups) for f in runs[baseline]]
    rows = []
    for label, frames in runs.items():
        if label == baseline:
            continue
        if len(frames) != len(base):
            raise ValueError(f"paired_ratios: {label!r} has {len(frames)} runs, {baseline!r} {len(base)}; runs "
                             "pair by position")
        other = [request_values(f, groups) for f in frames]
        for metric in metrics:
            try:
                est, lo, hi = paired_ratio([b[metric] for b in base], [o[metric] for o in other], level=level,
                                           seed=seed, n_boot=n_boot or N_BOOT)
            except ValueError:  # a pair of runs without a common request (an empty group)
                est = lo = hi = math.nan
            rows.append({"label": label, "baseline": baseline, "metric": metric, "ratio": est, "ci_low": lo,
                         "ci_high": hi, "n_runs": len(frames)})
    return pd.DataFrame(rows, columns=RATIO_COLUMNS)
