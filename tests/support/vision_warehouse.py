"""A warehouse seeded with segments and clips rows whose source videos the vision tests choose."""

from __future__ import annotations

import shutil
from pathlib import Path

from m2ugen_data.warehouse import Warehouse, utc_now


def seed_warehouse(wh: Warehouse, entries: list[tuple[str, str, Path | bytes | None]]) -> None:
    """segments + clips rows for ``(clip_id, pool, video)``; video is a file to copy, raw bytes, or None."""
    segs, clips = [], []
    for clip_id, pool, video in entries:
        segs.append(
            {"clip_id": clip_id, "ytid": clip_id[:11], "start_s": 0.0, "end_s": 10.0,
             "labels": ["/m/04rlf", "/m/042v_gx"], "instruments": ["/m/042v_gx"], "genres": [], "moods": [],
             "pool": pool, "source": "synthetic", "updated_at": utc_now()}
        )
        target = wh.media_path("video", clip_id, "mp4")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(video, Path):
            shutil.copyfile(video, target)
        elif isinstance(video, bytes):
            target.write_bytes(video)
        clips.append(
            {"clip_id": clip_id, "status": "ok", "error_class": None, "error": None, "attempts": 1,
             "audio_path": None, "video_path": None, "duration_s": 10.0, "sample_rate": 48000, "bytes": None,
             "sha256": f"sha-{clip_id}", "span": None, "span_start_s": None, "updated_at": utc_now()}
        )
    wh.write_batch("segments", segs, "seed-segments")
    wh.write_batch("clips", clips, "seed-clips")
