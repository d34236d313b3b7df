"""Training objectives, one class each, found by method name in `OBJECTIVES`.

    objective = OBJECTIVES[cfg.method](cfg)

An objective owns what differs between the methods: how an epoch is cut into batches, the loss of a batch (with
the labels it derives from the true lengths), the width of the network's output, and how raw outputs become one
score per prompt. Adding a training objective is one class here plus one line in `OBJECTIVES`; the method name
is then valid in `TrainConfig` and trained by the ranker study.

    pars       margin ranking on prompt pairs whose relative length gap is >= delta (pairwise)
    ltr        ListMLE over a batch, true order by length bucket (listwise)
    pointwise  MSE on standardized log(1 + length) (regression)
    classify   cross entropy over length buckets (quantiles of the training lengths)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llmsched.predictors import losses
from llmsched.predictors.pairs import filter_pairs, sample_pairs

if TYPE_CHECKING:
    from llmsched.predictors.config import TrainConfig

# The network's raw outputs for the prompts at the given indices (a training step's forward pass).
Outputs = Callable[[Sequence[int] | np.ndarray], torch.Tensor]


class LengthStats:
    """Label statistics of the training lengths only (no peeking at validation); recorded in every checkpoint."""

    def __init__(self, train_lengths: np.ndarray, n_classes: int) -> None:
        log = np.log1p(train_lengths)
        self.log_mean, self.log_std = float(log.mean()), float(log.std() or 1.0)
        qs = np.quantile(train_lengths, np.linspace(0, 1, n_classes + 1)[1:-1])
        self.class_edges = np.unique(qs)

    def to_dict(self) -> dict[str, Any]:
        return {"log_mean": self.log_mean, "log_std": self.log_std, "class_edges": self.class_edges.tolist()}


class Objective(ABC):
    """One training method. `train_ranker` makes one per run and calls, in order:

        n_outputs(stats)                             once, to size the network's head
        epoch_batches(train, lengths, rng)           once per epoch, all epochs before the first step
        loss(batch, outputs, lengths, stats, gen)    once per step; None skips the step (no usable pair)
        scores(out)                                  at each validation; `TrainedRanker.score` on every batch

    `train` holds prompt indices, `lengths` the true lengths of all prompts (indexed like `train`). The default
    batches are shuffled prompts, `batch_size` at a time (a last batch of one prompt is dropped).
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def n_outputs(self, stats: LengthStats) -> int:
        return 1

    def epoch_batches(self, train: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        order = train[rng.permutation(len(train))]
        size = self.cfg.batch_size
        return [order[s:s + size] for s in range(0, len(order), size) if len(order[s:]) >= 2]

    @abstractmethod
    def loss(self, batch: np.ndarray, outputs: Outputs, lengths: np.ndarray, stats: LengthStats,
             gen: torch.Generator) -> torch.Tensor | None: ...

    def scores(self, out: torch.Tensor) -> np.ndarray:
        """Raw outputs → one float64 score per prompt, higher = longer response."""
        return out.detach().numpy().astype(np.float64)


class PairwiseMargin(Objective):
    """PARS: max(0, -y (s_a - s_b) + margin) on pairs with relative length gap >= delta, y = +1 when a is longer.

    pair_sampling="partners": an epoch's batches are rows (a, b, y) of `pairs_per_prompt` random partners per
    prompt, drawn and shuffled up front; "in_batch": batches of prompts, every filtered pair inside a batch.
    """

    def epoch_batches(self, train: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        cfg = self.cfg
        if cfg.pair_sampling != "partners":
            return super().epoch_batches(train, lengths, rng)
        a, b, y = sample_pairs(lengths[train], cfg.delta, cfg.pairs_per_prompt, rng)
        pairs = np.stack([train[a], train[b], y], axis=1)
        pairs = pairs[rng.permutation(len(pairs))]
        return [pairs[s:s + cfg.batch_size] for s in range(0, len(pairs), cfg.batch_size)]

    def loss(self, batch: np.ndarray, outputs: Outputs, lengths: np.ndarray, stats: LengthStats,
             gen: torch.Generator) -> torch.Tensor | None:
        if self.cfg.pair_sampling == "partners":
            a, b, y = batch[:, 0].astype(int), batch[:, 1].astype(int), batch[:, 2]
        else:
            i, j = np.triu_indices(len(batch), k=1)
            a, b, y = filter_pairs(batch[i], batch[j], lengths, self.cfg.delta)
        if len(a) == 0:
            return None
        # NOTE: each prompt of the batch is encoded once, however many pairs it is in.
        uniq, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
        s = outputs(uniq)
        return losses.margin_ranking(s[inv[: len(a)]], s[inv[len(a):]], torch.tensor(y, dtype=s.dtype),
                                     self.cfg.margin)


class ListwiseMLE(Objective):
    """LTR: ListMLE over a batch of prompts, true order by length bucket (lengths // bucket_tokens)."""

    def loss(self, batch: np.ndarray, outputs: Outputs, lengths: np.ndarray, stats: LengthStats,
             gen: torch.Generator) -> torch.Tensor:
        out = outputs(batch)
        rel = torch.tensor(np.floor(lengths[batch] / self.cfg.bucket_tokens))
        return losses.list_mle(out, rel, generator=gen)


class PointwiseMSE(Objective):
    """Regression: MSE on log(1 + length), standardized by the training lengths' mean and deviation."""

    def loss(self, batch: np.ndarray, outputs: Outputs, lengths: np.ndarray, stats: LengthStats,
             gen: torch.Generator) -> torch.Tensor:
        out = outputs(batch)
        y = (np.log1p(lengths[batch]) - stats.log_mean) / stats.log_std
        return losses.pointwise_mse(out, torch.tensor(y, dtype=out.dtype))


class BucketClassification(Objective):
    """Classification over length buckets (n_classes quantiles of the training lengths); the score is the expected
    bucket index under the predicted distribution."""

    def n_outputs(self, stats: LengthStats) -> int:
        return len(stats.class_edges) + 1

    def loss(self, batch: np.ndarray, outputs: Outputs, lengths: np.ndarray, stats: LengthStats,
             gen: torch.Generator) -> torch.Tensor:
        out = outputs(batch)
        classes = torch.tensor(np.searchsorted(stats.class_edges, lengths[batch], side="right"), dtype=torch.long)
        return losses.bucket_ce(out, classes)

    def scores(self, out: torch.Tensor) -> np.ndarray:
        probs = torch.softmax(out, dim=-1)
        return (probs * torch.arange(out.shape[-1], dtype=probs.dtype)).sum(-1).numpy().astype(np.float64)


OBJECTIVES: dict[str, type[Objective]] = {
    "pars": PairwiseMargin,
    "ltr": ListwiseMLE,
    "pointwise": PointwiseMSE,
    "classify": BucketClassification,
}


def make_objective(cfg: TrainConfig) -> Objective:
    """The objective of `cfg.method`; ValueError listing the valid names for an unknown one."""
    if cfg.method not in OBJECTIVES:
        raise ValueError(f"method must be one of {tuple(OBJECTIVES)}, got {cfg.method!r}")
    return OBJECTIVES[cfg.method](cfg)
