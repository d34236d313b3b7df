#!/usr/bin/env bash
# Reproduce: run the numbered notebooks in order with papermill for a profile.
#
#   ./run_all.sh                 default profile: gpu when a CUDA GPU is present, else cpu
#   ./run_all.sh smoke           minutes; what the tests run
#   ./run_all.sh cpu --force     rerun stages whose results exist
#   ./run_all.sh cpu --only 06   run only the listed notebooks (by number), e.g. the figures after an edit
#   ./run_all.sh --lab           open JupyterLab on notebooks/ with the project's kernel (step through by hand);
#                                options after --lab go to JupyterLab, e.g. --no-browser --port 8890
#
# Profiles are parameter files in artifact/profiles/; notebooks read nothing else. Executed copies go to
# results/executed/<profile>/. A stage whose outputs exist for the same notebook and parameters is skipped; the
# run stops at the first failing notebook and names it and the failing cell (llmsched.pipeline).
set -euo pipefail
cd "$(dirname "$0")"

profile="" extra=() lab="" lab_args=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --force) extra+=(--force) ;;
    --only) [ "$#" -ge 2 ] || { echo "run_all.sh: --only needs notebook numbers, e.g. --only 02,06" >&2; exit 2; }
            extra+=(--only "$2"); shift ;;
    --lab) lab=1; shift; lab_args=("$@"); break ;;  # the rest goes to JupyterLab (e.g. --no-browser --port 8890)
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "run_all.sh: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$profile" ] || { echo "run_all.sh: one profile at a time" >&2; exit 2; }; profile="$1" ;;
  esac
  shift
done
if [ -n "$lab" ]; then
  # JupyterLab of the project's environment on notebooks/; each notebook's kernel is `llmsched`, its defaults are
  # the smoke profile's, and `profile = "cpu"` in its parameters cell shows (and reuses) the cpu run's results
  source artifact/bootstrap.sh tiny minilm
  [ "$(id -u)" != 0 ] || lab_args=(--allow-root "${lab_args[@]}")  # containers often run as root; Jupyter refuses it
  exec "$LLMSCHED_PYTHON" -m jupyterlab --notebook-dir=notebooks "${lab_args[@]}"
fi
if [ -z "$profile" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then profile=gpu; else profile=cpu; fi
fi
params="artifact/profiles/$profile.yaml"
if [ ! -f "$params" ]; then
  echo "run_all.sh: unknown profile '$profile'; valid profiles: $(ls artifact/profiles/*.yaml | xargs -n1 basename | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
  exit 2
fi

# Offline models to prepare: the serving model and the backbones of the ranker ablation, where they are
# prepared names (tiny, gemma, smollm2, minilm, mpnet); anything else is a folder or a hub id that vLLM / transformers load.
models=$(sed -n 's/^model: *\([a-z]*\) *\(#.*\)\?$/\1/p' "$params")
case "$models" in tiny|gemma|smollm2) ;; *) models="" ;; esac
backbones=$(sed -n 's/^pars_backbones:\([^#]*\).*$/\1/p' "$params" | grep -o -w -E 'tiny|gemma|smollm2|minilm|mpnet' || true)
source artifact/bootstrap.sh $(printf '%s\n' $models $backbones minilm | sort -u)

exec "$LLMSCHED_PYTHON" -m llmsched.pipeline "$profile" "${extra[@]}"
