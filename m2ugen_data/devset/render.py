"""The Debian tools behind the General-MIDI dev set: MMA (chart -> MIDI) and fluidsynth (MIDI -> audio).

Both run as subprocesses with argument lists in a private temporary directory. A missing tool is one
``MissingDependencyError`` naming the apt packages, because these are system packages pip cannot provide.

Timing: fluidsynth starts a note a few milliseconds after its MIDI time (a player-timer quantum plus the
attack of the sample). ``render_latency_s`` measures that once per renderer on a side-stick click, the
sharpest attack in the GM kit, and the dev set trims each excerpt that much later, so truth beat times are
where the rendered onsets are.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from m2ugen_data.devset import soundfonts
from m2ugen_data.errors import M2UGenError, MissingDependencyError

SAMPLE_RATE = 44100
SOUNDFONT_ENV = "M2UGEN_SOUNDFONT"
APT_PACKAGES = ("fluidsynth", "fluid-soundfont-gm", "mma")
# A render takes seconds of CPU, but a niced build on a busy shared machine can wait minutes for it; the
# limit only catches a renderer that hangs.
RENDER_TIMEOUT_S = 3600
_HINT = f"install them with 'apt-get install {' '.join(APT_PACKAGES)}' (or run scripts/devset-deps.sh as root)"


class RenderError(M2UGenError):
    """MMA or fluidsynth ran but failed on an input (a bad chart or MIDI file)."""


@dataclass(frozen=True)
class Tools:
    fluidsynth: str
    soundfont: Path
    mma: str

    @functools.cached_property
    def identity(self) -> str:
        """What a rendered file depends on besides its MIDI: both versions and the soundfont's identity.

        Part of every cache key, so upgrading a package or swapping the soundfont re-renders."""
        st = self.soundfont.stat()
        parts = [_version([self.fluidsynth, "--version"]), _version([self.mma, "-v"]), self.soundfont.name]
        return "|".join(parts + [str(st.st_size), str(int(st.st_mtime))])


def find_tools() -> Tools:
    """The binaries and the default soundfont (FluidR3, or $M2UGEN_SOUNDFONT), or one error that names every
    apt package still missing. Sets that render with several soundfonts swap ``Tools.soundfont`` per clip."""
    fluid = shutil.which("fluidsynth")
    mma = shutil.which("mma")
    env = os.environ.get(SOUNDFONT_ENV)
    candidates = [Path(env)] if env else [soundfonts.DEFAULT.path]
    soundfont = next((p for p in candidates if p.is_file()), None)
    missing = []
    if fluid is None:
        missing.append("fluidsynth (the 'fluidsynth' binary)")
    if soundfont is None:
        missing.append(f"fluid-soundfont-gm ({candidates[0]}; or set {SOUNDFONT_ENV})")
    if mma is None:
        missing.append("mma (the 'mma' binary)")
    if missing or fluid is None or mma is None or soundfont is None:
        raise MissingDependencyError(
            f"the General-MIDI dev set needs Debian packages that are missing: {'; '.join(missing)}; {_HINT}"
        )
    return Tools(fluid, soundfont, mma)


def _version(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Warning")]  # mma warns about a missing plugin dir
    return lines[0] if lines else "unknown"


def run_mma(tools: Tools, chart: str) -> mido.MidiFile:
    """MMA's MIDI for a chord chart (MMA reads grooves from its installed library, offline)."""
    with tempfile.TemporaryDirectory(prefix="m2ugen-mma-") as tmp:
        src, out = Path(tmp) / "piece.mma", Path(tmp) / "piece.mid"
        src.write_text(chart)
        proc = subprocess.run(
            # relative names: MMA writes the input file name into the MIDI, and the cache key hashes it
            [tools.mma, "-f", out.name, src.name],
            capture_output=True,
            text=True,
            cwd=tmp,
            check=False,
            timeout=120,
        )
        errors = [ln for ln in proc.stdout.splitlines() + proc.stderr.splitlines() if ln.startswith("Error")]
        if proc.returncode != 0 or errors or not out.is_file():
            raise RenderError(f"mma failed: {' '.join(errors) or proc.stderr.strip()[-300:] or 'no output'}")
        return mido.MidiFile(str(out))


