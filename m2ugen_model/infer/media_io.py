"""Read a user's audio, image or video file into what the encoders take, or fail with one line naming it.

Unlike the trainer's shard decoders (fixed lengths and sizes so batches stack), inference keeps the whole
clip: the music encoder windows long audio itself, the image processor resizes, and a video is reduced
to the frames the video encoder will see (video_frames.py) at a modest size here, so a long file never
sits in memory at full resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class MediaInputError(ValueError):
    """A media file that is missing or cannot be decoded; the message names the file."""


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MediaInputError(f"{p}: no such file")
    return p


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 and its sample rate; libsndfile first (wav/flac/ogg/mp3), then PyAV (m4a, mp4...)."""
    import soundfile as sf

    p = _existing(path)
    try:
        y, sr = sf.read(str(p), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
    except Exception:  # libsndfile raises several types; PyAV reads what it cannot
        y, sr = _read_audio_av(p)
    if y.size == 0 or not np.isfinite(y).all():
        raise MediaInputError(f"{p}: audio has no samples or non-finite samples")
    return y.astype(np.float32, copy=False), int(sr)


def _read_audio_av(p: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(p)) as c:
            stream = c.streams.audio[0]
            sr = stream.rate
            chunks = [f.to_ndarray().reshape(f.layout.nb_channels if f.format.is_planar else 1, -1)
                      for f in c.decode(stream)]
    except Exception as exc:
        raise MediaInputError(f"{p}: undecodable audio ({_first_line(exc)})") from None
    if not chunks:
        raise MediaInputError(f"{p}: audio has no samples")
    y = np.concatenate([c.astype(np.float32) for c in chunks], axis=1).mean(axis=0)
    return y, int(sr)


def read_image(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB."""
    from PIL import Image

    p = _existing(path)
    try:
        with Image.open(p) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Exception as exc:
        raise MediaInputError(f"{p}: undecodable image ({_first_line(exc)})") from None


def read_video(path: str | Path, frames: int = 32, short_side: int = 256, sampling: str = "consecutive") -> np.ndarray:
    """(frames, H, W, 3) uint8: the `frames` frames `sampling` chooses (video_frames.clip_indices), the short
    side scaled to `short_side`."""
    import av

    from m2ugen_model.video_frames import clip_indices

    p = _existing(path)
    try:
        with av.open(str(p)) as c:
            stream = c.streams.video[0]
            w, h = stream.codec_context.width, stream.codec_context.height
            scale = short_side / max(1, min(w, h))
            size = {"width": max(2, round(w * scale)), "height": max(2, round(h * scale))}
            want = clip_indices(stream.frames, frames, sampling) if stream.frames > frames else None
            kept = [f.to_ndarray(format="rgb24", **size) for f in _thin(c.decode(stream), want)]
    except Exception as exc:
        raise MediaInputError(f"{p}: undecodable video ({_first_line(exc)})") from None
    if not kept:
        raise MediaInputError(f"{p}: video has no frames")
    return np.stack([kept[i] for i in clip_indices(len(kept), frames, sampling)])


def _thin(decoded, want: np.ndarray | None):
    """Keep only the frames the clip will use when the container says how many there are (stop after the
    last), so a long video is not decoded to its end."""
    if want is None:
        yield from decoded
        return
    keep, last = set(want.tolist()), int(want.max())
    for i, f in enumerate(decoded):
        if i in keep:
            yield f
        if i >= last:
            return


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
