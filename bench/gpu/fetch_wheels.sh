#!/usr/bin/env bash
# Download, here, the wheels bench/gpu/run.sh needs on a bare GPU machine (one with only its own torch,
# transformers, accelerate, typer and rich): they go to .whl/ at the repository root (git-ignored), travel
# with the checkout (the device tool's `carry: [".whl"]`), and run.sh installs them with
# `pip install --no-index --target` before any section runs. Nothing is installed here.
#
#   bash bench/gpu/fetch_wheels.sh            # CPython 3.12, manylinux x86_64 (the lent GPU machines)
#   PY_VERSION=3.11 bash bench/gpu/fetch_wheels.sh
#
# Not fetched, so their sections say "skipped: needs X": vllm (gigabytes, its own environment) and
# bitsandbytes (about 70 MB, over the carry budget with the rest); diffusers is not used by any section.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="$root/.whl"
py="${PYTHON:-python3}"
version="${PY_VERSION:-3.12}"
# m2ugen-infer's request validation (pydantic and its own dependencies), its WAV writer (soundfile, which bundles
# libsndfile, and cffi), and the resampler the music encoder uses (soxr). Versions: the ones make setup installs.
wheels=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
        soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0)
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
mkdir -p "$dest"
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
  "${platforms[@]}" -d "$dest" "${wheels[@]}"
ls -1 "$dest"/*.whl | sed "s|$root/||"
du -sh "$dest" | cut -f1 | sed 's/^/total /'
