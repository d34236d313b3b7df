"""Shared fixtures. The engine tests use the tiny random-weight model that ./run_tests.sh prepares."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from llmsched.models import model_path

    return str(model_path("tiny"))
