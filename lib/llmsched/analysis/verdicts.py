"""The rules behind the claims table's verdicts: pure functions of small tables, each with a unit test that feeds
it a weak result and a strong one (tests/test_verdicts.py).

A verdict is judged at an operating point (a load, a protocol) and from an interval, never from one number alone:

    gain_verdict((1.8, 1.5, 2.1), target=4.0)   -> ("partly: a gain, smaller than claimed", ...)
    seed_ratios(per_seed, "fcfs", "ewsjf", "ttft_short_mean")  -> ratio and 95 % CI over seeds, per load

Ratios are oriented so that > 1 is the claimed improvement (baseline latency / policy latency, policy throughput /
baseline throughput).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from llmsched.analysis.intervals import Interval, t_interval

TOLERANCE = 0.10  # a claimed factor counts as reached at 90 % of its size

REPRODUCED = "reproduced"
PARTLY_SMALLER = "partly: a gain, smaller than claimed"
UNDECIDED = "undecided: the interval spans the claimed size"
TIE = "tie: the interval includes no gain"
REVERSED = "not reproduced: the baseline is better"
NO_GAIN = "not reproduced"


def gain_verdict(interval: Interval, target: float | None = None, *, tol: float = TOLERANCE) -> tuple[str, str]:
    """(verdict, rule) for an improvement ratio with its interval; `target` is the claimed factor (e.g. 4.0 for
    "4× lower"; None: any improvement). Without an interval (one seed or run) the point estimate decides and the
    verdict says "(no interval)"."""
    est, lo, hi = interval
    need = 1.0 if target is None else (1 - tol) * target
    claim = "an improvement (ratio > 1)" if target is None else f"≥ {need:.3g}× ({target:g}× − {tol:.0%})"
    rule = (f"95 % interval of the ratio: reproduced if its lower end shows {claim}; partly if it shows a gain "
            "(> 1) but its upper end stays below the claim; undecided if it spans the claim; a tie if it includes "
            "1; not reproduced if it lies below 1")
    if not math.isfinite(est):
        return "not run here", rule
    if not (math.isfinite(lo) and math.isfinite(hi)):
        if target is None:
            v = REPRODUCED if est > 1 else NO_GAIN
        else:
            v = REPRODUCED if est >= need else (PARTLY_SMALLER if est > 1 else NO_GAIN)
        return f"{v} (no interval)", rule
    if hi < 1:
        return REVERSED, rule
    if lo <= 1:
        return TIE, rule
    if lo >= need:
        return REPRODUCED, rule
    if target is not None and hi < need:
        return PARTLY_SMALLER, rule
    return UNDECIDED, rule


def seed_ratios(per_seed: pd.DataFrame, num: str, den: str, col: str, by: Sequence[str] = ("load",),
                label_col: str = "label") -> pd.DataFrame:
    """Per group of `by`: ratio of label `num`'s `col` to label `den`'s, computed per seed and summarised as mean
    and t-interval over the seeds (columns *by, ratio, ci_low, ci_high, n_seeds). A table without a `seed`
    column counts as one seed (NaN bounds). Groups where either label is missing are left out."""
    t = per_seed if "seed" in per_seed.columns else per_seed.assign(seed=0)
    keys = [*by, "seed"]
    x = t[t[label_col].isin([num, den])].pivot_table(index=keys, columns=label_col, values=col)
    if num not in x.columns or den not in x.columns:
        return pd.DataFrame(columns=[*by, "ratio", "ci_low", "ci_high", "n_seeds"])
    r = (x[num] / x[den]).replace([np.inf, -np.inf], np.nan).dropna().rename("r").reset_index()
    rows = []
    for key, g in r.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        est, lo, hi = t_interval(g["r"].to_numpy(float))
        rows.append({**dict(zip(by, key, strict=True)), "ratio": est, "ci_low": lo, "ci_high": hi,
                     "n_seeds": int(g["seed"].nunique())})
    return pd.DataFrame(rows)


def as_interval(row: pd.Series | dict) -> Interval:
    return float(row["ratio"]), float(row["ci_low"]), float(row["ci_high"])


def best_row(ratios: pd.DataFrame, where: pd.Series | None = None) -> pd.Series | None:
    """The row with the highest ratio (among `where`), or None."""
    t = ratios if where is None else ratios[where]
    t = t[np.isfinite(t["ratio"])]
    return None if t.empty else t.loc[t["ratio"].idxmax()]


def low_load_informative(summary: pd.DataFrame, *, baseline: str = "fcfs", min_share: float = 0.05,
                         label_col: str = "label") -> tuple[bool, float]:
    """Whether the lowest load of a sweep can tell policies apart: only if the baseline's requests wait there
    (mean queue delay ≥ `min_share` of its mean E2E). Returns (informative, the share). With no queueing every
    policy admits every request at once and their latencies agree by construction, so "no gain at low load"
    holds whatever the policy; the claim's low-load half is then not informative."""
    lo = summary[np.isclose(summary["load"], summary["load"].min()) & (summary[label_col] == baseline)]
    if lo.empty:
        return False, math.nan
    share = float(lo["queue_delay_mean"].iloc[0] / lo["e2e_mean"].iloc[0])
    return bool(share >= min_share), share


