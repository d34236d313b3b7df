"""Training the length rankers: PARS (pairwise) and its baselines on the same encoder.

    ranker = train_ranker(TrainConfig(method="pars"), prompts, lengths)      # in memory
    ranker = train_cached(TrainConfig(method="ltr"), prompts, lengths)       # saved under results/predictors/

The defaults are PARS's: MarginRankingLoss with margin 1.0 on pairs whose relative length gap is >= 0.2, about
10 random partners per prompt, prompts truncated to 128 tokens, AdamW (lr 2e-5, weight decay 0.01), linear
schedule with 10% warmup, gradient clipping at 1.0, 3 epochs of 128-pair batches, seed 42, 10% of the prompts
held out; the checkpoint with the best held-out pairwise accuracy is kept.

Knobs that make CPU-sized runs possible, all off by default and recorded in every checkpoint:
    pair_sampling="in_batch"  PARS pairs are all filtered pairs inside a batch of prompts, so each prompt is
                              encoded once per step instead of once per pair (same loss, different pair draw)
    length_bucketing=True     batches of prompts of similar token length: every batch is padded only to its own
                              longest prompt (dynamic padding is always on), and most ShareGPT prompts are far
                              shorter than the truncation length
    freeze_encoder=True       the encoder is not trained: its pooled vectors are computed once per backbone and
                              prompt set (kept on disk, llmsched.predictors.embeddings) and only the head is
                              fitted (a probe; `head_hidden` > 0 makes it a two-layer head)

Token ids are computed once per prompt set and truncation (cached in the process). Every checkpoint records
its training speed (`steps_per_second`, `mean_padded_tokens`) and the time spent encoding a frozen backbone.

The settings are a `TrainConfig` (llmsched.predictors.config); what differs between methods is their objective
(llmsched.predictors.objectives).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from llmsched.predictors.base import check_prompts
from llmsched.predictors.config import TrainConfig
from llmsched.predictors.embeddings import embedding_key, frozen_vectors, pad_batch, token_ids
from llmsched.predictors.metrics import kendall_tau, pairwise_accuracy
from llmsched.predictors.model import EncoderRanker, load_encoder
from llmsched.predictors.objectives import LengthStats, make_objective
from llmsched.predictors.trained import TrainedRanker

__all__ = ["TrainConfig", "check_lengths", "split_indices", "train_ranker"]

logger = logging.getLogger(__name__)


def check_lengths(prompts: Sequence[str], lengths: ArrayLike) -> np.ndarray:
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


class _Encoded:
    """Token ids of every prompt (truncated, unpadded; llmsched.predictors.embeddings caches them) or, with a
    frozen encoder, their pooled vectors (computed once per backbone and prompt set, kept on disk)."""

    def __init__(self, model: EncoderRanker, tokenizer: Any, prompts: list[str], cfg: TrainConfig,
                 progress: bool = True) -> None:
        self.ids = token_ids(tokenizer, prompts, cfg.max_tokens)
        self.sizes = np.array([len(r) for r in self.ids])
        self.pad = tokenizer.pad_token_id or 0
        self.model = model
        self.frozen: torch.Tensor | None = None
        if cfg.freeze_encoder:
            key = embedding_key(cfg.backbone, cfg.pooling, cfg.max_tokens, prompts)
            self.frozen = frozen_vectors(model, self.ids, self.pad, key=key, progress=progress)

    def batch(self, idx: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_batch([self.ids[i] for i in idx], self.pad)

    def outputs(self, idx: Sequence[int] | np.ndarray) -> torch.Tensor:
        """The model's raw outputs (scores or logits) for prompts `idx`."""
        if self.frozen is not None:
            return self.model.from_vectors(self.frozen[list(idx)])
        return self.model(*self.batch(idx))


