"""Build shard samples from manifest rows: one function per dataset, each returning a ``Sample``.

Builders take plain manifest rows (dicts keyed by the column names in ``schemas.py``) and the media paths,
validate the JSON through the dataset's pydantic model, and name members by role (see ``sample_schema``).
They never read the warehouse themselves, so the flows, the tests and ``assemble.py`` can feed them rows
from anywhere. MUImage (``input.jpg``) and MUVideo (``input.mp4``) share ``visual_sample``, both with
``output.flac``; a new dataset adds a builder here and its model in ``sample_schema.SAMPLE_MODELS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from m2ugen_data.ids import validate_clip_id, ytid_of
from m2ugen_data.shards.sample_schema import (
    CaptionProvenance,
    CaptionSources,
    ClipProvenance,
    DialogueProvenance,
    Features,
    GptTurn,
    HumanTurn,
    Label,
    MUCapsSample,
    MUEditSample,
    MUImageSample,
    MUVideoSample,
    PairMeasurements,
    VisualInstructionSample,
    VisualMeasurements,
    dump_sample_json,
)
from m2ugen_data.shards.tar_writer import Sample, ShardError, validate_field

Row = Mapping[str, Any]


def muedit_key(src_id: str, tgt_id: str) -> str:
    """``<src_clip_id>__<tgt_clip_id>``: unambiguous because a clip id ends in digits after its 11-char YTID."""
    return f"{validate_clip_id(src_id)}__{validate_clip_id(tgt_id)}"


def media_field(path: Path, role: str | None = None) -> str:
    """WebDataset field for a media file: its extension, prefixed by the role (``input.flac``)."""
    ext = path.suffix[1:].lower()
    return validate_field(f"{role}.{ext}" if role else ext)


def _num(v: Any) -> float | None:
    """NaN/inf become null: JSON has no NaN and a non-finite measurement is no measurement."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _floats(vs: Iterable[Any] | None, digits: int | None = None) -> list[float]:
    out = [f for f in (_num(v) for v in (vs or ())) if f is not None]
    return [round(f, digits) for f in out] if digits is not None else out


def _words(vs: Iterable[str] | None) -> list[str] | None:
    """A measured word list; None (not measured) stays None, unlike an empty list (measured: none)."""
    return None if vs is None else list(vs)


def clip_provenance(clip: Row, segment: Row | None) -> ClipProvenance:
    clip_id = validate_clip_id(clip["clip_id"])
    seg = segment or {}
    return ClipProvenance(
        clip_id=clip_id,
        ytid=ytid_of(clip_id),
        start_s=_num(seg.get("start_s")) if seg else int(clip_id[12:]) / 1000.0,
        end_s=_num(seg.get("end_s")),
        source=seg.get("source"),
        pool=seg.get("pool"),
        audio_sha256=clip.get("sha256"),
        sample_rate=clip.get("sample_rate"),
        duration_s=_num(clip.get("duration_s")),
    )


def music_features(features: Row) -> Features:
    """The music measurements of a ``features`` row (NaN/inf dropped, chroma rounded to what float32 holds)."""
    return Features(
        analyser_version=features["analyser_version"],
        duration_s=_num(features.get("duration_s")),
        tempo_bpm=_num(features.get("tempo_bpm")),
        tempo_conf=_num(features.get("tempo_conf")),
        beats=_floats(features.get("beats")),
        downbeats=_floats(features.get("downbeats")),
        meter=features.get("meter"),
        key=features.get("key"),
        key_conf=_num(features.get("key_conf")),
        loudness_lufs=_num(features.get("loudness_lufs")),
        peak_dbfs=_num(features.get("peak_dbfs")),
        speech_ratio=_num(features.get("speech_ratio")),
        onset_rate=_num(features.get("onset_rate")),
        centroid_hz=_num(features.get("centroid_hz")),
        chroma=_floats(features.get("chroma"), 6),  # float32 in the manifest: 6 digits is all it holds
    )


