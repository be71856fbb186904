"""The scores dev set: exact beat grids from MIDI files (tempo maps, time signatures) and scores (pickups,
compound metres), windows where the tempo holds, truncation that fluidsynth can finish, soundfont choice,
and a real build whose rendered onsets sit on the truth beats. Tools missing: the build tests skip."""

from __future__ import annotations

import shutil

import mido
import numpy as np
import pyarrow.parquet as pq
import pytest

from m2ugen_data.devset import scores, scores_set, soundfonts
from m2ugen_data.devset.score_sources import SOURCES, by_name
from m2ugen_data.errors import MissingDependencyError


def _midi(events: list[tuple[int, mido.Message]], tpq: int = 480) -> mido.MidiFile:
    mid = mido.MidiFile(ticks_per_beat=tpq)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - last))
        last = tick
    return mid


def _notes(ticks: list[int], length: int = 100, channel: int = 0) -> list[tuple[int, mido.Message]]:
    out = []
    for t in ticks:
        out.append((t, mido.Message("note_on", channel=channel, note=60, velocity=90)))
        out.append((t + length, mido.Message("note_off", channel=channel, note=60, velocity=0)))
    return out


def test_midi_grid_follows_tempo_changes_and_time_signatures() -> None:
    tpq = 480
    events = [
        (0, mido.MetaMessage("set_tempo", tempo=500_000)),  # 120 quarters per minute
        (0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
        (8 * tpq, mido.MetaMessage("set_tempo", tempo=1_000_000)),  # 60 from bar 3
        (8 * tpq, mido.MetaMessage("time_signature", numerator=6, denominator=8)),  # then 6/8 bars of 3 quarters
        *_notes(list(range(0, 14 * tpq, tpq // 2))),
    ]
    piece = scores.piece_from_midi(_midi(events, tpq))
    # two 4/4 bars at 0.5 s per quarter, then 6/8: dotted-quarter beats of 1.5 quarters at 1 s per quarter
    np.testing.assert_allclose(piece.beats[:8], np.arange(8) * 0.5)
    np.testing.assert_allclose(piece.beats[8:12], 4.0 + np.arange(4) * 1.5)
    np.testing.assert_allclose(piece.downbeats[:4], [0.0, 2.0, 4.0, 7.0])
    assert piece.metres[0] == "4/4" and piece.metres[8] == "6/8" and piece.beats_per_bar[8] == 2
    assert piece.note_onsets[0] == 0.0 and piece.end_s > 9.0


def test_metre_beat_conventions() -> None:
    assert scores.Metre(6, 8).beats_per_bar == 2 and scores.Metre(6, 8).beat_quarters == 1.5
    assert scores.Metre(2, 2).beat_quarters == 2.0 and scores.Metre(3, 4).beats_per_bar == 3
    assert not scores.Metre(3, 8).countable and not scores.Metre(6, 4).countable


def test_truncation_releases_held_notes_and_ends_the_file() -> None:
    tpq = 480
    events = [(0, mido.MetaMessage("set_tempo", tempo=500_000)), (0, mido.Message("note_on", note=60, velocity=90)),
              (20 * tpq, mido.Message("note_off", note=60, velocity=0))]  # fmt: skip
    cut = scores.truncated(_midi(events, tpq), 3.0)
    assert cut.length == pytest.approx(3.0, abs=0.01)
    msgs = [m for m in cut.tracks[0] if m.type in ("note_on", "note_off")]
    assert msgs[-1].type == "note_off" and msgs[-1].note == 60  # released at the cut, not left sounding


def test_parts_get_their_own_channels_and_programs() -> None:
    mid = mido.MidiFile(ticks_per_beat=480)
    for _ in range(3):
        t = mido.MidiTrack()
        t += [mido.Message("note_on", channel=0, note=60, velocity=80), mido.Message("note_off", channel=0, note=60, time=480)]
        mid.tracks.append(t)
    split, channels = scores.one_channel_per_track(mid)
    assert channels == [0, 1, 2]
    out = scores.set_programs(split, {0: 40, 1: 41, 2: 42})
    progs = {m.channel: m.program for tr in out.tracks for m in tr if m.type == "program_change"}
    assert progs == {0: 40, 1: 41, 2: 42}


def test_score_with_pickup_in_compound_metre() -> None:
    pytest.importorskip("music21")
    from music21 import converter

    tune = "X:1\nT:pickup jig\nM:6/8\nL:1/8\nK:D\nA|dfa afd|dfa afd|gbg faf|e3 d2:|\n"
    piece = scores.piece_from_score(converter.parse(tune, format="abc"), beat_bpm=100.0, programs={0: 73})
    beat = 60.0 / 100.0  # a dotted quarter at 100 per minute
    # the eighth-note pickup lasts a third of a beat: the first bar line is at 0.2 s, beats every 0.6 s from there
    assert piece.downbeats[0] == pytest.approx(beat / 3)
    np.testing.assert_allclose(np.diff(piece.beats[1:6]), beat)
    assert set(piece.metres) == {"6/8"} and piece.beats_per_bar[0] == 2
    assert {m.program for tr in piece.midi.tracks for m in tr if m.type == "program_change"} == {73}
    tempo = [m.tempo for tr in piece.midi.tracks for m in tr if m.type == "set_tempo"]
    assert tempo == [round(60e6 / (100.0 * 1.5))]


def test_windows_need_a_steady_tempo_and_sounding_notes() -> None:
    tpq = 480
    quarter = list(range(0, 40 * tpq, tpq))
    events = [(0, mido.MetaMessage("set_tempo", tempo=500_000)), (20 * tpq, mido.MetaMessage("set_tempo", tempo=400_000)),
              *_notes([t for t in quarter if not 30 * tpq <= t < 36 * tpq])]  # fmt: skip
    piece = scores.piece_from_midi(_midi(events, tpq))
    starts = scores_set.choose_windows(piece, 5, np.random.default_rng(0))
    assert starts, "the first 10 s hold one tempo"
    change = 10.0  # the tempo changes at quarter 20 = 10 s; notes stop from 30*0.4+10 = 14 s for 2.4 s
    for t in starts:
        assert t + scores_set.CLIP_S <= change + 1e-9 or t >= change
        inside = piece.beats[(piece.beats >= t) & (piece.beats < t + scores_set.CLIP_S)]
        assert np.ptp(np.diff(inside)) < 1e-6


def test_soundfont_choice_is_stable_and_uses_what_is_installed() -> None:
    fonts = soundfonts.SOUNDFONTS
    assert soundfonts.pick(fonts, "x", 1) == soundfonts.pick(fonts, "x", 1)
    assert {soundfonts.pick(fonts, "piece", i).name for i in range(40)} == {f.name for f in fonts}
    assert soundfonts.name_of(soundfonts.DEFAULT.path) == "fluidr3"
    with pytest.raises(ValueError):
        soundfonts.pick((), "x")


def test_sources_have_distinct_names_and_known_kinds() -> None:
    assert len({s.name for s in SOURCES}) == len(SOURCES)
    assert {s.kind for s in SOURCES} <= {"midi", "midge", "abc", "musicxml"}
    assert by_name("openmsx").package == "openttd-openmsx"


@pytest.mark.slow
def test_a_real_build_puts_truth_beats_on_rendered_onsets(tmp_path) -> None:
    """Two tunes from abcmidi's examples and two OpenMSX excerpts, rendered: truth rows are consistent and a
    note starts on most truth beats (onsets detected in the audio, within 50 ms)."""
    import librosa
    import soundfile as sf

    if shutil.which("fluidsynth") is None or not by_name("abcmidi-examples").files() or not by_name("openmsx").files():
        pytest.skip("needs fluidsynth, abcmidi and openttd-openmsx (scripts/devset-deps.sh scores)")
    pytest.importorskip("music21")
    try:
        summary = scores_set.build_scores(tmp_path, workers=1, sources=("abcmidi-examples", "openmsx"), max_items=2)
    except MissingDependencyError as e:
        pytest.skip(str(e))
    rows = pq.read_table(tmp_path / "truth.parquet").to_pylist()
    assert summary["clips"] == len(rows) >= 3
    on = []
    for r in rows:
        beats = np.asarray(r["beats"])
        assert beats.min() >= 0 and beats.max() < 10 and r["soundfont"] in {f.name for f in soundfonts.SOUNDFONTS}
        assert r["tempo_bpm"] == pytest.approx(60 / np.median(np.diff(beats)), rel=1e-3)
        y, sr = sf.read(tmp_path / r["path"])
        onsets = librosa.onset.onset_detect(y=y, sr=sr, hop_length=256, units="time")
        on.append(float(np.mean([np.abs(onsets - t).min() < 0.05 for t in beats])))
    assert np.mean(on) > 0.8, on
