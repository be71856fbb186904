"""Assemble each dataset's samples from the warehouse manifests, in key order.

One DuckDB query per dataset joins the ``*_latest`` views (the newest row per record) and streams the rows
in Arrow batches, so a million-clip warehouse never sits in memory. What the query excludes is a rule of
the dataset (MUCaps: clip downloaded, analysis ok, ``is_music``, a caption; MUEdit: both clips downloaded and
the pair's newest dialogue ``ok``, so rejected dialogues never reach a shard; MUImage/MUVideo: clip of the
pool downloaded, analysis ok and ``is_music``, frame or normalised clip ok, newest dialogue ``ok``). What the
query cannot see, a media file gone from disk or a row the sample model refuses, is skipped and counted by
reason in ``skips``.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from m2ugen_data.clean.gate import filter_samples, load_gate
from m2ugen_data.errors import M2UGenError
from m2ugen_data.shards.samples import (
    VISUAL_MODELS,
    mucaps_sample,
    muedit_sample,
    visual_sample,
)
from m2ugen_data.shards.tar_writer import Sample
from m2ugen_data.warehouse import Warehouse

log = logging.getLogger(__name__)
_BATCH_ROWS = 4096


def media_file(wh: Warehouse, relpath: str | None) -> Path | None:
    """The media file a manifest names, or None when the path is unsafe or the file is gone."""
    if not relpath:
        return None
    rel = PurePosixPath(relpath)
    if rel.is_absolute() or ".." in rel.parts:
        return None
    path = wh.root / rel
    return path if path.is_file() else None


def _present(row: dict[str, Any] | None, key: str = "clip_id") -> dict[str, Any] | None:
    """A LEFT JOIN miss arrives as a struct of nulls; make it None."""
    return row if row and row.get(key) is not None else None


def _rows(wh: Warehouse, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]:
    con = wh.connect()
    try:
        for batch in con.sql(sql, params=params).to_arrow_reader(_BATCH_ROWS):
            yield from batch.to_pylist()
    finally:
        con.close()


def _skip(skips: Counter[str] | None, reason: str, key: str, detail: str) -> None:
    if skips is not None:
        skips[reason] += 1
    log.warning("skipping %s: %s", key, detail)


def _caption_cte(caption_backends: Sequence[str] | None) -> tuple[str, list[Any]]:
    """One caption per clip: the first of ``caption_backends`` that has one, else the newest of any backend."""
    if caption_backends:
        order, where, params = "list_position($1, backend), created_at DESC", "AND list_contains($1, backend)", [
            list(caption_backends)
        ]
    else:
        order, where, params = "created_at DESC, backend", "", []
    cte = (
        "cap AS (SELECT *, row_number() OVER (PARTITION BY item_id ORDER BY "
        f"{order}) AS rank FROM captions_latest WHERE modality = 'audio' AND trim(coalesce(text, '')) <> '' {where})"
    )
    return cte, params


def iter_mucaps_samples(
    wh: Warehouse,
    *,
    skips: Counter[str] | None = None,
    pool: str | None = "mucaps",
    caption_backends: Sequence[str] | None = None,
    label_name: Callable[[str], str] | None = None,
) -> Iterator[Sample]:
    """MUCaps: every music clip of ``pool`` (None: any pool) with audio, ok features and a caption."""
    if label_name is None:
        from m2ugen_data.audioset.ontology import load_ontology

        label_name = load_ontology().name
    cte, params = _caption_cte(caption_backends)
    pool_sql = ""
    if pool is not None:
        params.append(pool)
        pool_sql = f"AND s.pool = ${len(params)}"
    sql = f"""
        WITH {cte}
        SELECT s AS segment, c AS clip, f AS features, cap AS caption
        FROM segments_latest s
        JOIN clips_latest c ON c.clip_id = s.clip_id
        JOIN features_latest f ON f.clip_id = s.clip_id
        JOIN cap ON cap.item_id = s.clip_id AND cap.rank = 1
        WHERE c.status = 'ok' AND f.status = 'ok' AND f.is_music {pool_sql}
        ORDER BY s.clip_id
    """
    for row in _rows(wh, sql, params):
        clip_id = row["clip"]["clip_id"]
        audio = media_file(wh, row["clip"]["audio_path"])
        if audio is None:
            _skip(skips, "audio_missing", clip_id, f"audio file {row['clip']['audio_path']!r} not in the warehouse")
            continue
        try:
            yield mucaps_sample(
                audio=audio,
                clip=row["clip"],
                segment=_present(row["segment"]),
                features=row["features"],
                caption=row["caption"],
                label_name=label_name,
            )
        except (M2UGenError, ValidationError) as e:
            _skip(skips, "invalid", clip_id, str(e).splitlines()[0])


def iter_muedit_samples(wh: Warehouse, *, skips: Counter[str] | None = None) -> Iterator[Sample]:
    """MUEdit: every mined pair whose two clips are downloaded and whose newest dialogue is ok."""
    sql = """
        WITH dlg AS (
            SELECT * FROM dialogues_latest WHERE dataset = 'muedit'
            QUALIFY row_number() OVER (PARTITION BY input_id, output_id ORDER BY created_at DESC, sample_id DESC) = 1
        )
        SELECT p AS pair, d AS dialogue, cs AS src_clip, ct AS tgt_clip, ss AS src_segment, st AS tgt_segment
        FROM pairs_latest p
        JOIN dlg d ON d.input_id = p.src_id AND d.output_id = p.tgt_id
        JOIN clips_latest cs ON cs.clip_id = p.src_id
        JOIN clips_latest ct ON ct.clip_id = p.tgt_id
        LEFT JOIN segments_latest ss ON ss.clip_id = p.src_id
        LEFT JOIN segments_latest st ON st.clip_id = p.tgt_id
        WHERE d.status = 'ok' AND cs.status = 'ok' AND ct.status = 'ok'
        ORDER BY p.src_id || '__' || p.tgt_id
    """
    for row in _rows(wh, sql):
        key = f"{row['pair']['src_id']}__{row['pair']['tgt_id']}"
        src, tgt = media_file(wh, row["src_clip"]["audio_path"]), media_file(wh, row["tgt_clip"]["audio_path"])
        if src is None or tgt is None:
            _skip(skips, "audio_missing", key, "input or output audio file not in the warehouse")
            continue
        try:
            yield muedit_sample(
                pair=row["pair"],
                dialogue=row["dialogue"],
                src_audio=src,
                tgt_audio=tgt,
                src_clip=row["src_clip"],
                tgt_clip=row["tgt_clip"],
                src_segment=_present(row["src_segment"]),
                tgt_segment=_present(row["tgt_segment"]),
            )
        except (M2UGenError, ValidationError) as e:
            _skip(skips, "invalid", key, str(e).splitlines()[0])


def _visual_sql(dataset: str, pool: str | None, select: str) -> tuple[str, dict[str, Any]]:
    """The MUImage/MUVideo selection, shared by the samples and by the keys the disjointness check needs.
    The caption CTEs find the caption rows whose text the dialogue was written from (provenance only)."""
    params: dict[str, Any] = {"dataset": dataset, "kind": VISUAL_MODELS[dataset].modality}
    pool_sql = ""
    if pool is not None:
        params["pool"] = pool
        pool_sql = "AND s.pool = $pool"
    sql = f"""
        WITH vcap AS (
            SELECT * FROM captions_latest WHERE modality = $kind
            QUALIFY row_number() OVER (PARTITION BY item_id, text ORDER BY created_at DESC, backend) = 1
        ), acap AS (
            SELECT * FROM captions_latest WHERE modality = 'audio'
            QUALIFY row_number() OVER (PARTITION BY item_id, text ORDER BY created_at DESC, backend) = 1
        )
        SELECT {select}
        FROM dialogues_latest d
        JOIN clips_latest c ON c.clip_id = d.input_id
        JOIN features_latest f ON f.clip_id = d.input_id
        JOIN visual_media_latest v ON v.clip_id = d.input_id AND v.kind = $kind
        LEFT JOIN segments_latest s ON s.clip_id = d.input_id
        LEFT JOIN vcap ON vcap.item_id = d.input_id AND vcap.text = d.input_caption
        LEFT JOIN acap ON acap.item_id = d.input_id AND acap.text = d.output_caption
        WHERE d.dataset = $dataset AND d.status = 'ok' AND d.input_id = d.output_id
          AND c.status = 'ok' AND f.status = 'ok' AND f.is_music AND v.status = 'ok' {pool_sql}
        ORDER BY d.input_id
    """
    return sql, params


def visual_sample_keys(wh: Warehouse, dataset: str, *, pool: str | None) -> list[str]:
    """The keys (clip ids) ``iter_visual_samples`` considers, without touching any media: what the
    music-disjointness check compares with the other datasets before shards are written."""
    sql, params = _visual_sql(dataset, pool, "d.input_id AS clip_id")
    return [r["clip_id"] for r in _rows(wh, sql, params)]


def iter_visual_samples(
    wh: Warehouse, *, dataset: str, skips: Counter[str] | None = None, pool: str | None = None
) -> Iterator[Sample]:
    """MUImage/MUVideo: every music clip of ``pool`` (None: any pool; ``SAMPLE_SOURCES`` defaults it to the
    dataset's own) with an ok frame or normalised clip and an ok dialogue. Media paths are derived from the
    clip id, never read from a row."""
    from m2ugen_data.vision.media_stage import media_relpath_for

    select = (
        "d AS dialogue, c AS clip, f AS features, v AS media, s AS segment, vcap AS input_caption, "
        "acap AS output_caption"
    )
    sql, params = _visual_sql(dataset, pool, select)
    kind = VISUAL_MODELS[dataset].modality
    for row in _rows(wh, sql, params):
        clip_id = row["clip"]["clip_id"]
        try:
            media = wh.abspath(media_relpath_for(kind, clip_id))
            audio = media_file(wh, row["clip"]["audio_path"])
            if audio is None or not media.is_file():
                what = "audio" if audio is None else kind
                _skip(skips, f"{what}_missing", clip_id, f"{what} file of {clip_id} not in the warehouse")
                continue
            sample = visual_sample(
                dataset=dataset,
                dialogue=row["dialogue"],
                media=row["media"],
                media_file=media,
                audio=audio,
                clip=row["clip"],
                features=row["features"],
                segment=_present(row["segment"]),
                input_caption=_present(row["input_caption"], "item_id"),
                output_caption=_present(row["output_caption"], "item_id"),
            )
        except (M2UGenError, ValidationError) as e:
            _skip(skips, "invalid", clip_id, str(e).splitlines()[0])
            continue
        yield sample


SampleSource = Callable[..., Iterator[Sample]]

# dataset -> function(warehouse, *, skips=None, **options) yielding its samples in key order.
SAMPLE_SOURCES: dict[str, SampleSource] = {
    "mucaps": iter_mucaps_samples,
    "muedit": iter_muedit_samples,
    "muimage": functools.partial(iter_visual_samples, dataset="muimage", pool="muimage"),
    "muvideo": functools.partial(iter_visual_samples, dataset="muvideo", pool="muvideo"),
}


def iter_dataset_samples(
    wh: Warehouse, dataset: str, *, skips: Counter[str] | None = None, side: str = "train", **options: Any
) -> Iterator[Sample]:
    """The dataset's samples that the warehouse's state lets into ``side`` (``train``: no held-out video, no
    clip of an evaluation set, one member per near-duplicate group; ``eval``: the held-out samples; ``all``:
    every sample but contaminated and duplicate ones), others counted by reason in ``skips``
    (``clean.gate``)."""
    source = SAMPLE_SOURCES.get(dataset)
    if source is None:
        raise M2UGenError(f"no sample source for dataset {dataset!r}; known: {', '.join(SAMPLE_SOURCES)}")
    return filter_samples(source(wh, skips=skips, **options), dataset, load_gate(wh, dataset), side, skips)
