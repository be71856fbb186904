"""Decode and encode audio once, in one place, strictly and within a bounded length.

Decoding goes through libsndfile (FLAC/WAV/OGG/MP3) and through ffmpeg for anything else, so every stage sees
float32 mono at the rate it asks for. Two rules keep bad media out of the datasets:

- **Strict.** A decoder error, a lost sync, or a decoded length short of what the header declares (or of what
  the caller expects, e.g. the segment) is a ``CorruptAudioError``, never a shorter clip. A file libsndfile
  recognises but fails to decode is not handed to ffmpeg: ffmpeg skips what it cannot read and returns the
  rest, which is how a FLAC with 50 KB destroyed mid-file once became an "ok" 8 s clip.
- **Bounded.** The length is read from the header (libsndfile, else the container through PyAV) before any
  sample is decoded; ``max_duration_s`` refuses longer files (``AudioTooLongError``) and no decoder call ever
  returns more than that. ``offset_s``/``duration_s`` read a window (libsndfile seeks; ffmpeg ``-ss/-t``), and
  ``scan_audio`` checks a whole file of any length block by block, so long audio never sits in memory whole.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from m2ugen_data.atomic import atomic_path
from m2ugen_data.errors import M2UGenError
from m2ugen_data.system import require_ffmpeg

# Decoded length may fall short of the declared length by this much (AAC/MP3 priming and padding is ~50 ms;
# FLAC/WAV match to the sample). A corrupt file loses whole frames: far more.
LENGTH_TOLERANCE_S = 0.1
FFMPEG_RATE = 44100  # what ffmpeg decodes to when the caller asks for the native rate
_SCAN_BLOCK = 1 << 16  # frames per block when scanning a whole file


class AudioDecodeError(M2UGenError):
    """The file exists but is not decodable audio (truncated, corrupt, not audio)."""

    reason = "undecodable"


class CorruptAudioError(AudioDecodeError):
    """The file is audio, but the decoder failed part-way or returned less than the file declares/should hold."""

    reason = "corrupt"


class AudioTooLongError(M2UGenError):
    """The file is longer than the cap the caller set; nothing was decoded."""

    reason = "too_long"

    def __init__(self, message: str, duration_s: float) -> None:
        super().__init__(message)
        self.duration_s = duration_s


@dataclass(frozen=True)
class AudioInfo:
    """What the header says: ``duration_s`` is None when the container does not state its length."""

    duration_s: float | None
    sample_rate: int
    channels: int
    libsndfile: bool  # decoded by libsndfile (exact lengths, seekable) rather than ffmpeg


def probe_audio(path: str | Path) -> AudioInfo:
    """The declared length, rate and channels, without decoding samples (raises ``AudioDecodeError``)."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
        if info.frames > 0 and info.samplerate > 0:
            return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels), True)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    return _probe_container(path)


