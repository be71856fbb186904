"""What may be said about one clip, and the plain words for each measurement.

The grounded captioner and the dialogue templates both speak from these facts, so a tempo is called
"upbeat" in a caption and in the edit request that mentions it, and a test can check a text against the
same numbers it was written from. ``facts_from_rows`` is the one door from manifest rows to facts: it applies
the confidence and label rules of ``facts.rules``, so a fact that is set may be said, and one that is
not set was not measured, not confident, or contradicted.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from m2ugen_data.facts.rules import (
    KEY_CONF_MIN,
    KINDS,
    MAX_STYLE_WORDS,
    SPEECH_RATIO_MIN,
    confident,
    confident_chords,
    labels_allowed,
    measured_vocals,
    measured_words,
    summarise_chords,
    tempo_statement,
)

LabelNamer = Callable[[str], str]
T = TypeVar("T")

# Upper bounds (BPM, exclusive) of the tempo words; chosen to match common tempo-marking ranges.
_TEMPO_WORDS: tuple[tuple[float, str], ...] = (
    (60.0, "very slow"),
    (80.0, "slow"),
    (105.0, "moderate"),
    (125.0, "upbeat"),
    (150.0, "fast"),
    (math.inf, "very fast"),
)
# Integrated loudness (LUFS, exclusive upper bounds) as a level; streaming masters sit near -14. Level words,
# not "soft"/"quiet"/"loud": those are mood words the tagger measures, and a caption must not seem to claim
# a mood it did not measure.
_LOUDNESS_WORDS: tuple[tuple[float, str], ...] = (
    (-30.0, "very low"),
    (-22.0, "low"),
    (-14.0, "moderate"),
    (math.inf, "high"),
)
# Onsets per second: how busy the texture is.
_DENSITY_WORDS: tuple[tuple[float, str], ...] = (
    (1.5, "sparse"),
    (4.0, "steady"),
    (math.inf, "busy"),
)
# Chord changes per bar (exclusive upper bounds).
_CHORD_CHANGE_WORDS: tuple[tuple[float, str], ...] = (
    (0.4, "every few bars"),
    (0.75, "about every two bars"),
    (1.5, "about once a bar"),
    (math.inf, "more than once a bar"),
)
TEMPO_CHANGE_MIN = 0.04  # relative tempo difference above which an edit counts as faster/slower
_VOICE_NAMES = {"female vocal": "female vocals", "male vocal": "male vocals", "vocal": "vocals"}
VOICE_PHRASES = frozenset(_VOICE_NAMES.values())  # how a text names a measured voice
_PROPER_WORDS = {"indian": "Indian"}  # measured words that are proper adjectives
# Label names of instruments usually heard as a set, or of a family, read better plural ("featuring maracas,
# chimes and brass instruments").
_PLURAL_LABELS = {
    "maraca": "maracas",
    "jingle bell": "jingle bells",
    "chime": "chimes",
    "wind chime": "wind chimes",
    "brass instrument": "brass instruments",
    "wind instrument": "wind instruments",
    "bowed string instrument": "bowed string instruments",
    "plucked string instrument": "plucked string instruments",
}
# Label names of a category rather than a sound: a text gains nothing by saying them.
_CATEGORY_LABELS = frozenset({"musical instrument", "musical ensemble", "Music genre", "Music mood"})


@dataclass(frozen=True)
class MusicFacts:
    """What may be said about one clip; a field that is None or empty is not said.

    Built by ``facts_from_rows``, which keeps only confident measurements and the labels the label rule lets
    add; a test or benchmark may build facts directly, and then every field it sets counts as measured.
    """

    clip_id: str
    tempo_bpm: float | None = None  # only a confident tempo (facts.rules.TEMPO_PROB_MIN): a number may be said
    meter: int | None = None
    pace_word: str | None = None  # without a number: a tempo word true at both plausible tempi, or None
    key: str | None = None  # "A minor"
    loudness_lufs: float | None = None
    onset_rate: float | None = None
    speech_ratio: float | None = None
    instruments: tuple[str, ...] | None = None  # measured words; None: not measured
    genres: tuple[str, ...] | None = None
    moods: tuple[str, ...] | None = None
    vocals: str | None = None  # measured: vocal | female vocal | male vocal | instrumental
    chords: tuple[str, ...] = ()  # main chords as lead-sheet symbols, in the order first heard
    chord_change_rate: float | None = None  # chord changes per bar (only with two or more main chords)
    labelled_instruments: tuple[str, ...] = ()  # AudioSet label names the label rule lets add
    labelled_genres: tuple[str, ...] = ()
    labelled_moods: tuple[str, ...] = ()
    tempo_conf: float | None = None  # the numbers the confidence rules tested, kept for the evidence
    tempo_prob: float | None = None
    key_conf: float | None = None
    chord_coverage: float | None = None

    def words(self, kind: str) -> tuple[str, ...]:
        """Everything a text may name of ``kind`` (instruments, genres, moods): measured words, then labels."""
        return (*(getattr(self, kind) or ()), *getattr(self, f"labelled_{kind}"))

    @property
    def voice(self) -> str | None:
        return voice_name(self.vocals)

    @property
    def has_speech(self) -> bool:
        return self.speech_ratio is not None and self.speech_ratio >= SPEECH_RATIO_MIN

    def fingerprint(self) -> str:
        """A stable digest of everything a text could be written from (for prompt hashes)."""
        parts = [_text(getattr(self, f.name)) for f in fields(self)]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, tuple):
        return "|".join(value)
    return "none" if value is None else str(value)


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _bucket(value: float, table: Sequence[tuple[float, str]]) -> str:
    for upper, word in table:
        if value < upper:
            return word
    return table[-1][1]


def tempo_word(bpm: float) -> str:
    return _bucket(bpm, _TEMPO_WORDS)


@dataclass(frozen=True)
class TempoFact:
    """What a text may say about a clip's tempo: always a word, a number only when the rules allow one.

    Texts take their tempo from here (``tempo_fact``), never by formatting ``tempo_bpm`` themselves, so the
    decision whether a number may be said is made in one place."""

    word: str  # "slow", "upbeat": reads after "a/an" and before "tempo" or "pace"
    bpm: int | None  # None: say the word only


def tempo_fact(facts: MusicFacts) -> TempoFact | None:
    """The sayable tempo of ``facts`` (None when no tempo may be said)."""
    if facts.tempo_bpm is None:
        return None
    return TempoFact(tempo_word(facts.tempo_bpm), round(facts.tempo_bpm))


def loudness_word(lufs: float) -> str:
    return _bucket(lufs, _LOUDNESS_WORDS)


def density_word(onset_rate: float) -> str:
    return _bucket(onset_rate, _DENSITY_WORDS)


def chord_change_word(changes_per_bar: float) -> str:
    return _bucket(changes_per_bar, _CHORD_CHANGE_WORDS)


def meter_phrase(meter: int) -> str:
    return {3: "in 3/4 time", 4: "in 4/4 time", 2: "in 2/4 time", 6: "in 6/8 time"}.get(meter, f"in {meter}-beat bars")


def tempo_change_word(src_bpm: float | None, tgt_bpm: float | None) -> str | None:
    """ "faster"/"slower" when the tempo moved by more than TEMPO_CHANGE_MIN, else None."""
    if not src_bpm or not tgt_bpm:
        return None
    ratio = tgt_bpm / src_bpm
    if ratio > 1 + TEMPO_CHANGE_MIN:
        return "faster"
    if ratio < 1 - TEMPO_CHANGE_MIN:
        return "slower"
    return None


def join_words(words: Sequence[str], conj: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = [w for w in words if w]
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conj} {words[-1]}"


_A_BEFORE_VOWEL = ("uni", "use", "usu", "uk", "eu", "one")  # vowel letters read as a consonant sound
_MASS_NOUNS = frozenset(
    {"percussion", "mallet percussion", "scratching", "tapping", "strum", "pizzicato", "timpani", "change ringing"}
)


def article(phrase: str) -> str:
    """'a piano', 'an organ', 'an upbeat', 'a ukulele', 'an 80', 'an 18', 'a 120'."""
    first = phrase.split(" ", 1)[0].lower()
    if first[:1].isdigit():
        an = first.startswith("8") or first in ("11", "18")
    else:
        an = first[:1] in "aeiou" and not first.startswith(_A_BEFORE_VOWEL)
    return ("an " if an else "a ") + phrase


def is_plural(noun: str) -> bool:
    """'drums', 'strings', 'female vocals' are plural; 'bass' and mass nouns ('percussion') are not."""
    return noun not in _MASS_NOUNS and noun.endswith("s") and not noun.endswith("ss")


def with_article(noun: str) -> str:
    """'a piano', 'an organ'; plural and mass nouns stay bare ('drums', 'bagpipes', 'percussion')."""
    return noun if noun in _MASS_NOUNS or is_plural(noun) else article(noun)


def voice_name(vocals: str | None) -> str | None:
    """The measured voice as a noun phrase ("female vocals"); None when instrumental or unknown."""
    return _VOICE_NAMES.get(vocals or "")


def proper(word: str) -> str:
    """A measured word as printed inside a sentence ('indian' -> 'Indian')."""
    return _PROPER_WORDS.get(word, word)


def choose(options: Sequence[T], *keys: object) -> T:
    """Pick one option deterministically from the keys (a clip id, a slot, an attempt).

    A CRC of the keys, not ``hash()``, so the choice survives interpreter restarts (and it is cheap).
    """
    return options[zlib.crc32("\x1f".join(map(str, keys)).encode()) % len(options)]


def lower_label(name: str) -> str:
    """AudioSet names read as nouns inside a sentence ("Electric guitar" -> "electric guitar").

    Names that are acronyms or proper nouns keep their case ("Rhythm and blues", "Music of Africa").
    """
    if not name:
        return name
    first = name.split(" ", 1)[0]
    if first.isupper() or first in {"Music", "Christian", "Carnatic", "Hindustani", "Rhodes", "Hammond", "French"}:
        return name
    return name[0].lower() + name[1:]


def label_names(mids: Sequence[str], namer: LabelNamer, *, drop_music: bool = False) -> tuple[str, ...]:
    """Readable, de-duplicated names of AudioSet labels, in the given order.

    ``drop_music`` turns genre and mood names into adjectives ("Happy music" -> "happy").
    """
    out: list[str] = []
    for mid in mids:
        # "Keyboard (musical)" -> "keyboard"; "Wind instrument, woodwind instrument" -> "wind instrument"
        n = lower_label(namer(mid).split(" (", 1)[0].split(", ", 1)[0])
        if n.startswith("/") or n in _CATEGORY_LABELS:  # an unknown id is never printed as a name
            continue
        if drop_music and n.endswith(" music"):
            n = n[: -len(" music")]
        n = _PLURAL_LABELS.get(n, n)
        if n and n not in out:
            out.append(n)
    return tuple(out)


def _kind_words(
    kind: str, features: Mapping[str, Any], labels: Sequence[str] | None, namer: LabelNamer, vocals: str | None
) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """The measured words of ``kind`` and the label names allowed next to them; genres and moods are capped
    at MAX_STYLE_WORDS together, measured words first."""
    words = measured_words(features, kind)
    allowed = labels_allowed(kind, label_names(labels or (), namer, drop_music=kind != "instruments"), words, vocals)
    if kind == "instruments":
        return words, allowed
    kept = None if words is None else words[:MAX_STYLE_WORDS]
    return kept, allowed[: MAX_STYLE_WORDS - len(kept or ())]


def facts_from_rows(
    clip_id: str,
    features: Mapping[str, Any] | None,
    segment: Mapping[str, Any] | None,
    namer: LabelNamer,
) -> MusicFacts:
    """Combine a ``features`` row and a ``segments`` row (either may be missing) into what may be said.

    Tempo follows ``rules.tempo_statement``: the number and meter only with a calibrated tempo probability
    of at least TEMPO_PROB_MIN, else at most a word true at both plausible tempi; the key needs a confident
    key, chords a mostly chorded clip; the segment's labels pass the label rule (``rules.labels_allowed``) against the measured
    sets. At most MAX_STYLE_WORDS genres and moods are kept, measured words first.
    """
    f, s = features or {}, segment or {}
    tempo, tempo_conf, tempo_prob = _finite(f.get("tempo_bpm")), _finite(f.get("tempo_conf")), _finite(f.get("tempo_prob"))
    said = tempo_statement(tempo, tempo_conf, tempo_prob, _finite(f.get("tempo_alt_bpm")), tempo_word)
    tempo_ok = said.bpm is not None
    key, key_conf = f.get("key") or None, _finite(f.get("key_conf"))
    key_ok = confident(key, key_conf, KEY_CONF_MIN)
    summary = summarise_chords(f.get("beat_chords"), key)
    chords = confident_chords(summary)
    vocals = measured_vocals(f)
    sets = {kind: _kind_words(kind, f, s.get(kind), namer, vocals) for kind in KINDS}
    meter = f.get("meter")
    return MusicFacts(
        clip_id=clip_id,
        tempo_bpm=said.bpm,
        meter=int(meter) if meter and tempo_ok else None,
        pace_word=None if tempo_ok else said.word,
        key=key if key_ok else None,
        loudness_lufs=_finite(f.get("loudness_lufs")),
        onset_rate=_finite(f.get("onset_rate")),
        speech_ratio=_finite(f.get("speech_ratio")),
        instruments=sets["instruments"][0],
        genres=sets["genres"][0],
        moods=sets["moods"][0],
        vocals=vocals,
        chords=chords,
        chord_change_rate=_finite(f.get("chord_change_rate")) if len(chords) > 1 else None,
        labelled_instruments=sets["instruments"][1],
        labelled_genres=sets["genres"][1],
        labelled_moods=sets["moods"][1],
        tempo_conf=tempo_conf if said.word else None,
        tempo_prob=tempo_prob if said.word else None,
        key_conf=key_conf if key_ok else None,
        chord_coverage=summary.coverage if chords and summary else None,
    )
