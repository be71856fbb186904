"""Normalised video clips for MUVideo, and the checks that keep useless ones out.

The trainer samples 32 frames evenly from each clip for ViViT at 224 px, so every clip is re-encoded the
same way: H.264 yuv420p, shorter side at most 256 px, a fixed frame rate (16 fps gives 160 frames per 10 s
section, five times what the sampler needs), a keyframe every second, faststart, and no audio track (the
music travels as its own FLAC in the shard, so there is one source of truth for it).

The source is measured before encoding (luma sampled 8 times a second at 64 px): all-black videos and still
pictures (album art with music, common in AudioSet) are rejected with a reason and never encoded.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m2ugen_data.atomic import atomic_path
from m2ugen_data.system import require_ffmpeg
from m2ugen_data.vision import measures
from m2ugen_data.vision.decode import (
    LENGTH_TOLERANCE_S,
    VideoDecodeError,
    decode_at_times,
    probe,
    probe_duration,
    to_array,
)

EXTRACTOR_VERSION = "clips-1"
OUT_FPS = 16
OUT_SHORT_SIDE = 256
MEASURE_RATE = 8.0  # luma samples per second for motion and cut measurements
MEASURE_SIDE = 64
COLOR_SAMPLES = 8  # frames whose pixels are named for dominant colours
BLACK_FRACTION = 0.95  # a clip with at least this share of black samples is black


@dataclass(frozen=True)
class ClipMeasures:
    duration_s: float
    brightness: float
    motion: float
    scene_cuts: int
    black_fraction: float
    dominant_colors: tuple[str, ...]


@dataclass(frozen=True)
class ClipResult:
    status: str  # ok | rejected | failed
    reason: str | None
    measures: ClipMeasures | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int | None = None
    duration_s: float | None = None


def measure_clip(video: str | Path) -> ClipMeasures:
    """Brightness, motion energy, scene cuts and dominant colours of a video (raises VideoDecodeError)."""
    duration = probe_duration(video)
    times = list(np.arange(0.0, max(duration, 1.0 / MEASURE_RATE), 1.0 / MEASURE_RATE))
    d = decode_at_times(video, times)
    if not d.frames:
        raise VideoDecodeError("undecodable", f"{video}: no decodable video frames")
    lumas = [to_array(f, "gray", MEASURE_SIDE) for f in d.frames]
    step = max(1, len(d.frames) // COLOR_SAMPLES)
    colors = [to_array(f, "rgb24", MEASURE_SIDE) for f in d.frames[step // 2 :: step]]
    return ClipMeasures(
        duration_s=d.duration_s,
        brightness=float(np.mean([measures.brightness(x) for x in lumas])),
        motion=measures.motion_energy(lumas),
        scene_cuts=measures.scene_cuts(lumas),
        black_fraction=float(np.mean([measures.is_black(x) for x in lumas])),
        dominant_colors=tuple(measures.dominant_colors(colors)),
    )


def _scale_filter(short_side: int) -> str:
    """Shorter side at most ``short_side`` (never upscaled), aspect kept, both sides even (yuv420p)."""
    s = short_side
    return (
        f"scale=w='if(gt(iw,ih),-2,trunc(min({s},iw)/2)*2)':h='if(gt(iw,ih),trunc(min({s},ih)/2)*2,-2)'"
    )


def encode_clip(
    src: str | Path, out: str | Path, *, fps: int = OUT_FPS, short_side: int = OUT_SHORT_SIDE,
    max_duration_s: float | None = None, threads: int = 0,
) -> None:
    """Re-encode ``src`` to the normalised MP4 at ``out`` atomically; raises VideoDecodeError on failure."""
    limit = ["-t", f"{max_duration_s}"] if max_duration_s is not None else []
    cmd = [
        require_ffmpeg(), "-v", "error", "-nostdin", "-y", "-i", str(src), *limit, "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", f"fps={fps},{_scale_filter(short_side)}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        "-pix_fmt", "yuv420p", "-g", str(fps), "-threads", str(threads), "-map_metadata", "-1",
        "-movflags", "+faststart", "-f", "mp4",
    ]
    with atomic_path(Path(out)) as tmp:
        proc = subprocess.run([*cmd, str(tmp)], capture_output=True, check=False)
        if proc.returncode != 0 or tmp.stat().st_size == 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            raise VideoDecodeError("encode_failed", f"{src}: ffmpeg failed ({lines[-1] if lines else 'no output'})")


def normalise_clip(
    src: str | Path, out: str | Path, *, fps: int = OUT_FPS, short_side: int = OUT_SHORT_SIDE,
    max_duration_s: float | None = None, threads: int = 0,
) -> ClipResult:
    """Measure ``src``; reject black or still videos; otherwise write the normalised clip to ``out``.

    Measuring decodes the whole source strictly (a file cut short fails as ``corrupt``), and the encoded clip
    must be as long as the source (or ``max_duration_s``): a shorter one is removed and fails as ``corrupt``."""
    try:
        m = measure_clip(src)
    except VideoDecodeError as e:
        return ClipResult("failed", e.reason)
    if m.black_fraction >= BLACK_FRACTION:
        return ClipResult("rejected", "black", measures=m, duration_s=m.duration_s)
    if m.motion < measures.STATIC_MOTION:
        return ClipResult("rejected", "static", measures=m, duration_s=m.duration_s)
    try:
        encode_clip(src, out, fps=fps, short_side=short_side, max_duration_s=max_duration_s, threads=threads)
        info = probe(out)
    except VideoDecodeError as e:
        return ClipResult("failed", e.reason, measures=m)
    if info.duration_s < min(m.duration_s, max_duration_s or m.duration_s) - LENGTH_TOLERANCE_S:
        Path(out).unlink(missing_ok=True)
        return ClipResult("failed", "corrupt", measures=m, duration_s=info.duration_s)
    return ClipResult(
        "ok", None, measures=m, width=info.width, height=info.height, fps=info.fps,
        frames=info.frames, duration_s=info.duration_s,
    )
