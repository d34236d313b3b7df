"""The predictors the ranker study compares, by name: one trained ranker per training objective, the
predictor-free baselines and the oracle.

    PREDICTORS["random"].make(0)                   # -> RandomPredictor(seed=0)
    PREDICTORS["oracle"].make([(prompt, 120.0)])   # -> OraclePredictor

Adding a predictor: its module (a `Predictor` subclass) and one entry here; `run_ranker_study` then scores it
on every evaluation target. A trained ranker is added as a training objective instead
(llmsched.predictors.objectives), and appears here by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from llmsched.predictors.base import Predictor
from llmsched.predictors.config import METHODS
from llmsched.predictors.heuristics import OraclePredictor, PromptLengthPredictor, RandomPredictor

Kind = Literal["trained", "baseline", "oracle"]
KINDS: tuple[Kind, ...] = ("trained", "baseline", "oracle")


@dataclass(frozen=True)
class PredictorEntry:
    """How the ranker study obtains one predictor.

    kind "trained":  trained by the study (train config method = the entry's name, on each training target); no
                     `build`
         "baseline": `make(seed)` once, without data; scored like the trained rankers
         "oracle":   `make(pairs)` once per evaluation target, from that target's (prompt, true length) pairs
    """

    kind: Kind
    build: Callable[..., Predictor] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if (self.build is None) != (self.kind == "trained"):
            raise ValueError(f"a {self.kind!r} predictor {'takes no' if self.kind == 'trained' else 'needs a'} build")

    def make(self, arg: Any) -> Predictor:
        """The predictor: of a "baseline" entry from the seed, of an "oracle" entry from (prompt, length) pairs."""
        if self.build is None:
            raise TypeError("a trained predictor is trained (llmsched.predictors.train_cached), not built")
        return self.build(arg)


PREDICTORS: dict[str, PredictorEntry] = {
    **{method: PredictorEntry("trained") for method in METHODS},
    "prompt-length": PredictorEntry("baseline", lambda seed: PromptLengthPredictor()),
    "random": PredictorEntry("baseline", lambda seed: RandomPredictor(seed=seed)),
    "oracle": PredictorEntry("oracle", OraclePredictor),
}


def names(kind: Kind) -> tuple[str, ...]:
    """The registered predictors of one kind, in registry order."""
    return tuple(name for name, entry in PREDICTORS.items() if entry.kind == kind)
