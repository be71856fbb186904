"""Incremental MUEdit pair mining: re-mine after clips are added or re-analysed, examining only the
candidate edges the change can affect, with exactly the pairs a full re-mine (``full.mine_full``) gives.

Why this is exact. The miner's result is a function of three things: the candidate edges (band neighbours
in three sort orders, ``band.sort_positions``), each valid edge's score, and the greedy degree cap over
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
- The kernel arrays of every eligible clip (``clips.ClipArrays``: tags, timbre, chords, label sets, video
  codes) are cached too, so only new or changed clips' features are read and converted; the old rows are
  gathered into the new row order, set vocabularies united, video codes extended. New and newly chosen
  edges are scored and measured on the merged arrays. If the new clips change the compared timbre length
  (the commonest one), every cached distance is stale and the run is a full mine.
- Output rows of pairs chosen before are reused; only newly chosen pairs are measured.

A missing, damaged (``PairCache.load`` warns) or incompatible cache (other miner version or rules; ``k`` may change freely, it only
affects the selection) means a full mine. In the result, clip rejections, pairs, the valid-edge count, the
degree-cap count and the degree histogram are the whole set's; candidates and pair-rule rejections are over
the edges this run examined.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m2ugen_data.ids import ytids_of
from m2ugen_data.pairs.band import N_ORDERS, bucket_width, copies, element_keys
from m2ugen_data.pairs.cache import CANDIDATE_COLUMNS, PairCache, cache_of, clip_versions, rules_fingerprint, varying
from m2ugen_data.pairs.clips import ClipArrays, clip_arrays, eligible_and_rejected, rejection_counts, timbre_dim
from m2ugen_data.pairs.full import mine_full
from m2ugen_data.pairs.kernels import LN2
from m2ugen_data.pairs.merge import (
    calm_elements,
    index_in,
    merge_clips,
    merge_edges,
    merge_sorted,
    sorted_index_in,
    stack,
    stack_arrow,
    video_codes,
    window_pairs,
)
from m2ugen_data.pairs.rules import MINER_VERSION, MiningResult, PairRules
from m2ugen_data.pairs.select import OUTPUT_COLUMNS, ScoredEdges, best_first, choose, empty_pairs, pairs_table, score_edges
from m2ugen_data.warehouse import utc_now



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
    the result, equal in pairs to ``full.mine_pairs`` on the same inputs, and the cache for the next run.
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
    """A full mine (``full.mine_full``) and the cache it leaves; ``ids``/``versions`` as for ``mine_changes``."""
    result, cand, clips, positions, scored = mine_full(
        features, labels, rules, threads=threads, memory_limit=memory_limit
    )
    fingerprint = rules_fingerprint(rules)
    return result, cache_of(fingerprint, ids, versions, cand, clips, positions, scored, result.pairs, result.rejected)


def usable(cache: PairCache | None, rules: PairRules) -> bool:
    """Whether ``cache`` can seed an incremental mine under ``rules``."""
    return cache is not None and cache.fingerprint == rules_fingerprint(rules) and len(cache.edges.lo) > 0


@dataclass
class _Changes:
    """Which clips changed since the cached run. Rows are rows of ``ids`` (sorted), which stand in for the ids."""

    changed: np.ndarray  # rows of the new or changed clips (a changed clip is removed and added again)
    changed_ids: pa.Array  # their ids
    eligible: pa.Table  # the eligible ones among them, in clip-id order (``eligible_and_rejected``)
    rejected: pa.Table  # (clip_id, why) of every rejected clip now: the cached ones still here, and the changed
    row_of_cached: np.ndarray  # per cached clip, its row now; -1 when it is gone (removed or changed)


@dataclass
class _Rows:
    """The eligible clips' new row ids: the unchanged eligible clips and the added ones merged in clip-id
    order, and the maps between these rows and the cached ones."""

    n: int  # eligible clips now
    new_of_cached: np.ndarray  # per cached eligible row, its row now; -1 when gone
    cached_of_new: np.ndarray  # per row now, its cached eligible row; -1 when added
    added: np.ndarray  # rows now of the added eligible clips, in their clip-id order
    source: np.ndarray  # per row now, its row in (cached eligible rows, then the added clips' rows)
    ids_row: np.ndarray  # per row now, its row in ``ids``


def mine_changes(
    ids: pa.Array, versions: np.ndarray, fetch: Fetch, rules: PairRules, cache: PairCache, *, t0: float | None = None
) -> tuple[MiningResult, PairCache]:
    """The incremental mine (``usable(cache, rules)`` must hold): ``ids`` every clip now (sorted) with
    its ``versions``; ``fetch`` reads the features and labels of the clips it is asked for: the new or
    changed clips only (all of them in the rare fallback to a full mine)."""
    t0 = time.perf_counter() if t0 is None else t0
    changes = _changed_clips(ids, versions, fetch, rules, cache)
    rows = _renumber(cache, changes)
    merged = _merge_eligible(cache, changes, rows, rules)
    if merged is None:  # the compared timbre length changed: every cached distance did
        return mine_all(*fetch(ids), rules, ids, versions)
    eligible, clips, videos = merged
    result = MiningResult(
        pairs=empty_pairs(), eligible=rows.n, clips=len(ids), clip_rejections=rejection_counts(changes.rejected)
    )
    result.timings["prepare"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    keys = _sort_key_columns(eligible)
    orders, positions, touched = _merge_orders(cache.positions, rows, keys, rules)
    lo, hi, rel = _new_candidates(orders, touched, keys, rows, cache.positions, rules, result)
    calm = calm_elements(orders, touched, rules.window)
    result.timings["join"] = time.perf_counter() - t1

    t1 = time.perf_counter()  # score the new candidates on their clips' features alone
    fresh = ScoredEdges(*score_edges(result, clips, lo, hi, rel, rules), chosen=np.empty(0, bool))
    order = best_first(fresh.score, fresh.lo, fresh.hi)
    result.timings["score"] = time.perf_counter() - t1

    t1 = time.perf_counter()  # the whole set's selection: cached valid edges still in the band, merged with the new
    e = cache.edges
    *merged_edges, pair_row = merge_edges(
        e.lo, e.hi, e.rel, e.score, e.harm, e.chosen, rows.new_of_cached.astype(np.int32), calm, positions,
        copies(rules), rules.window, fresh.lo[order], fresh.hi[order], fresh.rel[order].astype(np.int8),
        fresh.score[order], fresh.harm[order],
    )  # fmt: skip
    scored = ScoredEdges(*merged_edges, np.empty(0, bool))
    choose(result, scored, rows.n, rules.k)
    result.timings["select"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    result.pairs = _output(cache, eligible, clips, scored, pair_row)
    result.timings["output"] = time.perf_counter() - t1
    result.timings["total"] = time.perf_counter() - t0
    return result, PairCache(
        rules_fingerprint(rules), ids, versions, eligible, rows.ids_row, clips, videos, positions, scored,
        result.pairs, changes.rejected,
    )  # fmt: skip


def _changed_clips(ids: pa.Array, versions: np.ndarray, fetch: Fetch, rules: PairRules, cache: PairCache) -> _Changes:
    """Compare ids and versions with the cache (a merge of two sorted id lists), read the features of the new
    or changed clips only and sort them into eligible and rejected."""
    at = sorted_index_in(ids, cache.clip_ids)
    same = (at >= 0) & (cache.versions[np.maximum(at, 0)] == versions)
    changed = np.flatnonzero(~same)
    changed_ids = ids.take(pa.array(changed))
    eligible, rejected_now = eligible_and_rejected(*fetch(changed_ids), rules)
    row_of_cached = np.full(len(cache.clip_ids), -1, np.int64)
    row_of_cached[at[same]] = np.flatnonzero(same)
    # the cached clips that are gone; hashing only these few, never the whole set's ids
    gone = cache.clip_ids.filter(pa.array(row_of_cached < 0))
    rejected = pa.concat_tables([
        cache.rejected.filter(pc.invert(pc.is_in(cache.rejected.column("clip_id"), value_set=gone))),
        rejected_now.cast(cache.rejected.schema),
    ])  # fmt: skip
    return _Changes(changed, changed_ids, eligible, rejected, row_of_cached)


def _renumber(cache: PairCache, changes: _Changes) -> _Rows:
    """Row ids of the eligible clips now: the cached eligible clips that stay keep their order, and each added
    clip goes in at its place in clip-id order (a ``searchsorted`` over rows of the sorted ``ids``)."""
    cached_now = changes.row_of_cached[cache.elig_rows]  # per cached eligible row, its row in ids (-1: gone)
    staying = np.flatnonzero(cached_now >= 0)
    added_ids_row = changes.changed[index_in(changes.eligible.column("clip_id").combine_chunks(), changes.changed_ids)]
    before = np.searchsorted(cached_now[staying], added_ids_row)  # staying clips before each added one
    n_staying, n_added = len(staying), len(added_ids_row)
    n = n_staying + n_added
    staying_now = np.arange(n_staying) + np.cumsum(np.bincount(before, minlength=n_staying + 1))[:n_staying]
    added_now = before + np.arange(n_added)
    cached_of_new = np.full(n, -1, np.int64)
    cached_of_new[staying_now] = staying
    new_of_cached = np.full(cache.eligible.num_rows, -1, np.int64)
    new_of_cached[staying] = staying_now
    source = np.empty(n, np.int64)
    source[staying_now] = staying
    source[added_now] = cache.eligible.num_rows + np.arange(n_added)
    ids_row = stack(cached_now, added_ids_row)[source]
    return _Rows(n, new_of_cached, cached_of_new, added_now, source, ids_row)


def _merge_eligible(
    cache: PairCache, changes: _Changes, rows: _Rows, rules: PairRules
) -> tuple[pa.Table, ClipArrays, pa.Array] | None:
    """The eligible table (``CANDIDATE_COLUMNS``), kernel arrays and video dictionary of the clips now, in
    row order: the cached rows gathered, the added clips' converted (their video codes extend the cached
    dictionary). None when the added clips change the commonest timbre length (then a full mine)."""
    d = timbre_dim(cache.clips.timbre_len)
    added_clips, added = None, None
    if len(rows.added):
        cand, added_clips = clip_arrays(changes.eligible, rules, timbre_d=d)
        added = pa.table({**{k: cand.column(k) for k in CANDIDATE_COLUMNS[1:6]},
                          **{k: changes.eligible.column(k) for k in OUTPUT_COLUMNS}})  # fmt: skip
    timbre_len = stack(cache.clips.timbre_len, added_clips and added_clips.timbre_len)[rows.source]
    if timbre_dim(timbre_len) != d:
        return None
    eligible = pa.table({
        k: stack_arrow(cache.eligible.column(k), added.column(k) if added is not None else None).take(pa.array(rows.source))
        for k in CANDIDATE_COLUMNS
    })  # fmt: skip
    videos = cache.videos
    if added_clips is not None:  # the cached code of a known video, else a new one
        videos, added_clips.video = video_codes(videos, ytids_of(changes.eligible.column("clip_id").combine_chunks()))
    return eligible, merge_clips(cache.clips, added_clips, rows.source, eligible), videos


def _sort_key_columns(eligible: pa.Table) -> tuple[np.ndarray, ...]:
    """(block, lt, ibi, phase, hc) of the eligible clips: ``band.element_key``'s per-clip inputs."""
    block, lt, ibi, phase, hc = (eligible.column(k).to_numpy() for k in CANDIDATE_COLUMNS[1:6])
    return block.astype(np.int64), lt, ibi, phase, hc.astype(np.int64)


