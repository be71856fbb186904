"""What was measured and labelled about one clip, and the plain words for each measurement.

The grounded captioner and the dialogue templates both speak from these facts, so a tempo is called
"upbeat" in a caption and in the edit request that mentions it, and a test can check a text against the
same numbers it was written from.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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
# Integrated loudness (LUFS, exclusive upper bounds); streaming masters sit near -14.
_LOUDNESS_WORDS: tuple[tuple[float, str], ...] = (
    (-30.0, "very quiet"),
    (-22.0, "soft"),
    (-14.0, "moderately loud"),
    (math.inf, "loud"),
)
# Onsets per second: how busy the texture is.
_DENSITY_WORDS: tuple[tuple[float, str], ...] = (
    (1.5, "sparse"),
    (4.0, "steady"),
    (math.inf, "busy"),
)
SPEECH_RATIO_MIN = 0.2  # fraction of the clip with detected speech above which we mention a voice
TEMPO_CHANGE_MIN = 0.04  # relative tempo difference above which an edit counts as faster/slower


@dataclass(frozen=True)
class MusicFacts:
    """Measured features plus label names of one clip; any measurement may be missing (None)."""

    clip_id: str
    tempo_bpm: float | None = None
    meter: int | None = None
    key: str | None = None  # "A minor"
    loudness_lufs: float | None = None
    onset_rate: float | None = None
    speech_ratio: float | None = None
    instruments: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    moods: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """A stable digest of everything a text could be written from (for prompt hashes)."""
        parts = [
            self.clip_id,
            _num(self.tempo_bpm),
            str(self.meter),
            str(self.key),
            _num(self.loudness_lufs),
            _num(self.onset_rate),
            _num(self.speech_ratio),
            "|".join(self.instruments),
            "|".join(self.genres),
            "|".join(self.moods),
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _num(x: float | None) -> str:
    return "none" if x is None else f"{x:.3f}"


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


def loudness_word(lufs: float) -> str:
    return _bucket(lufs, _LOUDNESS_WORDS)


def density_word(onset_rate: float) -> str:
    return _bucket(onset_rate, _DENSITY_WORDS)


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
        if n.startswith("/"):  # an id the ontology does not know: never print it as a name
            continue
        if drop_music and n.endswith(" music"):
            n = n[: -len(" music")]
        if n and n not in out:
            out.append(n)
    return tuple(out)


def facts_from_rows(
    clip_id: str,
    features: Mapping[str, Any] | None,
    segment: Mapping[str, Any] | None,
    namer: LabelNamer,
) -> MusicFacts:
    """Combine a ``features`` row and a ``segments`` row (either may be missing) into facts."""
    f = features or {}
    s = segment or {}
    meter = f.get("meter")
    return MusicFacts(
        clip_id=clip_id,
        tempo_bpm=_finite(f.get("tempo_bpm")),
        meter=int(meter) if meter else None,
        key=f.get("key") or None,
        loudness_lufs=_finite(f.get("loudness_lufs")),
        onset_rate=_finite(f.get("onset_rate")),
        speech_ratio=_finite(f.get("speech_ratio")),
        instruments=label_names(s.get("instruments") or (), namer),
        genres=label_names(s.get("genres") or (), namer, drop_music=True),
        moods=label_names(s.get("moods") or (), namer, drop_music=True),
    )
