"""The project's Jupyter kernel, `llmsched`: the notebooks name it, the pipeline runs them on it, JupyterLab offers it.

    python -m llmsched.kernel            # register it for this environment (idempotent; run_all.sh and
                                         # run_tests.sh do it through artifact/bootstrap.sh)

The kernel is this interpreter (the environment with vLLM and llmsched) with the environment variables the
notebooks need when they are opened by hand rather than through ./run_all.sh: offline Hugging Face, vLLM's
engine in-process, no tokenizer threads. It is registered under the environment's own prefix
(<sys.prefix>/share/jupyter/kernels/llmsched), where the environment's jupyter and papermill find it; nothing is
written to the user's home.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

KERNEL_NAME = "llmsched"
DISPLAY_NAME = "Python (llmsched)"
# what artifact/bootstrap.sh exports for ./run_all.sh, for a notebook opened in JupyterLab
KERNEL_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}


def kernel_dir(prefix: str | Path | None = None) -> Path:
    """Where the kernel spec of `prefix` (default: this environment) lives."""
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME


def _is_current(spec: dict[str, Any]) -> bool:
    """Whether a kernel spec runs this interpreter's ipykernel with KERNEL_ENV."""
    argv = spec.get("argv") or [None]
    return (argv[0] == sys.executable and "ipykernel_launcher" in argv and spec.get("display_name") == DISPLAY_NAME
            and spec.get("env") == KERNEL_ENV)


def ensure_kernel(prefix: str | Path | None = None) -> Path:
    """Register the `llmsched` kernel for this interpreter under `prefix` unless it already is; its folder.

    A spec left by another interpreter (a moved or rebuilt environment) is replaced."""
    folder = kernel_dir(prefix)
    spec = folder / "kernel.json"
    if spec.exists():
        try:
            if _is_current(json.loads(spec.read_text())):
                return folder
        except json.JSONDecodeError:
            pass
    from ipykernel import kernelspec

    kernelspec.install(kernel_name=KERNEL_NAME, display_name=DISPLAY_NAME, prefix=str(prefix or sys.prefix),
                       env=dict(KERNEL_ENV))
    have = json.loads(spec.read_text())
    if not _is_current(have):  # ipykernel writes sys.executable and the env; say so if that changes
        raise RuntimeError(f"the kernel spec {spec} does not run {sys.executable} with {KERNEL_ENV}: {have}")
    logger.info("registered the Jupyter kernel %r (%s) in %s", KERNEL_NAME, sys.executable, folder)
    return folder


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = ensure_kernel()
    print(f"Jupyter kernel {KERNEL_NAME!r}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
