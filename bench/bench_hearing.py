"""How well the pipeline hears music from sources it was never tuned on: leave-one-source-out beside a split.

Loads the three dev sets (``hearing_sets``: GM/MMA renders, the scores set's MIDI files and score
collections through four soundfonts, real recordings), analyses what the cache lacks, then measures every
fitted part on clips its fit never saw and prints Markdown tables:

- **Tempo** (GM + scores): per source, the beat tracker as decoded (plain madmom RNN + DBN) and the tempo
  decision fitted on every *other* source (``tempo_octave.fit_model``, whose calibration is itself fitted
  out-of-source inside the training sources): Acc1, Acc2, beat F, downbeat F. Pooled rows: all held-out
  predictions (leave-one-source-out), and the random split (fit on ``dev`` of all sources, report ``test``).
- **Tempo confidence**: a reliability table of ``tempo_prob`` (leave-one-source-out predictions): per bin and
  for ``tempo_prob >= c``, how often the tempo was right; and what captions state (``facts.rules``).
- **Instruments** (GM + scores): the calibrated head fitted leave-one-soundfont-out and leave-one-source-out
  against the old tag thresholds: precision/recall per word and pooled over the words captions name; and on
  the real recordings (no instrument truth): words said per music and per non-music clip.
- **MUEdit pairs** (GM siblings): the miner on rows whose tempo comes from the model not fitted on ``mma``
  and whose instruments come from the head not fitted on the clip's soundfont.
- **Music filter** (recordings + all music): per Debian package held out, the music-likeness model fitted on
  the rest: music kept / non-music rejected; the old filter (labels + speech + loudness) beside it.

Nothing measured on a held-out source is fitted on it. ``--quick`` caps each source at a few clips (and skips
pairs). ``bench/fit_hearing.py`` fits the shipped parameters on everything.

    .venv/bin/python bench/bench_hearing.py [--devsets .devsets] [--quick] [--json out.json]
    .venv/bin/python bench/bench_hearing.py --speed 20      # seconds per clip by analyser, one core
    .venv/bin/python bench/bench_hearing.py --tempo-against 6c7f7d5   # + the hand-set octave rule of that revision
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hearing_sets import MUSIC_MID, Clip, head_inputs, load_clips  # noqa: E402

from m2ugen_data.devset import metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUICK_CAP = 12  # clips per source with --quick
RELIABILITY_BINS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0001)


# --------------------------------------------------------------------------- tempo


def decisions(clips: Sequence[Clip], model) -> dict[str, Any]:
    """clip id -> TempoDecision under ``model``."""
    from m2ugen_data.analysis import tempo_octave

    return {c.clip_id: tempo_octave.decide(c.octave_inputs(), c.raw_rhythm(), model, c.activations()) for c in clips}


def fit_tempo(train: Sequence[Clip], version: str):
    from m2ugen_data.analysis import tempo_octave

    usable = [c for c in train if c.octave_inputs() is not None]
    return tempo_octave.fit_model([c.octave_inputs() for c in usable], [c.truth["tempo_bpm"] for c in usable],
                                  [c.source for c in usable], version)  # fmt: skip


def held_out(clips: Sequence[Clip], key: Callable[[Clip], str], fit: Callable[[list[Clip]], Any],
             apply: Callable[[list[Clip], Any], dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Leave-one-group-out: each group's clips get ``apply`` of the model ``fit`` on the other groups."""
    out: dict[str, Any] = {}
    for g in sorted({key(c) for c in clips}):
        test = [c for c in clips if key(c) == g]
        out |= apply(test, fit([c for c in clips if key(c) != g]))
    return out


def rhythm_scores(clips: Sequence[Clip], tempo: dict[str, float | None], beats: dict[str, Any], downs: dict[str, Any]) -> dict[str, float]:
    t = metrics.tempo_scores([c.truth["tempo_bpm"] for c in clips], [tempo[c.clip_id] for c in clips])
    b = metrics.beat_scores([c.truth["beats"] for c in clips], [beats[c.clip_id] for c in clips])
    d = metrics.beat_scores([c.truth["downbeats"] for c in clips], [downs[c.clip_id] for c in clips])
    return {"clips": len(clips), "acc1": t["acc1"], "acc2": t["acc2"], "beat_f": b["f_measure"], "downbeat_f": d["f_measure"]}


