"""Bayesian meta-optimisation of EWSJF's parameters Θ = {a_u, b_u, a_f, b_f, alpha} with Optuna.

Objective (maximised): R = λ1·C + λ2·L − λ3·S − λ4·U, each term a measurable quantity in [0, 1] or a ratio:
    C  compactness     1 − the count-weighted mean coefficient of variation (std / mean) of prompt lengths inside
                       each queue of the partition, clipped to [0, 1]: tight queues → 1
    L  load balance    normalized entropy of the queues' request counts (1 = equal counts; 1 queue → 1)
    S  queue penalty   number of queues / max_queues
    U  latency penalty offline: mean TTFT under EWSJF / mean TTFT under FCFS on the same simulated workload;
                       online: mean admission wait of the window / the first window's (a reference of 1)
Default λ = (1.0, 0.5, 0.5, 2.0): latency dominates, structure terms keep the partition sensible. The values are
a choice of this artifact (the paper does not publish its λ); pass others to `Objective`.

`optimize` runs a seeded TPE sampler on a study stored in sqlite (a rerun with the same storage and name
resumes: it adds trials up to n_trials in total) and returns the trial history (for convergence plots).
`OnlineTuner` re-tunes while serving: every `every_s` seconds of the engine clock it scores the window that
just ended with the parameters in force, tells the study, and installs the next trial's parameters with
`EWSJFQueue.set_params`: the scoring weights act from the next admission order on, and a changed α re-partitions
the live queues on the arrival window (Refine-and-Prune), so every tuned parameter acts on decisions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.policies.ewsjf.partition import Partition
from llmsched.policies.ewsjf.scoring import EWSJFParams

logger = logging.getLogger(__name__)

# Search space: name -> (low, high). Slopes act on mean lengths of hundreds to thousands of tokens.
SPACE: dict[str, tuple[float, float]] = {
    "a_u": (-1e-3, 1e-3), "b_u": (0.0, 5.0), "a_f": (-1e-3, 1e-3), "b_f": (0.0, 2.0), "alpha": (2.0, 20.0),
}
LAMBDAS = (1.0, 0.5, 0.5, 2.0)


def compactness(part: Partition) -> float:
    counts = np.array([s.count for s in part.stats], dtype=float)
    if counts.sum() == 0:
        return 1.0
    cv = np.array([s.std / s.mean if s.mean > 0 else 0.0 for s in part.stats])
    return float(np.clip(1.0 - (cv * counts).sum() / counts.sum(), 0.0, 1.0))


def balance(counts: Sequence[float]) -> float:
    c = np.asarray(counts, dtype=float)
    c = c[c > 0]
    if len(c) <= 1:
        return 1.0
    p = c / c.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(c)))


def reward(c: float, l: float, s: float, u: float, lambdas: Sequence[float] = LAMBDAS) -> float:  # noqa: E741
    terms = (c, l, s, u)
    if not all(math.isfinite(t) for t in terms):
        return -math.inf
    l1, l2, l3, l4 = lambdas
    return l1 * c + l2 * l - l3 * s - l4 * u


def suggest(trial: Any) -> EWSJFParams:
    return EWSJFParams(**{k: trial.suggest_float(k, lo, hi) for k, (lo, hi) in SPACE.items()})


def _study(storage: str | Path | None, name: str, seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = None
    if storage is not None:
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{Path(storage).resolve()}"
    return optuna.create_study(study_name=name, storage=url, load_if_exists=True, direction="maximize",
                               sampler=optuna.samplers.TPESampler(seed=seed))


def history(study: Any) -> pd.DataFrame:
    """One row per finished trial: number, value, best value so far, parameters, user attributes."""
    rows = []
    for t in study.trials:
        if t.value is None:
            continue
        rows.append({"trial": t.number, "value": t.value, **t.params, **t.user_attrs})
    df = pd.DataFrame(rows)
    if len(df):
        df["best_so_far"] = df["value"].cummax()
    return df


def optimize(objective: Callable[[EWSJFParams], float | tuple[float, dict[str, float]]], n_trials: int,
             seed: int, storage: str | Path | None = None, name: str = "ewsjf",
             first: EWSJFParams | None = None) -> tuple[EWSJFParams, pd.DataFrame]:
    """Maximise `objective(params)` (a value, or (value, terms to record)) with seeded TPE; resumable.

    `first` (default: EWSJFParams()) is evaluated as trial 0 of a new study, so the history shows the gain over
    the untuned defaults. Returns the best parameters and the trial history.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    study = _study(storage, name, seed)
    if not study.trials:
        base = (first or EWSJFParams()).to_dict()
        study.enqueue_trial({k: min(max(base[k], lo), hi) for k, (lo, hi) in SPACE.items()})
    done = len([t for t in study.trials if t.value is not None])

    def run(trial: Any) -> float:
        out = objective(suggest(trial))
        value, attrs = out if isinstance(out, tuple) else (out, {})
        for k, v in attrs.items():
            trial.set_user_attr(k, float(v))
        return float(value) if math.isfinite(value) else -1e9

    if n_trials > done:
        study.optimize(run, n_trials=n_trials - done)
    best = EWSJFParams(**{k: study.best_params[k] for k in SPACE})
    return best, history(study)


class OnlineTuner:
    """Re-tunes a live EWSJFQueue every `every_s` seconds from its own feedback window (module docstring).

    Attach with EWSJFQueue(tuner=OnlineTuner(...)); the queue calls observe() at every engine step. The study
    lives in memory unless `storage` is given. A trial whose window saw no admissions is not told (no feedback).
    `log` has one row per scored window: its time, R and terms, the number of queues and the parameters in force.
    """

    def __init__(self, every_s: float = 60.0, seed: int = 0, storage: str | Path | None = None,
                 name: str = "ewsjf-online", lambdas: Sequence[float] = LAMBDAS) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0, got {every_s}")
        self.every_s, self.lambdas = every_s, lambdas
        self.study = _study(storage, name, seed)
        self.trial: Any = None
        self.window_start: float | None = None
        self.ref_wait: float | None = None
        self.log: list[dict[str, float]] = []

    def observe(self, queue: Any, now: float) -> None:
        if self.window_start is None:
            self.window_start = now
            return
        if now - self.window_start < self.every_s:
            return
        waits = [w for t, w in queue.admission_waits if self.window_start <= t <= now]
        if waits:
            mean_wait = float(np.mean(waits))
            if self.ref_wait is None:
                self.ref_wait = max(mean_wait, 1e-6)
            counts = [q.live for q in queue.queues]
            part = Partition(tuple(_window_stats(queue)))
            terms = {"C": compactness(part), "L": balance(counts), "S": len(queue.queues) / queue.max_queues,
                     "U": mean_wait / self.ref_wait}
            value = reward(terms["C"], terms["L"], terms["S"], terms["U"], self.lambdas)
            if self.trial is not None:
                self.study.tell(self.trial, value if math.isfinite(value) else -1e9)
            self.log.append({"time": now, "value": value, **terms, "n_queues": len(queue.queues),
                             **queue.params.to_dict()})
            self.trial = self.study.ask()
            queue.set_params(suggest(self.trial))
        self.window_start = now


def _window_stats(queue: Any):
    from llmsched.policies.ewsjf.partition import QueueStats

    lengths = np.asarray(queue.window, dtype=float)
    for q in queue.queues:
        x = lengths[(lengths >= q.lo) & (lengths <= q.hi)]
        if len(x):
            yield QueueStats(q.lo, q.hi, len(x), float(x.mean()), float(x.std()), float(len(x)))
