"""The analysers one by one, on signals made here whose truth is known (click tracks, sines, silence)."""

from __future__ import annotations

from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from m2ugen_data.analysis import analyze as an
from m2ugen_data.analysis import loudness, rhythm, spectral, speech, tonal
from m2ugen_data.analysis.music_filter import (
    ClipLabels,
    MusicFilterConfig,
    music_reasons,
    refilter,
)
from m2ugen_data.errors import InvalidIdError

SR = 44100


def click_track(bpm: float, meter: int, seconds: float = 10.0, offset: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Accented clicks on a quiet drone (so the clip is not silent between clicks), and the beat times."""
    n = int(SR * seconds)
    t = np.arange(n) / SR
    y = 0.02 * np.sin(2 * np.pi * 110 * t)
    beats = np.arange(offset, seconds - 0.05, 60 / bpm)
    click_t = np.arange(int(0.06 * SR)) / SR
    for i, b in enumerate(beats):
        accent = i % meter == 0
        c = np.sin(2 * np.pi * (1760 if accent else 880) * click_t) * np.exp(-click_t * 50) * (0.9 if accent else 0.5)
        s = int(b * SR)
        y[s : s + len(c)] += c[: n - s]
    return y.astype(np.float32), beats


@pytest.fixture(scope="module")
def models() -> an.Models:
    an.init_worker()
    assert an._MODELS is not None
    return an._MODELS


@pytest.mark.parametrize(("bpm", "meter"), [(120, 4), (96, 3), (150, 4), (78, 3)])
def test_rhythm_on_click_tracks(models: an.Models, bpm: float, meter: int) -> None:
    y, truth = click_track(bpm, meter)
    rh = rhythm.analyse_rhythm(y, models.rhythm)
    assert rh.tempo_bpm == pytest.approx(bpm, rel=0.02)
    assert rh.meter == meter
    assert mir_eval.beat.f_measure(truth, rh.beats) >= 0.9
    # downbeats fall on the accented clicks
    assert mir_eval.beat.f_measure(truth[::meter], rh.downbeats) >= 0.8
    assert 0.3 < rh.tempo_conf <= 1.0


def test_rhythm_gives_no_tempo_for_noise_instead_of_a_guess(models: an.Models) -> None:
    y = (np.random.default_rng(0).standard_normal(SR * 6) * 0.01).astype(np.float32)
    rh = rhythm.analyse_rhythm(y, models.rhythm)
    assert rh.tempo_bpm is None or rh.tempo_conf < 0.3


def test_tempo_confidence_falls_with_irregular_beats() -> None:
    act = np.zeros((1000, 2), dtype=np.float32)
    steady = np.arange(0.5, 9.5, 0.5)
    act[(steady * 100).astype(int), 0] = 0.9
    jitter = steady + np.random.default_rng(1).uniform(-0.12, 0.12, steady.size)
    assert rhythm.tempo_confidence(act, steady, np.diff(steady)) == pytest.approx(0.9, abs=0.01)
    assert rhythm.tempo_confidence(act, jitter, np.diff(jitter)) < 0.3


def test_levels_of_a_sine_match_bs1770() -> None:
    t = np.arange(SR * 5) / SR
    y = (0.5 * np.sin(2 * np.pi * 997 * t)).astype(np.float32)
    lv = loudness.measure_levels(y, SR)
    # a 997 Hz sine at peak A reads 20 log10(A) - 3.01 LUFS (BS.1770's reference point)
    assert lv.loudness_lufs == pytest.approx(20 * np.log10(0.5) - 3.01, abs=0.2)
    assert lv.peak_dbfs == pytest.approx(-6.02, abs=0.01)
    assert lv.clip_ratio == 0.0 and lv.silence_ratio == 0.0


def test_levels_see_clipping_and_silence() -> None:
    t = np.arange(SR * 4) / SR
    clipped = np.clip(3 * np.sin(2 * np.pi * 200 * t), -1, 1).astype(np.float32)
    assert loudness.measure_levels(clipped, SR).clip_ratio > 0.5
    half = np.concatenate([np.zeros(SR * 2), 0.3 * np.sin(2 * np.pi * 440 * t[: SR * 2])]).astype(np.float32)
    assert loudness.measure_levels(half, SR).silence_ratio == pytest.approx(0.5, abs=0.03)
    lv = loudness.measure_levels(np.zeros(SR * 3, dtype=np.float32), SR)
    assert lv.loudness_lufs is None and lv.peak_dbfs is None and lv.silence_ratio == 1.0


def test_speech_ratio_is_zero_for_clicks_and_tones(models: an.Models) -> None:
    y, _ = click_track(120, 4)
    import soxr

    assert speech.speech_ratio(soxr.resample(y, SR, speech.SAMPLE_RATE), models.vad) == 0.0


def test_spectral_centroid_and_onsets_follow_the_signal() -> None:
    y, beats = click_track(120, 4)
    import soxr

    y22 = soxr.resample(y, SR, spectral.SAMPLE_RATE)
    sp = spectral.analyse_spectral(y22)
    assert sp.onset_rate == pytest.approx(len(beats) / 10.0, rel=0.25)
    assert sp.timbre.shape == (24,) and np.isfinite(sp.timbre).all()
    t = np.arange(spectral.SAMPLE_RATE * 3) / spectral.SAMPLE_RATE
    low = spectral.analyse_spectral((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))
    high = spectral.analyse_spectral((0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32))
    assert low.centroid_hz < 600
    assert high.centroid_hz > 2000


def test_key_names_parse_and_group_by_rule() -> None:
    assert tonal.parse_key("Bb major") == (10, "major")
    assert tonal.parse_key("C# minor") == tonal.parse_key("Db minor") == (1, "minor")
    assert tonal.key_class("A minor", "relative") == tonal.key_class("C major", "relative")
    assert tonal.key_class("A major", "relative") != tonal.key_class("C major", "relative")
    assert tonal.key_class("A minor", "same") != tonal.key_class("C major", "same")
    assert tonal.key_class("A minor", "any") == tonal.key_class("F# major", "any")
    with pytest.raises(ValueError):
        tonal.parse_key("H major")


def test_key_of_a_chord_progression(models: an.Models) -> None:
    """I-IV-V-I in A minor (Am, Dm, E, Am) with additive tones: madmom's CNN says A minor."""
    midi = [[57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64]]
    t = np.arange(int(SR * 2.5)) / SR
    y = np.concatenate(
        [sum(np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * t * h) / h for m in chord for h in (1, 2, 3)) for chord in midi * 2]
    )
    key = tonal.analyse_key((0.05 * y).astype(np.float32), models.key)
    assert key.name == "A minor"
    assert key.confidence > 0.3


