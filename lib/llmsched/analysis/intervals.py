"""Confidence intervals for every comparison the artifact reports.

Two kinds of repetition, two kinds of interval:

- Simulator sweeps and ranker seeds: one number per seed (a workload draw and its arrivals, or a training
  seed). `t_interval` gives mean and a Student-t 95 % interval over seeds; `seed_table` does it for every
  (group, metric) of a per-seed table, with columns `<metric>_mean`, `<metric>_ci_low`, `<metric>_ci_high`.
- Real-engine runs: several interleaved runs of each policy on the same requests, many requests per run. The
  spread has two sources — which requests (within a run) and the machine's drift (between runs) — so
  `bootstrap_runs` resamples both: runs with replacement, then requests within each drawn run (a two-stage,
  hierarchical bootstrap). `paired_ratio` does the same for a ratio of two policies' means, pairing the i-th
  run of each (they ran back to back, so they share the machine's state) and the same request ids in both
  (they served the same workload), which removes most of the between-request variance from the ratio.

    mean, lo, hi = t_interval([0.31, 0.29, 0.33])
    est, lo, hi = bootstrap_runs([run1.e2e, run2.e2e, run3.e2e])
    ratio, lo, hi = paired_ratio([fcfs1, fcfs2, fcfs3], [pars1, pars2, pars3])   # Series indexed by request id

Every function returns NaN bounds (never a made-up width) where the data cannot give an interval: one seed,
one run, or no finite values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95
N_BOOT = 2000

Interval = tuple[float, float, float]  # (estimate, low, high)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def t_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> Interval:
    """Mean of the finite `values` and its Student-t interval; NaN bounds with fewer than two values, the
    mean itself as both bounds when all values are equal."""
    _check_level(level)
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def seed_table(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], *, seed_col: str = "seed",
               level: float = LEVEL) -> pd.DataFrame:
    """One row per group of `by`: `n_seeds` and, for each metric, its mean and t-interval over the seeds.

    Raises ValueError naming the missing columns, or when a group holds the same seed twice (the rows would
    not be independent draws)."""
    missing = [c for c in [*by, *metrics, seed_col] if c not in frame.columns]
    if missing:
        raise ValueError(f"seed_table: columns {missing} not in the table (has {list(frame.columns)})")
    dup = frame.duplicated([*by, seed_col])
    if dup.any():
        raise ValueError(f"seed_table: {int(dup.sum())} rows repeat a seed within a group of {list(by)}")
    rows = []
    for key, g in frame.groupby(list(by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, object] = dict(zip(by, key, strict=True))
        row["n_seeds"] = int(g[seed_col].nunique())
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = t_interval(g[m].to_numpy(float), level)
        rows.append(row)
    return pd.DataFrame(rows)


def _percentiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _clean_runs(runs: Sequence[Sequence[float] | np.ndarray | pd.Series]) -> list[np.ndarray]:
    out = []
    for r in runs:
        x = np.asarray(r, dtype=np.float64)
        out.append(x[np.isfinite(x)])
    return [x for x in out if x.size]


def bootstrap_runs(runs: Sequence[Sequence[float] | np.ndarray | pd.Series],
                   stat: Callable[[np.ndarray], float] = np.mean, *, n_boot: int = N_BOOT, seed: int = 0,
                   level: float = LEVEL) -> Interval:
    """`stat` of each run's values, averaged over runs, with a two-stage bootstrap interval (runs drawn with
    replacement, then values within each drawn run). NaN bounds with one run: one run says nothing about
    the drift between runs, and a within-run interval alone would be too narrow."""
    _check_level(level)
    xs = _clean_runs(runs)
    if not xs:
        return math.nan, math.nan, math.nan
    def over_runs(chosen: list[np.ndarray]) -> float:
        return float(np.mean([stat(x) for x in chosen]))

    estimate = over_runs(xs)
    if len(xs) < 2:
        return estimate, math.nan, math.nan
    return (estimate, *_two_stage(xs, over_runs, n_boot, seed, level))


def _two_stage(groups: list[np.ndarray], statistic: Callable[[list[np.ndarray]], float], n_boot: int, seed: int,
               level: float) -> tuple[float, float]:
    """Percentile interval of `statistic` over two-stage resamples: groups drawn with replacement, then the rows
    of each drawn group with replacement."""
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for b in range(n_boot):
        picked = rng.integers(len(groups), size=len(groups))
        draws[b] = statistic([groups[i][rng.integers(len(groups[i]), size=len(groups[i]))] for i in picked])
    return _percentiles(draws, level)


def paired_ratio(base_runs: Sequence[pd.Series], other_runs: Sequence[pd.Series], *, n_boot: int = N_BOOT,
                 seed: int = 0, level: float = LEVEL) -> Interval:
    """mean(base) / mean(other) over paired runs (the i-th of each list) and the request ids both runs hold
    with finite values, with a two-stage paired bootstrap interval (runs, then request ids, the same draw for
    both policies). A ratio > 1 means `other` is lower (better, for a latency) than `base`.

    Raises ValueError when the lists differ in length or a pair shares no request id."""
    if len(base_runs) != len(other_runs):
        raise ValueError(f"paired_ratio: {len(base_runs)} base runs but {len(other_runs)} other runs; runs pair "
                         "by position (the i-th run of each policy)")
    _check_level(level)
    pairs = []
    for i, (b, o) in enumerate(zip(base_runs, other_runs, strict=True)):
        both = pd.concat([b.rename("b"), o.rename("o")], axis=1, join="inner").dropna()
        both = both[np.isfinite(both["b"]) & np.isfinite(both["o"])]
        if both.empty:
            raise ValueError(f"paired_ratio: run pair {i} shares no request id with finite values")
        pairs.append(both.to_numpy(np.float64))
    if not pairs:
        return math.nan, math.nan, math.nan

    def ratio(chosen: list[np.ndarray]) -> float:
        stacked = np.concatenate(chosen)
        other = stacked[:, 1].mean()
        return float(stacked[:, 0].mean() / other) if other > 0 else math.nan

    estimate = ratio(pairs)
    if len(pairs) < 2:
        return estimate, math.nan, math.nan
    return (estimate, *_two_stage(pairs, ratio, n_boot, seed, level))


def excludes(interval: Interval, value: float = 1.0) -> bool:
    """Whether the interval lies wholly above or wholly below `value` (False for NaN bounds)."""
    _, lo, hi = interval
    return bool(math.isfinite(lo) and math.isfinite(hi) and (lo > value or hi < value))


def fmt_interval(interval: Interval, digits: int = 3) -> str:
    """"1.23 [1.10, 1.37]", or the estimate alone when there is no interval."""
    est, lo, hi = interval
    if not math.isfinite(est):
        return "n/a"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{est:.{digits}g} (no interval)"
    return f"{est:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"
