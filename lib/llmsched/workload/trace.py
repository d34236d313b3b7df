"""Replay of a user's request trace: a CSV file with columns timestamp, prompt_tokens, output_tokens.

    timestamp       arrival time in seconds (any origin; shifted so the first arrival is at 0)
    prompt_tokens   prompt length in tokens (>= 1)
    output_tokens   reference response length in tokens (>= 0)

Other columns are ignored. Unsorted rows are sorted by timestamp (stably). Traces carry lengths, not text, so
`trace_requests` builds each prompt from real text (a `TokenPool` of prompt texts) cut to the requested token
length. The cut is exact unless the tokenizer admits no text of that length (rare; the closest is kept) or
the length is below one token plus the tokenizer's special tokens (raised to that minimum): in both cases
Request.prompt_tokens is the tokenizer's count of the text actually sent, and a warning gives how many
differ from the trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .arrivals import Seed
from .request import Request
from .tokens import TokenPool

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

COLUMNS = ("timestamp", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class Trace:
    """A parsed trace, sorted by arrival. `row` is each request's data row in the file (1 = first)."""

    arrival: np.ndarray  # float64 seconds, first 0, non-decreasing
    prompt_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64
    row: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.arrival.size)


def _column(df: pd.DataFrame, name: str, path: Path, *, integer: bool, minimum: float | None) -> np.ndarray:
    raw = df[name]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    checks = [(~np.isfinite(values), "not a finite number")]
    if integer:
        fraction = np.isfinite(values) & (values != np.round(values))
        checks.append((fraction, "token count must be a whole number"))
    if minimum is not None:
        checks.append((values < minimum, f"must be >= {minimum:g}"))
    for bad, what in checks:
        if bad.any():
            i = int(np.argmax(bad))
            where = f"row {i + 1} (line {i + 2}), column {name!r}"
            raise ValueError(f"{path}: {where}: {what}, got {raw.iloc[i]!r}")
    return values.astype(np.int64) if integer else values


def load_trace(path: str | Path) -> Trace:
    """Parse and validate a trace CSV; ValueError names the file, row and column of a bad value."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"trace file not found: {p}")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{p}: not a readable CSV file ({e})") from e
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: missing column(s) {', '.join(missing)}; found {list(df.columns)}, "
                         f"need {', '.join(COLUMNS)}")
    if df.empty:
        raise ValueError(f"{p}: the trace has no rows")
    ts = _column(df, "timestamp", p, integer=False, minimum=None)
    prompt = _column(df, "prompt_tokens", p, integer=True, minimum=1)
    output = _column(df, "output_tokens", p, integer=True, minimum=0)
    order = np.argsort(ts, kind="stable")
    if np.any(order != np.arange(order.size)):
        logger.info("%s: rows are not in time order; sorted by timestamp", p)
    ts = ts[order]
    return Trace(arrival=ts - ts[0], prompt_tokens=prompt[order], output_tokens=output[order],
                 row=order.astype(np.int64) + 1)


def trace_requests(trace: Trace | str | Path, tokenizer: PreTrainedTokenizerBase,
                   pool: Sequence[str] | TokenPool, seed: Seed, *, source: str = "trace") -> list[Request]:
    """Requests replaying a trace: its arrival times and lengths, prompts made of real text from `pool`.

    pool   prompt texts (e.g. ShareGPT prompts) or a ready TokenPool of the same tokenizer
    seed   chooses where in the pool each prompt starts
    Request ids are f"{source}-{row}" with row the data row of the file.
    """
    if not isinstance(trace, Trace):
        trace = load_trace(trace)
    token_pool = pool if isinstance(pool, TokenPool) else TokenPool(tokenizer, pool)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    targets = np.maximum(trace.prompt_tokens, token_pool.min_tokens)
    texts, counts = token_pool.texts(targets.tolist(), rng)
    off = int(np.sum(np.asarray(counts) != trace.prompt_tokens))
    if off:
        logger.warning("%d of %d trace prompts differ from the requested length (tokenizer limits); "
                       "prompt_tokens holds the real count", off, len(trace))
    return [Request(request_id=f"{source}-{row}", prompt=text, prompt_tokens=count, output_tokens=int(out),
                    arrival_time=float(t), source=source)
            for row, text, count, out, t in zip(trace.row, texts, counts, trace.output_tokens, trace.arrival,
                                                strict=True)]
