"""Scores for any analyser against dev-set truth: plain arrays and dicts in, plain dicts out.

Standard definitions, computed by well-kept libraries where one exists, so figures compare with papers:
- tempo **Acc1**: estimate within 4 % of the truth; **Acc2**: also at 2x, 1/2, 3x or 1/3 of it (the octave
  errors every tracker makes on very slow and very fast music);
- beats: ``mir_eval.beat.f_measure`` (+-70 ms). mir_eval's usual first-5-s trim is *not* applied by default:
  on 10 s clips it would throw away half the evidence (pass ``skip_s=5`` to reproduce MIREX practice);
- chords: ``mir_eval.chord`` comparisons weighted by duration, pooled over all clips (the MIREX "weighted
  chord symbol recall"), for the root, majmin, thirds, sevenths and mirex rules;
- instruments: micro precision/recall/F1 over (clip, family) decisions, and per family;
- the music filter: accuracy, precision, recall, F1, balanced accuracy and the accuracy per category;
- MUEdit pairs: precision (predicted pairs that are true siblings) and recall (sibling pairs found), plus
  how many predicted pairs are known hard negatives (tempo twins).
A missing estimate (``None``/NaN tempo, no beats, no verdict) always counts as a miss, never as skipped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

import mir_eval
import numpy as np

TEMPO_TOLERANCE = 0.04
ACC2_FACTORS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
CHORD_RULES = ("root", "majmin", "thirds", "sevenths", "mirex")


def _valid_tempo(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def tempo_acc1(ref_bpm: float, est_bpm: float | None, tol: float = TEMPO_TOLERANCE) -> bool:
    """Estimate within ``tol`` (relative) of the reference tempo."""
    # the epsilon keeps exactly-4 %-off estimates in (104/100 - 1 is 0.04000000000000004 in floats)
    return _valid_tempo(est_bpm) and abs(est_bpm / ref_bpm - 1.0) <= tol + 1e-12  # type: ignore[operator]


def tempo_acc2(ref_bpm: float, est_bpm: float | None, tol: float = TEMPO_TOLERANCE) -> bool:
    """Acc1 at the reference tempo or at 2x, 1/2, 3x or 1/3 of it."""
    return any(tempo_acc1(ref_bpm * f, est_bpm, tol) for f in ACC2_FACTORS)


def tempo_scores(
    ref_bpm: Sequence[float], est_bpm: Sequence[float | None], tol: float = TEMPO_TOLERANCE
) -> dict[str, float]:
    """Fractions of clips with Acc1 and Acc2 (and ``n``, ``missing``: estimates that were None/NaN)."""
    _same_length(ref_bpm, est_bpm)
    n = len(ref_bpm)
    acc1 = sum(tempo_acc1(r, e, tol) for r, e in zip(ref_bpm, est_bpm))
    acc2 = sum(tempo_acc2(r, e, tol) for r, e in zip(ref_bpm, est_bpm))
    missing = sum(not _valid_tempo(e) for e in est_bpm)
    return {"acc1": acc1 / n if n else math.nan, "acc2": acc2 / n if n else math.nan, "n": n, "missing": missing}


def beat_f(ref_beats: Sequence[float], est_beats: Sequence[float], skip_s: float = 0.0, window: float = 0.07) -> float:
    """mir_eval's beat F-measure for one clip; beats before ``skip_s`` are ignored on both sides."""
    ref = mir_eval.beat.trim_beats(np.asarray(ref_beats, dtype=float), min_beat_time=skip_s)
    est = mir_eval.beat.trim_beats(np.asarray(est_beats, dtype=float), min_beat_time=skip_s)
    if ref.size == 0:
        raise ValueError("reference has no beats after skip_s")
    if est.size == 0:
        return 0.0
    return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=window))


