"""Decode video once, in one place (PyAV), so every stage sees the same frames and the same failures.

Sampling decodes the stream sequentially and keeps the first frame at or after each target time: short
AudioSet sections (10 s) decode faster straight through than with keyframe seeks, and the result does not
depend on where the encoder put its keyframes.

Decoding is strict: a decoder error after the first frame, or frames that end well before the length the
container declares (an MP4 cut short keeps its ``moov`` header and decodes "fine" up to the cut), is a
``corrupt`` failure, never a shorter clip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from m2ugen_data.errors import M2UGenError

# Frames may end this much before the declared length (the last frame starts one frame period before the end;
# containers round). A file cut short misses far more.
LENGTH_TOLERANCE_S = 0.5


class VideoDecodeError(M2UGenError):
    """A file that is missing, has no video stream, or whose video cannot be decoded.

    ``reason`` is the short word recorded in the manifest (missing | no_video_stream | undecodable | corrupt).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Sampled:
    """Frames decoded at chosen times; ``frames`` holds RGB uint8 (H, W, 3) or luma uint8 (H, W)."""

    times: list[float]
    frames: list[np.ndarray]
    duration_s: float
    width: int
    height: int
    fps: float


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise VideoDecodeError("missing", f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoDecodeError("undecodable", f"{path}: cannot open ({e})") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError("no_video_stream", f"{path}: no video stream")
    return container


def _stream_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _frames(container: av.container.InputContainer, path: Path) -> Iterator[av.VideoFrame]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    n = 0
    try:
        for frame in container.decode(stream):
            n += 1
            yield frame
    except (av.FFmpegError, ValueError) as e:
        reason = "corrupt" if n else "undecodable"  # some frames decoded: the file broke part-way
        raise VideoDecodeError(reason, f"{path}: decoding failed after {n} frames ({e})") from e


def _check_reached(path: Path, duration: float, last_t: float | None, wanted_t: float) -> None:
    """Raise ``corrupt`` when the frames stopped before ``wanted_t`` although the container declares more."""
    if last_t is None:
        raise VideoDecodeError("undecodable", f"{path}: no decodable video frames")
    if min(wanted_t, duration) > last_t + LENGTH_TOLERANCE_S:
        raise VideoDecodeError("corrupt", f"{path}: frames end at {last_t:.2f} s, the file declares {duration:.2f} s")


def _frame_time(frame: av.VideoFrame, index: int, fps: float) -> float:
    return float(frame.time) if frame.time is not None else index / (fps or 25.0)


def to_array(frame: av.VideoFrame, fmt: str = "rgb24", short_side: int | None = None) -> np.ndarray:
    """``frame`` as uint8 ``rgb24`` (H, W, 3) or ``gray`` (H, W), rescaled so the shorter side is
    ``short_side`` pixels (even sizes) when given."""
    if short_side is None:
        return frame.to_ndarray(format=fmt)
    w, h = frame.width, frame.height
    scale = short_side / min(w, h)
    size = (max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2))
    return frame.reformat(width=size[0], height=size[1], format=fmt).to_ndarray()


@dataclass(frozen=True)
class Decoded:
    """Decoded frames (PyAV objects, converted lazily by the caller) at the requested times."""

    times: list[float]
    frames: list[av.VideoFrame]
    duration_s: float
    width: int
    height: int
    fps: float


def decode_at_times(path: str | Path, times: Sequence[float]) -> Decoded:
    """The first decoded frame at or after each of ``times``, in order; times past the end are dropped,
    so the result may be shorter than ``times``."""
    path = Path(path)
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 0.0)
        duration = _stream_duration(container, stream)
        targets = sorted(times)
        out_t: list[float] = []
        out_f: list[av.VideoFrame] = []
        width = height = 0
        i = 0
        last_t: float | None = None
        for n, frame in enumerate(_frames(container, path)):
            width, height = frame.width, frame.height
            t = last_t = _frame_time(frame, n, fps)
            while i < len(targets) and t + 1e-6 >= targets[i]:
                out_t.append(t)
                out_f.append(frame)
                i += 1
            if i >= len(targets):
                break
        if last_t is None or i < len(targets):  # targets left over: the stream ended before them
            _check_reached(path, duration, last_t, targets[-1] if targets else 0.0)
        return Decoded(out_t, out_f, duration or (out_t[-1] if out_t else 0.0), width, height, fps)


def sample_at_times(
    path: str | Path, times: Sequence[float], *, fmt: str = "rgb24", short_side: int | None = None
) -> Sampled:
    """Like ``decode_at_times`` but converted to arrays (see ``to_array``)."""
    d = decode_at_times(path, times)
    cache: dict[int, np.ndarray] = {}
    arrays = [cache.setdefault(id(f), to_array(f, fmt, short_side)) for f in d.frames]
    return Sampled(d.times, arrays, d.duration_s, d.width, d.height, d.fps)


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    width: int
    height: int
    fps: float
    frames: int  # as the container states it (0 when unknown)


def probe(path: str | Path) -> VideoInfo:
    """What the container says about its first video stream, without decoding."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        return VideoInfo(
            _stream_duration(container, stream), int(ctx.width or 0), int(ctx.height or 0),
            float(stream.average_rate or 0.0), int(stream.frames or 0),
        )


def scan_video(path: str | Path) -> VideoInfo:
    """Decode every frame of the first video stream (one frame in memory at a time) and return what was
    decoded; raises ``VideoDecodeError`` (``corrupt``) when decoding fails part-way or the frames end early."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 0.0)
        duration = _stream_duration(container, stream)
        n, last_t, width, height = 0, None, 0, 0
        for n, frame in enumerate(_frames(container, path), start=1):
            last_t, width, height = _frame_time(frame, n - 1, fps), frame.width, frame.height
        _check_reached(path, duration, last_t, duration)
        return VideoInfo(duration, width, height, fps, n)


def probe_duration(path: str | Path) -> float:
    return probe(path).duration_s


def evenly_spaced_times(duration_s: float, n: int) -> list[float]:
    """``n`` times at the centres of ``n`` equal spans of the clip, so neither edge frame is favoured."""
    if n <= 0:
        raise ValueError("n must be positive")
    d = max(duration_s, 1e-3)
    return [(k + 0.5) * d / n for k in range(n)]


def sample_evenly(
    path: str | Path, n: int, *, fmt: str = "rgb24", short_side: int | None = None
) -> Sampled:
    """``n`` frames evenly spaced over the stream; pads by repeating the last frame when the clip is short,
    so a model that needs exactly ``n`` frames always gets them."""
    s = sample_at_times(path, evenly_spaced_times(probe_duration(path), n), fmt=fmt, short_side=short_side)
    if not s.frames:
        raise VideoDecodeError("undecodable", f"{path}: no decodable video frames")
    frames, times = list(s.frames), list(s.times)
    while len(frames) < n:
        frames.append(frames[-1])
        times.append(times[-1])
    return Sampled(times, frames, s.duration_s, s.width, s.height, s.fps)
