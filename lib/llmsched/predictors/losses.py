"""The loss functions of the training objectives (llmsched.predictors.objectives), on a batch of scores.

    pars       MarginRankingLoss on prompt pairs: max(0, -y (s_a - s_b) + margin), y = +1 when a is longer
    ltr        ListMLE (Fu et al. 2024): -log P(true order | scores) under the Plackett-Luce model, true order by
               length bucket (ties broken at random)
    pointwise  mean squared error on standardized log(1 + length)
    classify   cross entropy over length buckets (quantiles of the training lengths)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def margin_ranking(s_a: torch.Tensor, s_b: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    return F.margin_ranking_loss(s_a, s_b, target, margin=margin)


def list_mle(scores: torch.Tensor, relevance: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """ListMLE for one list: the permutation sorting `relevance` descending (random among ties) is the target.

    Higher score = longer response, so the longest response should come first.
    """
    if scores.ndim != 1 or scores.shape != relevance.shape:
        raise ValueError(f"scores and relevance must be 1-D of equal shape, got {scores.shape}, {relevance.shape}")
    noise = torch.rand(relevance.shape, generator=generator, device=relevance.device)
    # Sort by relevance descending; the random key breaks ties (lexicographic via a scaled sum).
    order = torch.argsort(relevance.double() * 2.0 + noise.double(), descending=True)
    s = scores[order]
    # log-sum-exp of s[i:], for every i: a reversed cumulative logsumexp.
    tail = torch.logcumsumexp(s.flip(0), dim=0).flip(0)
    return (tail - s).mean()


def pointwise_mse(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(scores, target)


def bucket_ce(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, classes)
