"""Warehouse rows for the dedup and decontamination tests: clips from audio files, minimal ok features."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from rows import with_nulls

from m2ugen_data.audio_io import load_audio
from m2ugen_data.warehouse import utc_now


def add_features(wh, clip_ids):
    now = utc_now()
    rows = [with_nulls("features", {"clip_id": c, "status": "ok", "analyser_version": "test", "beats": [],
                                    "downbeats": [], "music_reasons": [], "is_music": True, "updated_at": now})
            for c in clip_ids]
    wh.write_batch("features", rows, f"features-test-{hashlib.sha1(''.join(clip_ids).encode()).hexdigest()[:8]}")


def add_clip(wh, clip_id: str, src: Path) -> None:
    target = wh.media_path("audio", clip_id, src.suffix.lstrip("."))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    data = target.read_bytes()
    y, sr = load_audio(target)
    wh.write_batch("clips", [with_nulls("clips", {
        "clip_id": clip_id, "status": "ok", "attempts": 1, "audio_path": target.relative_to(wh.root).as_posix(),
        "duration_s": y.size / sr, "sample_rate": sr, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "updated_at": utc_now()})], f"clips-{clip_id}")
    add_features(wh, [clip_id])
