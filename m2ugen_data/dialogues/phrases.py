"""Typed pieces of a sentence: noun phrases that carry their own modifiers and know their article.

The dialogue template composes turns from these instead of pasting strings, so a modifier can only be
attached to the noun phrase it was given to (a clause cannot end up on an instrument list), the article
agrees with whatever word ends up first ("an upbeat jazz track", "a mellow one"), plural and mass nouns
take no "a" ("some drums", "this footage"), and a head noun is chosen that none of its own modifiers
already uses ("a clip in one continuous shot", never "a shot in one continuous shot").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from m2ugen_data.facts.measured import article, choose, join_words


@dataclass(frozen=True)
class NounPhrase:
    """``pre`` words before the head ("dim", "mellow, sad"), ``post`` phrases after it ("in red and blue",
    "with a flute"; a comma between two): prepositional phrases, or a relative clause built by ``that``."""

    head: str
    pre: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    plural: bool = False
    mass: bool = False

    def bare(self) -> str:
        core = " ".join((*self.pre, self.head))
        return f"{core} {', '.join(self.post)}" if self.post else core

    def indefinite(self) -> str:
        """'a dim picture', 'an upbeat track', 'some music', 'some drums'."""
        return f"some {self.bare()}" if self.mass or self.plural else article(self.bare())

    def definite(self) -> str:
        return f"the {self.bare()}"

    def this(self) -> str:
        return f"{'these' if self.plural else 'this'} {self.bare()}"

    def words(self) -> set[str]:
        return set(self.bare().lower().replace(",", " ").split())

    def with_post(self, *phrases: str) -> NounPhrase:
        return replace(self, post=(*self.post, *(p for p in phrases if p)))

    def that(self, singular: str, plural: str, rest: str) -> NounPhrase:
        """A relative clause on this noun phrase, its verb agreeing with it ('a piece that fits ...',
        'drums that fit ...'); it goes right after the head, before other modifiers."""
        clause = f"that {plural if self.plural else singular} {rest}".strip()
        return replace(self, post=(clause, *self.post))


def join_phrases(phrases: Sequence[str]) -> str:
    """'a and b', 'a, b and c'; with a comma before the last "and" when an earlier phrase has its own comma
    or "and" ('add a flute and a harp, and make it slower'), so the reader sees where each one ends."""
    phrases = [p for p in phrases if p]
    nested = any("," in p or " and " in p for p in phrases[:-1])
    return f"{', '.join(phrases[:-1])}, and {phrases[-1]}" if nested and len(phrases) > 1 else join_words(phrases)


def pick_head(options: Sequence[str], avoid: set[str], *key: object) -> str:
    """One head noun from ``options`` that is not among ``avoid`` (the words of its own modifiers)."""
    fresh = [o for o in options if o not in avoid] or list(options)
    return choose(fresh, *key)


def first_fit(frames: Sequence[Callable[..., str | None]], key: tuple[object, ...], *args: object) -> str:
    """The text of one frame chosen from ``key``; a frame that does not fit (returns None) passes to the next
    one, so only the frames tried are rendered. At least one frame must always fit."""
    start = choose(range(len(frames)), *key)
    for i in range(len(frames)):
        text = frames[(start + i) % len(frames)](*args)
        if text is not None:
            return text
    raise ValueError("no frame fits")


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]
