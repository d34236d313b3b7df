"""EWSJF's mixed prompt-length workload: real text cut to lengths drawn in [lo, hi] tokens, short outputs.

The EWSJF experiments mix short and long prompts so that the waiting queue holds requests of very different
prefill cost. Presets: "100-2000" and "100-16000" (prompt tokens). Prompt length distributions:

    uniform   integer lengths uniform in [lo, hi]
    bimodal   a mix of short and long prompts: with probability `short_fraction` uniform in the lowest
              `mode_width` of the range, [lo, lo + w], otherwise uniform in the highest, [hi - w, hi], with
              w = round(mode_width * (hi - lo)). Defaults 0.7 and 0.1: 70 % short, 30 % long.

Output lengths (reference, e.g. for max_tokens) are uniform integers in [output_lo, output_hi], default
[1, 100]. Prompts are made of real text (a pool of prompt texts, e.g. ShareGPT prompts) with `TokenPool`, so
each prompt_tokens is the tokenizer's count of its text, special tokens included, equal to the drawn length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .arrivals import Seed
from .request import Request
from .tokens import TokenPool

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PRESETS: dict[str, tuple[int, int]] = {"100-2000": (100, 2000), "100-16000": (100, 16000)}
DISTRIBUTIONS = ("uniform", "bimodal")


@dataclass(frozen=True)
class MixedConfig:
    """Parameters of a mixed prompt-length workload (validated on construction)."""

    n: int = 1000  # number of requests
    lo: int = 100  # shortest prompt, tokens
    hi: int = 2000  # longest prompt, tokens
    distribution: str = "uniform"  # "uniform" or "bimodal"
    short_fraction: float = 0.7  # bimodal: share of short prompts
    mode_width: float = 0.1  # bimodal: width of each mode as a fraction of hi - lo
    output_lo: int = 1  # shortest reference output, tokens
    output_hi: int = 100  # longest reference output, tokens

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if not 1 <= self.lo <= self.hi:
            raise ValueError(f"need 1 <= lo <= hi, got lo={self.lo}, hi={self.hi}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {self.distribution!r}; valid: {', '.join(DISTRIBUTIONS)}")
        if not 0.0 <= self.short_fraction <= 1.0:
            raise ValueError(f"short_fraction must be in [0, 1], got {self.short_fraction}")
        if not 0.0 < self.mode_width <= 0.5:
            raise ValueError(f"mode_width must be in (0, 0.5], got {self.mode_width}")
        if not 0 <= self.output_lo <= self.output_hi:
            raise ValueError(f"need 0 <= output_lo <= output_hi, got {self.output_lo}, {self.output_hi}")

    @classmethod
    def preset(cls, name: str, **overrides: object) -> MixedConfig:
        """The [lo, hi] of a named preset ("100-2000", "100-16000"), with other fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
        lo, hi = PRESETS[name]
        return cls(lo=lo, hi=hi, **overrides)  # type: ignore[arg-type]

    @property
    def source(self) -> str:
        return f"mixed-{self.lo}-{self.hi}"


def draw_prompt_lengths(cfg: MixedConfig, rng: np.random.Generator) -> np.ndarray:
    """n prompt lengths in [lo, hi] following cfg.distribution."""
    if cfg.distribution == "uniform":
        return rng.integers(cfg.lo, cfg.hi, size=cfg.n, endpoint=True)
    w = round(cfg.mode_width * (cfg.hi - cfg.lo))
    short = rng.random(cfg.n) < cfg.short_fraction
    low = rng.integers(cfg.lo, cfg.lo + w, size=cfg.n, endpoint=True)
    high = rng.integers(cfg.hi - w, cfg.hi, size=cfg.n, endpoint=True)
    return np.where(short, low, high)


def mixed_workload(cfg: MixedConfig, tokenizer: PreTrainedTokenizerBase, pool: Sequence[str] | TokenPool,
                   seed: Seed) -> list[Request]:
    """Requests of the mixed workload (arrival_time 0: give them times with `assign_arrivals`).

    pool   real prompt texts (or a TokenPool of the same tokenizer) to cut prompts from
    seed   int or numpy Generator; the same seed, pool and tokenizer give the same workload
    Raises ValueError when cfg.lo is below what the tokenizer can produce (one token plus special tokens).
    """
    token_pool = pool if isinstance(pool, TokenPool) else TokenPool(tokenizer, pool)
    if cfg.lo < token_pool.min_tokens:
        raise ValueError(f"lo={cfg.lo} is below the shortest possible prompt, {token_pool.min_tokens} tokens")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lengths = draw_prompt_lengths(cfg, rng)
    outputs = rng.integers(cfg.output_lo, cfg.output_hi, size=cfg.n, endpoint=True)
    texts, counts = token_pool.texts(lengths.tolist(), rng)
    return [Request(request_id=f"{cfg.source}-{i}", prompt=text, prompt_tokens=count, output_tokens=int(out),
                    source=cfg.source)
            for i, (text, count, out) in enumerate(zip(texts, counts, outputs, strict=True))]


def repeat_requests(requests: Sequence[Request], n: int, *, seed: int) -> list[Request]:
    """n requests drawn from `requests` by cycling through a seeded permutation of them, a new one per cycle
    (ids made unique: `<id>~<cycle>`): a larger workload from the same prompts.

    Every prompt appears once per full cycle, so each seed's workload holds the prompts in the same proportions;
    the seed decides their order and which prompts fill the last, partial cycle. The same seed gives the same
    requests."""
    import dataclasses

    if not requests:
        raise ValueError("no requests to repeat")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    rng = np.random.default_rng(seed)
    m = len(requests)
    out = []
    for cycle in range((n + m - 1) // m):
        for i in rng.permutation(m)[: n - cycle * m]:
            r = requests[int(i)]
            out.append(dataclasses.replace(r, request_id=f"{r.request_id}~{cycle}"))
    return out
