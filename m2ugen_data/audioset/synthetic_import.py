"""Use the synthetic corpus as if it had been downloaded: the "download" step for ``source=synthetic``.

The corpus (``m2ugen_data.synth.corpus.render_corpus``) writes an official-format segment list and one FLAC
per clip; importing runs the same selection code as AudioSet (so the CSV parser and label handling are
exercised end to end) with every clip put in one pool, then copies the audio into the warehouse's media
paths and records ``clips`` rows exactly as a download would. Rerunning replaces the same batches.

Like a download, the image and video pools also get a source video (``media/video/...mp4``, recorded in
``clips.video_path``): the corpus has none, so ``vision.synth_video`` draws one per clip whose visual truth
(colour, motion, black, cuts) follows from the clip id, muxed with the clip's own FLAC. Videos already
rendered are kept, so reruns are cheap.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from m2ugen_data.atomic import atomic_path
from m2ugen_data.audio_io import AudioDecodeError, load_audio
from m2ugen_data.audioset.failures import CORRUPT, PERMANENT
from m2ugen_data.audioset.ontology import Ontology, load_ontology
from m2ugen_data.audioset.segments_csv import read_segments_csv
from m2ugen_data.audioset.selection import (
    SelectionPolicy,
    SelectionReport,
    select_music,
    write_rejects,
)
from m2ugen_data.errors import DISK_FULL_ERRNOS, DiskFullError, M2UGenError
from m2ugen_data.warehouse import Warehouse, utc_now

if TYPE_CHECKING:
    from m2ugen_data.audioset.eval_exclusion import EvalExclusion

SOURCE = "synthetic"


@dataclass
class ImportReport:
    selection: SelectionReport
    ok: int
    failed: dict[str, str]  # clip_id -> error


def import_synthetic(
    wh: Warehouse, corpus_dir: str | Path, pool: str = "muedit", *, ontology: Ontology | None = None,
    with_video: bool | None = None, exclusion: EvalExclusion | None = None,
) -> ImportReport:
    """Import the corpus into ``pool``; ``with_video`` (default: the pool is an image/video pool, as for a
    download) also renders each clip's source video. ``exclusion`` (default: the bundled evaluation lists)
    rules out segments as selection does for AudioSet."""
    corpus = Path(corpus_dir)
    csv_path = corpus / "segments.csv"
    if not csv_path.is_file():
        raise M2UGenError(f"{csv_path}: no synthetic segment list (render one with `m2ugen-data synth --out {corpus}`)")
    digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()[:12]
    seg = read_segments_csv(csv_path, SOURCE)
    if exclusion is None:
        from m2ugen_data.audioset.eval_exclusion import default_exclusion

        exclusion = default_exclusion()
    from m2ugen_data.audioset.eval_exclusion import record_lists

    record_lists(wh, exclusion)
    table, report = select_music(seg, ontology or load_ontology(), SelectionPolicy(pool_override=pool), exclusion)
    report.batch_id = f"segments-{SOURCE}-{digest}"
    wh.write_batch("segments", table, report.batch_id)
    write_rejects(wh, report)

    if with_video is None:
        from m2ugen_data.audioset.download import VIDEO_POOLS

        with_video = pool in VIDEO_POOLS
    created: list[Path] = []  # media this run added: removed again if the batch cannot be recorded
    try:
        rows = [_import_clip(wh, corpus, clip_id, created) for clip_id in table.column("clip_id").to_pylist()]
        if with_video:
            rows = _add_videos(wh, rows)
        failed = {row["clip_id"]: row["error"] for row in rows if row["status"] != "ok"}
        wh.write_batch("clips", rows, f"import-{SOURCE}-{digest}")
    except (DiskFullError, OSError) as e:
        if not isinstance(e, DiskFullError) and e.errno not in DISK_FULL_ERRNOS:
            raise
        for path in created:
            path.unlink(missing_ok=True)
        where = str(e) if isinstance(e, DiskFullError) else f"disk full writing the clips manifest in {wh.root}"
        raise DiskFullError(f"{where}; the {len(created)} media files this import added were removed, free "
                            "space and run it again") from None
    return ImportReport(report, ok=len(rows) - len(failed), failed=failed)


def _import_clip(wh: Warehouse, corpus: Path, clip_id: str, created: list[Path]) -> dict:
    row = {
        "clip_id": clip_id, "status": "failed", "error_class": None, "error": None, "attempts": 1,
        "audio_path": None, "video_path": None, "duration_s": None, "sample_rate": None, "bytes": None,
        "sha256": None, "span": None, "span_start_s": None, "updated_at": utc_now(),
    }
    src = corpus / "audio" / f"{clip_id}.flac"  # clip_id was validated by the segment list parser
    if not src.is_file():
        return {**row, "error_class": PERMANENT, "error": f"not in the corpus: {src}"}
    try:
        y, sr = load_audio(src, sr=None)
    except AudioDecodeError as e:
        return {**row, "error_class": CORRUPT, "error": str(e).splitlines()[0]}
    target = wh.media_path("audio", clip_id, "flac")
    existed = target.exists()
    try:
        with atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:  # shutil names the source file in this error: name the target
            raise DiskFullError(f"disk full writing {target}") from None
        raise
    if not existed:
        created.append(target)
    data = target.read_bytes()
    return {
        **row, "status": "ok", "audio_path": target.relative_to(wh.root).as_posix(),
        "duration_s": len(y) / sr, "sample_rate": sr, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
    }


def _add_videos(wh: Warehouse, rows: list[dict]) -> list[dict]:
    """Render the source video of every imported clip (ffmpeg runs release the GIL: one per core); a clip
    whose video cannot be rendered fails as a download whose video failed would."""
    from m2ugen_data.vision.synth_video import render_synth_videos

    def one(row: dict) -> dict:
        if row["status"] != "ok":
            return row
        try:
            (truth,) = render_synth_videos(wh, [row["clip_id"]])
        except M2UGenError as e:
            return {**row, "status": "failed", "error_class": CORRUPT, "error": str(e).splitlines()[0]}
        return {**row, "video_path": Path(truth["video_path"]).as_posix()}

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, rows))
