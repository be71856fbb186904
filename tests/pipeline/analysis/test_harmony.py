"""Chords per beat, the chord descriptors and the chord-sequence similarity (m2ugen_data.analysis.harmony).

The model test renders a known progression with fluidsynth and a General-MIDI soundfont (setup installs
both; skipped cleanly without them); everything else runs on hand-made inputs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from m2ugen_data.analysis import harmony as h

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
FLUIDSYNTH = shutil.which("fluidsynth")


# --------------------------------------------------------------------------- model on a real render


def _render_progression(tmp_path: Path, chords: list[tuple[int, bool]], bpm: float = 100.0) -> np.ndarray:
    """One bar (4 beats) per chord: piano triad, bass root on every beat, kick/snare/hat. -> mono 44.1 kHz."""
    import mido
    import soundfile as sf

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    track.append(mido.Message("program_change", program=0, channel=0))  # acoustic grand piano
    track.append(mido.Message("program_change", program=33, channel=1))  # finger bass
    events: list[tuple[int, mido.Message]] = []
    bar = 4 * 480
    for k, (root, minor) in enumerate(chords):
        t = k * bar
        for note in (60 + root, 60 + root + (3 if minor else 4), 60 + root + 7):
            note = note - 12 if note >= 72 else note
            events += [(t, mido.Message("note_on", note=note, velocity=80, channel=0))]
            events += [(t + bar - 10, mido.Message("note_off", note=note, channel=0))]
        for b in range(4):
            tb = t + b * 480
            events += [(tb, mido.Message("note_on", note=36 + root, velocity=90, channel=1))]
            events += [(tb + 460, mido.Message("note_off", note=36 + root, channel=1))]
            for drum in (36 if b % 2 == 0 else 38, 42):
                events += [(tb, mido.Message("note_on", note=drum, velocity=90, channel=9))]
                events += [(tb + 60, mido.Message("note_off", note=drum, channel=9))]
    events.sort(key=lambda e: e[0])
    last = 0
    for t, msg in events:
        track.append(msg.copy(time=t - last))
        last = t
    midi_path, wav_path = tmp_path / "prog.mid", tmp_path / "prog.wav"
    mid.save(midi_path)
    cmd = [FLUIDSYNTH, "-ni", "-q", "-g", "0.6", "-r", "44100", "-F", str(wav_path), str(SOUNDFONT), str(midi_path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    y, sr = sf.read(wav_path, dtype="float32", always_2d=True)
    assert sr == 44100
    return y.mean(axis=1)


@pytest.mark.skipif(FLUIDSYNTH is None or not SOUNDFONT.is_file(), reason="needs fluidsynth + fluid-soundfont-gm")
@pytest.mark.parametrize("method", h.CHORD_METHODS)
def test_chords_of_a_rendered_progression(tmp_path: Path, method: str) -> None:
    import mir_eval

    progression = [(0, False), (7, False), (9, True), (5, False)] * 2  # C G Am F, one bar each at 100 bpm
    y = _render_progression(tmp_path, progression)
    segments = h.chord_segments(y, h.load_chord_models(method))
    assert segments and all(s < e for s, e, _ in segments)
    for _, _, label in segments:  # mir_eval syntax, parseable, majmin vocabulary
        mir_eval.chord.split(label)
        assert label == "N" or label.split(":")[1] in ("maj", "min")
    bar = 2.4
    names = ["C:maj", "G:maj", "A:min", "F:maj"] * 2
    ref_iv = np.array([[k * bar, (k + 1) * bar] for k in range(len(names))])
    est_iv = np.array([[s, e] for s, e, _ in segments])
    est_lab = [lab for _, _, lab in segments]
    est_iv, est_lab = mir_eval.util.adjust_intervals(est_iv, est_lab, ref_iv.min(), ref_iv.max(), "N", "N")
    iv, ref_l, est_l = mir_eval.util.merge_labeled_intervals(ref_iv, names, est_iv, est_lab)
    durations = mir_eval.util.intervals_to_durations(iv)
    score = mir_eval.chord.weighted_accuracy(mir_eval.chord.majmin(ref_l, est_l), durations)
    assert score > 0.85, segments
    # beat-synchronous labels: the beats of this render, one chord per bar
    beats = np.arange(0, len(names) * 4 + 1) * 0.6
    per_beat = h.beat_chords(segments, beats)
    assert len(per_beat) == len(beats) - 1
    agree = np.mean([a == b for a, b in zip(per_beat, np.repeat(names, 4))])
    assert agree > 0.85
    assert h.chord_change_rate(per_beat, 4) == pytest.approx(1.0, abs=0.25)


def test_chord_segments_of_silence_and_garbage() -> None:
    models = h.ChordModels("cnn-crf", features=None, decoder=None)  # never reached: input is rejected first
    assert h.chord_segments(np.zeros(10, dtype=np.float32), models) == []
    assert h.chord_segments(np.full(44100, np.nan, dtype=np.float32), models) == []
    with pytest.raises(ValueError):
        h.load_chord_models("guess")


# --------------------------------------------------------------------------- hand-made inputs


def test_beat_chords_by_largest_overlap() -> None:
    segments = [(0.0, 1.2, "C:maj"), (1.2, 2.0, "A:min"), (2.0, 3.0, "N")]
    beats = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.5, 4.0])
    # [1.0, 1.5): 0.2 C vs 0.3 Am -> Am; [3.5, 4.0) overlaps nothing -> N
    assert h.beat_chords(segments, beats) == ["C:maj", "C:maj", "A:min", "A:min", "N", "N", "N"]
    assert h.beat_chords([], beats) == ["N"] * 7
    assert h.beat_chords(segments, np.array([1.0])) == []
    assert h.beat_chords(segments, np.array([])) == []
    assert h.beat_chords(segments, np.array([0.0, np.nan, 1.0])) == []


def test_chord_ids_cover_mir_eval_spellings() -> None:
    ids = h.chord_ids(["N", "X", "C:maj", "C", "B:maj", "C:min", "B:min", "A#:maj", "Bb:maj", "Db:min7", "G:7", "E/G#"])
    assert ids.dtype == np.int8
    assert ids.tolist() == [0, 0, 1, 1, 12, 13, 24, 11, 11, 14, 8, 5]
    assert h.chord_ids(["C:dim", "C:aug", "C:sus4", "", "H:maj", "Cb:maj"]).tolist() == [0, 0, 0, 0, 0, 12]
    assert h.chord_ids([]).shape == (0,)


def test_harmony_descriptor() -> None:
    d = h.harmony_descriptor(["C:maj", "C:maj", "A:min", "N"])
    assert d.shape == (24,) and d.dtype == np.float32
    assert d.sum() == pytest.approx(1.0)
    assert d[0] == pytest.approx(2 / 3) and d[12 + 9] == pytest.approx(1 / 3)
    assert not h.harmony_descriptor(["N", "N"]).any()
    assert not h.harmony_descriptor([]).any()


def test_chord_change_rate() -> None:
    two_per_bar = ["C:maj", "C:maj", "G:maj", "G:maj"] * 4
    assert h.chord_change_rate(two_per_bar, 4) == pytest.approx(7 / 4)  # 7 changes over 4 bars
    assert h.chord_change_rate(["C:maj"] * 8, 4) == 0.0
    assert h.chord_change_rate(["C:maj", "N", "C:maj", "N"], 4) == 0.0  # N is not a change
    assert h.chord_change_rate(["C:maj", "G:maj"], 4) is None  # less than a bar
    assert h.chord_change_rate(["N"] * 8, 4) is None
    assert h.chord_change_rate(two_per_bar, None) is None
    assert h.chord_change_rate([], 3) is None


# --------------------------------------------------------------------------- similarity


def _song(bars: int, seed: int = 0) -> np.ndarray:
    """A 4-beat-per-chord sequence of chord ids."""
    rng = np.random.default_rng(seed)
    return np.repeat(rng.integers(1, 25, bars), 4).astype(np.int8)


def test_similarity_identical_shifted_unrelated() -> None:
    a = _song(6)
    assert h.chord_sequence_similarity(a, a, max_shift=4) == 1.0
    later = a[4:]  # the same piece, starting one bar later
    assert h.chord_sequence_similarity(a, later, max_shift=4) == 1.0
    assert h.chord_sequence_similarity(later, a, max_shift=4) == 1.0
    assert h.chord_sequence_similarity(a, a[2:], max_shift=0) < 1.0  # without the shift it is not aligned
    unrelated = [h.chord_sequence_similarity(_song(6, s), _song(6, 100 + s), max_shift=4) for s in range(20)]
    assert np.mean(unrelated) < 0.25


def test_similarity_ignores_n_and_needs_overlap() -> None:
    a = _song(4)
    b = a.copy()
    b[:8] = 0  # N beats neither agree nor disagree
    assert h.chord_sequence_similarity(a, b, max_shift=0, min_overlap=8) == 1.0
    assert h.chord_sequence_similarity(a, b, max_shift=0, min_overlap=9) == 0.0
    assert h.chord_sequence_similarity(a, np.zeros_like(a), max_shift=4) == 0.0
    assert h.chord_sequence_similarity(a, np.zeros(0, np.int8), max_shift=4) == 0.0
    assert h.chord_sequence_similarity(a[:3], a[:3], max_shift=1) == 0.0  # too short to compare


def test_similarity_over_edges_matches_single_pairs() -> None:
    seqs = [_song(int(n), seed) for seed, n in enumerate(np.random.default_rng(1).integers(0, 8, 40))]
    seqs[3] = seqs[5][4:].copy()  # one shifted sibling
    values, offsets = h.pack_sequences(seqs)
    assert offsets.tolist()[-1] == values.size == sum(len(s) for s in seqs)
    rng = np.random.default_rng(2)
    lo, hi = rng.integers(0, 40, 200), rng.integers(0, 40, 200)
    lo[0], hi[0] = 3, 5
    sims = h.chord_similarity_edges(values, offsets, lo, hi, max_shift=4, min_overlap=8)
    assert sims.dtype == np.float32 and sims.shape == (200,)
    expected = [h.chord_sequence_similarity(seqs[i], seqs[j], 4, 8) for i, j in zip(lo, hi)]
    np.testing.assert_allclose(sims, expected, rtol=1e-6)
    assert sims[0] == 1.0 or len(seqs[3]) < 8
    assert h.chord_similarity_edges(values, offsets, lo[:0], hi[:0]).shape == (0,)
    with pytest.raises(IndexError):
        h.chord_similarity_edges(values, offsets, np.array([0]), np.array([40]))
    empty_v, empty_o = h.pack_sequences([])
    assert empty_v.size == 0 and empty_o.tolist() == [0]
