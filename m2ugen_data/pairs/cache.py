"""Incremental MUEdit pair mining: re-mine after clips are added or re-analysed, examining only the
candidate edges the change can affect, with exactly the pairs a full re-mine (``pairs.mine_full``) gives.

Why this is exact. The miner's result is a function of three things: the candidate edges (band neighbours
in three sort orders, ``pairs.sort_positions``), each valid edge's score, and the greedy degree cap over
the valid edges in best-first order. The cache keeps the previous run's eligible clips (their sort keys and
positions) and every *valid* scored edge in best-first order, keyed by a content hash per clip (features
row and AudioSet labels), so a re-analysed clip is a removed clip plus a new one.

- Sort keys depend on the clip alone and ties end on clip-id order, so the old clips keep their relative
  order: two old clips' distance in an order grows by the new elements inserted between them and shrinks
  by the removed ones. Hence a new candidate edge touches a new clip, or spans a removed one (a *gap*), or
  was a candidate before. The first two kinds are generated around the new elements' and gaps' positions
  and scored; old-old edges among them that were candidates before are dropped (their verdict is cached:
  valid with a score, or invalid for good since neither clip changed).
- A cached valid edge between unchanged clips is kept when its ends are still within ``window`` in some
  order (new clips can push it out of the band; a full re-mine would not see it either). An edge with a
  *calm* end (no new element or gap within ``window`` of it in any order) is kept without the check: every
  element entering or leaving between its ends would be that close.
- Scores are per-edge functions of the two clips, so cached scores stand. The degree cap is global: a new
  edge can take a slot from an old one, whose other end then takes a pair it could not before, and so on.
  So the selection is re-run over all valid edges, but cheaply: cached edges are already in best-first
  order, the new ones are sorted and merged in, in one compiled pass with the band check, and the greedy
  pass is linear. (Reusing the previous run's decisions up to the first changed position buys nothing:
  with new edges spread over all scores the first one lands near the top.)
- The kernel arrays of every eligible clip (``pairs.ClipArrays``: tags, timbre, chords, label sets, video
  codes) are cached too, so only new or changed clips' features are read and converted; the old rows are
  gathered into the new row order, set vocabularies united, video codes extended. New and newly chosen
  edges are scored and measured on the merged arrays. If the new clips change the compared timbre length
  (the commonest one), every cached distance is stale and the run is a full mine.
- Output rows of pairs chosen before are reused; only newly chosen pairs are measured.

A missing, unreadable or incompatible cache (other miner version or rules; ``k`` may change freely, it only
affects the selection) means a full mine. In the result, clip rejections, pairs, the valid-edge count, the
degree-cap count and the degree histogram are the whole set's; candidates and pair-rule rejections are over
the edges this run examined.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from m2ugen_data.pairs import mine as miner
from m2ugen_data.pairs.mine import FEATURE_COLUMNS, MiningResult, PairRules, ScoredEdges, element_key
from m2ugen_data.atomic import fsync_dir
from m2ugen_data.warehouse import duck_connect, utc_now

CACHE_FORMAT = 2
_CANDIDATE_COLUMNS = ("clip_id", "block", "lt", "ibi", "phase", "hc", *miner.OUTPUT_COLUMNS[1:])
_EDGE_FIELDS = ("lo", "hi", "rel", "score", "harm", "chosen")
# ClipArrays fields kept as arrays (lt, ibi and phase are the eligible table's columns; the set vocabularies
# are tables): each a raw .npy file, which reads and writes several times faster than Parquet
_ARRAY_FIELDS = (
    *("loud", "words_measured", "timbre", "content", "chord_values", "chord_offsets", "chords_measured"),
    *("timbre_len", "labels_values", "labels_offsets", "words_values", "words_offsets", "video"),
)


def rules_fingerprint(rules: PairRules) -> str:
    """What cached edges depend on: miner version and every rule but ``k`` (the cap is re-applied)."""
    fields = {k: v for k, v in dataclasses.asdict(rules).items() if k != "k"}
    return json.dumps({"format": CACHE_FORMAT, "miner": miner.MINER_VERSION, "rules": fields}, sort_keys=True)


@dataclass
class PairCache:
    """A mining run's state, enough to re-mine incrementally (see the module docstring)."""

    fingerprint: str
    clip_ids: pa.Array  # every clip of the run's features, sorted
    versions: np.ndarray  # uint64 content hash per clip_ids entry
    eligible: pa.Table  # _CANDIDATE_COLUMNS of the eligible clips; row = the run's clip row id
    elig_rows: np.ndarray  # int64 row in clip_ids of each eligible clip
    clips: miner.ClipArrays  # the eligible clips' kernel arrays, same rows
    videos: pa.Array  # YouTube id of each ``clips.video`` code
    positions: np.ndarray  # (orders, elements) int64 sort positions, ``pairs.sort_positions``
    edges: ScoredEdges  # valid edges, best first
    pairs: pa.Table  # PAIRS rows of the chosen edges, in the order they were chosen (on disk: _varying columns)
    rejected: pa.Table  # (clip_id, why): clips the eligibility rules rejected, so counts stay whole-set

    def save(self, directory: Path) -> None:
        """Write to ``directory`` as a whole: a sibling temporary directory renamed into place, so a killed
        run leaves the old cache or none (then the next run mines in full), never a mix. Arrays are raw
        .npy and tables uncompressed Arrow IPC: the cache is rewritten every run, so speed beats size."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex}.tmp")
        tmp.mkdir()
        try:
            arrays = {f"clips_{k}": v for k, v in _clip_fields(self.clips).items()}
            arrays |= {f"edges_{k}": getattr(self.edges, k) for k in _EDGE_FIELDS}
            arrays["edges_lo"], arrays["edges_hi"] = self.edges.lo.astype(np.int32), self.edges.hi.astype(np.int32)
            arrays |= {"positions": self.positions.astype(np.int64), "versions": self.versions}
            arrays["elig_rows"] = self.elig_rows
            for name, value in arrays.items():
                np.save(tmp / f"{name}.npy", value)
            tables = {
                "clip_ids": pa.table({"clip_id": self.clip_ids}), "eligible": self.eligible,
                "pairs": _varying(self.pairs),
                "rejected": self.rejected, "labels_names": pa.table({"name": self.clips.labels[2]}),
                "words_names": pa.table({"name": self.clips.words[2]}), "videos": pa.table({"ytid": self.videos}),
            }  # fmt: skip
            for name, table in tables.items():
                feather.write_feather(table, tmp / f"{name}.arrow", compression="uncompressed")
            (tmp / "meta.json").write_text(self.fingerprint)
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            old = directory.with_name(f".{directory.name}.{uuid.uuid4().hex}.old")
            if directory.exists():
                directory.rename(old)
            tmp.rename(directory)
            fsync_dir(directory.parent)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> PairCache | None:
        """The cache in ``directory``, or None when there is none or it cannot be read (a full mine follows)."""
        directory = Path(directory)
        try:
            fingerprint = (directory / "meta.json").read_text()
            a = {f.name[: -len(".npy")]: np.load(f, allow_pickle=False) for f in directory.glob("*.npy")}
            t = {f.name[: -len(".arrow")]: feather.read_table(f) for f in directory.glob("*.arrow")}
            eligible = t["eligible"]
            edges = ScoredEdges(*(a[f"edges_{k}"] for k in _EDGE_FIELDS))
            fields = {k: a[f"clips_{k}"] for k in _ARRAY_FIELDS}
            clips = _clips_of(fields, eligible, t["labels_names"].column(0), t["words_names"].column(0))
            return cls(
                fingerprint=fingerprint, clip_ids=t["clip_ids"].column(0).combine_chunks(), versions=a["versions"],
                eligible=eligible, elig_rows=a["elig_rows"], clips=clips, videos=t["videos"].column(0).combine_chunks(),
                positions=a["positions"], edges=edges, pairs=t["pairs"],
                rejected=t["rejected"],
            )  # fmt: skip
        except (OSError, ValueError, KeyError, pa.ArrowException):
            return None


def _clip_fields(clips: miner.ClipArrays) -> dict[str, np.ndarray]:
    """``_ARRAY_FIELDS`` of ``clips``."""
    out = {k: getattr(clips, k) for k in _ARRAY_FIELDS if hasattr(clips, k)}
    out["labels_values"], out["labels_offsets"] = clips.labels[0], clips.labels[1]
    out["words_values"], out["words_offsets"] = clips.words[0], clips.words[1]
    return out


def _clips_of(fields: dict[str, np.ndarray], eligible: pa.Table, label_names: pa.Array | pa.ChunkedArray,
              word_names: pa.Array | pa.ChunkedArray) -> miner.ClipArrays:  # fmt: skip
    """ClipArrays from ``_clip_fields``' arrays, the eligible table (tempo geometry) and the set
    vocabularies."""
    sets = ("labels_values", "labels_offsets", "words_values", "words_offsets")
    plain = {k: v for k, v in fields.items() if k not in sets}
    return miner.ClipArrays(
        **plain, **{k: eligible.column(k).to_numpy() for k in ("lt", "ibi", "phase")},
        labels=(fields["labels_values"], fields["labels_offsets"], _combined(label_names)),
        words=(fields["words_values"], fields["words_offsets"], _combined(word_names)),
    )  # fmt: skip


def _combined(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def clip_versions(features: pa.Table, labels: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """(clip ids sorted, uint64 hash of each clip's mined feature columns and AudioSet labels): a clip
    whose hash changed was re-analysed (or relabelled) and is mined again."""
    cols = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS if c in features.column_names and c != "clip_id")
    con = duck_connect()
    try:
        con.register("f", features)
        con.register("l", labels.select(["clip_id", "instruments"]))
        t = con.sql(
            f"SELECT f.clip_id, hash({cols}, l.instruments) AS v FROM f LEFT JOIN l USING (clip_id) ORDER BY f.clip_id"
        ).to_arrow_table()
    finally:
        con.close()
    return t.column("clip_id").combine_chunks(), t.column("v").to_numpy()


def _cache_of(
    fingerprint: str, ids: pa.Array, versions: np.ndarray, cand: pa.Table, clips: miner.ClipArrays,
    positions: np.ndarray | None, scored: ScoredEdges | None, pairs: pa.Table, rejected: pa.Table,
) -> PairCache:  # fmt: skip
    if scored is None:  # fewer than two eligible clips
        e = np.empty(0, np.int64)
        scored = ScoredEdges(e, e, e.astype(np.int8), e.astype(np.float64), e.astype(np.float32), e.astype(bool))
    if positions is None:
        positions = np.empty((miner.N_ORDERS, 0), np.int64)
    eligible = cand.select(list(_CANDIDATE_COLUMNS))
    elig_ids = eligible.column("clip_id").combine_chunks()
    videos = pc.unique(_ytids(elig_ids))  # first-seen order: ``clip_arrays``' codes
    return PairCache(
        fingerprint, ids, versions, eligible, _index_in(elig_ids, ids), clips, videos, positions, scored, pairs,
        rejected,
    )  # fmt: skip


def _ytids(clip_ids: pa.Array) -> pa.Array:
    return pc.utf8_slice_codeunits(clip_ids, 0, 11)  # as ``pairs.clip_arrays`` codes videos


Fetch = Callable[[pa.Array], tuple[pa.Table, pa.Table]]  # clip ids -> (their features rows, labels rows)


def table_fetch(features: pa.Table, labels: pa.Table) -> Fetch:
    """``Fetch`` over in-memory tables."""
    all_ids = features.column("clip_id").combine_chunks()

    def fetch(wanted: pa.Array) -> tuple[pa.Table, pa.Table]:  # hashes the few wanted ids, not all
        rows = features.filter(pc.is_in(all_ids, value_set=wanted))
        return rows, labels.filter(pc.is_in(labels.column("clip_id"), value_set=wanted))

    return fetch


def mine_incremental(
    features: pa.Table,
    labels: pa.Table,
    rules: PairRules = PairRules(),
    cache: PairCache | None = None,
    *,
    versions: pa.Table | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> tuple[MiningResult, PairCache]:
    """Mine pairs reusing ``cache`` (a previous run's state; None or incompatible: a full mine). Returns
    the result, equal in pairs to ``pairs.mine_pairs`` on the same inputs, and the cache for the next run.
    ``versions`` (clip_id, version uint64, sorted by clip_id; one row per features row) says which clips
    changed, e.g. a hash of the row's ``updated_at``; by default the content hash ``clip_versions``."""
    t0 = time.perf_counter()
    if versions is None:
        ids, version = clip_versions(features, labels)
    else:
        ids, version = versions.column("clip_id").combine_chunks(), versions.column("version").to_numpy()
    if usable(cache, rules):
        return mine_changes(ids, version, table_fetch(features, labels), rules, cache, t0=t0)
    return mine_all(features, labels, rules, ids, version, threads=threads, memory_limit=memory_limit)


def mine_all(
    features: pa.Table, labels: pa.Table, rules: PairRules, ids: pa.Array, versions: np.ndarray, *,
    threads: int | None = None, memory_limit: str | None = None,
) -> tuple[MiningResult, PairCache]:  # fmt: skip
    """A full mine (``pairs.mine_full``) and the cache it leaves; ``ids``/``versions`` as for ``mine_changes``."""
    result, cand, clips, positions, scored = miner.mine_full(
        features, labels, rules, threads=threads, memory_limit=memory_limit
    )
    fingerprint = rules_fingerprint(rules)
    return result, _cache_of(fingerprint, ids, versions, cand, clips, positions, scored, result.pairs, result.rejected)


def usable(cache: PairCache | None, rules: PairRules) -> bool:
    """Whether ``cache`` can seed an incremental mine under ``rules``."""
    return cache is not None and cache.fingerprint == rules_fingerprint(rules) and len(cache.edges.lo) > 0


def mine_changes(
    ids: pa.Array, versions: np.ndarray, fetch: Fetch, rules: PairRules, cache: PairCache, *, t0: float | None = None
) -> tuple[MiningResult, PairCache]:
    """The incremental mine (``usable(cache, rules)`` must hold): ``ids`` every clip now (sorted) with
    its ``versions``; ``fetch`` reads the features and labels of the clips it is asked for: the new or
    changed clips only (all of them in the rare fallback to a full mine)."""
    t0 = time.perf_counter() if t0 is None else t0
    fingerprint = rules_fingerprint(rules)
    c, w = miner.copies(rules), rules.window
    # --- which clips are unchanged (same id and hash as cached), which are new or changed
    at = _sorted_index_in(ids, cache.clip_ids)
    same = (at >= 0) & (cache.versions[np.maximum(at, 0)] == versions)
    changed = np.flatnonzero(~same)
    changed_ids = ids.take(pa.array(changed))
    elig_new, rejected_new = miner.eligible_and_rejected(*fetch(changed_ids), rules)
    # the cached clips that are gone (removed, or changed: a changed clip is removed and added); hashing
    # only these few, never the whole set's ids
    now_of_cached = np.full(len(cache.clip_ids), -1, np.int64)  # cached clip row -> row in ids, -1: gone
    now_of_cached[at[same]] = np.flatnonzero(same)
    gone = cache.clip_ids.filter(pa.array(now_of_cached < 0))
    rejected = pa.concat_tables([
        cache.rejected.filter(pc.invert(pc.is_in(cache.rejected.column("clip_id"), value_set=gone))),
        rejected_new.cast(cache.rejected.schema),
    ])  # fmt: skip
    clip_rej = miner.rejection_counts(rejected)
    clean_now = now_of_cached[cache.elig_rows]
    clean_idx = np.flatnonzero(clean_now >= 0)
    # --- new row ids: the unchanged eligible clips and the new ones merged in clip-id order (rows of
    # ``ids``, which is sorted, stand in for the ids themselves)
    new_rows = changed[_index_in(elig_new.column("clip_id").combine_chunks(), changed_ids)]
    p = np.searchsorted(clean_now[clean_idx], new_rows)
    n_clean, n_new = len(clean_idx), len(new_rows)
    n = n_clean + n_new
    new_of_clean = np.arange(n_clean) + np.cumsum(np.bincount(p, minlength=n_clean + 1))[:n_clean]
    new_of_new = p + np.arange(n_new)
    old_of_new = np.full(n, -1, np.int64)
    old_of_new[new_of_clean] = clean_idx
    old_to_new = np.full(cache.eligible.num_rows, -1, np.int64)
    old_to_new[clean_idx] = new_of_clean
    # merged row -> row of (cached eligible rows, then the new clips' rows)
    src = np.empty(n, np.int64)
    src[new_of_clean] = clean_idx
    src[new_of_new] = cache.eligible.num_rows + np.arange(n_new)
    elig_rows = _stack(clean_now, new_rows)[src]
    d = miner.timbre_dim(cache.clips.timbre_len)
    clips_new = None
    if n_new:
        cand_new, clips_new = miner.clip_arrays(elig_new, rules, timbre_d=d)
        cand_new = pa.table({**{k: cand_new.column(k) for k in _CANDIDATE_COLUMNS[1:6]},
                             **{k: elig_new.column(k) for k in miner.OUTPUT_COLUMNS}})  # fmt: skip
    if miner.timbre_dim(_stack(cache.clips.timbre_len, clips_new and clips_new.timbre_len)[src]) != d:
        return mine_all(*fetch(ids), rules, ids, versions)  # the compared timbre length changed: all distances do
    eligible = pa.table({
        k: _stack_arrow(cache.eligible.column(k), cand_new.column(k) if n_new else None).take(pa.array(src))
        for k in _CANDIDATE_COLUMNS
    })  # fmt: skip
    merged = {k: eligible.column(k).to_numpy() for k in _CANDIDATE_COLUMNS[1:6]}
    videos = cache.videos
    if n_new:  # codes of the new clips' videos: the cached code of a known video, else a new one
        videos, clips_new.video = _video_codes(videos, _ytids(elig_new.column("clip_id").combine_chunks()))
    clips = _merge_clips(cache.clips, clips_new, src, eligible)
    result = MiningResult(pairs=miner._empty_pairs(), eligible=n, clips=len(ids), clip_rejections=clip_rej)
    result.timings["prepare"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    # --- sort orders: the old ones (minus removed clips) with the new elements merged in
    # keys are computed only for the elements compared (``pairs.element_key``, the full miner's own)
    cols = (
        merged["block"].astype(np.int64), merged["lt"], merged["ibi"], merged["phase"], merged["hc"].astype(np.int64)
    )
    fine = miner.bucket_width(rules)
    size = n * c
    orders = np.empty((miner.N_ORDERS, size), np.int64)
    positions = np.empty_like(orders)
    new_elems = (new_of_new[:, None] * c + np.arange(c)).ravel()
    is_new = np.zeros(n, bool)
    is_new[new_of_new] = True
    old_pos = cache.positions
    touched = []
    for r in range(miner.N_ORDERS):
        old_seq = np.empty(old_pos.shape[1], np.int64)
        old_seq[old_pos[r]] = np.arange(old_pos.shape[1])
        mapped = old_to_new[old_seq // c]
        kept = np.flatnonzero(mapped >= 0)  # old positions of the unchanged elements
        kept_elems = mapped[kept] * c + old_seq[kept] % c
        fresh = new_elems[np.lexsort(miner.element_keys(r, new_elems, c, *cols, fine)[::-1])]
        orders[r] = _merge_sorted(r, c, *cols, fine, kept_elems, fresh)
        positions[r, orders[r]] = np.arange(size)
        gaps = positions[r][kept_elems[np.flatnonzero(np.diff(kept) != 1) + 1]]  # removed elements before
        touched.append(np.concatenate([positions[r][fresh], gaps]))
    ea, eb = _window_pairs(orders, touched, w)
    calm = _calm(orders, touched, w)
    ia, ib, oa, ob = ea // c, eb // c, ea % c, eb % c
    elt = merged["lt"] + 0.0
    lt_a = elt[ia] + np.where(oa == 1, math.log(2), 0.0)
    lt_b = elt[ib] + np.where(ob == 1, math.log(2), 0.0)
    dlt = np.abs(lt_a - lt_b)
    tol = math.log1p(rules.tolerance)
    keep = (merged["block"][ia] == merged["block"][ib]) & (ia != ib) & ~((oa == 1) & (ob == 1)) & (dlt <= 3 * tol)
    ia, ib, oa, ob, dlt = ia[keep], ib[keep], oa[keep], ob[keep], dlt[keep]
    lo, hi = np.minimum(ia, ib), np.maximum(ia, ib)
    rel = np.where(ia < ib, oa - ob, ob - oa)
    _, first = np.unique((lo * n + hi) * 3 + rel + 1, return_index=True)
    lo, hi, rel, dlt = lo[first], hi[first], rel[first], dlt[first]
    # old-old edges that were candidates before: their verdict (and score, if valid) is cached
    both_old = ~is_new[lo] & ~is_new[hi]
    ea_old = np.where(both_old, old_of_new[lo] * c + (rel == 1), 0)
    eb_old = np.where(both_old, old_of_new[hi] * c + (rel == -1), 0)
    was = np.zeros(len(lo), bool)
    for r in range(miner.N_ORDERS):
        was |= both_old & (np.abs(old_pos[r][ea_old] - old_pos[r][eb_old]) <= w)
    lo, hi, rel, dlt = lo[~was], hi[~was], rel[~was], dlt[~was]
    result.candidates = len(lo)
    result.pair_rejections = {"tempo": int(np.count_nonzero(dlt > tol))}
    ok = dlt <= tol
    lo, hi, rel = lo[ok], hi[ok], rel[ok].astype(np.int8)
    result.timings["join"] = time.perf_counter() - t1
    # --- score the new candidates on their clips' features alone
    t1 = time.perf_counter()
    f_lo, f_hi, f_rel, f_score, f_harm = miner.score_edges(result, clips, lo, hi, rel, rules)
    fo = miner._best_first(f_score, f_lo, f_hi)
    result.timings["score"] = time.perf_counter() - t1
    # --- the whole set's selection: the cached valid edges still in the band, merged with the new ones
    t1 = time.perf_counter()
    e = cache.edges
    *merged_edges, pair_row = _merge_edges(
        e.lo, e.hi, e.rel, e.score, e.harm, e.chosen, old_to_new.astype(np.int32), calm, positions, c, w,
        f_lo[fo], f_hi[fo], f_rel[fo].astype(np.int8), f_score[fo], f_harm[fo],
    )  # fmt: skip
    scored = ScoredEdges(*merged_edges, np.empty(0, bool))
    miner.choose(result, scored, n, rules.k)
    result.timings["select"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    result.pairs = _output(cache, eligible, clips, scored, pair_row)
    result.timings["output"] = time.perf_counter() - t1
    result.timings["total"] = time.perf_counter() - t0
    return result, PairCache(
        fingerprint, ids, versions, eligible, elig_rows, clips, videos, positions, scored, result.pairs, rejected
    )


def _index_in(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    """Position of each value in ``value_set`` (int64), -1 where absent."""
    return pc.fill_null(pc.index_in(values, value_set=value_set), -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _sorted_index_in(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    """``_index_in`` for two id lists that are usually both sorted (clip ids always are here): a linear
    merge over the string bytes, no hashing of a million ids; hashing when either is not strictly sorted."""
    if values.type == value_set.type == pa.string() and values.null_count == value_set.null_count == 0:
        out = _merge_index(*_string_buffers(values), *_string_buffers(value_set))
        if out is not None:
            return out
    return _index_in(values, value_set)


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of a string array, as numpy views."""
    _, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, np.int32)[arr.offset : arr.offset + len(arr) + 1]
    return offsets, np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)


@numba.njit(cache=True)
def _compare(oa: np.ndarray, da: np.ndarray, i: int, ob: np.ndarray, db: np.ndarray, j: int) -> int:
    """Byte-wise order of string i of a and string j of b: -1, 0 or 1."""
    a0, a1, b0, b1 = oa[i], oa[i + 1], ob[j], ob[j + 1]
    for k in range(min(a1 - a0, b1 - b0)):
        if da[a0 + k] != db[b0 + k]:
            return -1 if da[a0 + k] < db[b0 + k] else 1
    return -1 if a1 - a0 < b1 - b0 else (1 if a1 - a0 > b1 - b0 else 0)


@numba.njit(cache=True)
def _merge_index(oa: np.ndarray, da: np.ndarray, ob: np.ndarray, db: np.ndarray) -> np.ndarray | None:
    """Position of each string of a in b (-1 if absent) by merging; None when either is not strictly sorted."""
    n, m = oa.shape[0] - 1, ob.shape[0] - 1
    for i in range(1, n):
        if _compare(oa, da, i - 1, oa, da, i) >= 0:
            return None
    for j in range(1, m):
        if _compare(ob, db, j - 1, ob, db, j) >= 0:
            return None
    out = np.full(n, -1, dtype=np.int64)
    j = 0
    for i in range(n):
        while j < m and _compare(ob, db, j, oa, da, i) < 0:
            j += 1
        if j < m and _compare(ob, db, j, oa, da, i) == 0:
            out[i] = j
    return out


def _calm(orders: np.ndarray, touched: list[np.ndarray], w: int) -> np.ndarray:
    """Per element, whether no touched position (a new element, or the element after removed ones) is
    within ``w`` of it in any order. A cached edge with a calm end is still in the band without looking:
    every element that entered or left between its ends would be within ``w`` of that end."""
    size = orders.shape[1]
    disturbed = np.zeros(size, bool)
    for r, t in enumerate(touched):
        mark = np.bincount(np.maximum(t - w, 0), minlength=size + 1)
        mark -= np.bincount(np.minimum(t + w + 1, size), minlength=size + 1)
        disturbed[orders[r][np.cumsum(mark[:size]) > 0]] = True
    return ~disturbed


def _window_pairs(orders: np.ndarray, touched: list[np.ndarray], w: int) -> tuple[np.ndarray, np.ndarray]:
    """Element pairs (a, b) at positions i < i + o (o <= w) of an order with i <= t <= i + o for a touched
    position t: every band pair that involves a new element or spans a gap."""
    d, o = np.meshgrid(np.arange(w + 1), np.arange(1, w + 1), indexing="ij")
    d, o = d[d <= o], o[d <= o]
    out_a, out_b = [], []
    size = orders.shape[1]
    for r, t in enumerate(touched):
        t = np.unique(t)
        i = (t[:, None] - d[None, :]).ravel()
        j = i + np.tile(o, len(t))
        ok = (i >= 0) & (j < size)
        out_a.append(orders[r][i[ok]])
        out_b.append(orders[r][j[ok]])
    return np.concatenate(out_a), np.concatenate(out_b)


@numba.njit(cache=True)
def _merge_edges(
    lo: np.ndarray, hi: np.ndarray, rel: np.ndarray, score: np.ndarray, harm: np.ndarray, chosen: np.ndarray,
    old_to_new: np.ndarray, calm: np.ndarray, positions: np.ndarray, c: int, w: int, f_lo: np.ndarray, f_hi: np.ndarray,
    f_rel: np.ndarray, f_score: np.ndarray, f_harm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One pass over the cached valid edges (best first): keep those between unchanged clips whose ends
    are still at most ``w`` apart in some sort order (new clips can push an edge out of the band; a full
    re-mine would not see it either), renumbered to the new row ids, and merge the new valid edges
    (``f_*``, best first) in: score descending, ties by (lo, hi), the order ``pairs._best_first`` gives
    the union. Returns lo, hi, rel, score, harm and, per edge, its row in the cached pairs table when the
    cached run chose it (-1 otherwise and for new edges). Positions are looked up only for edges with no
    ``calm`` end; row ids are int32 (half the memory traffic of this, the pass over every edge)."""
    m, f = lo.shape[0], f_lo.shape[0]
    o_lo = np.empty(m + f, dtype=np.int32)
    o_hi = np.empty(m + f, dtype=np.int32)
    o_rel = np.empty(m + f, dtype=np.int8)
    o_score = np.empty(m + f, dtype=np.float64)
    o_harm = np.empty(m + f, dtype=np.float32)
    o_row = np.empty(m + f, dtype=np.int32)
    k, j, row = 0, 0, -1
    for i in range(m + 1):
        if i < m:
            if chosen[i]:
                row += 1
            a, b = old_to_new[lo[i]], old_to_new[hi[i]]
            if a < 0 or b < 0:
                continue
            ea = a * c + (1 if rel[i] == 1 else 0)
            eb = b * c + (1 if rel[i] == -1 else 0)
            inside = calm[ea] or calm[eb]
            for r in range(0 if inside else positions.shape[0]):
                d = positions[r, ea] - positions[r, eb]
                if -w <= d <= w:
                    inside = True
                    break
            if not inside:
                continue
            s = score[i]
        while j < f and (
            i == m or not (s > f_score[j] or (s == f_score[j] and (a < f_lo[j] or (a == f_lo[j] and b < f_hi[j]))))
        ):
            o_lo[k], o_hi[k], o_rel[k], o_score[k], o_harm[k] = f_lo[j], f_hi[j], f_rel[j], f_score[j], f_harm[j]
            o_row[k] = -1
            j += 1
            k += 1
        if i < m:
            o_lo[k], o_hi[k], o_rel[k], o_score[k], o_harm[k] = a, b, rel[i], s, harm[i]
            o_row[k] = row if chosen[i] else -1
            k += 1
    return o_lo[:k], o_hi[:k], o_rel[:k], o_score[:k], o_harm[:k], o_row[:k]


@numba.njit(cache=True)
def _merge_sorted(
    r: int, c: int, block: np.ndarray, lt: np.ndarray, ibi: np.ndarray, phase: np.ndarray, hc: np.ndarray,
    fine: float, a: np.ndarray, b: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Merge two element lists, each sorted in order ``r`` (no two elements have equal keys), computing
    each element's keys once, as it comes up (no key matrix over the whole set)."""
    na, nb = a.shape[0], b.shape[0]
    out = np.empty(na + nb, dtype=np.int64)
    ka, kb = np.empty(7), np.empty(7)
    width = 7
    if na and nb:
        width = element_key(r, a[0], c, block, lt, ibi, phase, hc, fine, ka)
        element_key(r, b[0], c, block, lt, ibi, phase, hc, fine, kb)
    i, j, k = 0, 0, 0
    while i < na and j < nb:
        first = True
        for q in range(width):
            if ka[q] != kb[q]:
                first = ka[q] < kb[q]
                break
        if first:
            out[k] = a[i]
            i += 1
            if i < na:
                element_key(r, a[i], c, block, lt, ibi, phase, hc, fine, ka)
        else:
            out[k] = b[j]
            j += 1
            if j < nb:
                element_key(r, b[j], c, block, lt, ibi, phase, hc, fine, kb)
        k += 1
    out[k : k + na - i] = a[i:]
    k += na - i
    out[k : k + nb - j] = b[j:]
    return out


def _stack(old: np.ndarray, new: np.ndarray | None) -> np.ndarray:
    """Rows of ``old`` then of ``new`` (absent: none)."""
    return old if new is None else np.concatenate([old, new])


def _stack_arrow(old: pa.Array | pa.ChunkedArray, new: pa.Array | pa.ChunkedArray | None) -> pa.Array:
    old = _combined(old)
    return old if new is None else pa.concat_arrays([old, _combined(new).cast(old.type)])


def _merge_clips(
    old: miner.ClipArrays, new: miner.ClipArrays | None, src: np.ndarray, eligible: pa.Table
) -> miner.ClipArrays:
    """The kernel arrays of the merged eligible rows: row i is row ``src[i]`` of (``old``'s rows, then
    ``new``'s). Set vocabularies are united (both alphabetical, so remapped ids stay sorted in each set)."""
    n_old = len(old.loud)
    n_new = 0 if new is None else len(new.loud)
    from_old = np.flatnonzero(src < n_old)
    fields = {}
    for k in ("loud", "words_measured", "timbre", "content", "chords_measured", "timbre_len", "video"):
        a = getattr(old, k)
        out = np.empty((len(src), *a.shape[1:]), a.dtype)
        out[from_old] = a[src[from_old]]
        if new is not None:
            out[src >= n_old] = getattr(new, k)[src[src >= n_old] - n_old]
        fields[k] = out
    # chord CSR rows: q * n + row for octave copy q (0: every beat, 1: every other beat)
    copies = (len(old.chord_offsets) - 1) // n_old
    rows = np.concatenate([np.where(src < n_old, q * n_old + src, copies * n_old + q * n_new + src - n_old)
                           for q in range(copies)])  # fmt: skip
    values, offsets = old.chord_values, old.chord_offsets
    if new is not None:
        values, offsets = _csr_cat(values, offsets, new.chord_values, new.chord_offsets)
    fields["chord_values"], fields["chord_offsets"] = _csr_take(values, offsets, rows)
    for name in ("labels", "words"):
        ov, oo, names = getattr(old, name)
        if new is not None:
            nv, no, nn = getattr(new, name)
            names = pc.unique(pa.concat_arrays([names, nn.cast(names.type)]))
            names = names.take(pc.array_sort_indices(names))
            ov = _index_in(getattr(old, name)[2], names).astype(np.int32)[ov]
            ov, oo = _csr_cat(ov, oo, _index_in(nn.cast(names.type), names).astype(np.int32)[nv], no)
        fields[f"{name}_values"], fields[f"{name}_offsets"] = _csr_take(ov, oo, src)
        fields[f"{name}_names"] = names
    label_names, word_names = fields.pop("labels_names"), fields.pop("words_names")
    return _clips_of(fields, eligible, label_names, word_names)


def _video_codes(videos: pa.Array, ytids: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(the video dictionary with unseen videos appended, the code of each of ``ytids``). The few new ids
    are hashed and the dictionary probed against them, not the other way round."""
    uniq = pc.unique(ytids)
    hit = _index_in(videos, uniq)  # per known video, its index in uniq or -1
    code = np.full(len(uniq), -1, np.int64)
    code[hit[hit >= 0]] = np.flatnonzero(hit >= 0)
    unseen = code < 0
    code[unseen] = len(videos) + np.arange(np.count_nonzero(unseen))
    videos = pa.concat_arrays([videos, uniq.filter(pa.array(unseen)).cast(videos.type)])
    return videos, code[_index_in(ytids, uniq)]


def _csr_cat(va: np.ndarray, oa: np.ndarray, vb: np.ndarray, ob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of CSR a then of CSR b."""
    return np.concatenate([va, vb]), np.concatenate([oa[:-1], oa[-1] + ob.astype(np.int64)])


@numba.njit(cache=True)
def _csr_take(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the given rows, in that order."""
    out_offsets = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    for i in range(rows.shape[0]):
        out_offsets[i + 1] = out_offsets[i] + offsets[rows[i] + 1] - offsets[rows[i]]
    out = np.empty(out_offsets[-1], dtype=values.dtype)
    for i in range(rows.shape[0]):
        out[out_offsets[i] : out_offsets[i + 1]] = values[offsets[rows[i]] : offsets[rows[i] + 1]]
    return out, out_offsets


def _output(
    cache: PairCache, eligible: pa.Table, clips: miner.ClipArrays, scored: ScoredEdges, pair_row: np.ndarray
) -> pa.Table:
    """PAIRS rows of the chosen edges in output order: cached rows for pairs chosen before, measured rows
    for the others (from the merged kernel arrays); every row stamped with this run's time, as a full mine
    would."""
    chosen = np.flatnonzero(scored.chosen)
    src = pair_row[chosen]
    reuse = src >= 0
    fresh = chosen[~reuse]
    parts = [_varying(cache.pairs)]
    if len(fresh):
        lo, hi, rel, harm, score = (getattr(scored, k)[fresh] for k in ("lo", "hi", "rel", "harm", "score"))
        parts.append(_varying(miner._pairs_table(eligible, clips, lo, hi, rel, harm, score)))
    position = np.empty(len(chosen), np.int64)  # output row k: a cached row, or a new one after them
    position[reuse] = src[reuse]
    position[~reuse] = cache.pairs.num_rows + np.arange(len(fresh))
    table = pa.concat_tables(parts).take(pa.array(position))
    return _with_constants(table)


# PAIRS columns that hold one value per run: not cached, and added after the take that orders the rows
# (taking a 1M-row column of one 80-character string costs several times all other columns together)
_CONSTANT_PAIR_COLUMNS = ("miner_version", "created_at")


def _varying(pairs: pa.Table) -> pa.Table:
    return pairs.drop([c for c in _CONSTANT_PAIR_COLUMNS if c in pairs.column_names])


def _with_constants(table: pa.Table) -> pa.Table:
    """``table`` with this run's miner version and time (UTC, as ``utc_now``) in every row, in PAIRS order."""
    from m2ugen_data.schemas import PAIRS

    schema, n = PAIRS.schema, table.num_rows
    zeros = pa.array(np.zeros(n, np.int32))
    version = pa.DictionaryArray.from_arrays(zeros, pa.array([miner.MINER_VERSION], pa.string()))
    now = pa.array([utc_now()], schema.field("created_at").type)
    columns = {**{c: table.column(c) for c in table.column_names}, "miner_version": version.cast(pa.string()),
               "created_at": now.take(zeros)}  # fmt: skip
    return pa.table([columns[f.name] for f in schema], schema=schema)
