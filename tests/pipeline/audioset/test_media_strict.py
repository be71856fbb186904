"""Corrupt media fails as ``corrupt`` (never a shorter clip passed as ok), and input length is bounded before
decoding: long audio is rejected as ``too_long`` or analysed in windows, never decoded whole."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from m2ugen_data.analysis.analyze import Thresholds, analyse_file, analyze_clips
from m2ugen_data.audio_io import CorruptAudioError, load_audio
from m2ugen_data.audioset.failures import CORRUPT, Failure
from m2ugen_data.audioset.verify import Expected, verify_audio, verify_video
from m2ugen_data.vision import media_stage
from m2ugen_data.warehouse import Warehouse, utc_now

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is needed to render test media")
SR = 44100


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", *args], check=True)


@pytest.fixture(scope="module")
def corrupt_flac(tmp_path_factory) -> Path:
    """10 s of a noisy tone as FLAC (~720 KB) with 50 KB in the middle destroyed: libsndfile says "flac
    decoder lost sync"; ffmpeg, the old fallback, skips the damage and returns about 9 s."""
    d = tmp_path_factory.mktemp("strict")
    t = np.arange(10 * SR) / SR
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    good = d / "good.flac"
    sf.write(good, y.astype(np.float32), SR, format="FLAC", subtype="PCM_16")
    data = bytearray(good.read_bytes())
    mid = len(data) // 2 - 25_000
    data[mid : mid + 50_000] = bytes(50_000)
    bad = d / "corrupt.flac"
    bad.write_bytes(bytes(data))
    return bad


@pytest.fixture(scope="module")
def truncated_mp4(tmp_path_factory) -> Path:
    """A 10 s MP4 (moving test picture + tone, moov first) cut to its first third: the header still says 10 s."""
    d = tmp_path_factory.mktemp("strict_video")
    full = d / "full.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=10", "-f", "lavfi", "-i",
            "sine=frequency=330:duration=10", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
            "-c:a", "aac", "-shortest", "-movflags", "+faststart", str(full))
    data = full.read_bytes()
    cut = d / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 3])
    return cut


def _ok_clip(wh: Warehouse, clip_id: str, src: Path, duration_s: float) -> None:
    """A clip as a download would have recorded it (status ok), with ``src`` as its audio."""
    target = wh.media_path("audio", clip_id, "flac")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    wh.write_batch("segments", [{
        "clip_id": clip_id, "ytid": clip_id[:11], "start_s": 0.0, "end_s": 10.0, "labels": ["/m/04rlf"],
        "instruments": [], "genres": [], "moods": [], "pool": "mucaps", "source": "test", "updated_at": utc_now()}],
        f"seg-{clip_id}")
    wh.write_batch("clips", [{
        "clip_id": clip_id, "status": "ok", "error_class": None, "error": None, "attempts": 1,
        "audio_path": target.relative_to(wh.root).as_posix(), "video_path": None, "duration_s": duration_s,
        "sample_rate": SR, "bytes": target.stat().st_size, "sha256": None, "span": None, "span_start_s": None,
        "updated_at": utc_now()}], f"clip-{clip_id}")


# --------------------------------------------------------------------------- corrupt audio and video


def test_flac_corrupted_mid_file_is_a_corrupt_failure_not_a_short_clip(corrupt_flac, warehouse):
    assert sf.info(corrupt_flac).duration == 10.0  # the header is intact: only decoding finds the damage
    with pytest.raises(CorruptAudioError, match="lost sync"):
        load_audio(corrupt_flac)
    with pytest.raises(Failure) as failed:  # the download side refuses it before it reaches the warehouse
        verify_audio(corrupt_flac, Expected.around(10.0, 0.5), SR)
    assert failed.value.error_class == CORRUPT

    _ok_clip(warehouse, "corruptAAAA_0", corrupt_flac, 10.0)
    summary = analyze_clips(warehouse, workers=0)
    (row,) = warehouse.read("features").to_pylist()
    assert (row["status"], row["reason"].split(":")[0]) == ("failed", "corrupt"), row["reason"]
    assert row["tempo_bpm"] is None and not row["is_music"]
    assert summary.reasons == {"corrupt": 1}


