"""Arrival processes (llmsched.workload.arrivals)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmsched.workload.arrivals import (
    assign_arrivals,
    constant_arrivals,
    gamma_arrivals,
    make_arrivals,
    poisson_arrivals,
)
from llmsched.workload.request import Request

N = 100_000


def _gaps(times: np.ndarray) -> np.ndarray:
    return np.diff(times)


@pytest.mark.parametrize("kind,kwargs", [("poisson", {}), ("gamma", {"burstiness": 3.0}),
                                         ("gamma", {"burstiness": 0.5}), ("constant", {})])
def test_shape_and_mean_rate(kind, kwargs):
    rate = 4.0
    t = make_arrivals(kind, N, rate, seed=1, **kwargs)
    assert t.shape == (N,) and t.dtype == np.float64
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    measured = (N - 1) / t[-1]
    assert measured == pytest.approx(rate, rel=0.03)


def test_cv_of_gaps_follows_burstiness():
    assert np.std(_gaps(poisson_arrivals(N, 2.0, 0))) / np.mean(_gaps(poisson_arrivals(N, 2.0, 0))) == (
        pytest.approx(1.0, abs=0.03))
    for cv in (0.25, 1.0, 2.0, 4.0):
        g = _gaps(gamma_arrivals(N, 2.0, cv, seed=5))
        assert np.std(g) / np.mean(g) == pytest.approx(cv, rel=0.08)
    assert np.std(_gaps(constant_arrivals(1000, 2.0))) == pytest.approx(0.0, abs=1e-12)


def test_same_seed_same_times():
    a = make_arrivals("gamma", 1000, 3.0, seed=42, burstiness=2.0)
    b = make_arrivals("gamma", 1000, 3.0, seed=np.random.default_rng(42), burstiness=2.0)
    c = make_arrivals("gamma", 1000, 3.0, seed=43, burstiness=2.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(poisson_arrivals(50, 1.0, 7), poisson_arrivals(50, 1.0, 7))


def test_small_n():
    assert poisson_arrivals(0, 1.0, 0).shape == (0,)
    assert gamma_arrivals(1, 1.0, 2.0, 0).tolist() == [0.0]
    assert constant_arrivals(3, 2.0).tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "fast"])
def test_bad_rate_and_burstiness_raise_naming_the_value(bad):
    with pytest.raises(ValueError, match="rate.*" + repr(bad)[:3]):
        poisson_arrivals(10, bad, 0)
    with pytest.raises(ValueError, match="rate"):
        constant_arrivals(10, bad)
    with pytest.raises(ValueError, match="burstiness.*" + repr(bad)[:3]):
        gamma_arrivals(10, 1.0, bad, 0)


def test_factory_errors():
    with pytest.raises(ValueError, match="valid kinds: poisson, gamma, constant"):
        make_arrivals("weibull", 10, 1.0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        make_arrivals("poisson", 10, 1.0)
    with pytest.raises(ValueError, match="n"):
        make_arrivals("constant", -1, 1.0)


def test_assign_arrivals_returns_new_requests():
    reqs = [Request(f"r{i}", "p", 3, 4, hints={"score": i}) for i in range(3)]
    out = assign_arrivals(reqs, np.array([0.0, 0.5, 2.0]))
    assert [r.arrival_time for r in out] == [0.0, 0.5, 2.0]
    assert [r.arrival_time for r in reqs] == [0.0, 0.0, 0.0]
    assert out[1].hints == {"score": 1} and out[1].hints is not reqs[1].hints
    with pytest.raises(ValueError, match="2 arrival times for 3 requests"):
        assign_arrivals(reqs, [0.0, 1.0])
    with pytest.raises(ValueError, match="non-decreasing"):
        assign_arrivals(reqs, [0.0, 2.0, 1.0])
