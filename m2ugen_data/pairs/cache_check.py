"""Shape, dtype and range checks of a loaded ``PairCache``: every array the compiled kernels index with is
checked against what it indexes, so a cache that passes its checksums but is still not what a mine writes (a
bug, an edited file) is refused instead of sending a kernel out of bounds (SIGSEGV) or picking wrong pairs."""

from __future__ import annotations

from typing import Any

import numpy as np

from m2ugen_data.analysis.harmony import N_CHORD_IDS
from m2ugen_data.pairs.band import N_ORDERS


class DamagedCache(ValueError):
    """A cache file that is not what a mine writes; ``file`` names it."""

    def __init__(self, file: str, why: str) -> None:
        super().__init__(f"{file}: {why}")
        self.file, self.why = file, why


def _need(ok: bool, file: str, why: str) -> None:
    if not ok:
        raise DamagedCache(file, why)


def _array(a: np.ndarray, file: str, dtype: str, shape: tuple[int, ...]) -> None:
    _need(a.dtype == np.dtype(dtype), file, f"dtype {a.dtype}, expected {dtype}")
    _need(a.shape == shape, file, f"shape {a.shape}, expected {shape}")


def _within(a: np.ndarray, file: str, lo: int, hi: int) -> None:
    _need(a.size == 0 or (int(a.min()) >= lo and int(a.max()) < hi), file, f"values outside [{lo}, {hi})")


def _csr(values: np.ndarray, offsets: np.ndarray, prefix: str, rows: int, vocabulary: int) -> None:
    _need(offsets.shape == (rows + 1,), f"{prefix}_offsets.npy", f"shape {offsets.shape}, expected ({rows + 1},)")
    ok = offsets[0] == 0 and offsets[-1] == len(values) and bool(np.all(np.diff(offsets) >= 0))
    _need(ok, f"{prefix}_offsets.npy", "offsets do not run from 0 to the values' length")
    _within(values, f"{prefix}_values.npy", 0, vocabulary)


def check_cache(cache: Any) -> None:
    """``cache`` is a ``PairCache`` (not imported: ``cache.py`` imports this module). Raise ``DamagedCache`` unless every array of ``cache`` has the dtype, shape and value range a mine writes."""
    ids, n = len(cache.clip_ids), cache.eligible.num_rows
    _array(cache.versions, "versions.npy", "uint64", (ids,))
    _array(cache.elig_rows, "elig_rows.npy", "int64", (n,))
    _within(cache.elig_rows, "elig_rows.npy", 0, ids)
    _need(bool(np.all(np.diff(cache.elig_rows) > 0)), "elig_rows.npy", "rows not strictly ascending")
    c = cache.clips
    for name in ("loud", "video", "words_measured", "chords_measured", "timbre_len", "timbre", "content"):
        _need(len(getattr(c, name)) == n, f"clips_{name}.npy", f"{len(getattr(c, name))} rows, expected {n}")
    _within(c.video, "clips_video.npy", 0, len(cache.videos))
    _csr(c.labels[0], c.labels[1], "clips_labels", n, len(c.labels[2]))
    _csr(c.words[0], c.words[1], "clips_words", n, len(c.words[2]))
    copies = (len(c.chord_offsets) - 1) // n if n else 1
    _need(copies in (1, 2), "clips_chord_offsets.npy", f"{len(c.chord_offsets)} offsets for {n} clips")
    _csr(c.chord_values, c.chord_offsets, "clips_chord", copies * n, N_CHORD_IDS)
    e = cache.edges
    m = len(e.lo)
    size = copies * n
    if m or cache.positions.shape != (N_ORDERS, 0):  # no positions only where under two clips left no edge
        _array(cache.positions, "positions.npy", "int64", (N_ORDERS, size))
        for row in cache.positions:  # each order a permutation of the elements
            _within(row, "positions.npy", 0, size)
            _need(bool(np.all(np.bincount(row, minlength=size) == 1)), "positions.npy", "an order repeats an element")
    for name, dtype in (("lo", "int32"), ("hi", "int32"), ("rel", "int8"), ("score", "float64"), ("harm", "float32")):
        _array(getattr(e, name), f"edges_{name}.npy", dtype, (m,))
    _array(e.chosen, "edges_chosen.npy", "bool", (m,))
    _within(e.lo, "edges_lo.npy", 0, n)
    _within(e.hi, "edges_hi.npy", 0, n)
    _need(bool(np.all(e.lo < e.hi)), "edges_hi.npy", "an edge's ends are not in order")
    _within(e.rel, "edges_rel.npy", -1, 2)
    _need(bool(np.all(np.diff(e.score) <= 0)), "edges_score.npy", "edges not in best-first order")
    _need(int(np.count_nonzero(e.chosen)) == cache.pairs.num_rows, "edges_chosen.npy", "chosen edges != cached pairs")
