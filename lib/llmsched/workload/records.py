"""Raw prompt/response records shared by every dataset loader, their load statistics, and the conversion to
`Request`s with the target model's tokenizer.

Every loader (ShareGPT, the Hugging Face datasets) returns a `LoadResult`: the kept `PromptRecord`s and a
`LoadStats` that accounts for every item read (read == kept + sum of skipped, per reason). `to_requests`
measures lengths with the tokenizer, applies length filters and samples deterministically.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .request import Request
from .tokens import count_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

EXAMPLES_PER_REASON = 5  # item ids remembered per skip reason, to point at offending data

# Skip reasons used across loaders (free-form strings are allowed; these keep the names consistent).
EMPTY_PROMPT = "empty prompt"
EMPTY_ANSWER = "empty answer"
NON_TEXT = "non-text value"
MALFORMED = "malformed record"
DUPLICATE_ID = "duplicate id"
PROMPT_TOO_LONG = "prompt too long"
OUTPUT_TOO_LONG = "output too long"


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """One prompt with its reference response, before tokenization."""

    record_id: str
    prompt: str
    response: str
    source: str


@dataclass
class LoadStats:
    """What a loader (or `to_requests`) read, kept and skipped, per reason.

    read       items looked at (conversations, rows; a truncated trailing object counts as read and skipped)
    kept       items turned into records / requests
    skipped    reason -> count; read == kept + sum(skipped.values())
    examples   reason -> the first few skipped item ids (to find the offending data)
    """

    source: str
    read: int = 0
    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    truncated_tail: bool = False
    seconds: float = 0.0
    _t0: float = field(default_factory=time.perf_counter, repr=False, compare=False)

    def skip(self, reason: str, item: object) -> None:
        self.skipped[reason] += 1
        ids = self.examples.setdefault(reason, [])
        if len(ids) < EXAMPLES_PER_REASON:
            ids.append(str(item))

    def done(self) -> LoadStats:
        """Stamp the elapsed time and log the summary; returns self."""
        self.seconds = time.perf_counter() - self._t0
        logger.info("%s", self.summary())
        return self

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        reasons = ", ".join(f"{r}: {n}" for r, n in self.skipped.most_common()) or "none"
        tail = " (file truncated)" if self.truncated_tail else ""
        return (f"{self.source}: read {self.read}, kept {self.kept}, skipped {sum(self.skipped.values())} "
                f"[{reasons}]{tail} in {self.seconds:.2f} s")


class LoadResult(NamedTuple):
    records: list[PromptRecord]
    stats: LoadStats


def check_text(stats: LoadStats, item_id: str, prompt: object, response: object) -> bool:
    """Count a skip and return False when prompt/response is not usable text; True when both are."""
    if not isinstance(prompt, str) or not isinstance(response, str):
        stats.skip(NON_TEXT, item_id)
        return False
    if not prompt.strip():
        stats.skip(EMPTY_PROMPT, item_id)
        return False
    if not response.strip():
        stats.skip(EMPTY_ANSWER, item_id)
        return False
    return True


def to_requests(
    records: Sequence[PromptRecord],
    tokenizer: PreTrainedTokenizerBase,
    *,
    limit: int | None = None,
    seed: int | np.random.Generator | None = None,
    max_prompt_tokens: int | None = None,
    max_output_tokens: int | None = None,
    batch_size: int = 512,
) -> tuple[list[Request], LoadStats]:
    """Measure prompt and response lengths and build `Request`s (arrival_time 0; see arrivals.py).

    prompt_tokens counts the prompt with the tokenizer's special tokens (what the engine prefills),
    output_tokens the reference response without. Records whose lengths exceed the optional maxima are skipped
    ("prompt too long" / "output too long"), as are empty texts, responses of 0 tokens ("empty answer") and
    repeated ids.

    Order and sampling: with seed None the records are taken in their given order; with a seed they are
    visited in a seeded random permutation of *all* records. Either way records are examined until `limit`
    requests passed the filters, so only the examined ones are tokenized (stats.read says how many). The same
    records, seed and tokenizer give the same requests.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    for name, value in (("max_prompt_tokens", max_prompt_tokens), ("max_output_tokens", max_output_tokens)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    sources = sorted({r.source for r in records})
    stats = LoadStats(source="+".join(sources) + " -> requests" if sources else "requests")
    order = np.arange(len(records)) if seed is None else np.random.default_rng(seed).permutation(len(records))
    requests: list[Request] = []
    seen: set[str] = set()
    want = len(records) if limit is None else limit
    for start in range(0, len(records), batch_size):
        if len(requests) >= want:
            break
        chunk = [records[i] for i in order[start:start + batch_size]]
        ok = [r for r in chunk if _usable(r)]
        prompt_len = iter(count_tokens(tokenizer, [r.prompt for r in ok], add_special_tokens=True))
        output_len = iter(count_tokens(tokenizer, [r.response for r in ok]))
        for rec in chunk:
            if len(requests) >= want:
                break
            stats.read += 1
            if not check_text(stats, rec.record_id, rec.prompt, rec.response):
                continue
            p, o = next(prompt_len), next(output_len)
            if rec.record_id in seen:
                stats.skip(DUPLICATE_ID, rec.record_id)
            elif max_prompt_tokens is not None and p > max_prompt_tokens:
                stats.skip(PROMPT_TOO_LONG, rec.record_id)
            elif max_output_tokens is not None and o > max_output_tokens:
                stats.skip(OUTPUT_TOO_LONG, rec.record_id)
            elif o == 0:
                stats.skip(EMPTY_ANSWER, rec.record_id)
            else:
                seen.add(rec.record_id)
                requests.append(Request(request_id=rec.record_id, prompt=rec.prompt, prompt_tokens=p,
                                        output_tokens=o, source=rec.source))
                stats.kept += 1
    return requests, stats.done()


def _usable(rec: PromptRecord) -> bool:
    """The test of `check_text` without counting: both fields are non-blank strings."""
    return (isinstance(rec.prompt, str) and isinstance(rec.response, str)
            and bool(rec.prompt.strip()) and bool(rec.response.strip()))