def _merge_orders(
    cached_positions: np.ndarray, rows: _Rows, keys: tuple[np.ndarray, ...], rules: PairRules
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The sort orders now: per order, the cached elements that stay (in their cached order, renumbered) with
    the added clips' elements merged in; keys are computed only for the elements compared (``element_key``,
    the full miner's own). Returns the orders, each element's positions and, per order, the *touched*
    positions: the added elements', and the element after each run of removed ones (a gap)."""
    c, fine = copies(rules), bucket_width(rules)
    size = rows.n * c
    orders = np.empty((N_ORDERS, size), np.int64)
    positions = np.empty_like(orders)
    added = (rows.added[:, None] * c + np.arange(c)).ravel()
    touched = []
    for r in range(N_ORDERS):
        cached_order = np.empty(cached_positions.shape[1], np.int64)
        cached_order[cached_positions[r]] = np.arange(cached_positions.shape[1])
        now = rows.new_of_cached[cached_order // c]
        kept_at = np.flatnonzero(now >= 0)  # cached positions of the elements that stay
        kept = now[kept_at] * c + cached_order[kept_at] % c
        added_sorted = added[np.lexsort(element_keys(r, added, c, *keys, fine)[::-1])]
        orders[r] = merge_sorted(r, c, *keys, fine, kept, added_sorted)
        positions[r, orders[r]] = np.arange(size)
        after_gap = positions[r][kept[np.flatnonzero(np.diff(kept_at) != 1) + 1]]
        touched.append(np.concatenate([positions[r][added_sorted], after_gap]))
    return orders, positions, touched


def _new_candidates(
    orders: np.ndarray, touched: list[np.ndarray], keys: tuple[np.ndarray, ...], rows: _Rows,
    cached_positions: np.ndarray, rules: PairRules, result: MiningResult,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The candidate edges this run must examine (lo, hi, rel within the tempo tolerance): the band pairs
    around touched positions, under the full join's conditions, less the ones between unchanged clips that
    were candidates before (their verdict is cached). Sets the result's candidate and tempo counts."""
    c, w = copies(rules), rules.window
    block, lt = keys[0], keys[1]
    ea, eb = window_pairs(orders, touched, w)
    ia, ib, oa, ob = ea // c, eb // c, ea % c, eb % c
    dlt = np.abs((lt[ia] + np.where(oa == 1, LN2, 0.0)) - (lt[ib] + np.where(ob == 1, LN2, 0.0)))
    tol = math.log1p(rules.tolerance)
    keep = (block[ia] == block[ib]) & (ia != ib) & ~((oa == 1) & (ob == 1)) & (dlt <= 3 * tol)
    ia, ib, oa, ob, dlt = ia[keep], ib[keep], oa[keep], ob[keep], dlt[keep]
    lo, hi = np.minimum(ia, ib), np.maximum(ia, ib)
    rel = np.where(ia < ib, oa - ob, ob - oa)
    _, first = np.unique((lo * rows.n + hi) * 3 + rel + 1, return_index=True)
    lo, hi, rel, dlt = lo[first], hi[first], rel[first], dlt[first]
    seen = _examined_before(lo, hi, rel, rows, cached_positions, c, w)
    lo, hi, rel, dlt = lo[~seen], hi[~seen], rel[~seen], dlt[~seen]
    result.candidates = len(lo)
    result.pair_rejections = {"tempo": int(np.count_nonzero(dlt > tol))}
    ok = dlt <= tol
    return lo[ok], hi[ok], rel[ok].astype(np.int8)


def _examined_before(
    lo: np.ndarray, hi: np.ndarray, rel: np.ndarray, rows: _Rows, cached_positions: np.ndarray, c: int, w: int
) -> np.ndarray:
    """Per edge, whether both clips are cached ones and their elements were within ``w`` in some cached order."""
    both_cached = (rows.cached_of_new[lo] >= 0) & (rows.cached_of_new[hi] >= 0)
    ea = np.where(both_cached, rows.cached_of_new[lo] * c + (rel == 1), 0)
    eb = np.where(both_cached, rows.cached_of_new[hi] * c + (rel == -1), 0)
    seen = np.zeros(len(lo), bool)
    for r in range(cached_positions.shape[0]):
        seen |= both_cached & (np.abs(cached_positions[r][ea] - cached_positions[r][eb]) <= w)
    return seen


def _output(
    cache: PairCache, eligible: pa.Table, clips: ClipArrays, scored: ScoredEdges, pair_row: np.ndarray
) -> pa.Table:
    """PAIRS rows of the chosen edges in output order: cached rows for pairs chosen before, measured rows
    for the others (from the merged kernel arrays); every row stamped with this run's time, as a full mine
    would."""
    chosen = np.flatnonzero(scored.chosen)
    src = pair_row[chosen]
    reuse = src >= 0
    fresh = chosen[~reuse]
    parts = [varying(cache.pairs)]
    if len(fresh):
        lo, hi, rel, harm, score = (getattr(scored, k)[fresh] for k in ("lo", "hi", "rel", "harm", "score"))
        parts.append(varying(pairs_table(eligible, clips, lo, hi, rel, harm, score)))
    position = np.empty(len(chosen), np.int64)  # output row k: a cached row, or a new one after them
    position[reuse] = src[reuse]
    position[~reuse] = cache.pairs.num_rows + np.arange(len(fresh))
    table = pa.concat_tables(parts).take(pa.array(position))
    return _with_constants(table)


def _with_constants(table: pa.Table) -> pa.Table:
    """``table`` with this run's miner version and time (UTC, as ``utc_now``) in every row, in PAIRS order."""
    from m2ugen_data.schemas import PAIRS

    schema, n = PAIRS.schema, table.num_rows
    zeros = pa.array(np.zeros(n, np.int32))
    version = pa.DictionaryArray.from_arrays(zeros, pa.array([MINER_VERSION], pa.string()))
    now = pa.array([utc_now()], schema.field("created_at").type)
    columns = {**{c: table.column(c) for c in table.column_names}, "miner_version": version.cast(pa.string()),
               "created_at": now.take(zeros)}  # fmt: skip
    return pa.table([columns[f.name] for f in schema], schema=schema)
