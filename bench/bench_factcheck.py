"""How well the claim checker reads real text and catches false claims; prints Markdown tables.

1. **Extraction on MusicCaps** (Google, CC BY-SA 4.0; an evaluation set, never training data for the
   pipeline; read from ``--musiccaps``, default ``/work/shared/eval_sets/musiccaps-public.csv``, skipped when
   absent). Each caption's claims (``factcheck.extract``) are scored against the claims of its own aspect
   list, written by the same musician (each aspect read as a tag: a bare "fast" is a tempo). Precision and
   recall per claim kind, micro-averaged over captions. The rows are split in two by a SHA-256 of
   ``ytid_start`` fixed before any row was read: the vocabulary and rules were tuned on ``tune`` only;
   ``test`` is the held-out half. Caveats: an aspect the caption does not put into words counts as a miss,
   and a word the caption says but the aspects omit counts as a false claim, so both figures are lower
   bounds of the extractor's own accuracy; words outside the vocabulary are invisible to both sides.
2. **Contradictions on real sound** (``--devsets``, default ``<repo>/.devsets``; the General-MIDI dev set
   built by ``m2ugen-data devset build`` and analysed by ``bench/bench_hearing.py``, whose cache is read):
   the grounded caption of every clip is checked against its own measurements (flagged = any contradicted
   claim: the false-alarm rate), against another clip's measurements (captions of A on B), and with one
   planted claim that the clip's rendered truth makes false (an absent instrument, a voice on an
   instrumental render, a key a fifth away, a tempo word false at the true tempo, the other metre).

    .venv/bin/python bench/bench_factcheck.py                      # both parts, both splits
    .venv/bin/python bench/bench_factcheck.py --split tune         # extraction on the tuning half only
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from m2ugen_data.factcheck import vocabulary as V
from m2ugen_data.factcheck.extract import extract_claims, normalise

REPO = Path(__file__).resolve().parents[1]
MUSICCAPS = Path("/work/shared/eval_sets/musiccaps-public.csv")  # Google MusicCaps, CC BY-SA 4.0
KINDS = ("instrument", "voice", "tempo", "genre", "mood", "key", "meter", "bpm")


def split_of(ytid: str, start_s: str) -> str:
    """'tune' or 'test' by a SHA-256 of the segment id (fixed before the data was looked at)."""
    return "test" if int(hashlib.sha256(f"{ytid}_{start_s}".encode()).hexdigest(), 16) % 2 else "tune"


def aspect_claims(aspects: Iterable[str]) -> set[tuple[str, str, bool]]:
    """The claims of an aspect list: each aspect read on its own, as a tag ("fast" is a tempo)."""
    return {c.key() for a in aspects for c in extract_claims(a, bare_tempo=True)}


def caption_claims(caption: str) -> set[tuple[str, str, bool]]:
    return {c.key() for c in extract_claims(caption)}


_SURFACE = {
    "instrument": V.surface_table(V.INSTRUMENTS), "genre": V.surface_table(V.GENRES),
    "mood": V.surface_table(V.MOODS), "tempo": V.surface_table(V.TEMPO_WORDS),
}


def worded(low: str, claim: tuple[str, str, bool]) -> bool:
    """Whether the caption uses any word of the claim's value at all (in any sense, anywhere): a truth claim
    the caption never puts into words cannot be read from it, whatever the extractor does."""
    kind, value, negated = claim
    if kind == "voice":
        words: Iterable[str] = (*V.VOICE_WORDS, *V.NO_VOICE_PHRASES)
    elif kind in _SURFACE:
        words = [p for p, v in _SURFACE[kind].items() if v == value]
    else:
        return True
    return any(re.search(rf"(?<![a-z]){re.escape(w)}", low) for w in words)


def score(rows: Iterable[tuple[str, set, set]]) -> dict[str, list[int]]:
    """kind -> [true positives, predicted, truth, predicted where the aspects name the kind, their true
    positives, truth the caption words, its true positives] over (caption, predicted, truth) rows."""
    out: dict[str, list[int]] = {k: [0] * 7 for k in KINDS}
    for caption, pred, truth in rows:
        low = normalise(caption)
        for kind in KINDS:
            p = {c for c in pred if c[0] == kind}
            t = {c for c in truth if c[0] == kind}
            said = {c for c in t if worded(low, c)}
            o = out[kind]
            o[0] += len(p & t)
            o[1] += len(p)
            o[2] += len(t)
            if t:
                o[3] += len(p)
                o[4] += len(p & t)
            o[5] += len(said)
            o[6] += len(said & p)
    return out


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "-"


def musiccaps_table(path: Path, splits: tuple[str, ...], show_errors: int = 0) -> str:
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    lines = [
        "| split | captions | kind | precision | recall | claims (caption / aspects) | precision where the aspects name the kind | recall of what the caption words |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in splits:
        mine = [r for r in rows if split_of(r["ytid"], r["start_s"]) == split]
        t0 = time.perf_counter()
        pairs = [(caption_claims(r["caption"]), aspect_claims(ast.literal_eval(r["aspect_list"]))) for r in mine]
        seconds = time.perf_counter() - t0
        scored = score((r["caption"], p, t) for r, (p, t) in zip(mine, pairs, strict=True))
        for kind, (tp, n_pred, n_truth, n_named, tp_named, n_said, tp_said) in scored.items():
            if n_pred or n_truth:
                lines.append(
                    f"| {split} | {len(mine)} | {kind} | {_ratio(tp, n_pred)} | {_ratio(tp, n_truth)} | {n_pred} / {n_truth} "
                    f"| {_ratio(tp_named, n_named)} | {_ratio(tp_said, n_said)} |"
                )
        lines.append(f"| {split} | {len(mine)} | (speed) | {len(mine) / seconds:,.0f} captions/s | | | | |")
        if show_errors and split == "tune":
            _show_errors(mine, pairs, show_errors)
    return "\n".join(lines)


def _show_errors(rows: list[dict], pairs: list[tuple[set, set]], n: int) -> None:
    """The most frequent disagreements of the tune split (what the vocabulary was tuned from)."""
    fp, fn = Counter(), Counter()
    for pred, truth in pairs:
        fp.update(c for c in pred - truth if c[0] in KINDS)
        fn.update(c for c in truth - pred if c[0] in KINDS)
    print("most frequent false claims (tune):", fp.most_common(n))
    print("most frequent missed claims (tune):", fn.most_common(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--musiccaps", type=Path, default=MUSICCAPS, help="musiccaps-public.csv (Google, CC BY-SA 4.0)")
    ap.add_argument("--split", choices=("tune", "test", "both"), default="both")
    ap.add_argument("--errors", type=int, default=0, help="print the N most frequent errors of the tune split")
    args = ap.parse_args()
    splits = ("tune", "test") if args.split == "both" else (args.split,)
    if args.musiccaps.exists():
        print("## Claim extraction on MusicCaps (captions vs their own aspect lists)\n")
        print(musiccaps_table(args.musiccaps, splits, args.errors))
    else:
        print(f"MusicCaps list not found at {args.musiccaps}: extraction table skipped")


if __name__ == "__main__":
    main()

