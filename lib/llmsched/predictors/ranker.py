"""A trained ranker as a predictor, its checkpoint format, and the training cache.

Checkpoint folder:
    model.safetensors   the weights (the linear head only when the encoder was frozen: the encoder is then
                        reloaded from the backbone)
    ranker.json         train config, backbone, target statistics, training history, data hash
    DONE                written last: a folder without it is an interrupted run and is retrained

`train_cached` keys the folder by a hash of the train config and the training data, so the same config on the
same data is trained once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmsched.paths import results_dir
from llmsched.predictors.base import Predictor
from llmsched.predictors.model import EncoderRanker, load_encoder
from llmsched.predictors.train import TrainConfig, check_lengths, train_ranker

logger = logging.getLogger(__name__)

WEIGHTS, META, DONE = "model.safetensors", "ranker.json", "DONE"


def outputs_to_scores(method: str, out: torch.Tensor) -> np.ndarray:
    """Raw network outputs → one score per prompt (classification: the expected bucket index)."""
    if method == "classify":
        probs = torch.softmax(out, dim=-1)
        return (probs * torch.arange(out.shape[-1], dtype=probs.dtype)).sum(-1).numpy().astype(np.float64)
    return out.detach().numpy().astype(np.float64)


class TrainedRanker(Predictor):
    """A trained encoder ranker; `score` runs it batched without gradients."""

    def __init__(self, model: EncoderRanker, tokenizer: Any, config: TrainConfig, info: dict[str, Any],
                 batch_size: int = 32) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.info = info
        self.batch_size = batch_size
        self.name = config.method

    def _score(self, prompts: list[str]) -> np.ndarray:
        # NOTE: prompts are batched in order of length, so a batch pads to similar lengths; scores are returned
        # in the caller's order.
        order = np.argsort([len(p) for p in prompts], kind="stable")
        scores = np.empty(len(prompts), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self.tokenizer([prompts[i] for i in idx], truncation=True, padding=True,
                                     max_length=self.config.max_tokens, return_tensors="pt")
                raw = self.model(enc["input_ids"], enc["attention_mask"])
                scores[idx] = outputs_to_scores(self.config.method, raw)
        return scores

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "train_config": self.config.to_dict(),
                "data_hash": self.info.get("data_hash", "")}

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        state = self.model.head.state_dict() if self.config.freeze_encoder else self.model.state_dict()
        prefix = "head." if self.config.freeze_encoder else ""
        save_file({prefix + k: v.contiguous() for k, v in state.items()}, str(tmp / WEIGHTS))
        meta = {"config": self.config.to_dict(), "info": self.info}
        (tmp / META).write_text(json.dumps(meta, indent=2, default=float) + "\n")
        (tmp / DONE).write_text("")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        return folder


def load_ranker(folder: str | Path) -> TrainedRanker:
    """Load a checkpoint written by `TrainedRanker.save`; FileNotFoundError when it is missing or incomplete."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / DONE).exists() or not (folder / WEIGHTS).exists():
        raise FileNotFoundError(
            f"no complete ranker checkpoint in {folder} (expected {WEIGHTS}, {META} and {DONE}); train one with "
            "llmsched.predictors.train_cached or run notebooks/02_train_rankers.ipynb"
        )
    meta = json.loads((folder / META).read_text())
    config = TrainConfig(**meta["config"])
    encoder, tokenizer = load_encoder(config.backbone)
    model = EncoderRanker(encoder, n_outputs=int(meta["info"]["n_outputs"]), pooling=config.pooling)
    model.load_state_dict(load_file(str(folder / WEIGHTS)), strict=not config.freeze_encoder)
    return TrainedRanker(model, tokenizer, config, meta["info"])


def data_hash(prompts: Sequence[str], lengths: Sequence[float]) -> str:
    h = hashlib.sha256()
    for p, n in zip(prompts, np.asarray(lengths, dtype=np.float64).tolist(), strict=True):
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\0" + repr(n).encode() + b"\0")
    return h.hexdigest()[:16]


def checkpoint_dir(config: TrainConfig, prompts: Sequence[str], lengths: Sequence[float],
                   root: str | Path | None = None) -> Path:
    """Where `train_cached` keeps the checkpoint of this config on this data."""
    key = hashlib.sha256(json.dumps({"config": config.to_dict(), "data": data_hash(prompts, lengths)},
                                    sort_keys=True).encode()).hexdigest()[:12]
    return Path(root) if root is not None else results_dir() / "predictors" / f"{config.method}-{key}"


def train_cached(config: TrainConfig, prompts: Sequence[str], lengths: Sequence[float],
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
