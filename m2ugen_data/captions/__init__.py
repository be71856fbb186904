"""Music captioners behind one interface, chosen by backend name (``factory.make_captioner``).

A captioner turns a batch of clips (their measured facts and, for model backends, their audio) into one
caption each. ``prompt_hash`` names everything that determines a text, so the manifest writer can skip items
that were already captioned the same way. ``evidence`` says which measurement backs each phrase (slot ->
{"source": column, "value": ...}), or None for a backend that cannot know (a model that listens).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from m2ugen_data.facts.measured import MusicFacts
from m2ugen_data.factcheck.heard import MeasuredTempo


@dataclass(frozen=True)
class CaptionItem:
    """One clip to caption: its facts, and the audio file for backends that listen. ``tag_evidence``,
    ``measured`` and ``tempo`` are what the claim checker needs beyond the facts (``factcheck.heard``)."""

    item_id: str
    facts: MusicFacts
    audio_path: Path | None = None
    tag_evidence: Mapping[str, float] | None = None
    measured: bool = True
    tempo: MeasuredTempo | None = None


class Captioner(Protocol):
    backend: str
    model: str

    def prompt_hash(self, item: CaptionItem) -> str: ...

    def caption_batch(self, items: Sequence[CaptionItem]) -> list[str]: ...

    def evidence(self, item: CaptionItem) -> dict[str, Any] | None: ...