def throughput_testable(summary_row: pd.Series | dict, *, rate_col: str = "rate",
                        fell_behind: float = 0.9) -> bool:
    """Whether a run can show a throughput difference between policies: only if the engine fell behind the
    offered rate (request throughput < `fell_behind` × rate). In an open-loop run whose requests are all served
    as fast as they arrive, throughput is set by the arrivals, whatever the order of service."""
    rate = float(summary_row[rate_col])
    return bool(rate > 0 and float(summary_row["request_throughput"]) < fell_behind * rate)


def order_verdict(best_by_kind: dict[str, float], order: Sequence[str]) -> tuple[str, str]:
    """(verdict, rule) of a claimed ranking of kinds (e.g. encoder > decoder > encoder-decoder) from the best
    score of each kind that ran: reproduced if the whole order holds and every kind ran; partly if the kinds
    that ran keep the claimed order but one is missing; not reproduced if any ran pair is out of order."""
    rule = (f"best τ per kind in the claimed order {' > '.join(order)}: reproduced if every kind ran and each "
            "beats the next; partly if the kinds that ran keep the order but some did not run; not reproduced "
            "if any pair that ran is out of order; not run here with fewer than two kinds")
    ran = [k for k in order if k in best_by_kind and math.isfinite(best_by_kind[k])]
    if len(ran) < 2:
        return "not run here", rule
    if any(best_by_kind[a] <= best_by_kind[b] for i, a in enumerate(ran) for b in ran[i + 1:]):
        return NO_GAIN, rule
    return (REPRODUCED if len(ran) == len(order) else "partly (not every kind ran)"), rule


def convergence_verdict(values: Sequence[float], noise_sd: float, *, by_trial: int = 8, share: float = 0.95,
                        ) -> tuple[str, int | None, str]:
    """(verdict, trial, rule) of "converges in ≤ `by_trial` trials" from the objective of each trial in order
    (trial 1 = the defaults, maximised) and the spread of the objective when the same parameters are re-evaluated
    on other workload seeds (`noise_sd`). The gain over the defaults must exceed twice the noise, and the trial
    of convergence is the first whose best-so-far reaches `share` of the final gain; NaN noise: not decidable."""
    rule = (f"trials counted from 1 (trial 1 = defaults): reproduced if the best gain over the defaults exceeds "
            f"2 × the objective's re-evaluation noise and {share:.0%} of it is reached by trial {by_trial}; "
            "no significant gain otherwise; not decidable without a noise estimate")
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or not np.isfinite(v[0]):
        return "not run here", None, rule
    best = np.fmax.accumulate(np.where(np.isfinite(v), v, -np.inf))
    gain = float(best[-1] - v[0])
    reach = int(np.argmax(best >= v[0] + share * gain)) + 1 if gain > 0 else None
    if not math.isfinite(noise_sd):
        return "not decidable (no noise estimate)", reach, rule
    if gain <= 2 * noise_sd:
        return "no significant gain over the defaults", reach, rule
    return (REPRODUCED if reach is not None and reach <= by_trial else NO_GAIN), reach, rule


TRANSFER_RULE = ("reproduced if the ranker trained on ChatGPT's lengths reaches τ > 0.1 on the serving model's and "
                 "≥ 80% of the τ of a ranker trained on the serving model's own lengths; not testable where the "
                 "profile trains none (pars_collect_train: 0)")


def transfer_verdict(cross: float, own: float) -> str:
    """Verdict of "PARS generalises across models" (TRANSFER_RULE): `cross` the τ on the serving model's lengths of
    PARS trained on ChatGPT's, `own` that of PARS trained on the serving model's lengths (NaN: not trained)."""
    if math.isnan(cross):
        return "not run here"
    if math.isnan(own):
        return "not testable in this profile (no ranker trained on the serving model's lengths)"
    return "reproduced" if cross > 0.1 and cross >= 0.8 * own else "not reproduced"


STALE_PROFILE = "not judged: stale profile"
NO_QUEUE = "not judged: requests did not queue"
MIN_WAITED_SHARE = 0.5  # of FCFS's requests must have waited for a real-engine comparison to be about order


def engine_verdict(verdict: str, profile_state: str | None, waited_share: float) -> tuple[str, str]:
    """(verdict, rule) for a result of the real engine, given the verdict its numbers earn, the state of the
    step-time profile its operating point came from (llmsched.experiments.capacity.profile_state) and the share of
    FCFS's requests that waited (llmsched.analysis.metrics.operating_point, mean over runs).

    A stale profile (missed the engine's speed probe and kept) put the load anywhere: the result is not judged.
    A run where fewer than MIN_WAITED_SHARE of FCFS's requests waited did not queue: no order to compare, not
    judged either. Otherwise the numbers' verdict stands."""
    rule = (f"judged only when the operating point's step-time profile is not stale and at least "
            f"{MIN_WAITED_SHARE:.0%} of FCFS's requests waited (the run queued)")
    if profile_state == "stale":
        return STALE_PROFILE, rule
    if not (math.isfinite(waited_share) and waited_share >= MIN_WAITED_SHARE):
        share = f"{waited_share:.0%}" if math.isfinite(waited_share) else "an unknown share"
        return f"{NO_QUEUE} ({share} of FCFS's requests waited)", rule
    return verdict, rule
