"""The band join: the sort orders in which clips are each other's candidates, and DuckDB's join of every
element with its next ``window`` neighbours in each order (never all pairs; ``mine.py`` explains why)."""

from __future__ import annotations

import math

import duckdb
import numba
import numpy as np
import pyarrow as pa

from m2ugen_data.pairs.kernels import LN2
from m2ugen_data.pairs.rules import PairRules


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
    lets the incremental miner (``incremental.py``) reuse a previous run's edges. Computed by ``element_key`` (not SQL)
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
    elt = lt[i] + (LN2 if q == 1 else 0.0)
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


def build_candidates(con: duckdb.DuckDBPyConnection, cand: pa.Table, rules: PairRules) -> np.ndarray:
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
