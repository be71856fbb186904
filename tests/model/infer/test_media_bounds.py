"""Bounded user media in `m2ugen-infer`: an hour of audio is refused from its header before a sample is decoded
(or read in mono blocks when the cap is raised), a Matroska/WebM video without a frame count keeps only the
clip's frames, and out-of-range music lengths are one line, on the command line and in a batch request."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from entry_points import run_main
import soundfile as sf

from m2ugen_model.infer.media_io import MediaInputError, read_audio, read_video

HOUR_SR = 8000  # an hour of 8 kHz silence: 89 KB of FLAC, 115 MB once decoded


@pytest.fixture(scope="module")
def hour_flac(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "hour.flac"
    with sf.SoundFile(path, "w", samplerate=HOUR_SR, channels=1, format="FLAC") as f:
        minute = np.zeros(HOUR_SR * 60, np.float32)
        for _ in range(60):
            f.write(minute)
    return path


def _peak_bytes(fn, *args, **kwargs):
    """(result or the exception raised, peak bytes Python and numpy allocated while running fn)."""
    tracemalloc.start()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # the caller asserts on what was raised
        result = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, peak


def _one_line(message: str) -> str:
    assert "\n" not in message.strip(), message
    return message


def test_hour_of_audio_is_refused_from_its_header_before_decoding(hour_flac):
    err, peak = _peak_bytes(read_audio, hour_flac)
    assert isinstance(err, MediaInputError), err
    line = _one_line(str(err))
    assert str(hour_flac) in line and "3600 s" in line and "600 s" in line and "--max-audio-seconds" in line
    assert peak < 5e6  # nothing decoded (the whole hour is 115 MB of samples)


def test_raised_audio_cap_reads_the_hour(hour_flac):
    y, sr = read_audio(hour_flac, max_seconds=3600)
    assert sr == HOUR_SR and y.shape == (3600 * HOUR_SR,) and y.dtype == np.float32


def test_audio_through_pyav_past_the_cap_is_refused(tmp_path):
    """A container libsndfile cannot read (AAC in MP4) is held to the same cap."""
    import av

    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        for i in range(20):  # 20 x 1024 samples: 1.3 s
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.rate, frame.pts = 16000, i * 1024
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    assert read_audio(path)[0].size > 16000
    with pytest.raises(MediaInputError) as exc:
        read_audio(path, max_seconds=1)
    assert str(path) in _one_line(str(exc.value)) and "1 s" in str(exc.value)


def _write_video(path: Path, n: int, codec: str = "mpeg4") -> Path:
    """n distinct 16x16 frames (frame i is grey level i % 250) at 25 fps."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        for i in range(n):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((16, 16, 3), i % 250, np.uint8), format="rgb24")))
        c.mux(s.encode(None))
    return path


_PEAK_SCRIPT = """
import sys
from pathlib import Path
from m2ugen_model.infer.media_io import read_video

def status(key):
    return int(next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith(key + ":")))

read_video(sys.argv[1], frames=8)  # warm-up: libraries loaded, decoder and scaler set up once
Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from the current RSS
rss = status("VmRSS")
clip = read_video(sys.argv[2], frames=8, sampling=sys.argv[3])
print(status("VmHWM") - rss, clip.shape)
"""


def _video_peak_kb(warm: Path, path: Path, sampling: str) -> int:
    """How far reading `path` raised the peak RSS of a fresh process (KB). PyAV's frames live outside
    tracemalloc's view, so the process's own high-water mark is what counts (VmHWM: unlike ru_maxrss it does
    not inherit the parent's peak across exec)."""
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(warm), str(path), sampling], capture_output=True,
                         text=True, check=True).stdout.split(maxsplit=1)
    assert out[1].strip() == "(8, 256, 256, 3)", out
    return int(out[0])


@pytest.mark.parametrize("sampling", ["consecutive", "even"])
def test_matroska_without_frame_count_keeps_only_the_clip(tmp_path, sampling):
    import av

    n = 400
    mkv, mp4 = _write_video(tmp_path / "v.mkv", n), _write_video(tmp_path / "v.mp4", n)
    with av.open(str(mkv)) as c:
        assert c.streams.video[0].frames == 0  # the container does not say how many frames it holds
    frame_kb = 256 * 256 * 3 / 1024
    # Every upscaled frame kept would be n * 192 KB = 75 MB; the clip and a few frames in flight stay far below.
    assert _video_peak_kb(_write_video(tmp_path / "warm.mkv", 10), mkv, sampling) < 40 * frame_kb
    np.testing.assert_array_equal(read_video(mkv, frames=8, sampling=sampling),
                                  read_video(mp4, frames=8, sampling=sampling))  # the frames the MP4 gives


