"""Checks a downloaded clip must pass before it is renamed into the warehouse.

A section download can "succeed" and still be useless: a truncated source yields a few seconds instead of
ten, a garbage response yields nothing decodable. Decoding the whole file with the same loader every later
stage uses, and comparing its length with the segment, turns those into ``corrupt`` records instead of
silent bad data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import av

from m2ugen_data.audio_io import AudioDecodeError, load_audio
from m2ugen_data.audioset.failures import CORRUPT, Failure


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    bytes: int
    sha256: str


def verify_audio(path: Path, expected_s: float, tolerance_s: float, sample_rate: int | None) -> AudioInfo:
    if not path.is_file() or path.stat().st_size == 0:
        raise Failure(CORRUPT, "no audio was written (empty or missing output)")
    try:
        y, sr = load_audio(path, sr=None)
    except AudioDecodeError as e:
        raise Failure(CORRUPT, f"undecodable audio: {str(e).splitlines()[0][-200:]}") from e
    duration = len(y) / sr
    if abs(duration - expected_s) > tolerance_s:
        raise Failure(CORRUPT, f"audio lasts {duration:.2f} s, expected {expected_s:.2f} +- {tolerance_s:g} s")
    if sample_rate is not None and sr != sample_rate:
        raise Failure(CORRUPT, f"audio at {sr} Hz, expected {sample_rate} Hz")
    data = path.read_bytes()
    return AudioInfo(duration, sr, len(data), hashlib.sha256(data).hexdigest())


def verify_video(path: Path, expected_s: float, tolerance_s: float, max_height: int) -> None:
    if not path.is_file() or path.stat().st_size == 0:
        raise Failure(CORRUPT, "no video was written (empty or missing output)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise Failure(CORRUPT, "the video file has no video stream")
            stream = container.streams.video[0]
            height = stream.codec_context.height
            duration = (container.duration or 0) / 1e6
            next(container.decode(stream))  # at least one frame decodes
    except (av.error.FFmpegError, StopIteration) as e:
        raise Failure(CORRUPT, f"undecodable video: {type(e).__name__}: {e}") from e
    if height > max_height:
        raise Failure(CORRUPT, f"video is {height} px high, expected <= {max_height}")
    if abs(duration - expected_s) > tolerance_s:
        raise Failure(CORRUPT, f"video lasts {duration:.2f} s, expected {expected_s:.2f} +- {tolerance_s:g} s")
