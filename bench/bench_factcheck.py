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
   built by ``m2ugen-data devset build`` and analysed through ``bench/hearing_sets.py``'s cache, shared with
   ``bench/bench_hearing.py``):
   the grounded caption of every clip is checked against its own measurements (flagged = any contradicted
   claim: the false-alarm rate), against another clip's measurements (captions of A on B), and with one
   planted claim that the clip's rendered truth makes false (an absent instrument, a voice on an
   instrumental render, a key a fifth away, a tempo word false at the true tempo, the other metre), and with
   one claim the truth makes true (a present instrument, no vocals, the true key, tempo word, BPM and metre):
   contradicting one of those is a false alarm that the grounded captions, written from the same
   measurements, cannot show.

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
from m2ugen_data.factcheck.policy import screen

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
        screened = Counter(screen(r["caption"]) for r in mine)
        lines.append(f"| {split} | {len(mine)} | (screened out: not English, empty, too long) | {sum(n for k, n in screened.items() if k)} captions | | | | |")
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


# ---------------------------------------------------------------- contradictions on the GM dev set


def _devset(root: Path, workers: int) -> tuple[list[dict], dict[str, dict]]:
    """Truth rows and analysed feature rows (the hearing benches' cache; analyses what it lacks), with the
    tag words re-derived by the current rule and instrument head."""
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    from hearing_sets import feature_rows

    from m2ugen_data.devset.truth import read_truth

    truth = read_truth(root / "gm").to_pylist()
    return truth, feature_rows(root, "gm", truth, workers)


def _word_absent(word: str, families: set[str]) -> bool:
    """A tagger word whose every GM family is missing from the render (instrument_head.WORD_FAMILIES)."""
    from m2ugen_data.analysis.instrument_head import WORD_FAMILIES

    fams = WORD_FAMILIES.get(word, ())
    return bool(fams) and not (set(fams) & families)


def calibrate_absence(truth: list[dict], rows: dict[str, dict]) -> str:
    """Per instrument word: ABSENT_MARGIN x the lowest tag probability of any dev clip that has the
    instrument (no threshold with fewer than ABSENT_MIN_PRESENT such clips). Across soundfonts the tags of
    present and absent instruments overlap widely, so a threshold from where the absent clips lie (the
    earlier rule) contradicted present instruments on the other split; this one asks only that no present
    instrument seen so far, with room to spare, falls under it."""
    from m2ugen_data.analysis.instrument_head import WORD_FAMILIES
    from m2ugen_data.factcheck.check import (
        ABSENT_MARGIN,
        ABSENT_MAX,
        ABSENT_MIN_PRESENT,
    )
    from m2ugen_data.factcheck.heard import tag_evidence

    dev = [t for t in truth if t["split"] == "dev" and t["clip_id"] in rows]
    lines = ["| word | clips (dev) | with it | lowest when present | threshold | absent clips under it | current |",
             "|---|---|---|---|---|---|---|"]
    for word in sorted(w for w, fams in WORD_FAMILIES.items() if fams):
        pts = [(tag_evidence(rows[t["clip_id"]])[word], _word_absent(word, set(t["families"]))) for t in dev]
        present = [p for p, absent in pts if not absent]
        low = min(present, default=None)
        thr = ABSENT_MARGIN * low if low is not None and len(present) >= ABSENT_MIN_PRESENT else None
        under = sum(absent and p < thr for p, absent in pts) if thr is not None else 0
        lines.append(f"| {word} | {len(dev)} | {len(present)} | {'-' if low is None else f'{low:.4f}'} "
                     f"| {'never' if thr is None else f'{thr:.4f}'} | {under} | {ABSENT_MAX.get(word, 'never')} |")
    return "\n".join(lines)


_FIFTH = {"C": "G", "G": "D", "D": "A", "A": "E", "E": "B", "B": "F#", "F#": "C#", "C#": "G#", "G#": "D#",
          "D#": "A#", "A#": "F", "F": "C", "Db": "Ab", "Ab": "Eb", "Eb": "Bb", "Bb": "F", "Gb": "Db"}


def plants(t: dict) -> dict[str, str]:
    """One planted sentence per kind that the clip's rendered truth makes false."""
    from m2ugen_data.analysis.tag_words import INSTRUMENT_TAGS
    from m2ugen_data.facts.measured import choose, with_article

    fams, bpm = set(t["families"]), float(t["tempo_bpm"])
    out = {}
    absent = [w for w in sorted(INSTRUMENT_TAGS) if _word_absent(w, fams)]
    if absent:
        out["instrument"] = f"It features {with_article(choose(absent, t['clip_id'], 'plant'))}."
    if "voice" not in fams:
        out["voice"] = "A female vocalist sings over it."
    root, mode = t["key"].split()
    out["key"] = f"It is in {_FIFTH.get(root, 'C')} {mode}."
    out["tempo word"] = "The tempo is very slow." if bpm >= 100 else "The tempo is very fast."
    out["tempo number"] = f"It runs at about {round(bpm * 1.3)} BPM."
    out["metre"] = f"It is in {'3/4' if t['meter'] != 3 else '4/4'} time."
    return out


