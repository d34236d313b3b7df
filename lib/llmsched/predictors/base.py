"""The predictor interface and the step that attaches scores to requests before they reach the engine.

A predictor maps prompts to scores: `score(prompts) -> np.ndarray`, one float per prompt, lower = shorter
expected response. Predictors never run inside the scheduler loop; `score_requests` scores a workload once, in
batches, and stores each score in the request's hints, which travel to the engine in
`SamplingParams.extra_args` (over HTTP: `vllm_xargs`) and to the simulator unchanged.

Bad input never loses a request. `score_requests` leaves a request unscored (the score-SJF queue then serves
it after the scored ones, in arrival order: the FCFS fallback) when its prompt is not usable text, when the
predictor returns NaN or an infinite score for it, or when the predictor raises on its batch. Each case is
counted in the returned `ScoreReport`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from llmsched.workload.request import Request

logger = logging.getLogger(__name__)

# Reasons a request is left unscored (keys of ScoreReport.unscored).
NOT_TEXT = "prompt is not text"
BLANK = "prompt is empty or whitespace"
NON_FINITE = "predictor returned a non-finite score"
PREDICTOR_ERROR = "predictor raised"


def prompt_problem(prompt: object) -> str:
    """Why `prompt` cannot be scored, or "" when it can."""
    if not isinstance(prompt, str):
        return NOT_TEXT
    if not prompt.strip():
        return BLANK
    return ""


def check_prompts(prompts: Sequence[object]) -> list[str]:
    """The prompts as a list of str; ValueError naming the first few bad positions otherwise."""
    if isinstance(prompts, str):
        raise ValueError("prompts must be a sequence of strings, got a single str")
    bad = [(i, prompt_problem(p)) for i, p in enumerate(prompts)]
    bad = [(i, why) for i, why in bad if why]
    if bad:
        shown = ", ".join(f"#{i}: {why}" for i, why in bad[:5])
        raise ValueError(f"{len(bad)} of {len(prompts)} prompts cannot be scored ({shown})")
    return list(prompts)  # type: ignore[arg-type]


class Predictor(ABC):
    """Scores prompts by expected response length: lower = shorter. Batched; deterministic after construction.

    Subclasses implement `_score(prompts)` on prompts already checked by `check_prompts`; `score` validates the
    input (ValueError for non-text or blank prompts) and the output's shape.
    """

    name: str = ""

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        checked = check_prompts(prompts)
        if not checked:
            return np.zeros(0, dtype=np.float64)
        out = np.asarray(self._score(checked), dtype=np.float64).reshape(-1)
        if out.shape != (len(checked),):
            raise RuntimeError(f"{type(self).__name__} returned {out.shape[0]} scores for {len(checked)} prompts")
        return out

    @abstractmethod
    def _score(self, prompts: list[str]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]:
        """What identifies this predictor in result files."""
        return {"name": self.name, "class": type(self).__name__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@dataclass
class ScoreReport:
    """What `score_requests` did: how many requests got a score, and why the others did not."""

    predictor: str
    n_requests: int = 0
    scored: int = 0
    unscored: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # first few predictor exceptions, as text
    seconds: float = 0.0

    @property
    def per_request_ms(self) -> float:
        return 1000.0 * self.seconds / max(self.n_requests, 1)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["unscored"] = dict(self.unscored)
        d["per_request_ms"] = self.per_request_ms
        return d

    def summary(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in self.unscored.most_common()) or "none"
        return (f"{self.predictor}: scored {self.scored}/{self.n_requests} requests in {self.seconds:.2f} s "
                f"({self.per_request_ms:.2f} ms/request); unscored (served FCFS after scored ones): {why}")


def score_requests(
    requests: Sequence[Request],
    predictor: Predictor,
    key: str = "score",
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[list[Request], ScoreReport]:
    """Copies of `requests` with `hints[key]` set to the predictor's score, plus a report.

    Every request is returned, in the given order. Requests that cannot be scored keep their hints without
    `key` (an existing value under `key` is removed, so a stale score never survives) and are counted by reason.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    report = ScoreReport(predictor=predictor.name or type(predictor).__name__, n_requests=len(requests))
    scores: list[float | None] = [None] * len(requests)
    usable: list[int] = []
    for i, r in enumerate(requests):
        why = prompt_problem(r.prompt)
        if why:
            report.unscored[why] += 1
        else:
            usable.append(i)
    t0 = time.perf_counter()
    batches = range(0, len(usable), batch_size)
    for start in tqdm(batches, desc=f"score {report.predictor}", disable=not progress, unit="batch"):
        idx = usable[start:start + batch_size]
        try:
            out = predictor.score([requests[i].prompt for i in idx])
        except Exception as e:  # noqa: BLE001 - a failing predictor must not lose requests
            report.unscored[PREDICTOR_ERROR] += len(idx)
            if len(report.errors) < 5:
                report.errors.append(f"{type(e).__name__}: {e}")
            logger.warning("predictor %s failed on a batch of %d: %s", report.predictor, len(idx), e)
            continue
        for i, s in zip(idx, out, strict=True):
            if np.isfinite(s):
                scores[i] = float(s)
            else:
                report.unscored[NON_FINITE] += 1
    report.seconds = time.perf_counter() - t0
    scored: list[Request] = []
    for r, s in zip(requests, scores, strict=True):
        hints = {k: v for k, v in r.hints.items() if k != key}
        if s is not None:
            hints[key] = s
            report.scored += 1
        scored.append(dataclasses.replace(r, hints=hints))
    if report.unscored:
        logger.warning("%s", report.summary())
    else:
        logger.info("%s", report.summary())
    return scored, report
