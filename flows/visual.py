"""What ``build-muimage`` and ``build-muvideo`` share: one pipeline, parameterised by the visual kind.

acquire (clips with their source videos) -> frames or normalised clips -> analyse the clips whose visual
passed -> caption the music and the image/video of every music clip among them -> dialogues ->
music-disjointness check -> shards.

The synthetic source gets its own corpus and seed namespace per dataset (``steps.own_corpus``), so the
disjointness check meets real overlaps only.
"""

from __future__ import annotations

from typing import Any

from flows import steps, tasks
from flows.params import (
    AudioSetSource,
    RunOptions,
    Source,
    SyntheticSource,
    TextBackends,
    VisualOptions,
)
from m2ugen_data.warehouse import open_warehouse

KINDS = {"muimage": "image", "muvideo": "video"}
def media(root: str, kind: str, pool: str, options: VisualOptions, run: RunOptions) -> dict[str, Any]:
    """Frames or normalised clips for the pool's downloaded clips not yet done by this extractor version."""
    from m2ugen_data.vision.media_stage import pending_clips

    todo = pending_clips(open_warehouse(root), kind, pool=pool)
    batches = steps.chunked(todo, run.batch_size)
    results = steps.fan_out(tasks.media_batch, batches, "clip_ids", name=f"{kind}-media", root=root, kind=kind, options=options)
    return {"planned": len(todo), "batches": len(batches), **steps.merge_counts(results)}


def with_media(root: str, kind: str, pool: str, *, music: bool = False) -> list[str]:
    """Clips of the pool whose frame or clip is ok (and, with ``music``, whose analysis is ok and ``is_music``).
    Only clips with media are analysed (a still or black video is common on AudioSet and its music would be
    analysed for nothing); only music clips with media get captions, dialogues and a place in the shards."""
    music_sql = (
        "AND clip_id IN (SELECT clip_id FROM features_latest WHERE status = 'ok' AND is_music)" if music else ""
    )
    con = open_warehouse(root).connect()
    try:
        rows = con.execute(
            f"""
            SELECT s.clip_id FROM segments_latest s JOIN visual_media_latest v USING (clip_id)
            WHERE s.pool = $pool AND v.kind = $kind AND v.status = 'ok' {music_sql}
            ORDER BY s.clip_id
            """,
            {"pool": pool, "kind": kind},
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def caption_media(
    root: str, kind: str, clip_ids: list[str], options: VisualOptions, run: RunOptions, ontology: str | None
) -> dict[str, Any]:
    """Caption the frames or clips in batches; a local model captions one batch at a time."""
    results = steps.fan_out(
        tasks.visual_caption_batch, steps.chunked(clip_ids, run.caption_batch_size), "clip_ids",
        name=f"{kind}-caption", sequential=options.caption_backend != "grounded",
        root=root, kind=kind, options=options, ontology=ontology,
    )
    return steps.merge_counts(results)


def build_visual(
    flow_name: str, dataset: str, *, warehouse: str, source: Source, pool: str, synthetic: SyntheticSource,
    audioset: AudioSetSource, text: TextBackends, visual: VisualOptions, run: RunOptions,
) -> dict[str, Any]:
    kind = KINDS[dataset]
    root = steps.resolve_root(warehouse)
    ontology = audioset.ontology if source == "audioset" else None
    synthetic = steps.own_corpus(root, dataset, pool, synthetic)
    counts: dict[str, Any] = {"acquire": steps.acquire(root, source, synthetic, audioset, pool)}
    counts["media"] = media(root, kind, pool, visual, run)
    counts["analyse"] = steps.analyse(root, pool, run, only=set(with_media(root, kind, pool)).__contains__)
    counts["dedup"] = tasks.dedup_clips(root)
    usable = with_media(root, kind, pool, music=True)
    wanted = set(usable)
    counts["caption"] = steps.caption_music(root, pool, text, run, only=wanted.__contains__, ontology=ontology)
    counts["visual_caption"] = caption_media(root, kind, usable, visual, run, ontology)
    counts["dialogue"] = steps.write_dialogues(root, dataset, text, run, ontology=ontology)
    check = tasks.music_disjointness(root, dataset, pool)
    return steps.finish(
        flow_name, root, dataset, pool, run, counts, {"pool": pool},
        music_check=check, allow_music_overlap=visual.allow_music_overlap,
    )
