"""What the experiment drivers share: profile parameters and a command line that runs named stages.

    params = load_params("cpu")                   # artifact/profiles/cpu.yaml as a dict
    run_stages_cli(prog, doc, STAGES, lambda p: Experiments(p), show, argv)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from llmsched.paths import REPO_ROOT


def load_params(profile: str) -> dict[str, Any]:
    """A profile's parameters; ValueError listing the valid profiles for an unknown one."""
    import yaml

    path = REPO_ROOT / "artifact" / "profiles" / f"{profile}.yaml"
    if not path.exists():
        valid = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(valid)}")
    return yaml.safe_load(path.read_text())


def select_policies(specs: dict[str, Any], labels: Sequence[str] | None) -> dict[str, Any]:
    """The policy specs named in `labels` (all when None), in that order; ValueError naming unknown labels."""
    if labels is None:
        return specs
    unknown = [label for label in labels if label not in specs]
    if unknown:
        raise ValueError(f"unknown serving policies {unknown}; valid here: {', '.join(specs)}")
    return {label: specs[label] for label in labels}


def run_stages_cli(prog: str, description: str, stages: Sequence[str], build: Callable[[dict[str, Any]], Any],
                   show: Callable[[str, Any], None], argv: list[str] | None = None) -> int:
    """`prog --profile P --stages a,b`: build the experiments from the profile, run each stage, show its result."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--stages", default=",".join(stages), help=f"comma-separated, from {', '.join(stages)}")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s", stream=sys.stderr)
    chosen = [s for s in args.stages.split(",") if s]
    bad = [s for s in chosen if s not in stages]
    if bad:
        ap.error(f"unknown stages {bad}; valid: {', '.join(stages)}")
    exp = build(load_params(args.profile))
    for stage in chosen:
        show(stage, getattr(exp, stage)())
    return 0
