"""Keys, chord progressions and melodies for the General-MIDI dev set, with labels the evaluators parse.

Why compose here rather than take tunes from a corpus: the chord truth must be exact. A progression is drawn
from common functional patterns, written as an MMA chord chart (MMA then plays the accompaniment from it),
and the same slots give the mir_eval chord intervals, so the labels can never disagree with what sounds.
Keys use madmom's names ("Bb major", "C# minor") like the analyser; chord labels use mir_eval syntax
("Bb:maj", "C#:min7").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROOTS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_KEY_ROOTS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "Bb", "B")  # madmom's spelling

# quality -> (MMA chord suffix, mir_eval quality, intervals above the root)
QUALITIES: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "maj": ("", "maj", (0, 4, 7)),
    "min": ("m", "min", (0, 3, 7)),
    "7": ("7", "7", (0, 4, 7, 10)),
    "maj7": ("maj7", "maj7", (0, 4, 7, 11)),
    "min7": ("m7", "min7", (0, 3, 7, 10)),
}

# Progressions as (semitones above the tonic, quality) per chord.
PROGRESSIONS: dict[str, tuple[tuple[tuple[int, str], ...], ...]] = {
    "major": (
        ((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")),  # I V vi IV
        ((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),  # I IV V I
        ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")),  # I vi IV V
        ((9, "min"), (5, "maj"), (0, "maj"), (7, "maj")),  # vi IV I V
        ((2, "min7"), (7, "7"), (0, "maj7"), (9, "min7")),  # ii7 V7 Imaj7 vi7
        ((0, "maj"), (4, "min"), (5, "maj"), (7, "7")),  # I iii IV V7
        ((0, "7"), (5, "7"), (0, "7"), (7, "7")),  # blues-like I7 IV7 I7 V7
        ((0, "maj"), (5, "maj"), (0, "maj"), (7, "7"), (0, "maj"), (5, "maj"), (7, "7"), (0, "maj")),  # hymn
    ),
    "minor": (
        ((0, "min"), (8, "maj"), (3, "maj"), (10, "maj")),  # i VI III VII
        ((0, "min"), (5, "min"), (7, "min"), (0, "min")),  # i iv v i
        ((0, "min"), (5, "min"), (7, "7"), (0, "min")),  # i iv V7 i
        ((0, "min"), (10, "maj"), (8, "maj"), (7, "maj")),  # i VII VI V (andalusian)
        ((0, "min"), (8, "maj"), (5, "min"), (7, "7")),  # i VI iv V7
        ((0, "min7"), (5, "min7"), (10, "7"), (3, "maj7")),  # i7 iv7 VII7 IIImaj7
    ),
}

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
MELODY_RANGE = (62, 81)  # D4..A5: every melody instrument of the palettes plays it in its normal register

# Melody rhythms per bar (beats); the eighth-note ones are left out at fast tempi.
RHYTHMS: dict[int, tuple[tuple[float, ...], ...]] = {
    4: (
        (1, 1, 1, 1),
        (2, 1, 1),
        (1, 0.5, 0.5, 1, 1),
        (1.5, 0.5, 2),
        (2, 2),
        (3, 1),
        (1, 1, 2),
        (0.5, 0.5, 0.5, 0.5, 1, 1),
    ),
    3: ((1, 1, 1), (2, 1), (1, 0.5, 0.5, 1), (3,), (1, 2), (0.5, 0.5, 1, 1)),
}


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class
    mode: str  # major | minor

    @property
    def name(self) -> str:
        roots = ROOTS if self.mode == "major" else _MINOR_KEY_ROOTS
        return f"{roots[self.tonic]} {self.mode}"


@dataclass(frozen=True)
class ChordSlot:
    start_beat: float  # from the first beat of the song
    beats: float
    root: int  # pitch class
    quality: str  # a key of QUALITIES

    @property
    def label(self) -> str:
        """mir_eval syntax, e.g. ``Bb:min7``."""
        return f"{ROOTS[self.root]}:{QUALITIES[self.quality][1]}"

    @property
    def mma_name(self) -> str:
        return f"{ROOTS[self.root]}{QUALITIES[self.quality][0]}"

    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in QUALITIES[self.quality][2])


@dataclass(frozen=True)
class Note:
    start_beat: float
    beats: float
    pitch: int
    velocity: int


def draw_key(rng: np.random.Generator) -> Key:
    return Key(int(rng.integers(12)), "major" if rng.uniform() < 0.6 else "minor")


def chord_slots(
    key: Key, progression: int, meter: int, n_bars: int, tempo_bpm: float, rng: np.random.Generator
) -> list[ChordSlot]:
    """The progression repeated over ``n_bars``: one chord a bar, two a bar (4/4, slow tempi), or one per
    two bars (fast tempi), so harmonic rhythm varies the way it does in real songs."""
    prog = PROGRESSIONS[key.mode][progression]
    u = rng.uniform()
    if meter == 4 and tempo_bpm < 100 and u < 0.4:
        beats_per_chord = 2.0
    elif tempo_bpm > 140 and u < 0.5:
        beats_per_chord = 2.0 * meter
    else:
        beats_per_chord = float(meter)
    slots = []
    t, i = 0.0, 0
    while t < n_bars * meter - 1e-9:
        step, quality = prog[i % len(prog)]
        slots.append(ChordSlot(t, min(beats_per_chord, n_bars * meter - t), (key.tonic + step) % 12, quality))
        t += beats_per_chord
        i += 1
    return slots


def mma_chart_lines(slots: list[ChordSlot], meter: int, n_bars: int) -> list[str]:
    """One MMA bar line per bar: a chord name on the beat it starts, ``/`` (continue) on the others."""
    lines = []
    for bar in range(n_bars):
        cells = []
        for beat in range(meter):
            t = bar * meter + beat
            hit = next((s for s in slots if abs(s.start_beat - t) < 1e-9), None)
            cells.append(hit.mma_name if hit else ("/" if beat else _sounding(slots, t).mma_name))
        lines.append(f"{bar + 1} " + " ".join(cells))
    return lines


def _sounding(slots: list[ChordSlot], beat: float) -> ChordSlot:
    for s in slots:
        if s.start_beat <= beat + 1e-9 < s.start_beat + s.beats:
            return s
    raise ValueError(f"no chord at beat {beat}")


def compose_melody(
    key: Key, slots: list[ChordSlot], meter: int, n_bars: int, tempo_bpm: float, rng: np.random.Generator
) -> list[Note]:
    """A singable line: chord tones on beats, scale steps between, small leaps, a motif rhythm per 2 bars.

    Minor keys borrow the raised seventh over the dominant (harmonic minor), so the line never clashes
    with a V7 chord the accompaniment plays."""
    rhythms = [r for r in RHYTHMS[meter] if tempo_bpm <= 140 or min(r) >= 1]
    motif = [rhythms[int(i)] for i in rng.integers(len(rhythms), size=2)]
    lo, hi = MELODY_RANGE
    prev = int(rng.integers(lo + 4, hi - 4))
    notes: list[Note] = []
    for bar in range(n_bars):
        t = float(bar * meter)
        for dur in motif[bar % 2]:
            chord = _sounding(slots, t)
            on_beat = abs(t - round(t)) < 1e-9
            pcs = chord.pitch_classes() if on_beat else _scale(key, chord)
            candidates = np.array([p for p in range(lo, hi + 1) if p % 12 in pcs])
            weights = np.exp(-np.abs(candidates - prev) / 2.5)
            weights[candidates == prev] *= 0.3  # repeated notes are fine, but not all the time
            pitch = int(rng.choice(candidates, p=weights / weights.sum()))
            rest = t % meter != 0 and rng.uniform() < 0.08
            if not rest:
                accent = 12 if t % meter == 0 else 0
                notes.append(Note(t, dur * 0.92, pitch, int(rng.integers(72, 92)) + accent))
                prev = pitch
            t += dur
    return notes


def _scale(key: Key, chord: ChordSlot) -> tuple[int, ...]:
    steps = MAJOR_SCALE if key.mode == "major" else MINOR_SCALE
    if key.mode == "minor" and (chord.root - key.tonic) % 12 == 7 and chord.quality in ("maj", "7"):
        steps = tuple(11 if s == 10 else s for s in steps)
    return tuple((key.tonic + s) % 12 for s in steps)
