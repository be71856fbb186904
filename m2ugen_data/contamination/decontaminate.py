"""``m2ugen-data decontaminate --against PATH...``: find the warehouse clips an evaluation set holds, by ID and
by sound, keep them out of every training sample, and rewrite the shards that held them.

Each ``--against`` is ``[NAME=]PATH`` (the benchmark's name defaults to the file or directory name):

- an evaluation list (``.csv``: ``ytid[,start_s,end_s]``, as ``--exclude-eval`` takes): matched by ID
  against the audio each clip actually kept (``clips.span_start_s`` + ``duration_s`` in the video; a segment
  clip is its segment), so a MUCaps whole-video download is caught by any evaluation segment of its video;
- audio (a file or a directory of them: MusicCaps clips, MusicQA's renamed wavs) or shards (our
  ``<dataset>_eval`` splits): matched by sound (``evalindex``) and, where the names are IDs, by ID.

Matches are ``contamination`` rows (one batch per benchmark, replaced on a rerun), which the sample sources
(``gate.py``), pair mining and the disjointness check read. An evaluation file that cannot be read is
listed in the report and the run goes on. The per-benchmark report (``BenchmarkReport``) says how many
items were read, how many clips matched by ID and by sound, and how many samples each dataset lost.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from m2ugen_data.analysis import fingerprint as fp_mod
from m2ugen_data.contamination.evalindex import EvalIndex, build_index
from m2ugen_data.audioset.evallists import load_eval_list
from m2ugen_data.dedup.match import DupRules
from m2ugen_data.errors import M2UGenError
from m2ugen_data.warehouse import Warehouse, utc_now

DATASETS = ("mucaps", "muedit", "muimage", "muvideo")


@dataclass
class BenchmarkReport:
    benchmark: str
    source: str
    items: int = 0  # evaluation items read (list rows or audio files)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    by_id: int = 0  # warehouse clips matched by ID
    by_sound: int = 0  # ... by sound only
    samples_removed: Counter[str] = field(default_factory=Counter)  # dataset -> training samples left out


def parse_against(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after the file or directory)."""
    name, sep, path = spec.partition("=")
    if sep and name and "/" not in name:
        return name, Path(path)
    p = Path(spec)
    return p.name.removesuffix(".csv").removesuffix("-public") or "eval", p


def _kept_ranges(wh: Warehouse) -> pa.Table:
    """Per downloaded clip: its video and the seconds of it the stored audio holds (end may be inf)."""
    return wh.connect().sql(
        "SELECT c.clip_id, s.ytid, coalesce(c.span_start_s, s.start_s) AS lo, "
        "CASE WHEN c.span = 'full' AND c.span_start_s = 0 THEN 'inf'::DOUBLE "
        "     ELSE coalesce(c.span_start_s, s.start_s) + coalesce(c.duration_s, s.end_s - s.start_s) END AS hi "
        "FROM clips_latest c JOIN segments_latest s USING (clip_id) WHERE c.status = 'ok'"
    ).to_arrow_table()


def match_list(wh: Warehouse, path: Path, benchmark: str) -> tuple[list[dict[str, Any]], int]:
    """Rows for the clips whose kept audio holds a segment of the list at ``path``; (rows, segments read)."""
    lst = load_eval_list(f"{benchmark}={path}")
    by_video: dict[str, list[tuple[float, float]]] = {}
    for s in lst.segments:
        by_video.setdefault(s.ytid, []).append((s.start_s, s.end_s))
    rows = []
    for r in _kept_ranges(wh).to_pylist():
        for start, end in by_video.get(r["ytid"], ()):
            if math.isnan(start) or (start < r["hi"] and r["lo"] < end):
                what = "whole video" if math.isnan(start) else f"{r['ytid']} {start:g}-{end:g} s"
                rows.append({"clip_id": r["clip_id"], "matched_by": "id", "eval_item": what})
                break
    return rows, len(lst.segments)


def _id_rows(wh: Warehouse, index: EvalIndex, benchmark: str) -> list[dict[str, Any]]:
    """Clips named by the items' names: the clip id itself, or any clip of a named video."""
    clip_ids, ytids = {}, {}
    for it in index.items:
        if it.benchmark == benchmark:
            clip_ids.update({c: it.item for c in it.clip_ids})
            ytids.update({y: it.item for y in it.ytids})
    rows = []
    for r in _kept_ranges(wh).select(["clip_id", "ytid"]).to_pylist():
        item = clip_ids.get(r["clip_id"]) or ytids.get(r["ytid"])
        if item is not None:
            rows.append({"clip_id": r["clip_id"], "matched_by": "id", "eval_item": item})
    return rows


