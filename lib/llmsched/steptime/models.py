"""Step-time models: how long one engine step (one forward pass over the scheduled batch) takes.

The simulator calls `step_time(prefill_tokens, decode_seqs, kv_tokens, num_seqs)` once per engine step with
    prefill_tokens  tokens of prompt (or re-prefill) chunks in the step
    decode_seqs     requests decoding one token in the step (each contributes one token)
    kv_tokens       context tokens attended in the step: sum over scheduled requests of the tokens computed
                    once the step is done (earlier context + this step's tokens); the KV cache the
                    attention kernels read
    num_seqs        requests scheduled in the step
and expects seconds (finite, >= 0). A model must be a pure function of these numbers: the simulator relies
on that for determinism and for advancing many identical decode steps at once.

Two models:
    LinearStepTime    t = c0 + c_prefill * prefill_tokens + c_decode * decode_seqs + c_kv * kv_tokens,
                      coefficients fitted to measured step times of the real engine (calibration) or set by
                      hand (tests)
    AnalyticStepTime  a roofline from hardware and model numbers (below); no measurement needed
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


def _number(owner: str, name: str, value: Any, *, positive: bool = False, at_most: float | None = None) -> float:
    """`value` as a finite float >= 0 (> 0 with positive, <= at_most); ValueError naming owner.name otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{owner}.{name} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{owner}.{name} must be finite, got {value!r}")
    if x < 0 or (positive and x == 0):
        raise ValueError(f"{owner}.{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    if at_most is not None and x > at_most:
        raise ValueError(f"{owner}.{name} must be <= {at_most}, got {value!r}")
    return x


class StepTimeModel(ABC):
    """Duration of one engine step, from the shape of the scheduled batch (see the module docstring)."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def step_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int, num_seqs: int) -> float:
        """Seconds the engine spends on one step with this batch."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-able parameters, {"kind": ..., ...}: recorded beside simulation results."""


@dataclass(frozen=True)
class LinearStepTime(StepTimeModel):
    """t = c0 + c_prefill * prefill_tokens + c_decode * decode_seqs + c_kv * kv_tokens  (seconds).

    c0          fixed cost of a step (scheduling, launch, sampling of an empty batch)      s
    c_prefill   cost per prefill token (GEMMs over the chunk)                             s / token
    c_decode    cost per decoding sequence (one token through the GEMMs + sampling)       s / sequence
    c_kv        cost per context token attended (KV-cache reads)                          s / token
    All must be finite and >= 0. Unset coefficients are 0 here; a JSON profile must give all four.
    """

    kind: ClassVar[str] = "linear"
    COEFFICIENTS: ClassVar[tuple[str, ...]] = ("c0", "c_prefill", "c_decode", "c_kv")

    c0: float = 0.0
    c_prefill: float = 0.0
    c_decode: float = 0.0
    c_kv: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _number("LinearStepTime", f.name, getattr(self, f.name)))

    def step_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int, num_seqs: int) -> float:
        return self.c0 + self.c_prefill * prefill_tokens + self.c_decode * decode_seqs + self.c_kv * kv_tokens

    @classmethod
    def from_dict(cls, coefficients: Mapping[str, Any]) -> LinearStepTime:
        """From {"c0": ..., "c_prefill": ..., "c_decode": ..., "c_kv": ...}; every key is required."""
        if not isinstance(coefficients, Mapping):
            raise ValueError(f"linear step-time coefficients must be a mapping, got {coefficients!r}")
        missing = [k for k in cls.COEFFICIENTS if k not in coefficients]
        if missing:
            raise ValueError(f"linear step-time profile is missing coefficient(s) {missing}; needs {cls.COEFFICIENTS}")
        unknown = sorted(set(coefficients) - set(cls.COEFFICIENTS))
        if unknown:
            raise ValueError(
                f"linear step-time profile has unknown coefficient(s) {unknown}; valid: {cls.COEFFICIENTS}"
            )
        return cls(**{k: coefficients[k] for k in cls.COEFFICIENTS})

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class AnalyticStepTime(StepTimeModel):
    """A roofline step time from hardware and model numbers.

        tokens    = prefill_tokens + decode_seqs
        compute   = 2 * params * tokens / (tp * peak_flops * mfu)
        memory    = (weight_bytes + kv_bytes_per_token * kv_tokens) / (tp * hbm_bw * mbu)
        step time = max(compute, memory) + overhead_s + overhead_per_seq_s * num_seqs

    params              model parameters (all GPUs together)
    weight_bytes        bytes of the weights read once per step (all GPUs together)
    kv_bytes_per_token  KV-cache bytes of one token over all layers: 2 (K and V) * layers * kv_heads * head_dim
                        * dtype bytes (all GPUs together)
    peak_flops          dense BF16 peak of one GPU, FLOP/s
    hbm_bw              HBM bandwidth of one GPU, bytes/s
    mfu, mbu            achieved fractions of peak compute and bandwidth (assumptions, in (0, 1])
    tp                  tensor-parallel GPUs; work and bytes split evenly, communication not modelled
    overhead_s          fixed per-step time (CPU scheduling, kernel launches, sampling)
    overhead_per_seq_s  per-request per-step time (input preparation, detokenisation)

    Simplifications: attention FLOPs (4 * layers * hidden * context per token) are left out of `compute`
    (a few percent at ShareGPT lengths); KV writes of new tokens and activations are left out of `memory`;
    tensor-parallel all-reduce time is absorbed in mfu/mbu.
    """

    kind: ClassVar[str] = "analytic"

    params: float
    weight_bytes: float
    kv_bytes_per_token: float
    peak_flops: float
    hbm_bw: float
    mfu: float = 0.5
    mbu: float = 0.7
    tp: int = 1
    overhead_s: float = 0.0
    overhead_per_seq_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("params", "weight_bytes", "kv_bytes_per_token", "peak_flops", "hbm_bw"):
            object.__setattr__(self, name, _number("AnalyticStepTime", name, getattr(self, name), positive=True))
        for name in ("mfu", "mbu"):
            object.__setattr__(self, name, _number("AnalyticStepTime", name, getattr(self, name), positive=True,
                                                   at_most=1.0))
        for name in ("overhead_s", "overhead_per_seq_s"):
            object.__setattr__(self, name, _number("AnalyticStepTime", name, getattr(self, name)))
        if isinstance(self.tp, bool) or not isinstance(self.tp, int) or self.tp < 1:
            raise ValueError(f"AnalyticStepTime.tp must be an integer >= 1, got {self.tp!r}")
        # Precomputed per-unit times: the per-step call is a handful of float operations.
        object.__setattr__(self, "_s_per_token", 2.0 * self.params / (self.tp * self.peak_flops * self.mfu))
        object.__setattr__(self, "_s_weights", self.weight_bytes / (self.tp * self.hbm_bw * self.mbu))
        object.__setattr__(self, "_s_per_kv", self.kv_bytes_per_token / (self.tp * self.hbm_bw * self.mbu))

    def step_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int, num_seqs: int) -> float:
        compute = self._s_per_token * (prefill_tokens + decode_seqs)  # type: ignore[attr-defined]
        memory = self._s_weights + self._s_per_kv * kv_tokens  # type: ignore[attr-defined]
        return max(compute, memory) + self.overhead_s + self.overhead_per_seq_s * num_seqs

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}


def step_time_from_dict(d: Mapping[str, Any]) -> StepTimeModel:
    """Inverse of `to_dict`: {"kind": "linear", c0, ...} or {"kind": "analytic", params, ...}."""
    kind = d.get("kind") if isinstance(d, Mapping) else None
    rest = {k: v for k, v in d.items() if k != "kind"} if isinstance(d, Mapping) else {}
    if kind == LinearStepTime.kind:
        return LinearStepTime.from_dict(rest)
    if kind == AnalyticStepTime.kind:
        valid = {f.name for f in fields(AnalyticStepTime)}
        unknown = sorted(set(rest) - valid)
        if unknown:
            raise ValueError(f"analytic step-time model has unknown field(s) {unknown}; valid: {sorted(valid)}")
        try:
            return AnalyticStepTime(**rest)
        except TypeError as e:
            raise ValueError(f"analytic step-time model: {e}") from None
    raise ValueError(f"step-time model kind must be 'linear' or 'analytic', got {kind!r}")
