"""A damaged pair cache (a flipped bit, a short array, well-formed wrong values) is caught when it is loaded:
one warning line naming the file, and the run mines in full, so its pairs and the cache it saves equal a
``--full`` mine's. Never a crash, never wrong pairs saved back for every later run."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from test_analysis_pairs import _features_rows, _segments, make_features

from m2ugen_data.checksums import write_checksums
from m2ugen_data.pairs.cache import PairCache
from m2ugen_data.pairs.mine import mine_warehouse
from m2ugen_data.pairs.rules import PairRules
from m2ugen_data.warehouse import Warehouse

RULES = PairRules(key_rule="any")


def _rows(table: pa.Table) -> pa.Table:
    return table.drop(["created_at"]).sort_by([("src_id", "ascending"), ("tgt_id", "ascending")])


def _mined(warehouse: Warehouse) -> Path:
    """A warehouse mined twice (the second run incremental over 60 new clips): its cache directory."""
    features, _, truth = make_features(260, seed=9)
    rows = _features_rows(features)
    warehouse.write_batch("features", rows[:200], "f1")
    warehouse.write_batch("segments", _segments(truth), "s1")
    mine_warehouse(warehouse, RULES, pool="muedit")
    warehouse.write_batch("features", rows[200:], "f2")
    _, batch = mine_warehouse(warehouse, RULES, pool="muedit")
    return warehouse.root / "cache" / "pairs" / batch


def _rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    np.save(path, change(np.load(path)))


def _swap_scores(a: np.ndarray) -> np.ndarray:  # well-formed: same dtype and shape, every value finite
    a = a.copy()
    a[[0, -1]] = a[[-1, 0]]
    return a


def _shift_positions(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[0, 0] = a.shape[1] + 5  # past the end of the order
    return a


DAMAGE = {
    "edges_score.npy": _swap_scores,
    "edges_chosen.npy": lambda a: ~a,
    "versions.npy": lambda a: a[:-3],
    "positions.npy": _shift_positions,
    "elig_rows.npy": lambda a: a[::-1].copy(),
}


@pytest.mark.slow
@pytest.mark.parametrize("resummed", [False, True], ids=["checksum", "shape"])
@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_a_damaged_cache_array_is_named_and_the_run_equals_a_full_mine(
    warehouse, caplog, name: str, resummed: bool
) -> None:
    """Each damage is caught by the checksums and, with the checksums recorded again over the damaged file
    (a bug that writes a bad cache whole), by the shape and range checks alone."""
    cache_dir = _mined(warehouse)
    _rewrite(cache_dir / name, DAMAGE[name])
    if resummed:
        write_checksums(cache_dir)
    with caplog.at_level(logging.WARNING):
        result, _ = mine_warehouse(warehouse, RULES, pool="muedit")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and name in warnings[0] and "\n" not in warnings[0]
    full, _ = mine_warehouse(warehouse, RULES, pool="muedit", full=True)
    assert result.pairs.num_rows > 10 and _rows(result.pairs).equals(_rows(full.pairs))
    # the rebuilt cache is whole: the next run loads it silently and still equals a full mine
    assert PairCache.load(cache_dir) is not None
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again, _ = mine_warehouse(warehouse, RULES, pool="muedit")
    assert not caplog.records and _rows(again.pairs).equals(_rows(full.pairs))


@pytest.mark.slow
def test_a_flipped_bit_in_cached_edges_warns_and_rebuilds_instead_of_crashing(warehouse) -> None:
    """The bit that made an edge's row id point far past the arrays: the kernels read out of bounds and the
    process died of SIGSEGV. Run through the CLI in a subprocess, as the crash would take pytest with it."""
    cache_dir = _mined(warehouse)
    path = cache_dir / "edges_lo.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40  # the last edge's lo, little-endian int32: bit 30
    path.write_bytes(bytes(data))
    cli = [sys.executable, "-m", "m2ugen_data.cli", "--warehouse", str(warehouse.root)]
    run = subprocess.run(
        [*cli, "pairs", "mine", "--pool", "muedit", "--key-rule", "any"], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    named = [line for line in run.stderr.splitlines() if "edges_lo.npy" in line]
    assert len(named) == 1 and "rebuil" in named[0]
    incremental = _rows(warehouse.read("pairs"))
    mine_warehouse(warehouse, RULES, pool="muedit", full=True)
    assert incremental.num_rows > 10 and incremental.equals(_rows(warehouse.read("pairs")))