def bucket_by_length(batches: list[np.ndarray], sizes: np.ndarray, rng: np.random.Generator,
                     pool: int = 50) -> list[np.ndarray]:
    """The same items regrouped into batches of similar token length: the epoch's items, in pools of `pool`
    batches, are sorted by length and cut into batches of the original size; the batches are then shuffled.

    An item is a prompt index (1-D batches) or a pair row (a, b, y): its length is the longer prompt's."""
    if not batches:
        return batches
    size = len(batches[0])
    items = np.concatenate(batches)
    length = sizes[items] if items.ndim == 1 else np.maximum(sizes[items[:, 0].astype(int)],
                                                              sizes[items[:, 1].astype(int)])
    out: list[np.ndarray] = []
    step = size * pool
    for start in range(0, len(items), step):
        chunk = np.arange(start, min(start + step, len(items)))
        chunk = chunk[np.argsort(length[chunk], kind="stable")]
        out += [items[chunk[s:s + size]] for s in range(0, len(chunk), size) if len(chunk[s:s + size]) >= 2]
    return [out[i] for i in rng.permutation(len(out))]


def _chunks(seq: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _mean_padded(epochs: list[list[np.ndarray]], sizes: np.ndarray) -> float:
    """Mean padded width of the training batches (tokens per prompt the encoder computed)."""
    widths = []
    for batches in epochs:
        for b in batches:
            idx = b if b.ndim == 1 else b[:, :2].astype(int).ravel()
            widths.append(float(sizes[idx].max()))
    return float(np.mean(widths)) if widths else 0.0


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
    lengths: ArrayLike,
    progress: bool = True,
) -> TrainedRanker:
    """Train a ranker on (prompt, response length) data; returns a `TrainedRanker` (not saved).

    The objective of `config.method` (llmsched.predictors.objectives) cuts the epochs into batches, computes each
    step's loss and turns outputs into scores; the loop around it (split, optimizer, schedule, validation, keeping
    the best checkpoint) is the same for every method.
    """
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
    objective = make_objective(cfg)
    stats = LengthStats(lens[train], cfg.n_classes)
    encoder, tokenizer = load_encoder(cfg.backbone)
    model = EncoderRanker(encoder, n_outputs=objective.n_outputs(stats), pooling=cfg.pooling,
                          head_hidden=cfg.head_hidden)
    t0 = time.perf_counter()
    enc = _Encoded(model, tokenizer, prompts, cfg, progress=progress)
    encode_seconds = time.perf_counter() - t0
    params = model.head.parameters() if cfg.freeze_encoder else model.parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    epochs = [objective.epoch_batches(train, lens, rng) for _ in range(cfg.epochs)]
    if cfg.length_bucketing and not cfg.freeze_encoder:
        epochs = [bucket_by_length(e, enc.sizes, rng) for e in epochs]
    total = sum(len(e) for e in epochs)
    if total == 0:
        raise ValueError(f"no training batches: {len(train)} training prompts, delta={cfg.delta} left no pairs")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total, cfg.warmup))
    meta = {"targets": stats.to_dict(), "n_outputs": objective.n_outputs(stats)}

    def validate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            out = torch.cat([enc.outputs(list(c)) for c in _chunks(val.tolist(), 64)])
        model.train()
        s = objective.scores(out)
        return {"val_pairwise_accuracy": pairwise_accuracy(s, lens[val]), "val_kendall_tau": kendall_tau(s, lens[val])}

    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any] | None] = (-1.0, None)
    step = 0
    model.train()
    bar = tqdm(total=total, desc=f"train {cfg.method}", disable=not progress, unit="step")
    for epoch, batches in enumerate(epochs):
        for batch in batches:
            loss = objective.loss(batch, enc.outputs, lens, stats, gen)
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
    loop_seconds = time.perf_counter() - t0 - encode_seconds
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    info = {
        **meta, "history": history, "n_prompts": len(prompts), "n_train": len(train), "n_val": len(val),
        "best_val_pairwise_accuracy": best[0], "train_seconds": time.perf_counter() - t0, "steps": total,
        "encode_seconds": encode_seconds, "steps_per_second": total / loop_seconds if loop_seconds > 0 else None,
        "mean_padded_tokens": _mean_padded(epochs, enc.sizes) if not cfg.freeze_encoder else None,
    }
    logger.info("trained %s in %.0f s: best validation pairwise accuracy %.3f", cfg.method, info["train_seconds"],
                best[0])
    return TrainedRanker(model, tokenizer, cfg, info)
