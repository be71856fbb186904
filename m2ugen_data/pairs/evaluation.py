"""Pair mining against sibling truth: how many re-orchestrations of the same excerpt the miner pairs, how many
of its pairs are such siblings, why the others were missed, and whether every written pair keeps every rule.

Why a separate evaluator: the miner's unit tests pin its mechanics on generated numbers, but whether its
rules and weights pair *the same music re-orchestrated* can only be measured on analysed audio whose
siblings are known: the General-MIDI dev set (``.devsets/gm``: ``truth.parquet`` with clip_id, group_id,
split, twin_id; features from the integrated analysis cached as Parquet). Tune on ``dev``, report on
``test``. Every rule is re-checked here in plain Python, independently of the miner's SQL and kernels, so a
written pair that breaks one is reported as a violation instead of being trusted.

    .venv/bin/python -m m2ugen_data.pairs.evaluation FEATURES.parquet TRUTH.parquet [--split dev]
        [--k 2] [--min-harmony-sim 0] [--min-content-dist 0.2] [--labels LABELS.parquet] [--sweep]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from m2ugen_data.analysis.harmony import chord_ids, chord_sequence_similarity
from m2ugen_data.analysis.tonal import key_class
from m2ugen_data.ids import ytid_of
from m2ugen_data.pairs.clips import content_vectors
from m2ugen_data.pairs.full import mine_pairs
from m2ugen_data.pairs.rules import PairRules

# Thresholds are checked this leniently: the miner's kernels sum in another order (and keep harmony in
# float32), so a pair exactly at a bound may land a rounding error either side; a violation must be real.
EPS = 1e-6


@dataclass
class PairEval:
    split: str | None
    clips: int  # clips of the split with features
    eligible: int
    true_pairs: int  # sibling pairs with both clips in the split's features
    reachable: int  # the most sibling pairs a miner capped at k pairs per clip can write
    pairs: int  # pairs written
    sibling_pairs: int  # written pairs that are siblings
    twin_pairs: int  # written pairs of twins (same tempo, meter and groove, other song: hard negatives)
    recall: float  # sibling_pairs / true_pairs
    recall_at_k: float  # sibling_pairs / reachable
    precision: float  # sibling_pairs / pairs
    clip_recall: float  # clips with a sibling in the split that got at least one sibling partner
    unnamed_changes: int  # written pairs whose measured instrument words are equal: no edit to name
    misses: dict[str, int] = field(default_factory=dict)  # true pairs not written, by first reason
    violations: list[str] = field(default_factory=list)  # written pairs breaking a rule: must stay empty
    pair_rejections: dict[str, int] = field(default_factory=dict)  # the miner's counts
    rules: dict[str, Any] = field(default_factory=dict)


def _clip_reason(row: dict, rules: PairRules) -> str | None:
    """The first per-clip rule a clip fails, in the miner's order; None when eligible."""
    tempo, loud = row["tempo_bpm"], row["loudness_lufs"]
    checks = (
        ("not_ok", row["status"] == "ok"),
        ("not_music", bool(row["is_music"]) or not rules.require_music),
        ("no_tempo", tempo is not None and math.isfinite(tempo) and tempo > 0),
        ("no_meter", row["meter"] in (3, 4)),
        ("low_beat_conf", (row["tempo_conf"] or 0) >= rules.min_tempo_conf),
        ("no_loudness", loud is not None and math.isfinite(loud)),
        ("no_key", row["key"] is not None or rules.key_rule == "any"),
    )
    return next((name for name, ok in checks if not ok), None)


def _octave(a: dict, b: dict, rules: PairRules) -> int | None:
    """0 when the tempi match, 1 when b is at double a's tempo, -1 at half (if allowed); None otherwise."""
    d = math.log(b["tempo_bpm"] / a["tempo_bpm"])
    octaves = (-1, 0, 1) if rules.allow_double else (0,)
    return next((o for o in octaves if abs(d - o * math.log(2)) <= math.log1p(rules.tolerance) + EPS), None)


