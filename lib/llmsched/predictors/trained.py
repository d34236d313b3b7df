"""A trained ranker as a predictor, and its checkpoint format.

Checkpoint folder:
    model.safetensors   the weights (the linear head only when the encoder was frozen: the encoder is then
                        reloaded from the backbone)
    ranker.json         train config, backbone, target statistics, training history, data hash
    DONE                written last: a folder without it is an interrupted run and is retrained
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmsched.predictors.base import Predictor
from llmsched.predictors.config import TrainConfig
from llmsched.predictors.embeddings import embedding_key, frozen_vectors, token_ids
from llmsched.predictors.model import EncoderRanker, load_encoder
from llmsched.predictors.objectives import make_objective

WEIGHTS, META, DONE = "model.safetensors", "ranker.json", "DONE"
FROZEN_CACHE_MIN = 256  # a probe scores prompt sets at least this large from cached backbone vectors


class TrainedRanker(Predictor):
    """A trained encoder ranker; `score` runs it batched without gradients, its objective turning raw outputs
    into scores (classification: the expected bucket index).

    cache_vectors  (probes only) score prompt sets of at least FROZEN_CACHE_MIN prompts from the backbone vectors
                   kept on disk (llmsched.predictors.embeddings): the ranker study's evaluations
    """

    cache_vectors = False

    def __init__(self, model: EncoderRanker, tokenizer: Any, config: TrainConfig, info: dict[str, Any],
                 batch_size: int = 32) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.info = info
        self.batch_size = batch_size
        self.name = config.method
        self.objective = make_objective(config)

    def _score(self, prompts: list[str]) -> np.ndarray:
        if self.cache_vectors and self.config.freeze_encoder and len(prompts) >= FROZEN_CACHE_MIN:
            # NOTE: a probe's encoder is the untrained backbone, so a large prompt set's vectors are those the
            # training cached (or will be reused by the next probe on the same prompts): only the head runs. Off
            # by default, so that scoring a workload before serving measures the encoder's real cost.
            ids = token_ids(self.tokenizer, prompts, self.config.max_tokens)
            key = embedding_key(self.config.backbone, self.config.pooling, self.config.max_tokens, prompts)
            vecs = frozen_vectors(self.model, ids, self.tokenizer.pad_token_id or 0, key=key, progress=False)
            with torch.inference_mode():
                return self.objective.scores(self.model.from_vectors(vecs))
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
                scores[idx] = self.objective.scores(raw)
        return scores

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "train_config": self.config.to_dict(),
                "data_hash": self.info.get("data_hash", "")}

    def save(self, folder: str | Path) -> Path:
        """Write the checkpoint folder (replacing one there); a crash midway leaves no folder looking finished."""
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
    model = EncoderRanker(encoder, n_outputs=int(meta["info"]["n_outputs"]), pooling=config.pooling,
                          head_hidden=config.head_hidden)
    model.load_state_dict(load_file(str(folder / WEIGHTS)), strict=not config.freeze_encoder)
    return TrainedRanker(model, tokenizer, config, meta["info"])
