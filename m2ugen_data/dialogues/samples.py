"""Dialogue samples: what each dataset's two turns are written from.

MUEdit samples carry the measured difference between the source and target clip, so every writer (template
or LLM) and the validator work from the same facts; MUImage/MUVideo samples carry the visual caption and
the music caption. Builders read the warehouse and report, per reason, the samples they could not build.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from m2ugen_data.facts.measured import (
    LabelNamer,
    MusicFacts,
    facts_from_rows,
    join_words,
    label_names,
    tempo_change_word,
    voice_name,
)
from m2ugen_data.facts.rules import KINDS
from m2ugen_data.factcheck.heard import Heard, measured_tempo, tag_evidence
from m2ugen_data.warehouse import Warehouse

DATASETS = ("muedit", "muimage", "muvideo")
VISUAL_MODALITY = {"muimage": "image", "muvideo": "video"}

Words = tuple[str, ...]


@dataclass(frozen=True)
class EditDiff:
    """What changed from the source to the target clip of a MUEdit pair, as far as it may be said.

    "Instruments" are the sound sources an edit adds or removes: the measured instruments, the measured
    voice ("female vocals", "vocals"; a request names it like an instrument, so the validator accepts it by
    the same terms) and AudioSet labels where the label rule lets them speak. Tempo and key are the
    clips' confident measurements.
    """

    added_instruments: Words = ()
    removed_instruments: Words = ()
    added_genres: Words = ()
    removed_genres: Words = ()
    added_moods: Words = ()
    removed_moods: Words = ()
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
        """A terse factual line for LLM prompts: 'add piano; remove drums; tempo 96 -> 120 BPM (faster)'."""
        parts = [f"add {join_words(self.added_instruments)}"] if self.added_instruments else []
        if self.removed_instruments:
            parts.append(f"remove {join_words(self.removed_instruments)}")
        if self.tempo_change:
            parts.append(f"tempo {round(self.tempo_src)} -> {round(self.tempo_tgt)} BPM ({self.tempo_change})")
        if self.key_changed:
            parts.append(f"key {self.key_src} -> {self.key_tgt}")
        if self.added_moods:
            parts.append(f"mood becomes {join_words(self.added_moods)}{_was(self.removed_moods)}")
        if self.added_genres:
            parts.append(f"style becomes {join_words(self.added_genres)}{_was(self.removed_genres)}")
        return "; ".join(parts) if parts else "no measured change"


def _was(words: Words) -> str:
    return f" (was {join_words(words)})" if words else ""


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
    target_heard: Heard | None = None  # what the claim checker reads (None: the facts alone)
    source_heard: Heard | None = None  # muedit: the input music's
    input_backend: str | None = None  # muimage/muvideo: who wrote input_caption ("grounded", "blip", ...)
    media: Mapping[str, Any] | None = field(default=None, compare=False)  # muimage/muvideo: its visual_media row

    @property
    def visual(self) -> str | None:
        return VISUAL_MODALITY.get(self.dataset)


def _unique(*groups: Words) -> Words:
    return tuple(dict.fromkeys(w for g in groups for w in g))


def _measured_change(kind: str, pair: Mapping[str, Any], src: MusicFacts, tgt: MusicFacts) -> tuple[Words, Words]:
    """Measured words gained and lost: the pair's own instrument columns when the miner filled them, else
    the difference of the two clips' measured sets; nothing when either clip was not measured."""
    mined = pair.get("instruments_added"), pair.get("instruments_removed")
    if kind == "instruments" and mined[0] is not None and mined[1] is not None:
        return tuple(mined[0]), tuple(mined[1])
    a, b = getattr(src, kind), getattr(tgt, kind)
    if a is None or b is None:
        return (), ()
    return tuple(w for w in b if w not in a), tuple(w for w in a if w not in b)


def voice_change(src: str | None, tgt: str | None) -> tuple[Words, Words]:
    """Voices gained and lost between two measured vocals words. Unknown (None) on either side, or a vague
    'vocal' against a gendered one, is no measured change."""
    s, t = voice_name(src), voice_name(tgt)
    if src is None or tgt is None or src == tgt or (s and t and "vocal" in (src, tgt)):
        return (), ()
    return ((t,) if t else ()), ((s,) if s else ())


