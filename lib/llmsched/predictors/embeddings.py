"""Token ids and frozen-backbone vectors of a prompt set, computed once and reused.

    ids = token_ids(tokenizer, prompts, max_tokens=128)                      # cached in this process
    vecs = frozen_vectors(model, ids, key=embedding_key("minilm", "mean", 128, prompts))   # cached on disk

A ranker study trains many rankers on the same prompts: tokenizing them once per process, and (for probes of a
frozen backbone) running the backbone over them once per (backbone, pooling, truncation, prompt set), turns
every further run into seconds of head training. The vectors are kept under
results/predictors/embeddings/<backbone>-<key>.npy with a JSON record of what produced them; a file that
does not match its record (interrupted write, other shape) is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from llmsched.paths import results_dir

logger = logging.getLogger(__name__)

_IDS: OrderedDict[tuple[str, int, str], list[list[int]]] = OrderedDict()
_IDS_KEEP = 4  # prompt sets whose token ids stay in memory


def prompts_hash(prompts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in prompts:
        h.update(p.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:16]


def token_ids(tokenizer: Any, prompts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Each prompt's token ids (special tokens added, truncated to max_tokens, unpadded); cached per tokenizer,
    truncation and prompt set for the life of the process."""
    key = (str(getattr(tokenizer, "name_or_path", type(tokenizer).__name__)), max_tokens, prompts_hash(prompts))
    if key in _IDS:
        _IDS.move_to_end(key)
        return _IDS[key]
    ids = tokenizer(list(prompts), truncation=True, max_length=max_tokens, add_special_tokens=True)["input_ids"]
    _IDS[key] = ids
    while len(_IDS) > _IDS_KEEP:
        _IDS.popitem(last=False)
    return ids


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) padded to the longest row of this batch (dynamic padding)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[k, : len(r)] = 1
    return ids, mask


def embedding_key(backbone: str, pooling: str, max_tokens: int, prompts: Sequence[str]) -> str:
    """The file stem of a prompt set's vectors under one backbone, pooling and truncation."""
    from llmsched.predictors.model import resolve_backbone

    name = Path(str(backbone)).name or "backbone"
    spec = json.dumps([resolve_backbone(backbone), pooling, max_tokens, prompts_hash(prompts), len(prompts)])
    return f"{name}-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


def embeddings_dir() -> Path:
    return results_dir() / "predictors" / "embeddings"


def frozen_vectors(model: Any, ids: Sequence[Sequence[int]], pad_id: int, key: str | None = None,
                   batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    """`model.embed` of every prompt (no gradients, length-sorted batches); with `key`, read from / written to
    embeddings_dir()/<key>.npy."""
    path = embeddings_dir() / f"{key}.npy" if key else None
    meta_path = path.with_suffix(".json") if path else None
    if path is not None and meta_path is not None and path.exists() and meta_path.exists():
        vecs = np.load(path)
        if vecs.shape[0] == len(ids):
            logger.info("frozen vectors: loaded %s", path)
            return torch.from_numpy(vecs)
        logger.warning("frozen vectors in %s have %d rows for %d prompts: recomputing", path, vecs.shape[0], len(ids))
    order = np.argsort([len(r) for r in ids], kind="stable")
    out: torch.Tensor | None = None
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="encode (frozen backbone)", unit="batch",
                          disable=not progress):
            idx = order[start:start + batch_size]
            vec = model.embed(*pad_batch([ids[i] for i in idx], pad_id)).float()
            if out is None:
                out = torch.empty((len(ids), vec.shape[-1]), dtype=torch.float32)
            out[torch.from_numpy(idx)] = vec
    model.train(was_training)
    assert out is not None
    seconds = time.perf_counter() - t0
    logger.info("frozen vectors: %d prompts in %.1f s (%.1f ms/prompt)", len(ids), seconds,
                1000 * seconds / max(1, len(ids)))
    if path is not None and meta_path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npy")
        np.save(tmp, out.numpy())
        tmp.replace(path)
        meta_path.write_text(json.dumps({"rows": len(ids), "width": int(out.shape[1]), "seconds": seconds,
                                         "ms_per_prompt": 1000 * seconds / max(1, len(ids))}, indent=2) + "\n")
    return out
