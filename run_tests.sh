#!/usr/bin/env bash
# The test suite. Sets up the environment on first use (artifact/bootstrap.sh), then runs pytest.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k policies   or   ./run_tests.sh -m "not vllm".
set -euo pipefail
cd "$(dirname "$0")"
source artifact/bootstrap.sh tiny minilm
exec "$LLMSCHED_PYTHON" -m pytest "$@"
