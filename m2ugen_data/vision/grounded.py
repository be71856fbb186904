"""``grounded``: the offline default caption for images and videos, written only from measurements.

Every word traces to a number in ``visual_media`` (colour names, brightness, motion energy, cut count) or to
an AudioSet label of the source video, so it can be checked; the backend name marks it in ``captions`` so
nobody mistakes it for a model's description of the scene.
"""

from __future__ import annotations

from collections.abc import Sequence

from m2ugen_data.vision import measures
from m2ugen_data.vision.models import Captioner, VisualItem, settings_hash

VERSION = "grounded-visual-v2"  # v2: "An evenly lit ..."
MAX_LABELS = 3
# Motion energy (mean absolute luma change per 1/8 s, 0..1) upper bounds of the motion words.
_MOTION_WORDS = ((0.01, "slight"), (0.03, "moderate"), (float("inf"), "strong"))


def brightness_word(b: float) -> str:
    return "dark" if b < 0.25 else "dim" if b < 0.4 else "bright" if b > 0.65 else "evenly lit"


def motion_phrase(motion: float) -> str:
    if motion < measures.STATIC_MOTION:
        return "no visible motion"
    word = next(w for bound, w in _MOTION_WORDS if motion < bound)
    return f"{word} motion"


def _colors(names: Sequence[str]) -> str:
    names = list(names)
    if not names:
        return ""
    return f"dominated by {names[0]}" if len(names) == 1 else f"dominated by {', '.join(names[:-1])} and {names[-1]}"


def grounded_text(item: VisualItem) -> str:
    """'A bright image dominated by blue.' / 'An evenly lit video dominated by red and black, with strong motion
    and 2 scene cuts. The source video is labelled Guitar and Rock music.'"""
    m = item.media
    noun = "image" if item.kind == "image" else "video"
    light = brightness_word(m.get("brightness") or 0.0)
    head = f"{'An' if light[0] in 'aeiou' else 'A'} {light} {noun}"
    colors = _colors(m.get("dominant_colors") or ())
    parts = [f"{head} {colors}".strip()]
    if item.kind == "video":
        cuts = int(m.get("scene_cuts") or 0)
        shots = "in one continuous shot" if cuts == 0 else f"and {cuts} scene cut{'s' if cuts > 1 else ''}"
        parts.append(f"with {motion_phrase(m.get('motion') or 0.0)} {shots}")
    text = ", ".join(parts) + "."
    labels = list(item.labels[:MAX_LABELS])
    if labels:
        listed = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
        text += f" The source video is labelled {listed}."
    return text


def load_grounded() -> Captioner:
    return Captioner(
        backend="grounded", model=None, kinds=("image", "video"), prompt_hash=settings_hash(version=VERSION),
        caption=lambda items: [grounded_text(item) for item in items],
    )
