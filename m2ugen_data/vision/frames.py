"""One representative frame per video section, for MUImage.

The reference kept a random frame; a random frame of a music video is often a fade, a black title or a
motion-blurred transition. We look at ``n`` evenly spaced frames, drop black and near-uniform ones, and keep
the sharpest (variance of the Laplacian at a fixed working size), earliest on ties, so the choice is
deterministic and the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m2ugen_data.atomic import atomic_path
from m2ugen_data.vision import measures
from m2ugen_data.vision.decode import VideoDecodeError, decode_at_times, evenly_spaced_times, probe_duration, to_array

EXTRACTOR_VERSION = "frames-1"
N_CANDIDATES = 16
WORK_SIDE = 256  # shorter side of the luma image the candidates are scored on
COLOR_SIDE = 64  # shorter side of the image whose pixels are named for dominant colours
JPEG_QUALITY = 92


@dataclass(frozen=True)
class FrameResult:
    status: str  # ok | rejected | failed
    reason: str | None
    frame_time_s: float | None = None
    sharpness: float | None = None
    brightness: float | None = None
    width: int | None = None
    height: int | None = None
    frames: int = 0  # candidates examined
    duration_s: float | None = None
    dominant_colors: tuple[str, ...] = ()


def extract_frame(video: str | Path, out_jpeg: str | Path, n: int = N_CANDIDATES) -> FrameResult:
    """Choose the frame, write it as JPEG atomically to ``out_jpeg``, and say why when there is none."""
    try:
        d = decode_at_times(video, evenly_spaced_times(probe_duration(video), n))
    except VideoDecodeError as e:
        return FrameResult("failed", e.reason)
    if not d.frames:
        return FrameResult("failed", "undecodable", duration_s=d.duration_s)
    best: tuple[float, int] | None = None
    lumas = [to_array(f, "gray", WORK_SIDE) for f in d.frames]
    rejected = {"black": 0, "uniform": 0}
    for i, luma in enumerate(lumas):
        if measures.is_black(luma):
            rejected["black"] += 1
        elif measures.is_uniform(luma):
            rejected["uniform"] += 1
        else:
            score = measures.sharpness(luma)
            if best is None or score > best[0]:  # strict: the earliest frame wins ties
                best = (score, i)
    if best is None:
        reason = "black" if rejected["black"] >= rejected["uniform"] else "uniform"
        return FrameResult("rejected", reason, frames=len(d.frames), duration_s=d.duration_s)
    score, i = best
    frame = d.frames[i]
    with atomic_path(Path(out_jpeg)) as tmp:
        frame.to_image().save(tmp, format="JPEG", quality=JPEG_QUALITY)
    return FrameResult(
        "ok",
        None,
        frame_time_s=d.times[i],
        sharpness=score,
        brightness=measures.brightness(lumas[i]),
        width=frame.width,
        height=frame.height,
        frames=len(d.frames),
        duration_s=d.duration_s,
        dominant_colors=tuple(measures.dominant_colors([to_array(frame, "rgb24", COLOR_SIDE)])),
    )
