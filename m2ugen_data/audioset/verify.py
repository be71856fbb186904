"""Checks a downloaded clip must pass before it is renamed into the warehouse.

A section download can "succeed" and still be useless: a truncated source yields a few seconds instead of
ten, a garbage response yields nothing decodable. Decoding the whole file with the same loader every later
stage uses, and comparing its length with the segment, turns those into ``corrupt`` records instead of
silent bad data. Decoding is strict (``audio_io``, ``vision.decode``): an error part-way or fewer samples than the
file declares is corrupt too, not a shorter clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m2ugen_data.audio_io import AudioDecodeError, scan_audio
from m2ugen_data.checksums import file_sha256
from m2ugen_data.audioset.failures import CORRUPT, Failure
from m2ugen_data.vision.decode import VideoDecodeError, scan_video


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Expected:
    """The length a fetched file must have: a segment is ``expected_s`` +- ``tolerance_s``; a window or the
    whole audio (whose length the server decides) must at least hold the segment and at most the cap."""

    min_s: float
    max_s: float

    @classmethod
    def around(cls, expected_s: float, tolerance_s: float) -> Expected:
        return cls(expected_s - tolerance_s, expected_s + tolerance_s)

    def check(self, what: str, duration_s: float) -> None:
        if not self.min_s <= duration_s <= self.max_s:
            raise Failure(CORRUPT, f"{what} lasts {duration_s:.2f} s, expected {self.min_s:.2f}-{self.max_s:.2f} s")


def verify_audio(path: Path, expected: Expected, sample_rate: int | None) -> AudioInfo:
    """Decode the whole file strictly, block by block (a full-audio download may be an hour long)."""
    if not path.is_file() or path.stat().st_size == 0:
        raise Failure(CORRUPT, "no audio was written (empty or missing output)")
    try:
        info = scan_audio(path)
    except AudioDecodeError as e:
        raise Failure(CORRUPT, f"{e.reason} audio: {str(e).splitlines()[0][-200:]}") from e
    assert info.duration_s is not None
    expected.check("audio", info.duration_s)
    if sample_rate is not None and info.sample_rate != sample_rate:
        raise Failure(CORRUPT, f"audio at {info.sample_rate} Hz, expected {sample_rate} Hz")
    return AudioInfo(info.duration_s, info.sample_rate, path.stat().st_size, file_sha256(path))


def verify_video(path: Path, expected: Expected, max_height: int) -> None:
    """Every frame must decode and the frames must last as long as the container says and the segment needs."""
    if not path.is_file() or path.stat().st_size == 0:
        raise Failure(CORRUPT, "no video was written (empty or missing output)")
    try:
        info = scan_video(path)
    except VideoDecodeError as e:
        raise Failure(CORRUPT, f"{e.reason} video: {str(e).splitlines()[0][-200:]}") from e
    if info.height > max_height:
        raise Failure(CORRUPT, f"video is {info.height} px high, expected <= {max_height}")
    expected.check("video", info.duration_s)