def truths(t: dict) -> dict[str, str]:
    """One sentence per kind that the clip's rendered truth makes true: a rule that contradicts one of these
    raises false alarms that the grounded captions (written from the same measurements) cannot show."""
    from m2ugen_data.analysis.instrument_head import WORD_FAMILIES
    from m2ugen_data.facts.measured import choose, tempo_word, with_article

    fams, bpm = set(t["families"]), float(t["tempo_bpm"])
    out = {}
    present = [w for w in sorted(WORD_FAMILIES) if set(WORD_FAMILIES[w]) & fams]
    if present:
        out["instrument"] = f"It features {with_article(choose(present, t['clip_id'], 'true'))}."
    if "voice" not in fams:
        out["voice"] = "It is an instrumental piece without vocals."
    out["key"] = f"It is in {t['key']}."
    out["tempo word"] = f"The tempo is {tempo_word(bpm)}."
    out["tempo number"] = f"It runs at about {round(bpm)} BPM."
    out["metre"] = f"It is in {t['meter']}/4 time."
    return out


def _caught(sentences: dict[str, str], heard, counts: Counter[str], hits: Counter[str]) -> None:
    from m2ugen_data.factcheck.check import CONTRADICTED
    from m2ugen_data.factcheck.policy import check_text

    for kind, sentence in sentences.items():
        counts[kind] += 1
        hits[kind] += any(v.verdict == CONTRADICTED for v in check_text(sentence, heard).verdicts)


def devset_table(root: Path, workers: int) -> str:
    """Grounded captions checked on their own clip, on another clip, and with one planted false claim."""
    from m2ugen_data.captions.grounded import grounded_caption
    from m2ugen_data.factcheck.heard import heard_from_rows
    from m2ugen_data.factcheck.policy import check_caption

    truth, rows = _devset(root, workers)
    lines = ["| split | clips | check | flagged or caught | rate |", "|---|---|---|---|---|"]
    for split in ("dev", "test"):
        mine = [t for t in truth if t["split"] == split and t["clip_id"] in rows]
        heard = {t["clip_id"]: heard_from_rows(t["clip_id"], rows[t["clip_id"]], None, str) for t in mine}
        captions = {c: grounded_caption(h.facts) for c, h in heard.items()}
        own = sum(bool(check_caption(captions[c], heard[c]).reasons) for c in heard)
        lines.append(f"| {split} | {len(mine)} | own caption flagged (false alarms) | {own} | {_ratio(own, len(mine))} |")
        others = [t for t in mine]
        cross = 0
        for k, t in enumerate(mine):  # clip A's caption on the next clip of another sibling group
            b = next(o for o in others[k + 1 :] + others[:k] if o["group_id"] != t["group_id"])
            cross += bool(check_caption(captions[t["clip_id"]], heard[b["clip_id"]]).reasons)
        lines.append(f"| {split} | {len(mine)} | caption of A on B flagged | {cross} | {_ratio(cross, len(mine))} |")
        caught: Counter[str] = Counter()
        planted: Counter[str] = Counter()
        wrong: Counter[str] = Counter()
        said: Counter[str] = Counter()
        for t in mine:
            _caught(plants(t), heard[t["clip_id"]], planted, caught)
            _caught(truths(t), heard[t["clip_id"]], said, wrong)
        for kind in planted:
            lines.append(f"| {split} | {len(mine)} | planted false {kind} caught | {caught[kind]} / {planted[kind]} | {_ratio(caught[kind], planted[kind])} |")
        total, hit = sum(planted.values()), sum(caught.values())
        lines.append(f"| {split} | {len(mine)} | **planted, all kinds** | {hit} / {total} | {_ratio(hit, total)} |")
        for kind in said:
            lines.append(f"| {split} | {len(mine)} | true {kind} contradicted (false alarm) | {wrong[kind]} / {said[kind]} | {_ratio(wrong[kind], said[kind])} |")
        total, hit = sum(said.values()), sum(wrong.values())
        lines.append(f"| {split} | {len(mine)} | **true claims contradicted, all kinds** | {hit} / {total} | {_ratio(hit, total)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--musiccaps", type=Path, default=MUSICCAPS, help="musiccaps-public.csv (Google, CC BY-SA 4.0)")
    ap.add_argument("--split", choices=("tune", "test", "both"), default="both")
    ap.add_argument("--errors", type=int, default=0, help="print the N most frequent errors of the tune split")
    ap.add_argument("--devsets", type=Path, default=REPO / ".devsets", help="dev-set root (gm/ and bench_hearing's cache/)")
    ap.add_argument("--workers", type=int, default=1, help="analysis processes for clips the cache lacks")
    ap.add_argument("--calibrate", action="store_true", help="print confident-absence thresholds fitted on the dev split")
    args = ap.parse_args()
    splits = ("tune", "test") if args.split == "both" else (args.split,)
    if args.musiccaps.exists():
        print("## Claim extraction on MusicCaps (captions vs their own aspect lists)\n")
        print(musiccaps_table(args.musiccaps, splits, args.errors))
    else:
        print(f"MusicCaps list not found at {args.musiccaps}: extraction table skipped")
    if (args.devsets / "gm" / "truth.parquet").is_file():
        if args.calibrate:
            print("\n## Confident-absence thresholds (GM dev split)\n")
            print(calibrate_absence(*_devset(args.devsets, args.workers)))
        print("\n## Contradictions on the General-MIDI dev set (grounded captions)\n")
        print(devset_table(args.devsets, args.workers))
    else:
        print(f"no GM dev set under {args.devsets} (m2ugen-data devset build --kind gm): contradiction table skipped")


if __name__ == "__main__":
    main()

