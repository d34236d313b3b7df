"""Predictor-free baselines: prompt length, random order, and the oracle (true lengths)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmsched.predictors.base import Predictor


class PromptLengthPredictor(Predictor):
    """Score = prompt length (tokens of `tokenizer`, or whitespace-separated words without one).

    The "longer question, longer answer" heuristic; the prompt-length SJF policy orders by the same quantity.
    """

    name = "prompt-length"

    def __init__(self, tokenizer: Any | str | Path | None = None) -> None:
        if isinstance(tokenizer, str | Path):
            from llmsched.workload.tokens import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer = tokenizer

    def _score(self, prompts: list[str]) -> np.ndarray:
        if self.tokenizer is None:
            return np.array([len(p.split()) for p in prompts], dtype=np.float64)
        from llmsched.workload.tokens import count_tokens

        return np.asarray(count_tokens(self.tokenizer, prompts, add_special_tokens=True), dtype=np.float64)


class RandomPredictor(Predictor):
    """Uniform random scores from a seeded generator: the no-information baseline (tau ≈ 0)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def _score(self, prompts: list[str]) -> np.ndarray:
        return self.rng.random(len(prompts))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "seed": self.seed}


class OraclePredictor(Predictor):
    """Score = the true response length, looked up by prompt text: the upper bound for every ranker.

    Built from (prompt, length) pairs; scoring a prompt it was not given raises KeyError naming it. When one
    prompt text appears with several lengths, the mean is used.
    """

    name = "oracle"

    def __init__(self, lengths: Mapping[str, float] | Sequence[tuple[str, float]]) -> None:
        items = lengths.items() if isinstance(lengths, Mapping) else lengths
        sums: dict[str, list[float]] = {}
        for prompt, length in items:
            if not np.isfinite(float(length)) or float(length) < 0:
                raise ValueError(f"oracle length must be finite and >= 0, got {length!r}")
            sums.setdefault(prompt, []).append(float(length))
        self.lengths = {p: float(np.mean(v)) for p, v in sums.items()}

    def _score(self, prompts: list[str]) -> np.ndarray:
        try:
            return np.array([self.lengths[p] for p in prompts], dtype=np.float64)
        except KeyError as e:
            shown = str(e.args[0])[:60]
            raise KeyError(f"oracle has no length for prompt {shown!r}...") from None
