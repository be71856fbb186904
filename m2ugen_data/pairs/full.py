"""The full mine: eligibility, the band join, rules, score and degree cap over every eligible clip."""

from __future__ import annotations

import math
import time

import numpy as np
import pyarrow as pa

from m2ugen_data.pairs.band import build_candidates
from m2ugen_data.pairs.clips import ClipArrays, clip_arrays, eligible_and_rejected, rejection_counts
from m2ugen_data.pairs.rules import MiningResult, PairRules
from m2ugen_data.pairs.select import (
    OUTPUT_COLUMNS,
    ScoredEdges,
    best_first,
    choose,
    empty_pairs,
    pairs_table,
    score_edges,
)
from m2ugen_data.warehouse import duck_connect


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
        pairs=empty_pairs(), eligible=elig.num_rows, clips=features.num_rows,
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
    positions = build_candidates(con, cand, rules)
    tol = math.log1p(rules.tolerance)
    examined, off_tempo = con.execute(f"SELECT count(*), count(*) FILTER (dlt > {tol}) FROM e").fetchall()[0]
    edges = con.sql(f"SELECT lo, hi, rel FROM e WHERE dlt <= {tol}").to_arrow_table()
    con.close()  # frees the join's memory before the kernels allocate theirs
    result.candidates, result.pair_rejections = int(examined), {"tempo": int(off_tempo)}
    result.timings["join"] = time.perf_counter() - t1
    scored = select_pairs(result, elig, clips, edges, rules)
    result.timings["total"] = time.perf_counter() - t0
    return result, cand, clips, positions, scored


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
    order = best_first(score, lo, hi)
    scored = ScoredEdges(lo[order], hi[order], rel[order].astype(np.int8), score[order], harm[order], np.empty(0, bool))
    choose(result, scored, elig.num_rows, rules.k)
    result.timings["select"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    c = scored.chosen
    result.pairs = pairs_table(elig, clips, scored.lo[c], scored.hi[c], scored.rel[c], scored.harm[c], scored.score[c])
    result.timings["output"] = time.perf_counter() - t1
    return scored
