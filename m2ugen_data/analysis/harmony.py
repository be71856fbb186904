"""Chords per beat, a chord-root descriptor, and a fast beat-synchronous chord-sequence similarity.

Chord recognition is madmom's major/minor recogniser (24 chords + N, labels in mir_eval syntax such as
``A:min``, ``C#:maj``, ``N``). Two front ends share the same kind of CRF decoder:

- ``cnn-crf``: the fully convolutional chord feature CNN (Korzeniowski & Widmer, MLSP 2016) + CRF;
- ``deep-chroma``: the deep chroma DNN ensemble (Korzeniowski & Widmer, ISMIR 2016) + CRF.

Measured on the General-MIDI dev set (bench/bench_rhythm_harmony.py; mir_eval ``majmin``, duration-weighted;
seconds per 10 s clip on one core: least-disturbed / median of 12 clips on the shared 2-core machine):

===============  ========  =========  ==============
recogniser       dev acc   test acc   s/clip
===============  ========  =========  ==============
deep-chroma       0.880     0.868     0.010 / 0.056
cnn-crf           0.865     0.842     0.044 / 0.097
===============  ========  =========  ==============

``deep-chroma`` is the default (``CHORD_METHOD``): it is at least as accurate on both splits and costs a
quarter to a half as much; the CNN's extra capacity buys nothing on these renders. ``cnn-crf`` stays
selectable so the comparison can be re-run on recorded music, where its authors report it ahead of deep
chroma. Either is small next to the downbeat RNN (~0.10-0.14 s per clip).

Everything downstream of the recogniser works on beat-synchronous chord ids (``chord_ids``: 0 = N,
1..12 major roots C..B, 13..24 minor roots C..B) because two clips are compared beat against beat, whatever
their tempi: a chord per beat is what "the same harmony" means for MUEdit pairs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

SAMPLE_RATE = 44100  # madmom's chord networks were trained at 44.1 kHz
CHORD_FPS = 10  # both recognisers decode 10 chord frames per second
CHORD_METHODS = ("cnn-crf", "deep-chroma")
CHORD_METHOD = "deep-chroma"  # the default recogniser: why, in the module docstring
CHORD_VERSION = f"madmom-{CHORD_METHOD}-crf:beat-overlap1"  # bump when labels or beat assignment change
N_CHORD_IDS = 25  # 0 = N, 1..12 major C..B, 13..24 minor C..B
MIN_OVERLAP_BEATS = 8  # fewer comparable beats than this: the similarity of two sequences is 0
MAX_SHIFT_BEATS = 4  # AudioSet segments of one piece may start anywhere in a bar: a 4/4 bar either way

_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass(frozen=True)
class ChordModels:
    method: str  # one of CHORD_METHODS
    features: object  # madmom processor: audio -> frame features (CNN features or deep chroma)
    decoder: object  # madmom CRF processor: features -> (start, end, label) segments


def load_chord_models(method: str = CHORD_METHOD) -> ChordModels:
    """Load once per process. ONNX sessions are pinned to one thread, as in ``rhythm.load_rhythm_models``,
    so a process pool sized to the cores does not oversubscribe them."""
    if method == "cnn-crf":
        from madmom.features.chords import (
            CNNChordFeatureProcessor,
            CRFChordRecognitionProcessor,
        )
        from madmom.ml.nn import NeuralNetwork
        from madmom.models import CHORDS_CNN_FEAT

        features = CNNChordFeatureProcessor()
        # madmom builds this one network with its default of two threads and takes no option for it:
        # replace it by the same model loaded with one thread (the pipeline's only NeuralNetwork step).
        steps = features.processors
        (nn_index,) = [i for i, p in enumerate(steps) if isinstance(p, NeuralNetwork)]
        steps[nn_index] = NeuralNetwork.load(CHORDS_CNN_FEAT[0], intra_op_num_threads=1)
        return ChordModels(method, features, CRFChordRecognitionProcessor())
    if method == "deep-chroma":
        from madmom.audio.chroma import DeepChromaProcessor
        from madmom.features.chords import DeepChromaChordRecognitionProcessor

        return ChordModels(
            method, DeepChromaProcessor(intra_op_num_threads=1), DeepChromaChordRecognitionProcessor()
        )
    raise ValueError(f"unknown chord method {method!r}: expected one of {', '.join(CHORD_METHODS)}")


def chord_segments(y44: np.ndarray, models: ChordModels) -> list[tuple[float, float, str]]:
    """``[(start_s, end_s, label), ...]`` covering the clip, labels in mir_eval syntax (``N`` = no chord).

    Mono float32 at 44.1 kHz. A clip too short for one chord frame, or non-finite audio, gives ``[]``."""
    from madmom.audio.signal import Signal

    y = np.asarray(y44, dtype=np.float32).reshape(-1)
    if y.size < SAMPLE_RATE // CHORD_FPS or not np.isfinite(y).all():
        return []
    segments = models.decoder(models.features(Signal(y, sample_rate=SAMPLE_RATE)))
    return [(float(s), float(e), str(lab)) for s, e, lab in segments]


def beat_chords(segments: Sequence[tuple[float, float, str]], beats: np.ndarray) -> list[str]:
    """One label per beat interval ``[beats[i], beats[i+1])``: the segment overlapping it most (``N`` where
    no segment overlaps). ``len(beats) - 1`` labels; fewer than two beats give ``[]``."""
    beats = np.asarray(beats, dtype=np.float64).reshape(-1)
    if beats.size < 2 or not np.isfinite(beats).all():
        return []
    if not segments:
        return ["N"] * (beats.size - 1)
    starts = np.array([s for s, _, _ in segments], dtype=np.float64)
    ends = np.array([e for _, e, _ in segments], dtype=np.float64)
    labels = [lab for _, _, lab in segments]
    b0, b1 = beats[:-1, None], beats[1:, None]
    overlap = np.minimum(ends[None, :], b1) - np.maximum(starts[None, :], b0)  # (intervals, segments)
    best = overlap.argmax(axis=1)
    has = overlap[np.arange(best.size), best] > 0
    return [labels[j] if ok else "N" for j, ok in zip(best, has)]


@functools.lru_cache(maxsize=4096)
def chord_id(label: str) -> int:
    """0 for N/X/unknown and chords that are neither major nor minor (dim, aug, sus); 1 + root for chords
    whose triad is major (``C``, ``C:maj7``, ``C:7``, ``C/E``), 13 + root for minor ones (``C:min7``)."""
    label = label.strip()
    if not label or label in ("N", "X"):
        return 0
    head = label.split("/")[0]
    root_name, _, quality = head.partition(":")
    if not root_name or root_name[0] not in _PITCH_CLASS:
        return 0
    root = _PITCH_CLASS[root_name[0]] + root_name[1:].count("#") - root_name[1:].count("b")
    quality = quality.split("(")[0] or "maj"
    if quality in ("maj", "maj7", "7", "maj6", "9", "maj9", "11", "13", "maj13"):
        return 1 + root % 12
    if quality in ("min", "min7", "minmaj7", "min6", "min9", "min11", "min13"):
        return 13 + root % 12
    return 0


def chord_ids(labels: Sequence[str]) -> np.ndarray:
    """Labels -> int8 ids (0 = N, 1..12 major roots C..B, 13..24 minor roots C..B)."""
    return np.fromiter((chord_id(lab) for lab in labels), dtype=np.int8, count=len(labels))


def harmony_descriptor(beat_chords: Sequence[str]) -> np.ndarray:
    """24-d float32 histogram of chord roots over the non-N beats (0..11 major C..B, 12..23 minor C..B),
    summing to 1; all zeros when no beat has a chord (no harmony measured, not "uniform harmony")."""
    ids = chord_ids(beat_chords)
    counts = np.bincount(ids[ids > 0].astype(np.int64) - 1, minlength=24).astype(np.float32)
    total = counts.sum()
    return counts / total if total > 0 else counts


def chord_change_rate(beat_chords: Sequence[str], meter: int | None) -> float | None:
    """Chord changes per bar. ``meter``: beats per bar of the grid the labels are on. N beats are skipped
    (``C N C`` is no change). None without a meter, with less than one bar of beats, or with fewer than
    two beats that carry a chord."""
    if not meter or meter <= 0 or len(beat_chords) < meter:
        return None
    ids = chord_ids(beat_chords)
    voiced = ids[ids > 0]
    if voiced.size < 2:
        return None
    changes = int(np.count_nonzero(voiced[1:] != voiced[:-1]))
    return changes / (len(beat_chords) / meter)


# --------------------------------------------------------------------------- similarity for pair mining


def chord_sequence_similarity(
    a: np.ndarray, b: np.ndarray, max_shift: int = MAX_SHIFT_BEATS, min_overlap: int = MIN_OVERLAP_BEATS
) -> float:
    """Fraction of beats with equal chords under the best offset of ``b`` against ``a`` within
    ``±max_shift`` beats, counted over beats where both have a chord (id > 0); an offset with fewer than
    ``min_overlap`` such beats does not count, and no such offset gives 0. One pair; for many, use
    ``chord_similarity_edges`` (same kernel). On the GM dev set (bench_rhythm_harmony.py, default chords on
    octave-corrected beats) siblings score a median 1.0 (97 % >= 0.6), tempo twins and other pairs 0.0
    (2 % >= 0.6)."""
    a = np.ascontiguousarray(a, dtype=np.int8).reshape(-1)
    b = np.ascontiguousarray(b, dtype=np.int8).reshape(-1)
    return float(_best_shift_similarity(a, b, int(max_shift), int(min_overlap)))


def pack_sequences(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Chord-id sequences -> CSR (``values`` int8, ``offsets`` int64 of length n + 1): sequence ``i`` is
    ``values[offsets[i]:offsets[i + 1]]``."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = (
        np.concatenate([np.asarray(s, dtype=np.int8).reshape(-1) for s in sequences])
        if len(sequences)
        else np.zeros(0, dtype=np.int8)
    )
    return values, offsets


def chord_similarity_edges(
    values: np.ndarray,
    offsets: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    max_shift: int = MAX_SHIFT_BEATS,
    min_overlap: int = MIN_OVERLAP_BEATS,
) -> np.ndarray:
    """``chord_sequence_similarity`` of sequences ``lo[k]`` and ``hi[k]`` for every edge k -> float32.

    Cost per edge: (2 * max_shift + 1) x overlap byte compares, compiled, one thread. Measured on one core
    with 22-beat sequences (a 10 s clip at ~130 bpm) and max_shift 4: ~0.37 µs per edge when edges come
    sorted by ``lo`` (as a sorted-neighbourhood join emits them), ~0.7 µs in random order (cache misses);
    max_shift 0 is ~0.07 µs. So 10 M candidate edges cost ~4-7 s: apply it after the cheap rules have
    thinned the candidates."""
    values = np.ascontiguousarray(values, dtype=np.int8)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    lo = np.ascontiguousarray(lo, dtype=np.int64)
    hi = np.ascontiguousarray(hi, dtype=np.int64)
    if lo.shape != hi.shape:
        raise ValueError(f"edge arrays differ in shape: {lo.shape} vs {hi.shape}")
    n = offsets.size - 1
    if lo.size and (min(lo.min(), hi.min()) < 0 or max(lo.max(), hi.max()) >= n):
        raise IndexError(f"edge endpoint outside 0..{n - 1}")
    return _edges_kernel(values, offsets, lo, hi, int(max_shift), int(min_overlap))


@numba.njit(cache=True)
def _best_shift_similarity(a: np.ndarray, b: np.ndarray, max_shift: int, min_overlap: int) -> float:
    best = 0.0
    for shift in range(-max_shift, max_shift + 1):
        # compare a[i] with b[i + shift]
        i0 = max(0, -shift)
        i1 = min(a.size, b.size - shift)
        both = 0
        equal = 0
        for i in range(i0, i1):  # branch-free: random chord ids defeat branch prediction (3x slower)
            x = a[i]
            y = b[i + shift]
            voiced = (x > 0) & (y > 0)
            both += voiced
            equal += voiced & (x == y)
        if both >= min_overlap and both > 0:
            sim = equal / both
            if sim > best:
                best = sim
    return best


@numba.njit(cache=True)
def _edges_kernel(
    values: np.ndarray, offsets: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_shift: int, min_overlap: int
) -> np.ndarray:
    out = np.zeros(lo.size, dtype=np.float32)
    for k in range(lo.size):
        a = values[offsets[lo[k]] : offsets[lo[k] + 1]]
        b = values[offsets[hi[k]] : offsets[hi[k] + 1]]
        out[k] = _best_shift_similarity(a, b, max_shift, min_overlap)
    return out