def _probe_container(path: Path) -> AudioInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                duration: float | None = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = None
            return AudioInfo(duration, int(stream.rate or 0), int(stream.channels or 0), False)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise AudioDecodeError(f"{path}: undecodable audio ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e


def load_audio(
    path: str | Path,
    sr: int | None = None,
    mono: bool = True,
    *,
    offset_s: float = 0.0,
    duration_s: float | None = None,
    max_duration_s: float | None = None,
    expected_s: float | None = None,
    tolerance_s: float = LENGTH_TOLERANCE_S,
) -> tuple[np.ndarray, int]:
    """Return ``(samples, rate)``; samples are float32, shape (n,) if mono else (channels, n).

    ``offset_s``/``duration_s`` select a window (the window must lie inside the file). ``max_duration_s``:
    refuse (``AudioTooLongError``) a read longer than this, judged from the header before decoding; when the
    header states no length, the decoder is stopped just past the cap and the file refused if it got there.
    ``expected_s``: the length the caller knows the file should have (e.g. its segment); decoding less than
    that (or than the header declares) by more than ``tolerance_s`` raises ``CorruptAudioError``.
    """
    path = Path(path)
    info = probe_audio(path)
    span = _requested_span(path, info, offset_s, duration_s)
    if max_duration_s is not None and span is not None and span > max_duration_s + tolerance_s:
        raise AudioTooLongError(f"{path}: {span:.1f} s of audio, over the {max_duration_s:g} s cap", span)
    limit = span if span is not None else (max_duration_s + 2 * tolerance_s if max_duration_s is not None else None)
    if info.libsndfile:
        y, rate = _sndfile_decode(path, info, offset_s, limit)
    else:
        y, rate = _ffmpeg_decode(path, offset_s, limit)
    got = y.shape[1] / rate
    if y.size == 0:
        raise AudioDecodeError(f"{path}: no audio samples")
    if span is None and max_duration_s is not None and got > max_duration_s + tolerance_s:
        raise AudioTooLongError(f"{path}: over the {max_duration_s:g} s cap (its header states no length)", got)
    declared = "the file declares" if duration_s is None else "the window asks for"
    for want, what in ((span, declared), (expected_s if duration_s is None else None, "expected")):
        if want is not None and got < want - tolerance_s:
            raise CorruptAudioError(f"{path}: decoded {got:.2f} s of audio, {what} {want:.2f} s")
    if mono:
        y = y.mean(axis=0)
    if sr is not None and sr != rate:
        y = soxr.resample(y.T, rate, sr).T.astype(np.float32, copy=False)
        rate = sr
    return np.ascontiguousarray(y, dtype=np.float32), int(rate)


def _requested_span(path: Path, info: AudioInfo, offset_s: float, duration_s: float | None) -> float | None:
    """Seconds this read must return: the window, or the rest of the file from ``offset_s`` (None: unknown)."""
    if offset_s < 0 or (duration_s is not None and duration_s <= 0):
        raise ValueError(f"bad window: offset {offset_s} s, duration {duration_s} s")
    if info.duration_s is None:
        return duration_s
    rest = info.duration_s - offset_s
    if rest <= 0 or (duration_s is not None and duration_s > rest + LENGTH_TOLERANCE_S):
        raise ValueError(f"{path}: window {offset_s:g}+{duration_s} s lies outside its {info.duration_s:.2f} s")
    return min(duration_s, rest) if duration_s is not None else rest


def _sndfile_decode(path: Path, info: AudioInfo, offset_s: float, limit_s: float | None) -> tuple[np.ndarray, int]:
    start = round(offset_s * info.sample_rate)
    frames = round(limit_s * info.sample_rate) if limit_s is not None else -1
    try:
        y, rate = sf.read(str(path), frames=frames, start=start, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise CorruptAudioError(f"{path}: {_first_line(e)}") from e
    return y.T, int(rate)


def _ffmpeg_decode(path: Path, offset_s: float, limit_s: float | None) -> tuple[np.ndarray, int]:
    window = (["-ss", f"{offset_s:.6f}"] if offset_s else []) + (["-t", f"{limit_s:.6f}"] if limit_s is not None else [])
    # -xerror: stop at the first decoding error instead of concealing it (a short, "successful" output)
    cmd = [require_ffmpeg(), "-v", "error", "-xerror", "-nostdin", *window, "-i", str(path),
           "-f", "f32le", "-ac", "1", "-ar", str(FFMPEG_RATE), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = msg[-1] if msg else "no output"
        if proc.stdout:
            raise CorruptAudioError(f"{path}: decoding failed part-way ({detail})")
        raise AudioDecodeError(f"{path}: undecodable audio ({detail})")
    return np.frombuffer(proc.stdout, dtype=np.float32)[None, :], FFMPEG_RATE


def scan_audio(path: str | Path, *, tolerance_s: float = LENGTH_TOLERANCE_S) -> AudioInfo:
    """Decode the whole file block by block (memory bounded by one block whatever its length) and return its
    measured length; raises ``CorruptAudioError`` on a decoder error or a length short of the header's."""
    path = Path(path)
    info = probe_audio(path)
    if info.libsndfile:
        frames = 0
        try:
            with sf.SoundFile(str(path)) as f:
                for block in f.blocks(blocksize=_SCAN_BLOCK, dtype="int16", always_2d=True):
                    frames += block.shape[0]
        except (sf.LibsndfileError, RuntimeError) as e:
            raise CorruptAudioError(f"{path}: {_first_line(e)}") from e
        got = frames / info.sample_rate
    else:
        got = _ffmpeg_scan(path)
    if got == 0:
        raise AudioDecodeError(f"{path}: no audio samples")
    if info.duration_s is not None and got < info.duration_s - tolerance_s:
        raise CorruptAudioError(f"{path}: decoded {got:.2f} s of audio, the file declares {info.duration_s:.2f} s")
    return AudioInfo(got, info.sample_rate, info.channels, info.libsndfile)


def _ffmpeg_scan(path: Path) -> float:
    """Seconds of audio ffmpeg decodes from ``path``, counted from a low-rate stream read in chunks."""
    rate = 8000  # enough to count samples; nothing is kept
    cmd = [require_ffmpeg(), "-v", "error", "-xerror", "-nostdin", "-i", str(path), "-vn",
           "-f", "s16le", "-ac", "1", "-ar", str(rate), "-"]
    with tempfile.TemporaryFile() as err, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err) as proc:
        assert proc.stdout is not None
        n = 0
        while chunk := proc.stdout.read(1 << 16):
            n += len(chunk)
        if proc.wait() != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            raise CorruptAudioError(f"{path}: decoding failed ({lines[-1] if lines else 'ffmpeg error'})")
    return n / 2 / rate


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def write_flac(path: str | Path, y: np.ndarray, sr: int) -> Path:
    """Write 16-bit FLAC atomically (temporary name, then rename)."""
    path = Path(path)
    data = np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, data.T if data.ndim == 2 else data, sr, format="FLAC", subtype="PCM_16")
    return path
