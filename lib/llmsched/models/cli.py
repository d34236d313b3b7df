"""Preparing models by name, and the command line ``python -m llmsched.models``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from llmsched.models.build import step
from llmsched.models.catalog import MODEL_NAMES, check_name
from llmsched.models.gemma import prepare_gemma
from llmsched.models.minilm import prepare_minilm
from llmsched.models.mpnet import prepare_mpnet
from llmsched.models.resolve import model_path
from llmsched.models.smollm2 import prepare_smollm2
from llmsched.models.tiny import prepare_tiny
from llmsched.paths import models_dir

log = logging.getLogger(__name__)

_PREPARERS: dict[str, Callable[..., Path]] = {
    "tiny": prepare_tiny,
    "gemma": prepare_gemma,
    "minilm": prepare_minilm,
    "smollm2": prepare_smollm2,
    "mpnet": prepare_mpnet,
}


def prepare(names: list[str], force: bool = False) -> dict[str, Path]:
    """Prepare several models (names from MODEL_NAMES) in order; returns name -> directory."""
    for name in names:
        check_name(name)
    out: dict[str, Path] = {}
    for name in names:
        with step(f"prepare {name}"):
            out[name] = _PREPARERS[name](force=force)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmsched.models", description="Prepare the artifact's models offline."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_prep = sub.add_parser("prepare", help="build models into the cache (idempotent)")
    p_prep.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(MODEL_NAMES)} or all")
    p_prep.add_argument("--force", action="store_true", help="rebuild even if already prepared")
    p_path = sub.add_parser("path", help="print the directory of a prepared model")
    p_path.add_argument("name", metavar="NAME", help=", ".join(MODEL_NAMES))
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="[llmsched.models] %(message)s", stream=sys.stderr)
    try:
        if args.cmd == "prepare":
            names = list(MODEL_NAMES) if args.names == ["all"] else args.names
            t0 = time.perf_counter()
            paths = prepare(names, force=args.force)
            log.info("all done in %.1f s (cache: %s)", time.perf_counter() - t0, models_dir())
            for name, path in paths.items():
                print(f"{name}\t{path}")
        else:
            print(model_path(args.name))
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
