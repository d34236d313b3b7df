"""Training pairs for the pairwise ranker (PARS): random partners, kept when their lengths differ enough.

A pair (a, b) is kept when its relative length gap |L_a - L_b| / max(L_a, L_b) is at least delta; the target
is +1 when a's response is longer than b's, else -1. Pairs of equal length carry no order and are never kept
(for delta = 0 too). PARS uses delta = 0.2 and about 10 partners per prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def relative_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / max(a, b), elementwise; 0 where both are 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    hi = np.maximum(a, b)
    return np.divide(np.abs(a - b), hi, out=np.zeros(np.broadcast(a, b).shape), where=hi > 0)


def filter_pairs(
    first: np.ndarray, second: np.ndarray, lengths: ArrayLike, delta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate pairs (first[k], second[k]) whose relative gap is >= delta and whose lengths differ.

    Returns (first, second, target) of the kept pairs, target = +1 where first is longer, -1 otherwise.
    """
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    lens = np.asarray(lengths, dtype=np.float64)
    if (lens < 0).any() or not np.isfinite(lens).all():
        raise ValueError("lengths must be finite and >= 0")
    first = np.asarray(first, dtype=np.int64)
    second = np.asarray(second, dtype=np.int64)
    la, lb = lens[first], lens[second]
    keep = (la != lb) & (relative_gap(la, lb) >= delta)
    target = np.where(la[keep] > lb[keep], 1.0, -1.0)
    return first[keep], second[keep], target


def sample_pairs(
    lengths: Sequence[float] | np.ndarray, delta: float, pairs_per_prompt: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every prompt draw `pairs_per_prompt` random partners (not itself), keep those passing the filter."""
    n = len(lengths)
    if pairs_per_prompt < 1:
        raise ValueError(f"pairs_per_prompt must be >= 1, got {pairs_per_prompt}")
    if n < 2:
        raise ValueError(f"need at least 2 prompts to form pairs, got {n}")
    first = np.repeat(np.arange(n), pairs_per_prompt)
    # A partner drawn from the n - 1 others: shift draws at or above the prompt's own index by one.
    second = rng.integers(0, n - 1, size=first.shape[0])
    second = second + (second >= first)
    return filter_pairs(first, second, lengths, delta)