def sound_matches(wh: Warehouse, index: EvalIndex, rules: DupRules = DupRules(),
                  progress: Callable[[int], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """benchmark -> rows of the warehouse clips (any with an ok fingerprint) holding one of its items."""
    out: dict[str, list[dict[str, Any]]] = {}
    con = wh.connect()
    have = {r[0] for r in con.sql("DESCRIBE features_latest").fetchall()}
    if "fp_status" not in have:
        return out
    reader = con.sql(
        "SELECT clip_id, fp_landmarks, fp_sketch, fp_seconds FROM features_latest "
        "WHERE fp_status = 'ok' AND fp_version = $v ORDER BY clip_id", params={"v": fp_mod.VERSION}
    ).to_arrow_reader(1024)
    for batch in reader:
        for r in batch.to_pylist():
            fp = fp_mod.from_columns(r["fp_landmarks"], r["fp_sketch"], r["fp_seconds"])
            for item, verdict in index.lookup(fp, rules):
                al = verdict.alignment
                out.setdefault(item.benchmark, []).append({
                    "clip_id": r["clip_id"], "matched_by": "sound", "eval_item": item.item,
                    "frac": round(al.frac, 4) if al else None, "corr": round(verdict.corr, 4),
                    "offset_s": round(al.offset / fp_mod.FRAMES_PER_S, 3) if al else None,
                })
        if progress:
            progress(batch.num_rows)
    return out


def decontaminate(
    wh: Warehouse, against: Sequence[str], *, rules: DupRules = DupRules(), rewrite_shards: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> list[BenchmarkReport]:
    """Match every ``against`` set, write its ``contamination`` batch, and rewrite the datasets' training
    shards so no sample holds a matched clip. Fingerprints missing from the warehouse are filled first."""
    from m2ugen_data.dedup.backfill import fingerprint_missing

    if not against:
        raise M2UGenError("decontaminate needs at least one --against PATH (an evaluation list, audio or shards)")
    fingerprint_missing(wh)
    specs = [parse_against(a) for a in against]
    names = [n for n, _ in specs]
    if len(set(names)) < len(names):
        raise M2UGenError(f"two --against sets are named alike ({', '.join(names)}); name them with NAME=PATH")
    lists = [(n, p) for n, p in specs if p.suffix.lower() == ".csv"]
    audio = [(n, p) for n, p in specs if p.suffix.lower() != ".csv"]
    index = build_index(audio, progress=(lambda k: progress("eval items", k)) if progress else None)
    by_sound = sound_matches(wh, index, rules, (lambda k: progress("clips", k)) if progress else None)
    reports = []
    now = utc_now()
    for name, path in specs:
        rep = BenchmarkReport(name, str(path))
        if (name, path) in lists:
            rows, rep.items = match_list(wh, path, name)
        else:
            rows = _id_rows(wh, index, name)
            rep.items = sum(it.benchmark == name for it in index.items)
            rep.unreadable = [(item, why) for b, item, why in index.unreadable if b == name]
        id_clips = {r["clip_id"] for r in rows}
        sound = [r for r in by_sound.get(name, []) if r["clip_id"] not in id_clips]
        rep.by_id, rep.by_sound = len(id_clips), len({r["clip_id"] for r in sound})
        unique = {r["clip_id"]: r for r in sound} | {r["clip_id"]: r for r in rows}
        full = [{"frac": None, "corr": None, "offset_s": None, **r, "benchmark": name, "source": str(path),
                 "created_at": now} for r in unique.values()]
        wh.write_batch("contamination", full, f"contamination-{_batch_name(name)}")
        reports.append(rep)
    if rewrite_shards:
        _rewrite(wh, reports)
    return reports


def _batch_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:120] or "eval"


def _rewrite(wh: Warehouse, reports: list[BenchmarkReport]) -> None:
    """Rewrite each dataset that has shards (incrementally: only shards that held a matched clip change);
    the removed samples are counted against the benchmark that matched them."""
    from m2ugen_data.clean.gate import clip_ids_of_key, load_gate
    from m2ugen_data.shards import build_dataset_shards
    from m2ugen_data.shards.read import iter_shard_keys, shard_paths

    for dataset in DATASETS:
        paths = [p for p in shard_paths(wh, dataset) if p.is_file()]
        if not paths:
            continue
        gate = load_gate(wh, dataset)
        for key in (k for p in paths for k in iter_shard_keys(p)):
            hit = {gate.contaminated[c] for c in clip_ids_of_key(dataset, key) if c in gate.contaminated}
            for rep in reports:
                if rep.benchmark in hit:
                    rep.samples_removed[dataset] += 1
        build_dataset_shards(wh, dataset)


__all__ = ["BenchmarkReport", "decontaminate", "match_list", "parse_against", "sound_matches"]
