"""The default captioner: a fluent caption written only from what was measured and labelled.

It needs no model and is deterministic, and every claim in it can be traced to a number or a label, which
MU-LLaMA's captions cannot. Each sentence slot has several phrasings and the slot order varies; the choice
is a digest of the clip id, so a corpus reads varied while a rerun writes the same text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from m2ugen_data.captions import CaptionItem
from m2ugen_data.captions.facts import (
    SPEECH_RATIO_MIN,
    MusicFacts,
    choose,
    density_word,
    join_words,
    loudness_word,
    meter_phrase,
    tempo_word,
)

VERSION = "grounded-v1"  # bump when phrasing changes: it is part of the prompt hash, so caches redo


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def style_phrase(facts: MusicFacts) -> str:
    """'happy rock', 'tender', '' (mood words before genre words)."""
    return " ".join([join_words(facts.moods[:2]), join_words(facts.genres[:2])]).strip()


def _opening(f: MusicFacts) -> str:
    style = style_phrase(f)
    piece = f"{style} piece" if style else "piece"
    track = f"{style} track" if style else "track"
    if f.instruments:
        inst = join_words(f.instruments)
        options = [
            f"{_cap(_article(piece))} featuring {inst}.",
            f"This is {_article(track)} played on {inst}.",
            f"{_cap(inst)} carry this {piece}." if len(f.instruments) > 1 else f"{_cap(inst)} carries this {piece}.",
            f"The music features {inst}" + (f" in {_article(style)} style." if style else "."),
            f"{_cap(_article(piece))} built around {inst}.",
        ]
    else:
        options = [
            f"{_cap(_article(piece))} of music.",
            f"This is {_article(track)}.",
            f"The clip is {_article(piece)}." if style else "The clip is a piece of music.",
        ]
    return choose(options, f.clip_id, "opening")


def _rhythm(f: MusicFacts) -> str | None:
    if f.tempo_bpm is None:
        return None
    bpm, tw = round(f.tempo_bpm), tempo_word(f.tempo_bpm)
    meter = f" {meter_phrase(f.meter)}" if f.meter else ""
    options = [
        f"It moves at {_article(tw)} tempo of about {bpm} BPM{meter}.",
        f"The tempo is {tw}, around {bpm} BPM{meter}.",
        f"At roughly {bpm} BPM{meter}, the pace feels {tw}.",
        f"It has {_article(tw)} pulse of {bpm} BPM{meter}.",
    ]
    return choose(options, f.clip_id, "rhythm")


def _tonality(f: MusicFacts) -> str | None:
    if not f.key:
        return None
    options = [
        f"The piece is in {f.key}.",
        f"It is played in {f.key}.",
        f"The harmony centres on {f.key}.",
        f"It sits in the key of {f.key}.",
    ]
    return choose(options, f.clip_id, "key")


def _dynamics(f: MusicFacts) -> str | None:
    lw = loudness_word(f.loudness_lufs) if f.loudness_lufs is not None else None
    dw = density_word(f.onset_rate) if f.onset_rate is not None else None
    if lw and dw:
        options = [
            f"The sound is {lw} with a {dw} rhythmic texture.",
            f"Overall it is {lw}, and the note onsets are {dw}.",
            f"Its dynamics are {lw} and the texture is {dw}.",
        ]
    elif lw:
        options = [f"The sound is {lw}.", f"Overall the level is {lw}."]
    elif dw:
        options = [f"The rhythmic texture is {dw}.", f"The note onsets are {dw}."]
    else:
        return None
    return choose(options, f.clip_id, "dynamics")


def _speech(f: MusicFacts) -> str | None:
    if f.speech_ratio is None or f.speech_ratio < SPEECH_RATIO_MIN:
        return None
    options = [
        "A speaking voice can be heard over the music.",
        "Spoken words appear in parts of the clip.",
        "There is speech on top of the music.",
    ]
    return choose(options, f.clip_id, "speech")


_ORDERS = ((0, 1, 2), (1, 0, 2), (0, 2, 1), (2, 0, 1))


def grounded_caption(facts: MusicFacts) -> str:
    body = [_rhythm(facts), _tonality(facts), _dynamics(facts)]
    order = choose(_ORDERS, facts.clip_id, "order")
    sentences = [_opening(facts), *(body[i] for i in order), _speech(facts)]
    return " ".join(s for s in sentences if s)


class GroundedCaptioner:
    backend = "grounded"
    model = VERSION

    def prompt_hash(self, item: CaptionItem) -> str:
        return hashlib.sha256(f"{self.backend}\x1f{self.model}\x1f{item.facts.fingerprint()}".encode()).hexdigest()[:16]

    def caption_batch(self, items: Sequence[CaptionItem]) -> list[str]:
        return [grounded_caption(item.facts) for item in items]
