"""What every recipe shares: missing-package errors, version records, markers, build directories, publishing.

A model is built in a temporary sibling directory named after the building process (``.<dir>.tmp-<pid>``) and
renamed into place at the end, so an interrupted run never leaves a directory that looks finished; a build
directory whose process is gone is removed by the next build. A prepared directory ends with a ``MARKER`` file
(source package versions, recipe version, build time); a directory without it is redone.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from llmsched.models.catalog import RECIPES, target

log = logging.getLogger(__name__)

MARKER = "llmsched_prepared.json"


class MissingPackageError(ImportError):
    """A PyPI package that a preparation step needs is not installed."""

    def __init__(self, dist: str, purpose: str, extra: str = ""):
        msg = (
            f"{purpose} needs the PyPI package '{dist}', which is not installed. "
            f"Install it with: pip install {dist}{extra}"
        )
        super().__init__(msg, name=dist)
        self.dist = dist


def require(module: str, dist: str, purpose: str, extra: str = "") -> ModuleType:
    """Import ``module`` or raise MissingPackageError naming the PyPI distribution ``dist``."""
    if importlib.util.find_spec(module) is None:
        raise MissingPackageError(dist, purpose, extra)
    return importlib.import_module(module)


def versions(*dists: str) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent): the marker's record of sources."""
    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def read_marker(path: str | Path) -> dict | None:
    """The ``llmsched_prepared.json`` marker of a prepared model directory, or None if absent or unreadable."""
    try:
        return json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def marker_ok(name: str, path: Path) -> bool:
    """Whether `path` holds a finished build of `name` by its current recipe."""
    marker = read_marker(path)
    return marker is not None and marker.get("model") == name and marker.get("recipe") == RECIPES[name]


def write_marker(directory: Path, name: str, sources: dict, started: float, **details: Any) -> None:
    marker = {
        "model": name,
        "recipe": RECIPES[name],
        "sources": sources,
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - started, 1),
        **details,
    }
    (directory / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Log the start and the duration of a preparation step."""
    log.info("%s ...", what)
    t0 = time.perf_counter()
    yield
    log.info("%s: done in %.1f s", what, time.perf_counter() - t0)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours
        return True
    return True


def tmp_dir(final: Path) -> Path:
    """A fresh build directory next to ``final``; removes build directories left by dead processes."""
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.tmp-"
    for stale in final.parent.glob(prefix + "*"):
        pid = stale.name[len(prefix) :]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f"{prefix}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def publish(tmp: Path, final: Path) -> None:
    """Move a finished build directory into place (replacing an old one)."""
    umask = os.umask(0)
    os.umask(umask)
    # safetensors files are written 0600 (temp-file rename); give them the umask's mode like the rest.
    for f in tmp.rglob("*"):
        if f.is_file() and not f.is_symlink():
            f.chmod(0o666 & ~umask)
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        shutil.rmtree(final)
    try:
        os.replace(tmp, final)
    except OSError:
        # Another process published first; keep its result if it is complete.
        if (final / MARKER).exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise


def build(name: str, force: bool, builder: Callable[[Path], None]) -> Path:
    """Run ``builder(tmp)`` into a build directory and publish it, unless `name` is prepared (or ``force``)."""
    final = target(name)
    if not force and final.is_dir() and marker_ok(name, final):
        log.info("%s: already prepared at %s", name, final)
        return final
    if final.exists() and not force:
        log.info("%s: %s is incomplete or from an older recipe; rebuilding", name, final)
    tmp = tmp_dir(final)
    try:
        builder(tmp)
        publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def patch_tokenizer_config(directory: Path, **updates: Any) -> None:
    """Set keys in tokenizer_config.json and drop load-time-only keys transformers writes there."""
    path = directory / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    for k in ("is_local", "local_files_only"):
        cfg.pop(k, None)
    cfg.update(updates)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def strip_quantization(model: Any) -> None:
    """Forget that the model came from a GGUF: the dequantised model refuses to save otherwise."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            try:
                delattr(model, attr)
            except AttributeError:
                setattr(model, attr, None)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
