"""Gather what a captioner needs per clip from the warehouse: features, segment labels, audio path."""

from __future__ import annotations

from m2ugen_data.captions import CaptionItem
from m2ugen_data.facts.measured import LabelNamer, facts_from_rows
from m2ugen_data.factcheck.heard import measured_tempo, tag_evidence
from m2ugen_data.warehouse import Warehouse


def _by_clip(table) -> dict[str, dict]:
    return {row["clip_id"]: row for row in table.to_pylist()}


def caption_items(wh: Warehouse, namer: LabelNamer, pool: str | None = None) -> list[CaptionItem]:
    """One item per clip whose analysis succeeded (optionally only clips of one ``pool``), in id order."""
    features = _by_clip(wh.read("features", where="status = 'ok'"))
    seg_where = f"pool = '{pool.replace(chr(39), chr(39) * 2)}'" if pool else None
    segments = _by_clip(wh.read("segments", where=seg_where))
    clips = _by_clip(wh.read("clips", where="status = 'ok'"))
    ids = sorted(features.keys() & segments.keys()) if pool else sorted(features)
    items = []
    for clip_id in ids:
        audio = (clips.get(clip_id) or {}).get("audio_path")
        items.append(
            CaptionItem(
                item_id=clip_id,
                facts=facts_from_rows(clip_id, features[clip_id], segments.get(clip_id), namer),
                audio_path=wh.abspath(audio) if audio else None,
                tag_evidence=tag_evidence(features[clip_id]),
                tempo=measured_tempo(features[clip_id]),
            )
        )
    return items
