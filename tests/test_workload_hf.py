"""Hugging Face dataset loaders on local fixtures, and their offline error (llmsched.workload.hf_datasets)."""

from __future__ import annotations

import json

import pytest

from factories import FIXTURES
from llmsched.workload.hf_datasets import (
    HUB_NAMES,
    DatasetUnavailableError,
    load_alpaca_gpt4,
    load_dataset_records,
    load_evol_codealpaca,
    load_lmsys_chat,
    load_math_plus,
    read_rows,
)


def test_alpaca_gpt4():
    records, stats = load_alpaca_gpt4(FIXTURES / "alpaca_gpt4_sample.jsonl")
    assert [r.record_id for r in records] == [f"alpaca-gpt4-{i}" for i in (0, 1, 2, 5)]
    assert records[0].prompt == "Give three tips for staying healthy."
    assert records[1].prompt == "Classify the following animal as a mammal or a reptile.\n\nKomodo dragon"
    assert records[1].response == "The Komodo dragon is a reptile."
    assert {r.source for r in records} == {"alpaca-gpt4"}
    assert dict(stats.skipped) == {"empty prompt": 1, "empty answer": 1, "non-text value": 1}
    assert stats.read == 7 and stats.kept == 4
    assert stats.examples["non-text value"] == ["alpaca-gpt4-6"]


def test_lmsys_keeps_gpt4_first_turns_only():
    records, stats = load_lmsys_chat(FIXTURES / "lmsys_chat_sample.jsonl")
    assert [r.record_id for r in records] == ["c0a1", "c0a3", "c0a9"]
    assert records[1].prompt == "Write a limerick about GPUs."
    assert records[1].response.startswith("A GPU fast as can be")
    assert dict(stats.skipped) == {"other model": 3, "no user first turn": 1, "no assistant answer": 1,
                                   "empty prompt": 1, "non-text value": 1}
    assert stats.read == 10
    vicuna, _ = load_lmsys_chat(FIXTURES / "lmsys_chat_sample.jsonl", model="vicuna-13b")
    assert [r.record_id for r in vicuna] == ["c0a2"]


def test_evol_codealpaca_json_array_and_parquet(tmp_path):
    records, stats = load_evol_codealpaca(FIXTURES / "evol_codealpaca_sample.json")
    assert len(records) == 3 and dict(stats.skipped) == {"empty answer": 1}
    assert records[0].response.startswith("def fib(n):")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = json.loads((FIXTURES / "evol_codealpaca_sample.json").read_text(encoding="utf-8"))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "evol.parquet")
    again, _ = load_evol_codealpaca(tmp_path / "evol.parquet")
    assert again == records


def test_math_plus_both_field_spellings(tmp_path):
    records, _ = load_math_plus(FIXTURES / "math_plus_sample.jsonl")
    assert len(records) == 3 and records[0].prompt == "What is $2^{10}$?"
    alt = tmp_path / "math.jsonl"
    alt.write_text(json.dumps({"query": "1 + 1?", "response": "2. The answer is 2."}) + "\n")
    (rec,), _ = load_math_plus(alt)
    assert (rec.prompt, rec.response) == ("1 + 1?", "2. The answer is 2.")


def test_limit_and_factory():
    records, stats = load_dataset_records("lmsys-chat-1m", FIXTURES / "lmsys_chat_sample.jsonl", limit=2)
    assert [r.record_id for r in records] == ["c0a1", "c0a3"] and stats.read == 3
    with pytest.raises(ValueError, match="alpaca-gpt4, lmsys-chat-1m, evol-codealpaca-v1, math-plus"):
        load_dataset_records("no-such-dataset")


def test_bad_files_raise_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"garbled.jsonl: line 2 is not valid JSON"):
        load_alpaca_gpt4(FIXTURES / "garbled.jsonl")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_math_plus(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match=r"rows.csv: unsupported file type"):
        (tmp_path / "rows.csv").write_text("a,b\n")
        read_rows(tmp_path / "rows.csv")
    wrong_format = r"lmsys_chat_sample.jsonl: a row has no field 'instruction'"
    with pytest.raises(ValueError, match=wrong_format):
        load_alpaca_gpt4(FIXTURES / "lmsys_chat_sample.jsonl")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match="broken.parquet: not a readable Parquet file"):
        load_evol_codealpaca(broken)


@pytest.mark.parametrize("name", list(HUB_NAMES))
def test_hub_path_offline_names_the_dataset(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets.config
    import huggingface_hub.constants

    # the libraries read the variables at import time: set their flags too, in case they were imported earlier
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetUnavailableError) as err:
        load_dataset_records(name)
    msg = str(err.value)
    assert HUB_NAMES[name] in msg and "online-only" in msg and "source=" in msg