def test_decoding_short_of_the_expected_length_is_corrupt(tmp_path):
    """A file that decodes cleanly but is shorter than its download measured (replaced, cut and re-muxed)."""
    path = tmp_path / "short.flac"
    sf.write(path, np.zeros(8 * SR, dtype=np.float32), SR, format="FLAC")
    assert load_audio(path, expected_s=8.05)[0].size == 8 * SR  # within the tolerance
    with pytest.raises(CorruptAudioError, match="expected 10.00 s"):
        load_audio(path, expected_s=10.0)


def test_truncated_mp4_is_corrupt_for_audio_frames_clips_and_the_download(truncated_mp4, warehouse):
    with pytest.raises(CorruptAudioError, match="declares 10.00 s"):
        load_audio(truncated_mp4)  # its audio track: ffmpeg returns ~3 s without an error
    with pytest.raises(Failure, match="corrupt video"):
        verify_video(truncated_mp4, Expected.around(10.0, 0.5), 360)
    clip_id = "truncAAAAAA_0"
    src = warehouse.media_path("video", clip_id, "mp4")
    src.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(truncated_mp4, src)
    for kind in ("video", "image"):  # MUVideo clip, MUImage frame
        row = media_stage.process_clip(warehouse, kind, clip_id)
        assert (row["status"], row["reason"], row["path"]) == ("failed", "corrupt", None), (kind, row)
    assert not list((warehouse.root / "media" / "clips").rglob("*.mp4"))


def test_download_of_a_source_with_decoding_errors_fails_as_corrupt(tmp_path, warehouse):
    """600 bytes zeroed in an AAC stream: ffmpeg used to conceal them (9.9 s of a 10 s section, within the
    length tolerance: "ok"); with -xerror the cut fails and the clip is recorded as corrupt."""
    from test_audioset_download import _config, _latest, _segments, _serve_dir

    from m2ugen_data.audioset.download import download_clips
    from m2ugen_data.testing.loopback_server import MediaServer

    src = tmp_path / "tone.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=30", "-c:a", "aac", "-movflags", "+faststart", str(src))
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 600] = bytes(600)
    root = _serve_dir(tmp_path, {"damagedAAAA": bytes(data), "intactAAAAA": src})
    _segments(warehouse, [("damagedAAAA", 10.0, 20.0, "muedit"), ("intactAAAAA", 10.0, 20.0, "muedit")])
    with MediaServer(root) as srv:
        summary = download_clips(warehouse, _config(srv))
    rows = _latest(warehouse)
    assert rows["intactAAAAA_10000"]["status"] == "ok"
    assert (rows["damagedAAAA_10000"]["status"], rows["damagedAAAA_10000"]["error_class"]) == ("failed", CORRUPT)
    assert summary.ok == 1 and summary.failed == {CORRUPT: 1}


# --------------------------------------------------------------------------- bounded input length


@pytest.fixture(scope="module")
def hour_of_silence(tmp_path_factory) -> Path:
    """One hour of digital silence as FLAC (~450 KB, rendered by ffmpeg in about 1.5 s)."""
    path = tmp_path_factory.mktemp("long") / "hour.flac"
    _ffmpeg("-f", "lavfi", "-i", f"anullsrc=r={SR}:cl=mono", "-t", "3600", "-c:a", "flac", str(path))
    return path


