"""The synthetic corpus's ground truth agrees with its own audio and with the AudioSet conventions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import librosa
import numpy as np
import pyloudnorm
import pytest
from paths import AUDIOSET_DIR

from m2ugen_data.audio_io import load_audio
from m2ugen_data.ids import make_clip_id, validate_ytid
from m2ugen_data.synth import load_truth

MUSIC, SPEECH, INSTRUMENT_ROOT = "/m/04rlf", "/m/09x0r", "/m/04szw"


@pytest.fixture(scope="module")
def truth(synth_corpus: Path) -> list[dict]:
    return load_truth(synth_corpus).to_pylist()


@pytest.fixture(scope="module")
def ontology() -> dict[str, dict]:
    return {e["id"]: e for e in json.loads((AUDIOSET_DIR / "ontology.json").read_text())}


def _subtree(ontology: dict[str, dict], root: str) -> set[str]:
    out, todo = set(), [root]
    while todo:
        mid = todo.pop()
        out.add(mid)
        todo += ontology[mid].get("child_ids", [])
    return out


def _clean(truth: list[dict]) -> list[dict]:
    return [r for r in truth if r["trouble"] == "none"]


def test_fixture_corpus_has_siblings_and_every_trouble(truth: list[dict]) -> None:
    assert len(truth) == 24
    assert len({r["group_id"] for r in truth if r["group_id"]}) >= 6
    assert {r["trouble"] for r in truth} == {"none", "silence", "clipping", "speech", "short"}


def test_segments_csv_is_official_audioset_format(synth_corpus: Path, truth: list[dict], ontology: dict) -> None:
    lines = (synth_corpus / "segments.csv").read_text().splitlines()
    assert [line[0] for line in lines[:3]] == ["#"] * 3
    assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
    assert all(not line.startswith("#") and ", " in line for line in lines[3:])
    rows = list(csv.reader(lines[3:], skipinitialspace=True))
    by_id = {r["clip_id"]: r for r in truth}
    assert len(rows) == len(truth)
    instruments = _subtree(ontology, INSTRUMENT_ROOT)
    for ytid, start, end, labels in rows:
        validate_ytid(ytid)
        start_s, end_s = float(start), float(end)
        assert start_s % 10 == 0 and end_s == start_s + 10
        mids = labels.split(",")
        assert all(m in ontology for m in mids), mids
        assert MUSIC in mids
        row = by_id[make_clip_id(ytid, start_s)]
        assert mids == row["labels"]
        assert set(row["instruments"]) <= instruments
        assert set(row["instruments"]) <= set(mids)
        assert [ontology[m]["name"] for m in row["instruments"]] == row["instrument_names"]
        assert (SPEECH in mids) == (row["trouble"] == "speech")


def test_audio_files_match_truth(synth_corpus: Path, truth: list[dict]) -> None:
    for r in truth:
        y, sr = load_audio(synth_corpus / r["audio_path"])
        assert sr == r["sample_rate"]
        assert len(y) / sr == pytest.approx(r["duration_s"], abs=1e-3)
        assert r["audio_path"] == f"audio/{r['clip_id']}.flac"


def test_beat_grid_is_regular_and_downbeats_every_meter_beats(truth: list[dict]) -> None:
    for r in truth:
        if r["trouble"] in ("silence", "speech"):
            assert r["tempo_bpm"] is None and r["beats"] == [] and r["instruments"] == []
            continue
        beats, downbeats = np.array(r["beats"]), np.array(r["downbeats"])
        assert 60 <= r["tempo_bpm"] <= 180 and r["meter"] in (3, 4)
        assert np.allclose(np.diff(beats), 60.0 / r["tempo_bpm"])
        assert 0 <= beats[0] < 60.0 / r["tempo_bpm"] and beats[-1] < r["duration_s"]
        index = np.searchsorted(beats, downbeats)
        assert np.allclose(beats[index], downbeats)
        assert np.all(np.diff(index) == r["meter"])
        assert index[0] < r["meter"]


def test_onset_peaks_sit_on_listed_beats(synth_corpus: Path, truth: list[dict]) -> None:
    for r in _clean(truth):
        y, sr = load_audio(synth_corpus / r["audio_path"])
        onsets = librosa.onset.onset_detect(y=y, sr=sr, units="time")
        beats = np.array(r["beats"])
        nearest = np.abs(beats[:, None] - onsets[None, :]).min(axis=1)
        assert np.mean(nearest <= 0.05) >= 0.9, r["clip_id"]
        # And the onset energy is on the beats, not between them: the grid is not just any regular grid.
        env = librosa.onset.onset_strength(y=y, sr=sr)
        off = beats[:-1] + 0.5 * np.diff(beats)
        assert _peak_near(env, beats, sr).mean() > 1.5 * _peak_near(env, off, sr).mean(), r["clip_id"]


def _peak_near(env: np.ndarray, times: np.ndarray, sr: int) -> np.ndarray:
    """Largest onset strength within one frame (~23 ms) of each time."""
    frames = librosa.time_to_frames(times, sr=sr)
    return np.max([env[np.clip(frames + d, 0, env.size - 1)] for d in (-1, 0, 1)], axis=0)


def test_siblings_share_composition_but_differ_in_instruments(truth: list[dict]) -> None:
    groups: dict[str, list[dict]] = {}
    for r in truth:
        if r["group_id"]:
            assert r["trouble"] == "none"
            groups.setdefault(r["group_id"], []).append(r)
    for members in groups.values():
        assert 2 <= len(members) <= 3
        first = members[0]
        for other in members[1:]:
            for col in ("tempo_bpm", "meter", "key", "beats", "downbeats"):
                assert other[col] == first[col], col
        label_sets = {frozenset(m["instruments"]) for m in members}
        assert len(label_sets) == len(members)
        assert len({m["ytid"] for m in members}) == len(members)


def test_trouble_clips_have_their_trouble(synth_corpus: Path, truth: list[dict]) -> None:
    def audio(r: dict) -> np.ndarray:
        return load_audio(synth_corpus / r["audio_path"])[0]

    for r in truth:
        y = audio(r)
        if r["trouble"] == "silence":
            assert np.sqrt(np.mean(y**2)) < 1e-3
        elif r["trouble"] == "clipping":
            assert np.mean(np.abs(y) >= 0.999) > 0.05
        elif r["trouble"] == "short":
            assert r["duration_s"] == pytest.approx(1.5) and len(r["beats"]) >= 1
        elif r["trouble"] == "speech":
            assert np.sqrt(np.mean(y**2)) > 0.01
        else:
            assert np.mean(np.abs(y) >= 0.999) < 0.001
            lufs = pyloudnorm.Meter(r["sample_rate"]).integrated_loudness(y.astype(np.float64))
            assert -26.0 <= lufs <= -13.5, (r["clip_id"], lufs)
