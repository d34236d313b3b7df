"""The ranker network: a Hugging Face backbone, a pooled prompt vector, one linear layer.

PARS reads the prompt only (truncated to 128 tokens), pools the encoder's [CLS] vector and maps it to one
scalar (higher = longer response). The baselines share the encoder and differ in the head's width (one output
for ranking and regression, one per bucket for classification) and in the loss (llmsched.predictors.train).

The backbone may be an encoder (BERT, MiniLM), a causal decoder (OPT, Gemma, Llama: its last hidden states)
or an encoder-decoder (T5: its encoder only), as in PARS's backbone ablation. A causal decoder's first token
is computed without seeing the rest of the prompt, so it takes `pooling="mean"`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

POOLINGS = ("cls", "mean")


def resolve_backbone(backbone: str) -> str:
    """A local folder for `backbone`: a prepared model name (e.g. "minilm"), a folder, or a hub id.

    A hub id is returned as is; loading it offline then fails with transformers' own message, which
    `load_encoder` wraps to say the hub is unreachable and which offline backbone to use instead.
    """
    from llmsched.models import resolve_model

    return str(resolve_model(backbone, bare_hub_ids=True))


def backbone_kind(encoder: nn.Module) -> str:
    """"encoder", "decoder" (causal: a token never sees later ones) or "encoder-decoder" (T5's encoder stack).

    Causality is tested, not looked up: the first position's hidden state is compared across two inputs that
    differ only in their last token (a bidirectional encoder's changes, a causal decoder's does not).
    """
    if getattr(encoder.config, "is_encoder_decoder", False):
        return "encoder-decoder"
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5]])
    training = encoder.training
    encoder.eval()  # no dropout noise in the comparison
    with torch.no_grad():
        first = encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[:, 0]
    encoder.train(training)
    return "decoder" if torch.allclose(first[0], first[1], atol=1e-5) else "encoder"


def load_encoder(backbone: str) -> tuple[nn.Module, Any]:
    """(encoder, tokenizer) for `backbone`; OSError with the offline alternative when it cannot be loaded.

    An encoder-decoder checkpoint (T5) yields its encoder stack; a causal LM yields its base model (no LM head).
    """
    from transformers import AutoModel

    from llmsched.models import load_model_tokenizer

    path = resolve_backbone(backbone)
    try:
        tokenizer = load_model_tokenizer(path, bare_hub_ids=True)
        encoder = AutoModel.from_pretrained(path, dtype=torch.float32)  # trained and run in fp32 (CPU and GPU)
    except OSError as e:
        raise OSError(
            f"cannot load encoder {backbone!r} ({e.__class__.__name__}: {str(e)[:200]}). Hub models need network "
            "access (unset HF_HUB_OFFLINE); offline, use backbone='minilm' (all-MiniLM-L6-v2, "
            "python -m llmsched.models prepare minilm) or a local model folder."
        ) from e
    if getattr(encoder.config, "is_encoder_decoder", False):
        encoder = encoder.get_encoder()
    return encoder, tokenizer


class EncoderRanker(nn.Module):
    """encoder → pooled vector → Linear(width, n_outputs), or with `head_hidden` > 0 a two-layer head
    Linear(width, head_hidden) → GELU → Linear(head_hidden, n_outputs) (PARS's head is the single linear layer;
    the wider head is for probes of a frozen encoder, whose features a linear map may not separate)."""

    def __init__(self, encoder: nn.Module, n_outputs: int = 1, pooling: str = "cls", head_hidden: int = 0) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
        if head_hidden < 0:
            raise ValueError(f"head_hidden must be >= 0, got {head_hidden}")
        if pooling == "cls" and backbone_kind(encoder) == "decoder":
            raise ValueError(
                f"pooling='cls' on a causal decoder ({type(encoder).__name__}) takes the first token, which never "
                "sees the rest of the prompt: use pooling='mean'")
        self.encoder = encoder
        self.pooling = pooling
        self.width = self._width(encoder)
        self.head: nn.Module = (nn.Linear(self.width, n_outputs) if head_hidden == 0 else
                                nn.Sequential(nn.Linear(self.width, head_hidden), nn.GELU(),
                                              nn.Linear(head_hidden, n_outputs)))

    @staticmethod
    def _width(encoder: nn.Module) -> int:
        """Width of the last hidden states (OPT-350M projects 1024 → 512 after its last layer)."""
        with torch.no_grad():
            ones = torch.ones((1, 2), dtype=torch.long)
            return int(encoder(input_ids=ones, attention_mask=ones).last_hidden_state.shape[-1])

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def from_vectors(self, pooled: torch.Tensor) -> torch.Tensor:
        """The head's outputs for pooled vectors: one score per row, or one logit row per prompt."""
        out = self.head(pooled)
        return out.squeeze(-1) if out.shape[-1] == 1 else out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.from_vectors(self.embed(input_ids, attention_mask))