def test_music_filter_reasons() -> None:
    cfg = MusicFilterConfig()
    music = ClipLabels(labels=("/m/04rlf",))
    ok = {"status": "ok", "speech_ratio": 0.1, "loudness_lufs": -14.0}
    assert music_reasons(ok, music, cfg) == []
    assert music_reasons(ok, ClipLabels(labels=("/m/09x0r",)), cfg) == ["no_music_label"]
    assert music_reasons(ok, ClipLabels(instruments=("/m/05r5c",)), cfg) == []
    assert music_reasons({**ok, "speech_ratio": 0.8}, music, cfg) == ["speech"]
    assert music_reasons({**ok, "loudness_lufs": -50.0}, music, cfg) == ["too_quiet"]
    assert music_reasons({**ok, "loudness_lufs": -1.0}, music, cfg) == ["too_loud"]
    assert music_reasons({"status": "rejected", "reason": "clipped"}, music, cfg) == ["clipped"]
    assert music_reasons({"status": "failed", "reason": "undecodable: x"}, None, cfg) == ["undecodable", "no_music_label"]
    assert music_reasons(ok, None, MusicFilterConfig(require_music_label=False)) == []


def _write(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, y, sr, subtype="PCM_16")
    return path


def test_analyse_file_turns_bad_audio_into_rows(tmp_path: Path, models: an.Models) -> None:
    t = np.arange(SR * 10) / SR
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"not audio at all" * 100)
    broken = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    broken[1000:1100] = np.nan
    nan_wav = tmp_path / "nan.wav"
    sf.write(nan_wav, broken, SR, subtype="FLOAT")
    cases = {
        "nan": (nan_wav, "rejected", "non_finite_samples"),
        "missing": (tmp_path / "nope.flac", "failed", "missing_file"),
        "garbage": (garbage, "failed", "undecodable"),
        "short": (_write(tmp_path / "short.wav", click_track(120, 4, seconds=1.5)[0]), "rejected", "too_short"),
        "silent": (_write(tmp_path / "silent.wav", np.zeros(SR * 10, dtype=np.float32)), "rejected", "silent"),
        "clipped": (
            _write(tmp_path / "clipped.wav", np.clip(4 * np.sin(2 * np.pi * 220 * t), -1, 1).astype(np.float32)),
            "rejected",
            "clipped",
        ),
    }
    for name, (path, status, reason) in cases.items():
        row, _ = an.analyse_file("abcdefghijk_0", path)
        assert row["status"] == status, name
        assert row["reason"].split(":")[0] == reason, name
        assert row["tempo_bpm"] is None and row["meter"] is None, name  # never a fabricated tempo
        assert row["tags_mtt"] is None and row["instruments"] is None and row["beat_chords"] is None, name
        assert row["is_music"] is False and reason in row["music_reasons"], name


