"""Arrival processes: when each request of a workload reaches the server.

Every process returns a float64 numpy array of n non-decreasing arrival times in seconds. The first request
arrives at t = 0 and the n - 1 gaps between consecutive arrivals have mean 1 / rate, so the workload spans
about (n - 1) / rate seconds.

    poisson    exponential gaps (memoryless arrivals)
    gamma      gamma gaps with coefficient of variation `burstiness`: shape k = 1 / burstiness**2,
               scale = 1 / (rate * k); burstiness 1 is Poisson, > 1 burstier, < 1 more regular.
               NOTE: vLLM's benchmark calls the *shape* k "burstiness" (lower = burstier); here it is the CV.
    constant   gaps of exactly 1 / rate

Random processes take an explicit seed (int) or numpy Generator, never global state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from .request import Request

Seed = int | np.random.Generator


def _check_positive(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n (number of requests) must be an integer >= 0, got {n!r}")
    return int(n)


def _rng(seed: Seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def _from_gaps(gaps: np.ndarray) -> np.ndarray:
    """Arrival times from the n - 1 gaps: 0, g0, g0 + g1, ..."""
    return np.concatenate(([0.0], np.cumsum(gaps, dtype=np.float64)))


def poisson_arrivals(n: int, rate: float, seed: Seed) -> np.ndarray:
    """Poisson process: exponential gaps of mean 1 / rate."""
    n, rate = _check_n(n), _check_positive("rate", rate)
    if n == 0:
        return np.zeros(0)
    return _from_gaps(_rng(seed).exponential(1.0 / rate, size=n - 1))


def gamma_arrivals(n: int, rate: float, burstiness: float, seed: Seed) -> np.ndarray:
    """Gamma renewal process: gaps of mean 1 / rate and coefficient of variation `burstiness`."""
    n, rate = _check_n(n), _check_positive("rate", rate)
    cv = _check_positive("burstiness", burstiness)
    if n == 0:
        return np.zeros(0)
    shape = 1.0 / cv**2
    return _from_gaps(_rng(seed).gamma(shape, 1.0 / (rate * shape), size=n - 1))


def constant_arrivals(n: int, rate: float) -> np.ndarray:
    """Deterministic arrivals every 1 / rate seconds."""
    n, rate = _check_n(n), _check_positive("rate", rate)
    return np.arange(n, dtype=np.float64) / rate


ARRIVAL_KINDS: dict[str, Callable[..., np.ndarray]] = {
    "poisson": poisson_arrivals,
    "gamma": gamma_arrivals,
    "constant": constant_arrivals,
}


def make_arrivals(kind: str, n: int, rate: float, *, seed: Seed | None = None,
                  burstiness: float = 1.0) -> np.ndarray:
    """Arrival times of the named process (see ARRIVAL_KINDS); random kinds need a seed.

    Raises ValueError listing the valid kinds for an unknown name.
    """
    if kind not in ARRIVAL_KINDS:
        raise ValueError(f"unknown arrival process {kind!r}; valid kinds: {', '.join(ARRIVAL_KINDS)}")
    if kind == "constant":
        return constant_arrivals(n, rate)
    if seed is None:
        raise ValueError(f"the {kind} arrival process is random: pass seed= (an int or a numpy Generator)")
    if kind == "gamma":
        return gamma_arrivals(n, rate, burstiness, seed)
    return poisson_arrivals(n, rate, seed)


def assign_arrivals(requests: Sequence[Request], times: Sequence[float] | np.ndarray) -> list[Request]:
    """New Requests (same order) with arrival_time = times[i]; the inputs are left unchanged.

    Raises ValueError when the lengths differ or the times are negative, non-finite or decreasing.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size != len(requests):
        raise ValueError(f"got {t.size} arrival times for {len(requests)} requests")
    if t.size and not (np.all(np.isfinite(t)) and t[0] >= 0 and np.all(np.diff(t) >= 0)):
        raise ValueError("arrival times must be finite, >= 0 and non-decreasing")
    return [dataclasses.replace(r, arrival_time=float(ti), hints=dict(r.hints))
            for r, ti in zip(requests, t, strict=True)]
