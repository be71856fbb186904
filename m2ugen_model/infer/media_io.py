"""Read a user's audio, image or video file into what the encoders take, or fail with one line naming it.

Unlike the trainer's shard decoders (fixed lengths and sizes so batches stack), inference keeps the whole
clip: the music encoder windows long audio itself, the image processor resizes, and a video is reduced
to the frames the video encoder will see (video_frames.py) at a modest size here, so a long file never
sits in memory at full resolution. Inputs longer than a limit (``media_limits``) are refused from their
header before decoding; where a header states no length, decoding counts and stops at the limit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m2ugen_model.media_limits import MAX_FPS, MAX_INPUT_SECONDS, header_seconds, over_limit

LIMIT_OPTION = "--max-input-seconds"

class MediaInputError(ValueError):
    """A media file that is missing or cannot be decoded; the message names the file."""


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MediaInputError(f"{p}: no such file")
    return p


def read_audio(path: str | Path, max_seconds: float = MAX_INPUT_SECONDS) -> tuple[np.ndarray, int]:
    """Mono float32 and its sample rate; libsndfile first (wav/flac/ogg/mp3), then PyAV (m4a, mp4...).
    Longer than ``max_seconds`` is refused before decoding (or, with no length in the header, while decoding)."""
    import soundfile as sf

    p = _existing(path)
    seconds = header_seconds(p)
    if seconds is not None and seconds > max_seconds:
        raise MediaInputError(over_limit(p, seconds, max_seconds, LIMIT_OPTION))
    try:
        y, sr = sf.read(str(p), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
    except Exception:  # libsndfile raises several types; PyAV reads what it cannot
        y, sr = _read_audio_av(p, max_seconds)
    if y.size == 0 or not np.isfinite(y).all():
        raise MediaInputError(f"{p}: audio has no samples or non-finite samples")
    return y.astype(np.float32, copy=False), int(sr)


def _read_audio_av(p: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    import av

    chunks, samples = [], 0
    try:
        with av.open(str(p)) as c:
            stream = c.streams.audio[0]
            sr = stream.rate
            for f in c.decode(stream):
                chunk = f.to_ndarray().reshape(f.layout.nb_channels if f.format.is_planar else 1, -1)
                samples += chunk.shape[1]
                if samples > max_seconds * sr:
                    raise MediaInputError(over_limit(p, samples / sr, max_seconds, LIMIT_OPTION))
                chunks.append(chunk)
    except MediaInputError:
        raise
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


def read_video(path: str | Path, frames: int = 32, short_side: int = 256, sampling: str = "consecutive",
               max_seconds: float = MAX_INPUT_SECONDS) -> np.ndarray:
    """(frames, H, W, 3) uint8: the `frames` frames `sampling` chooses (video_frames.clip_indices), the short
    side scaled to `short_side`. Only the chosen frames are converted and kept: their positions come from the
    container's frame count, else from its duration and frame rate; a container that states neither
    (Matroska/WebM may not) is thinned while decoding to a bounded, evenly spread set."""
    import av

    from m2ugen_model.video_frames import clip_indices

    p = _existing(path)
    seconds = header_seconds(p)
    if seconds is not None and seconds > max_seconds:
        raise MediaInputError(over_limit(p, seconds, max_seconds, LIMIT_OPTION))
    try:
        with av.open(str(p)) as c:
            stream = c.streams.video[0]
            w, h = stream.codec_context.width, stream.codec_context.height
            scale = short_side / max(1, min(w, h))
            size = {"width": max(2, round(w * scale)), "height": max(2, round(h * scale))}
            total = _frame_count(stream, seconds)
            decoded = _counted(c.decode(stream), p, int(max_seconds * MAX_FPS), max_seconds)
            if total is None or total <= frames:  # a short or unsized video: never more than 2 x frames held
                kept = _spread(decoded, frames, size)
            else:
                want = clip_indices(total, frames, sampling)
                kept = [f.to_ndarray(format="rgb24", **size) for f in _thin(decoded, want)]
    except MediaInputError:
        raise
    except Exception as exc:
        raise MediaInputError(f"{p}: undecodable video ({_first_line(exc)})") from None
    if not kept:
        raise MediaInputError(f"{p}: video has no frames")
    return np.stack([kept[i] for i in clip_indices(len(kept), frames, sampling)])


def _frame_count(stream, seconds: float | None) -> int | None:
    """Frames in the stream: the container's count, else duration x average rate, else None."""
    if stream.frames > 0:
        return int(stream.frames)
    rate = float(stream.average_rate) if stream.average_rate else 0.0
    return round(seconds * rate) if seconds and rate > 0 else None


def _counted(decoded, p: Path, max_frames: int, max_seconds: float):
    """The decoded frames, refused once more than ``max_frames`` came (a container whose header hides its
    length: the limit in seconds at ``MAX_FPS``)."""
    for i, f in enumerate(decoded):
        if i >= max_frames:
            raise MediaInputError(f"{p}: more than {max_frames} frames, over the {max_seconds:.0f} s limit for "
                                  f"inputs at up to {MAX_FPS:.0f} fps ({LIMIT_OPTION} raises it)")
        yield f


def _spread(decoded, frames: int, size: dict[str, int]) -> list[np.ndarray]:
    """An evenly spaced subset of a stream of unknown length, never more than ``2 * frames`` frames held:
    keep every ``stride``-th frame and, when the buffer fills, drop every other kept one and double the stride."""
    kept: list[np.ndarray] = []
    stride = 1
    for i, f in enumerate(decoded):
        if i % stride:
            continue
        kept.append(f.to_ndarray(format="rgb24", **size))
        if len(kept) >= 2 * max(1, frames):
            kept = kept[::2]
            stride *= 2
    return kept


def _thin(decoded, want: np.ndarray):
    """Only the frames the clip will use, stopping after the last, so a long video is not decoded to its end."""
    keep, last = set(want.tolist()), int(want.max())
    for i, f in enumerate(decoded):
        if i in keep:
            yield f
        if i >= last:
            return


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