def test_analyze_clips_writes_batches_and_skips_on_rerun(warehouse, tmp_path: Path) -> None:
    clips = {
        "aaaaaaaaaaa_0": _write(tmp_path / "a.wav", click_track(120, 4)[0]),
        "bbbbbbbbbbb_0": _write(tmp_path / "b.wav", click_track(90, 3)[0]),
        "ccccccccccc_0": tmp_path / "missing.wav",
    }
    done = []
    summary = an.analyze_clips(warehouse, clips, workers=0, batch_size=2, progress=done.append)
    assert summary.analysed == 3 and sum(done) == 3 and len(summary.batches) == 2
    rows = {r["clip_id"]: r for r in warehouse.read("features").to_pylist()}
    assert rows["aaaaaaaaaaa_0"]["meter"] == 4 and rows["bbbbbbbbbbb_0"]["meter"] == 3
    assert rows["aaaaaaaaaaa_0"]["tempo_bpm"] == pytest.approx(120, rel=0.02)
    assert rows["aaaaaaaaaaa_0"]["analyser_version"] == an.ANALYSER_VERSION
    assert rows["ccccccccccc_0"]["status"] == "failed"
    files = warehouse.manifest_files("features")
    again = an.analyze_clips(warehouse, clips, workers=0, batch_size=2)
    assert again.skipped == 2 and again.analysed == 1  # only the failed clip is retried
    forced = an.analyze_clips(warehouse, clips, workers=0, batch_size=2, force=True)
    assert forced.analysed == 3
    assert warehouse.manifest_files("features") == files  # same batch ids: replaced, not duplicated


def test_analyze_clips_rejects_hostile_ids(warehouse, tmp_path: Path) -> None:
    with pytest.raises(InvalidIdError):
        an.analyze_clips(warehouse, {"../../etc/passwd": tmp_path / "x.wav"}, workers=0)


def test_refilter_rewrites_only_changed_verdicts(warehouse, tmp_path: Path) -> None:
    clips = {"aaaaaaaaaaa_0": _write(tmp_path / "a.wav", click_track(120, 4)[0])}
    an.analyze_clips(warehouse, clips, workers=0)
    row = warehouse.read("features").to_pylist()[0]
    # no segments row: not music by the label rule (whatever the music score says of a metronome over a drone)
    assert row["is_music"] is False and "no_music_label" in row["music_reasons"]
    relaxed = MusicFilterConfig(require_music_label=False, min_music_score=0.0)
    counts = refilter(warehouse, relaxed)
    assert counts == {"clips": 1, "changed": 1, "is_music": 1, "not_music": 0}
    assert warehouse.read("features").to_pylist()[0]["is_music"] is True
    assert refilter(warehouse, relaxed)["changed"] == 0


@pytest.mark.slow
def test_parallel_workers_warm_up_safely_on_a_cold_numba_cache(tmp_path):
    """A fresh install has no numba cache: pool workers warming up at once used to segfault (CI found it)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    code = "from m2ugen_data.analysis.analyze import init_worker; init_worker()"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(3)]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0, 0, 0]
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "the cache was not written"
