"""Read a user's audio, image or video file into what the encoders take, within bounds, or fail with one line
naming the file (and, for a bound, the limit and the option that raises it).

Unlike the trainer's shard decoders (fixed lengths and sizes so batches stack), inference keeps the whole
clip: the music encoder windows long audio itself, the image processor resizes, and a video is reduced
to the frames the video encoder will see (video_frames.py) at a modest size here.

A user's file is not a dataset clip, so every read is bounded before it costs memory: an hour of audio is
half a megabyte of FLAC and gigabytes once decoded whole, and a Matroska/WebM video does not state its frame
count. So the audio length is judged from the header before a sample is decoded (``max_seconds``), the decoder
is never asked for more than that, and channels are mixed to mono block by block; a video's frames are counted
from its packets (no decoding) against ``max_frames``, and only the clip's frames are ever converted and kept.
``m2ugen-eval`` reads audio through the same ``read_audio`` (the data pipeline bounds its own decoding in
m2ugen_data/audio_io.py, which the model package must not import).
"""

from __future__ import annotations

import math
from itertools import chain
from pathlib import Path

import numpy as np

from m2ugen_model.errors import one_line

MAX_AUDIO_SECONDS = 600.0  # 10 min: ~100 MB of 44.1 kHz mono float32, the most one input may cost by default
MAX_VIDEO_FRAMES = 18_000  # 10 min at 30 fps; only the clip's frames are kept, the cap bounds decoding time
AUDIO_OPTION, VIDEO_OPTION = "--max-audio-seconds", "--max-video-frames"
_BLOCK = 1 << 16  # frames per libsndfile read when mixing to mono


class MediaInputError(ValueError):
    """A media file that is missing, cannot be decoded or is past a limit; the message names the file."""


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        raise MediaInputError(f"{p}: a folder, not a media file")
    if not p.is_file():
        raise MediaInputError(f"{p}: no such file")
    return p


def too_long(p: Path, seconds: float | None, max_seconds: float) -> MediaInputError:
    """The refusal of audio past the cap (``seconds`` None: a length the container did not state)."""
    length = f"{round(seconds, 1):g} s of audio" if seconds is not None else "audio that runs on"
    return MediaInputError(f"{p}: {length}, longer than the {max_seconds:g} s limit ({AUDIO_OPTION} raises it)")


def read_audio(path: str | Path, max_seconds: float = MAX_AUDIO_SECONDS) -> tuple[np.ndarray, int]:
    """Mono float32 and its sample rate; libsndfile first (wav/flac/ogg/mp3), then PyAV (m4a, mp4...).
    A file longer than ``max_seconds`` is refused before decoding (or as soon as decoding passes it, when the
    container does not state its length)."""
    import soundfile as sf

    p = _existing(path)
    y = None
    try:
        snd = sf.SoundFile(str(p))
    except Exception:  # not a format libsndfile knows (it raises several types): PyAV reads it
        snd = None
    if snd is not None:
        with snd:
            sr = int(snd.samplerate)
            if snd.frames > max_seconds * sr:
                raise too_long(p, snd.frames / sr, max_seconds)
            try:
                y = _mono_blocks(snd)
            except Exception:  # libsndfile failed part-way: PyAV may still read it
                y = None
    if y is None:
        y, sr = _read_audio_av(p, max_seconds)
    if y.size == 0 or not np.isfinite(y).all():
        raise MediaInputError(f"{p}: audio has no samples or non-finite samples")
    return y, sr


def _mono_blocks(snd) -> np.ndarray:
    """The header's frames (already within the cap), mixed to mono a block at a time into one buffer."""
    out = np.empty(snd.frames, np.float32)
    pos = 0
    for block in snd.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True, frames=snd.frames):
        out[pos:pos + len(block)] = block.mean(axis=1)
        pos += len(block)
    return out[:pos]


def _av_seconds(container, stream) -> float | None:
    import av

    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration is not None else None


def _read_audio_av(p: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(p)) as c:
            stream = c.streams.audio[0]
            sr = int(stream.rate)
            seconds = _av_seconds(c, stream)
            if seconds is not None and seconds > max_seconds:
                raise too_long(p, seconds, max_seconds)
            limit, n, chunks = math.ceil(max_seconds * sr), 0, []
            to_mono = av.AudioResampler(format="flt", layout="mono", rate=sr)
            for frame in chain(c.decode(stream), [None]):  # None flushes the resampler
                for out in to_mono.resample(frame):
                    chunks.append(out.to_ndarray()[0])
                    n += out.samples
                if n > limit:  # the container understated its length (or stated none)
                    raise too_long(p, None, max_seconds)
    except MediaInputError:
        raise
    except Exception as exc:
        raise MediaInputError(f"{p}: undecodable audio ({one_line(exc)})") from None
    if not chunks:
        raise MediaInputError(f"{p}: audio has no samples")
    return np.concatenate(chunks).astype(np.float32, copy=False), sr


def read_image(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB."""
    from PIL import Image

    p = _existing(path)
    try:
        with Image.open(p) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Exception as exc:
        raise MediaInputError(f"{p}: undecodable image ({one_line(exc)})") from None


def _too_many_frames(p: Path, max_frames: int) -> MediaInputError:
    return MediaInputError(f"{p}: video longer than the {max_frames} frames limit ({VIDEO_OPTION} raises it)")


def read_video(path: str | Path, frames: int = 32, short_side: int = 256, sampling: str = "consecutive",
               max_frames: int = MAX_VIDEO_FRAMES) -> np.ndarray:
    """(frames, H, W, 3) uint8: the `frames` frames `sampling` chooses (video_frames.clip_indices), the short
    side scaled to `short_side`. The frame count comes from the header, else from counting packets (Matroska
    and WebM state none); past ``max_frames`` the file is refused. Decoding stops after the clip's last frame
    and only the clip's frames are converted, so memory holds `frames` frames whatever the video's length."""
    import av

    from m2ugen_model.video_frames import clip_indices

    p = _existing(path)
    try:
        with av.open(str(p)) as c:
            total = c.streams.video[0].frames or _count_packets(c, max_frames)
        if total > max_frames:
            raise _too_many_frames(p, max_frames)
        if total == 0:
            raise MediaInputError(f"{p}: video has no frames")
        want = clip_indices(total, frames, sampling)
        keep, last = set(want.tolist()), int(want.max())
        kept = []
        with av.open(str(p)) as c:
            stream = c.streams.video[0]
            w, h = stream.codec_context.width, stream.codec_context.height
            scale = short_side / max(1, min(w, h))
            size = {"width": max(2, round(w * scale)), "height": max(2, round(h * scale))}
            for i, frame in enumerate(c.decode(stream)):
                if i in keep:
                    kept.append(frame.to_ndarray(format="rgb24", **size))
                if i >= last:
                    break
    except MediaInputError:
        raise
    except Exception as exc:
        raise MediaInputError(f"{p}: undecodable video ({one_line(exc)})") from None
    if not kept:
        raise MediaInputError(f"{p}: video has no frames")
    # Fewer decoded frames than counted (a decoder that drops some): the clip repeats the last one kept.
    return np.stack([kept[i] for i in clip_indices(len(kept), frames, sampling)])


def _count_packets(container, max_frames: int) -> int:
    """Video packets (one per frame) counted without decoding, stopping one past ``max_frames``."""
    n = 0
    for packet in container.demux(container.streams.video[0]):
        n += packet.size > 0
        if n > max_frames:
            break
    return n
