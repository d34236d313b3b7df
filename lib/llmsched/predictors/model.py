"""The ranker network: a Hugging Face encoder, a pooled prompt vector, one linear layer.

PARS reads the prompt only (truncated to 128 tokens), pools the encoder's [CLS] vector and maps it to one
scalar (higher = longer response). The baselines share the encoder and differ in the head's width (one output
for ranking and regression, one per bucket for classification) and in the loss (llmsched.predictors.train).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

POOLINGS = ("cls", "mean")


def resolve_backbone(backbone: str) -> str:
    """A local folder for `backbone`: a prepared model name (e.g. "minilm"), a folder, or a hub id.

    A hub id is returned as is; loading it offline then fails with transformers' own message, which
    `load_encoder` wraps to say the hub is unreachable and which offline backbone to use instead.
    """
    from llmsched.models import MODEL_NAMES, model_path

    if backbone in MODEL_NAMES:
        return str(model_path(backbone))
    if Path(backbone).expanduser().is_dir():
        return str(Path(backbone).expanduser())
    return backbone


def load_encoder(backbone: str) -> tuple[nn.Module, Any]:
    """(encoder, tokenizer) for `backbone`; OSError with the offline alternative when it cannot be loaded."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_backbone(backbone)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path)
    except OSError as e:
        raise OSError(
            f"cannot load encoder {backbone!r} ({e.__class__.__name__}: {str(e)[:200]}). Hub models need network "
            "access (unset HF_HUB_OFFLINE); offline, use backbone='minilm' (all-MiniLM-L6-v2, "
            "python -m llmsched.models prepare minilm) or a local model folder."
        ) from e
    return encoder, tokenizer


class EncoderRanker(nn.Module):
    """encoder → pooled vector → Linear(hidden, n_outputs)."""

    def __init__(self, encoder: nn.Module, n_outputs: int = 1, pooling: str = "cls") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
        self.encoder = encoder
        self.pooling = pooling
        self.head = nn.Linear(encoder.config.hidden_size, n_outputs)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.head(self.embed(input_ids, attention_mask))
        return out.squeeze(-1) if out.shape[-1] == 1 else out
