"""The media stage: frames (MUImage) and normalised clips (MUVideo) for every downloaded clip of a pool.

Reads ``clips`` (downloaded, status ok) joined with ``segments`` (pool), works on the canonical video path
``media/video/<yt2>/<clip_id>.mp4`` (never a path taken from a manifest row), and writes ``visual_media`` one
batch file per chunk. A chunk's batch id is a digest of its clip ids, so rerunning a chunk replaces its file;
clips already done by the same extractor version are skipped, so an interrupted run resumes. Failures
(missing, undecodable, no video stream) and rejections (black, uniform, static) are rows with a reason.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from m2ugen_data.errors import InvalidIdError
from m2ugen_data.ids import media_relpath, validate_clip_id
from m2ugen_data.vision import clips, frames
from m2ugen_data.warehouse import Warehouse, utc_now

KINDS = ("image", "video")
DEFAULT_POOL = {"image": "muimage", "video": "muvideo"}
VERSIONS = {"image": frames.EXTRACTOR_VERSION, "video": clips.EXTRACTOR_VERSION}


def normalised_clip_relpath(clip_id: str) -> Path:
    """``media/clips/<yt2>/<clip_id>.mp4``: the MUVideo clip, beside (not over) the downloaded source."""
    return Path("media", "clips", *media_relpath("video", clip_id, "mp4").parts[2:])


def media_relpath_for(kind: str, clip_id: str) -> Path:
    """Where the stage writes ``kind`` for ``clip_id`` (validated): readers derive paths here, never from rows."""
    return media_relpath("image", clip_id, "jpg") if kind == "image" else normalised_clip_relpath(clip_id)


def pending_clips(
    wh: Warehouse, kind: str, *, pool: str | None = None, limit: int | None = None, redo: bool = False
) -> list[str]:
    """Clip ids of ``pool`` downloaded ok and not yet done (ok or rejected) by this extractor version."""
    if kind not in KINDS:
        raise InvalidIdError(f"unknown visual kind {kind!r}; expected image or video")
    con = wh.connect()
    sql = """
        SELECT c.clip_id FROM clips_latest c JOIN segments_latest s USING (clip_id)
        WHERE c.status = 'ok' AND s.pool = $pool
    """
    params: dict[str, Any] = {"pool": pool or DEFAULT_POOL[kind]}
    if not redo:
        sql += """ AND c.clip_id NOT IN (
            SELECT clip_id FROM visual_media_latest
            WHERE kind = $kind AND extractor_version = $version AND status IN ('ok', 'rejected'))"""
        params |= {"kind": kind, "version": VERSIONS[kind]}
    sql += " ORDER BY c.clip_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [r[0] for r in con.execute(sql, params).fetchall()]


def _row(clip_id: str, kind: str, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(
        ("reason", "path", "width", "height", "fps", "frames", "duration_s", "frame_time_s", "brightness",
         "sharpness", "motion", "scene_cuts")
    )
    row |= {"clip_id": clip_id, "kind": kind, "extractor_version": VERSIONS[kind], "dominant_colors": []}
    row |= values
    row["updated_at"] = utc_now()
    return row


def process_clip(wh: Warehouse, kind: str, clip_id: str, *, threads: int = 0, **options: Any) -> dict[str, Any]:
    """One ``visual_media`` row for ``clip_id``: extract the frame or normalise the clip, or say why not."""
    try:
        validate_clip_id(clip_id)
    except InvalidIdError:
        return _row(str(clip_id), kind, status="failed", reason="invalid_id")
    src = wh.media_path("video", clip_id, "mp4")
    rel = media_relpath_for(kind, clip_id)
    if kind == "image":
        r = frames.extract_frame(src, wh.abspath(rel), **options)
        return _row(
            clip_id, kind, status=r.status, reason=r.reason, path=str(rel) if r.status == "ok" else None,
            width=r.width, height=r.height, frames=r.frames, duration_s=r.duration_s,
            frame_time_s=r.frame_time_s, brightness=r.brightness, sharpness=r.sharpness,
            dominant_colors=list(r.dominant_colors),
        )
    c = clips.normalise_clip(src, wh.abspath(rel), threads=threads, **options)
    m = c.measures
    return _row(
        clip_id, kind, status=c.status, reason=c.reason, path=str(rel) if c.status == "ok" else None,
        width=c.width, height=c.height, fps=c.fps, frames=c.frames, duration_s=c.duration_s,
        brightness=m.brightness if m else None, motion=m.motion if m else None,
        scene_cuts=m.scene_cuts if m else None, dominant_colors=list(m.dominant_colors) if m else [],
    )


def batch_id(prefix: str, ids: Sequence[str], *extra: str) -> str:
    digest = hashlib.sha256("\n".join([*extra, *ids]).encode()).hexdigest()[:16]
    return f"{prefix}-{digest}"


def run_media(
    wh: Warehouse, kind: str, *, pool: str | None = None, limit: int | None = None, workers: int = 2,
    chunk: int = 64, redo: bool = False, on_done: Callable[[dict[str, Any]], None] | None = None,
    clip_ids: Sequence[str] | None = None, **options: Any,
) -> Counter:
    """Process every pending clip with ``workers`` threads (decoding and ffmpeg release the GIL); returns
    counts by ``status`` and ``status:reason``. ``clip_ids`` (a flow's batch, planned with ``pending_clips``)
    processes exactly those clips instead of querying what is pending."""
    todo = list(clip_ids) if clip_ids is not None else pending_clips(wh, kind, pool=pool, limit=limit, redo=redo)
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    counts: Counter = Counter()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool_exec:
        for start in range(0, len(todo), chunk):
            ids = todo[start : start + chunk]
            rows = []
            for row in pool_exec.map(lambda c: process_clip(wh, kind, c, threads=threads, **options), ids):
                rows.append(row)
                counts[row["status"]] += 1
                if row["reason"]:
                    counts[f"{row['status']}:{row['reason']}"] += 1
                if on_done is not None:
                    on_done(row)
            wh.write_batch("visual_media", rows, batch_id(kind, ids, VERSIONS[kind]))
    return counts
