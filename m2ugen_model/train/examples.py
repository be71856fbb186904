"""Turn one shard sample into one training example for a given stage (prompt, answer, media, target).

The stages differ only in what they ask of the same samples (M2UGen paper, section 4):
1. X-to-text: the input media with an instruction to describe it; the answer is its caption.
2. text-to-music: the caption as the request; the answer ends with the [AUD] tokens and the MSE target is
   that caption's decoder embedding.
3. instruction following: the dialogue as written (MUEdit/MUImage/MUVideo), or an Alpaca-style record.
Precomputed members, used instead of running the frozen models when present (names fit the shard writer's
field rules): ``input.feats.npy`` / ``feats.npy`` = the input media's encoder output (tokens x width),
``target.npy`` = the music decoder's text embedding of the output caption (the MSE target).
A sample that cannot serve the stage raises ``SkipSample`` with a short reason the stream counts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from m2ugen_model.train.media import (
    AUDIO_EXTS,
    IMAGE_EXTS,
    VIDEO_EXTS,
    MediaError,
    MediaSpec,
    decode_audio,
    decode_image,
    decode_npy,
    decode_video,
)

AUD_TOKENS = "".join(f"[AUD{i}]" for i in range(8))

# The released M2UGen/LLaMA-Adapter prompt template (the checkpoints were trained with it).
PROMPT_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{instruction}\n\n### Response:"
)
DESCRIBE = {
    "audio": ("Describe the music in detail.", "What does this music sound like?", "Write a caption for this music."),
    "image": ("Describe the image in detail.", "What is shown in this image?", "Write a caption for this image."),
    "video": ("Describe the video in detail.", "What happens in this video?", "Write a caption for this video."),
}
GENERATE = ("Generate a music that is {c}", "Compose a music: {c}", "Make a music that is {c}")
MEDIA_EXTS = {"audio": AUDIO_EXTS, "image": IMAGE_EXTS, "video": VIDEO_EXTS}


class SkipSample(Exception):
    """This sample cannot be used for this stage; the message is the counter's reason."""


@dataclass
class Example:
    key: str
    dataset: str
    prompt: str
    answer: str
    modality: str | None = None
    media: np.ndarray | None = None
    feats: np.ndarray | None = None
    target_caption: str | None = None
    target_embeds: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _pick(options: tuple[str, ...], key: str) -> str:
    """A template chosen by the sample key, so the same sample always gets the same prompt (exact resume)."""
    return options[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(options)]


def _meta(sample: dict) -> dict:
    raw = sample.get("json")
    if raw is None:
        raise SkipSample("missing_json")
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SkipSample("bad_json") from exc
    if not isinstance(meta, dict):
        raise SkipSample("bad_json")
    return meta


def _media_member(sample: dict, modality: str) -> bytes | None:
    """The input media: ``input.<ext>`` (paired samples) or a bare ``<ext>`` (single-media samples)."""
    for ext in MEDIA_EXTS[modality]:
        for name in (f"input.{ext}", ext):
            if name in sample:
                return sample[name]
    return None


def _load_media(sample: dict, modality: str, spec: MediaSpec) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Precomputed encoder features when the shard has them, else the decoded media (encoded on the fly)."""
    for name in ("input.feats.npy", "feats.npy"):
        if name in sample:
            try:
                return None, decode_npy(sample[name])
            except MediaError as exc:
                raise SkipSample("bad_features") from exc
    data = _media_member(sample, modality)
    if data is None:
        raise SkipSample(f"missing_{modality}")
    decode = {"audio": decode_audio, "image": decode_image, "video": decode_video}[modality]
    try:
        return decode(data, spec), None
    except MediaError as exc:
        raise SkipSample(f"bad_{modality}") from exc


def _target_embeds(sample: dict) -> np.ndarray | None:
    for name in ("target.npy",):
        if name in sample:
            try:
                return decode_npy(sample[name])
            except MediaError as exc:
                raise SkipSample("bad_features") from exc
    return None


def _turns(meta: dict) -> tuple[dict, dict] | None:
    conv = meta.get("conversation")
    if not isinstance(conv, list) or len(conv) < 2 or not all(isinstance(t, dict) for t in conv[:2]):
        return None
    return conv[0], conv[1]


def _input_caption(meta: dict) -> tuple[str | None, str | None]:
    """(modality, caption) of the sample's input: a MUCaps caption is music, a dialogue says its modality."""
    turns = _turns(meta)
    if turns is not None:
        return turns[0].get("input_modality"), turns[0].get("caption")
    if isinstance(meta.get("caption"), str):
        return "audio", meta["caption"]
    return None, None


def _music_caption(meta: dict) -> str | None:
    turns = _turns(meta)
    if turns is not None:
        return turns[1].get("caption") if turns[1].get("output_modality") == "audio" else None
    return meta.get("caption") if isinstance(meta.get("caption"), str) else None


def to_example(sample: dict, dataset: str, stage: int, spec: MediaSpec) -> Example:
    meta = _meta(sample)
    key = sample["__key__"]
    if stage == 1:
        modality, caption = _input_caption(meta)
        if modality not in MEDIA_EXTS or not caption:
            raise SkipSample("no_caption")
        media, feats = _load_media(sample, modality, spec)
        return Example(key, dataset, PROMPT_TEMPLATE.format(instruction=_pick(DESCRIBE[modality], key)),
                       caption, modality, media, feats)
    if stage == 2:
        caption = _music_caption(meta)
        if not caption:
            raise SkipSample("no_caption")
        instruction = _pick(GENERATE, key).format(c=caption)
        return Example(key, dataset, PROMPT_TEMPLATE.format(instruction=instruction),
                       f"Here is a music that is {caption} {AUD_TOKENS}", target_caption=caption,
                       target_embeds=_target_embeds(sample))
    return _instruction_example(sample, meta, key, dataset, spec)


def _instruction_example(sample: dict, meta: dict, key: str, dataset: str, spec: MediaSpec) -> Example:
    turns = _turns(meta)
    if turns is None:
        if isinstance(meta.get("instruction"), str) and isinstance(meta.get("output"), str):  # Alpaca records
            instruction = "\n\n".join(p for p in (meta["instruction"], meta.get("input") or "") if p)
            return Example(key, dataset, PROMPT_TEMPLATE.format(instruction=instruction), meta["output"])
        return to_example(sample, dataset, 1, spec)  # a plain captioned clip: MusicQA-style description
    human, gpt = turns
    if not isinstance(human.get("value"), str) or not isinstance(gpt.get("value"), str):
        raise SkipSample("bad_conversation")
    modality = human.get("input_modality")
    media = feats = None
    if modality in MEDIA_EXTS:
        media, feats = _load_media(sample, modality, spec)
    else:
        modality = None
    answer, target = gpt["value"], None
    if gpt.get("output_modality") == "audio":
        target = gpt.get("caption")
        if not target:
            raise SkipSample("no_caption")
        answer = f"{answer} {AUD_TOKENS}"
    return Example(key, dataset, PROMPT_TEMPLATE.format(instruction=human["value"]), answer, modality, media,
                   feats, target, _target_embeds(sample) if target else None)
