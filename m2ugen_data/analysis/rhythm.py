"""Beats, downbeats, meter and tempo from madmom's joint beat/downbeat RNN and its bar-pointer DBN.

One network pass serves everything: the downbeat RNN's activations carry both beat and downbeat
probabilities, so no second (beat-only) RNN runs. Tempo is read from the decoded beats (median inter-beat
interval), never from a tempo histogram, so a clip without a decodable beat gets no tempo at all instead of
a guessed one. The DBN models 3 and 4 beats per bar and keeps the likelier, which is the meter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 44100  # what madmom's networks were trained on
FPS = 100  # activation frames per second of the downbeat RNN
MIN_BEATS = 4  # fewer decoded beats than this: no tempo
# The DBN state space grows with the number of tempo states; 30 log-spaced tempi decode in ~40% of the
# time of madmom's default 60 and give the same beats on the synthetic corpus (bench_analysis.py).
NUM_TEMPI = 30


@dataclass(frozen=True)
class Rhythm:
    tempo_bpm: float | None
    tempo_conf: float  # 0..1: activation strength at the beats x regularity of the intervals
    beats: np.ndarray  # seconds
    downbeats: np.ndarray  # seconds
    meter: int | None  # beats per bar (3 or 4)


@dataclass(frozen=True)
class RhythmModels:
    rnn: object  # madmom RNNDownBeatProcessor
    dbn: object  # madmom DBNDownBeatTrackingProcessor


def load_rhythm_models(num_tempi: int = NUM_TEMPI) -> RhythmModels:
    """Load once per process: the RNN ensemble is eight ONNX sessions, pinned to one thread each so a
    process pool sized to the cores does not oversubscribe them."""
    from madmom.features.downbeats import (
        DBNDownBeatTrackingProcessor,
        RNNDownBeatProcessor,
    )

    rnn = RNNDownBeatProcessor(intra_op_num_threads=1)
    dbn = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=FPS, num_tempi=num_tempi)
    return RhythmModels(rnn, dbn)


def beat_activations(y44: np.ndarray, models: RhythmModels) -> np.ndarray:
    """(frames, 2) beat and downbeat probabilities at 100 frames/s for mono float32 at 44.1 kHz."""
    from madmom.audio.signal import Signal

    return np.asarray(models.rnn(Signal(y44, sample_rate=SAMPLE_RATE)), dtype=np.float32)


def decode_rhythm(act: np.ndarray, models: RhythmModels) -> Rhythm:
    """Beats, meter and tempo from the activations; an undecodable grid yields ``tempo_bpm=None``."""
    empty = np.zeros(0)
    if act.size == 0 or not np.isfinite(act).all():
        return Rhythm(None, 0.0, empty, empty, None)
    decoded = np.asarray(models.dbn(act))
    if decoded.ndim != 2 or len(decoded) < MIN_BEATS:
        beats = decoded[:, 0] if decoded.ndim == 2 else empty
        return Rhythm(None, 0.0, beats, empty, None)
    beats, numbers = decoded[:, 0], decoded[:, 1].astype(int)
    downbeats = beats[numbers == 1]
    meter = int(numbers.max()) if numbers.max() in (3, 4) else None
    ibi = np.diff(beats)
    tempo = 60.0 / float(np.median(ibi))
    return Rhythm(tempo, tempo_confidence(act, beats, ibi), beats, downbeats, meter)


def tempo_confidence(act: np.ndarray, beats: np.ndarray, ibi: np.ndarray) -> float:
    """How much to trust the tempo: the network's beat probability at the decoded beats (strength)
    times how steady the intervals are (1 at a metronome, 0 at a coefficient of variation of 0.2)."""
    frames = np.clip(np.round(beats * FPS).astype(int), 0, len(act) - 1)
    lo, hi = np.clip(frames - 2, 0, None), np.clip(frames + 3, None, len(act))
    peak = act.sum(axis=1)  # beat + downbeat probability
    strength = float(np.mean([peak[a:b].max() for a, b in zip(lo, hi)]))
    cv = float(np.std(ibi) / np.median(ibi))
    regularity = max(0.0, 1.0 - cv / 0.2)
    return float(np.clip(strength, 0.0, 1.0) * regularity)


def analyse_rhythm(y44: np.ndarray, models: RhythmModels) -> Rhythm:
    return decode_rhythm(beat_activations(y44, models), models)