def caption_provenance(caption: Row) -> CaptionProvenance:
    return CaptionProvenance(backend=caption["backend"], model=caption.get("model"), prompt_hash=caption.get("prompt_hash"))


def _labels(ids: Iterable[str] | None, label_name: Callable[[str], str]) -> list[Label]:
    return [Label(id=i, name=label_name(i)) for i in (ids or ())]


def mucaps_sample(
    *,
    audio: Path,
    clip: Row,
    segment: Row | None,
    features: Row,
    caption: Row,
    label_name: Callable[[str], str] = str,
) -> Sample:
    """A MUCaps sample: ``<clip_id>.flac`` + ``<clip_id>.json`` (caption, labels, features, provenance)."""
    clip_id = validate_clip_id(clip["clip_id"])
    field = media_field(audio)
    seg = segment or {}
    model = MUCapsSample(
        key=clip_id,
        members={"audio": field},
        audio_file=f"{clip_id}{audio.suffix.lower()}",
        caption=_text(caption.get("text"), clip_id, "caption"),
        labels=_labels(seg.get("labels"), label_name),
        instruments=_labels(seg.get("instruments"), label_name),
        genres=_labels(seg.get("genres"), label_name),
        moods=_labels(seg.get("moods"), label_name),
        features=music_features(features),
        provenance=clip_provenance(clip, segment),
        caption_source=caption_provenance(caption),
    )
    return Sample(clip_id, {field: audio, "json": dump_sample_json(model)})


def muedit_sample(
    *,
    pair: Row,
    dialogue: Row,
    src_audio: Path,
    tgt_audio: Path,
    src_clip: Row,
    tgt_clip: Row,
    src_segment: Row | None = None,
    tgt_segment: Row | None = None,
) -> Sample:
    """A MUEdit sample: ``input.flac`` (source music), ``output.flac`` (target music) and the dialogue JSON."""
    key = muedit_key(pair["src_id"], pair["tgt_id"])
    _check_dialogue(dialogue, key, "muedit", pair["src_id"], pair["tgt_id"])
    in_field, out_field = media_field(src_audio, "input"), media_field(tgt_audio, "output")
    model = MUEditSample(
        key=key,
        input_file=f"{pair['src_id']}{src_audio.suffix.lower()}",
        output_file=f"{pair['tgt_id']}{tgt_audio.suffix.lower()}",
        conversation=conversation(dialogue, key, "audio"),
        members={"input": in_field, "output": out_field},
        input=clip_provenance(src_clip, src_segment),
        output=clip_provenance(tgt_clip, tgt_segment),
        dialogue=dialogue_provenance(dialogue),
        pair=PairMeasurements(
            tempo_src=_num(pair.get("tempo_src")),
            tempo_tgt=_num(pair.get("tempo_tgt")),
            tempo_ratio=_num(pair.get("tempo_ratio")),
            meter=pair.get("meter"),
            key_src=pair.get("key_src"),
            key_tgt=pair.get("key_tgt"),
            labels_added=list(pair.get("labels_added") or ()),
            labels_removed=list(pair.get("labels_removed") or ()),
            instruments_added=_words(pair.get("instruments_added")),
            instruments_removed=_words(pair.get("instruments_removed")),
            label_jaccard=_num(pair.get("label_jaccard")),
            timbre_dist=_num(pair.get("timbre_dist")),
            beat_sim=_num(pair.get("beat_sim")),
            score=_num(pair.get("score")),
            miner_version=pair["miner_version"],
        ),
    )
    return Sample(key, {in_field: src_audio, out_field: tgt_audio, "json": dump_sample_json(model)})


VISUAL_MODELS: dict[str, type[VisualInstructionSample]] = {"muimage": MUImageSample, "muvideo": MUVideoSample}


