"""MUEdit pair mining: clips that share tempo, beat grid and (preferably) harmony while their measured
instrumentation differs, found with a DuckDB band join and scored by compiled kernels.

How it scales (never an all-pairs loop; bench/bench_pairs.py: 1M clips in 51 s and 4.1 GB on two cores
under load 5, where the schema-1 miner took 50 s and 5.3 GB on the same tables in the same run):

1. **Eligibility** (per clip, counted by rule): analysed ok, music, a tempo and a 3- or 4-beat meter,
   beat confidence above a threshold, a loudness, a key when the key rule needs one.
2. **Blocks**: clips are partitioned by meter and by key class (``tonal.key_class``: the key for ``same``,
   the relative-major tonic for ``relative``, one class for ``any``), so every clip pair inside a block
   satisfies the meter and key rules by construction.
3. **Sorted-neighbourhood band join**: inside a block the clips are sorted three times: by log-tempo, and
   by (fine log-tempo bucket, harmony class, beat phase) on two bucket grids offset by half a bucket.
   Each clip is joined with its next ``window`` clips in each order (an equi-join on (block, precomputed
   neighbour row number), so DuckDB hashes instead of joining whole blocks and filtering). Half/double
   tempo is a second copy of every clip at twice its tempo in the same sorts. The harmony class (the
   diatonic collection, i.e. key up to relative major/minor, that holds most of the clip's beat chords) is
   in the phase orders because among a million clips a tempo bucket holds thousands whose beat phase
   matches a clip's as closely as its re-orchestrated sibling's does: without it the band of ``window``
   neighbours is filled by those strangers and the sibling, the pair the score prefers, is never
   examined. A collection, not the commonest chord: a four-chord loop makes the commonest chord a near tie
   that recognition errors flip (siblings agree on it 67% of the time on the bench's corpus, on the
   collection 100%), and planted-sibling recall at 100k clips is 0.80 with it against 0.58. The plain
   tempo order still brings strangers of other harmony, so both kinds of MUEdit pair stay reachable. A
   block smaller than the window is searched exhaustively. Candidates per clip are bounded by
   ``3 x window`` whatever the density.
4. **Rules and score** on the candidate edges, compiled (numba) over dense per-clip arrays: tempo ratio
   within tolerance, loudness difference, never the same YouTube video, content differs, and (only when
   ``min_harmony_sim`` > 0) harmony shared. *Content differs* is measured: the cosine distance between
   the clips' instrument tag vectors (``content_vectors``: per instrument or voice word, the strongest of
   its MusiCNN MTT tags) is at least ``min_content_dist``; a clip analysed before tags existed (NULL
   ``tags_mtt``) falls back to the old rule, AudioSet label Jaccard below a bound or timbre (MFCC
   statistics) far apart. *Harmony* is ``harmony.chord_similarity_edges``: the fraction of beats with the
   same chord under the best beat offset. Score = tempo closeness + beat-grid alignment + harmony
   similarity + a content-difference bonus that saturates (weights in ``PairRules``): two clips of the same
   tempo and beat grid are told apart by their chords, so a re-orchestration of the same music outranks a
   stranger of the same tempo, while a stranger still pairs when nothing better is there (the MUEdit
   paper paired random same-tempo clips).
5. **Degree cap**: the valid edges, sorted by score (ties by clip ids), go through greedy b-matching
   (each clip in at most ``k`` pairs, both directions counted): a compiled linear pass over the sorted
   arrays, so the result is exactly the sequential greedy one and deterministic.

6. **Incremental re-mines** (``pair_cache``, what ``mine_warehouse`` does unless ``full``): the sort keys
   depend on each clip alone (computed in numpy by ``order_keys``, ties by clip id), so new clips insert
   into the cached orders without reordering old ones; only edges touching new or changed clips, or
   spanning removed ones, are searched and scored (on the cached per-clip kernel arrays plus the new
   clips'), cached valid edges still inside the band are kept with their scores, and step 5 is re-run over
   the merged best-first list: the same pairs as a full mine.

Rejections are counted per rule: at clip level for eligibility, and over the candidate edges examined
(not over all N^2 pairs, which are never formed) for the pair rules; harmony, the costliest measure, is
computed (and its rejections counted) only for edges that pass every other rule.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import duckdb
import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m2ugen_data.analysis import harmony
from m2ugen_data.analysis.tonal import key_class
from m2ugen_data.errors import M2UGenError
from m2ugen_data.warehouse import Warehouse, conform, duck_connect, utc_now

MINER_VERSION = "2:snm-band-join+harmony-class-order+tag-content+chord-similarity+greedy-bmatch"
KEY_RULES = ("same", "relative", "any")


@dataclass(frozen=True)
class PairRules:
    tolerance: float = 0.04  # |tempo ratio - 1| (after half/double when allowed)
    # also pair clips at half or double tempo: the beats still coincide, and on the GM dev set 5 of 88 sibling
    # pairs were split across a tempo octave by the tracker (dev recall at k 0.88 -> 0.92 with it)
    allow_double: bool = True
    # both clips' beat confidence (tempo_conf: the tracker's clarity, not tempo_prob) at least this; at
    # 0.3 a third of the GM dev clips (tempo Acc1 0.82 among them) could not be paired, at 0.1 all but 1%.
    min_tempo_conf: float = 0.1
    max_loudness_diff: float = 6.0  # LU
    # Content differs: instrument tag vectors at least this cosine distance apart. A swapped lead (piano ->
    # flute) is ~0.8, one of two instruments swapped ~0.4, one of four ~0.2-0.3; on the bench's generated
    # tags 0.2 keeps 86% of re-orchestrations and passes 14% of same-instrumentation pairs (0.25: 77% and
    # 8%). Calibrate on real renders with pair_eval --sweep.
    min_content_dist: float = 0.2
    # ... or, for tagged clips, their timbre (MFCC statistics) farther apart than this. On the GM dev set
    # MusiCNN's instrument tags hardly move when one of three parts is re-orchestrated (siblings: median
    # content distance 0.22, a tenth below 0.04) and differ as much between two songs with the same
    # instruments, so the tags alone reject most true re-orchestrations. What "too similar" must catch is the
    # same audio twice (re-uploads, a clip and its re-encode): tags AND timbre both near zero.
    min_sound_dist: float = 2.0
    # Clips without tags (analysed before schema 2): AudioSet label Jaccard below this ...
    max_label_jaccard: float = 0.5
    min_timbre_dist: float = 8.0  # ... or timbre vectors farther apart than this (RMS dB per MFCC stat)
    # 0: harmony is a score term only, not a rule, because MUEdit also wants pairs of different music (the
    # paper's were random same-tempo clips); > 0 keeps only pairs sharing at least this fraction of chords.
    # Measured (bench generator, 400 clips half in sibling pairs, 5 seeds): the score term alone already
    # ranks siblings first (recall 0.85, all misses too_similar; without it 0.78); 0.5 as a rule keeps that
    # recall and lifts precision 0.24 -> 0.63 at k=2 (0.48 -> 0.83 at k=1) by dropping the stranger pairs;
    # 0.7 drops siblings too (recall 0.76). Use 0.5 for a same-music-only MUEdit.
    min_harmony_sim: float = 0.0
    # any: MUEdit pairs are defined by tempo and beat; "same" also matches keys, but a 10 s clip's key
    # estimate is wrong often enough (~1 in 10 on the synthetic corpus) to lose ~1 in 5 true pairs.
    key_rule: str = "any"  # same | relative | any
    k: int = 2  # pairs per clip at most
    require_music: bool = True  # only clips that passed the MUCaps music filter
    window: int = 8  # neighbours per clip per sort order (bench, 10k clips: 64 finds as many planted siblings
    # and 6% more total score for 6x the candidates; the exhaustive baseline 7% more)
    content_scale: float = 0.5  # content distance at which the content-difference bonus saturates
    timbre_scale: float = 20.0  # the same for timbre distance (clips without tags)
    # Tempo and beat are near their maximum for every candidate the band join brings, so harmony carries
    # the most weight: it is what separates the same music re-orchestrated from a same-tempo stranger.
    # The content bonus is small and saturates: strangers usually differ more in instrumentation than
    # siblings do, and a large uncapped term would prefer them.
    w_tempo: float = 0.25
    w_beat: float = 0.25
    w_harmony: float = 0.4
    w_content: float = 0.1

    def __post_init__(self) -> None:
        if self.key_rule not in KEY_RULES:
            raise M2UGenError(f"unknown key rule {self.key_rule!r}: expected one of {', '.join(KEY_RULES)}")
        if not 0 < self.tolerance < 0.3:
            raise M2UGenError(f"tempo tolerance {self.tolerance} out of range (0, 0.3)")
        if self.k < 1 or self.window < 1:
            raise M2UGenError("k and window must be at least 1")
        if not (0 <= self.min_content_dist <= 1 and 0 <= self.min_harmony_sim <= 1):
            raise M2UGenError("min_content_dist and min_harmony_sim are fractions in [0, 1]")
        if self.content_scale <= 0 or self.timbre_scale <= 0:
            raise M2UGenError("content_scale and timbre_scale must be positive")


@dataclass
class MiningResult:
    pairs: pa.Table  # the PAIRS manifest schema
    eligible: int = 0
    clips: int = 0
    candidates: int = 0  # candidate edges examined
    valid: int = 0  # candidate edges passing every rule
    clip_rejections: dict[str, int] = field(default_factory=dict)
    pair_rejections: dict[str, int] = field(default_factory=dict)
    degree_histogram: dict[int, int] = field(default_factory=dict)  # degree -> eligible clips
    timings: dict[str, float] = field(default_factory=dict)
    rejected: pa.Table | None = None  # (clip_id, why) of the rejected clips, for ``pair_cache``


# --------------------------------------------------------------------------- inputs

# FEATURES columns read; the schema-2 ones (tags_mtt, instruments, beat_chords) read as NULL when a table
# predates them, which is how an old analysis falls back to labels and timbre.
FEATURE_COLUMNS = (
    *("clip_id", "status", "tempo_bpm", "tempo_conf", "beats", "meter", "key"),
    *("loudness_lufs", "timbre", "is_music", "tags_mtt", "instruments", "beat_chords"),
)
# Pair rules evaluated by the kernel; tempo is checked in the join and harmony after the kernel.
RULE_BITS = {"loudness": 2, "same_video": 4, "too_similar": 8}
_N_CHORD_IDS = harmony.N_CHORD_IDS  # plain globals: numba freezes them at compile time
_LN2 = math.log(2)


@functools.cache
def content_tag_index() -> dict[str, tuple[int, ...]]:
    """Instrument or voice word -> positions in ``taggers.MTT_TAGS`` of the tags that measure it.

    The words and their tags are ``tag_words``' (its instrument table, and all its voice tags as one word),
    restricted to MTT, so "what is playing" means the same here as in the measured ``instruments`` sets.
    The voice tags are one word because MTT has many near-synonyms (vocal, vocals, singing, voice, ...):
    as separate dimensions they would outweigh the accompaniment in the cosine, and two songs with the
    same singer over different instruments would look alike."""
    from m2ugen_data.analysis.tag_words import INSTRUMENT_TAGS, VOICE_TAGS
    from m2ugen_data.analysis.taggers import MTT_TAGS  # imports torch: only when mining

    position = {name: i for i, name in enumerate(MTT_TAGS)}
    words = {**INSTRUMENT_TAGS, "voice": VOICE_TAGS}
    index = {w: tuple(position[t] for s, t in tags if s == "mtt" and t in position) for w, tags in words.items()}
    return {w: idx for w, idx in index.items() if idx}


def content_vectors(tags_mtt: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(clips, words) float32: per clip and word of ``content_tag_index`` the strongest of its MTT tag
    probabilities; a NaN row where the clip has no complete MTT tag vector (not measured)."""
    from m2ugen_data.analysis.taggers import MTT_TAGS

    arr = _combined(tags_mtt)
    index = content_tag_index()
    width = len(MTT_TAGS)
    ok = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False) == width
    out = np.full((len(arr), len(index)), np.nan, dtype=np.float32)
    if ok.any():
        rows = arr if ok.all() else arr.filter(pa.array(ok))  # all complete: flattening is a view
        probs = pc.list_flatten(rows).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        probs = probs.reshape(-1, width)
        for j, idx in enumerate(index.values()):
            out[ok, j] = np.maximum.reduce([probs[:, i] for i in idx])
    return out


