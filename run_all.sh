#!/usr/bin/env bash
# Reproduce: run the numbered notebooks in order with papermill for a profile.
#
#   ./run_all.sh                 default profile: gpu when a CUDA GPU is present, else cpu
#   ./run_all.sh smoke           minutes; what the tests run
#   ./run_all.sh cpu --force     rerun stages whose results exist
#
# Profiles are parameter files in artifact/profiles/; notebooks read nothing else. Executed copies go to
# results/executed/<profile>/; the run stops at the first failing notebook and names it.
set -euo pipefail
cd "$(dirname "$0")"

profile="" force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "run_all.sh: unknown option $arg" >&2; exit 2 ;;
    *) [ -z "$profile" ] || { echo "run_all.sh: one profile at a time" >&2; exit 2; }; profile="$arg" ;;
  esac
done
if [ -z "$profile" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then profile=gpu; else profile=cpu; fi
fi
params="artifact/profiles/$profile.yaml"
if [ ! -f "$params" ]; then
  echo "run_all.sh: unknown profile '$profile'; valid profiles: $(ls artifact/profiles | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
  exit 2
fi

models=$(sed -n 's/^model: *\([a-z]*\) *\(#.*\)\?$/\1/p' "$params")
case "$models" in tiny|gemma) ;; *) models="" ;; esac
source artifact/bootstrap.sh $models minilm

out="${LLMSCHED_RESULTS:-results}/executed/$profile"
mkdir -p "$out"
export LLMSCHED_FORCE=$force
summary=()
t_all=$SECONDS
for nb in notebooks/[0-9][0-9]_*.ipynb; do
  name=$(basename "$nb")
  t0=$SECONDS
  echo "== $name ($profile)"
  if ! "$LLMSCHED_PYTHON" -m papermill "$nb" "$out/$name" -f "$params" --cwd notebooks --log-output --no-progress-bar \
      > "$out/${name%.ipynb}.log" 2>&1; then
    echo "run_all.sh: $name FAILED after $((SECONDS - t0)) s; log: $out/${name%.ipynb}.log" >&2
    grep -E "PapermillExecutionError|Exception encountered at|Error" "$out/${name%.ipynb}.log" | tail -n 5 >&2 || true
    echo "the executed copy with the failing cell marked is $out/$name" >&2
    exit 1
  fi
  summary+=("$(printf '%-40s %6d s' "$name" $((SECONDS - t0)))")
done
echo
echo "profile $profile: all notebooks ran in $((SECONDS - t_all)) s"
printf '  %s\n' "${summary[@]}"
