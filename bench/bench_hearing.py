"""How well the pipeline hears real sounds: the General-MIDI and recordings dev sets, scored per split.

Builds (or reuses) the dev sets under ``--devsets`` (default ``<repo>/.devsets``; ``m2ugen-data devset
build``), analyses every clip with the pipeline's analyser (``analyse_file``, cached per analyser version
in ``<devsets>/cache``), and prints Markdown tables per set and split:

- GM set: tempo Acc1/Acc2, beat and downbeat F (mir_eval), chord majmin accuracy (mir_eval.chord),
  instrument precision/recall against the rendered programs' families (only families a tag word can name),
  MUEdit sibling recall/precision (``pairs.evaluation``: every written pair re-checked against every rule);
- recordings set: music-filter accuracy per category (music kept, speech/sfx/ambience/crowd rejected).

The baseline row is plain madmom (downbeat RNN + DBN, the analyser before octave correction) for rhythm,
and the music filter without the measured music score (labels + speech + loudness) for the filter. Every
clip is given the AudioSet label "Music", as a music-subtree segment would have, so the filter is judged on
the audio alone. Tune on ``dev``, report ``test``.

Derived columns (tag words, music score) are recomputed from the cached measurements with the current rule
and model (``analysis.derived``), so re-calibrating needs no re-analysis:

    .venv/bin/python bench/bench_hearing.py                 # tables (analyses what the cache lacks)
    .venv/bin/python bench/bench_hearing.py --calibrate     # fit the music-likeness model on the dev split,
                                                            # write data/music_likeness.json, sweep tag thresholds
    .venv/bin/python bench/bench_hearing.py --speed 20      # seconds per clip by analyser, one core
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.devset import metrics
from m2ugen_data.devset.truth import TRUTH_FILE, read_truth

REPO = Path(__file__).resolve().parents[1]
MUSIC_MID = "/m/04rlf"
SPLITS = ("dev", "test")
# tag word -> the GM families it names (a "strings" word is right for a violin or cello part too)
WORD_FAMILIES: dict[str, tuple[str, ...]] = {
    "piano": ("piano",),
    "guitar": ("guitar",),
    "strings": ("strings", "violin", "cello"),
    "violin": ("violin", "strings"),
    "cello": ("cello", "strings"),
    "harp": ("harp",),
    "harpsichord": ("harpsichord",),
    "flute": ("flute",),
    "synth": ("synth",),
    "drums": ("drums",),
    "sitar": (),
}


# --------------------------------------------------------------------------- analysis (cached)


def _pipeline_job(job: tuple[str, str]) -> dict[str, Any]:
    from m2ugen_data.analysis.analyze import analyse_file
    from m2ugen_data.analysis.music_filter import ClipLabels

    row, _ = analyse_file(job[0], job[1], labels=ClipLabels(labels=(MUSIC_MID,)))
    return row


def _madmom_job(job: tuple[str, str]) -> dict[str, Any]:
    from m2ugen_data.analysis import rhythm
    from m2ugen_data.analysis.analyze import init_worker
    from m2ugen_data.audio_io import load_audio

    init_worker()
    from m2ugen_data.analysis.analyze import _MODELS

    y, _ = load_audio(job[1], sr=rhythm.SAMPLE_RATE)
    rh = rhythm.analyse_rhythm(y, _MODELS.rhythm)  # type: ignore[union-attr]
    return {"clip_id": job[0], "tempo_bpm": rh.tempo_bpm, "beats": list(map(float, rh.beats)),
            "downbeats": list(map(float, rh.downbeats))}  # fmt: skip


def _run(fn, jobs: list[tuple[str, str]], workers: int) -> list[dict[str, Any]]:
    if workers <= 1 or len(jobs) <= 1:
        return list(map(fn, jobs))
    from m2ugen_data.analysis.analyze import init_worker

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker) as pool:
        return list(pool.map(fn, jobs, chunksize=2))


def cached_rows(root: Path, name: str, truth: list[dict], kind: str, workers: int) -> dict[str, dict[str, Any]]:
    """Rows per clip for ``kind`` (pipeline | madmom), analysing only what the cache lacks."""
    from m2ugen_data.analysis.analyze import ANALYSER_VERSION
    from m2ugen_data.atomic import write_bytes_atomic

    version = ANALYSER_VERSION if kind == "pipeline" else "madmom-rnn-dbn"
    cache = root / "cache" / f"{kind}-{name}-{hashlib.sha1(version.encode()).hexdigest()[:12]}.parquet"
    rows: dict[str, dict[str, Any]] = {}
    if cache.is_file():
        rows = {r["clip_id"]: r for r in pq.read_table(cache).to_pylist()}
    todo = [(t["clip_id"], str(root / name / t["path"])) for t in truth if t["clip_id"] not in rows]
    if todo:
        print(f"analysing {len(todo)} {name} clips ({kind}) ...", flush=True)
        fresh = _run(_pipeline_job if kind == "pipeline" else _madmom_job, todo, workers)
        rows.update({r["clip_id"]: r for r in fresh})
        table = _table(kind, list(rows.values()))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(cache, sink.getvalue().to_pybytes())
    return rows


def _table(kind: str, rows: list[dict[str, Any]]) -> pa.Table:
    if kind == "pipeline":
        from m2ugen_data.schemas import FEATURES
        from m2ugen_data.warehouse import utc_now

        now = utc_now()
        return pa.Table.from_pylist([r | {"updated_at": r.get("updated_at") or now} for r in rows], schema=FEATURES.schema)
    return pa.Table.from_pylist(rows)


def rederived(rows: dict[str, dict[str, Any]], baseline_filter: bool = False) -> dict[str, dict[str, Any]]:
    """Tag words, music score and filter verdict from the cached measurements, with the current rule/model.

    ``baseline_filter``: the filter as it was before the music score (labels, speech, loudness only)."""
    from m2ugen_data.analysis.derived import rederive
    from m2ugen_data.analysis.music_filter import ClipLabels, MusicFilterConfig, apply_filter

    cfg = MusicFilterConfig(min_music_score=0.0, speech_exempt_music_score=math.inf) if baseline_filter else MusicFilterConfig()
    labels = ClipLabels(labels=(MUSIC_MID,))
    return {c: apply_filter(rederive(dict(r)), labels, cfg) for c, r in rows.items()}


# --------------------------------------------------------------------------- scoring


def families_of(words: list[str] | None, truth_families: set[str]) -> set[str]:
    """The families a clip's instrument words name; a word naming several counts for the one present."""
    out = set()
    for w in words or ():
        options = WORD_FAMILIES.get(w, ())
        hit = [f for f in options if f in truth_families]
        out.add(hit[0] if hit else (options[0] if options else f"word:{w}"))
    return out


