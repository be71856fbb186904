"""Compositions as data: tempo, meter, key, beat grid, chords, bass, melody and drum hits.

A composition knows nothing about timbre, so the same composition can be rendered with several
instrumentations (a sibling group) and every render shares the exact same beat grid and key: that is what
makes sibling groups ground-truth MUEdit pairs. The music is deliberately idiomatic (chord changes on
downbeats, cadential progressions, kick on the downbeat, backbeat snare, waltz "oom-pah-pah" in 3/4) so
that beat, downbeat and key estimators have a fair chance and their errors mean something.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# madmom's key vocabulary, so truth and estimates compare as plain strings.
MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Four-bar progressions as scale degrees (0 = tonic), one chord per bar. Each states the tonic twice and
# both IV (iv) and V, so all seven scale tones sound and the key is unambiguous to a listener and to a key
# estimator; deceptive or modal progressions (I-V-vi-IV, i-VII-VI) would make the truth debatable.
PROGRESSIONS = {
    "major": ((0, 3, 4, 0), (0, 3, 0, 4), (0, 4, 3, 0), (0, 3, 4, 3)),
    "minor": ((0, 3, 4, 0), (0, 3, 0, 4), (0, 4, 3, 0), (0, 5, 4, 0)),
}
# The melody of a minor key uses the harmonic minor scale: its raised seventh is what tells A minor from
# C major.
MELODY_SCALES = {"major": SCALES["major"], "minor": (0, 2, 3, 5, 7, 8, 11)}


def key_name(tonic: int, mode: str) -> str:
    return f"{(MAJOR_NAMES if mode == 'major' else MINOR_NAMES)[tonic % 12]} {mode}"


@dataclass(frozen=True)
class Part:
    """Pitched note events: parallel arrays of onset (s), duration (s), MIDI pitch, velocity (0..1)."""

    onsets: np.ndarray
    durations: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray

    @staticmethod
    def of(events: list[tuple[float, float, int, float]]) -> Part:
        a = np.array(events, dtype=np.float64).reshape(-1, 4)
        return Part(a[:, 0], a[:, 1], a[:, 2].astype(np.int64), a[:, 3])


@dataclass(frozen=True)
class Chord:
    onset: float
    duration: float
    pitches: tuple[int, ...]  # MIDI, close voicing around middle C
    beats: tuple[float, ...]  # beat times inside the bar, for percussive re-strikes
    strong: tuple[bool, ...]  # which of those beats is the downbeat


@dataclass(frozen=True)
class Composition:
    tempo_bpm: float
    meter: int
    tonic: int  # pitch class 0..11 (0 = C)
    mode: str  # major | minor
    duration_s: float
    beats: np.ndarray  # every beat inside [0, duration)
    downbeats: np.ndarray  # the beats that start a bar
    chords: tuple[Chord, ...]
    bass: Part
    lead: Part
    drums: dict[str, tuple[np.ndarray, np.ndarray]]  # voice -> (onsets, velocities)

    @property
    def key(self) -> str:
        return key_name(self.tonic, self.mode)


def _triad(tonic: int, mode: str, degree: int) -> tuple[int, int, int]:
    """Pitch classes of the diatonic triad on ``degree``; minor keys take a major V (harmonic minor)."""
    scale = SCALES[mode]
    pcs = [(tonic + scale[(degree + 2 * i) % 7]) % 12 for i in range(3)]
    if mode == "minor" and degree == 4:
        pcs[1] = (pcs[1] + 1) % 12
    return pcs[0], pcs[1], pcs[2]


def _voice(pcs: tuple[int, int, int], low: int = 55) -> tuple[int, ...]:
    """Close voicing of the pitch classes in the octave above ``low``."""
    return tuple(sorted(low + (pc - low) % 12 for pc in pcs))


def compose(rng: np.random.Generator, duration_s: float = 10.0) -> Composition:
    """Draw tempo (60-180 BPM), meter (3 or 4), key and a phrase, all on one exact beat grid."""
    tempo = float(rng.uniform(60.0, 180.0))
    meter = int(rng.choice([3, 4]))
    tonic = int(rng.integers(12))
    mode = str(rng.choice(["major", "minor"]))
    period = 60.0 / tempo
    offset = float(rng.uniform(0.0, min(0.25, 0.5 * period)))
    phase = int(rng.integers(meter))  # beats before the first downbeat (a pickup)
    beats = offset + period * np.arange(int(np.ceil((duration_s - offset) / period)) + 1)
    beats = beats[beats < duration_s]
    bar_pos = (np.arange(beats.size) + phase) % meter  # position of each beat in its bar
    bar_idx = (np.arange(beats.size) + phase) // meter
    downbeats = beats[bar_pos == 0]

    progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    lead_in = 1 if phase else 0  # a pickup bar plays the progression's last chord, leading into bar 1
    degrees = [progression[(b - lead_in) % 4] for b in range(bar_idx[-1] + 1)]

    chords = []
    bass: list[tuple[float, float, int, float]] = []
    for b in range(bar_idx[-1] + 1):
        sel = np.flatnonzero(bar_idx == b)
        start = offset + period * (b * meter - phase)
        triad = _triad(tonic, mode, degrees[b])
        chords.append(
            Chord(
                onset=max(start, 0.0),
                duration=start + meter * period - max(start, 0.0),
                pitches=_voice(triad),
                beats=tuple(beats[sel]),
                strong=tuple(bool(bar_pos[i] == 0) for i in sel),
            )
        )
        root = 36 + (triad[0] - 36) % 12
        for i in sel:
            pos = bar_pos[i]
            if meter == 3 and pos != 0:
                continue  # waltz: the bass only on one, the chords take two and three
            # Roots and octaves only: a walking fifth would lend the dominant key weight it does not have.
            pitch = root if pos in (0, 2) or meter == 3 else int(rng.choice([root, root + 12]))
            dur = period * (meter if meter == 3 else 1) * 0.9
            bass.append((beats[i], dur, pitch, 1.0 if pos == 0 else 0.8))

    lead = _melody(rng, tonic, mode, beats, bar_pos, bar_idx, chords, period)
    drums = _drums(meter, beats, bar_pos, bar_idx)
    return Composition(
        tempo_bpm=tempo,
        meter=meter,
        tonic=tonic,
        mode=mode,
        duration_s=duration_s,
        beats=beats,
        downbeats=downbeats,
        chords=tuple(chords),
        bass=Part.of(bass),
        lead=lead,
        drums=drums,
    )


def _melody(
    rng: np.random.Generator,
    tonic: int,
    mode: str,
    beats: np.ndarray,
    bar_pos: np.ndarray,
    bar_idx: np.ndarray,
    chords: list[Chord],
    period: float,
) -> Part:
    """A stepwise walk through the scale that lands on a chord tone at every downbeat."""
    scale = MELODY_SCALES[mode]
    base = 60 + (tonic - 60) % 12 + (12 if tonic < 5 else 0)  # tonic in the octave starting at C4..E5
    idx = int(rng.integers(0, 5))  # scale index relative to ``base``

    def pitch(i: int) -> int:
        return base + 12 * (i // 7) + scale[i % 7]

    events: list[tuple[float, float, int, float]] = []
    split = period > 0.45  # eighth notes only when beats are slow enough to leave room
    for i, t in enumerate(beats):
        if bar_pos[i] == 0:
            tones = {p % 12 for p in chords[bar_idx[i]].pitches}
            cands = [j for j in range(idx - 3, idx + 4) if pitch(j) % 12 in tones and -2 <= j <= 10]
            idx = min(cands, key=lambda j: abs(j - idx)) if cands else idx
        elif rng.uniform() < 0.2:
            continue  # a rest
        else:
            idx = int(np.clip(idx + rng.choice([-2, -1, -1, 1, 1, 2]), -2, 10))
        if split and bar_pos[i] != 0 and rng.uniform() < 0.3:
            events.append((t, period * 0.45, pitch(idx), 0.75))
            idx = int(np.clip(idx + rng.choice([-1, 1]), -2, 10))
            events.append((t + period / 2, period * 0.45, pitch(idx), 0.65))
        else:
            events.append((t, period, pitch(idx), 0.9 if bar_pos[i] == 0 else 0.75))
    part = Part.of(events)
    # Legato: each note lasts until just before the next one (at most two beats), so rests read as holds.
    gaps = np.diff(np.append(part.onsets, part.onsets[-1] + period))
    durations = np.minimum(np.maximum(part.durations, 0.92 * gaps), 2 * period)
    return Part(part.onsets, durations, part.pitches, part.velocities)


def _drums(
    meter: int, beats: np.ndarray, bar_pos: np.ndarray, bar_idx: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """4/4: kick 1 and 3, snare 2 and 4; 3/4: kick 1, snare/hat 2 and 3. Hats on every beat, crash on phrases."""
    hits: dict[str, list[tuple[float, float]]] = {"kick": [], "snare": [], "hat": [], "crash": []}
    first_bar = bar_idx[bar_pos == 0][0] if (bar_pos == 0).any() else -1
    for t, pos, bar in zip(beats, bar_pos, bar_idx):
        hits["hat"].append((t, 0.55 if pos == 0 else 0.4))
        if pos == 0:
            hits["kick"].append((t, 1.0))
            if (bar - first_bar) % 4 == 0:
                hits["crash"].append((t, 0.6))
        elif meter == 4 and pos == 2:
            hits["kick"].append((t, 0.75))
        elif meter == 4:
            hits["snare"].append((t, 0.8))
        else:
            hits["snare"].append((t, 0.45))
    return {k: (np.array([h[0] for h in v]), np.array([h[1] for h in v])) for k, v in hits.items()}
