"""Each claim against the measurements: supported, contradicted (measured confidently otherwise) or unverifiable.

A claim is *contradicted* only by a confident measurement: a tempo off by more than ``BPM_TOLERANCE`` at
every octave the beat tracker may have got wrong, a key the key CNN named with its confidence rule passed, a
voice where the tagger heard an instrumental, an instrument whose tag probability (and its family's) is below
the confident-absence threshold. It is *supported* by a measured word (or, for words the tagger has no
opinion on, by a segment label the label rule lets speak), and *unverifiable* otherwise, including every claim
about a clip whose analysis failed. MUEdit edit claims ("add X", "faster", "transpose to K") are checked
against the pair's measured difference and the two clips.

Why each constant has its value is said next to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from m2ugen_data.facts.rules import SPEECH_RATIO_MIN, TEMPO_PROB_MIN
from m2ugen_data.factcheck import extract as X
from m2ugen_data.factcheck.extract import Claim, extract_claims
from m2ugen_data.factcheck.heard import Heard, MeasuredTempo
from m2ugen_data.factcheck.vocabulary import TEMPO_RANGES, family

SUPPORTED, CONTRADICTED, UNVERIFIABLE = "supported", "contradicted", "unverifiable"
VERDICTS = (SUPPORTED, CONTRADICTED, UNVERIFIABLE)
VERSION = "factcheck-v2"  # bump when a rule or threshold changes what a verdict means

# The measured octave (x2, /2, x2/3, x3/2) is trusted when the calibrated tempo probability (tempo_prob)
# reaches the level at which a text may state the number (facts.rules.TEMPO_PROB_MIN: held out, 86 % of those
# tempos were right); below it a tempo claim is checked at every octave: "slow" on a clip measured at 150 BPM
# is unverifiable (it may be 75), not contradicted. Rows and facts without a tempo_prob fall back to the beat
# tracker's clarity, where octave errors came with values up to 0.69 on sources it was not tuned on.
OCTAVE_CONF_MIN = 0.7
# A metre claim is checked against the tracker's metre from this tempo_prob on (with a clear beat,
# facts.rules.TEMPO_CONF_MIN), lower than a stated number needs: the metre survives an octave error (a waltz
# at double tempo is still in three). Chosen on the GM dev set's dev split (bench/bench_factcheck.py): the
# lowest value at which no more true metres are contradicted than at TEMPO_PROB_MIN (1 of 41: a 3/4 piece
# measured in 4 at tempo_prob 0.86; at 0.6 a second, measured at three quarters of its tempo, joins it).
METER_PROB_MIN = 0.7
OCTAVE_FACTORS = (0.5, 2 / 3, 1.0, 1.5, 2.0)
# A stated BPM within this relative distance of the measurement (at some admitted octave) agrees with it:
# twice mir_eval's Acc1 window (4 %), since a writer rounds ("about 120").
BPM_TOLERANCE = 0.08
# A tempo word's admitted range (vocabulary.TEMPO_RANGES) is widened by this much either side.
TEMPO_WORD_TOLERANCE = 0.05
# Tag probability below which an instrument counts as confidently absent: ABSENT_MARGIN x the lowest
# probability of any clip of the GM dev set's dev split that has the instrument (41 clips through four
# soundfonts; bench/bench_factcheck.py --calibrate), only for words with ABSENT_MIN_PRESENT such clips.
# MusiCNN's probabilities of present and absent instruments overlap widely across soundfonts (a rendered guitar
# scored 0.018, a flute 0.0005), so a threshold fitted from where the absent clips lie (the earlier rule, fitted
# on one soundfont) contradicted 9 of 39 true instrument claims on the other split. Words missing here are
# never contradicted by an absence: too few dev clips have a flute, synth, harpsichord or harp, and the drums
# threshold (0.003, a rendered drum kit scored 0.006) lies under every dev clip without drums.
ABSENT_MARGIN = 0.5
ABSENT_MIN_PRESENT = 5
ABSENT_MAX: dict[str, float] = {"piano": 0.0175, "guitar": 0.0148, "strings": 0.0168, "violin": 0.0177, "cello": 0.0008}
# A speaking voice is confidently absent when silero VAD finds speech in under this share of the clip.
SPEECH_ABSENT_MAX = 0.02
_METER_BEATS: dict[str, frozenset[int]] = {
    "2/4": frozenset({2, 4}), "3/4": frozenset({3, 6}), "4/4": frozenset({4, 2}), "6/8": frozenset({2, 3, 6}),
    "12/8": frozenset({4, 6, 12}), "6/4": frozenset({6, 3}), "5/4": frozenset({5}), "7/8": frozenset({7}),
    "9/8": frozenset({3, 9}),
}
_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    verdict: str
    evidence: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        c = self.claim
        out = {"claim": c.label, "kind": c.kind, "value": c.value, "negated": c.negated, "text": c.text,
               "sentence": c.sentence, "verdict": self.verdict, "evidence": dict(self.evidence)}
        return out | ({"about": c.about} if c.about != "target" else {})


def _round(x: Any) -> Any:
    return round(x, 3) if isinstance(x, float) else x


def _ev(source: str, value: Any, conf: float | None = None, **more: Any) -> dict[str, Any]:
    out = {"source": source, "value": _round(list(value) if isinstance(value, tuple) else value)}
    if conf is not None:
        out["conf"] = _round(conf)
    return out | {k: _round(v) for k, v in more.items()}


@cache
def canonical(word: str) -> frozenset[tuple[str, str]]:
    """(kind, value) pairs a measured word or label name reads as ("female vocals" -> voice/female voice)."""
    return frozenset((c.kind, c.value) for c in extract_claims(word, bare_tempo=True) if not c.negated)


def _labelled(h: Heard, kind: str) -> set[str]:
    words = h.facts.labelled_instruments if kind == X.INSTRUMENT else getattr(h.facts, f"labelled_{kind}s", ())
    return {v for w in words for k, v in canonical(w) if k == kind}


def _absent(h: Heard, words: frozenset[str]) -> dict[str, float] | None:
    """The probabilities of ``words`` when every one is under its confident-absence threshold, else None."""
    ev = h.tag_evidence
    if ev is None or not words or any(w not in ev or w not in ABSENT_MAX for w in words):
        return None
    probs = {w: ev[w] for w in sorted(words)}
    return probs if all(p < ABSENT_MAX[w] for w, p in probs.items()) else None


# ---- per kind


def _instrument(c: Claim, h: Heard) -> tuple[str, dict[str, Any]]:
    fam = family(c.kind, c.value)
    measured = getattr(h.facts, f"{c.kind}s")
    heard = sorted(fam.backed_by & set(measured or ()))
    if heard:
        return (CONTRADICTED if c.negated else SUPPORTED), _ev(f"features.{c.kind}s", measured, None, matched=heard)
    if c.value in _labelled(h, c.kind):
        return (CONTRADICTED if c.negated else SUPPORTED), _ev(f"segments.{c.kind}s", sorted(_labelled(h, c.kind)))
    # genres and moods have no truth to calibrate an absence on: they are never contradicted by one
    absent = _absent(h, fam.absent_if) if c.kind == X.INSTRUMENT else None
    if absent is not None:
        thresholds = {w: ABSENT_MAX[w] for w in absent}
        return (SUPPORTED if c.negated else CONTRADICTED), _ev("features.tags", absent, None, absent_below=thresholds)
    if measured is None:
        return UNVERIFIABLE, _ev(f"features.{c.kind}s", None, None, why="not measured")
    return UNVERIFIABLE, _ev(f"features.{c.kind}s", measured, None, why="not heard, not confidently absent")


def _voice(c: Claim, h: Heard) -> tuple[str, dict[str, Any]]:
    vocals = h.facts.vocals
    ev = _ev("features.vocals", vocals)
    if vocals is None:
        return UNVERIFIABLE, ev | {"why": "no confident voice measurement"}
    if c.negated:
        return (SUPPORTED if vocals == "instrumental" else CONTRADICTED), ev
    if vocals == "instrumental":
        return CONTRADICTED, ev
    if c.value == "voice" or vocals == c.value.replace("voice", "vocal"):
        return SUPPORTED, ev
    if vocals == "vocal":
        return UNVERIFIABLE, ev | {"why": "a voice, gender not measured"}
    return CONTRADICTED, ev


def _speech(c: Claim, h: Heard) -> tuple[str, dict[str, Any]]:
    ratio = h.facts.speech_ratio
    ev = _ev("features.speech_ratio", ratio)
    if ratio is None:
        return UNVERIFIABLE, ev
    if ratio >= SPEECH_RATIO_MIN:
        return (CONTRADICTED if c.negated else SUPPORTED), ev
    if ratio < SPEECH_ABSENT_MAX:
        return (SUPPORTED if c.negated else CONTRADICTED), ev
    return UNVERIFIABLE, ev


def octave_confident(h: Heard) -> bool:
    t = h.measured_tempo
    if t is None:
        return False
    if t.prob is not None:
        return t.prob >= TEMPO_PROB_MIN
    return t.beat_conf is not None and t.beat_conf >= OCTAVE_CONF_MIN


def _tempo_ev(t: MeasuredTempo, **more: Any) -> dict[str, Any]:
    return _ev("features.tempo_bpm", t.bpm, t.beat_conf, prob=t.prob, **more)


def _tempo(c: Claim, h: Heard) -> tuple[str, dict[str, Any]]:
    t = h.measured_tempo
    if t is None:
        return UNVERIFIABLE, _ev("features.tempo_bpm", None, None, why="no clear beat")
    bpm = t.bpm
    sure = octave_confident(h)
    factors = (1.0,) if sure else OCTAVE_FACTORS
    if c.kind == X.BPM:
        claimed = float(c.value)

        def fits(x: float) -> bool:
            return abs(claimed / x - 1) <= BPM_TOLERANCE

    else:
        lo, hi = TEMPO_RANGES[c.value]

        def fits(x: float) -> bool:
            return lo * (1 - TEMPO_WORD_TOLERANCE) <= x < hi * (1 + TEMPO_WORD_TOLERANCE)

    ev = _tempo_ev(t, octave="confident" if sure else "uncertain")
    if fits(bpm):
        return SUPPORTED, ev
    other = [round(bpm * f, 1) for f in factors if f != 1.0 and fits(bpm * f)]
    return (UNVERIFIABLE, ev | {"fits_at": other}) if other else (CONTRADICTED, ev)


def parse_key(name: str) -> tuple[int, str | None] | None:
    """'Bb major' -> (10, 'major'); 'C#' -> (1, None); None when not a key name."""
    m = re.match(r"^([A-G])([#b]?)(?:\s+(major|minor))?$", name.strip())
    if not m:
        return None
    shift = {"#": 1, "b": -1}.get(m.group(2), 0)
    return (_PITCH[m.group(1)] + shift) % 12, m.group(3)


def _key(c: Claim, h: Heard) -> tuple[str, dict[str, Any]]:
    measured = parse_key(h.facts.key) if h.facts.key else None
    ev = _ev("features.key", h.facts.key, h.facts.key_conf)
    if measured is None:
        return UNVERIFIABLE, ev | {"why": "no confident key"}
    if c.kind == X.MODE:
        return (SUPPORTED if c.value == measured[1] else CONTRADICTED), ev
    claimed = parse_key(c.value)
    if claimed is None:
        return UNVERIFIABLE, ev
    same = claimed[0] == measured[0] and claimed[1] in (None, measured[1])
    return (SUPPORTED if same else CONTRADICTED), ev


def _meter(c: Claim, h: Heard) -> tuple[str, dict[str, Any]]:
    t = h.measured_tempo
    meter = None if t is None else t.meter
    ev = _ev("features.meter", meter, None if t is None else t.beat_conf, prob=None if t is None else t.prob)
    sure = t is not None and (octave_confident(h) or (t.prob is not None and t.prob >= METER_PROB_MIN))
    if meter is None or not sure:
        return UNVERIFIABLE, ev | {"why": "no confident metre"}
    return (SUPPORTED if meter in _METER_BEATS.get(c.value, frozenset()) else CONTRADICTED), ev


_CHECKS = {
    X.INSTRUMENT: _instrument, X.GENRE: _instrument, X.MOOD: _instrument, X.VOICE: _voice, X.SPEECH: _speech,
    X.TEMPO: _tempo, X.BPM: _tempo, X.KEY: _key, X.MODE: _key, X.METER: _meter,
}


def check_claim(c: Claim, h: Heard) -> Verdict:
    """The verdict on one descriptive claim about the clip ``h``."""
    if not h.measured:
        return Verdict(c, UNVERIFIABLE, {"source": "features", "why": "no successful analysis"})
    verdict, ev = _CHECKS[c.kind](c, h)
    return Verdict(c, verdict, ev)


# ---- edit requests against the pair


@dataclass(frozen=True)
class PairHeard:
    """A MUEdit pair as the checker sees it: both clips, and the words of the measured difference."""

    source: Heard
    target: Heard
    added: frozenset[tuple[str, str]] = frozenset()  # (kind, value) of added instruments/voices
    removed: frozenset[tuple[str, str]] = frozenset()
    tempo_change: str | None = None  # faster | slower | None (no measured change, or not measured)
    key_changed: bool | None = None  # None: a key was not confidently measured on both sides


def pair_heard(source: Heard, target: Heard, diff: Any) -> PairHeard:
    """From an ``EditDiff`` (dialogues.samples) and the two clips."""
    def words(ws: Sequence[str]) -> frozenset[tuple[str, str]]:
        return frozenset(kv for w in ws for kv in canonical(w))

    keys_known = bool(diff.key_src and diff.key_tgt)
    return PairHeard(source, target, words(diff.added_instruments), words(diff.removed_instruments),
                     diff.tempo_change, diff.key_changed if keys_known else None)


def _source_kind(value: str) -> str:
    return X.VOICE if "voice" in value else X.INSTRUMENT


def check_edit(c: Claim, pair: PairHeard) -> Verdict:
    """An edit claim against the measured difference: "add X" is supported when X was measured as added and
    contradicted when the target confidently lacks X; "remove X" when the source confidently lacks it; a tempo
    change when both clips' tempos are octave-confident and moved the other way (or not at all)."""
    src, tgt = pair.source, pair.target
    if not (src.measured and tgt.measured):
        return Verdict(c, UNVERIFIABLE, {"source": "pairs", "why": "a clip of the pair has no successful analysis"})
    kind = _source_kind(c.value)
    if c.kind in (X.ADD, X.REMOVE):
        listed = pair.added if c.kind == X.ADD else pair.removed
        diff_ev = _ev("pairs.difference", sorted(v for _, v in listed))
        if (kind, c.value) in listed:
            return Verdict(c, SUPPORTED, diff_ev)
        probe = Claim(kind, c.value, negated=False)
        on = tgt if c.kind == X.ADD else src  # an added source must be in the target, a removed one in the source
        v = check_claim(probe, on)
        if v.verdict == CONTRADICTED:
            return Verdict(c, CONTRADICTED, dict(v.evidence) | {"clip": "target" if on is tgt else "source"})
        return Verdict(c, UNVERIFIABLE, diff_ev | {"why": "not in the measured difference"})
    if c.kind == X.TEMPO_CHANGE:
        ev = _ev("pairs.tempo", pair.tempo_change, None, src_bpm=src.facts.tempo_bpm, tgt_bpm=tgt.facts.tempo_bpm)
        if pair.tempo_change == c.value:
            return Verdict(c, SUPPORTED, ev)
        if src.facts.tempo_bpm and tgt.facts.tempo_bpm and octave_confident(src) and octave_confident(tgt):
            return Verdict(c, CONTRADICTED, ev)
        return Verdict(c, UNVERIFIABLE, ev | {"why": "tempo change not measured with a confident octave"})
    # transpose
    if c.value:
        v = check_claim(Claim(X.KEY, c.value), tgt)
        return Verdict(c, v.verdict, v.evidence)
    ev = _ev("pairs.key", [src.facts.key, tgt.facts.key])
    if pair.key_changed is None:
        return Verdict(c, UNVERIFIABLE, ev)
    return Verdict(c, SUPPORTED if pair.key_changed else CONTRADICTED, ev)


