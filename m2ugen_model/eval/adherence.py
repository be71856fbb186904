"""Adherence: does the generated or edited music have what the request asked for?

FAD, KL and CLAP compare distributions or overall text-audio fit; they say nothing about whether "a piano
piece at 90 BPM in A minor" came out at 90 BPM, in A minor, with a piano, or whether "remove the drums"
removed them. Here the data pipeline's own analysers (``m2ugen_data.analysis``: madmom beats + the octave
rule, the CNN key model, the deep-chroma chord recogniser, MusiCNN instrument words) measure every generated
clip, and each thing the request named is checked (as MusicBench/Mustango measure control adherence):

- tempo within ``TEMPO_TOL`` (4 %) of the asked tempo (also reported with octave errors forgiven);
- key: the same key;
- chords: the share of the asked chord labels that the clip's beat chords contain (root and quality);
- instruments asked present are among the measured instrument words; those asked absent are not.

What a request names comes from its row's fields (``tempo_bpm``, ``key``, ``chords``, ``instruments``,
``absent``: exact, preferred) or, failing those, from its prompt text (``parse_prompt``: "at 120 BPM",
"in A minor", "with a piano", "without drums", "replace the piano with a violin").

The analysers live in ``m2ugen_data``; this module imports them lazily, inside ``m2ugen_model/eval/`` only
(the one declared exception to ``m2ugen_model`` not importing the data pipeline).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPO_TOL = 0.04
INSTRUMENT_WORDS = ("piano", "guitar", "strings", "violin", "cello", "harp", "harpsichord", "flute", "sitar",
                    "synth", "drums")  # the analysis' instrument vocabulary (analysis.tag_words.INSTRUMENT_TAGS)
_SYNONYMS = {"drum": "drums", "percussion": "drums", "violins": "violin", "guitars": "guitar",
             "synthesizer": "synth", "synthesiser": "synth", "synths": "synth", "pianos": "piano",
             "string": "strings", "flutes": "flute", "cellos": "cello"}
_TEMPO = re.compile(r"(\d{2,3}(?:\.\d+)?)\s*(?:bpm|beats per minute)", re.I)
_KEY = re.compile(r"\b([A-G])\s*(#|b|sharp|flat)?\s+(major|minor)\b", re.I)
_WORD = r"(" + "|".join(sorted({*INSTRUMENT_WORDS, *_SYNONYMS}, key=len, reverse=True)) + r")"
_REPLACE = re.compile(rf"replac\w*\s+(?:the\s+|a\s+)?{_WORD}\s+with\s+(?:the\s+|a\s+|an\s+)?{_WORD}", re.I)
_ABSENT = re.compile(rf"\b(?:without|no|remove|removing|drop|mute|take out)\s+(?:the\s+|any\s+)?{_WORD}", re.I)
_MENTION = re.compile(rf"\b{_WORD}\b", re.I)


@dataclass
class Target:
    tempo_bpm: float | None = None
    key: str | None = None
    chords: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.tempo_bpm is None and self.key is None and not (self.chords or self.present or self.absent)


def _word(w: str) -> str:
    w = w.lower()
    return _SYNONYMS.get(w, w)


def parse_prompt(text: str) -> Target:
    """What a free-text request names (tempo, key, instruments present and absent)."""
    t = Target()
    if m := _TEMPO.search(text):
        t.tempo_bpm = float(m.group(1))
    if m := _KEY.search(text):
        acc = {"#": "#", "sharp": "#", "b": "b", "flat": "b"}.get((m.group(2) or "").lower(), "")
        t.key = f"{m.group(1).upper()}{acc} {m.group(3).lower()}"
    absent: list[str] = []
    present: list[str] = []
    for m in _REPLACE.finditer(text):
        absent.append(_word(m.group(1)))
        present.append(_word(m.group(2)))
    absent += [_word(m.group(1)) for m in _ABSENT.finditer(text)]
    present += [w for w in (_word(m.group(1)) for m in _MENTION.finditer(text)) if w not in absent]
    t.absent = sorted(set(absent))
    t.present = sorted(set(present) - set(absent))
    return t


def target_of(row: Mapping[str, Any], prompt: str | None) -> Target:
    """The row's structured fields where given, the prompt's text for the rest."""
    parsed = parse_prompt(prompt or "")
    return Target(
        tempo_bpm=float(row["tempo_bpm"]) if row.get("tempo_bpm") is not None else parsed.tempo_bpm,
        key=row.get("key") or parsed.key,
        chords=list(row.get("chords") or []),
        present=[_word(w) for w in row.get("instruments") or []] or parsed.present,
        absent=[_word(w) for w in row.get("absent") or []] or parsed.absent,
    )


def _root_quality(label: str) -> str:
    """mir_eval-style ``A:min7`` -> ``A:min``; ``N``/``X`` stay."""
    root, _, quality = label.partition(":")
    quality = "min" if quality.startswith("min") else "maj" if quality else "maj"
    return f"{root}:{quality}" if root not in ("N", "X") else root


def check(target: Target, measured: Mapping[str, Any]) -> dict[str, Any]:
    """Per asked attribute: what was asked, what was measured, and whether it was met."""
    out: dict[str, Any] = {}
    tempo = measured.get("tempo_bpm")
    if target.tempo_bpm is not None:
        ratio = (tempo / target.tempo_bpm) if tempo else math.nan
        octave = min((abs(ratio * k - 1) for k in (0.5, 1, 2)), default=math.inf) if tempo else math.inf
        out["tempo"] = {"asked": target.tempo_bpm, "measured": tempo,
                        "met": bool(tempo) and abs(ratio - 1) <= TEMPO_TOL, "met_any_octave": octave <= TEMPO_TOL}
    if target.key is not None:
        out["key"] = {"asked": target.key, "measured": measured.get("key"),
                      "met": (measured.get("key") or "").lower() == target.key.lower()}
    if target.chords:
        heard = {_root_quality(c) for c in measured.get("beat_chords") or []}
        asked = [_root_quality(c) for c in target.chords]
        share = sum(c in heard for c in asked) / len(asked)
        out["chords"] = {"asked": target.chords, "share_heard": share, "met": share >= 0.5}
    words = set(measured.get("instruments") or [])
    if target.present:
        out["instruments_present"] = {"asked": target.present, "measured": sorted(words),
                                      "met": all(w in words for w in target.present)}
    if target.absent:
        out["instruments_absent"] = {"asked": target.absent, "measured": sorted(words),
                                     "met": not any(w in words for w in target.absent)}
    return out


def default_measure(path: Path) -> dict[str, Any]:
    """The data pipeline's analysis of one clip (models loaded once per process)."""
    from m2ugen_data.analysis.analyze import analyse_file

    row, _ = analyse_file("eval_clip_0", path)
    if row["status"] != "ok":
        raise ValueError(f"analysis {row['status']}: {row['reason']}")
    return row