NAMEABLE = sorted({f for fams in WORD_FAMILIES.values() for f in fams})


def chord_intervals(row: dict[str, Any]) -> list[dict[str, Any]]:
    beats, chords = row.get("beats") or [], row.get("beat_chords") or []
    return [{"start": beats[i], "end": beats[i + 1], "label": c} for i, c in enumerate(chords) if i + 1 < len(beats)]


def score_rhythm(truth: list[dict], est: dict[str, dict[str, Any]]) -> dict[str, float]:
    tempo = metrics.tempo_scores([t["tempo_bpm"] for t in truth], [est[t["clip_id"]].get("tempo_bpm") for t in truth])
    beats = metrics.beat_scores([t["beats"] for t in truth], [est[t["clip_id"]].get("beats") or [] for t in truth])
    down = metrics.beat_scores(
        [t["downbeats"] for t in truth], [est[t["clip_id"]].get("downbeats") or [] for t in truth]
    )
    return {"tempo_acc1": tempo["acc1"], "tempo_acc2": tempo["acc2"], "beat_f": beats["f_measure"],
            "downbeat_f": down["f_measure"]}  # fmt: skip


def score_gm_pipeline(truth: list[dict], est: dict[str, dict[str, Any]], truth_table: pa.Table, split: str) -> dict:
    from m2ugen_data.pairs.evaluation import evaluate
    from m2ugen_data.schemas import FEATURES

    out = score_rhythm(truth, est)
    refs = [metrics.chord_segments(t["chords"]) for t in truth]
    ests = [metrics.chord_segments(chord_intervals(est[t["clip_id"]])) for t in truth]
    out["chords_majmin"] = metrics.chord_scores(refs, ests, rules=("majmin",))["majmin"]
    ref_f = [set(t["families"]) & set(NAMEABLE) for t in truth]
    est_f = [families_of(est[t["clip_id"]].get("instruments"), set(t["families"])) for t in truth]
    s = metrics.instrument_scores(ref_f, est_f)
    out |= {"instr_p": s["precision"], "instr_r": s["recall"]}
    features = pa.Table.from_pylist([est[t["clip_id"]] for t in truth], schema=FEATURES.schema)
    ev = evaluate(features, truth_table, split=split)
    out |= {"pairs_recall": ev.recall, "pairs_recall_at_k": ev.recall_at_k, "pairs_precision": ev.precision,
            "pair_violations": len(ev.violations), "twin_pairs": ev.twin_pairs}  # fmt: skip
    return out


