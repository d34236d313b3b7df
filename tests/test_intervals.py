"""Confidence intervals: known values, coverage on populations where the truth is known, pairing, bad input."""

import math

import numpy as np
import pandas as pd
import pytest

from llmsched.analysis.intervals import (
    bootstrap_runs,
    excludes,
    fmt_interval,
    paired_ratio,
    seed_table,
    t_interval,
)


def test_t_interval_known_values_and_degenerate_cases():
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5) and mean - lo == hi - mean
    one = t_interval([5.0, math.nan])  # NaN dropped: one value left, no interval
    assert one[0] == 5.0 and math.isnan(one[1]) and math.isnan(one[2])
    assert all(math.isnan(v) for v in t_interval([]))
    assert t_interval([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="level must be in"):
        t_interval([1.0, 2.0], level=95)


def test_t_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    hits = sum(lo <= 3.0 <= hi for _, lo, hi in (t_interval(rng.normal(3.0, 2.0, 5)) for _ in range(600)))
    assert 0.92 <= hits / 600 <= 0.98


def test_seed_table_groups_and_rejects_repeated_seeds():
    frame = pd.DataFrame({"label": ["a"] * 3 + ["b"] * 3, "load": 1.0, "seed": [0, 1, 2] * 2,
                          "e2e": [1.0, 2.0, 3.0, 10.0, 10.0, 10.0]})
    t = seed_table(frame, ["label", "load"], ["e2e"]).set_index("label")
    assert list(t.n_seeds) == [3, 3]
    assert t.loc["a", "e2e_mean"] == 2.0 and t.loc["a", "e2e_ci_low"] < 2.0 < t.loc["a", "e2e_ci_high"]
    assert t.loc["b", "e2e_ci_low"] == t.loc["b", "e2e_ci_high"] == 10.0
    with pytest.raises(ValueError, match="repeat a seed"):
        seed_table(pd.concat([frame, frame.head(1)]), ["label", "load"], ["e2e"])
    with pytest.raises(ValueError, match=r"columns \['ttft'\] not in the table"):
        seed_table(frame, ["label"], ["ttft"])


def test_bootstrap_runs_widens_with_drift_between_runs():
    rng = np.random.default_rng(0)
    steady = [rng.normal(10.0, 2.0, 60) for _ in range(3)]
    drifting = [x + shift for x, shift in zip(steady, (-3.0, 0.0, 3.0), strict=True)]  # the machine's drift
    est, lo, hi = bootstrap_runs(steady)
    assert est == pytest.approx(np.mean([x.mean() for x in steady])) and lo < est < hi
    _, dlo, dhi = bootstrap_runs(drifting)
    assert dhi - dlo > 2 * (hi - lo)
    single = bootstrap_runs(steady[:1])  # one run: no between-run spread to speak of, so no interval
    assert math.isfinite(single[0]) and math.isnan(single[1])


def test_paired_ratio_detects_a_real_gain_and_not_a_null_one():
    rng = np.random.default_rng(1)
    ids = [f"r{i}" for i in range(50)]
    base = [pd.Series(rng.lognormal(2.0, 1.0, 50), index=ids) for _ in range(3)]
    better = [b * 0.6 * rng.lognormal(0.0, 0.1, 50) for b in base]  # 40 % lower on the same requests
    same = [b * rng.lognormal(0.0, 0.1, 50) for b in base]
    gain = paired_ratio(base, better)
    assert gain[0] == pytest.approx(1 / 0.6, rel=0.1) and excludes(gain, 1.0)
    null = paired_ratio(base, same)
    assert null[1] < 1.0 < null[2] and not excludes(null, 1.0)
    shuffled = [b.sample(frac=1.0, random_state=0) for b in better]  # pairing is by request id, not position
    assert paired_ratio(base, shuffled)[0] == pytest.approx(gain[0])


def test_paired_ratio_rejects_unpaired_input():
    a = pd.Series([1.0, 2.0], index=["x", "y"])
    with pytest.raises(ValueError, match="2 base runs but 1 other runs"):
        paired_ratio([a, a], [a])
    with pytest.raises(ValueError, match="run pair 0 shares no request id"):
        paired_ratio([a], [pd.Series([1.0], index=["z"])])


def test_excludes_and_formatting():
    assert excludes((1.5, 1.2, 1.8)) and excludes((0.5, 0.4, 0.9)) and not excludes((1.1, 0.9, 1.3))
    assert not excludes((1.5, math.nan, math.nan))
    assert fmt_interval((1.234, 1.1, 1.37)) == "1.23 [1.1, 1.37]"
    assert fmt_interval((1.234, math.nan, math.nan)) == "1.23 (no interval)"
    assert fmt_interval((math.nan, math.nan, math.nan)) == "n/a"
