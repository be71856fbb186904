"""The four datasets a card describes: their pool, what one sample is, and which flow builds them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # dataset id, as in the dialogues/shards manifests
    title: str
    pool: str  # the segments pool its clips come from
    sample: str  # what one sample is, in words
    visual_kind: str | None  # visual_media kind (image | video) for MUImage/MUVideo
    task_categories: tuple[str, ...]  # Hugging Face task ids for the README front matter

    @property
    def flow(self) -> str:
        return f"build-{self.name}"


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec("mucaps", "MUCaps", "mucaps", "a music clip and its caption", None, ("text-to-audio",)),
    DatasetSpec(
        "muedit", "MUEdit", "muedit", "a source clip, an edit instruction and the target clip", None,
        ("audio-to-audio", "text-to-audio"),
    ),
    DatasetSpec(
        "muimage", "MUImage", "muimage", "an image, a two-turn dialogue and the music it asks for", "image",
        ("text-to-audio",),
    ),
    DatasetSpec(
        "muvideo", "MUVideo", "muvideo", "a video, a two-turn dialogue and the music it asks for", "video",
        ("text-to-audio",),
    ),
)