def beat_scores(
    ref_beats: Sequence[Sequence[float]], est_beats: Sequence[Sequence[float]], skip_s: float = 0.0
) -> dict[str, float]:
    """Mean beat F over clips (``n`` clips)."""
    _same_length(ref_beats, est_beats)
    fs = [beat_f(r, e, skip_s) for r, e in zip(ref_beats, est_beats)]
    return {"f_measure": float(np.mean(fs)) if fs else math.nan, "n": len(fs)}


def chord_segments(chords: Sequence[Mapping[str, object]]) -> tuple[np.ndarray, list[str]]:
    """``[{"start", "end", "label"}, ...]`` (the truth's ``chords`` column) -> (intervals, labels)."""
    intervals = np.array([[float(c["start"]), float(c["end"])] for c in chords], dtype=float).reshape(-1, 2)
    return intervals, [str(c["label"]) for c in chords]


def chord_comparison(
    ref_intervals: np.ndarray,
    ref_labels: Sequence[str],
    est_intervals: np.ndarray,
    est_labels: Sequence[str],
    rules: Sequence[str] = CHORD_RULES,
) -> dict[str, tuple[float, float]]:
    """Per rule, (seconds judged correct, seconds judged) for one clip.

    The estimate is cut or padded with no-chord ("N") to the reference's span, as mir_eval.chord.evaluate
    does; segments a rule cannot judge (e.g. a reference outside its vocabulary) are left out."""
    ref_intervals = np.asarray(ref_intervals, dtype=float)
    est_intervals = np.asarray(est_intervals, dtype=float).reshape(-1, 2)
    t0, t1 = float(ref_intervals.min()), float(ref_intervals.max())
    if len(est_labels) == 0:
        est_intervals, est_labels = np.array([[t0, t1]]), ["N"]
    est_intervals, est_labels = mir_eval.util.adjust_intervals(
        est_intervals, list(est_labels), t_min=t0, t_max=t1, start_label="N", end_label="N"
    )
    intervals, refs, ests = mir_eval.util.merge_labeled_intervals(
        ref_intervals, list(ref_labels), est_intervals, est_labels
    )
    durations = mir_eval.util.intervals_to_durations(intervals)
    out = {}
    for rule in rules:
        cmp = np.asarray(getattr(mir_eval.chord, rule)(refs, ests), dtype=float)
        judged = cmp >= 0
        out[rule] = (float((durations * np.where(judged, cmp, 0.0)).sum()), float(durations[judged].sum()))
    return out


def chord_scores(
    refs: Sequence[tuple[np.ndarray, Sequence[str]]],
    ests: Sequence[tuple[np.ndarray, Sequence[str]]],
    rules: Sequence[str] = CHORD_RULES,
) -> dict[str, float]:
    """Duration-weighted chord accuracy pooled over clips, per rule; each item is (intervals, labels)."""
    _same_length(refs, ests)
    correct: dict[str, float] = defaultdict(float)
    judged: dict[str, float] = defaultdict(float)
    for (ri, rl), (ei, el) in zip(refs, ests):
        for rule, (c, j) in chord_comparison(ri, rl, ei, el, rules).items():
            correct[rule] += c
            judged[rule] += j
    return {rule: correct[rule] / judged[rule] if judged[rule] else math.nan for rule in rules} | {"n": len(refs)}


def instrument_scores(
    ref_sets: Sequence[Iterable[str]], est_sets: Sequence[Iterable[str]], vocabulary: Iterable[str] | None = None
) -> dict[str, object]:
    """Micro precision/recall/F1 over (clip, family) pairs, and per family (precision, recall, support).

    ``vocabulary``: score only these families (both sides), e.g. the ones a tagger can name at all."""
    _same_length(ref_sets, est_sets)
    vocab = set(vocabulary) if vocabulary is not None else None
    tp: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    fn: dict[str, int] = defaultdict(int)
    for ref, est in zip(ref_sets, est_sets):
        r, e = set(ref), set(est)
        if vocab is not None:
            r, e = r & vocab, e & vocab
        for f in r & e:
            tp[f] += 1
        for f in e - r:
            fp[f] += 1
        for f in r - e:
            fn[f] += 1
    t, p_, n_ = sum(tp.values()), sum(fp.values()), sum(fn.values())
    per = {
        f: {
            "precision": tp[f] / (tp[f] + fp[f]) if tp[f] + fp[f] else math.nan,
            "recall": tp[f] / (tp[f] + fn[f]) if tp[f] + fn[f] else math.nan,
            "support": tp[f] + fn[f],
        }
        for f in sorted(set(tp) | set(fp) | set(fn))
    }
    precision = t / (t + p_) if t + p_ else math.nan
    recall = t / (t + n_) if t + n_ else math.nan
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "per_family": per,
        "n": len(ref_sets),
    }