def score_filter(truth: list[dict], est: dict[str, dict[str, Any]]) -> dict[str, float]:
    s = metrics.music_filter_scores(
        [t["is_music"] for t in truth], [est[t["clip_id"]].get("is_music") for t in truth], [t["category"] for t in truth]
    )
    out = {"balanced_acc": s["balanced_accuracy"], "music_kept": s["recall"]}
    return out | {f"{c}_right": v for c, v in s["per_category"].items()}  # type: ignore[union-attr]


def markdown(title: str, rows: list[dict[str, Any]]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"### {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- calibration


def calibrate(root: Path, gm: dict[str, dict], rec: dict[str, dict], gm_truth: list[dict], rec_truth: list[dict]) -> None:
    """Fit the music-likeness model on the dev split; print the tag-threshold sweep on the GM dev split."""
    from m2ugen_data.analysis import music_likeness
    from m2ugen_data.atomic import write_bytes_atomic

    xs, ys, split = [], [], []
    for truth, rows, music in ((gm_truth, gm, None), (rec_truth, rec, "is_music")):
        for t in truth:
            r = rows[t["clip_id"]]
            if r["status"] != "ok" or not r.get("music_descriptors"):
                continue
            xs.append(r["music_descriptors"])
            ys.append(1.0 if music is None else float(t[music]))
            split.append(t["split"])
    x, y, s = np.asarray(xs, dtype=np.float64), np.asarray(ys), np.asarray(split)
    dev = s == "dev"
    w, b, mean, scale = music_likeness.fit(x[dev], y[dev])
    model = music_likeness.LikenessModel(w, b, mean, scale, 0.5, "tmp")
    p = np.array([model.score(v) for v in x])
    # the threshold: the highest that still keeps >= 97% of the dev music (a missed piece of music costs a
    # MUCaps clip; a passed sound effect costs a wrong caption, which is worse, so push it up to that bound)
    music_p = np.sort(p[dev & (y == 1)])
    threshold = float(music_p[int(math.floor(0.03 * len(music_p)))]) if len(music_p) else 0.5
    threshold = min(threshold, 0.5)
    for name, sel in (("dev", dev), ("test", ~dev)):
        kept = float(np.mean(p[sel & (y == 1)] >= threshold))
        rejected = float(np.mean(p[sel & (y == 0)] < threshold))
        print(f"music-likeness {name}: music kept {kept:.3f}, non-music rejected {rejected:.3f} "
              f"({int((sel & (y == 1)).sum())} music, {int((sel & (y == 0)).sum())} non-music)")  # fmt: skip
    spec = {
        "version": f"likeness-fit-{dt.date.today().isoformat()}",
        "descriptors": list(music_likeness.DESCRIPTORS),
        "weights": w.tolist(),
        "bias": b,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "threshold": threshold,
        "fitted_on": {"split": "dev", "clips": int(dev.sum()), "music": int((dev & (y == 1)).sum()),
                      "non_music": int((dev & (y == 0)).sum()), "sets": ["gm", "recordings"],
                      "tool": "bench/bench_hearing.py --calibrate"},  # fmt: skip
    }
    write_bytes_atomic(music_likeness.MODEL_FILE, (json.dumps(spec, indent=1) + "\n").encode())
    music_likeness.load_model.cache_clear()
    print(f"wrote {music_likeness.MODEL_FILE} (threshold {threshold:.3f}, weights "
          + ", ".join(f"{n}={v:+.2f}" for n, v in zip(music_likeness.DESCRIPTORS, w)) + ")")
    tag_sweep(gm, gm_truth)


def tag_sweep(gm: dict[str, dict], gm_truth: list[dict]) -> None:
    """Instrument precision/recall per threshold (dev split, then test at the same thresholds)."""
    from m2ugen_data.analysis import derived, tag_words

    for split in SPLITS:
        truth = [t for t in gm_truth if t["split"] == split and gm[t["clip_id"]].get("tags_mtt") is not None]
        print(f"\ninstrument words vs rendered families, {split} split ({len(truth)} clips):")
        for th in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5):
            rule = replace(tag_words.DEFAULT_RULE, instrument=th, instrument_overrides={})
            est = [families_of(derived.tag_columns(derived.stored_tags(gm[t["clip_id"]]), rule)["instruments"],
                               set(t["families"])) for t in truth]  # fmt: skip
            ref = [set(t["families"]) & set(NAMEABLE) for t in truth]
            s = metrics.instrument_scores(ref, est)
            per = {f: f"{v['precision']:.2f}/{v['recall']:.2f}" for f, v in s["per_family"].items()}
            print(f"  threshold {th:.2f}: P {s['precision']:.3f} R {s['recall']:.3f} F1 {s['f1']:.3f}  {per}")


