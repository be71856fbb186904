"""The default captioner: a fluent caption written only from what was measured (and labels that may add).

It needs no model and is deterministic, and every claim in it can be traced to a column, which MU-LLaMA's
captions cannot: ``claims`` lists each statement with the column that backs it, the sentences are written
from those claims alone, and the same claims are stored as the caption's evidence. Each sentence slot has
several phrasings and the slot order varies; the choice is a digest of the clip id, so a corpus reads
varied while a rerun writes the same text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from m2ugen_data.captions import CaptionItem
from m2ugen_data.facts.measured import (
    MusicFacts,
    article,
    choose,
    chord_change_word,
    density_word,
    is_plural,
    join_words,
    loudness_word,
    meter_phrase,
    proper,
    tempo_word,
    voice_name,
)
from m2ugen_data.facts.rules import KINDS

VERSION = "grounded-v4"  # bump when phrasing changes: it is part of the prompt hash, so caches redo


@dataclass(frozen=True)
class Claim:
    """One statement of a caption: the column that backs it, its value, and the confidence its rule tested."""

    source: str  # "features.tempo_bpm", "segments.instruments"
    value: Any
    conf: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"source": self.source, "value": _jsonable(self.value)}
        return out if self.conf is None else out | {"conf": round(self.conf, 3)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return round(value, 3) if isinstance(value, float) else value


Claims = dict[str, Claim]


def claims(f: MusicFacts) -> Claims:
    """Every statement the caption of ``f`` makes, by slot. The sentences read only these, so the evidence
    names the backing column of every phrase and a slot that is absent here is absent from the text."""
    c: Claims = {}
    for kind in KINDS:
        if getattr(f, kind):
            c[kind] = Claim(f"features.{kind}", getattr(f, kind))
        if getattr(f, f"labelled_{kind}"):
            c[f"labelled_{kind}"] = Claim(f"segments.{kind}", getattr(f, f"labelled_{kind}"))
    if f.vocals:
        c["vocals"] = Claim("features.vocals", f.vocals)
    if f.tempo_bpm is not None:
        c["tempo"] = Claim("features.tempo_bpm", f.tempo_bpm, f.tempo_prob)
        if f.meter:
            c["meter"] = Claim("features.meter", f.meter)
    elif f.pace_word:  # the octave is unsure: a word true at both plausible tempi, never a number
        c["pace"] = Claim("features.tempo_bpm", f.pace_word, f.tempo_prob)
    if f.key:
        c["key"] = Claim("features.key", f.key, f.key_conf)
    if f.chords:
        c["chords"] = Claim("features.beat_chords", f.chords, f.chord_coverage)
        if f.chord_change_rate is not None and len(f.chords) > 1:
            c["chord_changes"] = Claim("features.chord_change_rate", f.chord_change_rate)
    if f.loudness_lufs is not None:
        c["loudness"] = Claim("features.loudness_lufs", f.loudness_lufs)
    if f.onset_rate is not None:
        c["density"] = Claim("features.onset_rate", f.onset_rate)
    if f.has_speech:
        c["speech"] = Claim("features.speech_ratio", f.speech_ratio)
    return c


def _said(c: Claims, kind: str) -> tuple[str, ...]:
    """Measured then labelled words of one kind, as claimed."""
    return tuple(w for slot in (kind, f"labelled_{kind}") if slot in c for w in c[slot].value)


def _value(c: Claims, slot: str) -> Any:
    return c[slot].value if slot in c else None


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def style_phrase(moods: Sequence[str], genres: Sequence[str], *, instrumental: bool = False) -> str:
    """'happy rock', 'mellow, sad instrumental jazz', 'tender', '' (mood words, then genre words).

    Moods are coordinate adjectives (a comma between them), genres are joined with "and", so two of each
    never read "sad and chill techno and new age".
    """
    parts = [", ".join(moods), "instrumental" if instrumental else "", join_words([proper(g) for g in genres])]
    return " ".join(p for p in parts if p)


# Each slot below returns its candidate sentences (none when it has nothing to say); grounded_caption picks
# one per slot.


def _opening(c: Claims) -> list[str]:
    moods, genres = _said(c, "moods"), _said(c, "genres")
    instrumental = _value(c, "vocals") == "instrumental"
    style = style_phrase(moods, genres, instrumental=instrumental)
    piece, track = f"{style} piece".lstrip(), f"{style} track".lstrip()
    instruments, voice = _said(c, "instruments"), voice_name(_value(c, "vocals"))
    sources = [*instruments, *([voice] if voice else [])]
    if not sources:
        if not style:
            return ["A piece of music.", "This is a piece of music.", "The clip is a piece of music."]
        return [f"{_cap(article(piece))}.", f"This is {article(track)}.", f"The clip is {article(piece)}."]
    src = join_words(sources)
    verb = "carry" if len(sources) > 1 or is_plural(sources[0]) else "carries"
    with_voice = f"with {voice}" if voice else ""
    played = f"played on {join_words(instruments)}" + (f", {with_voice}" if voice else "") if instruments else with_voice
    options = [
        f"{_cap(article(piece))} featuring {src}.",
        f"This is {article(track)} {played}.",
        f"{_cap(src)} {verb} this {piece}.",
        f"{_cap(article(piece))} built around {src}.",
    ]
    if not instrumental:
        options.append(f"The music features {src}" + (f" in {article(style)} style." if style else "."))
    return options


def _rhythm(c: Claims) -> list[str]:
    if "pace" in c:
        word = c["pace"].value
        return [f"The pace feels {word}.", f"It moves at {article(word)} pace.", f"The tempo is {word}."]
    if "tempo" not in c:
        return []
    bpm, tw = round(c["tempo"].value), tempo_word(c["tempo"].value)
    meter = f" {meter_phrase(c['meter'].value)}" if "meter" in c else ""
    return [
        f"It moves at {article(tw)} tempo of about {bpm} BPM{meter}.",
        f"The tempo is {tw}, around {bpm} BPM{meter}.",
        f"At roughly {bpm} BPM{meter}, the pace feels {tw}.",
        f"It has {article(tw)} pulse of {bpm} BPM{meter}.",
    ]


def _chords(c: Claims, key: str | None) -> list[str]:
    chords = c["chords"].value
    if len(chords) == 1:
        if key:
            return [
                f"It is in {key} and rests on a single chord, {chords[0]}.",
                f"The key is {key}, and the harmony stays on one chord, {chords[0]}.",
            ]
        return [f"The harmony stays on one chord, {chords[0]}.", f"It rests on a single chord, {chords[0]}."]
    prog = join_words(chords)
    changes = f", changing {chord_change_word(c['chord_changes'].value)}" if "chord_changes" in c else ""
    if key:
        return [
            f"It is in {key}, with the main chords {prog}{changes}.",
            f"In {key}, the harmony moves through {prog}{changes}.",
            f"The key is {key} and the main chords are {prog}{changes}.",
        ]
    return [
        f"The main chords are {prog}{changes}.",
        f"The harmony moves through {prog}{changes}.",
        f"It is built on the chords {prog}{changes}.",
    ]


def _harmony(c: Claims) -> list[str]:
    key = _value(c, "key")
    if "chords" in c:
        return _chords(c, key)
    if not key:
        return []
    return [
        f"It is in {key}.",
        f"It is played in {key}.",
        f"The harmony centres on {key}.",
        f"It sits in the key of {key}.",
    ]


def _dynamics(c: Claims) -> list[str]:
    lw = loudness_word(c["loudness"].value) if "loudness" in c else None
    dw = density_word(c["density"].value) if "density" in c else None
    if lw and dw:
        return [
            f"It is mixed at {article(lw)} level, with {article(dw)} rhythmic texture.",
            f"The overall level is {lw} and the note onsets are {dw}.",
            f"Its loudness is {lw} and its texture is {dw}.",
        ]
    if lw:
        return [f"It is mixed at {article(lw)} level.", f"The overall level is {lw}."]
    if dw:
        return [f"The rhythmic texture is {dw}.", f"Its note onsets are {dw}."]
    return []


def _speech(c: Claims) -> list[str]:
    if "speech" not in c:
        return []
    return [
        "A speaking voice can be heard over the music.",
        "Spoken words appear in parts of the clip.",
        "There is speech on top of the music.",
    ]


_BODY = {"rhythm": _rhythm, "harmony": _harmony, "dynamics": _dynamics}
_ORDERS = (
    ("rhythm", "harmony", "dynamics"),
    ("harmony", "rhythm", "dynamics"),
    ("rhythm", "dynamics", "harmony"),
    ("dynamics", "rhythm", "harmony"),
)


def _first_word(sentence: str) -> str:
    return sentence.split(" ", 1)[0]


def grounded_caption(facts: MusicFacts) -> str:
    """Opening, then rhythm, harmony and dynamics in a per-clip order, then speech. Where a slot can, it
    avoids starting with the previous sentence's first word, so three sentences in a row never open "It"."""
    c, cid = claims(facts), facts.clip_id
    order = choose(_ORDERS, cid, "order")
    slots = [("opening", _opening(c)), *((name, _BODY[name](c)) for name in order), ("speech", _speech(c))]
    sentences: list[str] = []
    for name, options in slots:
        previous = _first_word(sentences[-1]) if sentences else ""
        fresh = [o for o in options if _first_word(o) != previous] or options
        if fresh:
            sentences.append(choose(fresh, cid, name))
    return " ".join(sentences)


def grounded_evidence(facts: MusicFacts) -> dict[str, dict[str, Any]]:
    """The caption's evidence: slot -> {"source": column, "value": ..., "conf": the number its rule tested}."""
    return {slot: claim.to_json() for slot, claim in claims(facts).items()}


class GroundedCaptioner:
    backend = "grounded"
    model = VERSION

    def prompt_hash(self, item: CaptionItem) -> str:
        return hashlib.sha256(f"{self.backend}\x1f{self.model}\x1f{item.facts.fingerprint()}".encode()).hexdigest()[:16]

    def caption_batch(self, items: Sequence[CaptionItem]) -> list[str]:
        return [grounded_caption(item.facts) for item in items]

    def evidence(self, item: CaptionItem) -> dict[str, Any] | None:
        return grounded_evidence(item.facts)
