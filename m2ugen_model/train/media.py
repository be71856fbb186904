"""Decode shard members (audio, image, video, precomputed features) into fixed-shape arrays.

Fixed shapes let a batch stack without per-sample logic in the training step: audio is cropped or padded
to a set duration at the encoder's rate, images resized to the encoder's size, videos reduced to a fixed
number of frames chosen as the video encoder expects (video_frames.py: consecutive by default). Every failure is a ``MediaError`` so the data stream can
count it and move on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

AUDIO_EXTS = ("flac", "wav", "mp3", "ogg")
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
VIDEO_EXTS = ("mp4", "webm", "mkv", "avi")


class MediaError(ValueError):
    """A member that is present but cannot be decoded into what the model needs."""


@dataclass(frozen=True)
class MediaSpec:
    """What the encoders take: audio rate and length, image side, number of video frames."""

    audio_rate: int = 24000
    audio_seconds: float = 10.0
    image_size: int = 224
    video_frames: int = 32
    video_size: int = 224
    video_sampling: str = "consecutive"

    @property
    def audio_samples(self) -> int:
        return int(round(self.audio_rate * self.audio_seconds))


def decode_audio(data: bytes, spec: MediaSpec) -> np.ndarray:
    """Mono float32 at ``spec.audio_rate``, the first ``audio_seconds`` (zero-padded when shorter)."""
    import soundfile as sf
    import soxr

    try:
        y, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types for garbage input
        raise MediaError(f"undecodable audio ({exc})") from exc
    if y.size == 0:
        raise MediaError("audio has no samples")
    y = y.mean(axis=1)
    if rate != spec.audio_rate:
        y = soxr.resample(y, rate, spec.audio_rate).astype(np.float32, copy=False)
    return _fit(y, spec.audio_samples)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(y))] = y[:n]
    return out


def decode_image(data: bytes, spec: MediaSpec) -> np.ndarray:
    """uint8 HWC at ``image_size`` square: what the encoder's image processor takes (it normalises)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB").resize((spec.image_size, spec.image_size)), dtype=np.uint8)
    except Exception as exc:
        raise MediaError(f"undecodable image ({exc})") from exc


def decode_video(data: bytes, spec: MediaSpec) -> np.ndarray:
    """uint8 THWC: ``video_frames`` frames chosen by ``video_sampling``."""
    import av

    from m2ugen_model.video_frames import clip_indices

    try:
        with av.open(io.BytesIO(data)) as container:
            frames = [f.to_ndarray(format="rgb24", width=spec.video_size, height=spec.video_size)
                      for f in container.decode(video=0)]
    except Exception as exc:
        raise MediaError(f"undecodable video ({exc})") from exc
    if not frames:
        raise MediaError("video has no frames")
    return np.stack([frames[i] for i in clip_indices(len(frames), spec.video_frames, spec.video_sampling)])


def decode_npy(data: bytes) -> np.ndarray:
    """Precomputed encoder outputs; pickles are refused (a shard is untrusted input)."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32, copy=False)
    except Exception as exc:
        raise MediaError(f"unreadable .npy member ({exc})") from exc