@pytest.fixture
def decoder_reads(monkeypatch) -> list[int]:
    """Frames returned by every libsndfile read in this test (all FLAC decoding goes through SoundFile.read)."""
    reads: list[int] = []
    real = sf.SoundFile.read

    def read(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        reads.append(len(out))
        return out

    monkeypatch.setattr(sf.SoundFile, "read", read)
    return reads


def test_over_the_cap_is_rejected_too_long_without_decoding(hour_of_silence, decoder_reads):
    row, _ = analyse_file("longAAAAAAA_0", hour_of_silence, thresholds=Thresholds(max_duration_s=1800.0))
    assert (row["status"], row["reason"], row["duration_s"]) == ("rejected", "too_long", 3600.0)
    assert decoder_reads == []  # judged from the header: not one sample decoded
    row, _ = analyse_file("longAAAAAAA_0", hour_of_silence, thresholds=Thresholds(windows=0))
    assert (row["status"], row["reason"]) == ("rejected", "too_long")  # no long-audio windows: rejected too
    assert decoder_reads == []


@pytest.mark.slow
def test_long_audio_is_analysed_in_windows_and_no_read_exceeds_the_cap(hour_of_silence, decoder_reads):
    th = Thresholds()
    row, _ = analyse_file("longAAAAAAA_0", hour_of_silence, thresholds=th)
    assert (row["status"], row["reason"], row["duration_s"]) == ("rejected", "silent", 3600.0)
    assert row["windows"] == th.windows and len(row["window_starts_s"]) == th.windows
    assert row["window_starts_s"][0] > 0 and row["window_starts_s"][-1] + th.window_s < 3600.0  # spread over it
    assert sum(decoder_reads) >= 3600 * SR  # the whole file was checked for damage (block by block) ...
    assert max(decoder_reads) <= th.max_decode_s * SR  # ... and no read returned more than the cap


def test_long_music_in_windows_aggregates_to_the_majority_and_captions_the_whole(synth_corpus, tmp_path):
    """40 s: three copies of one synthetic clip, then another clip. The windowed row takes the majority's
    tempo and key, keeps every window's beats in file time, and the grounded caption reads it."""
    from m2ugen_data.facts.measured import facts_from_rows
    from m2ugen_data.facts.rules import TEMPO_PROB_MIN
    from m2ugen_data.captions.grounded import grounded_caption
    from m2ugen_data.synth import load_truth

    truth = [r for r in load_truth(synth_corpus).to_pylist() if r["trouble"] == "none"]
    a, b = truth[0], next(r for r in truth[1:] if abs(np.log(r["tempo_bpm"] / truth[0]["tempo_bpm"])) > 0.2)
    ya, _ = load_audio(synth_corpus / a["audio_path"], sr=SR)
    yb, _ = load_audio(synth_corpus / b["audio_path"], sr=SR)
    n = 10 * SR
    long = tmp_path / "long.flac"
    sf.write(long, np.concatenate([ya[:n], ya[:n], ya[:n], yb[:n]]), SR, format="FLAC", subtype="PCM_16")
    single = tmp_path / "single.flac"
    sf.write(single, ya[:n], SR, format="FLAC", subtype="PCM_16")

    one, _ = analyse_file("singleAAAAA_0", single)
    th = Thresholds(max_decode_s=20.0, windows=4)
    row, _ = analyse_file("longAAAAAAA_0", long, thresholds=th)
    assert one["status"] == "ok" and row["status"] == "ok", (one["reason"], row["reason"])
    assert row["windows"] == 4 and row["window_starts_s"] == [0.0, 10.0, 20.0, 30.0] and row["duration_s"] == 40.0
    assert abs(np.log(row["tempo_bpm"] / one["tempo_bpm"])) < np.log(1.04)
    assert row["key"] == one["key"] and row["meter"] == one["meter"]
    assert row["tempo_conf"] <= one["tempo_conf"]  # the odd window out counts against the confidence ...
    assert row["tempo_prob"] <= 0.75 * one["tempo_prob"] + 1e-9  # ... and against the calibrated probability
    assert 30.0 < max(row["beats"]) < 40.0 and len(row["beat_chords"]) == len(row["beats"]) - 1
    assert len(row["tags_mtt"]) == 50 and row["music_score"] is not None
    caption = grounded_caption(facts_from_rows("longAAAAAAA_0", row, None, lambda mid: mid))
    stated = f"about {round(row['tempo_bpm'])} BPM in {row['meter']}/4 time" in caption
    assert stated == (row["tempo_prob"] >= TEMPO_PROB_MIN), (row["tempo_prob"], caption)
    assert "chords" in caption  # the whole is captioned from the aggregated measurements


def test_cli_analyze_takes_the_length_cap(hour_of_silence, warehouse):
    """`m2ugen-data analyze --max-duration` reaches the analysis: a file over it is a too_long row."""
    from typer.testing import CliRunner

    from m2ugen_data.cli import app

    _ok_clip(warehouse, "longBBBBBBB_0", hour_of_silence, 3600.0)
    out = CliRunner().invoke(app, ["--warehouse", str(warehouse.root), "analyze", "--workers", "1", "--max-duration", "1800"])
    assert out.exit_code == 0, out.output
    (row,) = warehouse.read("features").to_pylist()
    assert (row["status"], row["reason"]) == ("rejected", "too_long")
