"""Ranking quality: Kendall's tau-b and pairwise accuracy between predicted scores and true lengths.

Both are computed exactly over all pairs, in row blocks so memory stays O(block × n); 20,000 prompts take about
a second.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

_BLOCK = 512


def _as_pair(pred: Sequence[float], true: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"pred and true differ in length: {p.shape[0]} vs {t.shape[0]}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValueError("pred and true must be finite (NaN or inf found)")
    return p, t


def _pair_signs(p: np.ndarray, t: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """sign(p_i - p_j), sign(t_i - t_j) for all i < j, one row block at a time."""
    n = p.shape[0]
    for start in range(0, n - 1, _BLOCK):
        stop = min(start + _BLOCK, n - 1)
        rows = np.arange(start, stop)
        cols = np.arange(n)
        upper = cols[None, :] > rows[:, None]
        sp = np.sign(p[rows, None] - p[None, :])[upper]
        st = np.sign(t[rows, None] - t[None, :])[upper]
        yield sp, st


def kendall_tau(pred: Sequence[float], true: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either variable handled as scipy.stats.kendalltau does); NaN when undefined."""
    p, t = _as_pair(pred, true)
    concordant = discordant = tie_p = tie_t = 0
    for sp, st in _pair_signs(p, t):
        prod = sp * st
        concordant += int((prod > 0).sum())
        discordant += int((prod < 0).sum())
        tie_p += int(((sp == 0) & (st != 0)).sum())
        tie_t += int(((st == 0) & (sp != 0)).sum())
    n0 = concordant + discordant
    denom = np.sqrt((n0 + tie_p) * (n0 + tie_t))
    return float((concordant - discordant) / denom) if denom > 0 else float("nan")


def pairwise_accuracy(pred: Sequence[float], true: Sequence[float], min_gap: float = 0.0) -> float:
    """Share of pairs with different true lengths (relative gap >= min_gap) that the scores order correctly.

    A tie in the scores counts as half right (a coin flip). NaN when no pair qualifies.
    """
    if not 0.0 <= min_gap < 1.0:
        raise ValueError(f"min_gap must be in [0, 1), got {min_gap}")
    p, t = _as_pair(pred, true)
    right = 0.0
    total = 0
    for start in range(0, max(p.shape[0] - 1, 0), _BLOCK):
        stop = min(start + _BLOCK, p.shape[0] - 1)
        rows = np.arange(start, stop)
        upper = np.arange(p.shape[0])[None, :] > rows[:, None]
        ti, tj = t[rows, None], t[None, :]
        gap = np.abs(ti - tj) / np.maximum(np.maximum(ti, tj), 1e-12)
        keep = upper & (ti != tj) & (gap >= min_gap)
        sp = np.sign(p[rows, None] - p[None, :])[keep]
        st = np.sign(ti - tj)[keep]
        right += float((sp == st).sum()) + 0.5 * float((sp == 0).sum())
        total += int(keep.sum())
    return right / total if total else float("nan")
