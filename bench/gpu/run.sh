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
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$py" ]] || py="$(command -v python3)"

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