def test_webm_past_the_frame_cap_is_refused(tmp_path):
    webm = _write_video(tmp_path / "v.webm", 120, codec="libvpx")
    assert read_video(webm, frames=4, max_frames=120).shape[0] == 4
    with pytest.raises(MediaInputError) as exc:
        read_video(webm, frames=4, max_frames=100)
    line = _one_line(str(exc.value))
    assert str(webm) in line and "100 frames" in line and "--max-video-frames" in line


def _main(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """`m2ugen-infer` through its entry point (its error handling included): (exit code, stderr)."""
    from m2ugen_model.infer import cli

    return run_main(cli.main, "m2ugen-infer", args, monkeypatch, capsys)


def test_cli_refuses_long_audio_in_one_line_before_loading(hour_flac, tmp_path, monkeypatch, capsys):
    code, err = _main(["--weights-dir", str(tmp_path / "never-read"), "caption", str(hour_flac)], monkeypatch, capsys)
    assert code == 2
    line = _one_line(err)
    assert line.startswith("error:") and str(hour_flac) in line and "600 s" in line


@pytest.mark.parametrize("args, option, limit", [
    (["--seconds", "0", "compose", "jazz"], "--seconds", "0.01"),
    (["--seconds", "20000", "compose", "jazz"], "--seconds", "60"),
    (["compose", "jazz", "--length", "-1"], "--length", "0.01"),
    (["--max-audio-seconds", "0", "caption", "song.flac"], "--max-audio-seconds", "1"),
    (["--max-video-frames", "0", "compose", "--video", "v.mkv"], "--max-video-frames", "1"),
    (["--max-new-tokens", "0", "compose", "jazz"], "--max-new-tokens", "1"),
    (["--temperature", "-1", "compose", "jazz"], "--temperature", "0"),
    (["--top-p", "1.5", "compose", "jazz"], "--top-p", "1"),
    (["--steps", "0", "compose", "jazz"], "--steps", "1"),
    (["--steps", "100000", "compose", "jazz"], "--steps", "1000"),
    (["--offload-layers", "-1", "compose", "jazz"], "--offload-layers", "0"),
])
def test_out_of_range_option_is_one_line(args, option, limit, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = _main(["--weights-dir", str(tmp_path / "never-read"), *args], monkeypatch, capsys)
    assert code == 2
    line = _one_line(err)
    assert line.startswith("error:") and option in line and limit in line


def test_batch_request_seconds_out_of_range_is_recorded(tmp_path, monkeypatch, capsys):
    reqs = tmp_path / "r.jsonl"
    reqs.write_text(json.dumps({"id": "neg", "task": "text2music", "prompt": "jazz", "seconds": -1}) + "\n"
                    + json.dumps({"id": "huge", "task": "text2music", "prompt": "jazz", "seconds": 20000}) + "\n")
    code, err = _main(["--weights-dir", str(tmp_path / "never-read"), "batch", str(reqs), "--out-dir",
                       str(tmp_path / "out")], monkeypatch, capsys)
    assert code == 0, err
    for rid in ("neg", "huge"):
        rec = json.loads((tmp_path / "out" / f"{rid}.json").read_text())
        assert rec["status"] == "error" and "seconds" in rec["error"], rec
        assert ("0.01" if rid == "neg" else "60") in _one_line(rec["error"])


@pytest.mark.slow
def test_cli_caps_reach_the_readers(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """--max-audio-seconds and --max-video-frames are what `m2ugen-infer` reads with (batch: recorded, one line)."""
    sf.write(tmp_path / "two.flac", np.zeros(2 * 16000, np.float32), 16000)
    _write_video(tmp_path / "v.mkv", 20)
    reqs = tmp_path / "r.jsonl"
    reqs.write_text(json.dumps({"id": "aud", "task": "caption", "audio": "two.flac"}) + "\n"
                    + json.dumps({"id": "vid", "task": "video2music", "video": "v.mkv"}) + "\n")
    code, err = _main(["--weights-dir", str(tiny_model_dir), "--max-new-tokens", "4", "--seconds", "0.02",
                       "--max-audio-seconds", "1.5", "--max-video-frames", "10", "batch", str(reqs),
                       "--out-dir", str(tmp_path / "out")], monkeypatch, capsys)
    assert code == 0, err
    aud, vid = (json.loads((tmp_path / "out" / f"{i}.json").read_text()) for i in ("aud", "vid"))
    assert aud["status"] == "error" and "two.flac" in aud["error"] and "1.5 s limit" in _one_line(aud["error"])
    assert vid["status"] == "error" and "v.mkv" in vid["error"] and "10 frames limit" in _one_line(vid["error"])
