"""What was heard in one clip, as the checker needs it: the sayable facts plus the tagger's raw evidence.

``MusicFacts`` (``facts.measured``) already holds every confident measurement (a tempo whose beat-tracker
confidence passed its rule, a key whose CNN probability did) and the labels the label rule lets speak. A
contradiction needs one thing more: a *confident absence*, which only the tag probabilities show (a caption
that names a piano where the piano tag is 0.01) and the beat tracker's tempo and metre even when they are too
uncertain for a text to *state* them (a "very slow" claim about a clip measured at 176 BPM, whose runner-up
is 118, is false at every tempo the measurement leaves plausible). ``Heard`` carries all three; ``measured``
is False for a clip whose analysis failed or is missing, so every claim about it is unverifiable, never
supported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from m2ugen_data.analysis.tag_words import GENRE_TAGS, INSTRUMENT_TAGS, MOOD_TAGS, evidence
from m2ugen_data.facts.measured import LabelNamer, MusicFacts, _finite, facts_from_rows
from m2ugen_data.facts.rules import TEMPO_CONF_MIN, confident


@dataclass(frozen=True)
class MeasuredTempo:
    """The beat tracker's tempo and metre as analysed, with both confidences (the checker decides which
    octaves stay plausible and whether the metre may speak)."""

    bpm: float
    beat_conf: float | None = None  # the tracker's clarity (features.tempo_conf)
    prob: float | None = None  # calibrated probability that bpm is right within 4 % (features.tempo_prob)
    meter: int | None = None


@dataclass(frozen=True)
class Heard:
    facts: MusicFacts
    tag_evidence: Mapping[str, float] | None = None  # tagger word -> its strongest backing probability
    measured: bool = True  # False: no successful analysis (every claim is unverifiable)
    tempo: MeasuredTempo | None = None  # the analysed tempo; None: the facts' (only what a text may state)

    @property
    def measured_tempo(self) -> MeasuredTempo | None:
        """The tempo claims are checked against: the analysed one, else the one the facts state."""
        if self.tempo is not None:
            return self.tempo
        f = self.facts
        return None if f.tempo_bpm is None else MeasuredTempo(f.tempo_bpm, f.tempo_conf, f.tempo_prob, f.meter)


def measured_tempo(features: Mapping[str, Any] | None) -> MeasuredTempo | None:
    """The tempo of a successful features row whose beat is clear enough to measure one (TEMPO_CONF_MIN, the
    rule below which nothing about tempo is said), else None."""
    if not features or features.get("status", "ok") != "ok":
        return None
    bpm, conf, prob = (_finite(features.get(k)) for k in ("tempo_bpm", "tempo_conf", "tempo_prob"))
    if not confident(bpm, conf, TEMPO_CONF_MIN) or bpm is None or bpm <= 0:
        return None
    meter = features.get("meter")
    return MeasuredTempo(bpm, conf, prob, int(meter) if meter else None)


def tag_evidence(features: Mapping[str, Any]) -> dict[str, float] | None:
    """Each instrument/genre/mood word's evidence from a features row's stored probabilities (None: none)."""
    from m2ugen_data.analysis.derived import TAG_NAMES, stored_tags

    tags = stored_tags(features)
    if tags is None:
        return None
    tables = (INSTRUMENT_TAGS, GENRE_TAGS, MOOD_TAGS)
    return {word: evidence(tags, TAG_NAMES, backing) for table in tables for word, backing in table.items()}


def heard_from_rows(
    clip_id: str, features: Mapping[str, Any] | None, segment: Mapping[str, Any] | None, namer: LabelNamer
) -> Heard:
    """What was heard in ``clip_id`` from its features and segment rows (either may be missing)."""
    ok = features is not None and features.get("status", "ok") == "ok"
    facts = facts_from_rows(clip_id, features if ok else None, segment, namer)
    return Heard(facts, tag_evidence(features) if ok else None, measured=ok, tempo=measured_tempo(features))


def heard_from_facts(facts: MusicFacts) -> Heard:
    """Facts built directly (a test, a benchmark): every field they set counts as measured."""
    return Heard(facts)