def edit_diff(
    pair: Mapping[str, Any],
    src: MusicFacts,
    tgt: MusicFacts,
    src_seg: Mapping[str, Any],
    tgt_seg: Mapping[str, Any],
    namer: LabelNamer,
) -> EditDiff:
    """The sayable difference of a pair: measured changes first, then the pair's label changes that the
    label rule lets each clip's facts say (a label never overrides a measurement), then the voice."""
    labels_added, labels_removed = set(pair.get("labels_added") or ()), set(pair.get("labels_removed") or ())

    def labelled(mids: set[str], seg: Mapping[str, Any], facts: MusicFacts, kind: str) -> Words:
        names = label_names([m for m in seg.get(kind) or () if m in mids], namer, drop_music=kind != "instruments")
        return tuple(n for n in names if n in getattr(facts, f"labelled_{kind}"))

    changes: dict[str, tuple[Words, Words]] = {}
    for kind in KINDS:
        added, removed = _measured_change(kind, pair, src, tgt)
        changes[kind] = (
            _unique(added, labelled(labels_added, tgt_seg, tgt, kind)),
            _unique(removed, labelled(labels_removed, src_seg, src, kind)),
        )
    voice_added, voice_removed = voice_change(src.vocals, tgt.vocals)
    return EditDiff(
        added_instruments=_unique(changes["instruments"][0], voice_added),
        removed_instruments=_unique(changes["instruments"][1], voice_removed),
        added_genres=changes["genres"][0],
        removed_genres=changes["genres"][1],
        added_moods=changes["moods"][0],
        removed_moods=changes["moods"][1],
        tempo_src=src.tempo_bpm,
        tempo_tgt=tgt.tempo_bpm,
        key_src=src.key,
        key_tgt=tgt.key,
    )


def _heard(facts: MusicFacts, features: Mapping[str, Any] | None) -> Heard:
    return Heard(facts, tag_evidence(features) if features else None, measured=features is not None,
                 tempo=measured_tempo(features))


def _rows(table, key: str = "clip_id") -> dict[str, dict]:
    return {r[key]: r for r in table.to_pylist()}


def _caption_rows(wh: Warehouse, modality: str, backend: str | None) -> dict[str, tuple[str, str]]:
    """item id -> (text, backend) of the newest caption of ``modality`` (by ``backend`` when given)."""
    where = f"modality = '{modality}' AND text IS NOT NULL"
    if backend:
        where += f" AND backend = '{backend.replace(chr(39), chr(39) * 2)}'"
    table = wh.read("captions", where=where).sort_by([("created_at", "ascending")])
    cols = (table.column(c).to_pylist() for c in ("item_id", "text", "backend"))
    return {item: (text, by) for item, text, by in zip(*cols, strict=True)}


def _captions(wh: Warehouse, modality: str, backend: str | None) -> dict[str, str]:
    return {item: text for item, (text, _) in _caption_rows(wh, modality, backend).items()}


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
        src_facts = facts_from_rows(src, features.get(src), src_seg, namer)
        tgt_facts = facts_from_rows(tgt, features.get(tgt), tgt_seg, namer)
        samples.append(
            DialogueSample(
                dataset="muedit",
                sample_id=f"{src}__{tgt}",
                input_id=src,
                output_id=tgt,
                input_caption=captions[src],
                output_caption=captions[tgt],
                target=tgt_facts,
                diff=edit_diff(p, src_facts, tgt_facts, src_seg, tgt_seg, namer),
                target_heard=_heard(tgt_facts, features.get(tgt)),
                source_heard=_heard(src_facts, features.get(src)),
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
    visual = _caption_rows(wh, modality, None)
    media = _rows(wh.read("visual_media", where=f"kind = '{modality}' AND status = 'ok'"))
    samples, skipped = [], Counter()
    for clip_id in sorted(segments):
        if clip_id not in visual:
            skipped[f"missing_{modality}_caption"] += 1
        elif clip_id not in music:
            skipped["missing_caption"] += 1
        else:
            facts = facts_from_rows(clip_id, features.get(clip_id), segments[clip_id], namer)
            samples.append(
                DialogueSample(
                    dataset=dataset,
                    sample_id=clip_id,
                    input_id=clip_id,
                    output_id=clip_id,
                    input_caption=visual[clip_id][0],
                    output_caption=music[clip_id],
                    target=facts,
                    target_heard=_heard(facts, features.get(clip_id)),
                    input_backend=visual[clip_id][1],
                    media=media.get(clip_id),
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
