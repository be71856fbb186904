#!/usr/bin/env bash
# Install the Debian packages the real-music dev sets need (m2ugen-data devset build); idempotent.
#   gm:         fluidsynth + fluid-soundfont-gm render General MIDI; mma plays the accompaniment grooves.
#   scores:     more General-MIDI soundfonts (MuseScore General, TimGM6mb, csound's bank) and the MIDI and
#               score sources of the scores set (OpenMSX, midge's and abcmidi's examples); its folk-tune
#               collections and chorales come from the music21 wheel (pip, the dev extra).
#   recordings: real music and non-music (game soundtracks and effects, telephone prompts, spoken words,
#               crowds): about 300 MB of downloads. The lists must match
#               m2ugen_data.devset.render.APT_PACKAGES, soundfonts/score_sources.apt_packages() and
#               rec_sources.apt_packages() (tests/pipeline/devset/test_devset.py checks it).
# Root only. apt is shared with other jobs on this machine, so every apt call holds LOCK (flock).
# Usage: scripts/devset-deps.sh [gm|scores|recordings|all]   (default all)
set -euo pipefail

GM_PACKAGES=(fluidsynth fluid-soundfont-gm mma)
SCORES_PACKAGES=(
  abcmidi csound-soundfont midge musescore-general-soundfont-small openttd-openmsx timgm6mb-soundfont
)
RECORDINGS_PACKAGES=(
  asterisk-core-sounds-en-wav asterisk-moh-opsound-wav circuslinux-data colobot-common-sounds
  drascula-music etw-data extremetuxracer-data ktuberling-data lincity-ng-data warzone2100-music
)
LOCK=${M2UGEN_APT_LOCK:-/tmp/m2ugen-apt.lock}

case "${1:-all}" in
  gm) wanted=("${GM_PACKAGES[@]}") ;;
  scores) wanted=("${GM_PACKAGES[@]}" "${SCORES_PACKAGES[@]}") ;;
  recordings) wanted=("${RECORDINGS_PACKAGES[@]}") ;;
  all) wanted=("${GM_PACKAGES[@]}" "${SCORES_PACKAGES[@]}" "${RECORDINGS_PACKAGES[@]}") ;;
  *) echo "usage: $0 [gm|scores|recordings|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "devset-deps: all ${#wanted[@]} packages already installed" >&2
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "devset-deps: run as root to install: ${missing[*]}" >&2
  exit 1
fi
command -v apt-get >/dev/null 2>&1 || { echo "devset-deps: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
echo "devset-deps: installing ${missing[*]}" >&2
if ! flock "$LOCK" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  # stale package lists (a fresh container): refresh once, then retry
  flock "$LOCK" apt-get update -q
  flock "$LOCK" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