def tempo_report(clips: list[Clip]) -> tuple[list[dict], dict[str, Any]]:
    tclips = [c for c in clips if c.has_tempo_truth]
    t0 = time.perf_counter()
    loso = held_out(tclips, lambda c: c.source, lambda tr: fit_tempo(tr, "loso"), decisions)
    dev = [c for c in tclips if c.split == "dev"]
    split_model = fit_tempo(dev, "split")
    split = decisions([c for c in tclips if c.split == "test"], split_model)
    raw = {c.clip_id: c.raw_rhythm() for c in tclips}

    def dbn(cs: list[Clip]) -> dict[str, float]:
        return rhythm_scores(cs, {c.clip_id: raw[c.clip_id].tempo_bpm for c in cs}, {c.clip_id: raw[c.clip_id].beats for c in cs},
                             {c.clip_id: raw[c.clip_id].downbeats for c in cs})  # fmt: skip

    def ours(cs: list[Clip], d: dict[str, Any]) -> dict[str, float]:
        return rhythm_scores(cs, {c.clip_id: d[c.clip_id].tempo_bpm for c in cs}, {c.clip_id: d[c.clip_id].beats for c in cs},
                             {c.clip_id: d[c.clip_id].downbeats for c in cs})  # fmt: skip

    rows = []
    for src in sorted({c.source for c in tclips}):
        cs = [c for c in tclips if c.source == src]
        b, o = dbn(cs), ours(cs, loso)
        slow = [c for c in cs if c.truth["tempo_bpm"] < 90]
        rows.append({"source": src, "clips": len(cs), "slow (<90)": len(slow), "DBN acc1": b["acc1"], "DBN acc2": b["acc2"],
                     "acc1": o["acc1"], "acc2": o["acc2"], "DBN beat F": b["beat_f"], "beat F": o["beat_f"],
                     "downbeat F": o["downbeat_f"]})  # fmt: skip
    b, o = dbn(tclips), ours(tclips, loso)
    rows.append({"source": "**all, leave-one-source-out**", "clips": len(tclips), "slow (<90)": sum(c.truth["tempo_bpm"] < 90 for c in tclips),
                 "DBN acc1": b["acc1"], "DBN acc2": b["acc2"], "acc1": o["acc1"], "acc2": o["acc2"], "DBN beat F": b["beat_f"],
                 "beat F": o["beat_f"], "downbeat F": o["downbeat_f"]})  # fmt: skip
    test = [c for c in tclips if c.split == "test"]
    b, o = dbn(test), ours(test, split)
    rows.append({"source": "all, random split (test)", "clips": len(test), "slow (<90)": sum(c.truth["tempo_bpm"] < 90 for c in test),
                 "DBN acc1": b["acc1"], "DBN acc2": b["acc2"], "acc1": o["acc1"], "acc2": o["acc2"], "DBN beat F": b["beat_f"],
                 "beat F": o["beat_f"], "downbeat F": o["downbeat_f"]})  # fmt: skip
    print(f"(tempo: {len({c.source for c in tclips}) + 1} fits incl. nested calibration in {time.perf_counter() - t0:.1f} s)")
    return rows, loso


def errors_by_ratio(clips: list[Clip], d: dict[str, Any]) -> list[dict]:
    """Where the held-out decisions go wrong: estimated / true tempo, by truth tempo band."""
    bands = ((0, 70), (70, 90), (90, 120), (120, 150), (150, 999))
    out = []
    for lo, hi in bands:
        cs = [c for c in clips if c.has_tempo_truth and lo <= c.truth["tempo_bpm"] < hi]
        kinds: Counter[str] = Counter()
        for c in cs:
            est = d[c.clip_id].tempo_bpm
            kinds[_ratio_name(c.truth["tempo_bpm"], est)] += 1
        out.append({"true tempo": f"{lo}-{hi}", "clips": len(cs)} | {k: kinds.get(k, 0) for k in ("right", "x2", "x1/2", "x3/2", "x2/3", "x3", "x1/3", "other", "none")})
    return out


