"""Synthetic source videos whose visual truth is known (dominant colour, motion, black, cuts).

Tests and the MUImage/MUVideo flows on the synthetic corpus need videos paired with the synthetic music
clips. Each video is drawn by ffmpeg's lavfi sources from a scene chosen deterministically from the clip id:
a box moving over a coloured field, the same box standing still, a plain colour field (a uniform frame), a
black lead-in, an all-black video, a cut between two colours, or ``testsrc2``. The background covers > 85 % of the picture, so it is the dominant
colour by construction; the box is too small to be named.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from m2ugen_data.atomic import atomic_path
from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import validate_clip_id
from m2ugen_data.system import require_ffmpeg
from m2ugen_data.warehouse import Warehouse

# Background colours, each chosen well inside its named family (see measures.color_names).
PALETTE = {
    "red": "0xd02020",
    "green": "0x20a040",
    "blue": "0x2050d0",
    "yellow": "0xe6d228",
    "purple": "0x8030b0",
    "orange": "0xf08010",
}
SCENES = ("moving_box", "static_box", "plain", "black_lead", "black", "cut", "testsrc")
WIDTH, HEIGHT, RATE = 320, 240, 25


@dataclass(frozen=True)
class VideoTruth:
    clip_id: str
    scene: str
    dominant_color: str | None  # None where the scene has no single dominant colour (testsrc2)
    second_color: str | None  # background after the cut, for "cut"
    moving: bool
    black: bool  # the whole video is black
    black_until_s: float  # end of the black lead-in (0 when none)
    scene_cuts: int
    duration_s: float


def _pick(clip_id: str, salt: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{clip_id}".encode()).digest()[:8], "big") % n


def plan_video(clip_id: str, scene: str | None = None, duration_s: float = 10.0) -> VideoTruth:
    """The scene and colours for ``clip_id`` (a stable hash unless ``scene`` is given)."""
    validate_clip_id(clip_id)
    scene = scene or SCENES[_pick(clip_id, "scene", len(SCENES))]
    if scene not in SCENES:
        raise M2UGenError(f"unknown synthetic scene {scene!r}; expected one of {SCENES}")
    names = sorted(PALETTE)
    first = names[_pick(clip_id, "color", len(names))]
    second = names[(names.index(first) + 1 + _pick(clip_id, "color2", len(names) - 1)) % len(names)]
    half = duration_s / 2
    return VideoTruth(
        clip_id=clip_id,
        scene=scene,
        dominant_color={"black": "black", "testsrc": None}.get(scene, first),
        second_color=second if scene == "cut" else None,
        moving=scene not in ("static_box", "plain", "black"),
        black=scene == "black",
        black_until_s=half if scene == "black_lead" else 0.0,
        scene_cuts=1 if scene in ("cut", "black_lead") else 0,  # black to picture is a hard cut too
        duration_s=duration_s,
    )


def _field(color: str, d: float, label: str) -> str:
    return f"color=c={color}:s={WIDTH}x{HEIGHT}:r={RATE}:d={d}[{label}]"


def _box_over(color: str, d: float, label: str, moving: bool) -> str:
    box = "black" if color == PALETTE["yellow"] else "white"
    pos = "x='mod(t*160,W-w)':y='(H-h)/2*(1+sin(2*t))'" if moving else "x=110:y=80"
    return (
        f"{_field(color, d, label + 'bg')};color=c={box}:s=96x72:r={RATE}:d={d}[{label}fg];"
        f"[{label}bg][{label}fg]overlay={pos}:shortest=1[{label}]"
    )


def filtergraph(truth: VideoTruth) -> str:
    """The lavfi graph (output label ``v``) that draws ``truth``."""
    d, half = truth.duration_s, truth.duration_s / 2
    first = PALETTE.get(truth.dominant_color or "", "")
    if truth.scene == "moving_box":
        return _box_over(first, d, "v", True)
    if truth.scene == "static_box":
        return _box_over(first, d, "v", False)
    if truth.scene == "black":
        return _field("black", d, "v")
    if truth.scene == "plain":
        return _field(first, d, "v")
    if truth.scene == "black_lead":
        return f"{_field('black', half, 'a')};{_box_over(first, half, 'b', True)};[a][b]concat=n=2:v=1:a=0[v]"
    if truth.scene == "cut":
        second = PALETTE[truth.second_color or ""]
        return f"{_box_over(first, half, 'a', True)};{_box_over(second, half, 'b', True)};[a][b]concat=n=2:v=1:a=0[v]"
    return f"testsrc2=s={WIDTH}x{HEIGHT}:r={RATE}:d={d}[v]"


def render_video(out: str | Path, truth: VideoTruth, audio: str | Path | None = None) -> Path:
    """Encode the scene to H.264 MP4 atomically, muxing ``audio`` (e.g. the clip's FLAC) when given."""
    out = Path(out)
    cmd = [require_ffmpeg(), "-v", "error", "-nostdin", "-y", "-filter_complex", filtergraph(truth)]
    if audio is not None:
        cmd += ["-i", str(audio), "-map", "[v]", "-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-shortest"]
    else:
        cmd += ["-map", "[v]"]
    cmd += [
        "-t", f"{truth.duration_s}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        "-pix_fmt", "yuv420p", "-threads", "1", "-map_metadata", "-1", "-fflags", "+bitexact",
        "-flags:v", "+bitexact", "-movflags", "+faststart", "-f", "mp4",
    ]
    with atomic_path(out) as tmp:
        proc = subprocess.run([*cmd, str(tmp)], capture_output=True, check=False)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise M2UGenError(f"cannot render synthetic video {out.name}: {msg[-1] if msg else 'ffmpeg failed'}")
    return out


def render_synth_videos(
    warehouse: Warehouse, clip_ids: Iterable[str], *, with_audio: bool = True, duration_s: float = 10.0
) -> list[dict]:
    """Render a video per clip at ``media_path('video', clip_id, 'mp4')``; returns the truth rows.

    Muxes the clip's FLAC when ``with_audio`` and it exists, as a downloaded AudioSet section would carry
    its own soundtrack. Existing videos are kept (reruns are cheap and idempotent).
    """
    rows = []
    for clip_id in clip_ids:
        truth = plan_video(clip_id, duration_s=duration_s)
        out = warehouse.media_path("video", clip_id, "mp4")
        if not out.exists():
            flac = warehouse.media_path("audio", clip_id, "flac")
            render_video(out, truth, flac if with_audio and flac.exists() else None)
        rows.append({**asdict(truth), "video_path": str(out.relative_to(warehouse.root))})
    return rows