def music_filter_scores(
    is_music: Sequence[bool], predicted: Sequence[bool | None], categories: Sequence[str] | None = None
) -> dict[str, object]:
    """Accuracy, precision/recall/F1 of "music", balanced accuracy, and per-category accuracy.

    A ``None`` verdict (the analyser failed) is wrong whatever the truth, and counted in ``abstained``."""
    _same_length(is_music, predicted)
    truth = np.array([bool(x) for x in is_music])
    said = np.array([p is True for p in predicted])
    right = np.array([p is not None and bool(p) == t for p, t in zip(predicted, truth)])
    tp = int((said & truth).sum())
    precision = tp / int(said.sum()) if said.any() else math.nan
    recall = tp / int(truth.sum()) if truth.any() else math.nan
    tnr = float(right[~truth].mean()) if (~truth).any() else math.nan
    out: dict[str, object] = {
        "accuracy": float(right.mean()) if right.size else math.nan,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "balanced_accuracy": float(np.nanmean([recall, tnr])) if right.size else math.nan,
        "abstained": sum(p is None for p in predicted),
        "n": len(truth),
    }
    if categories is not None:
        _same_length(is_music, categories)
        cats = np.asarray(categories)
        out["per_category"] = {str(c): float(right[cats == c].mean()) for c in sorted(set(categories))}
    return out


def sibling_pairs(group_of: Mapping[str, str | None]) -> set[frozenset[str]]:
    """Every unordered pair of clips in the same sibling group."""
    members: dict[str, list[str]] = defaultdict(list)
    for clip, group in group_of.items():
        if group is not None:
            members[group].append(clip)
    return {frozenset(p) for clips in members.values() for p in combinations(sorted(clips), 2)}


def pair_scores(
    group_of: Mapping[str, str | None],
    predicted: Iterable[tuple[str, str]],
    twin_of: Mapping[str, str | None] | None = None,
) -> dict[str, float]:
    """Precision/recall of predicted (unordered) pairs against sibling truth over the clips in ``group_of``.

    Pairs naming a clip outside ``group_of`` are ignored (score one split at a time). ``twin_of`` (clip ->
    twin id) counts predicted pairs between tempo twins that are not siblings: confident hard negatives."""
    truth = sibling_pairs(group_of)
    pred = {frozenset(p) for p in predicted if len(set(p)) == 2 and all(c in group_of for c in p)}
    hits = len(pred & truth)
    precision = hits / len(pred) if pred else math.nan
    recall = hits / len(truth) if truth else math.nan
    twins = 0
    if twin_of is not None:
        for p in pred - truth:
            a, b = tuple(p)
            twins += twin_of.get(a) is not None and twin_of.get(a) == twin_of.get(b)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "predicted": len(pred),
        "true_pairs": len(truth),
        "twin_pairs_predicted": twins,
    }


def _f1(p: float, r: float) -> float:
    if math.isnan(p) or math.isnan(r) or p + r == 0:
        return math.nan if math.isnan(p) or math.isnan(r) else 0.0
    return 2 * p * r / (p + r)


def _same_length(a: Sequence[object], b: Sequence[object]) -> None:
    if len(a) != len(b):
        raise ValueError(f"reference and estimate lists differ in length: {len(a)} != {len(b)}")
