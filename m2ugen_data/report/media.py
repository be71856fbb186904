"""Small copies of the sample media, placed beside the page so it works when opened from disk or moved.

Audio becomes a short mono MP3 (every browser plays it; 10 s is ~20-80 KB instead of ~1 MB of FLAC), images
and video frames become 320-px JPEG thumbnails. A source that is gone or undecodable yields None and the
page says so, instead of a broken player.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from m2ugen_data.audio_io import AudioDecodeError, load_audio
from m2ugen_data.ids import validate_clip_id
from m2ugen_data.shards.assemble import media_file
from m2ugen_data.warehouse import Warehouse

AUDIO_RATE = 22050
MAX_AUDIO_S = 30.0  # long (full-video) MUCaps audio: the card plays the first 30 s
THUMB_WIDTH = 320


def audio_excerpt(wh: Warehouse, relpath: str | None, clip_id: str, out_dir: Path) -> str | None:
    """``media/<clip_id>.mp3`` (the first ``MAX_AUDIO_S`` seconds), relative to the page, or None."""
    src = media_file(wh, relpath)
    if src is None:
        return None
    try:
        y, sr = load_audio(src, sr=AUDIO_RATE)
    except AudioDecodeError:
        return None
    name = f"{validate_clip_id(clip_id)}.mp3"
    out_dir.mkdir(parents=True, exist_ok=True)
    sf.write(out_dir / name, np.clip(y[: int(MAX_AUDIO_S * sr)], -1.0, 1.0), sr, format="MP3")
    return f"{out_dir.name}/{name}"


def visual_relpath(kind: str, clip_id: str) -> Path:
    """Where the media stage put the frame or clip (derived from the id, as every reader does)."""
    from m2ugen_data.vision.media_stage import media_relpath_for

    return media_relpath_for(kind, clip_id)


def image_thumbnail(path: Path | None, clip_id: str, out_dir: Path) -> str | None:
    """``media/<clip_id>.jpg`` scaled to ``THUMB_WIDTH`` px wide, or None when the image is missing or bad."""
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            return _save_thumb(im.convert("RGB"), clip_id, out_dir)
    except OSError:
        return None


def video_thumbnail(path: Path | None, clip_id: str, out_dir: Path) -> str | None:
    """The middle frame of the video as a JPEG thumbnail, or None when the video is missing or undecodable."""
    from m2ugen_data.vision.decode import VideoDecodeError, probe_duration, sample_at_times

    if path is None or not path.is_file():
        return None
    try:
        frames = sample_at_times(path, [probe_duration(path) / 2]).frames
    except (VideoDecodeError, OSError, ValueError):
        return None
    if not frames:
        return None
    return _save_thumb(Image.fromarray(frames[0]), clip_id, out_dir)


def _save_thumb(im: Image.Image, clip_id: str, out_dir: Path) -> str:
    if im.width > THUMB_WIDTH:
        im = im.resize((THUMB_WIDTH, max(1, round(im.height * THUMB_WIDTH / im.width))), Image.Resampling.LANCZOS)
    name = f"{validate_clip_id(clip_id)}.jpg"
    out_dir.mkdir(parents=True, exist_ok=True)
    im.save(out_dir / name, quality=85)
    return f"{out_dir.name}/{name}"
