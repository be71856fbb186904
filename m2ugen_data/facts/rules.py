"""What a text may claim: the confidence rules for measurements, and when an AudioSet label may add to them.

Grounded captions, MUEdit edit requests and their tests all speak through ``facts_from_rows``, which applies
these rules, so a number too uncertain to say is said nowhere and a label that contradicts a measurement
never reaches any text. Each constant says why it has its value.

The label rule, in full (``labels_allowed``):

1. A set the tagger did not measure (its column is NULL: an old analysis, or the tagger failed) is spoken
   for by the segment's labels, exactly as before measurements existed.
2. Once a set is measured, the tagger has an opinion on every word of its vocabulary: a word it reports is
   said, a word it does not report is not confidently present. A label in the tagger's vocabulary, or in a
   family the vocabulary covers ("electric guitar" -> guitar, "drum kit" -> drums, "heavy metal" -> metal),
   is therefore never said: either the measured word already says it, or the label disagrees with it.
3. A label outside the tagger's vocabulary ("trumpet", "organ", "reggae", "tender") may add to the measured
   words: the tagger has no opinion on it. Genres and moods describe the whole clip, so they add only when
   the measurement found no genre (or mood) at all; instruments sound together, so they always may add.
4. A voice label ("choir", "vocal", "a capella", ...) is never said when the measured vocals are
   "instrumental".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from m2ugen_data.analysis.tag_words import GENRE_TAGS, INSTRUMENT_TAGS, MOOD_TAGS

# Beat tracker confidence (activation strength x interval regularity). 0.3 is where pair mining already draws
# the line (pairs.rules.PairRules.min_tempo_conf): a jittery or beatless clip scores below it. Below it
# nothing about tempo is said.
TEMPO_CONF_MIN = 0.3
# Calibrated probability that the measured tempo is right within 4 % (features.tempo_prob, from
# analysis.tempo_octave). A BPM number (and the metre, read on the same grid) is said only at or above it;
# leave-one-source-out over the dev sets, clips at or above it were right at least this often
# (docs/BENCHMARKS.md, "tempo_prob >= c"). Below it a text may say a tempo word only when the word is true at
# the measured tempo and at its runner-up (usually the other octave), else nothing about tempo. Rows without
# a tempo_prob (analysed before it existed) never state a number.
TEMPO_PROB_MIN = 0.85
# Key CNN softmax probability (chance is 1/24). On 40 synthetic clips (seed 11) every key at >= 0.5 but one
# was right (35 kept, 97 % correct); the wrong ones scored 0.37-0.44.
KEY_CONF_MIN = 0.5
# Fraction of beats with a chord (not N/X) before any chord is named: "most beats have a chord".
CHORD_COVERAGE_MIN = 0.6
# A chord is one of the main chords when it holds at least this share of the chord beats (noise chords and
# passing chords are not named); at most MAX_MAIN_CHORDS are named.
CHORD_SHARE_MIN = 0.1
MAX_MAIN_CHORDS = 4
# Fraction of the clip with detected speech above which a speaking voice is mentioned.
SPEECH_RATIO_MIN = 0.2
# Genre and mood words said per clip (measured first, then labels): more reads as a tag cloud.
MAX_STYLE_WORDS = 2

KINDS = ("instruments", "genres", "moods")
VOCALS = frozenset({"vocal", "female vocal", "male vocal", "instrumental"})
# Kinds that describe the whole clip: a label adds only when the measurement found none (rule 3).
_WHOLE_CLIP_KINDS = frozenset({"genres", "moods"})
# The tagger's vocabulary per kind: what it has an opinion on once a set is measured.
_VOCABULARY: dict[str, frozenset[str]] = {
    "instruments": frozenset(INSTRUMENT_TAGS),
    "genres": frozenset(GENRE_TAGS),
    "moods": frozenset(MOOD_TAGS),
}
# Label phrases that belong to a tagger word's family without containing the word (alias -> word).
_FAMILY_ALIASES: dict[str, dict[str, str]] = {
    "instruments": {
        "synthesizer": "synth",
        "fiddle": "violin",
        "string section": "strings",
        "bowed string instrument": "strings",
        "orchestra": "strings",
        "drum": "drums",
        "hi-hat": "drums",
        "cymbal": "drums",
        "rimshot": "drums",
        "strum": "guitar",
    },
    "genres": {
        "hip hop": "hip-hop",
        "new-age": "new age",
        "electronica": "electronic",
        "electro": "electronic",
        "trance": "electronic",
        "dubstep": "electronic",
        "drum and bass": "electronic",
        "carnatic": "indian",
        "bollywood": "indian",
        "bluegrass": "country",
        "grunge": "rock",
    },
    "moods": {"tender": "soft"},
}
# Label names (lowercase) that claim a singing voice.
VOICE_LABELS = frozenset({"choir", "vocal", "a capella", "beatboxing", "chant", "opera"})


def confident(value: object, conf: float | None, minimum: float) -> bool:
    """A measurement may be said only with a recorded confidence of at least ``minimum`` (None is not enough)."""
    return value is not None and conf is not None and conf >= minimum


@dataclass(frozen=True)
class TempoStatement:
    """What a text may say about tempo: a number (with its word), or only a word, or nothing."""

    bpm: float | None  # set only when the tempo is confident (TEMPO_PROB_MIN)
    word: str | None  # a tempo word true at every tempo still plausible (see tempo_statement)


def tempo_statement(
    bpm: float | None,
    beat_conf: float | None,
    prob: float | None,
    alt_bpm: float | None,
    word_of: Callable[[float], str],
) -> TempoStatement:
    """The module's tempo rule: nothing without a clear beat; the number when ``prob`` (calibrated) clears
    TEMPO_PROB_MIN; otherwise the word ``word_of`` gives only if it is the same at the measured tempo and at
    the runner-up candidate ``alt_bpm`` (a word that holds at both octaves), else nothing."""
    if not confident(bpm, beat_conf, TEMPO_CONF_MIN):
        return TempoStatement(None, None)
    assert bpm is not None
    if confident(bpm, prob, TEMPO_PROB_MIN):
        return TempoStatement(bpm, word_of(bpm))
    if alt_bpm is None or word_of(bpm) != word_of(alt_bpm):
        return TempoStatement(None, None)
    return TempoStatement(None, word_of(bpm))


# ---- chords

_QUALITY_SUFFIX = {
    "maj": "",
    "min": "m",
    "7": "7",
    "maj7": "maj7",
    "min7": "m7",
    "dim": "dim",
    "dim7": "dim7",
    "hdim7": "m7b5",
    "aug": "aug",
    "sus2": "sus2",
    "sus4": "sus4",
    "6": "6",
    "min6": "m6",
    "9": "9",
    "maj9": "maj9",
    "min9": "m9",
}
_CHORD_RE = re.compile(r"^([A-G][#b]?)(?::([a-z0-9]+))?(?:/.*)?$")
NO_CHORD = frozenset({"N", "X", ""})


def chord_symbol(label: str) -> str | None:
    """mir_eval label -> lead-sheet symbol ("A:min" -> "Am", "C:maj/3" -> "C", "G:7" -> "G7"); None for a
    quality without a common symbol, which is then never named."""
    m = _CHORD_RE.match(label)
    if not m:
        return None
    suffix = _QUALITY_SUFFIX.get(m.group(2) or "maj")
    return None if suffix is None else m.group(1) + suffix


@dataclass(frozen=True)
class ChordSummary:
    chords: tuple[str, ...]  # main chords as symbols, in the order they are first heard
    coverage: float  # fraction of beats with a chord


_FLAT_SPELLING = {"C#": "Db", "D#": "Eb", "F#": "Gb", "G#": "Ab", "A#": "Bb"}
# keys written with flats (madmom's key names): their chords are spelled with flats too ("Bb", not "A#")
_FLAT_KEYS = frozenset(
    {f"{t} major" for t in ("F", "Bb", "Eb", "Ab", "Db")} | {f"{t} minor" for t in ("D", "G", "C", "F", "Bb")}
)
_SHARP_KEYS = frozenset(
    {f"{t} major" for t in ("G", "D", "A", "E", "B", "F#")} | {f"{t} minor" for t in ("E", "B", "F#", "C#", "G#", "D#")}
)


def spell_for_key(label: str, key: str | None) -> str:
    """The chord recogniser names roots with sharps; a caption in Bb major should say Bb and Eb. Flat keys
    get flats, sharp keys keep sharps, and without a known key the usual spellings (Bb, Eb, Ab; C#, F#)."""
    root, sep, rest = label.partition(":")
    if root not in _FLAT_SPELLING or key in _SHARP_KEYS:
        return label
    if key in _FLAT_KEYS or root in ("A#", "D#", "G#"):
        return _FLAT_SPELLING[root] + sep + rest
    return label


def summarise_chords(beat_chords: Sequence[str] | None, key: str | None = None) -> ChordSummary | None:
    """The main chords of a beat-synchronous chord list and how much of it has a chord; None when no
    chords were measured. The order of first appearance keeps a progression readable (Am F C G); roots are
    spelled for the measured key."""
    if not beat_chords:
        return None
    chorded = [spell_for_key(c, key) for c in beat_chords if c not in NO_CHORD]
    counts = Counter(s for s in map(chord_symbol, chorded) if s)
    floor = CHORD_SHARE_MIN * max(len(chorded), 1)
    main = {s for s, n in counts.most_common(MAX_MAIN_CHORDS) if n >= floor}
    ordered = dict.fromkeys(s for s in map(chord_symbol, chorded) if s in main)
    return ChordSummary(tuple(ordered), len(chorded) / len(beat_chords))


def confident_chords(summary: ChordSummary | None) -> tuple[str, ...]:
    """The main chords when most beats have a chord, else nothing."""
    return summary.chords if summary and summary.coverage >= CHORD_COVERAGE_MIN else ()


# ---- labels next to measurements


def _phrase_re(phrase: str) -> re.Pattern[str]:
    """Whole words, singular or plural ("cymbal" finds "crash cymbal" and "cymbals")."""
    return re.compile(rf"(?<![a-z]){re.escape(phrase)}s?(?![a-z])")


@cache
def _family_patterns(kind: str) -> tuple[re.Pattern[str], ...]:
    words = _VOCABULARY[kind]
    phrases = [*words, *(a for a, w in _FAMILY_ALIASES[kind].items() if w in words)]
    return tuple(_phrase_re(p) for p in phrases)


def tagger_covers(kind: str, name: str) -> bool:
    """Whether the tagger has an opinion on a label: it has the word, or a word for the label's family."""
    low = name.lower()
    return any(p.search(low) for p in _family_patterns(kind))


def labels_allowed(
    kind: str, labels: Sequence[str], measured: Sequence[str] | None, vocals: str | None
) -> tuple[str, ...]:
    """The label names of ``kind`` that may be said next to the measured words (the module's rule)."""
    names = [n for n in labels if not (vocals == "instrumental" and n.lower() in VOICE_LABELS)]
    if measured is None:
        return tuple(names)
    if kind in _WHOLE_CLIP_KINDS and measured:
        return ()
    return tuple(n for n in names if not tagger_covers(kind, n))


def measured_words(row: Mapping[str, Any], kind: str) -> tuple[str, ...] | None:
    """A measured set column: None when NULL (not measured), else its words (possibly none)."""
    value = row.get(kind)
    return None if value is None else tuple(str(w) for w in value)


def measured_vocals(row: Mapping[str, Any]) -> str | None:
    """The vocals word, or None when unsure, unmeasured or not a word we know how to say."""
    value = row.get("vocals")
    return value if value in VOCALS else None
