"""The models this package prepares: their names, cache directories and recipe versions."""

from __future__ import annotations

from pathlib import Path

from llmsched.paths import models_dir

# Directory names under models_dir().
DIRS = {"tiny": "tiny-llama", "gemma": "gemma-3-270m", "minilm": "all-MiniLM-L6-v2",
        "smollm2": "SmolLM2-135M-Instruct", "mpnet": "all-mpnet-base-v2"}
MODEL_NAMES: tuple[str, ...] = tuple(DIRS)

# Bump a recipe version when the output of a preparation step changes; older caches are then rebuilt.
RECIPES = {"tiny": 1, "gemma": 1, "minilm": 1, "smollm2": 1, "mpnet": 1}


def check_name(name: str) -> str:
    """`name` if it is a model of this package; ValueError listing the valid names otherwise."""
    if name not in DIRS:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return name


def target(name: str) -> Path:
    """Where `name` is (or will be) prepared."""
    return models_dir() / DIRS[name]
