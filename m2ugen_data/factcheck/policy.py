"""From verdicts to decisions: which texts are kept, and the JSON every record stores about its claims.

Bad input is screened first, so it becomes a recorded rejection with a reason and never a crash: an empty
text, one over ``FactPolicy.max_chars``, or one that is not English (the vocabulary and the rules are
English). Then a caption with a contradicted claim is rejected, or with ``caption_action="drop"`` loses the
sentences that hold one; a dialogue turn with a contradicted claim is rejected with the claim as the reason
(``contradicted:<claim>``), which the dialogue writer retries under its usual rules. ``max_unverifiable``
optionally rejects texts where too large a share of the claims could not be checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

from m2ugen_data.errors import M2UGenError
from m2ugen_data.factcheck import check as K
from m2ugen_data.factcheck import vocabulary as V
from m2ugen_data.factcheck.extract import extract_claims, sentences
from m2ugen_data.factcheck.heard import Heard

CAPTION_ACTIONS = ("reject", "drop")
# English words that any sentence of a description or request uses; a text with too few of them (and of the
# music vocabulary) is not English. Measured on MusicCaps: no caption falls under NON_ENGLISH_SHARE
# (bench/bench_factcheck.py prints the count).
_ENGLISH = frozenset(
    """a an the and or but of with in on at to for by from as is are was be been it its this that these there
    here has have had while over into under their his her they he she we you your which who what when where
    than then very more less some all one two no not only also can may just plays playing played sounds like
    add make give change remove replace turn bring take drop keep use swap slow speed raise lower
    music song track piece tune melody rhythm beat tempo key""".split()
)
NON_ENGLISH_SHARE = 0.15  # below this share of English or vocabulary words (texts of 5+ words): not English
_MIN_WORDS_TO_JUDGE = 5


@dataclass(frozen=True)
class FactPolicy:
    """What the writers do with the verdicts (the CLI's --claims-* options)."""

    caption_action: str = "reject"  # reject | drop (drop the sentences with a contradicted claim)
    max_unverifiable: float | None = None  # reject above this share of unverifiable claims (None: no limit)
    max_chars: int = 4000  # longer text is rejected before it is read

    def __post_init__(self) -> None:
        if self.caption_action not in CAPTION_ACTIONS:
            raise M2UGenError(f"unknown caption action {self.caption_action!r}; expected one of {', '.join(CAPTION_ACTIONS)}")
        if self.max_unverifiable is not None and not 0 <= self.max_unverifiable <= 1:
            raise M2UGenError(f"max unverifiable share must be in [0, 1], got {self.max_unverifiable}")

    def key(self) -> str:
        return json.dumps({"version": K.VERSION, **asdict(self)}, sort_keys=True)


DEFAULT_POLICY = FactPolicy()


@cache
def _known_words() -> frozenset[str]:
    tables = (V.INSTRUMENTS, V.GENRES, V.MOODS, V.TEMPO_WORDS)
    words = {w for t in tables for p in V.surface_table(t) for w in p.split()}
    return frozenset(words | set(V.VOICE_WORDS) | _ENGLISH)


def screen(text: str | None, policy: FactPolicy = DEFAULT_POLICY) -> str | None:
    """Why ``text`` cannot be checked at all (empty | too_long | not_english), or None."""
    if text is None or not text.strip():
        return "empty"
    if len(text) > policy.max_chars:
        return "too_long"
    letters = [ch for ch in text if ch.isalpha()]
    if not letters or sum(ch.isascii() for ch in letters) < 0.9 * len(letters):
        return "not_english"
    words = re.findall(r"[a-z]+", text.lower())
    if len(words) >= _MIN_WORDS_TO_JUDGE and sum(w in _known_words() for w in words) < NON_ENGLISH_SHARE * len(words):
        return "not_english"
    return None


@dataclass
class TextCheck:
    """The verdicts on one text and what the policy made of them."""

    verdicts: list[K.Verdict] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # empty: the text passes
    text: str | None = None  # the text to keep (sentences dropped under caption_action="drop"); None: rejected
    dropped: list[str] = field(default_factory=list)  # sentences dropped

    @property
    def consistency(self) -> float | None:
        return K.consistency(self.verdicts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"claims": [v.to_json() for v in self.verdicts], **K.tally(self.verdicts),
                               "consistency": _round(self.consistency)}
        if self.reasons:
            out["reasons"] = self.reasons
        if self.dropped:
            out["dropped"] = self.dropped
        return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def contradiction_reasons(verdicts: Sequence[K.Verdict]) -> list[str]:
    """``contradicted:<claim>`` for each contradicted claim, in reading order, once each."""
    return list(dict.fromkeys(f"contradicted:{v.claim.label}" for v in verdicts if v.verdict == K.CONTRADICTED))


def _unverifiable_reason(verdicts: Sequence[K.Verdict], policy: FactPolicy) -> list[str]:
    if policy.max_unverifiable is None or not verdicts:
        return []
    share = K.tally(verdicts)[K.UNVERIFIABLE] / len(verdicts)
    return [f"unverifiable:{share:.2f}"] if share > policy.max_unverifiable else []


def check_text(
    text: str | None,
    target: Heard,
    *,
    pair: K.PairHeard | None = None,
    policy: FactPolicy = DEFAULT_POLICY,
    mask: str | None = None,
) -> TextCheck:
    """Screen, read and check one text. ``pair``: the text is an edit request of this MUEdit pair. ``mask``:
    a passage quoted from another modality (an image caption inside a MUImage request) whose words describe
    the picture, not the music, and are not read."""
    why = screen(text, policy)
    if why is not None:
        return TextCheck(reasons=[why], text=None)
    assert text is not None
    readable = _masked(text, mask) if mask else text
    claims = extract_claims(readable, edit=pair is not None)
    verdicts = K.check_claims(claims, target, pair)
    reasons = contradiction_reasons(verdicts) + _unverifiable_reason(verdicts, policy)
    return TextCheck(verdicts, reasons, None if reasons else text)


def _masked(text: str, passage: str) -> str:
    """``text`` with every occurrence of ``passage`` (ignoring case and a final period) blanked out."""
    core = passage.strip().rstrip(".").strip()
    if len(core) < 3:
        return text
    return re.sub(re.escape(core), lambda m: " " * len(m.group()), text, flags=re.IGNORECASE)


def check_caption(text: str | None, heard: Heard, policy: FactPolicy = DEFAULT_POLICY) -> TextCheck:
    """A caption: rejected when a claim is contradicted, or (``caption_action="drop"``) kept without the
    sentences that hold one, unless nothing is left."""
    result = check_text(text, heard, policy=policy)
    if policy.caption_action != "drop" or result.text is not None or not result.verdicts:
        return result
    bad = {v.claim.sentence for v in result.verdicts if v.verdict == K.CONTRADICTED}
    parts = sentences(text or "")
    kept = [s for i, s in enumerate(parts) if i not in bad]
    if not bad or not kept:
        return result
    rest = check_text(" ".join(kept), heard, policy=policy)
    rest.dropped = [s for i, s in enumerate(parts) if i in bad]
    return rest


def record_json(checks: dict[str, TextCheck] | TextCheck) -> str:
    """The JSON a manifest row stores: one text's check, or {side: check} for a dialogue's two turns."""
    body = checks.to_json() if isinstance(checks, TextCheck) else {k: c.to_json() for k, c in checks.items()}
    return json.dumps({"version": K.VERSION, **({"text": body} if isinstance(checks, TextCheck) else body)}, sort_keys=True)


def combined_consistency(checks: Sequence[TextCheck]) -> float | None:
    return K.consistency([v for c in checks for v in c.verdicts])


__all__ = ["DEFAULT_POLICY", "FactPolicy", "TextCheck", "check_caption", "check_text", "screen"]