def pair_reason(a: dict, b: dict, rules: PairRules) -> str | None:
    """The first rule pair (a, b) breaks, None when it keeps all. Rows carry the features columns plus
    ``labels`` (AudioSet instrument labels) and ``content`` (the instrument-word vector or None)."""
    for row in (a, b):
        if (why := _clip_reason(row, rules)) is not None:
            return f"clip:{why}"
    if a["meter"] != b["meter"]:
        return "meter"
    if rules.key_rule != "any" and key_class(a["key"], rules.key_rule) != key_class(b["key"], rules.key_rule):
        return "key"
    octave = _octave(a, b, rules)
    if octave is None:
        return "tempo"
    if abs(a["loudness_lufs"] - b["loudness_lufs"]) > rules.max_loudness_diff + EPS:
        return "loudness"
    if ytid_of(a["clip_id"]) == ytid_of(b["clip_id"]):
        return "same_video"
    dist = content_distance(a["content"], b["content"])
    td = timbre_distance(a["timbre"], b["timbre"])
    if dist is not None:
        differs = dist >= rules.min_content_dist - EPS or (td is not None and td > rules.min_sound_dist - EPS)
    else:
        la, lb = set(a["labels"] or ()), set(b["labels"] or ())
        jac = len(la & lb) / len(la | lb) if la | lb else None
        differs = (jac is not None and jac < rules.max_label_jaccard + EPS) or (
            td is not None and td > rules.min_timbre_dist - EPS
        )
    if not differs:
        return "too_similar"
    if rules.min_harmony_sim > 0:
        sim = harmony_similarity(a["beat_chords"], b["beat_chords"], octave)
        if sim is None or sim < rules.min_harmony_sim - EPS:
            return "harmony"
    return None


