"""Words from tag probabilities: which instruments, genres, moods and voice a clip measurably has.

MusiCNN gives 50 MagnaTagATune (MTT) and 50 Million Song Dataset (MSD) probabilities per clip. Captions,
edit instructions and pair mining need plain sets ("piano", "strings"; "rock"; "mellow"; "female vocal"),
so each word is backed by one or more tags and said when its strongest tag clears the word's threshold.
The rule (every word's tags and thresholds) is data, serialised into each features row
(``tag_thresholds``), so a row says exactly how its sets were derived and a new rule re-derives the sets
from the stored probabilities without touching audio (``derive_sets`` on old rows).

Why these thresholds: the instrument and voice thresholds were calibrated on the dev split of the
General-MIDI dev set; the instrument words a calibrated head covers (``instrument_head``) now come from
the head, these thresholds speak for the rest (and for rows without a head). MusiCNN's
probabilities are low in absolute terms (a clearly audible piano often scores 0.3-0.5), so a threshold of
0.5 would say almost nothing. Genre and mood have no truth in a GM render: their thresholds are set high
(a word is said only when the network is fairly sure) and only the top few are kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

RULE_VERSION = "words-v1"  # the vocabulary; thresholds travel in each row's tag_thresholds JSON

# word -> (tag set, tag name) pairs whose maximum backs the word
INSTRUMENT_TAGS: dict[str, tuple[tuple[str, str], ...]] = {
    "piano": (("mtt", "piano"),),
    "guitar": (("mtt", "guitar"), ("msd", "guitar")),
    "strings": (("mtt", "strings"),),
    "violin": (("mtt", "violin"),),
    "cello": (("mtt", "cello"),),
    "harp": (("mtt", "harp"),),
    "harpsichord": (("mtt", "harpsichord"),),
    "flute": (("mtt", "flute"),),
    "sitar": (("mtt", "sitar"),),
    "synth": (("mtt", "synth"),),
    "drums": (("mtt", "drums"),),
}
GENRE_TAGS: dict[str, tuple[tuple[str, str], ...]] = {
    "rock": (("mtt", "rock"), ("msd", "rock")),
    "classical": (("mtt", "classical"), ("mtt", "classic")),
    "electronic": (("mtt", "electronic"), ("msd", "electronic"), ("msd", "electronica")),
    "techno": (("mtt", "techno"),),
    "ambient": (("mtt", "ambient"), ("msd", "ambient")),
    "pop": (("mtt", "pop"), ("msd", "pop")),
    "dance": (("mtt", "dance"), ("msd", "dance")),
    "country": (("mtt", "country"), ("msd", "country")),
    "metal": (("mtt", "metal"), ("msd", "metal"), ("msd", "heavy metal")),
    "jazz": (("msd", "jazz"),),
    "blues": (("msd", "blues"),),
    "folk": (("msd", "folk"),),
    "funk": (("msd", "funk"),),
    "soul": (("msd", "soul"),),
    "punk": (("msd", "punk"),),
    "hip-hop": (("msd", "Hip-Hop"),),
    "house": (("msd", "House"),),
    "indian": (("mtt", "indian"),),
    "opera": (("mtt", "opera"),),
    "new age": (("mtt", "new age"),),
}
MOOD_TAGS: dict[str, tuple[tuple[str, str], ...]] = {
    "mellow": (("msd", "Mellow"),),
    "soft": (("mtt", "soft"),),
    "chill": (("msd", "chill"), ("msd", "chillout")),
    "sad": (("msd", "sad"),),
    "happy": (("msd", "happy"),),
    "beautiful": (("msd", "beautiful"),),
    "catchy": (("msd", "catchy"),),
}
VOICE_TAGS: tuple[tuple[str, str], ...] = (
    *(("mtt", t) for t in ("vocal", "vocals", "singing", "voice", "female", "male", "woman", "man")),
    *(("mtt", t) for t in ("male vocal", "female vocal", "male voice", "female voice", "choir", "choral", "opera")),
    ("msd", "female vocalists"),
    ("msd", "male vocalists"),
    ("msd", "female vocalist"),
)
NO_VOICE_TAGS: tuple[tuple[str, str], ...] = (
    ("mtt", "no vocals"),
    ("mtt", "no vocal"),
    ("mtt", "no voice"),
    ("msd", "instrumental"),
)
FEMALE_TAGS: tuple[tuple[str, str], ...] = (
    *(("mtt", t) for t in ("female", "woman", "female vocal", "female voice")),
    ("msd", "female vocalists"),
    ("msd", "female vocalist"),
)
MALE_TAGS: tuple[tuple[str, str], ...] = (
    *(("mtt", t) for t in ("male", "man", "male vocal", "male voice")),
    ("msd", "male vocalists"),
)


@dataclass(frozen=True)
class TagRule:
    """Thresholds that turn probabilities into words; serialised into every features row."""

    # Calibrated on the GM dev split of a one-soundfont set: at 0.2 with these
    # overrides instrument precision/recall is 0.64/0.40 on dev and 0.51/0.31 on the held-out test split.
    # MTT's "drums" tag stays low on GM kits (0.93 precision already at 0.1); "violin" fires on any bowed
    # or sustained lead (0.24 precision at 0.1, 0.5 at 0.35).
    instrument: float = 0.2
    instrument_overrides: dict[str, float] = field(
        default_factory=lambda: {"drums": 0.1, "violin": 0.35, "piano": 0.15, "cello": 0.1}
    )
    genre: float = 0.35
    mood: float = 0.3
    voice: float = 0.3  # voice evidence above this, and above the no-voice evidence: a vocal
    no_voice: float = 0.3  # no-voice evidence above this, and above the voice evidence: instrumental
    gender_margin: float = 1.5  # one gender's evidence this many times the other's: name it
    max_instruments: int = 4
    max_genres: int = 2
    max_moods: int = 2

    def to_json(self) -> str:
        return json.dumps({"rule": RULE_VERSION, **asdict(self)}, sort_keys=True)


@dataclass(frozen=True)
class TagSets:
    instruments: list[str]
    genres: list[str]
    moods: list[str]
    vocals: str | None


@lru_cache(maxsize=8)
def _index(names: tuple[str, ...]) -> dict[str, int]:
    """Tag name -> position; cached, since every word of every clip looks its tags up here."""
    return {n: i for i, n in enumerate(names)}


def evidence(tags: Mapping[str, np.ndarray], names: Mapping[str, Sequence[str]], backing: Sequence[tuple[str, str]]) -> float:
    """The strongest probability among the tags backing a word (0 when none of them exists)."""
    best = 0.0
    for tag_set, tag in backing:
        probs, idx = tags.get(tag_set), _index(tuple(names.get(tag_set, ())))
        if probs is not None and tag in idx:
            best = max(best, float(probs[idx[tag]]))
    return best


def _words(
    tags: Mapping[str, np.ndarray],
    names: Mapping[str, Sequence[str]],
    table: Mapping[str, Sequence[tuple[str, str]]],
    threshold: float,
    limit: int,
    overrides: Mapping[str, float] | None = None,
) -> list[str]:
    scored = [(evidence(tags, names, backing), word) for word, backing in table.items()]
    kept = [(p, w) for p, w in scored if p >= (overrides or {}).get(w, threshold)]
    kept.sort(key=lambda pw: (-pw[0], pw[1]))
    return [w for _, w in kept[:limit]]


def vocals_word(tags: Mapping[str, np.ndarray], names: Mapping[str, Sequence[str]], rule: TagRule) -> str | None:
    """'female vocal' | 'male vocal' | 'vocal' | 'instrumental', or None when the evidence is unclear."""
    voice = evidence(tags, names, VOICE_TAGS)
    no_voice = evidence(tags, names, NO_VOICE_TAGS)
    if voice >= rule.voice and voice > no_voice:
        female, male = evidence(tags, names, FEMALE_TAGS), evidence(tags, names, MALE_TAGS)
        if female >= rule.voice and female >= rule.gender_margin * male:
            return "female vocal"
        if male >= rule.voice and male >= rule.gender_margin * female:
            return "male vocal"
        return "vocal"
    if no_voice >= rule.no_voice and no_voice > voice:
        return "instrumental"
    return None


def derive_sets(tags: Mapping[str, np.ndarray], names: Mapping[str, Sequence[str]], rule: TagRule) -> TagSets:
    """Instrument, genre and mood words (strongest first) and the voice word from the probabilities."""
    return TagSets(
        instruments=_words(tags, names, INSTRUMENT_TAGS, rule.instrument, rule.max_instruments, rule.instrument_overrides),
        genres=_words(tags, names, GENRE_TAGS, rule.genre, rule.max_genres),
        moods=_words(tags, names, MOOD_TAGS, rule.mood, rule.max_moods),
        vocals=vocals_word(tags, names, rule),
    )


DEFAULT_RULE = TagRule()


def music_tag_max(tags: Mapping[str, np.ndarray] | None, names: Mapping[str, Sequence[str]]) -> float | None:
    """The strongest instrument or genre probability: how sure the tagger is that it hears music it knows.

    A music-likeness descriptor: sound effects and ambience leave every instrument and genre tag low."""
    if tags is None:
        return None
    tables = (INSTRUMENT_TAGS, GENRE_TAGS)
    return max(evidence(tags, names, backing) for table in tables for backing in table.values())
