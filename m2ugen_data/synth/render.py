"""Mix a composition with an instrumentation into samples, and the trouble that real uploads carry.

Notes of one part that share pitch and length are rendered once and reused: comping chords repeat the
same few notes, so the cache is what keeps rendering far above real time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyloudnorm

from m2ugen_data.synth.composition import Composition, Part
from m2ugen_data.synth.instruments import (
    BASS_TIMBRES,
    DRUM_KIT,
    HARMONY_TIMBRES,
    LEAD_TIMBRES,
    TIMBRES,
    DrumKit,
    Timbre,
    drum_kit,
    drum_sounds,
)


@dataclass(frozen=True)
class Instrumentation:
    bass: str
    harmony: str
    lead: str
    kit: DrumKit

    def labels(self) -> list[tuple[str, str]]:
        """(AudioSet mid, display name) per distinct instrument, in a stable order."""
        seen: dict[str, str] = {}
        for name in (self.harmony, self.lead, self.bass):
            seen.setdefault(TIMBRES[name].label_id, TIMBRES[name].label_name)
        seen.setdefault(*DRUM_KIT)
        return sorted(seen.items())


def choose_instrumentation(rng: np.random.Generator, avoid: Sequence[Instrumentation] = ()) -> Instrumentation:
    """A random instrumentation whose label set differs from each one in ``avoid`` (sibling renders)."""
    taken = [frozenset(i.labels()) for i in avoid]
    for _ in range(200):
        harmony = str(rng.choice(HARMONY_TIMBRES))
        lead = str(rng.choice([t for t in LEAD_TIMBRES if t != harmony]))
        inst = Instrumentation(str(rng.choice(BASS_TIMBRES)), harmony, lead, drum_kit(rng))
        if frozenset(inst.labels()) not in taken:
            return inst
    raise RuntimeError("no distinct instrumentation left")  # unreachable with the timbre tables above


def _midi_hz(m: int) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12.0)


def _add(buf: np.ndarray, x: np.ndarray, start: int, gain: float) -> None:
    if start >= buf.size:
        return
    end = min(buf.size, start + x.size)
    buf[start:end] += gain * x[: end - start]


def _render_part(buf: np.ndarray, part: Part, timbre: Timbre, sr: int, rng: np.random.Generator, gain: float) -> None:
    cache: dict[tuple[int, int], np.ndarray] = {}
    for onset, dur, pitch, vel in zip(part.onsets, part.durations, part.pitches, part.velocities):
        n = round((dur + timbre.release_s) * sr)
        key = (int(pitch), n)
        if key not in cache:
            cache[key] = timbre.note(_midi_hz(int(pitch)), n, sr, rng)
        _add(buf, cache[key], round(onset * sr), gain * vel)


def _harmony_part(comp: Composition, timbre: Timbre) -> Part:
    """Sustained timbres hold each chord for its bar; struck ones comp on the beats (2 and 3 in a waltz)."""
    events: list[tuple[float, float, int, float]] = []
    period = 60.0 / comp.tempo_bpm
    for chord in comp.chords:
        if timbre.percussive:
            for t, strong in zip(chord.beats, chord.strong):
                if comp.meter == 3 and strong:
                    continue
                events += [(t, 0.8 * period, p, 0.8 if strong else 0.65) for p in chord.pitches]
        else:
            events += [(chord.onset, chord.duration * 0.97, p, 0.7) for p in chord.pitches]
    return Part.of(events)


def render(comp: Composition, inst: Instrumentation, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Float mix at an arbitrary level; the corpus writer sets the loudness."""
    buf = np.zeros(round(comp.duration_s * sr), dtype=np.float32)
    sounds = drum_sounds(inst.kit, sr, rng)
    drum_gain = {"kick": 0.9, "snare": 0.55, "hat": 0.18, "crash": 0.18}
    for voice, (onsets, vels) in comp.drums.items():
        for t, v in zip(onsets, vels):
            _add(buf, sounds[voice], round(t * sr), drum_gain[voice] * v)
    _render_part(buf, comp.bass, TIMBRES[inst.bass], sr, rng, 0.45)
    harmony = TIMBRES[inst.harmony]
    _render_part(buf, _harmony_part(comp, harmony), harmony, sr, rng, 0.16)
    _render_part(buf, comp.lead, TIMBRES[inst.lead], sr, rng, 0.3)
    return buf


def normalise_loudness(y: np.ndarray, sr: int, target_lufs: float, peak: float = 0.97) -> np.ndarray:
    """Scale to ``target_lufs`` (ITU-R BS.1770); if that would clip, scale to ``peak`` instead."""
    loudness = pyloudnorm.Meter(sr).integrated_loudness(y.astype(np.float64))
    if np.isfinite(loudness):
        y = y * np.float32(10.0 ** ((target_lufs - loudness) / 20.0))
    top = float(np.abs(y).max())
    return y * np.float32(peak / top) if top > peak else y


def near_silence(n: int, rng: np.random.Generator) -> np.ndarray:
    """A dead upload: dither-level hiss around -90 dBFS, not exact zeros, as real silent videos have."""
    return rng.normal(0.0, 3e-5, n).astype(np.float32)


def hard_clip(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A brickwalled master pushed 15-25 dB into the converter: full-scale plateaus everywhere."""
    y = y / (np.abs(y).max() + 1e-9)
    return np.clip(y * 10.0 ** (rng.uniform(15, 25) / 20.0), -1.0, 1.0).astype(np.float32)
