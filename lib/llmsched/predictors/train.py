"""Training the length rankers: PARS (pairwise) and its baselines on the same encoder.

    ranker = train_ranker(TrainConfig(method="pars"), prompts, lengths)      # in memory
    ranker = train_cached(TrainConfig(method="ltr"), prompts, lengths)       # saved under results/predictors/

The defaults are PARS's: MarginRankingLoss with margin 1.0 on pairs whose relative length gap is >= 0.2, about
10 random partners per prompt, prompts truncated to 128 tokens, AdamW (lr 2e-5, weight decay 0.01), linear
schedule with 10% warmup, gradient clipping at 1.0, 3 epochs of 128-pair batches, seed 42, 10% of the prompts
held out; the checkpoint with the best held-out pairwise accuracy is kept.

Two knobs make CPU-sized runs possible, both off by default and recorded in every checkpoint:
    pair_sampling="in_batch"  PARS pairs are all filtered pairs inside a batch of prompts, so each prompt is
                              encoded once per step instead of once per pair (same loss, different pair draw)
    freeze_encoder=True       the encoder is not trained: its pooled vectors are computed once and only the
                              linear head is fitted (a linear probe; fast enough for ablation grids on CPU)
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from llmsched.predictors import losses
from llmsched.predictors.base import check_prompts
from llmsched.predictors.metrics import kendall_tau, pairwise_accuracy
from llmsched.predictors.model import POOLINGS, EncoderRanker, load_encoder
from llmsched.predictors.pairs import filter_pairs, sample_pairs

logger = logging.getLogger(__name__)

METHODS = ("pars", "ltr", "pointwise", "classify")
PAIR_SAMPLING = ("partners", "in_batch")


@dataclass
class TrainConfig:
    """One ranker training run; every field is part of the checkpoint's cache key.

    method            pars | ltr | pointwise | classify
    backbone          prepared model name ("minilm"), a local folder, or a Hugging Face hub id (online only)
    batch_size        pairs per step for pars with pair_sampling="partners", prompts per step otherwise
    margin, delta     PARS margin and minimum relative length gap of a training pair
    pairs_per_prompt  random partners drawn per prompt (pars, pair_sampling="partners")
    bucket_tokens     LTR's length buckets (lengths // bucket_tokens order the ListMLE target)
    n_classes         classification buckets (quantiles of the training lengths)
    max_train_prompts cap on the prompts used (a seeded sample), None = all
    eval_every        validate every this many steps as well as after each epoch (0 = after each epoch only)
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

    def __post_init__(self) -> None:
        checks = [
            (self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}"),
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
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_lengths(prompts: Sequence[str], lengths: Sequence[float]) -> np.ndarray:
    lens = np.asarray(lengths, dtype=np.float64).reshape(-1)
    if lens.shape[0] != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {lens.shape[0]} lengths")
    if not np.isfinite(lens).all() or (lens < 0).any():
        raise ValueError("lengths must be finite and >= 0")
    return lens


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/validation split of range(n); at least 2 prompts on each side."""
    n_val = max(2, int(round(n * val_fraction)))
    if n - n_val < 2:
        raise ValueError(f"need at least 4 prompts to train and validate, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class _Targets:
    """Per-method training targets derived from the training lengths only (no peeking at validation)."""

    def __init__(self, cfg: TrainConfig, train_lengths: np.ndarray) -> None:
        self.cfg = cfg
        log = np.log1p(train_lengths)
        self.log_mean, self.log_std = float(log.mean()), float(log.std() or 1.0)
        qs = np.quantile(train_lengths, np.linspace(0, 1, cfg.n_classes + 1)[1:-1])
        self.class_edges = np.unique(qs)

    def n_outputs(self) -> int:
        return len(self.class_edges) + 1 if self.cfg.method == "classify" else 1

    def to_dict(self) -> dict[str, Any]:
        return {"log_mean": self.log_mean, "log_std": self.log_std, "class_edges": self.class_edges.tolist()}


# Pooled vectors of the untrained backbone, reused by successive frozen-encoder runs on the same prompts.
_FROZEN_CACHE: dict[tuple, torch.Tensor] = {}


class _Encoded:
    """Token ids of every prompt (truncated, unpadded) or, with a frozen encoder, their pooled vectors."""

    def __init__(self, model: EncoderRanker, tokenizer: Any, prompts: list[str], cfg: TrainConfig) -> None:
        enc = tokenizer(prompts, truncation=True, max_length=cfg.max_tokens, add_special_tokens=True)
        self.ids: list[list[int]] = enc["input_ids"]
        self.pad = tokenizer.pad_token_id or 0
        self.model = model
        self.frozen: torch.Tensor | None = None
        if cfg.freeze_encoder:
            key = (cfg.backbone, cfg.pooling, cfg.max_tokens, hash(tuple(prompts)))
            if key not in _FROZEN_CACHE:
                with torch.no_grad():
                    model.eval()
                    vecs = [model.embed(*self.batch(list(c))) for c in _chunks(range(len(prompts)), 64)]
                _FROZEN_CACHE.clear()  # keep one set of vectors: enough for an ablation grid on one dataset
                _FROZEN_CACHE[key] = torch.cat(vecs)
            self.frozen = _FROZEN_CACHE[key]

    def batch(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.ids[i] for i in idx]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, : len(r)] = torch.tensor(r)
            mask[k, : len(r)] = 1
        return ids, mask

    def outputs(self, idx: Sequence[int]) -> torch.Tensor:
        """The model's raw outputs (scores or logits) for prompts `idx`."""
        if self.frozen is not None:
            out = self.model.head(self.frozen[list(idx)])
            return out.squeeze(-1) if out.shape[-1] == 1 else out
        return self.model(*self.batch(idx))


def _chunks(seq: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _steps_of_epoch(
    cfg: TrainConfig, train: np.ndarray, lengths: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """The batches of one epoch: rows of (a, b, target) pair indices for pars+partners, prompt indices else."""
    if cfg.method == "pars" and cfg.pair_sampling == "partners":
        a, b, y = sample_pairs(lengths[train], cfg.delta, cfg.pairs_per_prompt, rng)
        pairs = np.stack([train[a], train[b], y], axis=1)
        pairs = pairs[rng.permutation(len(pairs))]
        return [pairs[s:s + cfg.batch_size] for s in range(0, len(pairs), cfg.batch_size)]
    order = train[rng.permutation(len(train))]
    return [order[s:s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size) if len(order[s:]) >= 2]


def _batch_loss(
    cfg: TrainConfig, batch: np.ndarray, enc: _Encoded, lengths: np.ndarray, targets: _Targets,
    gen: torch.Generator,
) -> torch.Tensor | None:
    if cfg.method == "pars":
        if cfg.pair_sampling == "partners":
            a, b, y = batch[:, 0].astype(int), batch[:, 1].astype(int), batch[:, 2]
        else:
            i, j = np.triu_indices(len(batch), k=1)
            a, b, y = filter_pairs(batch[i], batch[j], lengths, cfg.delta)
        if len(a) == 0:
            return None
        uniq, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
        s = enc.outputs(uniq)
        return losses.margin_ranking(s[inv[: len(a)]], s[inv[len(a):]], torch.tensor(y, dtype=s.dtype), cfg.margin)
    out = enc.outputs(batch)
    lens = lengths[batch]
    if cfg.method == "ltr":
        rel = torch.tensor(np.floor(lens / cfg.bucket_tokens))
        return losses.list_mle(out, rel, generator=gen)
    if cfg.method == "pointwise":
        y = (np.log1p(lens) - targets.log_mean) / targets.log_std
        return losses.pointwise_mse(out, torch.tensor(y, dtype=out.dtype))
    classes = torch.tensor(np.searchsorted(targets.class_edges, lens, side="right"), dtype=torch.long)
    return losses.bucket_ce(out, classes)


def _lr_lambda(total: int, warmup: float):
    n_warm = int(total * warmup)

    def f(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        return max(0.0, (total - step) / max(1, total - n_warm))

    return f


def train_ranker(
    config: TrainConfig,
    prompts: Sequence[str],
    lengths: Sequence[float],
    progress: bool = True,
):
    """Train a ranker on (prompt, response length) data; returns a `TrainedRanker` (not saved)."""
    from llmsched.predictors.ranker import TrainedRanker, outputs_to_scores

    cfg = config
    prompts = check_prompts(prompts)
    lens = check_lengths(prompts, lengths)
    if cfg.max_train_prompts is not None and len(prompts) > cfg.max_train_prompts:
        keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(prompts))[: cfg.max_train_prompts])
        prompts, lens = [prompts[i] for i in keep], lens[keep]
    train, val = split_indices(len(prompts), cfg.val_fraction, cfg.seed)
    if len(np.unique(lens[train])) < 2:
        raise ValueError(f"all {len(train)} training lengths are equal ({lens[train][0]:g}): nothing to rank")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    targets = _Targets(cfg, lens[train])
    encoder, tokenizer = load_encoder(cfg.backbone)
    model = EncoderRanker(encoder, n_outputs=targets.n_outputs(), pooling=cfg.pooling)
    t0 = time.perf_counter()
    enc = _Encoded(model, tokenizer, prompts, cfg)
    params = model.head.parameters() if cfg.freeze_encoder else model.parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    epochs = [_steps_of_epoch(cfg, train, lens, rng) for _ in range(cfg.epochs)]
    total = sum(len(e) for e in epochs)
    if total == 0:
        raise ValueError(f"no training batches: {len(train)} training prompts, delta={cfg.delta} left no pairs")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total, cfg.warmup))
    meta = {"targets": targets.to_dict(), "n_outputs": targets.n_outputs()}

    def validate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            out = torch.cat([enc.outputs(list(c)) for c in _chunks(val.tolist(), 64)])
        model.train()
        s = outputs_to_scores(cfg.method, out)
        return {"val_pairwise_accuracy": pairwise_accuracy(s, lens[val]), "val_kendall_tau": kendall_tau(s, lens[val])}

    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any] | None] = (-1.0, None)
    step = 0
    model.train()
    bar = tqdm(total=total, desc=f"train {cfg.method}", disable=not progress, unit="step")
    for epoch, batches in enumerate(epochs):
        for batch in batches:
            loss = _batch_loss(cfg, batch, enc, lens, targets, gen)
            if loss is not None:  # None: a batch without a usable pair (PARS, in-batch pairs)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
            step += 1
            bar.update(1)
            if loss is not None:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            last = batch is batches[-1]  # end of an epoch
            if (cfg.eval_every and step % cfg.eval_every == 0) or last:
                m = {"step": step, "epoch": epoch + 1, "loss": float(loss.item()) if loss is not None else math.nan,
                     **validate(), "seconds": time.perf_counter() - t0}
                history.append(m)
                bar.set_postfix(loss=f"{m['loss']:.4f}", val_acc=f"{m['val_pairwise_accuracy']:.3f}", refresh=False)
                if m["val_pairwise_accuracy"] > best[0]:
                    best = (m["val_pairwise_accuracy"], copy.deepcopy(model.state_dict()))
    bar.close()
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    info = {
        **meta, "history": history, "n_prompts": len(prompts), "n_train": len(train), "n_val": len(val),
        "best_val_pairwise_accuracy": best[0], "train_seconds": time.perf_counter() - t0, "steps": total,
    }
    logger.info("trained %s in %.0f s: best validation pairwise accuracy %.3f", cfg.method, info["train_seconds"],
                best[0])
    return TrainedRanker(model, tokenizer, cfg, info)
