"""Dialogue samples: what each dataset's two turns are written from.

MUEdit samples carry the measured difference between the source and target clip, so every writer (template
or LLM) and the validator work from the same facts; MUImage/MUVideo samples carry the visual caption and
the music caption. Builders read the warehouse and report, per reason, the samples they could not build.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from m2ugen_data.captions.facts import (
    LabelNamer,
    MusicFacts,
    facts_from_rows,
    join_words,
    label_names,
    tempo_change_word,
)
from m2ugen_data.warehouse import Warehouse

DATASETS = ("muedit", "muimage", "muvideo")
VISUAL_MODALITY = {"muimage": "image", "muvideo": "video"}


@dataclass(frozen=True)
class EditDiff:
    """Measured differences from the source to the target clip of a MUEdit pair (label names lowercased)."""

    added_instruments: tuple[str, ...] = ()
    removed_instruments: tuple[str, ...] = ()
    added_genres: tuple[str, ...] = ()
    removed_genres: tuple[str, ...] = ()
    added_moods: tuple[str, ...] = ()
    removed_moods: tuple[str, ...] = ()
    tempo_src: float | None = None
    tempo_tgt: float | None = None
    key_src: str | None = None
    key_tgt: str | None = None

    @property
    def tempo_change(self) -> str | None:
        return tempo_change_word(self.tempo_src, self.tempo_tgt)

    @property
    def key_changed(self) -> bool:
        return bool(self.key_src and self.key_tgt and self.key_src != self.key_tgt)

    def describe(self) -> str:
        """A terse factual line for LLM prompts: 'add piano; remove drum kit; tempo 96 -> 120 BPM (faster)'."""
        parts = [f"add {join_words(self.added_instruments)}"] if self.added_instruments else []
        if self.removed_instruments:
            parts.append(f"remove {join_words(self.removed_instruments)}")
        if self.tempo_change:
            parts.append(f"tempo {round(self.tempo_src)} -> {round(self.tempo_tgt)} BPM ({self.tempo_change})")
        if self.key_changed:
            parts.append(f"key {self.key_src} -> {self.key_tgt}")
        if self.added_moods:
            parts.append(f"mood becomes {join_words(self.added_moods)}")
        if self.added_genres:
            parts.append(f"style becomes {join_words(self.added_genres)}")
        return "; ".join(parts) if parts else "no measured change"


@dataclass(frozen=True)
class DialogueSample:
    dataset: str  # muedit | muimage | muvideo
    sample_id: str
    input_id: str
    output_id: str
    input_caption: str  # muedit: the source music caption; muimage/muvideo: the image/video caption
    output_caption: str  # the music caption of the output clip
    target: MusicFacts  # facts of the output music
    diff: EditDiff | None = None  # muedit only

    @property
    def visual(self) -> str | None:
        return VISUAL_MODALITY.get(self.dataset)


def edit_diff(
    pair: Mapping[str, Any], src_seg: Mapping[str, Any], tgt_seg: Mapping[str, Any], namer: LabelNamer
) -> EditDiff:
    """Classify the pair's added/removed labels as instruments, genres or moods by the clips' segment lists."""
    added, removed = set(pair.get("labels_added") or ()), set(pair.get("labels_removed") or ())

    def pick(mids: set[str], seg: Mapping[str, Any], col: str) -> tuple[str, ...]:
        return label_names([m for m in seg.get(col) or () if m in mids], namer, drop_music=col != "instruments")

    return EditDiff(
        added_instruments=pick(added, tgt_seg, "instruments"),
        removed_instruments=pick(removed, src_seg, "instruments"),
        added_genres=pick(added, tgt_seg, "genres"),
        removed_genres=pick(removed, src_seg, "genres"),
        added_moods=pick(added, tgt_seg, "moods"),
        removed_moods=pick(removed, src_seg, "moods"),
        tempo_src=pair.get("tempo_src"),
        tempo_tgt=pair.get("tempo_tgt"),
        key_src=pair.get("key_src"),
        key_tgt=pair.get("key_tgt"),
    )


def _rows(table, key: str = "clip_id") -> dict[str, dict]:
    return {r[key]: r for r in table.to_pylist()}


def _captions(wh: Warehouse, modality: str, backend: str | None) -> dict[str, str]:
    where = f"modality = '{modality}' AND text IS NOT NULL"
    if backend:
        where += f" AND backend = '{backend.replace(chr(39), chr(39) * 2)}'"
    table = wh.read("captions", where=where).sort_by([("created_at", "ascending")])
    return dict(zip(table.column("item_id").to_pylist(), table.column("text").to_pylist(), strict=True))


def muedit_samples(
    wh: Warehouse, namer: LabelNamer, caption_backend: str | None = "grounded"
) -> tuple[list[DialogueSample], Counter[str]]:
    """One sample per mined pair whose two clips have captions; skipped pairs counted by reason."""
    pairs = wh.read("pairs").to_pylist()
    segments = _rows(wh.read("segments"))
    features = _rows(wh.read("features", where="status = 'ok'"))
    captions = _captions(wh, "audio", caption_backend)
    samples, skipped = [], Counter()
    for p in sorted(pairs, key=lambda r: (r["src_id"], r["tgt_id"])):
        src, tgt = p["src_id"], p["tgt_id"]
        if src not in captions or tgt not in captions:
            skipped["missing_caption"] += 1
            continue
        src_seg, tgt_seg = segments.get(src, {}), segments.get(tgt, {})
        samples.append(
            DialogueSample(
                dataset="muedit",
                sample_id=f"{src}__{tgt}",
                input_id=src,
                output_id=tgt,
                input_caption=captions[src],
                output_caption=captions[tgt],
                target=facts_from_rows(tgt, features.get(tgt), tgt_seg, namer),
                diff=edit_diff(p, src_seg, tgt_seg, namer),
            )
        )
    return samples, skipped


def visual_samples(
    wh: Warehouse, dataset: str, namer: LabelNamer, caption_backend: str | None = "grounded"
) -> tuple[list[DialogueSample], Counter[str]]:
    """MUImage/MUVideo: one sample per clip of the dataset's pool with a visual and a music caption."""
    modality = VISUAL_MODALITY[dataset]
    segments = _rows(wh.read("segments", where=f"pool = '{dataset}'"))
    features = _rows(wh.read("features", where="status = 'ok'"))
    music = _captions(wh, "audio", caption_backend)
    visual = _captions(wh, modality, None)
    samples, skipped = [], Counter()
    for clip_id in sorted(segments):
        if clip_id not in visual:
            skipped[f"missing_{modality}_caption"] += 1
        elif clip_id not in music:
            skipped["missing_caption"] += 1
        else:
            samples.append(
                DialogueSample(
                    dataset=dataset,
                    sample_id=clip_id,
                    input_id=clip_id,
                    output_id=clip_id,
                    input_caption=visual[clip_id],
                    output_caption=music[clip_id],
                    target=facts_from_rows(clip_id, features.get(clip_id), segments[clip_id], namer),
                )
            )
    return samples, skipped


def load_samples(
    wh: Warehouse, dataset: str, namer: LabelNamer, caption_backend: str | None = "grounded"
) -> tuple[Sequence[DialogueSample], Counter[str]]:
    if dataset == "muedit":
        return muedit_samples(wh, namer, caption_backend)
    if dataset in VISUAL_MODALITY:
        return visual_samples(wh, dataset, namer, caption_backend)
    from m2ugen_data.errors import M2UGenError

    raise M2UGenError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
