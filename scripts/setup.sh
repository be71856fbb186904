#!/usr/bin/env bash
# Idempotent set-up for a fresh clone: system ffmpeg, a virtualenv in .venv, torch, then this package.
# Why torch first: a bare `torch` requirement resolves to the CUDA build and pulls several GB of wheels on a
# CPU-only machine. We install TORCH_SPEC (default torch==2.13.0, which this machine kind has as a local
# CPU wheel) before the package, so pip sees torch satisfied. GPU hosts: set TORCH_INDEX_URL, e.g.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 make setup
# or use the Dockerfile, whose base image already has a CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-dev}

if ! command -v ffmpeg >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: ffmpeg missing; installing it with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg >/dev/null
  else
    echo "setup: ffmpeg is required (yt-dlp and media cutting use it). Install it, e.g. 'sudo apt-get install ffmpeg'." >&2
    exit 1
  fi
fi

# WordNet 3.0 for m2ugen-eval's METEOR (nltk cannot download its data offline; m2ugen_model/eval/wordnet.py
# reads Debian's copy). Without it METEOR is the only thing that stops working, so a non-root machine warns.
if ! [ -f /usr/share/wordnet/data.noun ] || ! [ -f /usr/share/wordnet/index.sense ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wordnet-base wordnet-sense-index >/dev/null 2>&1 || {
      DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wordnet-base wordnet-sense-index >/dev/null; }
  else
    echo "setup: warning: WordNet missing (apt-get install wordnet-base wordnet-sense-index); METEOR will not run" >&2
  fi
fi

# Headless Chromium for the dataset card's browser test (tests/pipeline/report/test_report.py opens the card and checks that
# every resource loads and the figures are drawn). Only the test needs it; a non-root machine warns.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
      DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }
  else
    echo "setup: warning: chromium missing (apt-get install chromium); the dataset card's browser test will skip" >&2
  fi
fi

# Real sounds for the hearing tests and the dev sets (m2ugen-data devset): fluidsynth + a General-MIDI
# soundfont + mma, and the Debian packages whose recorded music, effects, crowds and speech the
# recordings dev set cuts (scripts/devset-deps.sh, ~300 MB once). Not needed to build datasets, so a
# non-root machine only gets a warning and those tests skip.
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  bash scripts/devset-deps.sh all >/dev/null
else
  bash scripts/devset-deps.sh all >/dev/null 2>&1 || \
    echo "setup: warning: dev-set Debian packages missing (run scripts/devset-deps.sh as root); real-audio tests will skip" >&2
fi

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 required" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

stamp="$VENV/.m2ugen-installed"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1) $TORCH_SPEC $EXTRAS"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# pip's output is kept whole on failure; on success only its lines that matter (no mirror-location noise).
pip_install() {
  local log
  log=$(mktemp)
  if ! "$VENV/bin/python" -m pip install -q "$@" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; return 1
  fi
  grep -v -e "^WARNING: Location 'file://" "$log" | grep -i -e error -e "^WARNING" >&2 || true
  rm -f "$log"
}
echo "setup: installing into $VENV (first run takes a few minutes)" >&2
pip_install --upgrade pip setuptools wheel
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    pip_install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
  else
    pip_install "$TORCH_SPEC"
  fi
fi
pip_install -e ".[$EXTRAS]"
# The MusiCNN tagger's trained checkpoints (m2ugen_data.analysis.taggers reads and converts them once).
# --no-deps: musicnn's own code pins numpy<1.17 and TensorFlow 1, neither of which we import or need.
pip_install --no-deps "musicnn==0.1.0"
echo "$want" > "$stamp"