def _combined(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def beat_phase(beats: pa.ChunkedArray | pa.Array, tempo: np.ndarray) -> np.ndarray:
    """Offset (s) of each clip's beat grid inside one beat period: the circular mean of beat times modulo
    the period 60/tempo. Two clips with the same tempo and phase have beats that coincide from t=0."""
    beats = _combined(beats)
    n = len(beats)
    offsets = beats.offsets.to_numpy()
    if len(offsets) != n + 1:
        offsets = offsets[: n + 1]
    flat = beats.values.to_numpy(zero_copy_only=False).astype(np.float64)
    lengths = np.diff(offsets)
    parent = np.repeat(np.arange(n), lengths)
    flat = flat[offsets[0] : offsets[0] + len(parent)]
    period = np.where(np.isfinite(tempo) & (tempo > 0), 60.0 / np.where(tempo > 0, tempo, 1.0), np.nan)
    angle = 2 * np.pi * flat / period[parent]
    ok = np.isfinite(angle)
    cs = np.bincount(parent[ok], weights=np.cos(angle[ok]), minlength=n)
    sn = np.bincount(parent[ok], weights=np.sin(angle[ok]), minlength=n)
    frac = np.mod(np.arctan2(sn, cs) / (2 * np.pi), 1.0)
    frac[lengths == 0] = 0.0
    return frac * period


def label_sets(labels: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Label (or word) sets as CSR: ``values`` int32 distinct ids ascending, ``offsets`` int64, and the
    vocabulary ``names`` in alphabetical order, so id order is name order. Jaccard is then a merge of two
    short sorted runs in the kernel and a set difference comes out already sorted. NULL lists are empty."""
    arr = _combined(labels)
    n = len(arr)
    parent = pc.list_parent_indices(arr).to_numpy().astype(np.int64)
    flat = pc.list_flatten(arr)
    encoded = pc.dictionary_encode(flat)
    names = encoded.dictionary
    alphabetical = pc.array_sort_indices(names)
    rank = np.empty(len(names), dtype=np.int64)
    rank[alphabetical.to_numpy()] = np.arange(len(names))
    valid = pc.is_valid(flat).to_numpy(zero_copy_only=False)
    ids = rank[pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)[valid]]
    vocab = len(names) + 1
    key = np.sort(parent[valid] * vocab + ids)
    key = key[np.concatenate([key[:1] == key[:1], key[1:] != key[:-1]])]  # distinct (np.unique: 4x slower)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(key // vocab, minlength=n), out=offsets[1:])
    return (key % vocab).astype(np.int32), offsets, pc.take(names, alphabetical)


@numba.njit(cache=True)
def _set_difference(
    values: np.ndarray, offsets: np.ndarray, keep: np.ndarray, minus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair k, the ids of set ``keep[k]`` that are not in set ``minus[k]`` (CSR in, CSR out)."""
    m = keep.shape[0]
    total = 0
    for k in range(m):
        total += offsets[keep[k] + 1] - offsets[keep[k]]
    out = np.empty(total, dtype=np.int32)
    out_offsets = np.zeros(m + 1, dtype=np.int32)
    w = 0
    for k in range(m):
        j, j1 = offsets[minus[k]], offsets[minus[k] + 1]
        for i in range(offsets[keep[k]], offsets[keep[k] + 1]):
            while j < j1 and values[j] < values[i]:
                j += 1
            if j == j1 or values[j] != values[i]:
                out[w] = values[i]
                w += 1
        out_offsets[k + 1] = w
    return out[:w], out_offsets


def _differences(
    sets: tuple[np.ndarray, np.ndarray, pa.Array], keep: np.ndarray, minus: np.ndarray, null: np.ndarray | None = None
) -> pa.Array:
    """list<string> of the names in set ``keep[k]`` and not in ``minus[k]``, NULL where ``null``."""
    values, offsets, names = sets
    diff, diff_offsets = _set_difference(values, offsets, keep, minus)
    strings = pa.DictionaryArray.from_arrays(pa.array(diff), names).cast(pa.string())
    return pa.ListArray.from_arrays(pa.array(diff_offsets), strings, mask=None if null is None else pa.array(null))


def chord_sequences(beat_chords: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beat chords as ``harmony`` chord-id CSR (``values`` int8, ``offsets`` int64) and a per-clip
    ``measured`` flag (False where the list is NULL: no chords were analysed, as opposed to none heard).
    Labels are converted once per distinct label, not once per beat."""
    arr = _combined(beat_chords)
    measured = pc.is_valid(arr).to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    encoded = pc.dictionary_encode(pc.list_flatten(arr))
    by_label = np.append(harmony.chord_ids(encoded.dictionary.to_pylist()), np.int8(0))  # last: NULL label
    idx = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return by_label[idx].astype(np.int8), offsets, measured


def every_other_beat(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sequence's even-indexed beats: a clip's chords on the beat grid of a clip at half its tempo
    (chords change on strong beats, so dropping the odd ones loses little)."""
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    parent = np.repeat(np.arange(n), lengths)
    keep = (np.arange(len(values)) - offsets[parent]) % 2 == 0
    half = np.zeros(n + 1, dtype=np.int64)
    np.cumsum((lengths + 1) // 2, out=half[1:])
    return values[keep], half


@numba.njit(cache=True)
def harmony_class(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per chord sequence, the diatonic collection (major-key tonic 0..11; a minor key shares its relative
    major's) holding the most of its beats' chords; -1 when no beat has a chord. Lowest tonic on ties."""
    n = offsets.shape[0] - 1
    out = np.full(n, -1, dtype=np.int64)
    counts = np.zeros(_N_CHORD_IDS, dtype=np.int64)
    for i in range(n):
        counts[:] = 0
        for j in range(offsets[i], offsets[i + 1]):
            counts[values[j]] += 1
        most = 0
        for t in range(12):  # major triads on degrees I IV V, minor triads on ii iii vi
            c = counts[1 + t] + counts[1 + (t + 5) % 12] + counts[1 + (t + 7) % 12]
            c += counts[13 + (t + 2) % 12] + counts[13 + (t + 4) % 12] + counts[13 + (t + 9) % 12]
            if c > most:
                out[i], most = t, c
    return out


@dataclass
class ClipArrays:
    """Dense per-clip arrays of the eligible clips (row i = clip i in clip_id order) for the kernels."""

    lt: np.ndarray  # log tempo
    ibi: np.ndarray  # beat period (s)
    phase: np.ndarray  # beat-grid offset (s), ``beat_phase``
    loud: np.ndarray  # float64
    video: np.ndarray  # int64 YouTube-video code
    labels: tuple[np.ndarray, np.ndarray, pa.Array]  # AudioSet label sets, ``label_sets`` CSR
    words: tuple[np.ndarray, np.ndarray, pa.Array]  # measured instrument words, ``label_sets`` CSR
    words_measured: np.ndarray  # bool: the instruments list is not NULL
    timbre: np.ndarray  # (n, d) float32, NaN rows where the timbre is missing or of another length
    content: np.ndarray  # (n, words) float32, NaN rows where tags are missing
    chord_values: np.ndarray  # chord ids, CSR: rows 0..n-1 full rate, n..2n-1 every other beat (double)
    chord_offsets: np.ndarray
    chords_measured: np.ndarray  # bool
    timbre_len: np.ndarray  # int64 length of each clip's timbre list (0: NULL); ``timbre`` holds the commonest


def eligible_clips(features: pa.Table, labels: pa.Table, rules: PairRules) -> tuple[pa.Table, dict[str, int]]:
    """The eligible clips in clip_id order (FEATURE_COLUMNS plus ``labels``, the AudioSet instruments) and
    the count of the first per-clip rule each rejected clip fails."""
    elig, rejected = eligible_and_rejected(features, labels, rules)
    return elig, rejection_counts(rejected)


def rejection_counts(rejected: pa.Table) -> dict[str, int]:
    """Rejected clips (clip_id, why) counted by reason."""
    counts = pc.value_counts(rejected.column("why")).to_pylist() if rejected.num_rows else []
    return {c["values"]: int(c["counts"]) for c in counts}


def eligible_and_rejected(features: pa.Table, labels: pa.Table, rules: PairRules) -> tuple[pa.Table, pa.Table]:
    """``eligible_clips``' table, and the rejected clips with the first per-clip rule each fails (clip_id,
    why). DuckDB sees only the scalar columns; the list columns (tags, chords, beats) are taken in Arrow,
    which is several times cheaper than sorting them through SQL."""
    from m2ugen_data.schemas import FEATURES

    for name in (c for c in FEATURE_COLUMNS if c not in features.column_names):
        col = FEATURES.schema.field(name)
        features = features.append_column(col, pa.nulls(features.num_rows, col.type))
    scalars = ["clip_id", "status", "tempo_bpm", "tempo_conf", "meter", "key", "loudness_lufs", "is_music"]
    con = duck_connect()
    con.register("f", features.select(scalars).append_column("row", pa.array(np.arange(features.num_rows))))
    con.register("l", labels.select(["clip_id", "instruments"]))
    music = "coalesce(is_music, false)" if rules.require_music else "true"
    need_key = "key IS NULL" if rules.key_rule != "any" else "false"
    reason = f"""CASE
        WHEN status <> 'ok' THEN 'not_ok'
        WHEN NOT {music} THEN 'not_music'
        WHEN tempo_bpm IS NULL OR NOT isfinite(tempo_bpm) OR tempo_bpm <= 0 THEN 'no_tempo'
        WHEN meter IS NULL OR meter NOT IN (3, 4) THEN 'no_meter'
        WHEN coalesce(tempo_conf, 0) < {float(rules.min_tempo_conf)} THEN 'low_beat_conf'
        WHEN loudness_lufs IS NULL OR NOT isfinite(loudness_lufs) THEN 'no_loudness'
        WHEN {need_key} THEN 'no_key'
        ELSE NULL END"""
    con.execute(
        f"""CREATE TEMP TABLE t AS
            SELECT f.row, f.clip_id, l.instruments AS labels, {reason} AS why FROM f LEFT JOIN l USING (clip_id)"""
    )
    rejected = con.sql("SELECT clip_id, why FROM t WHERE why IS NOT NULL").to_arrow_table()
    keep = con.sql("SELECT row, labels FROM t WHERE why IS NULL ORDER BY clip_id").to_arrow_table()
    elig = features.select(list(FEATURE_COLUMNS)).take(keep.column("row"))
    return elig.append_column("labels", keep.column("labels")), rejected


def timbre_dim(lengths: np.ndarray) -> int:
    """The timbre length the kernels compare: the commonest non-zero one over the clips (0: none)."""
    return int(np.bincount(lengths).argmax()) if lengths.any() else 0


def _timbre_matrix(timbre: pa.ChunkedArray | pa.Array, d: int | None = None) -> np.ndarray:
    """(n, d) float32 of timbre length d (default ``timbre_dim`` of these clips); NaN rows for clips without
    a timbre of that length (their distance is unknown, as a length mismatch was in SQL)."""
    arr = _combined(timbre)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    d = timbre_dim(lengths) if d is None else d
    ok = (lengths == d) & (lengths > 0)
    out = np.full((len(arr), max(d, 1)), np.nan, dtype=np.float32)
    if ok.any():
        out[ok] = pc.list_flatten(arr.filter(pa.array(ok))).to_numpy(zero_copy_only=False).reshape(-1, d)
    return out


def clip_arrays(t: pa.Table, rules: PairRules, *, timbre_d: int | None = None) -> tuple[pa.Table, ClipArrays]:
    """The candidate table for the join (block, tempo, phase, harmony class) and the kernels' arrays;
    ``timbre_d`` fixes the timbre length compared (``pair_cache`` builds new clips' arrays to match a set's)."""
    n = t.num_rows
    tempo = t.column("tempo_bpm").to_numpy(zero_copy_only=False).astype(np.float64)
    meter = t.column("meter").to_numpy(zero_copy_only=False).astype(np.int64)
    keys = t.column("key").combine_chunks()
    distinct = pc.unique(keys).to_pylist()
    try:
        class_of = {k: key_class(k, rules.key_rule) if k is not None else "*" for k in distinct}
    except ValueError as e:
        raise M2UGenError(f"features manifest holds an unparseable key: {e}") from e
    classes = sorted(set(class_of.values()))
    lookup = pa.array(distinct)
    key_idx = pc.index_in(keys, value_set=lookup, skip_nulls=False).to_numpy(zero_copy_only=False)
    class_id = np.array([classes.index(class_of[k]) for k in distinct], dtype=np.int64)[key_idx]
    ytid = pc.utf8_slice_codeunits(t.column("clip_id").combine_chunks(), 0, 11)
    video = pc.dictionary_encode(ytid).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    chord_values, chord_offsets, measured = chord_sequences(t.column("beat_chords"))
    harmony_classes = harmony_class(chord_values, chord_offsets)
    if rules.allow_double:
        half_values, half_offsets = every_other_beat(chord_values, chord_offsets)
        chord_values = np.concatenate([chord_values, half_values])
        chord_offsets = np.concatenate([chord_offsets, chord_offsets[-1] + half_offsets[1:]])
    lt, ibi, phase = np.log(tempo), 60.0 / tempo, beat_phase(t.column("beats"), tempo)
    clips = ClipArrays(
        lt=lt,
        ibi=ibi,
        phase=phase,
        loud=t.column("loudness_lufs").to_numpy(zero_copy_only=False).astype(np.float64),
        video=video,
        labels=label_sets(t.column("labels")),
        words=label_sets(t.column("instruments")),
        words_measured=pc.is_valid(t.column("instruments")).to_numpy(zero_copy_only=False),
        timbre=_timbre_matrix(t.column("timbre"), timbre_d),
        content=content_vectors(t.column("tags_mtt")),
        chord_values=chord_values,
        chord_offsets=chord_offsets,
        chords_measured=measured,
        timbre_len=pc.fill_null(pc.list_value_length(t.column("timbre")), 0).to_numpy().astype(np.int64),
    )
    block = meter * 1000 + class_id
    ids = np.arange(n, dtype=np.int32)
    cand = pa.table({"id": ids, "block": block, "lt": lt, "ibi": ibi, "phase": phase, "hc": harmony_classes})
    return cand, clips


# --------------------------------------------------------------------------- the join


N_ORDERS = 3  # sort orders of the band join


def copies(rules: PairRules) -> int:
    """Sort elements per clip: the clip, and with ``allow_double`` a copy at twice its tempo. Element
    ``e`` is clip ``e // copies`` in octave copy ``e % copies``."""
    return 2 if rules.allow_double else 1


def order_keys(
    block: np.ndarray, lt: np.ndarray, ibi: np.ndarray, phase: np.ndarray, hc: np.ndarray, rules: PairRules
) -> list[np.ndarray]:
    """Per sort order, a (keys, elements) float64 matrix, most significant key first (all exact in float64).

    Block is the first key of every order, so two elements are band neighbours when they are at most
    ``window`` positions apart in the same block. By tempo; by harmony class then beat phase inside fine
    tempo buckets; the same with the buckets shifted by half a width, so two clips of nearly equal tempo
    share a bucket in at least one grid. Ties end on (clip id, octave), so the order is total and depends
    only on per-clip values: adding clips inserts elements without reordering the others, which is what
    lets the incremental miner (``pair_cache``) reuse a previous run's edges. Computed by ``element_key`` (not SQL)
    so the full and the incremental miner see bit-identical keys."""
    c = copies(rules)
    elements = np.arange(len(lt) * c, dtype=np.int64)
    block, hc = block.astype(np.int64), hc.astype(np.int64)
    return [element_keys(r, elements, c, block, lt, ibi, phase, hc, bucket_width(rules)) for r in range(N_ORDERS)]


def bucket_width(rules: PairRules) -> float:
    """Width of the fine log-tempo buckets of sort orders 1 and 2: half the tempo tolerance."""
    return math.log1p(rules.tolerance) / 2


@numba.njit(cache=True)
def element_key(
    r: int, e: int, c: int, block: np.ndarray, lt: np.ndarray, ibi: np.ndarray, phase: np.ndarray, hc: np.ndarray,
    fine: float, out: np.ndarray,
) -> int:  # fmt: skip
    """Fill ``out`` with element ``e``'s keys in order ``r`` (``order_keys``); returns how many. One compiled
    function for every caller, so the full and the incremental miner's keys are the same bits: by block,
    log-tempo (at double tempo for octave copy 1), clip id, octave; or by block, tempo bucket (``fine``
    wide, shifted by half in order 2), harmony class, beat phase as a fraction of the period, then as order 0."""
    i, q = e // c, e % c
    elt = lt[i] + (_LN2 if q == 1 else 0.0)
    out[0] = block[i]
    if r == 0:
        out[1], out[2], out[3] = elt, i, q
        return 4
    period = ibi[i] / (2.0 if q == 1 else 1.0)
    out[1] = np.floor(elt / fine) if r == 1 else np.floor(elt / fine + 0.5)
    out[2] = hc[i]
    out[3] = np.fmod(phase[i], period) / period
    out[4], out[5], out[6] = elt, i, q
    return 7


@numba.njit(cache=True)
def element_keys(
    r: int, elements: np.ndarray, c: int, block: np.ndarray, lt: np.ndarray, ibi: np.ndarray, phase: np.ndarray,
    hc: np.ndarray, fine: float,
) -> np.ndarray:  # fmt: skip
    """(keys, elements) float64 matrix of ``element_key`` for the given elements."""
    buf = np.empty(7)
    width = 4 if r == 0 else 7
    out = np.empty((width, elements.shape[0]))
    for k in range(elements.shape[0]):
        element_key(r, elements[k], c, block, lt, ibi, phase, hc, fine, buf)
        out[:, k] = buf[:width]
    return out


def sort_positions(
    block: np.ndarray, lt: np.ndarray, ibi: np.ndarray, phase: np.ndarray, hc: np.ndarray, rules: PairRules
) -> tuple[np.ndarray, np.ndarray]:
    """(orders, positions): per sort order (``order_keys``), the elements in sorted order and each
    element's position in it."""
    keys = order_keys(block, lt, ibi, phase, hc, rules)
    orders = np.empty((N_ORDERS, keys[0].shape[1]), dtype=np.int64)
    positions = np.empty_like(orders)
    for i, k in enumerate(keys):
        orders[i] = np.lexsort(k[::-1])
        positions[i, orders[i]] = np.arange(k.shape[1])
    return orders, positions


def _build_candidates(con: duckdb.DuckDBPyConnection, cand: pa.Table, rules: PairRules) -> np.ndarray:
    """Create table ``e``: candidate pairs, one row per (lo, hi, octave relation ``rel``: 1 when lo is
    compared at double its tempo, -1 when hi is) with their log-tempo difference ``dlt``; return the sort
    positions (``sort_positions``). Each order is a plain table joined with itself on (block, position +
    offset), so DuckDB hashes instead of joining whole blocks and filtering, and the join carries ids and
    log-tempi only (the kernels recompute the beat geometry per edge); ``e`` keeps edges up to 3x the
    tempo tolerance so the tempo rule's rejections can be counted."""
    tol = math.log1p(rules.tolerance)
    c = copies(rules)
    cols = {name: cand.column(name).to_numpy() for name in ("block", "lt", "ibi", "phase", "hc")}
    orders, positions = sort_positions(cols["block"], cols["lt"], cols["ibi"], cols["phase"], cols["hc"], rules)
    n = len(cols["lt"])
    element = pa.table(
        {
            "id": np.repeat(np.arange(n, dtype=np.int32), c),
            "oct": np.tile(np.arange(c, dtype=np.int8), n),
            "block": np.repeat(cols["block"], c),
            "lt": np.repeat(cols["lt"], c) + np.tile(np.array([0.0, math.log(2)][:c]), n),
        }
    )
    for i in range(N_ORDERS):
        con.register(f"p{i}", element.append_column("rn", pa.array(positions[i])))
    joins = " UNION ALL ".join(
        f"""SELECT a.id AS ia, a.oct AS oa, a.lt AS la, b.id AS ib, b.oct AS ob, b.lt AS lb
            FROM (SELECT p{i}.*, p{i}.rn + o.o AS rn_b FROM p{i}, range(1, {rules.window + 1}) o(o)) a
            JOIN p{i} b ON b.block = a.block AND b.rn = a.rn_b"""
        for i in range(N_ORDERS)
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE e AS
            SELECT DISTINCT least(ia, ib) AS lo, greatest(ia, ib) AS hi,
                   CASE WHEN ia < ib THEN oa - ob ELSE ob - oa END AS rel, abs(la - lb) AS dlt
            FROM ({joins}) WHERE ia <> ib AND NOT (oa = 1 AND ob = 1) AND abs(la - lb) <= {3 * tol}"""
    )
    for i in range(N_ORDERS):
        con.unregister(f"p{i}")
    return positions


# --------------------------------------------------------------------------- measures, rules, score


@numba.njit(cache=True)
def _label_jaccard(values: np.ndarray, offsets: np.ndarray, a: int, b: int) -> float:
    """Jaccard of two sorted label runs; NaN when both are empty (no labels: unknown, not equal)."""
    i, i1, j, j1 = offsets[a], offsets[a + 1], offsets[b], offsets[b + 1]
    union = (i1 - i) + (j1 - j)
    if union == 0:
        return np.nan
    inter = 0
    while i < i1 and j < j1:
        if values[i] == values[j]:
            inter += 1
            i += 1
            j += 1
        elif values[i] < values[j]:
            i += 1
        else:
            j += 1
    return inter / (union - inter)


@numba.njit(cache=True)
def _rms_distance(m: np.ndarray, a: int, b: int) -> float:
    """Euclidean distance / sqrt(dimensions): the RMS difference per timbre dimension (NaN if unknown)."""
    s = 0.0
    for j in range(m.shape[1]):
        d = np.float64(m[a, j]) - np.float64(m[b, j])
        s += d * d
    return math.sqrt(s / m.shape[1])


@numba.njit(cache=True)
def _cosine_distance(m: np.ndarray, a: int, b: int) -> float:
    """1 - cosine similarity of two tag vectors; NaN when either is missing or all zero."""
    dot, na, nb = 0.0, 0.0, 0.0
    for j in range(m.shape[1]):
        x, y = np.float64(m[a, j]), np.float64(m[b, j])
        dot += x * y
        na += x * x
        nb += y * y
    if not (na > 0 and nb > 0):  # also false for NaN
        return np.nan
    return max(0.0, 1.0 - dot / math.sqrt(na * nb))


@numba.njit(cache=True)
def _geometry(a: int, b: int, rel: int, lt: np.ndarray, ibi: np.ndarray, phase: np.ndarray) -> tuple[float, float]:
    """Log-tempo difference and beat-grid alignment (1: beats coincide, 0: half a beat apart) of clips a
    and b; ``rel`` 1 compares a at double its tempo (its grid halved), -1 does so for b."""
    la, pa_, fa = lt[a], ibi[a], phase[a]
    lb, pb, fb = lt[b], ibi[b], phase[b]
    if rel == 1:
        la, pa_ = la + _LN2, pa_ / 2
        fa = np.fmod(fa, pa_)
    elif rel == -1:
        lb, pb = lb + _LN2, pb / 2
        fb = np.fmod(fb, pb)
    grid = min(pa_, pb)
    dph = abs(np.fmod(fa, grid) - np.fmod(fb, grid))
    return abs(la - lb), 1 - 2 * min(dph, grid - dph) / grid


@numba.njit(cache=True)
def _score_kernel(
    lo: np.ndarray,
    hi: np.ndarray,
    rel: np.ndarray,
    lt: np.ndarray,
    ibi: np.ndarray,
    phase: np.ndarray,
    loud: np.ndarray,
    video: np.ndarray,
    label_values: np.ndarray,
    label_offsets: np.ndarray,
    timbre: np.ndarray,
    content: np.ndarray,
    params: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Failed-rule bits (``RULE_BITS`` but harmony) and the score without its harmony term, per edge.
    ``params`` is ``_kernel_params``' vector. Label Jaccard and timbre are computed only for clips without
    tags, where they decide; failed edges get no score (never selected)."""
    tol, max_loud, max_jac, min_timbre = params[0], params[1], params[2], params[3]
    min_content, content_scale, timbre_scale = params[4], params[5], params[6]
    w_tempo, w_beat, w_content, min_sound = params[7], params[8], params[9], params[10]
    m = lo.shape[0]
    failed = np.zeros(m, dtype=np.uint8)
    score = np.zeros(m, dtype=np.float64)
    for k in range(m):
        a, b = lo[k], hi[k]
        bits = 0
        if abs(loud[a] - loud[b]) > max_loud:
            bits |= 2
        if video[a] == video[b]:
            bits |= 4
        cd = _cosine_distance(content, a, b)
        if cd == cd:  # measured content decides: instrumentation or sound must differ
            td = _rms_distance(timbre, a, b)
            differs = cd >= min_content or (td == td and td > min_sound)
            bonus = min(1.0, cd / content_scale)
        else:  # no tags: the schema-1 rule and timbre bonus
            jac = _label_jaccard(label_values, label_offsets, a, b)
            td = _rms_distance(timbre, a, b)
            differs = (jac == jac and jac < max_jac) or (td == td and td > min_timbre)
            bonus = min(1.0, td / timbre_scale) if td == td else 0.0
        if not differs:
            bits |= 8
        failed[k] = bits
        if bits == 0:
            dlt, beat_sim = _geometry(a, b, rel[k], lt, ibi, phase)
            score[k] = w_tempo * max(0.0, 1 - dlt / tol) + w_beat * beat_sim + w_content * bonus
    return failed, score


def _kernel_params(rules: PairRules) -> np.ndarray:
    return np.array(
        [
            *(math.log1p(rules.tolerance), rules.max_loudness_diff, rules.max_label_jaccard, rules.min_timbre_dist),
            *(rules.min_content_dist, rules.content_scale, rules.timbre_scale),
            *(rules.w_tempo, rules.w_beat, rules.w_content, rules.min_sound_dist),
        ],
        dtype=np.float64,
    )


@numba.njit(cache=True)
def _measure_kernel(
    lo: np.ndarray, hi: np.ndarray, rel: np.ndarray, clip_scalars: np.ndarray, label_values: np.ndarray,
    label_offsets: np.ndarray, timbre: np.ndarray, content: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """(pairs, 4): label Jaccard, timbre distance, content distance, beat alignment of the chosen pairs
    (NaN = not measurable). ``clip_scalars`` rows: log tempo, beat period, beat phase."""
    out = np.empty((lo.shape[0], 4))
    for k in range(lo.shape[0]):
        a, b = lo[k], hi[k]
        out[k, 0] = _label_jaccard(label_values, label_offsets, a, b)
        out[k, 1] = _rms_distance(timbre, a, b)
        out[k, 2] = _cosine_distance(content, a, b)
        out[k, 3] = _geometry(a, b, rel[k], clip_scalars[0], clip_scalars[1], clip_scalars[2])[1]
    return out


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


def _best_first(score: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
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


@numba.njit(cache=True)
def _greedy_bmatch(lo: np.ndarray, hi: np.ndarray, n: int, k: int) -> np.ndarray:
    """Edges arrive best first; take one when both ends still have room. Linear, exact greedy."""
    degree = np.zeros(n, dtype=np.int64)
    take = np.zeros(lo.shape[0], dtype=np.bool_)
    for i in range(lo.shape[0]):
        a, b = lo[i], hi[i]
        if degree[a] < k and degree[b] < k:
            take[i] = True
            degree[a] += 1
            degree[b] += 1
    return take


@dataclass
class ScoredEdges:
    """Valid edges (every rule passed) in best-first order (score descending, ties by clip ids), with
    their scores and whether the degree cap chose them: what ``pair_cache`` keeps between runs."""

    lo: np.ndarray  # int64 row ids of the eligible clips, lo < hi
    hi: np.ndarray
    rel: np.ndarray  # int8 octave relation
    score: np.ndarray  # float64
    harm: np.ndarray  # float32 harmony similarity, NaN where not measured
    chosen: np.ndarray  # bool


def mine_pairs(
    features: pa.Table,
    labels: pa.Table,
    rules: PairRules = PairRules(),
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> MiningResult:
    """Mine pairs from a features table (FEATURES columns; schema-2 columns may be absent) and AudioSet
    instrument labels (clip_id, instruments), the fallback content evidence for clips without tags."""
    return mine_full(features, labels, rules, threads=threads, memory_limit=memory_limit)[0]


def mine_full(
    features: pa.Table,
    labels: pa.Table,
    rules: PairRules = PairRules(),
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> tuple[MiningResult, pa.Table, ClipArrays, np.ndarray | None, ScoredEdges | None]:
    """``mine_pairs`` plus what an incremental re-mine starts from: the eligible clips' candidate table
    (``clip_arrays``, plus the columns the output reads: ``OUTPUT_COLUMNS``), their kernel arrays, their
    sort positions and the scored valid edges (None when under two clips)."""
    t0 = time.perf_counter()
    elig, rejected = eligible_and_rejected(features, labels, rules)
    cand, clips = clip_arrays(elig, rules)
    for name in OUTPUT_COLUMNS:
        cand = cand.append_column(name, elig.column(name))
    result = MiningResult(
        pairs=_empty_pairs(), eligible=elig.num_rows, clips=features.num_rows,
        clip_rejections=rejection_counts(rejected), rejected=rejected,
    )  # fmt: skip
    result.timings["prepare"] = time.perf_counter() - t0
    if elig.num_rows < 2:
        result.degree_histogram = {0: elig.num_rows}
        return result, cand, clips, None, None

    t1 = time.perf_counter()
    con = duck_connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    positions = _build_candidates(con, cand, rules)
    tol = math.log1p(rules.tolerance)
    examined, off_tempo = con.execute(f"SELECT count(*), count(*) FILTER (dlt > {tol}) FROM e").fetchall()[0]
    edges = con.sql(f"SELECT lo, hi, rel FROM e WHERE dlt <= {tol}").to_arrow_table()
    con.close()  # frees the join's memory before the kernels allocate theirs
    result.candidates, result.pair_rejections = int(examined), {"tempo": int(off_tempo)}
    result.timings["join"] = time.perf_counter() - t1
    scored = select_pairs(result, elig, clips, edges, rules)
    result.timings["total"] = time.perf_counter() - t0
    return result, cand, clips, positions, scored


def score_edges(
    result: MiningResult, clips: ClipArrays, lo: np.ndarray, hi: np.ndarray, rel: np.ndarray, rules: PairRules
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rules and score of candidate edges (row ids of ``clips``): the valid ones' (lo, hi, rel, score,
    harm), rejections added to ``result``. Harmony is computed only for edges that pass every other rule
    (the costliest measure; a rejected edge needs no score), so the ``harmony`` count is over those."""
    failed, score = _score_kernel(
        lo, hi, rel, clips.lt, clips.ibi, clips.phase, clips.loud, clips.video, clips.labels[0],
        clips.labels[1], clips.timbre, clips.content, _kernel_params(rules),
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


def select_pairs(
    result: MiningResult, elig: pa.Table, clips: ClipArrays, edges: pa.Table, rules: PairRules
) -> ScoredEdges:
    """Rules, score and degree cap over candidate ``edges`` (lo, hi, rel: row ids of ``elig`` and octave
    relation, within the tempo tolerance); fills ``result``'s pairs, counts and timings and returns the
    scored valid edges. Separate from the join so a benchmark can feed it candidates found another way
    (every pair of neighbouring tempo bins) and compare searches under one scoring."""
    lo, hi, rel = (edges.column(c).to_numpy() for c in ("lo", "hi", "rel"))
    del edges
    t1 = time.perf_counter()
    lo, hi, rel, score, harm = score_edges(result, clips, lo.astype(np.int64), hi.astype(np.int64), rel, rules)
    result.timings["score"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    order = _best_first(score, lo, hi)
    scored = ScoredEdges(lo[order], hi[order], rel[order].astype(np.int8), score[order], harm[order], np.empty(0, bool))
    choose(result, scored, elig.num_rows, rules.k)
    result.timings["select"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    c = scored.chosen
    result.pairs = _pairs_table(elig, clips, scored.lo[c], scored.hi[c], scored.rel[c], scored.harm[c], scored.score[c])
    result.timings["output"] = time.perf_counter() - t1
    return scored


def choose(result: MiningResult, scored: ScoredEdges, n: int, k: int) -> None:
    """The degree cap over best-first ``scored`` edges of ``n`` clips: sets ``scored.chosen`` and the
    result's valid, ``degree_cap`` and degree-histogram counts."""
    scored.chosen = _greedy_bmatch(scored.lo, scored.hi, n, k)
    result.valid = len(scored.lo)
    result.pair_rejections["degree_cap"] = int(len(scored.chosen) - scored.chosen.sum())
    degree = np.bincount(np.concatenate([scored.lo[scored.chosen], scored.hi[scored.chosen]]), minlength=n)
    result.degree_histogram = {int(d): int(c) for d, c in enumerate(np.bincount(degree)) if c}


# the eligible table's columns ``_pairs_table`` reads (besides the kernel arrays)
OUTPUT_COLUMNS = ("clip_id", "tempo_bpm", "meter", "key")


def _pairs_table(
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
    measured = _measure_kernel(lo, hi, rel, geometry, label_values, label_offsets, clips.timbre, clips.content)
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
        "labels_added": _differences(clips.labels, hi, lo),
        "labels_removed": _differences(clips.labels, lo, hi),
        "label_jaccard": measured[:, 0],
        "timbre_dist": measured[:, 1],
        "beat_sim": measured[:, 3],
        "instruments_added": _differences(clips.words, hi, lo, unmeasured),
        "instruments_removed": _differences(clips.words, lo, hi, unmeasured),
        "content_dist": measured[:, 2],
        "harmony_sim": harm.astype(np.float64),
        "score": score,
        "miner_version": pa.array([MINER_VERSION] * len(lo), pa.string()),
        "created_at": pa.array([utc_now()] * len(lo), type=pa.timestamp("us", tz="UTC")),
    }
    table = pa.table({k: v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v, from_pandas=True)
                      for k, v in columns.items()})  # fmt: skip
    return conform(PAIRS, table)  # from_pandas: NaN -> NULL


def _empty_pairs() -> pa.Table:
    from m2ugen_data.schemas import PAIRS

    return PAIRS.schema.empty_table()


def mine_warehouse(
    warehouse: Warehouse,
    rules: PairRules = PairRules(),
    pool: str | None = None,
    *,
    full: bool = False,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> tuple[MiningResult, str | None]:
    """Mine pairs over the analysed clips (of one pool) and write them as one ``pairs`` batch.

    The batch id names the pool only, so mining again (new rules, more clips) replaces the previous pairs
    of that pool instead of mixing two runs' pairs in the manifest. Columns a warehouse of old analyses
    lacks altogether are left out here and read as NULL by ``mine_pairs``. Mining is incremental
    (``pair_cache``: only edges of new or re-analysed clips are searched, same pairs as a full mine) when
    the previous run's cache under ``cache/pairs/`` fits the rules; ``full`` ignores it and mines all.
    """
    from m2ugen_data.analysis import pair_cache

    con = warehouse.connect()
    have = {row[0] for row in con.sql("DESCRIBE features_latest").fetchall()}
    cols = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS if c in have)
    params = [pool] if pool else None
    pool_join = "JOIN segments_latest s USING (clip_id) WHERE s.pool = ?" if pool else ""
    batch_id = f"pairs-{pool or 'all'}"
    cache_dir = warehouse.root / "cache" / "pairs" / batch_id
    cache = None if full else pair_cache.PairCache.load(cache_dir)
    # a clip changed when its features row (updated_at) or its AudioSet labels did
    versions = con.sql(
        f"""SELECT f.clip_id, hash(f.updated_at, l.instruments) AS version FROM features_latest f
            LEFT JOIN segments_latest l USING (clip_id) {"WHERE l.pool = ?" if pool else ""} ORDER BY f.clip_id""",
        params=params,
    ).to_arrow_table()
    ids, version = versions.column("clip_id").combine_chunks(), versions.column("version").to_numpy()
    if pair_cache.usable(cache, rules):

        def fetch(wanted: pa.Array) -> tuple[pa.Table, pa.Table]:  # only the clips asked for
            con.register("wanted", pa.table({"clip_id": wanted}))
            rows = con.sql(f"SELECT {cols} FROM features_latest f JOIN wanted USING (clip_id)").to_arrow_table()
            lab = con.sql("SELECT clip_id, instruments FROM segments_latest JOIN wanted USING (clip_id)")
            return rows, lab.to_arrow_table()

        result, cache = pair_cache.mine_changes(ids, version, fetch, rules, cache)
    else:
        features = con.sql(f"SELECT {cols} FROM features_latest f {pool_join}", params=params).to_arrow_table()
        labels = con.sql("SELECT clip_id, instruments FROM segments_latest").to_arrow_table()
        result, cache = pair_cache.mine_all(
            features, labels, rules, ids, version, threads=threads, memory_limit=memory_limit
        )
    warehouse.write_batch("pairs", result.pairs, batch_id)
    cache.save(cache_dir)  # after the batch: a run killed in between re-mines against the older cache
    return result, batch_id
