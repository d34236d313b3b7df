"""The training cache: a ranker trained once per (train config, training data) and kept as a checkpoint.

`train_cached` keys the checkpoint folder (format: llmsched.predictors.trained) by a hash of the train config
and the training data, so the same config on the same data is trained once. `TrainedRanker` and `load_ranker`
are importable from here as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from llmsched.paths import results_dir
from llmsched.predictors.config import TrainConfig
from llmsched.predictors.train import check_lengths, train_ranker
from llmsched.predictors.trained import DONE, TrainedRanker, load_ranker

__all__ = ["TrainedRanker", "checkpoint_dir", "data_hash", "load_ranker", "train_cached"]

logger = logging.getLogger(__name__)


def data_hash(prompts: Sequence[str], lengths: ArrayLike) -> str:
    h = hashlib.sha256()
    for p, n in zip(prompts, np.asarray(lengths, dtype=np.float64).tolist(), strict=True):
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\0" + repr(n).encode() + b"\0")
    return h.hexdigest()[:16]


def checkpoint_dir(config: TrainConfig, prompts: Sequence[str], lengths: ArrayLike,
                   root: str | Path | None = None) -> Path:
    """Where `train_cached` keeps the checkpoint of this config on this data."""
    key = hashlib.sha256(json.dumps({"config": config.to_dict(), "data": data_hash(prompts, lengths)},
                                    sort_keys=True).encode()).hexdigest()[:12]
    return Path(root) if root is not None else results_dir() / "predictors" / f"{config.method}-{key}"


def train_cached(config: TrainConfig, prompts: Sequence[str], lengths: ArrayLike,
                 root: str | Path | None = None, force: bool = False, progress: bool = True) -> TrainedRanker:
    """Load the checkpoint of (config, data) when it exists, else train, save and return it.

    `root` is the folder of this one checkpoint (default: results/predictors/<method>-<hash>).
    """
    check_lengths(prompts, lengths)
    folder = checkpoint_dir(config, prompts, lengths, root)
    if not force and (folder / DONE).exists():
        logger.info("ranker %s: loading %s", config.method, folder)
        return load_ranker(folder)
    ranker = train_ranker(config, prompts, lengths, progress=progress)
    ranker.info["data_hash"] = data_hash(prompts, lengths)
    ranker.save(folder)
    logger.info("ranker %s saved to %s", config.method, folder)
    return ranker
