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
  order (new clips can push it out of the band; a full re-mine would not see it either).
- Scores are per-edge functions of the two clips, so cached scores stand. The degree cap is global: a new
  edge can take a slot from an old one, whose other end then takes a pair it could not before, and so on.
  So the selection is re-run over all valid edges, but cheaply: cached edges are already in best-first
  order, the new ones are sorted and merged in (linear), and the greedy pass is linear.
- Output rows of pairs chosen before are reused; only newly chosen pairs are measured again (from their
  clips' features).

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
import pyarrow.parquet as pq

from m2ugen_data.analysis import pairs as miner
from m2ugen_data.analysis.pairs import FEATURE_COLUMNS, MiningResult, PairRules, ScoredEdges
from m2ugen_data.atomic import fsync_dir
from m2ugen_data.errors import M2UGenError
from m2ugen_data.warehouse import duck_connect, utc_now

CACHE_FORMAT = 1
_CANDIDATE_COLUMNS = ("clip_id", "block", "lt", "ibi", "phase", "hc")


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
    positions: np.ndarray  # (orders, elements) int64 sort positions, ``pairs.sort_positions``
    edges: ScoredEdges  # valid edges, best first
    pairs: pa.Table  # PAIRS rows of the chosen edges, in the order they were chosen
    rejected: pa.Table  # (clip_id, why): clips the eligibility rules rejected, so counts stay whole-set

    def save(self, directory: Path) -> None:
        """Write to ``directory`` as a whole: a sibling temporary directory renamed into place, so a killed
        run leaves the old cache or none (then the next run mines in full), never a mix."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex}.tmp")
        tmp.mkdir()
        try:
            pq.write_table(pa.table({"clip_id": self.clip_ids, "version": self.versions}), tmp / "clips.parquet")
            pq.write_table(self.eligible, tmp / "eligible.parquet")
            np.save(tmp / "positions.npy", self.positions.astype(np.int64))
            e = self.edges
            edges = {"lo": e.lo, "hi": e.hi, "rel": e.rel, "score": e.score, "harm": e.harm, "chosen": e.chosen}
            pq.write_table(pa.table(edges), tmp / "edges.parquet")
            pq.write_table(self.pairs, tmp / "pairs.parquet")
            pq.write_table(self.rejected, tmp / "rejected.parquet")
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
            clips = pq.read_table(directory / "clips.parquet")
            e = pq.read_table(directory / "edges.parquet")
            edges = ScoredEdges(*(e.column(c).to_numpy() for c in ("lo", "hi", "rel", "score", "harm", "chosen")))
            return cls(
                fingerprint=fingerprint,
                clip_ids=clips.column("clip_id").combine_chunks(),
                versions=clips.column("version").to_numpy(),
                eligible=pq.read_table(directory / "eligible.parquet"),
                positions=np.load(directory / "positions.npy"),
                edges=edges,
                pairs=pq.read_table(directory / "pairs.parquet"),
                rejected=pq.read_table(directory / "rejected.parquet"),
            )
        except (OSError, ValueError, KeyError, pa.ArrowException):
            return None


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
    fingerprint: str, ids: pa.Array, versions: np.ndarray, cand: pa.Table, positions: np.ndarray | None,
    scored: ScoredEdges | None, pairs: pa.Table, rejected: pa.Table,
) -> PairCache:  # fmt: skip
    if scored is None:  # fewer than two eligible clips
        e = np.empty(0, np.int64)
        scored = ScoredEdges(e, e, e.astype(np.int8), e.astype(np.float64), e.astype(np.float32), e.astype(bool))
    if positions is None:
        positions = np.empty((miner.N_ORDERS, 0), np.int64)
    eligible = cand.select(list(_CANDIDATE_COLUMNS))
    return PairCache(fingerprint, ids, versions, eligible, positions, scored, pairs, rejected)


Fetch = Callable[[pa.Array], tuple[pa.Table, pa.Table]]  # clip ids -> (their features rows, labels rows)


def table_fetch(features: pa.Table, labels: pa.Table) -> Fetch:
    """``Fetch`` over in-memory tables."""
    all_ids = features.column("clip_id").combine_chunks()

    def fetch(wanted: pa.Array) -> tuple[pa.Table, pa.Table]:
        rows = features.take(pc.drop_null(pc.index_in(wanted, value_set=all_ids)))
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
    result, cand, positions, scored = miner.mine_full(
        features, labels, rules, threads=threads, memory_limit=memory_limit
    )
    fingerprint = rules_fingerprint(rules)
    return result, _cache_of(fingerprint, ids, versions, cand, positions, scored, result.pairs, result.rejected)


def usable(cache: PairCache | None, rules: PairRules) -> bool:
    """Whether ``cache`` can seed an incremental mine under ``rules``."""
    return cache is not None and cache.fingerprint == rules_fingerprint(rules) and len(cache.edges.lo) > 0


def mine_changes(
    ids: pa.Array, versions: np.ndarray, fetch: Fetch, rules: PairRules, cache: PairCache, *, t0: float | None = None
) -> tuple[MiningResult, PairCache]:
    """The incremental mine (``usable(cache, rules)`` must hold): ``ids`` every clip now (sorted) with
    its ``versions``; ``fetch`` reads the features and labels of the clips it is asked for, which are the
    new or changed clips and the partners of edges to score or output, never the whole set."""
    t0 = time.perf_counter() if t0 is None else t0
    fingerprint = rules_fingerprint(rules)
    c, w = miner.copies(rules), rules.window
    # --- which clips are unchanged (same id and hash as cached), which are new or changed
    at = _index_in(ids, cache.clip_ids)
    same = (at >= 0) & (cache.versions[np.maximum(at, 0)] == versions)
    elig_new, rejected_new = miner.eligible_and_rejected(*fetch(ids.filter(pa.array(~same))), rules)
    clean_ids_all = ids.filter(pa.array(same))
    rejected = pa.concat_tables([
        cache.rejected.filter(pc.is_in(cache.rejected.column("clip_id"), value_set=clean_ids_all)),
        rejected_new.cast(cache.rejected.schema),
    ])  # fmt: skip
    clip_rej = miner.rejection_counts(rejected)
    old_ids = cache.eligible.column("clip_id").combine_chunks()
    old_clean = np.zeros(len(old_ids), bool)
    hit = _index_in(clean_ids_all, old_ids)
    old_clean[hit[hit >= 0]] = True
    clean_idx = np.flatnonzero(old_clean)
    # --- new row ids: the unchanged eligible clips and the new ones merged in clip-id order
    clean_ids = old_ids.take(pa.array(clean_idx)).to_numpy(zero_copy_only=False)
    new_ids = elig_new.column("clip_id").to_numpy(zero_copy_only=False)
    p = np.searchsorted(clean_ids, new_ids)
    n_clean, n_new = len(clean_idx), len(new_ids)
    n = n_clean + n_new
    new_of_clean = np.arange(n_clean) + np.cumsum(np.bincount(p, minlength=n_clean + 1))[:n_clean]
    new_of_new = p + np.arange(n_new)
    old_of_new = np.full(n, -1, np.int64)
    old_of_new[new_of_clean] = clean_idx
    old_to_new = np.full(len(old_ids), -1, np.int64)
    old_to_new[clean_idx] = new_of_clean
    cand_new, _ = miner.clip_arrays(elig_new, rules) if n_new else (None, None)
    merged: dict[str, np.ndarray] = {}
    for name in _CANDIDATE_COLUMNS[1:]:
        col = np.empty(n, cache.eligible.column(name).type.to_pandas_dtype())
        col[new_of_clean] = cache.eligible.column(name).to_numpy()[clean_idx]
        if n_new:
            col[new_of_new] = cand_new.column(name).to_numpy()
        merged[name] = col
    order_ids = np.empty(n, np.int64)
    order_ids[new_of_clean] = np.arange(n_clean)
    order_ids[new_of_new] = n_clean + np.arange(n_new)
    elig_ids = pa.concat_arrays([old_ids.take(pa.array(clean_idx)), elig_new.column("clip_id").combine_chunks()])
    elig_ids = elig_ids.take(pa.array(order_ids))
    result = MiningResult(pairs=miner._empty_pairs(), eligible=n, clips=len(ids), clip_rejections=clip_rej)
    result.timings["prepare"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    # --- sort orders: the old ones (minus removed clips) with the new elements merged in
    keys = miner.order_keys(merged["block"], merged["lt"], merged["ibi"], merged["phase"], merged["hc"], rules)
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
        fresh = new_elems[np.lexsort(keys[r][:, new_elems][::-1])]
        orders[r] = _merge_sorted(keys[r], kept_elems, fresh)
        positions[r, orders[r]] = np.arange(size)
        gaps = positions[r][kept_elems[np.flatnonzero(np.diff(kept) != 1) + 1]]  # removed elements before
        touched.append(np.concatenate([positions[r][fresh], gaps]))
    ea, eb = _window_pairs(orders, touched, w)
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
    # cached valid edges between unchanged clips still inside the band
    e = cache.edges
    new_lo, new_hi = _retained(e.lo, e.hi, e.rel, old_to_new, positions, c, w)
    ret_idx = np.flatnonzero(new_lo >= 0)
    result.timings["join"] = time.perf_counter() - t1
    # --- score the new candidates on their clips' features alone
    t1 = time.perf_counter()
    f_lo, f_hi, f_rel, f_score, f_harm = lo, hi, rel, np.empty(0), np.empty(0, np.float32)
    if len(lo):
        sub_ids = np.unique(np.concatenate([lo, hi]))
        _, sub_clips = _subset(fetch, rules, elig_ids, sub_ids)
        f_lo, f_hi, f_rel, f_score, f_harm = miner.score_edges(
            result, sub_clips, np.searchsorted(sub_ids, lo), np.searchsorted(sub_ids, hi), rel, rules
        )
        f_lo, f_hi = sub_ids[f_lo], sub_ids[f_hi]
    fo = miner._best_first(f_score, f_lo, f_hi)
    result.timings["score"] = time.perf_counter() - t1
    # --- the whole set's selection: cached best-first order merged with the new edges'
    t1 = time.perf_counter()
    all_lo = np.concatenate([new_lo[ret_idx], f_lo[fo]])
    all_hi = np.concatenate([new_hi[ret_idx], f_hi[fo]])
    all_score = np.concatenate([e.score[ret_idx], f_score[fo]])
    order = _merge_best_first(all_score, all_lo, all_hi, len(ret_idx))
    scored = ScoredEdges(
        all_lo[order], all_hi[order], np.concatenate([e.rel[ret_idx], f_rel[fo].astype(np.int8)])[order],
        all_score[order], np.concatenate([e.harm[ret_idx], f_harm[fo]])[order], np.empty(0, bool),
    )  # fmt: skip
    source = np.concatenate([ret_idx, np.full(len(fo), -1)])[order]  # cached edge index, -1: new
    miner.choose(result, scored, n, rules.k)
    result.timings["select"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    result.pairs = _output(fetch, rules, cache, elig_ids, scored, source)
    result.timings["output"] = time.perf_counter() - t1
    result.timings["total"] = time.perf_counter() - t0
    eligible = pa.table({"clip_id": elig_ids, **merged})
    return result, PairCache(fingerprint, ids, versions, eligible, positions, scored, result.pairs, rejected)


def _index_in(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    """Position of each value in ``value_set`` (int64), -1 where absent."""
    return pc.fill_null(pc.index_in(values, value_set=value_set), -1).to_numpy(zero_copy_only=False).astype(np.int64)


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
def _retained(
    lo: np.ndarray, hi: np.ndarray, rel: np.ndarray, old_to_new: np.ndarray, positions: np.ndarray, c: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """New row ids of the cached edges between unchanged clips whose ends are still at most ``w`` apart in
    some sort order (-1 for the others): one pass, no temporaries over the whole edge list."""
    m = lo.shape[0]
    new_lo = np.full(m, -1, dtype=np.int64)
    new_hi = np.full(m, -1, dtype=np.int64)
    for i in range(m):
        a, b = old_to_new[lo[i]], old_to_new[hi[i]]
        if a < 0 or b < 0:
            continue
        ea = a * c + (1 if rel[i] == 1 else 0)
        eb = b * c + (1 if rel[i] == -1 else 0)
        for r in range(positions.shape[0]):
            d = positions[r, ea] - positions[r, eb]
            if -w <= d <= w:
                new_lo[i], new_hi[i] = a, b
                break
    return new_lo, new_hi


@numba.njit(cache=True)
def _merge_sorted(keys: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge two element lists, each sorted by ``keys`` (rows most significant first, no equal columns)."""
    out = np.empty(a.shape[0] + b.shape[0], dtype=np.int64)
    i, j, k = 0, 0, 0
    while i < a.shape[0] and j < b.shape[0]:
        x, y = a[i], b[j]
        first = True
        for r in range(keys.shape[0]):
            if keys[r, x] != keys[r, y]:
                first = keys[r, x] < keys[r, y]
                break
        if first:
            out[k] = x
            i += 1
        else:
            out[k] = y
            j += 1
        k += 1
    out[k : k + a.shape[0] - i] = a[i:]
    k += a.shape[0] - i
    out[k : k + b.shape[0] - j] = b[j:]
    return out


@numba.njit(cache=True)
def _merge_best_first(score: np.ndarray, lo: np.ndarray, hi: np.ndarray, split: int) -> np.ndarray:
    """Merge two best-first runs ([0, split) and [split, end)) into one: score descending, ties by
    (lo, hi), the order ``pairs._best_first`` gives the union. Linear."""
    m = score.shape[0]
    out = np.empty(m, dtype=np.int64)
    i, j, k = 0, split, 0
    while i < split and j < m:
        if score[i] > score[j] or (score[i] == score[j] and (lo[i] < lo[j] or (lo[i] == lo[j] and hi[i] < hi[j]))):
            out[k] = i
            i += 1
        else:
            out[k] = j
            j += 1
        k += 1
    while i < split:
        out[k] = i
        i += 1
        k += 1
    while j < m:
        out[k] = j
        j += 1
        k += 1
    return out


def _subset(fetch: Fetch, rules: PairRules, elig_ids: pa.Array, rows: np.ndarray) -> tuple[pa.Table, miner.ClipArrays]:
    """Eligible table and kernel arrays of the eligible clips with row ids ``rows`` (sorted), in that order."""
    elig, _ = miner.eligible_clips(*fetch(elig_ids.take(pa.array(rows))), rules)
    if elig.num_rows != len(rows):  # every clip here passed eligibility when its row id was assigned
        raise M2UGenError("pair cache: the features of some clips changed during mining; run again")
    return elig, miner.clip_arrays(elig, rules)[1]


def _output(
    fetch: Fetch, rules: PairRules, cache: PairCache, elig_ids: pa.Array, scored: ScoredEdges, source: np.ndarray
) -> pa.Table:
    """PAIRS rows of the chosen edges in output order: cached rows for pairs chosen before, measured rows
    for the others; every row stamped with this run's time, as a full mine would."""
    chosen = np.flatnonzero(scored.chosen)
    old_row = np.cumsum(cache.edges.chosen) - 1  # cached edge -> its row in cache.pairs
    src = source[chosen]
    reuse = src >= 0
    reuse[reuse] = cache.edges.chosen[src[reuse]]
    fresh = chosen[~reuse]
    parts = [cache.pairs]
    if len(fresh):
        sub_ids = np.unique(np.concatenate([scored.lo[fresh], scored.hi[fresh]]))
        sub_elig, sub_clips = _subset(fetch, rules, elig_ids, sub_ids)
        a, b = np.searchsorted(sub_ids, scored.lo[fresh]), np.searchsorted(sub_ids, scored.hi[fresh])
        parts.append(
            miner._pairs_table(sub_elig, sub_clips, a, b, scored.rel[fresh], scored.harm[fresh], scored.score[fresh])
        )
    position = np.empty(len(chosen), np.int64)  # output row k: a cached row, or a new one after them
    position[reuse] = old_row[src[reuse]]
    position[~reuse] = cache.pairs.num_rows + np.arange(len(fresh))
    table = pa.concat_tables(parts).take(pa.array(position))
    i = table.schema.get_field_index("created_at")
    now = np.datetime64(utc_now().replace(tzinfo=None), "us")  # UTC wall time, as utc_now
    stamp = pa.array(np.full(table.num_rows, now)).cast(table.schema.field(i).type)
    return table.set_column(i, table.schema.field(i), stamp)
