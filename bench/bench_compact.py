"""Compaction at scale: a manifest of many small batches, before and after ``compact``, against one file.

Builds a ``clips`` manifest of ``--rows`` rows written as ``--batches`` small batches (downloads flush every
200-500 clips; at AudioSet scale that is thousands of files), with ``--overlap`` of the clips written again
in later batches (retries: history rows, so ``latest`` has work to do). Then times, each the median of
``--repeats``, interleaved so background load hits all alike:

- ``latest`` read: ``Warehouse.read("clips")`` (list live files, check footers, newest row per key, to Arrow);
- ``latest`` count: ``SELECT count(*) FROM clips_latest`` on ``Warehouse.connect()``;
- raw scan: ``SELECT count(*), sum(bytes) FROM clips``,

over the uncompacted manifest, the compacted one, and a warehouse holding the same rows as *one* Parquet
file (the target: compacted within 2x of one file), plus ``pyarrow.parquet.read_table`` of that one file.

    .venv/bin/python bench/bench_compact.py [--rows 1000000] [--batches 2000] [--overlap 0.1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.compact import compact
from m2ugen_data.schemas import CLIPS
from m2ugen_data.warehouse import Warehouse, open_warehouse

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def batch_table(ids: np.ndarray, when: dt.datetime) -> pa.Table:
    n = len(ids)
    names = [f"y{i:010d}_30000" for i in ids]
    cols = {
        "clip_id": pa.array(names),
        "status": pa.array(["ok"] * n),
        "error_class": pa.nulls(n, pa.string()),
        "error": pa.nulls(n, pa.string()),
        "attempts": pa.array(np.ones(n, dtype=np.int32)),
        "audio_path": pa.array([f"media/audio/{c[:2]}/{c}.flac" for c in names]),
        "video_path": pa.nulls(n, pa.string()),
        "duration_s": pa.array(np.full(n, 10.0)),
        "sample_rate": pa.array(np.full(n, 48000, dtype=np.int32)),
        "bytes": pa.array(ids.astype(np.int64) * 7 + 500_000),
        "sha256": pa.array([f"{i:064x}" for i in ids]),
        "updated_at": pa.array([when + dt.timedelta(microseconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
    }
    for field in CLIPS.schema:  # columns added since (span, ...): NULL, as a batch of then would have them
        if field.name not in cols:
            cols[field.name] = pa.nulls(n, field.type)
    return pa.table({f.name: cols[f.name].cast(f.type) for f in CLIPS.schema})


def build(wh: Warehouse, rows: int, batches: int, overlap: float) -> int:
    """Write ``rows`` rows as ``batches`` batches; returns the number of distinct clips."""
    rng = np.random.default_rng(0)
    distinct = int(rows / (1 + overlap))
    ids = np.concatenate([np.arange(distinct), rng.integers(0, distinct, rows - distinct)])
    for b, chunk in enumerate(np.array_split(ids, batches)):
        wh.write_batch("clips", batch_table(chunk, T0 + dt.timedelta(seconds=b)), f"download-{b:06d}")
    return distinct


def timed(fn: Callable[[], object], repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def cases(wh: Warehouse) -> dict[str, Callable[[], object]]:
    return {
        "latest read": lambda: wh.read("clips"),
        "latest count": lambda: wh.connect().execute("SELECT count(*) FROM clips_latest").fetchone(),
        "raw scan": lambda: wh.connect().execute("SELECT count(*), sum(bytes) FROM clips").fetchone(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--overlap", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--target-rows", type=int, default=250_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-compact-") as tmp:
        small, one = open_warehouse(Path(tmp) / "small"), open_warehouse(Path(tmp) / "one")
        t = time.perf_counter()
        distinct = build(small, args.rows, args.batches, args.overlap)
        build_s = time.perf_counter() - t
        all_rows = small.read("clips", latest=False)
        single = one.manifest_dir("clips") / "all.parquet"
        one.manifest_dir("clips").mkdir(parents=True)
        pq.write_table(all_rows, single, compression="zstd", row_group_size=65_536)
        del all_rows
        files_before = len(small.manifest_files("clips"))
        before = {k: timed(fn, args.repeats) for k, fn in cases(small).items()}
        t = time.perf_counter()
        result = compact(small, "clips", target_rows=args.target_rows, grace_s=0)
        compact_s = time.perf_counter() - t
        assert small.read("clips").num_rows == distinct and small.read("clips", latest=False).num_rows == args.rows
        after, baseline = {}, {}
        for _ in range(args.repeats):  # interleaved: the same background load for both
            for k, fn in cases(small).items():
                after.setdefault(k, []).append(timed(fn, 1))
            for k, fn in cases(one).items():
                baseline.setdefault(k, []).append(timed(fn, 1))
        after = {k: statistics.median(v) for k, v in after.items()}
        baseline = {k: statistics.median(v) for k, v in baseline.items()}
        read_one = timed(lambda: pq.read_table(single), args.repeats)

    print(f"clips manifest: {args.rows:,} rows ({distinct:,} clips, {args.overlap:.0%} rewritten), "
          f"{files_before:,} batches written in {build_s:.1f} s")
    print(f"compaction: {result.merged_files:,} files -> {result.files_after} files in {compact_s:.1f} s "
          f"({args.rows / compact_s:,.0f} rows/s)\n")
    print(f"| query | {files_before:,} batches (s) | compacted, {result.files_after} files (s) | one file (s) "
          "| compacted / one file | batches / compacted |")
    print("|---|---:|---:|---:|---:|---:|")
    for k in before:
        print(f"| {k} | {before[k]:.3f} | {after[k]:.3f} | {baseline[k]:.3f} | {after[k] / baseline[k]:.2f} "
              f"| {before[k] / after[k]:.1f} |")
    print(f"\npyarrow read_table of the one file: {read_one:.3f} s; compacted `latest read` / that: "
          f"{after['latest read'] / read_one:.2f}")


if __name__ == "__main__":
    main()