def check_claims(claims: Sequence[Claim], target: Heard, pair: PairHeard | None = None) -> list[Verdict]:
    """Verdicts for ``claims`` about ``target`` (edit claims and "from ..." claims need the ``pair``)."""
    out = []
    for c in claims:
        if c.kind in X.EDIT_KINDS:
            if pair is None:  # an edit verb outside an edit request: read as a claim about the result
                kind = X.KEY if c.kind == X.TRANSPOSE else _source_kind(c.value)
                if c.kind == X.TEMPO_CHANGE or (c.kind == X.TRANSPOSE and not c.value):
                    out.append(Verdict(c, UNVERIFIABLE, {"source": "pairs", "why": "no pair"}))
                    continue
                out.append(check_claim(Claim(kind, c.value, c.kind == X.REMOVE, c.text, c.sentence), target))
                continue
            out.append(check_edit(c, pair))
        elif c.about == "source" and pair is not None:
            out.append(check_claim(c, pair.source))
        else:
            out.append(check_claim(c, target))
    return out


def tally(verdicts: Sequence[Verdict]) -> dict[str, int]:
    counts = dict.fromkeys(VERDICTS, 0)
    for v in verdicts:
        counts[v.verdict] += 1
    return counts


def consistency(verdicts: Sequence[Verdict]) -> float | None:
    """Supported / (supported + contradicted): the share of checkable claims that agree with what was
    heard; None when nothing could be checked (an unverifiable claim neither helps nor hurts)."""
    t = tally(verdicts)
    checked = t[SUPPORTED] + t[CONTRADICTED]
    return t[SUPPORTED] / checked if checked else None
