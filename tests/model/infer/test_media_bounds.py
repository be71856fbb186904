"""Bounded user media in ``m2ugen-infer``: an input longer than the limit is refused from its header before
anything is decoded, a video whose container hides its length is never held whole, and music lengths are
validated ranges (on the command line and in batch requests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError
from typer.testing import CliRunner

from m2ugen_model.infer import media_io
from m2ugen_model.infer.cli import InferRequest, app


def _silent_flac(path: Path, seconds: int, sr: int = 8000) -> Path:
    """A long FLAC that is tiny on disk (silence compresses to almost nothing), written a minute at a time."""
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, format="FLAC") as f:
        for _ in range(seconds // 60):
            f.write(np.zeros(sr * 60, dtype=np.float32))
    return path


def _mkv(path: Path, frames: int, rate: int = 25) -> Path:
    """Matroska keeps no frame count in its header (as with WebM): the case where every frame used to be kept."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))
    return path


def test_an_hour_of_audio_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    hour = _silent_flac(tmp_path / "hour.flac", 3600)
    assert hour.stat().st_size < 2_000_000

    def decoded(*args, **kwargs):
        raise AssertionError("the file was decoded")

    monkeypatch.setattr(sf, "read", decoded)
    with pytest.raises(media_io.MediaInputError) as e:
        media_io.read_audio(hour)
    msg = str(e.value)
    assert "hour.flac" in msg and "3600 s" in msg and "600 s limit" in msg and "--max-input-seconds" in msg


def test_the_limit_is_an_option_and_the_cli_refuses_in_one_line_before_loading(tmp_path):
    clip = _silent_flac(tmp_path / "two-minutes.flac", 120)
    result = CliRunner().invoke(app, ["--weights-dir", str(tmp_path / "never-read"), "--max-input-seconds", "60",
                                      "caption", str(clip)])
    text = (result.stdout or "") + (result.stderr or "")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, text
    assert "two-minutes.flac" in lines[0] and "60 s limit" in lines[0]
    y, sr = media_io.read_audio(clip, max_seconds=180)  # raised: read as before
    assert len(y) == 120 * sr


def test_video_without_a_frame_count_is_sampled_not_held_whole(tmp_path):
    import av

    clip = _mkv(tmp_path / "clip.mkv", 120)
    with av.open(str(clip)) as c:
        assert c.streams.video[0].frames == 0  # the header hides the count: the case under test
    frames = media_io.read_video(clip, frames=8, short_side=32)
    assert frames.shape == (8, 32, 48, 3)
    with pytest.raises(media_io.MediaInputError) as e:
        media_io.read_video(clip, frames=8, max_seconds=2)  # 120 frames at 25 fps: 4.8 s
    assert "clip.mkv" in str(e.value) and "2 s limit" in str(e.value)


class _Frame:
    """A decoded frame that records being converted (the costly, memory-holding step) and converts to its index."""

    def __init__(self, i: int, converted: list[int]):
        self.i, self.converted = i, converted

    def to_ndarray(self, **kwargs) -> np.ndarray:
        self.converted.append(self.i)
        return np.array([self.i])


@pytest.mark.parametrize("n", [5, 16, 17, 1000, 100_000])
def test_a_stream_of_unknown_length_keeps_a_bounded_evenly_spread_set(n):
    converted: list[int] = []
    kept = [int(k[0]) for k in media_io._spread((_Frame(i, converted) for i in range(n)), 8, {})]
    assert len(kept) <= 16  # never more than twice the clip held
    assert kept == sorted(set(kept)) and (kept == list(range(n)) if n < 16 else len(kept) >= 8)
    assert kept[-1] >= n // 2  # spread over the stream, not its start
    assert len(converted) <= 16 * (np.log2(max(n, 2)) + 1)  # each kept stride converts at most 16 frames


@pytest.mark.parametrize("seconds", [0, -1, 20000])
def test_music_length_out_of_range_is_refused(seconds, tmp_path):
    with pytest.raises(ValidationError):
        InferRequest(id="x", task="text2music", prompt="a calm piano piece", seconds=seconds)
    result = CliRunner().invoke(app, ["--weights-dir", str(tmp_path), "--seconds", str(seconds), "compose", "x"])
    assert result.exit_code == 2
    assert InferRequest(id="x", task="text2music", prompt="p", seconds=30).seconds == 30
