"""The sample table: each sample's media (copied beside the page) and the text a reader wants next to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from m2ugen_data.report import media
from m2ugen_data.report.queries import DatasetStats
from m2ugen_data.warehouse import Warehouse


def _media(kind: str, label: str, src: str | None) -> dict[str, Any]:
    return {"kind": kind, "label": label, "src": src}


def _text(value: object) -> str:
    """One line of text (captions and turns may hold newlines; a table cell or list item may not)."""
    return "" if value is None else " ".join(str(value).split())


def _words(values: list[str] | None) -> str:
    return ", ".join(values) if values else "none measured"


def display_samples(wh: Warehouse, stats: DatasetStats, media_dir: Path) -> list[dict[str, Any]]:
    """``[{id, media: [{kind, label, src}], fields: [(label, text)]}]`` with media paths relative to the page."""
    name, out = stats.spec.name, []
    for row in stats.samples:
        if name == "mucaps":
            clip = row["clip_id"]
            tempo = f"{row['tempo_bpm']:.0f} BPM" if row["tempo_bpm"] is not None else "tempo unknown"
            out.append({
                "id": clip,
                "media": [_media("audio", "music", media.audio_excerpt(wh, row["audio_path"], clip, media_dir))],
                "fields": [("measured", f"{tempo}, {row['meter']} beats per bar, {row['key']}"),
                           ("instruments", _words(row["instruments"])), ("caption", row["caption"])],
            })
        elif name == "muedit":
            src, tgt = row["sample_id"].split("__", 1)
            out.append({
                "id": row["sample_id"],
                "media": [_media("audio", "source", media.audio_excerpt(wh, row["src_audio"], src, media_dir)),
                          _media("audio", "target", media.audio_excerpt(wh, row["tgt_audio"], tgt, media_dir))],
                "fields": [("instruction", row["human"]), ("response", row["gpt"]),
                           ("tempo ratio", f"{row['tempo_ratio']:.3f}" if row["tempo_ratio"] is not None else "unknown"),
                           ("harmony similarity", f"{row['harmony_sim']:.2f}" if row["harmony_sim"] is not None else "unknown"),
                           ("instruments added / removed", f"{_words(row['instruments_added'])} / {_words(row['instruments_removed'])}")],
            })
        else:
            kind, clip = stats.spec.visual_kind, row["clip_id"]
            path = wh.abspath(media.visual_relpath(kind, clip)) if row["media_status"] == "ok" else None
            thumb = media.image_thumbnail(path, clip, media_dir) if kind == "image" else media.video_thumbnail(path, clip, media_dir)
            out.append({
                "id": row["sample_id"],
                "media": [_media("image", "image" if kind == "image" else "video (middle frame)", thumb),
                          _media("audio", "music", media.audio_excerpt(wh, row["audio_path"], clip, media_dir))],
                "fields": [(f"{kind} caption", row["visual_caption"]), ("music caption", row["music_caption"]),
                           ("human", row["human"]), ("gpt", row["gpt"])],
            })
    for sample in out:
        sample["fields"] = [(label, _text(text)) for label, text in sample["fields"]]
    return out