def midi_bytes(mid: mido.MidiFile) -> bytes:
    """Serialised MIDI (what the cache key hashes and fluidsynth reads)."""
    with tempfile.TemporaryDirectory(prefix="m2ugen-midi-") as tmp:
        path = Path(tmp) / "x.mid"
        mid.save(str(path))
        return path.read_bytes()


def render_midi(tools: Tools, data: bytes, sample_rate: int = SAMPLE_RATE, effects: bool = True) -> np.ndarray:
    """Render MIDI bytes to mono float32 (the mean of fluidsynth's stereo), with reverb and chorus on
    unless ``effects`` is false (timing checks, where a reverb tail would mask the next onset).

    One synthesis thread, so a render is bit-identical run to run; the pool parallelises across pieces."""
    fx = "1" if effects else "0"
    with tempfile.TemporaryDirectory(prefix="m2ugen-fluid-") as tmp:
        src, out = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        src.write_bytes(data)
        cmd = [
            tools.fluidsynth, "-n", "-i", "-q",
            "-r", str(sample_rate),
            "-o", "synth.cpu-cores=1",
            # decode a compressed (sf3) bank's samples as notes need them, not all at start (same audio)
            "-o", "synth.dynamic-sample-loading=1",
            "-o", f"synth.reverb.active={fx}", "-o", f"synth.chorus.active={fx}",
            "-O", "float", "-T", "wav",
            "-F", str(out),
            str(tools.soundfont), str(src),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=RENDER_TIMEOUT_S)
        if proc.returncode != 0 or not out.is_file():
            raise RenderError(f"fluidsynth failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        y, sr = sf.read(out, dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RenderError(f"fluidsynth wrote {sr} Hz, asked for {sample_rate}")
    return y.mean(axis=1)


def click_midi(times_s: list[float], note: int = 37, tempo_bpm: float = 120.0) -> mido.MidiFile:
    """Percussion-channel hits (default: side stick) at the given seconds, for timing checks."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))
    ticks_per_s = 480 * tempo_bpm / 60.0
    events = sorted(
        [(round(t * ticks_per_s), "on") for t in times_s] + [(round(t * ticks_per_s) + 120, "off") for t in times_s]
    )
    last = 0
    for tick, kind in events:
        msg = "note_on" if kind == "on" else "note_off"
        track.append(mido.Message(msg, channel=9, note=note, velocity=100 if kind == "on" else 0, time=tick - last))
        last = tick
    return mid


def first_sound_after(y: np.ndarray, sr: int, t: float, window_s: float = 0.1, floor: float = 1e-4) -> float:
    """Seconds from ``t`` to the first sample within ``window_s`` that rises above both ``floor`` and four
    times the peak of the 20 ms before ``t`` (so an earlier note's tail is not taken for the onset); nan if
    none does."""
    a = int(round(t * sr))
    before = np.abs(y[max(0, a - int(0.02 * sr)) : a])
    level = max(floor, 4.0 * float(before.max()) if before.size else 0.0)
    hits = np.flatnonzero(np.abs(y[a : a + int(window_s * sr)]) > level)
    return float(hits[0] / sr) if hits.size else float("nan")


@functools.cache
def _latency_cached(tools: Tools) -> float:
    times = [1.0, 2.0, 3.0, 4.0]
    y = render_midi(tools, midi_bytes(click_midi(times)), effects=False)
    lags = [first_sound_after(y, SAMPLE_RATE, t) for t in times]
    if not all(np.isfinite(lags)):
        raise RenderError(f"fluidsynth rendered no click for the latency check ({tools.soundfont})")
    return round(float(np.median(lags)), 5)


def render_latency_s(tools: Tools) -> float:
    """Seconds between a note's MIDI time and its first rendered sample (measured once per process)."""
    return _latency_cached(tools)


def content_key(*parts: bytes | str) -> str:
    """A short sha256 over cache-relevant inputs (MIDI bytes, excerpt window, renderer identity)."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]
