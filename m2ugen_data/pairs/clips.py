"""Per-clip inputs of pair mining: which clips are eligible (each rejection counted by its first failing rule)
and their dense arrays for the kernels (``ClipArrays``: tempo geometry, loudness, video, label and measured
instrument sets, timbre, instrument-tag content vectors, beat chords), plus the join's candidate table."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m2ugen_data.analysis import harmony
from m2ugen_data.analysis.tonal import key_class
from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import ytids_of
from m2ugen_data.pairs.rules import FEATURE_COLUMNS, PairRules
from m2ugen_data.warehouse import duck_connect


_N_CHORD_IDS = harmony.N_CHORD_IDS  # plain globals: numba freezes them at compile time


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

    arr = combined(tags_mtt)
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


def combined(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous array of a column (Arrow tables hand out chunked ones)."""
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def beat_phase(beats: pa.ChunkedArray | pa.Array, tempo: np.ndarray) -> np.ndarray:
    """Offset (s) of each clip's beat grid inside one beat period: the circular mean of beat times modulo
    the period 60/tempo. Two clips with the same tempo and phase have beats that coincide from t=0."""
    beats = combined(beats)
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
    arr = combined(labels)
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


def chord_sequences(beat_chords: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beat chords as ``harmony`` chord-id CSR (``values`` int8, ``offsets`` int64) and a per-clip
    ``measured`` flag (False where the list is NULL: no chords were analysed, as opposed to none heard).
    Labels are converted once per distinct label, not once per beat."""
    arr = combined(beat_chords)
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


# ClipArrays fields kept as arrays (lt, ibi and phase are the eligible table's columns; the set vocabularies
# are tables): each a raw .npy file, which reads and writes several times faster than Parquet
ARRAY_FIELDS = (
    *("loud", "words_measured", "timbre", "content", "chord_values", "chord_offsets", "chords_measured"),
    *("timbre_len", "labels_values", "labels_offsets", "words_values", "words_offsets", "video"),
)


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

    def fields(self) -> dict[str, np.ndarray]:
        """The arrays of ``ARRAY_FIELDS`` (the set CSRs split into values and offsets): what the cache stores;
        lt, ibi and phase are the eligible table's columns and the set vocabularies are tables there."""
        out = {k: getattr(self, k) for k in ARRAY_FIELDS if hasattr(self, k)}
        out["labels_values"], out["labels_offsets"] = self.labels[0], self.labels[1]
        out["words_values"], out["words_offsets"] = self.words[0], self.words[1]
        return out

    @classmethod
    def from_fields(
        cls, fields: dict[str, np.ndarray], eligible: pa.Table, label_names: pa.Array | pa.ChunkedArray,
        word_names: pa.Array | pa.ChunkedArray,
    ) -> ClipArrays:  # fmt: skip
        """The inverse of ``fields``, given the eligible table (tempo geometry) and the set vocabularies."""
        sets = ("labels_values", "labels_offsets", "words_values", "words_offsets")
        plain = {k: v for k, v in fields.items() if k not in sets}
        return cls(
            **plain, **{k: eligible.column(k).to_numpy() for k in ("lt", "ibi", "phase")},
            labels=(fields["labels_values"], fields["labels_offsets"], combined(label_names)),
            words=(fields["words_values"], fields["words_offsets"], combined(word_names)),
        )  # fmt: skip


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
    arr = combined(timbre)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    d = timbre_dim(lengths) if d is None else d
    ok = (lengths == d) & (lengths > 0)
    out = np.full((len(arr), max(d, 1)), np.nan, dtype=np.float32)
    if ok.any():
        out[ok] = pc.list_flatten(arr.filter(pa.array(ok))).to_numpy(zero_copy_only=False).reshape(-1, d)
    return out


def clip_arrays(t: pa.Table, rules: PairRules, *, timbre_d: int | None = None) -> tuple[pa.Table, ClipArrays]:
    """The candidate table for the join (block, tempo, phase, harmony class) and the kernels' arrays;
    ``timbre_d`` fixes the timbre length compared (the incremental miner builds new clips' arrays to match a set's)."""
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
    ytid = ytids_of(t.column("clip_id").combine_chunks())
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
