"""Refine-and-Prune: unsupervised partitioning of prompt lengths into queues (EWSJF).

    part = refine_and_prune(lengths, alpha=8.0, max_queues=8)
    part.bounds   -> [(lo, hi), ...] per queue, ascending
    part.stats    -> per queue: count, mean, std, density

1. K-means with k = 3 on the lengths (1-D Lloyd iterations from quantile centres: deterministic).
2. Refine: inside each cluster (sorted), split at the largest gap when it exceeds alpha × the cluster's mean gap
   and both sides keep at least max(min_size, min_fraction × cluster size) points and the cluster is at least
   `min_width` tokens wide; recurse. NOTE: the fraction keeps the sparse tails of one mode (whose gaps exceed a
   few mean gaps) from being cut off as queues of their own.
3. Prune: while there are more than `max_queues` clusters, merge the adjacent pair with the lowest utility
   U = (rho_i + rho_i+1) / (|mean_i+1 - mean_i| + eps), rho = density = requests per second of the window
   (count / window_s), or the count when no window length is given.

Degenerate samples (empty, all equal, fewer distinct values than k, zeros) never raise mid-serving: an empty
sample is a ValueError from this function (callers fall back to one queue), and few distinct values give fewer
clusters (down to a single queue).

NOTE: step 1 stays hand-written rather than `sklearn.cluster.KMeans` (measured with scikit-learn 1.9.1 on a
shared 2-core machine). Given the same quantile centres as `init`, n_init=1, algorithm="lloyd", max_iter=50 and
tol=0 (stop when no label changes, as here), KMeans found the same clusters, and refine_and_prune the same
partitions, on 149 samples: ShareGPT prompt lengths (words × 1.3), ShareGPT-like lognormals, the 100-2000 and
100-16000 mixes (bimodal and uniform), 200 to 2,000 lengths each, the EWSJF smoke run's prompt lengths and the test
inputs. It differs only on exact ties (a length at the midpoint between two centres goes to the lower cluster,
here to the upper one) and on empty clusters (relocated there, dropped here). It is slower where this runs, in
the engine's scheduling step: on 2,000 lengths 2.0-4.1 ms in one thread against 0.9-2.9 ms here; with its
default OpenMP threads and the other core busy (as in a vLLM CPU engine, whose model threads hold every core)
100-350 ms; the repartition of 10,000 lengths in artifact/benchmarks/ewsjf_overhead.py 47-160 ms against 2-4 ms
(target <= 50 ms). `import sklearn.cluster` alone takes ~2 s (all of llmsched.policies 0.25 s), and its first
fit ~0.4 s once torch is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EPS = 1e-9
DEFAULT_MAX_QUEUES = 8  # Refine-and-Prune's cap on the number of queues, unless a caller sets one


@dataclass(frozen=True)
class QueueStats:
    lo: float
    hi: float
    count: int
    mean: float
    std: float
    density: float  # requests per second of the window (or per window when no duration is known)


@dataclass(frozen=True)
class Partition:
    stats: tuple[QueueStats, ...]

    @property
    def bounds(self) -> list[tuple[float, float]]:
        return [(s.lo, s.hi) for s in self.stats]

    def __len__(self) -> int:
        return len(self.stats)

    @staticmethod
    def single(lengths: Sequence[float] = ()) -> Partition:
        """One queue holding everything: the fallback partition."""
        x = np.asarray(lengths, dtype=np.float64)
        if x.size == 0:
            return Partition((QueueStats(0.0, math.inf, 0, 0.0, 0.0, 0.0),))
        return Partition((QueueStats(float(x.min()), float(x.max()), int(x.size), float(x.mean()), float(x.std()),
                                     float(x.size)),))


def kmeans_1d(x: np.ndarray, k: int, iters: int = 50) -> list[np.ndarray]:
    """Clusters of sorted 1-D data as contiguous sorted arrays (Lloyd's algorithm; empty clusters dropped)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    k = min(k, len(np.unique(x)))
    if k <= 1:
        return [x]
    # NOTE: centres start at quantiles of the distinct values, so heavily repeated values (common with
    # synthetic lengths) do not collapse the initial centres onto each other.
    centres = np.quantile(np.unique(x), (np.arange(k) + 0.5) / k)
    labels = np.zeros(len(x), dtype=np.int64)
    for _ in range(iters):
        # in 1-D the nearest centre splits the sorted data at the midpoints between sorted centres; NOTE: a
        # length exactly on a midpoint joins the upper cluster (side="right")
        centres = np.unique(centres)
        mids = (centres[:-1] + centres[1:]) / 2
        new = np.searchsorted(mids, x, side="right")
        if np.array_equal(new, labels) and len(centres) == k:
            break
        labels = new
        centres = np.array([x[labels == j].mean() for j in np.unique(labels)])
    return [x[labels == j] for j in np.unique(labels)]


def _refine(c: np.ndarray, alpha: float, min_size: int, min_width: float, min_fraction: float) -> list[np.ndarray]:
    min_size = max(min_size, int(np.ceil(min_fraction * len(c))))
    if len(c) < 2 * min_size or c[-1] - c[0] < min_width:
        return [c]
    gaps = np.diff(c)
    mean_gap = gaps.mean()
    # candidate cut positions keep min_size points on both sides
    lo, hi = min_size - 1, len(c) - min_size
    if hi <= lo or mean_gap <= 0:
        return [c]
    j = lo + int(np.argmax(gaps[lo:hi]))
    if gaps[j] <= alpha * mean_gap:
        return [c]
    return (_refine(c[: j + 1], alpha, min_size, min_width, min_fraction)
            + _refine(c[j + 1:], alpha, min_size, min_width, min_fraction))


def _stats(c: np.ndarray, window_s: float | None) -> QueueStats:
    rate = len(c) / window_s if window_s else float(len(c))
    return QueueStats(float(c[0]), float(c[-1]), len(c), float(c.mean()), float(c.std()), rate)


def refine_and_prune(
    lengths: Sequence[float],
    alpha: float = 8.0,
    max_queues: int = DEFAULT_MAX_QUEUES,
    k: int = 3,
    min_size: int = 5,
    min_width: float = 16.0,
    min_fraction: float = 0.05,
    window_s: float | None = None,
) -> Partition:
    """Partition prompt lengths into at most `max_queues` contiguous ranges (see the module docstring)."""
    x = np.asarray(lengths, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("no lengths to partition (empty window)")
    if not np.isfinite(x).all() or (x < 0).any():
        raise ValueError("lengths must be finite and >= 0")
    for name, v, ok in (("alpha", alpha, math.isfinite(alpha) and alpha > 0), ("max_queues", max_queues,
                        max_queues >= 1), ("k", k, k >= 1), ("min_size", min_size, min_size >= 1),
                        ("min_width", min_width, min_width >= 0),
                        ("window_s", window_s, window_s is None or window_s > 0)):
        if not ok:
            raise ValueError(f"{name} is out of range: {v!r}")
    clusters = [r for c in kmeans_1d(x, k) for r in _refine(c, alpha, min_size, min_width, min_fraction)]
    while len(clusters) > max_queues:
        st = [_stats(c, window_s) for c in clusters]
        util = [(st[i].density + st[i + 1].density) / (abs(st[i + 1].mean - st[i].mean) + EPS)
                for i in range(len(st) - 1)]
        i = int(np.argmin(util))
        clusters[i: i + 2] = [np.concatenate(clusters[i: i + 2])]
    return Partition(tuple(_stats(c, window_s) for c in clusters))