def visual_sample(
    *,
    dataset: str,
    dialogue: Row,
    media: Row,
    media_file: Path,
    audio: Path,
    clip: Row,
    features: Row,
    segment: Row | None = None,
    input_caption: Row | None = None,
    output_caption: Row | None = None,
) -> Sample:
    """A MUImage (``input.jpg``) or MUVideo (``input.mp4``) sample: the frame or normalised clip, the same
    section's music as ``output.flac``, and the dialogue JSON with both captions, the music features, the
    visual measurements and where every part came from. ``input_caption``/``output_caption`` are the caption
    rows whose text the dialogue was written from (provenance only)."""
    model_cls = VISUAL_MODELS.get(dataset)
    if model_cls is None:
        raise ShardError(f"no visual sample model for dataset {dataset!r}; known: {', '.join(VISUAL_MODELS)}")
    key = validate_clip_id(clip["clip_id"])
    _check_dialogue(dialogue, key, dataset, key, key)
    if media.get("clip_id") != key or media.get("kind") != model_cls.modality or media.get("status") != "ok":
        raise ShardError(f"sample {key}: visual media row is not an ok {model_cls.modality} of this clip")
    in_field, out_field = media_field(media_file, "input"), media_field(audio, "output")
    provenance = clip_provenance(clip, segment)
    model = model_cls(
        key=key,
        input_file=f"{key}{media_file.suffix.lower()}",
        output_file=f"{key}{audio.suffix.lower()}",
        conversation=conversation(dialogue, key, model_cls.modality),
        members={"input": in_field, "output": out_field},
        input=provenance,
        output=provenance,
        dialogue=dialogue_provenance(dialogue),
        features=music_features(features),
        visual=VisualMeasurements(
            kind=media["kind"],
            extractor_version=media["extractor_version"],
            width=media.get("width"),
            height=media.get("height"),
            fps=_num(media.get("fps")),
            frames=media.get("frames"),
            duration_s=_num(media.get("duration_s")),
            frame_time_s=_num(media.get("frame_time_s")),
            brightness=_num(media.get("brightness")),
            sharpness=_num(media.get("sharpness")),
            motion=_num(media.get("motion")),
            scene_cuts=media.get("scene_cuts"),
            dominant_colors=list(media.get("dominant_colors") or ()),
        ),
        captions=CaptionSources(
            input=caption_provenance(input_caption) if input_caption else None,
            output=caption_provenance(output_caption) if output_caption else None,
        ),
    )
    return Sample(key, {in_field: media_file, out_field: audio, "json": dump_sample_json(model)})


def conversation(dialogue: Row, key: str, input_modality: str) -> tuple[HumanTurn, GptTurn]:
    """The reference trainer's two turns: the request with the input's caption, the answer with the music's."""
    return (
        HumanTurn(
            value=_text(dialogue.get("human"), key, "human turn"),
            input_modality=input_modality,
            caption=_text(dialogue.get("input_caption"), key, "input caption"),
        ),
        GptTurn(
            value=_text(dialogue.get("gpt"), key, "gpt turn"),
            caption=_text(dialogue.get("output_caption"), key, "output caption"),
        ),
    )


def dialogue_provenance(dialogue: Row) -> DialogueProvenance:
    return DialogueProvenance(
        backend=dialogue["backend"],
        model=dialogue.get("model"),
        prompt_hash=dialogue.get("prompt_hash"),
        attempts=int(dialogue.get("attempts") or 0),
    )


def _check_dialogue(dialogue: Row, key: str, dataset: str, input_id: str, output_id: str) -> None:
    """Only an accepted dialogue of this dataset and these clips may reach a shard."""
    if dialogue.get("status") != "ok":
        raise ShardError(f"sample {key}: dialogue status is {dialogue.get('status')!r}, not 'ok'")
    if dialogue.get("dataset", dataset) != dataset:
        raise ShardError(f"sample {key}: dialogue belongs to dataset {dialogue.get('dataset')!r}, not {dataset!r}")
    if (dialogue.get("input_id"), dialogue.get("output_id")) != (input_id, output_id):
        raise ShardError(f"sample {key}: dialogue belongs to {dialogue.get('input_id')}->{dialogue.get('output_id')}")


def _text(value: Any, key: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ShardError(f"sample {key}: empty {what}")
    return value.strip()
