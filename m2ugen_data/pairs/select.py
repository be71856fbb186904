"""From candidate edges to the chosen pairs, shared by the full and the incremental miner: rules and score
(``score_edges``), best-first order (``best_first``), the degree cap (``choose``) and the PAIRS rows of the
chosen edges (``pairs_table``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from m2ugen_data.analysis import harmony
from m2ugen_data.pairs.clips import ClipArrays
from m2ugen_data.pairs.kernels import (
    RULE_BITS,
    greedy_bmatch,
    kernel_params,
    measure_kernel,
    score_kernel,
    set_difference,
)
from m2ugen_data.pairs.rules import MINER_VERSION, MiningResult, PairRules
from m2ugen_data.warehouse import conform, utc_now


@dataclass
class ScoredEdges:
    """Valid edges (every rule passed) in best-first order (score descending, ties by clip ids), with
    their scores and whether the degree cap chose them: what the incremental cache keeps between runs."""

    lo: np.ndarray  # int64 row ids of the eligible clips, lo < hi
    hi: np.ndarray
    rel: np.ndarray  # int8 octave relation
    score: np.ndarray  # float64
    harm: np.ndarray  # float32 harmony similarity, NaN where not measured
    chosen: np.ndarray  # bool


def harmony_similarity(clips: ClipArrays, lo: np.ndarray, hi: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """``harmony.chord_similarity_edges`` per edge (float32), NaN where either clip's chords were not
    analysed. In a half/double-tempo pair the faster clip is compared on every other beat (rows n.. of the
    chord CSR), so both sequences are on the slower clip's beat grid."""
    n = len(clips.chords_measured)
    a = np.where(rel == -1, lo + n, lo)  # rel -1: hi is compared at double tempo, so lo is the faster
    b = np.where(rel == 1, hi + n, hi)
    sim = harmony.chord_similarity_edges(clips.chord_values, clips.chord_offsets, a, b)
    sim[~(clips.chords_measured[lo] & clips.chords_measured[hi])] = np.nan
    return sim


def score_edges(
    result: MiningResult, clips: ClipArrays, lo: np.ndarray, hi: np.ndarray, rel: np.ndarray, rules: PairRules
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rules and score of candidate edges (row ids of ``clips``): the valid ones' (lo, hi, rel, score,
    harm), rejections added to ``result``. Harmony is computed only for edges that pass every other rule
    (the costliest measure; a rejected edge needs no score), so the ``harmony`` count is over those."""
    failed, score = score_kernel(
        lo, hi, rel, clips.lt, clips.ibi, clips.phase, clips.loud, clips.video, clips.labels[0],
        clips.labels[1], clips.timbre, clips.content, kernel_params(rules),
    )  # fmt: skip
    for rule, bit in RULE_BITS.items():
        result.pair_rejections[rule] = result.pair_rejections.get(rule, 0) + int(np.count_nonzero(failed & bit))
    valid = np.flatnonzero(failed == 0)
    del failed
    lo, hi, rel, score = lo[valid], hi[valid], rel[valid], score[valid]
    harm = harmony_similarity(clips, lo, hi, rel)
    result.pair_rejections.setdefault("harmony", 0)
    if rules.min_harmony_sim > 0:
        keep = harm >= np.float32(rules.min_harmony_sim)  # float32 like harm: 14 of 20 beats pass 0.7; NaN fails
        result.pair_rejections["harmony"] += int(len(keep) - keep.sum())
        lo, hi, rel, score, harm = lo[keep], hi[keep], rel[keep], score[keep], harm[keep]
    score += rules.w_harmony * np.nan_to_num(harm.astype(np.float64), nan=0.0)
    return lo, hi, rel, score, harm


def best_first(score: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Order of the edges by score descending, ties by (lo, hi). One unstable float sort, then the rare
    runs of equal scores are re-sorted by clip ids: 3.5x cheaper than a three-key lexsort at 12M edges."""
    order = np.argsort(-score)
    s = score[order]
    tie = np.zeros(len(s), dtype=bool)
    same = s[1:] == s[:-1]
    tie[1:] |= same
    tie[:-1] |= same
    pos = np.flatnonzero(tie)
    if len(pos):
        sub = order[pos]
        order[pos] = sub[np.lexsort((hi[sub], lo[sub], -score[sub]))]
    return order


