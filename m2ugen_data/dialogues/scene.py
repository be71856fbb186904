"""The picture or clip a MUImage/MUVideo request asks about, as a noun phrase a person would say.

Two sources, by who wrote the visual caption:
- the ``grounded`` visual captioner writes from measurements ("A dim image dominated by red. The source
  video is labelled ..."); its caption is a report, not how anyone talks, so the phrase is rebuilt from the
  same measurements (the ``visual_media`` row): light, colours, and for a clip its movement and cuts, in
  plain words and without numbers ("this dim picture in red and orange", "this clip with a lot of movement
  and a few cuts"). The source video's AudioSet labels are metadata, not something a person asking for
  music says, so they are left out.
- a model caption (BLIP's "a man playing a guitar on a stage", a video captioner's "a man is playing a
  guitar") already says what is in the picture: it becomes "a picture of ..." or "a clip where ...".

The words avoid what a music claim checker would read as a claim about the music (no "dark", "calm",
"fast", "slow", "soft"): the request is about the picture, the music's facts live elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from m2ugen_data.facts.measured import choose, join_words
from m2ugen_data.dialogues.phrases import NounPhrase, pick_head
from m2ugen_data.vision.grounded import brightness_word, motion_phrase

# head nouns per kind; "footage" is a mass noun ("this footage")
HEADS = {"image": ("picture", "image", "photo", "shot", "still"), "video": ("video", "clip", "footage", "scene")}
_MASS_HEADS = frozenset({"footage"})
# brightness words of the grounded captioner -> how a person says it (None: nothing worth saying)
_LIGHT = {"dark": "very dim", "dim": "dim", "bright": "bright", "evenly lit": None}
# motion phrases of the grounded captioner -> post-modifiers
_MOTION = {
    "no visible motion": ("where nothing moves", "with hardly any movement"),
    "slight motion": ("with a little movement", "with only slight movement"),
    "moderate motion": ("with some movement", "with a fair amount of movement"),
    "strong motion": ("with a lot of movement", "full of movement"),
}
# the caption prefixes that only say "this is a picture" ("the image shows" is BLIP's prompt)
_PREFIX = re.compile(
    r"^(?:the (?:image|picture|photo|video|clip) shows|this is|there (?:is|are)|"
    r"(?:a|an) (?:image|picture|photo|photograph|video|clip|close up|closeup|view) of)\s+",
    re.IGNORECASE,
)
_LOWER_FIRST = frozenset("a an the some two three four several many one this these there".split())
_FINITE = re.compile(r"\b(?:is|are|was|were)\b")


def _colours(names: Sequence[str], key: tuple[object, ...]) -> str | None:
    names = list(names)[:3]
    if not names:
        return None
    joined = join_words(names)
    if len(names) == 1:
        return choose([f"in {joined}", f"mostly in {joined}", f"full of {joined}"], *key, "colours")
    return choose([f"in {joined}", f"full of {joined}", f"in shades of {joined}"], *key, "colours")


def _cuts(cuts: int | None, key: tuple[object, ...]) -> str | None:
    if cuts is None:
        return None
    if cuts == 0:
        return choose(["in one continuous shot", "shot in a single take"], *key, "cuts")
    return "with a cut or two" if cuts <= 2 else "with several cuts"


def _measured(kind: str, media: Mapping[str, Any], key: tuple[object, ...]) -> NounPhrase:
    """At most one word before the head and two phrases after it, chosen per sample."""
    light = _LIGHT.get(brightness_word(media["brightness"])) if media.get("brightness") is not None else None
    posts = [_colours(media.get("dominant_colors") or (), key)]
    if kind == "video":
        motion = media.get("motion")
        if motion is not None and motion_phrase(motion) in _MOTION:
            posts.append(choose(_MOTION[motion_phrase(motion)], *key, "motion"))
        posts.append(_cuts(media.get("scene_cuts"), key))
    posts = [p for p in posts if p]
    if len(posts) > 1:  # two of them, in a per-sample order
        first = choose(range(len(posts)), *key, "first")
        posts = [posts[first], choose(posts[:first] + posts[first + 1 :], *key, "second")]
    if light and choose((True, True, False), *key, "light"):
        pre: tuple[str, ...] = (light,)
    else:
        pre = ()
    if pre and len(posts) > 1:
        posts = posts[:1]
    if len(posts) == 2 and all(p.startswith("with ") for p in posts):  # "with some movement and a cut or two"
        posts = [f"{posts[0]} and {posts[1][len('with ') :]}"]
    elif len(posts) == 2 and posts[0].split()[0] == posts[1].split()[0]:  # never "full of red, full of movement"
        posts = posts[:1]
    avoid = {w for p in posts for w in p.split()}
    head = pick_head(HEADS[kind], avoid, *key, "head")
    return NounPhrase(head, pre, tuple(posts), mass=head in _MASS_HEADS)


def _described(kind: str, caption: str, key: tuple[object, ...]) -> NounPhrase:
    """A model's first caption sentence as what the picture shows: 'picture of a man playing a guitar'
    (BLIP writes noun phrases), 'clip where a man is playing a guitar' (a video captioner writes clauses)."""
    text = re.split(r"(?<=[.!?])\s", caption.strip(), maxsplit=1)[0].strip().rstrip(".!?").strip()
    text = _PREFIX.sub("", text)
    first, _, rest = text.partition(" ")
    if first.lower() in _LOWER_FIRST:  # "A woman is singing" -> "a woman is singing"; names keep their case
        text = f"{first.lower()} {rest}".strip()
    words = set(text.lower().split())
    head = pick_head(HEADS[kind], words, *key, "head")
    post = f"where {text}" if _FINITE.search(text) else f"of {text}"
    return NounPhrase(head, (), (post,), mass=head in _MASS_HEADS)


def scene_phrase(
    kind: str, caption: str, backend: str | None, media: Mapping[str, Any] | None, key: tuple[object, ...]
) -> NounPhrase:
    """The picture (``kind`` image) or clip (video) as a noun phrase, without a determiner."""
    if backend == "grounded" and media:
        return _measured(kind, media, key)
    if caption.strip() and backend != "grounded":
        return _described(kind, caption, key)
    head = pick_head(HEADS[kind], set(), *key, "head")
    return NounPhrase(head, mass=head in _MASS_HEADS)