def _ratio_name(truth: float, est: float | None) -> str:
    if est is None:
        return "none"
    for name, f in (("right", 1.0), ("x2", 2.0), ("x1/2", 0.5), ("x3/2", 1.5), ("x2/3", 2 / 3), ("x3", 3.0), ("x1/3", 1 / 3)):
        if abs(est / (truth * f) - 1.0) <= metrics.TEMPO_TOLERANCE:
            return name
    return "other"


def reliability(clips: list[Clip], d: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Per tempo_prob bin and cumulatively (>= c): clips, mean tempo_prob, share right (Acc1)."""
    from m2ugen_data.facts.rules import TEMPO_PROB_MIN

    tc = [c for c in clips if c.has_tempo_truth]
    p = np.array([d[c.clip_id].prob for c in tc])
    right = np.array([metrics.tempo_acc1(c.truth["tempo_bpm"], d[c.clip_id].tempo_bpm) for c in tc])
    bins = []
    for lo, hi in zip(RELIABILITY_BINS, RELIABILITY_BINS[1:]):
        m = (p >= lo) & (p < hi)
        bins.append({"tempo_prob": f"[{lo:.2f}, {min(hi, 1):.2f})", "clips": int(m.sum()),
                     "mean tempo_prob": float(p[m].mean()) if m.any() else None, "right (acc1)": float(right[m].mean()) if m.any() else None})  # fmt: skip
    cum = []
    for c in (0.5, 0.6, 0.7, 0.8, TEMPO_PROB_MIN, 0.9, 0.95):
        m = p >= c
        cum.append({"tempo_prob >=": c, "share of clips": float(m.mean()), "right (acc1)": float(right[m].mean()) if m.any() else None,
                    "holds (right >= c)": bool(m.any() and right[m].mean() >= c)})  # fmt: skip
    return bins, cum


_OLD_TEMPO = """
import json, sys
from m2ugen_data.analysis import fast_stft, rhythm, tempo_octave
from m2ugen_data.audio_io import load_audio
fast_stft.install()
models = rhythm.load_rhythm_models()
out = {}
for cid, path in json.loads(sys.argv[1]):
    y, _ = load_audio(path, sr=rhythm.SAMPLE_RATE)
    act = rhythm.beat_activations(y, models)
    d = tempo_octave.correct_tempo(act, rhythm.decode_rhythm(act, models))
    out[cid] = [d.tempo_bpm, [float(b) for b in d.beats], [float(b) for b in d.downbeats]]
print(json.dumps(out))
"""


def tempo_at_revision(root: Path, rev: str, clips: list[Clip]) -> dict[str, tuple]:
    """The tempo decision (and its grid) of the package at git revision ``rev`` on every tempo clip, run in a
    child process on a copy of that revision; cached per revision under ``<root>/cache``."""
    import subprocess
    import tempfile

    cache = root / "cache" / f"tempo-at-{rev}.json"
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [(c.clip_id, str((root / c.set / c.truth["path"]).resolve())) for c in clips if c.clip_id not in done]
    if todo:
        print(f"tempo of {len(todo)} clips with the package at {rev} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(["git", "archive", rev, "m2ugen_data"], cwd=REPO, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            proc = subprocess.run([sys.executable, "-c", _OLD_TEMPO, json.dumps(todo)], cwd=tmp, check=True,
                                  capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": tmp})  # fmt: skip
        done |= json.loads(proc.stdout.strip().splitlines()[-1])
        from m2ugen_data.atomic import write_bytes_atomic

        write_bytes_atomic(cache, json.dumps(done).encode())
    return {cid: tuple(v) for cid, v in done.items()}


def against_rows(clips: list[Clip], old: dict[str, tuple], loso: dict[str, Any], rev: str) -> list[dict]:
    """Per source: the tempo decision at ``rev`` (fixed, not refitted) beside the leave-one-source-out one."""
    rows = []
    tclips = [c for c in clips if c.has_tempo_truth]
    for src in [*sorted({c.source for c in tclips}), "all"]:
        cs = [c for c in tclips if src in ("all", c.source)]
        o = rhythm_scores(cs, {c.clip_id: old[c.clip_id][0] for c in cs}, {c.clip_id: old[c.clip_id][1] for c in cs},
                          {c.clip_id: old[c.clip_id][2] for c in cs})  # fmt: skip
        n = rhythm_scores(cs, {c.clip_id: loso[c.clip_id].tempo_bpm for c in cs}, {c.clip_id: loso[c.clip_id].beats for c in cs},
                          {c.clip_id: loso[c.clip_id].downbeats for c in cs})  # fmt: skip
        rows.append({"source": src, "clips": len(cs), f"acc1 at {rev}": o["acc1"], f"acc2 at {rev}": o["acc2"],
                     "acc1 now (held out)": n["acc1"], "acc2 now (held out)": n["acc2"]})  # fmt: skip
    return rows


# --------------------------------------------------------------------------- instruments


def fit_head(train: list[Clip], key: Callable[[Clip], str]):
    from m2ugen_data.analysis import instrument_head

    train = [c for c in train if c.row.get("tags_mtt") is not None]
    return instrument_head.fit_head(head_inputs(train), [c.truth["families"] for c in train], [key(c) for c in train], "held-out")


def head_words(clips: list[Clip], head) -> dict[str, list[str]]:
    from m2ugen_data.analysis import derived

    return {c.clip_id: (derived.tag_columns(derived.stored_tags(c.row), timbre=c.row["timbre"], head=head)["instruments"] or [])
            for c in clips if c.row.get("tags_mtt") is not None}  # fmt: skip


def instrument_scores(clips: list[Clip], words: dict[str, list[str]]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Pooled over the head's words and per word: precision (said words right), recall (right words said)."""
    from m2ugen_data.analysis.instrument_head import WORD_FAMILIES, WORDS

    said = right_said = present = found = 0
    per = {w: Counter() for w in WORDS}
    for c in clips:
        if c.clip_id not in words:
            continue
        fams = set(c.truth["families"])
        heard = {w for w in WORDS if any(f in fams for f in WORD_FAMILIES[w])}
        got = {w for w in words[c.clip_id] if w in WORD_FAMILIES}
        said += len(got)
        right_said += len(got & heard)
        present += len(heard)
        found += len(got & heard)
        for w in WORDS:
            per[w]["said"] += w in got
            per[w]["right"] += w in got and w in heard
            per[w]["present"] += w in heard
    pooled = {"precision": right_said / said if said else math.nan, "recall": found / present if present else math.nan,
              "words said per clip": said / max(1, len(words))}  # fmt: skip
    by_word = {w: {"present": n["present"], "said": n["said"], "precision": n["right"] / n["said"] if n["said"] else math.nan,
                   "recall": n["right"] / n["present"] if n["present"] else math.nan} for w, n in per.items()}  # fmt: skip
    return pooled, by_word


def instrument_report(clips: list[Clip]) -> tuple[list[dict], list[dict], list[dict]]:
    from m2ugen_data.analysis import derived

    ic = [c for c in clips if c.has_tempo_truth and c.row.get("tags_mtt") is not None]
    old = {c.clip_id: derived.tag_columns(derived.stored_tags(c.row), head=None)["instruments"] or [] for c in ic}
    losf = held_out(ic, lambda c: c.soundfont or "?", lambda tr: fit_head(tr, lambda c: c.soundfont or "?"), head_words)
    loso = held_out(ic, lambda c: c.source, lambda tr: fit_head(tr, lambda c: c.source), head_words)
    summary, per_word = [], {}
    for name, words in (("MusiCNN tag thresholds (before)", old), ("head, leave-one-soundfont-out", losf),
                        ("head, leave-one-source-out", loso)):  # fmt: skip
        pooled, by_word = instrument_scores(ic, words)
        summary.append({"instrument words": name, "clips": len(ic)} | pooled)
        per_word[name] = by_word
    words_rows = []
    for w in per_word["head, leave-one-soundfont-out"]:
        row: dict[str, Any] = {"word": w, "present": per_word["head, leave-one-soundfont-out"][w]["present"]}
        for name, short in (("MusiCNN tag thresholds (before)", "before"), ("head, leave-one-soundfont-out", "LOSF"),
                            ("head, leave-one-source-out", "LOSO")):  # fmt: skip
            row[f"{short} P"] = per_word[name][w]["precision"]
            row[f"{short} R"] = per_word[name][w]["recall"]
        words_rows.append(row)
    real = [c for c in clips if c.set == "recordings" and c.row.get("tags_mtt") is not None]
    shipped = head_words(real, True)
    old_real = {c.clip_id: derived.tag_columns(derived.stored_tags(c.row), head=None)["instruments"] or [] for c in real}
    real_rows = []
    for label, cs in (("music", [c for c in real if c.truth["is_music"]]), ("non-music", [c for c in real if not c.truth["is_music"]])):
        real_rows.append({"recordings": label, "clips": len(cs),
                          "words/clip before": float(np.mean([len(old_real[c.clip_id]) for c in cs])) if cs else None,
                          "words/clip head": float(np.mean([len(shipped[c.clip_id]) for c in cs])) if cs else None,
                          "clips with a word, head": float(np.mean([bool(shipped[c.clip_id]) for c in cs])) if cs else None})  # fmt: skip
    return summary, words_rows, real_rows


# --------------------------------------------------------------------------- pairs


def pair_report(clips: list[Clip], tempo: dict[str, Any]) -> list[dict]:
    """Sibling recall/precision on the GM set with held-out tempo and held-out instrument words."""
    from m2ugen_data.pairs.evaluation import evaluate
    from m2ugen_data.schemas import FEATURES

    gm = [c for c in clips if c.set == "gm"]
    losf = held_out([c for c in clips if c.has_tempo_truth and c.row.get("tags_mtt") is not None],
                    lambda c: c.soundfont or "?", lambda tr: fit_head(tr, lambda c: c.soundfont or "?"), head_words)  # fmt: skip
    feats = []
    for c in gm:
        r = dict(c.row)
        d = tempo.get(c.clip_id)
        if d is not None and r.get("status") == "ok":
            r.update(c.on_grid(d))
        if c.clip_id in losf:
            r["instruments"] = losf[c.clip_id]
        feats.append(r)
    table = pa.Table.from_pylist(feats, schema=FEATURES.schema)
    truth = pa.Table.from_pylist([c.truth for c in gm])
    out = []
    for split in (None, "dev", "test"):
        ev = evaluate(table, truth, split=split)
        out.append({"split": split or "all", "clips": ev.clips, "true pairs": ev.true_pairs, "pairs": ev.pairs,
                    "recall": ev.recall, "precision": ev.precision, "violations": len(ev.violations), "twin pairs": ev.twin_pairs})  # fmt: skip
    return out


# --------------------------------------------------------------------------- music filter


def filter_report(clips: list[Clip]) -> list[dict]:
    """Per recordings package held out: music kept / non-music rejected with the likeness model fitted on
    every other clip (other packages, and all GM/scores music); the old filter beside it."""
    from m2ugen_data.analysis import music_likeness
    from m2ugen_data.analysis.derived import rederive
    from m2ugen_data.analysis.music_filter import ClipLabels, MusicFilterConfig, apply_filter

    labels = ClipLabels(labels=(MUSIC_MID,))
    usable = [c for c in clips if c.row.get("status") == "ok" and c.row.get("music_descriptors")]
    is_music = {c.clip_id: bool(c.truth.get("is_music", True)) for c in clips}
    verdict: dict[str, bool] = {}
    for pkg in sorted({c.source for c in clips if c.set == "recordings"}):
        train = [c for c in usable if c.source != pkg]
        model = music_likeness.fit_model(np.array([c.row["music_descriptors"] for c in train]),
                                         np.array([float(is_music[c.clip_id]) for c in train]), "held-out")  # fmt: skip
        for c in clips:
            if c.set == "recordings" and c.source == pkg:
                verdict[c.clip_id] = bool(apply_filter(rederive(dict(c.row), model=model, head=None), labels, MusicFilterConfig())["is_music"])
    old_cfg = MusicFilterConfig(min_music_score=0.0, speech_exempt_music_score=math.inf)
    old = {c.clip_id: bool(apply_filter(dict(c.row), labels, old_cfg)["is_music"]) for c in clips if c.set == "recordings"}
    rows = []
    for name, v in (("labels+speech+loudness (before)", old), ("music score, leave-one-package-out", verdict)):
        rec = [c for c in clips if c.set == "recordings"]
        s = metrics.music_filter_scores([is_music[c.clip_id] for c in rec], [v[c.clip_id] for c in rec], [c.truth["category"] for c in rec])
        rows.append({"filter": name, "clips": len(rec), "music kept": s["recall"],
                     "non-music rejected": float(np.mean([not v[c.clip_id] for c in rec if not is_music[c.clip_id]]))}
                    | {f"{k} right": val for k, val in s["per_category"].items()})  # fmt: skip
    per_pkg = []
    for pkg in sorted({c.source for c in clips if c.set == "recordings"}):
        cs = [c for c in clips if c.set == "recordings" and c.source == pkg]
        per_pkg.append({"held-out package": pkg, "clips": len(cs), "music": sum(is_music[c.clip_id] for c in cs),
                        "right": float(np.mean([verdict[c.clip_id] == is_music[c.clip_id] for c in cs]))})  # fmt: skip
    return rows + per_pkg


# --------------------------------------------------------------------------- output


def markdown(title: str, rows: list[dict[str, Any]]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"### {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def speed(root: Path, clips: list[Clip], n: int) -> None:
    """Seconds per clip by analyser in this process (one core), on ``n`` GM clips."""
    from m2ugen_data.analysis import analyze

    analyze.init_worker()
    chosen = [c for c in clips if c.set == "gm"][:n]
    totals: Counter[str] = Counter()
    for c in chosen:
        _, timings = analyze.analyse_file(c.clip_id, root / "gm" / c.truth["path"])
        totals.update(timings)
    print(f"\nseconds per 10 s clip, one process, {len(chosen)} GM clips")
    print("| analyser | s/clip |\n|---|---|")
    for stage, secs in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {stage} | {secs / len(chosen):.3f} |")
    print(f"\nfull analysis {len(chosen) / totals['total']:.2f} clips/s/core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devsets", type=Path, default=REPO / ".devsets", help="dev-set root (and cache)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-build", action="store_true", help="fail instead of building a missing set")
    ap.add_argument("--quick", action="store_true", help=f"at most {QUICK_CAP} clips per source, no pair mining")
    ap.add_argument("--speed", type=int, default=0, metavar="N", help="time N clips per analyser and stop")
    ap.add_argument("--json", type=Path, default=None, help="also write the tables here")
    ap.add_argument("--tempo-against", default=None, metavar="REV",
                    help="also the tempo decision of the package at git revision REV (e.g. the hand-set octave rule)")
    args = ap.parse_args()
    clips = load_clips(args.devsets, args.workers, not args.no_build, QUICK_CAP if args.quick else None)
    if args.speed:
        speed(args.devsets, clips, args.speed)
        return
    counts = Counter((c.set, c.source) for c in clips)
    print(f"{len(clips)} clips: " + ", ".join(f"{s}/{src} {n}" for (s, src), n in sorted(counts.items())))
    report: dict[str, list[dict]] = {}
    report["tempo"], loso = tempo_report(clips)
    report["tempo errors (leave-one-source-out)"] = errors_by_ratio(clips, loso)
    if args.tempo_against:
        tclips = [c for c in clips if c.has_tempo_truth]
        old = tempo_at_revision(args.devsets, args.tempo_against, tclips)
        report[f"tempo: the decision at {args.tempo_against} vs now"] = against_rows(clips, old, loso, args.tempo_against)
    report["tempo_prob reliability"], report["tempo_prob >= c"] = reliability(clips, loso)
    report["instruments"], report["instruments per word"], report["instrument words on real recordings"] = instrument_report(clips)
    if not args.quick:
        report["MUEdit sibling pairs (GM set)"] = pair_report(clips, loso)
    report["music filter (recordings)"] = filter_report(clips)
    for title, rows in report.items():
        print(markdown(title, rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