def choose(result: MiningResult, scored: ScoredEdges, n: int, k: int) -> None:
    """The degree cap over best-first ``scored`` edges of ``n`` clips: sets ``scored.chosen`` and the
    result's valid, ``degree_cap`` and degree-histogram counts."""
    scored.chosen = greedy_bmatch(scored.lo, scored.hi, n, k)
    result.valid = len(scored.lo)
    result.pair_rejections["degree_cap"] = int(len(scored.chosen) - scored.chosen.sum())
    degree = np.bincount(np.concatenate([scored.lo[scored.chosen], scored.hi[scored.chosen]]), minlength=n)
    result.degree_histogram = {int(d): int(c) for d, c in enumerate(np.bincount(degree)) if c}


# the eligible table's columns ``pairs_table`` reads (besides the kernel arrays)
OUTPUT_COLUMNS = ("clip_id", "tempo_bpm", "meter", "key")


def pairs_table(
    elig: pa.Table,
    clips: ClipArrays,
    lo: np.ndarray,
    hi: np.ndarray,
    rel: np.ndarray,
    harm: np.ndarray,
    score: np.ndarray,
) -> pa.Table:
    """The PAIRS rows of the chosen edges (already in output order: score descending, then clip ids; src
    is the lower clip id). Differences of measured instruments are NULL when either side was not measured;
    AudioSet labels keep the schema-1 convention (a missing list is an empty set)."""
    from m2ugen_data.schemas import PAIRS

    geometry = np.stack([clips.lt, clips.ibi, clips.phase])
    label_values, label_offsets, _ = clips.labels
    measured = measure_kernel(lo, hi, rel, geometry, label_values, label_offsets, clips.timbre, clips.content)
    unmeasured = ~(clips.words_measured[lo] & clips.words_measured[hi])
    src, tgt = pa.array(lo), pa.array(hi)
    tempo = elig.column("tempo_bpm").to_numpy()
    columns = {
        "src_id": elig.column("clip_id").take(src),
        "tgt_id": elig.column("clip_id").take(tgt),
        "tempo_src": tempo[lo],
        "tempo_tgt": tempo[hi],
        "tempo_ratio": tempo[hi] / tempo[lo],
        "meter": elig.column("meter").take(src),
        "key_src": elig.column("key").take(src),
        "key_tgt": elig.column("key").take(tgt),
        "labels_added": set_differences(clips.labels, hi, lo),
        "labels_removed": set_differences(clips.labels, lo, hi),
        "label_jaccard": measured[:, 0],
        "timbre_dist": measured[:, 1],
        "beat_sim": measured[:, 3],
        "instruments_added": set_differences(clips.words, hi, lo, unmeasured),
        "instruments_removed": set_differences(clips.words, lo, hi, unmeasured),
        "content_dist": measured[:, 2],
        "harmony_sim": harm.astype(np.float64),
        "score": score,
        "miner_version": pa.array([MINER_VERSION] * len(lo), pa.string()),
        "created_at": pa.array([utc_now()] * len(lo), type=pa.timestamp("us", tz="UTC")),
    }
    table = pa.table({k: v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v, from_pandas=True)
                      for k, v in columns.items()})  # fmt: skip
    return conform(PAIRS, table)  # from_pandas: NaN -> NULL


def set_differences(
    sets: tuple[np.ndarray, np.ndarray, pa.Array], keep: np.ndarray, minus: np.ndarray, null: np.ndarray | None = None
) -> pa.Array:
    """list<string> of the names in set ``keep[k]`` and not in ``minus[k]``, NULL where ``null``."""
    values, offsets, names = sets
    diff, diff_offsets = set_difference(values, offsets, keep, minus)
    strings = pa.DictionaryArray.from_arrays(pa.array(diff), names).cast(pa.string())
    return pa.ListArray.from_arrays(pa.array(diff_offsets), strings, mask=None if null is None else pa.array(null))


def empty_pairs() -> pa.Table:
    """A PAIRS table without rows."""
    from m2ugen_data.schemas import PAIRS

    return PAIRS.schema.empty_table()
