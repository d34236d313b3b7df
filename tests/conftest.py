"""Shared fixtures. The engine tests use the tiny random-weight model that ./run_tests.sh prepares."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def pool_texts() -> list[str]:
    """Paragraphs of real English text (tests/fixtures/text_pool.txt) for building prompts."""
    return [p for p in (FIXTURES / "text_pool.txt").read_text(encoding="utf-8").split("\n\n") if p.strip()]


@pytest.fixture(scope="session")
def tok(pool_texts):
    """A small byte-level BPE tokenizer trained offline on the text pool."""
    from llmsched.workload.tokens import train_toy_tokenizer

    return train_toy_tokenizer(pool_texts, vocab_size=400)


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from llmsched.models import model_path

    return str(model_path("tiny"))
