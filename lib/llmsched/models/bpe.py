"""Byte-level BPE tokenizers trained offline with `tokenizers` (no hub): the tiny model's and the tests' toys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def train_byte_bpe(texts: Iterable[str], *, vocab_size: int, special_tokens: Sequence[str] = (),
                   unk_token: str | None = None, min_frequency: int = 0, bos: str | None = None,
                   bos_before_pair: bool = False) -> Tokenizer:
    """A byte-level BPE tokenizer (any text encodes) trained on `texts`; deterministic for the same inputs.

    special_tokens get the first ids, in order; unk_token, when given, should be one of them. With `bos` (a
    special token) the tokenizer prepends it to a text when asked for special tokens; a pair of texts gets it
    before the first, and with bos_before_pair before the second as well. No chat template.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=unk_token))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if bos is not None:
        pair = f"{bos} $A {bos} $B" if bos_before_pair else f"{bos} $A $B"
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=pair, special_tokens=[(bos, tok.token_to_id(bos))]
        )
    return tok
