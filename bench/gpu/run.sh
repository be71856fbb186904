#!/usr/bin/env bash
# Every GPU measurement in one go, printed as one table (bench/gpu/gpu_bench.py has the details).
#
#   bash bench/gpu/run.sh              # on a machine with a CUDA GPU: < 8 minutes on one H100/H200
#   bash bench/gpu/run.sh --cpu-safe   # or M2UGEN_CPU_SAFE=1: skip what needs CUDA, run the rest small on CPU
#   M2UGEN_GPU_ROWS=dir bash bench/gpu/run.sh   # also keep one JSON row per section in dir
#
# Each section runs in its own process (fresh CUDA context and memory, a crash costs one row) under a
# time cap; the caps are cut to what is left of the 8-minute budget (M2UGEN_GPU_BUDGET_S).
# Weights are random and written to a temporary directory; nothing is downloaded.
#
# A bare GPU machine (its own torch/transformers/accelerate, no .venv, no install of this project) works too:
# the project is imported from this checkout (PYTHONPATH), and the few wheels it needs beyond what such a
# machine has are installed from .whl/ when present (bench/gpu/fetch_wheels.sh downloads them; carry .whl).
# A section whose optional dependency is still missing reports "skipped: needs X".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$py" ]] || py="$(command -v python3)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$root/.whl/*.whl" >/dev/null; then
  site="${TMPDIR:-/tmp}/m2ugen-gpu-site"
  if "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      "$root"/.whl/*.whl >&2; then
    export PYTHONPATH="$root:$site${PYTHONPATH#"$root"}"
  else
    echo "the wheels in .whl/ do not install for $py (another Python version?); sections that need them say so" >&2
  fi
fi
echo "m2ugen from $("$py" -c 'import m2ugen_model, os; print(os.path.dirname(os.path.dirname(m2ugen_model.__file__)))')" >&2

flag=()
budget="${M2UGEN_GPU_BUDGET_S:-470}"
if [[ "${1:-}" == "--cpu-safe" || "${M2UGEN_CPU_SAFE:-0}" == "1" ]]; then
  flag=(--cpu-safe)
  budget="${M2UGEN_GPU_BUDGET_S:-1200}"  # a shared CPU box is slow; the caps below still bound each section
fi
if [[ -n "${M2UGEN_GPU_ROWS:-}" ]]; then  # keep each section's JSON row there
  rows="$M2UGEN_GPU_ROWS"
  mkdir -p "$rows"
else
  rows="$(mktemp -d)"
  trap 'rm -rf "$rows"' EXIT
fi

# section and its own cap in seconds
sections=(train7b:100 fsdp7b:100 infer:80 caption:100 vllm:150 infer7b:120)
start=$SECONDS
status=0
for entry in "${sections[@]}"; do
  name="${entry%%:*}"
  cap="${entry##*:}"
  left=$(( budget - (SECONDS - start) ))
  (( ${#flag[@]} )) && cap=$(( cap * 4 ))
  (( left < cap )) && cap=$left
  if (( cap < 10 )); then
    echo "skipping $name: time budget spent" >&2
    continue
  fi
  echo "== $name (cap ${cap}s)" >&2
  timeout --kill-after=10 "$cap" "$py" "$here/gpu_bench.py" "$name" --out "$rows/$name.json" "${flag[@]}" \
    >&2 || status=1
done
"$py" "$here/gpu_bench.py" table "$rows"
echo "total $(( SECONDS - start )) s" >&2
exit $status
