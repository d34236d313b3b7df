"""tiny: a ~1.1 M-parameter random-weight Llama with a byte-level BPE tokenizer trained here on a built-in corpus.

Deterministic (fixed seeds, fixed corpus); for fast vLLM tests.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

from llmsched.models.bpe import train_byte_bpe
from llmsched.models.build import build, patch_tokenizer_config, require, step, versions, write_marker

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

TINY_SEED = 0
TINY_VOCAB = 3072
TINY_CONFIG = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=64,  # vLLM's CPU attention backend supports 32, 64, 80, ..., 256, 512
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    initializer_range=0.02,
    tie_word_embeddings=False,  # untied: a tied random model tends to echo its input token
)
TINY_SPECIAL = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}  # ids 0, 1, 2, 3

_TINY_WORDS = """
the of and to in is was for that with as on by at from his her they this be are or an which it had not were
but have has their one all been its who also more other can after first new two time into only over most some
such when these many would years about may then made between what out up so there where during under while him
both each those through could three world people city system state work model data request server queue token
length latency schedule policy batch memory prompt response answer question short long come served shortest job
predicted rank learn train test score value number small large fast slow wait arrive finish start stop run read
write open close house water light night day year week month morning evening river mountain forest garden school
teacher student book story music song friend family child mother father brother sister dog cat bird tree flower
sun moon star sky cloud rain snow wind fire stone road car ship plane market village country history science
language computer program code function variable string list table because however although therefore before
again always never often sometimes usually quickly slowly carefully happy sad angry calm bright dark warm cold
old young good bad great little big explain describe summarize translate compare give make find show tell help
build create please thanks hello yes no maybe why how who whose simple complex
""".split()


def _tiny_corpus(n_lines: int = 4000, seed: int = 1234) -> list[str]:
    """A fixed synthetic English-like corpus (same lines on every machine and Python version)."""
    rng = random.Random(seed)
    suffixes = ["s", "ed", "ing", "er", "ly", "ness", "ment", "ful", "est", "ion"]
    prefixes = ["re", "un", "pre", "over", "out", "in"]
    lines = []
    for _ in range(n_lines):
        words = []
        for _ in range(rng.randint(4, 16)):
            w = rng.choice(_TINY_WORDS)
            r = rng.random()
            if r < 0.3:
                w += rng.choice(suffixes)
            elif r < 0.4:
                w = w.capitalize()
            elif r < 0.45:
                w = rng.choice(prefixes) + w
            words.append(w)
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2025)))
        s = " ".join(words)
        lines.append(s[0].upper() + s[1:] + rng.choice([".", ".", "?", "!", ",", ":"]))
    return lines


def _train_tiny_tokenizer(vocab_size: int = TINY_VOCAB) -> Tokenizer:
    """Byte-level BPE (any text encodes), adds BOS, no chat template."""
    sp = TINY_SPECIAL
    return train_byte_bpe(
        _tiny_corpus(),
        vocab_size=vocab_size,
        special_tokens=[sp["unk"], sp["bos"], sp["eos"], sp["pad"]],
        unk_token=sp["unk"],
        min_frequency=2,
        bos=sp["bos"],
        bos_before_pair=True,
    )


def _build_tiny(out: Path, seed: int = TINY_SEED) -> None:
    started = time.perf_counter()
    require("tokenizers", "tokenizers", "prepare_tiny")
    require("transformers", "transformers", "prepare_tiny")
    torch = require("torch", "torch", "prepare_tiny")
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    with step("tiny: training the BPE tokenizer on the built-in corpus"):
        raw = _train_tiny_tokenizer()
        sp = TINY_SPECIAL
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=raw,
            bos_token=sp["bos"],
            eos_token=sp["eos"],
            unk_token=sp["unk"],
            pad_token=sp["pad"],
            model_max_length=TINY_CONFIG["max_position_embeddings"],
        )
        tokenizer.save_pretrained(out)
        # The generic fast-tokenizer class name loads in transformers 4 and 5 alike.
        patch_tokenizer_config(out, add_bos_token=True, tokenizer_class="PreTrainedTokenizerFast")

    with step("tiny: initialising the random-weight Llama"):
        config = LlamaConfig(
            vocab_size=raw.get_vocab_size(),
            bos_token_id=raw.token_to_id(sp["bos"]),
            eos_token_id=raw.token_to_id(sp["eos"]),
            pad_token_id=raw.token_to_id(sp["pad"]),
            **TINY_CONFIG,
        )
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32).eval()
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(out)
        log.info("tiny: %s parameters, vocab %d", f"{n_params:,}", config.vocab_size)

    write_marker(
        out,
        "tiny",
        versions("tokenizers", "transformers", "torch"),
        started,
        seed=seed,
        params=n_params,
        dtype="float32",
    )


def prepare_tiny(force: bool = False) -> Path:
    """Build (once) the tiny random-weight Llama + tokenizer; returns its directory.

    Deterministic: the same seed (``TINY_SEED``) and package versions give byte-identical weight and
    tokenizer files. Loads with ``vllm.LLM(model=path)`` and ``AutoTokenizer.from_pretrained(path)``.
    """
    return build("tiny", force, _build_tiny)