def content_distance(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Cosine distance of two instrument-word vectors; None when either clip has no tags."""
    if a is None or b is None:
        return None
    a, b = a.astype(np.float64), b.astype(np.float64)
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return max(0.0, 1 - float(a @ b) / norm) if norm > 0 else None


def timbre_distance(a: list[float] | None, b: list[float] | None) -> float | None:
    if not a or not b or len(a) != len(b):
        return None
    return float(np.linalg.norm(np.subtract(a, b, dtype=np.float64)) / math.sqrt(len(a)))


def harmony_similarity(a: list[str] | None, b: list[str] | None, octave: int) -> float | None:
    """Chord-sequence similarity, the faster clip on every other beat at half/double tempo (b faster when
    octave is 1); None when either clip's chords were not analysed."""
    if a is None or b is None:
        return None
    ia, ib = chord_ids(a), chord_ids(b)
    return chord_sequence_similarity(ia[::2] if octave == -1 else ia, ib[::2] if octave == 1 else ib)


def _rows(features: pa.Table, labels: pa.Table) -> dict[str, dict]:
    """clip_id -> features row with ``labels`` and ``content`` added (what ``pair_reason`` reads)."""
    names = [c for c in features.column_names if c != "tags_mtt"]
    content = content_vectors(features.column("tags_mtt"))
    by_label = dict(zip(labels.column("clip_id").to_pylist(), labels.column("instruments").to_pylist()))
    rows = {}
    for i, row in enumerate(features.select(names).to_pylist()):
        row["labels"] = by_label.get(row["clip_id"])
        row["content"] = None if np.isnan(content[i]).any() else content[i]
        rows[row["clip_id"]] = row
    return rows


def _reachable(sizes: list[int], k: int) -> int:
    """Sibling pairs a degree-k matching can hold: all of a group's pairs, or g*k/2 when k < g - 1."""
    return sum(min(g * (g - 1) // 2, g * k // 2) for g in sizes)


def evaluate(
    features: pa.Table,
    truth: pa.Table,
    rules: PairRules = PairRules(),
    *,
    labels: pa.Table | None = None,
    split: str | None = None,
) -> PairEval:
    """Mine the split's clips and score the pairs against ``truth`` (clip_id, group_id; optional split,
    twin_id). ``labels`` (clip_id, instruments): AudioSet labels for clips without tags; none by default,
    so only measured content speaks."""
    if split is not None:
        truth = truth.filter(pc.equal(truth.column("split"), split))
    keep = truth.column("clip_id")
    features = features.filter(pc.is_in(features.column("clip_id"), value_set=keep.combine_chunks()))
    if "tags_mtt" not in features.column_names:
        features = features.append_column("tags_mtt", pa.nulls(features.num_rows, pa.list_(pa.float32())))
    if labels is None:
        labels = pa.table({"clip_id": keep, "instruments": pa.nulls(len(keep), pa.list_(pa.string()))})
    result = mine_pairs(features, labels, rules)
    rows = _rows(features, labels)
    clip_ids = truth.column("clip_id").to_pylist()
    group = {c: g for c, g in zip(clip_ids, truth.column("group_id").to_pylist()) if c in rows}
    twin = {}
    if "twin_id" in truth.column_names:
        twin = dict(zip(clip_ids, truth.column("twin_id").to_pylist()))
    members: dict[str, list[str]] = {}
    for c, g in group.items():
        if g is not None:
            members.setdefault(g, []).append(c)
    true_pairs = {tuple(sorted((a, b))) for m in members.values() for a in m for b in m if a < b}
    written = list(zip(result.pairs.column("src_id").to_pylist(), result.pairs.column("tgt_id").to_pylist()))
    found = {tuple(sorted(p)) for p in written}
    degree = Counter(c for p in written for c in p)
    violations = [f"{a}~{b}: {why}" for a, b in written if (why := pair_reason(rows[a], rows[b], rules))]
    violations += [f"{c}: {d} pairs > k={rules.k}" for c, d in degree.items() if d > rules.k]
    misses: Counter[str] = Counter()
    for a, b in sorted(true_pairs - found):
        why = pair_reason(rows[a], rows[b], rules)
        if why is None:  # valid: lost to better pairs at the degree cap, or never a candidate
            why = "outranked" if max(degree[a], degree[b]) >= rules.k else "not_examined"
        misses[why] += 1
    hits = true_pairs & found
    with_sibling = {c for m in members.values() if len(m) > 1 for c in m}
    sibling_partnered = {c for p in hits for c in p}
    twins = sum(1 for a, b in found if twin.get(a) is not None and (twin.get(a) == b or twin.get(b) == a))
    reachable = _reachable([len(m) for m in members.values()], rules.k)
    return PairEval(
        split=split,
        clips=features.num_rows,
        eligible=result.eligible,
        true_pairs=len(true_pairs),
        reachable=reachable,
        pairs=len(found),
        sibling_pairs=len(hits),
        twin_pairs=twins,
        recall=len(hits) / max(1, len(true_pairs)),
        recall_at_k=len(hits) / max(1, reachable),
        precision=len(hits) / max(1, len(found)),
        clip_recall=len(sibling_partnered) / max(1, len(with_sibling)),
        unnamed_changes=sum(
            1 for add, rem in zip(result.pairs.column("instruments_added").to_pylist(),
                                  result.pairs.column("instruments_removed").to_pylist())
            if add == [] and rem == []
        ),  # fmt: skip
        misses=dict(misses),
        violations=violations,
        pair_rejections=result.pair_rejections,
        rules=asdict(rules),
    )


SWEEP = {"min_harmony_sim": (0.0, 0.3, 0.5, 0.7), "min_content_dist": (0.1, 0.15, 0.2, 0.3), "k": (1, 2)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("features", type=Path, help="features Parquet (FEATURES columns) of the dev set's clips")
    ap.add_argument("truth", type=Path, help="truth.parquet (clip_id, group_id, split, twin_id)")
    ap.add_argument("--split", default="dev", help="dev | test | all")
    ap.add_argument("--labels", type=Path, help="Parquet (clip_id, instruments): AudioSet labels for untagged clips")
    ap.add_argument("--k", type=int, default=PairRules.k)
    ap.add_argument("--min-harmony-sim", type=float, default=PairRules.min_harmony_sim)
    ap.add_argument("--min-content-dist", type=float, default=PairRules.min_content_dist)
    ap.add_argument("--key-rule", default=PairRules.key_rule)
    ap.add_argument("--sweep", action="store_true", help="also every combination of " + json.dumps(SWEEP))
    args = ap.parse_args(argv)
    features, truth = pq.read_table(args.features), pq.read_table(args.truth)
    labels = pq.read_table(args.labels) if args.labels else None
    base = PairRules(
        k=args.k, min_harmony_sim=args.min_harmony_sim, min_content_dist=args.min_content_dist, key_rule=args.key_rule
    )
    grid = [base]
    if args.sweep:
        grid += [replace(base, **dict(zip(SWEEP, combo))) for combo in itertools.product(*SWEEP.values())]
    split = None if args.split == "all" else args.split
    for rules in grid:
        report = evaluate(features, truth, rules, labels=labels, split=split)
        print(json.dumps(asdict(report)), flush=True)


if __name__ == "__main__":
    main()
