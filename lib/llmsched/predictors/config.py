"""The settings of one ranker training run, and the names they accept.

    METHODS        the training objectives (llmsched.predictors.objectives.OBJECTIVES) as registered in the
                   source, in registry order; `TrainConfig` accepts any name in OBJECTIVES when it is made
    PAIR_SAMPLING  how PARS draws its pairs: "partners" (PARS's random partners) or "in_batch"
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from llmsched.predictors.model import POOLINGS
from llmsched.predictors.objectives import OBJECTIVES

METHODS = tuple(OBJECTIVES)
PAIR_SAMPLING = ("partners", "in_batch")


@dataclass
class TrainConfig:
    """One ranker training run; every field is part of the checkpoint's cache key.

    method            a training objective: pars | ltr | pointwise | classify (a name in OBJECTIVES)
    backbone          prepared model name ("minilm"), a local folder, or a Hugging Face hub id (online only)
    batch_size        pairs per step for pars with pair_sampling="partners", prompts per step otherwise
    margin, delta     PARS margin and minimum relative length gap of a training pair
    pairs_per_prompt  random partners drawn per prompt (pars, pair_sampling="partners")
    bucket_tokens     LTR's length buckets (lengths // bucket_tokens order the ListMLE target)
    n_classes         classification buckets (quantiles of the training lengths)
    max_train_prompts cap on the prompts used (a seeded sample), None = all
    eval_every        validate every this many steps as well as after each epoch (0 = after each epoch only)
    head_hidden       0: PARS's single linear head; > 0: a two-layer head with this many hidden units (probes)
    length_bucketing  batches of prompts of similar token length (pools of 50 batches sorted by length, batch
                      order shuffled), so a batch pads to its own longest prompt rather than to max_tokens; the
                      items of each batch change, not the epoch's items (a CPU speed knob, off in the paper)
    """

    method: str = "pars"
    backbone: str = "minilm"
    pooling: str = "cls"
    max_tokens: int = 128
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    grad_clip: float = 1.0
    seed: int = 42
    val_fraction: float = 0.1
    margin: float = 1.0
    delta: float = 0.2
    pairs_per_prompt: int = 10
    pair_sampling: str = "partners"
    bucket_tokens: int = 10
    n_classes: int = 10
    freeze_encoder: bool = False
    max_train_prompts: int | None = None
    eval_every: int = 0
    head_hidden: int = 0
    length_bucketing: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.method in OBJECTIVES, f"method must be one of {tuple(OBJECTIVES)}, got {self.method!r}"),
            (self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}, got {self.pooling!r}"),
            (self.pair_sampling in PAIR_SAMPLING,
             f"pair_sampling must be one of {PAIR_SAMPLING}, got {self.pair_sampling!r}"),
            (self.max_tokens >= 8, f"max_tokens must be >= 8, got {self.max_tokens}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.warmup < 1, f"warmup must be in [0, 1), got {self.warmup}"),
            (self.grad_clip > 0, f"grad_clip must be > 0, got {self.grad_clip}"),
            (0 < self.val_fraction < 0.5, f"val_fraction must be in (0, 0.5), got {self.val_fraction}"),
            (self.margin >= 0, f"margin must be >= 0, got {self.margin}"),
            (0 <= self.delta < 1, f"delta must be in [0, 1), got {self.delta}"),
            (self.pairs_per_prompt >= 1, f"pairs_per_prompt must be >= 1, got {self.pairs_per_prompt}"),
            (self.bucket_tokens >= 1, f"bucket_tokens must be >= 1, got {self.bucket_tokens}"),
            (self.n_classes >= 2, f"n_classes must be >= 2, got {self.n_classes}"),
            (self.max_train_prompts is None or self.max_train_prompts >= 10,
             f"max_train_prompts must be None or >= 10, got {self.max_train_prompts}"),
            (self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}"),
            (self.head_hidden >= 0, f"head_hidden must be >= 0, got {self.head_hidden}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
