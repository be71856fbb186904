"""Decode and encode audio once, in one place.

Decoding goes through libsndfile (FLAC/WAV/OGG) and falls back to ffmpeg for anything else, so every stage
sees float32 mono at the rate it asks for, and an undecodable file is one ``AudioDecodeError`` line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from m2ugen_data.atomic import atomic_path
from m2ugen_data.errors import M2UGenError
from m2ugen_data.system import require_ffmpeg


class AudioDecodeError(M2UGenError):
    """The file exists but is not decodable audio (truncated, corrupt, not audio)."""


def load_audio(path: str | Path, sr: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Return ``(samples, rate)``; samples are float32, shape (n,) if mono else (channels, n)."""
    path = Path(path)
    try:
        y, rate = sf.read(path, dtype="float32", always_2d=True)
        y = y.T
    except (sf.LibsndfileError, RuntimeError, TypeError):
        y, rate = _ffmpeg_decode(path)
    if y.size == 0:
        raise AudioDecodeError(f"{path}: no audio samples")
    if mono:
        y = y.mean(axis=0)
    if sr is not None and sr != rate:
        y = soxr.resample(y.T, rate, sr).T.astype(np.float32, copy=False)
        rate = sr
    return np.ascontiguousarray(y, dtype=np.float32), int(rate)


def _ffmpeg_decode(path: Path) -> tuple[np.ndarray, int]:
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    rate = 44100
    cmd = [require_ffmpeg(), "-v", "error", "-nostdin", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(rate), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioDecodeError(f"{path}: undecodable audio ({msg[-1] if msg else 'no output'})")
    return np.frombuffer(proc.stdout, dtype=np.float32)[None, :], rate


def write_flac(path: str | Path, y: np.ndarray, sr: int) -> Path:
    """Write 16-bit FLAC atomically (temporary name, then rename)."""
    path = Path(path)
    data = np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, data.T if data.ndim == 2 else data, sr, format="FLAC", subtype="PCM_16")
    return path
