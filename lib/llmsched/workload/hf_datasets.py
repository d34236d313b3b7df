"""Prompt/response datasets of the Hugging Face Hub, from the Hub or from a local file of the same format.

    name                hub dataset                         prompt -> response
    alpaca-gpt4         vicgalle/alpaca-gpt4                instruction (+ blank line + input) -> output
    lmsys-chat-1m       lmsys/lmsys-chat-1m (gated)         conversation[0] (user) -> conversation[1]
                                                            (assistant), rows with model == "gpt-4" only
    evol-codealpaca-v1  theblackcat102/evol-codealpaca-v1   instruction -> output
    math-plus           TIGER-Lab/MATH-plus                 instruction (or query) -> output (or response)

`source=None` loads the hub dataset with `datasets.load_dataset` (streamed when a `limit` is given). These
are online-only: without network (or with HF_HUB_OFFLINE=1 and no cached copy) the loaders raise
`DatasetUnavailableError` naming the dataset and explaining how to pass a local file instead. `source` may be
a local .jsonl, .json (array or JSON lines) or .parquet file whose rows have the hub dataset's fields.

Every loader returns a `LoadResult` of `PromptRecord`s, like `load_sharegpt`; `to_requests` tokenizes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .records import DUPLICATE_ID, MALFORMED, LoadResult, LoadStats, PromptRecord, check_text

Row = Mapping[str, Any]

HUB_NAMES = {
    "alpaca-gpt4": "vicgalle/alpaca-gpt4",
    "lmsys-chat-1m": "lmsys/lmsys-chat-1m",
    "evol-codealpaca-v1": "theblackcat102/evol-codealpaca-v1",
    "math-plus": "TIGER-Lab/MATH-plus",
}
LOCAL_FORMATS = (".jsonl", ".json", ".parquet")
OTHER_MODEL = "other model"
NO_USER_FIRST = "no user first turn"
NO_ANSWER = "no assistant answer"


class DatasetUnavailableError(RuntimeError):
    """A hub dataset could not be loaded (offline, gated, not cached)."""


class _Skip(Exception):  # noqa: N818 - control flow, not an error
    """Raised by a row extractor: skip the row for this reason."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a local .jsonl / .json / .parquet file, as dicts.

    Raises FileNotFoundError naming a missing file and ValueError naming the file (and line) when it cannot be
    parsed or has an unsupported suffix.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"dataset file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(p).to_pylist()
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"{p}: not a readable Parquet file ({e})") from e
    if suffix not in LOCAL_FORMATS:
        raise ValueError(f"{p}: unsupported file type {suffix!r}; use one of {', '.join(LOCAL_FORMATS)}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not UTF-8 text ({e})") from e
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            if not e.msg.startswith("Extra data"):  # else: JSON lines in a .json file, as the hub often has
                raise ValueError(f"{p}: garbled JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
        else:
            if not isinstance(data, list):
                raise ValueError(f"{p}: expected a JSON array or JSON lines, got {type(data).__name__}")
            return data
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: line {lineno} is not valid JSON ({e.msg})") from e
    return rows


def _hub_rows(name: str, split: str, streaming: bool) -> Iterator[Row]:
    """Rows of the hub dataset; any failure (import, network, offline, gated) -> DatasetUnavailableError."""
    hub = HUB_NAMES[name]
    hint = (f"pass a local file instead: load_dataset_records({name!r}, source='rows.jsonl') "
            f"(.jsonl, .json or .parquet rows with the fields of {hub})")
    try:
        import datasets
    except ImportError as e:
        raise DatasetUnavailableError(f"{hub} needs `datasets` (pip install datasets); or {hint}") from e
    try:
        # NOTE: streamed datasets fail while iterating, so the iteration sits inside the try as well.
        yield from datasets.load_dataset(hub, split=split, streaming=streaming)
    except Exception as e:
        gated = " It is gated: accept its terms on the Hub, then `hf auth login`." if "lmsys" in hub else ""
        raise DatasetUnavailableError(
            f"could not load the Hugging Face dataset {hub} ({type(e).__name__}: {e}). It is online-only: it "
            f"needs network access to the Hub or a cached copy (HF_HUB_OFFLINE=1 forbids downloads).{gated} "
            f"Offline, {hint}"
        ) from e


def _collect(name: str, rows: Iterable[Row], extract: Callable[[Row], tuple[Any, Any]],
             row_id: Callable[[Row, int], Any], limit: int | None, origin: str) -> LoadResult:
    """Run `extract` over the rows, counting skips; stop when `limit` records are kept."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    stats = LoadStats(source=f"{name} ({origin})")
    records: list[PromptRecord] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        if limit is not None and len(records) >= limit:
            break
        stats.read += 1
        if not isinstance(row, Mapping):
            stats.skip(MALFORMED, f"row {index}")
            continue
        rid = str(row_id(row, index))
        try:
            prompt, response = extract(row)
        except _Skip as skip:
            stats.skip(str(skip), rid)
            continue
        if not check_text(stats, rid, prompt, response):
            continue
        if rid in seen:
            stats.skip(DUPLICATE_ID, rid)
            continue
        seen.add(rid)
        records.append(PromptRecord(record_id=rid, prompt=prompt, response=response, source=name))
        stats.kept += 1
    return LoadResult(records, stats.done())


def _field(row: Row, *names: str) -> Any:
    """The first present field among `names` (alternative spellings); raises KeyError naming them all."""
    for n in names:
        if n in row:
            return row[n]
    raise KeyError(" or ".join(repr(n) for n in names))


def _load(name: str, source: str | Path | None, limit: int | None, split: str,
          extract: Callable[[Row], tuple[Any, Any]], row_id: Callable[[Row, int], Any]) -> LoadResult:
    rows: Iterable[Row]
    if source is None:
        rows, origin = _hub_rows(name, split, streaming=limit is not None), f"hub {HUB_NAMES[name]}"
    else:
        rows, origin = read_rows(source), str(source)

    def checked(row: Row) -> tuple[Any, Any]:
        try:
            return extract(row)
        except KeyError as e:  # the file is not in this dataset's format: fail loudly, not row by row
            raise ValueError(f"{origin}: a row has no field {e.args[0]} ({name} format expected): "
                             f"{json.dumps(row, default=str)[:200]}") from None

    return _collect(name, rows, checked, row_id, limit, origin)


def _alpaca(row: Row) -> tuple[Any, Any]:
    instruction, extra = _field(row, "instruction"), row.get("input") or ""
    if isinstance(instruction, str) and isinstance(extra, str) and extra.strip():
        instruction = f"{instruction}\n\n{extra}"
    return instruction, _field(row, "output")


def _lmsys(model: str) -> Callable[[Row], tuple[Any, Any]]:
    def extract(row: Row) -> tuple[Any, Any]:
        if _field(row, "model") != model:
            raise _Skip(OTHER_MODEL)
        conv = _field(row, "conversation")
        if not isinstance(conv, list) or not all(isinstance(m, Mapping) for m in conv[:2]):
            raise _Skip(MALFORMED)
        if not conv or conv[0].get("role") != "user":
            raise _Skip(NO_USER_FIRST)
        if len(conv) < 2 or conv[1].get("role") != "assistant":
            raise _Skip(NO_ANSWER)
        return conv[0].get("content"), conv[1].get("content")

    return extract


def load_alpaca_gpt4(source: str | Path | None = None, *, limit: int | None = None,
                     split: str = "train") -> LoadResult:
    """alpaca-gpt4: prompt = instruction, plus the input (if any) after a blank line; response = output."""
    return _load("alpaca-gpt4", source, limit, split, _alpaca, lambda row, i: f"alpaca-gpt4-{i}")


def load_lmsys_chat(source: str | Path | None = None, *, limit: int | None = None, split: str = "train",
                    model: str = "gpt-4") -> LoadResult:
    """lmsys-chat-1m rows answered by `model`: first user turn and the assistant's reply to it."""
    return _load("lmsys-chat-1m", source, limit, split, _lmsys(model),
                 lambda row, i: row.get("conversation_id") or f"lmsys-chat-1m-{i}")


def load_evol_codealpaca(source: str | Path | None = None, *, limit: int | None = None,
                         split: str = "train") -> LoadResult:
    """evol-codealpaca-v1: prompt = instruction, response = output."""
    return _load("evol-codealpaca-v1", source, limit, split,
                 lambda row: (_field(row, "instruction"), _field(row, "output")),
                 lambda row, i: f"evol-codealpaca-v1-{i}")


def load_math_plus(source: str | Path | None = None, *, limit: int | None = None,
                   split: str = "train") -> LoadResult:
    """MATH-plus: prompt = instruction (or query), response = output (or response)."""
    return _load("math-plus", source, limit, split,
                 lambda row: (_field(row, "instruction", "query"), _field(row, "output", "response")),
                 lambda row, i: f"math-plus-{i}")


LOADERS: dict[str, Callable[..., LoadResult]] = {
    "alpaca-gpt4": load_alpaca_gpt4,
    "lmsys-chat-1m": load_lmsys_chat,
    "evol-codealpaca-v1": load_evol_codealpaca,
    "math-plus": load_math_plus,
}


def load_dataset_records(name: str, source: str | Path | None = None, *, limit: int | None = None,
                         **kwargs: Any) -> LoadResult:
    """Load a dataset by name (see LOADERS); ValueError lists the valid names for an unknown one."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(LOADERS)}")
    return LOADERS[name](source, limit=limit, **kwargs)
