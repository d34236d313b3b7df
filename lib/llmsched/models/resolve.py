"""From a model argument to a folder and a tokenizer: the one place a model name becomes a path.

A model argument is a prepared model name (MODEL_NAMES), a local folder or file, or a hub id ("org/name").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from llmsched.models.build import marker_ok
from llmsched.models.catalog import MODEL_NAMES, check_name, target
from llmsched.models.minilm import minilm_ok
from llmsched.paths import models_dir

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def is_prepared(name: str) -> bool:
    """Whether ``name`` has a finished preparation in the cache."""
    check_name(name)
    path = target(name)
    if name == "minilm":
        return minilm_ok(path)
    return path.is_dir() and marker_ok(name, path)


def model_path(name: str) -> Path:
    """Directory of a prepared model; FileNotFoundError (naming the command to run) if not prepared."""
    check_name(name)
    if not is_prepared(name):
        raise FileNotFoundError(
            f"model {name!r} is not prepared in {models_dir()}; run: python -m llmsched.models prepare {name}"
        )
    return target(name)


def resolve_model(name_or_path: str | os.PathLike[str], *, bare_hub_ids: bool = False) -> Path | str:
    """Where a model argument points: a local path (a Path) or a hub id (a str, for transformers or vLLM).

    Tried in order: an existing path is itself (``~`` expanded); a prepared model name is its cache directory
    (`model_path`: FileNotFoundError naming the command that prepares it); a path object that does not exist
    raises FileNotFoundError; a string with a "/" is a hub id. A bare word that is none of these is a hub id
    only with ``bare_hub_ids`` (legacy ids such as "bert-base-uncased"); otherwise it is taken for a mistyped
    model name: ValueError listing the valid names.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if text in MODEL_NAMES:
        return model_path(text)
    if not isinstance(name_or_path, str):
        raise FileNotFoundError(f"model folder not found: {path}")
    if "/" in text or bare_hub_ids:
        return text
    return model_path(text)  # raises ValueError listing the valid names


def load_model_tokenizer(name_or_path: str | os.PathLike[str], *,
                         bare_hub_ids: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer of a model argument (see `resolve_model`).

    A local folder is read without contacting the hub (``local_files_only``); a hub id goes through
    transformers as is (online unless HF_HUB_OFFLINE is set).
    """
    from transformers import AutoTokenizer

    where = resolve_model(name_or_path, bare_hub_ids=bare_hub_ids)
    if isinstance(where, Path):
        return AutoTokenizer.from_pretrained(str(where), local_files_only=True)
    return AutoTokenizer.from_pretrained(where)