ATTRIBUTES = ("tempo", "key", "chords", "instruments_present", "instruments_absent")


def adherence(files: Mapping[str, Path], rows: Mapping[str, Mapping[str, Any]], prompt_of: Callable[[Mapping], str | None],
              *, measure: Callable[[Path], Mapping[str, Any]] = default_measure
              ) -> tuple[dict[str, float], dict[str, int], list[dict[str, Any]], list[tuple[str, str]]]:
    """(metric -> share met, metric -> requests asking, per-clip items, failures) over the generated clips
    whose row names something measurable."""
    met: dict[str, list[bool]] = {a: [] for a in ATTRIBUTES}
    octave: list[bool] = []
    items, failures = [], []
    for stem in sorted(files):
        row = rows.get(stem)
        if row is None:
            continue
        target = target_of(row, prompt_of(row))
        if target.empty:
            continue
        try:
            measured = measure(files[stem])
        except (ValueError, OSError) as exc:
            failures.append((stem, f"adherence: {str(exc).splitlines()[0]}"))
            continue
        result = check(target, measured)
        for attr, r in result.items():
            met[attr].append(bool(r["met"]))
        if "tempo" in result:
            octave.append(bool(result["tempo"]["met_any_octave"]))
        items.append({"id": stem, **result})
    metrics = {f"adherence_{a}": sum(v) / len(v) for a, v in met.items() if v}
    counts = {f"adherence_{a}": len(v) for a, v in met.items() if v}
    if octave:
        metrics["adherence_tempo_any_octave"] = sum(octave) / len(octave)
        counts["adherence_tempo_any_octave"] = len(octave)
    return metrics, counts, items, failures


__all__ = ["ATTRIBUTES", "TEMPO_TOL", "Target", "adherence", "check", "parse_prompt", "target_of"]
