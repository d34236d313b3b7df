"""Where things live: the repository, generated results and the model cache.

Every location can be overridden from the environment so the library works from an installed wheel too:
    LLMSCHED_RESULTS   results directory (default: <repo>/results)
    LLMSCHED_CACHE     prepared models (default: $XDG_CACHE_HOME/llmsched or ~/.cache/llmsched)
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def results_dir() -> Path:
    return Path(os.environ.get("LLMSCHED_RESULTS", REPO_ROOT / "results"))


def cache_dir() -> Path:
    if "LLMSCHED_CACHE" in os.environ:
        return Path(os.environ["LLMSCHED_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "llmsched"


def models_dir() -> Path:
    return cache_dir() / "models"
