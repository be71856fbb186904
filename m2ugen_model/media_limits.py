"""Bounds on the media users hand the model's front doors (``m2ugen-infer``, ``m2ugen-eval``).

Why: decoding holds every sample (about 2 GB per hour of audio once decoded, resampled and windowed), and a
video container need not say how many frames it holds, so an input's length is read from its header and
refused before anything is decoded; where the header says nothing, decoding counts and stops at the limit.
Options that size the output (music length) are validated ranges, not trusted numbers: a 20,000 s request
would run for minutes and take gigabytes, a zero or negative one would "succeed" with an empty file.
"""

from __future__ import annotations

from pathlib import Path

MAX_INPUT_SECONDS = 600.0  # audio and video inputs; M2UGen's encoders see clips of seconds (raise per run)
MUSIC_SECONDS = (0.02, 120.0)  # generated music: at least one MusicGen frame (50 Hz); at most 4x its 30 s training clips
MAX_FPS = 120.0  # frames per second assumed when a video's length must be counted while decoding


def header_seconds(path: Path) -> float | None:
    """The duration the file's header states (libsndfile for wav/flac/ogg/mp3, else the container through
    PyAV), or None when it states none or cannot be read (decoding then reports the real problem)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        if info.samplerate > 0 and info.frames > 0:
            return info.frames / info.samplerate
    except Exception:  # libsndfile raises several types for what it cannot read; PyAV may
        pass
    try:
        import av

        with av.open(str(path)) as container:
            return container.duration / av.time_base if container.duration else None
    except Exception:  # an undecodable file: the decoder names the problem
        return None


def over_limit(path: Path, seconds: float, limit: float, option: str) -> str:
    """The one-line refusal for an input longer than ``limit``."""
    return f"{path}: {seconds:.0f} s long, over the {limit:.0f} s limit for inputs ({option} raises it)"

