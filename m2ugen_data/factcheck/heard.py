"""What was heard in one clip, as the checker needs it: the sayable facts plus the tagger's raw evidence.

``MusicFacts`` (``facts.measured``) already holds every confident measurement (a tempo whose beat-tracker
confidence passed its rule, a key whose CNN probability did) and the labels the label rule lets speak. A
contradiction needs one thing more: a *confident absence*, which only the tag probabilities show (a caption
that names a piano where the piano tag is 0.01). ``Heard`` carries both; ``measured`` is False for a clip
whose analysis failed or is missing, so every claim about it is unverifiable, never supported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from m2ugen_data.analysis.tag_words import GENRE_TAGS, INSTRUMENT_TAGS, MOOD_TAGS, evidence
from m2ugen_data.facts.measured import LabelNamer, MusicFacts, facts_from_rows


@dataclass(frozen=True)
class Heard:
    facts: MusicFacts
    tag_evidence: Mapping[str, float] | None = None  # tagger word -> its strongest backing probability
    measured: bool = True  # False: no successful analysis (every claim is unverifiable)


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
    return Heard(facts, tag_evidence(features) if ok else None, measured=ok)


def heard_from_facts(facts: MusicFacts) -> Heard:
    """Facts built directly (a test, a benchmark): every field they set counts as measured."""
    return Heard(facts)