# --------------------------------------------------------------------------- speed


def speed(root: Path, truth: list[dict], n: int) -> None:
    """Seconds per clip by analyser in this process (one core), full analysis vs the madmom-only baseline."""
    from m2ugen_data.analysis import analyze, fast_stft, rhythm
    from m2ugen_data.audio_io import load_audio

    analyze.init_worker()
    models = analyze._MODELS
    assert models is not None
    clips = [(t["clip_id"], root / "gm" / t["path"]) for t in truth[:n]]
    totals: Counter[str] = Counter()
    base = []
    for cid, path in clips:  # interleaved, so load on the machine hits both alike
        _, timings = analyze.analyse_file(cid, path)
        totals.update(timings)
        fast_stft.uninstall()  # the baseline is madmom as it ships (its per-frame STFT loop)
        t0 = time.perf_counter()
        y, _ = load_audio(path, sr=rhythm.SAMPLE_RATE)
        rhythm.analyse_rhythm(y, models.rhythm)
        base.append(time.perf_counter() - t0)
        fast_stft.install()
    print(f"\nseconds per 10 s clip, one process, {len(clips)} GM clips")
    print("| analyser | s/clip |\n|---|---|")
    for stage, secs in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {stage} | {secs / len(clips):.3f} |")
    full = totals["total"] / len(clips)
    print(f"| madmom-only baseline (decode + downbeat RNN + DBN, madmom's own STFT) | {np.mean(base):.3f} |")
    print(f"\nfull analysis {1 / full:.2f} clips/s/core; madmom-only {1 / np.mean(base):.2f} clips/s/core")


# --------------------------------------------------------------------------- main


def ensure_sets(root: Path, build: bool) -> None:
    from m2ugen_data.devset.gm import build_gm
    from m2ugen_data.devset.recordings import build_recordings

    for name, builder in (("gm", build_gm), ("recordings", build_recordings)):
        if not (root / name / TRUTH_FILE).is_file():
            if not build:
                raise SystemExit(f"no {name} dev set under {root} (run without --no-build)")
            print(f"building the {name} dev set in {root / name} ...", flush=True)
            builder(root / name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devsets", type=Path, default=REPO / ".devsets", help="dev-set root (and cache)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-build", action="store_true", help="fail instead of building a missing set")
    ap.add_argument("--calibrate", action="store_true", help="fit data/music_likeness.json on the dev split")
    ap.add_argument("--speed", type=int, default=0, metavar="N", help="time N clips per analyser and stop")
    ap.add_argument("--json", type=Path, default=None, help="also write the scores here")
    args = ap.parse_args()
    root = args.devsets
    ensure_sets(root, not args.no_build)
    gm_table, rec_table = read_truth(root / "gm"), read_truth(root / "recordings")
    gm_truth, rec_truth = gm_table.to_pylist(), rec_table.to_pylist()
    if args.speed:
        speed(root, gm_truth, args.speed)
        return
    gm_raw = cached_rows(root, "gm", gm_truth, "pipeline", args.workers)
    rec_raw = cached_rows(root, "recordings", rec_truth, "pipeline", args.workers)
    if args.calibrate:
        calibrate(root, gm_raw, rec_raw, gm_truth, rec_truth)
    gm, rec = rederived(gm_raw), rederived(rec_raw)
    rec_old = rederived(rec_raw, baseline_filter=True)
    madmom = cached_rows(root, "gm", gm_truth, "madmom", args.workers)
    report: dict[str, list[dict[str, Any]]] = {"gm": [], "recordings": []}
    for split in SPLITS:
        truth = [t for t in gm_truth if t["split"] == split]
        report["gm"].append({"analyser": "madmom RNN+DBN (baseline)", "split": split} | score_rhythm(truth, madmom))
        report["gm"].append(
            {"analyser": "pipeline", "split": split} | score_gm_pipeline(truth, gm, gm_table, split)
        )
    for split in SPLITS:
        truth = [t for t in rec_truth if t["split"] == split]
        report["recordings"].append({"filter": "labels+speech+loudness (baseline)", "split": split} | score_filter(truth, rec_old))
        report["recordings"].append({"filter": "pipeline (music score)", "split": split} | score_filter(truth, rec))
    print(markdown("General-MIDI dev set: rhythm, chords, instruments, MUEdit pairs", report["gm"]))
    print(markdown("Recordings dev set: music filter", report["recordings"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
