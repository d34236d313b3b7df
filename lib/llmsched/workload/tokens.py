"""Length measurement with the target model's tokenizer, and real text cut to an exact token length.

Conventions used by every loader and generator of `llmsched.workload`:
- a prompt's length counts the special tokens the tokenizer adds to a plain-text prompt (e.g. BOS), because
  that is what the engine prefills: ``count_tokens(tok, prompts, add_special_tokens=True)``;
- a response's length counts generated tokens only: ``count_tokens(tok, responses)`` (the default,
  ``add_special_tokens=False``).

transformers is imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llmsched.models import load_model_tokenizer, train_byte_bpe

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

BATCH_SIZE = 1024  # texts per tokenizer call: bounds memory, keeps the fast tokenizer's threads busy


def load_tokenizer(model_dir: str | Path) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a local model folder (never downloads).

    Raises FileNotFoundError naming the folder when it does not exist.
    """
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer folder not found: {path} (pass a local model directory)")
    return load_model_tokenizer(path)


def _check_texts(texts: Sequence[str]) -> None:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text #{i} is {type(text).__name__}, not str: {text!r:.80}")


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *,
           add_special_tokens: bool = False) -> list[list[int]]:
    """Token ids of each text, tokenized in batches with the tokenizer's batch call."""
    _check_texts(texts)
    ids: list[list[int]] = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = list(texts[start:start + BATCH_SIZE])
        out = tokenizer(batch, add_special_tokens=add_special_tokens, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)
        ids.extend(out["input_ids"])
    return ids


def count_tokens(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *,
                 add_special_tokens: bool = False) -> list[int]:
    """Number of tokens of each text.

    add_special_tokens=False (default) counts the text alone, as for a response; True adds what the tokenizer
    puts around a prompt (BOS, ...). Raises TypeError naming the first non-str item.
    """
    return [len(ids) for ids in encode(tokenizer, texts, add_special_tokens=add_special_tokens)]


def special_token_overhead(tokenizer: PreTrainedTokenizerBase) -> int:
    """How many tokens add_special_tokens=True adds to a plain text (1 for a BOS-only tokenizer)."""
    with_special, without = (len(ids) for ids in (encode(tokenizer, ["a"], add_special_tokens=flag)[0]
                                                  for flag in (True, False)))
    return with_special - without


class TokenPool:
    """Real text from a pool of documents, cut or concatenated to an exact token length.

    The pool texts are tokenized once and joined (with ``separator``) into one cyclic token stream. A text of
    n tokens is the decoded window of the stream that starts at a document start; windows longer than the
    pool wrap around (the pool repeats). Decoding and re-tokenizing need not round-trip (merges across the
    cut, partial UTF-8 bytes, lower-casing), so the window length is corrected until the re-tokenized text
    has exactly n tokens; a cut point that admits no exact length is abandoned for another document start.
    After MAX_ROUNDS tries the closest text is kept (not seen in practice with byte-level BPE and WordPiece
    tokenizers on ShareGPT text): callers must use the returned count, which is always the tokenizer's count
    of the returned text. Lengths count special tokens when ``add_special_tokens`` is true (the prompt
    convention).
    """

    MAX_ROUNDS = 10

    def __init__(self, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, separator: str = "\n\n",
                 add_special_tokens: bool = True) -> None:
        _check_texts(texts)
        docs = [t for t in texts if t.strip()]
        if not docs:
            raise ValueError(f"the text pool is empty: all {len(texts)} texts are empty or whitespace")
        self.tokenizer = tokenizer
        self.add_special_tokens = add_special_tokens
        self.overhead = special_token_overhead(tokenizer) if add_special_tokens else 0
        sep = encode(tokenizer, [separator])[0] if separator else []
        stream: list[int] = []
        starts: list[int] = []
        for ids in encode(tokenizer, docs):
            if not ids:
                continue
            starts.append(len(stream))
            stream.extend(ids)
            stream.extend(sep)
        if not starts:
            raise ValueError("the text pool has no tokens")
        self._stream = np.asarray(stream, dtype=np.int64)
        self._starts = np.asarray(starts, dtype=np.int64)

    @property
    def n_tokens(self) -> int:
        """Length of the pool's token stream."""
        return int(self._stream.size)

    @property
    def min_tokens(self) -> int:
        """The shortest length a non-empty text can have (one token plus special tokens)."""
        return self.overhead + 1

    def _decode(self, starts: Sequence[int], lengths: Sequence[int]) -> list[str]:
        windows = [np.take(self._stream, np.arange(s, s + k), mode="wrap").tolist()
                   for s, k in zip(starts, lengths, strict=True)]
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:  # fast tokenizer: decode in Rust (transformers' batch_decode is much slower)
            return backend.decode_batch(windows, skip_special_tokens=True)
        return self.tokenizer.batch_decode(windows, skip_special_tokens=True,
                                           clean_up_tokenization_spaces=False)

    def texts(self, n_tokens: Sequence[int], rng: np.random.Generator) -> tuple[list[str], list[int]]:
        """Texts of the requested token lengths, each starting at a random pool document.

        Returns (texts, counts) with counts[i] the tokenizer's count of texts[i]; counts[i] == n_tokens[i]
        unless the tokenizer admits no exact cut (see the class docstring). Targets below `min_tokens`
        raise ValueError.
        """
        targets = [int(n) for n in n_tokens]
        for i, n in enumerate(targets):
            if n < self.min_tokens:
                raise ValueError(f"length #{i} = {n} tokens is below the minimum of {self.min_tokens} "
                                 f"(one token plus {self.overhead} special)")
        m = len(targets)
        starts = [int(x) for x in rng.choice(self._starts, size=m)] if m else []
        # NOTE: round 0 asks every target at once (one batched decode + count); later rounds only the misses,
        # moving each window by the observed error. When that window was tried already, the cut point admits
        # no exact length (a merge or a split character makes the count jump by 2): the text then restarts at
        # another document. best[i] = (error, text, count) of the closest try so far.
        window = [n - self.overhead for n in targets]
        best: list[tuple[int, str, int] | None] = [None] * m
        tried: list[set[int]] = [set() for _ in range(m)]
        todo = list(range(m))
        for _ in range(self.MAX_ROUNDS):
            if not todo:
                break
            texts = self._decode([starts[i] for i in todo], [window[i] for i in todo])
            counts = count_tokens(self.tokenizer, texts, add_special_tokens=self.add_special_tokens)
            still = []
            for i, text, c in zip(todo, texts, counts, strict=True):
                err = c - targets[i]
                tried[i].add(window[i])
                prev = best[i]
                if prev is None or abs(err) < abs(prev[0]):
                    best[i] = (err, text, c)
                if err == 0:
                    continue
                window[i] -= err
                if window[i] < 1 or window[i] in tried[i]:
                    starts[i] = int(rng.choice(self._starts))
                    window[i], tried[i] = targets[i] - self.overhead, set()
                still.append(i)
            todo = still
        out = [b for b in best if b is not None]
        return [b[1] for b in out], [b[2] for b in out]


def train_toy_tokenizer(texts: Sequence[str], *, vocab_size: int = 500, bos: bool = True):
    """A small byte-level BPE tokenizer trained offline on `texts` (tests, smoke runs; no download).

    Returns a transformers PreTrainedTokenizerFast; with bos=True it prepends "<s>" when asked for special
    tokens, like the Llama / Gemma tokenizers. The trainer is the tiny model's (llmsched.models.train_byte_bpe).
    """
    from transformers import PreTrainedTokenizerFast

    tok = train_byte_bpe(list(texts), vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"],
                         bos="<s>" if bos else None)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
