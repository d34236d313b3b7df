"""Density-weighted scoring of EWSJF queues and its parameters.

For the head request of queue q (prompt length b, waiting time W seconds), with n queues and q's index i
(0 = shortest prompts) and q's mean length b̄:

    Score = qf · (w_base + w_urg(b̄) · W / C_prefill(b) + w_fair(b̄) · log(b + 1))
    qf = (n − i) / (b + 1),   w_urg(b̄) = a_u · b̄ + b_u,   w_fair(b̄) = a_f · b̄ + b_f

C_prefill(b) is the step-time model's time for a prefill of b tokens (seconds; a calibrated or analytic
profile of llmsched.steptime, handed to the queue as a StepTimeModel), so W / C_prefill is the wait in units of
the request's own prefill time. The queue with the highest score is served first. NOTE: negative weights
(possible for some b̄ with a_u or a_f < 0) are clamped to 0, so a tuned parameter set can switch a term off but
never invert it.

The authors' released code scores differently (kept as `released_score` for comparison):
    wait × (1 + 0.5 · ln(b + 1)) × step / (⌊b / step⌋ + 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from llmsched.steptime.models import StepTimeModel


@dataclass(frozen=True)
class EWSJFParams:
    """The tunable parameters Θ = {a_u, b_u, a_f, b_f, alpha} (+ w_base). Validated: finite, alpha > 0."""

    a_u: float = 0.0
    b_u: float = 1.0
    a_f: float = 0.0
    b_f: float = 0.1
    w_base: float = 1.0
    alpha: float = 8.0

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"EWSJF parameter {k} must be a finite number, got {v!r}")
        if self.alpha <= 0:
            raise ValueError(f"EWSJF parameter alpha must be > 0, got {self.alpha!r}")
        if self.w_base < 0:
            raise ValueError(f"EWSJF parameter w_base must be >= 0, got {self.w_base!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> EWSJFParams:
        return cls(**(d or {}))


def ewsjf_score(params: EWSJFParams, n_queues: int, index: int, mean_len: float, b: int, wait: float,
                prefill_s: float) -> float:
    qf = (n_queues - index) / (b + 1)
    w_urg = max(0.0, params.a_u * mean_len + params.b_u)
    w_fair = max(0.0, params.a_f * mean_len + params.b_f)
    return qf * (params.w_base + w_urg * max(wait, 0.0) / max(prefill_s, 1e-9) + w_fair * math.log(b + 1))


def released_score(b: int, wait: float, step: int = 128) -> float:
    return max(wait, 0.0) * (1 + 0.5 * math.log(b + 1)) * step / (b // step + 1)


def prefill_cost(step_time: StepTimeModel) -> Callable[[int], float]:
    """b -> seconds of a b-token prefill step (alone in the batch) under `step_time` (memoised per b)."""

    @lru_cache(maxsize=65536)
    def cost(b: int) -> float:
        return float(step_time.step_time(int(b), 0, int(b), 1))

    return cost
