"""Compaction: merge a manifest's many small batches into a few large files, safely for readers and writers.

Why: every task writes its own small batch, so at AudioSet scale a manifest holds ~100k files and every
reader lists and opens them all. ``compact`` merges the small ones (and earlier merged files that are still
small) into parts of at most ``target_rows`` rows, sorted by the manifest key.

Readers are never shown a row twice or not at all (``filesets.py``): the parts are written under hidden
temporary names; a record (``.compactions/<id>.json``) naming the parts and the exact files (name, inode,
size, mtime) they replace is written; then the parts are renamed into place. Readers hide the replaced files
once every part is there. The replaced batches stay on disk for ``grace_s`` seconds (a reader that listed them
a moment ago can still open them) and are deleted by a later compaction, then the record. A batch rewritten
under the same name while we merged is a different file (new inode), so it stays live; a compaction whose
inputs changed before it published gives up and leaves everything as it was.

Rows: every row is kept (the non-latest views keep their history), except exact ties (same key and same
ordering timestamp), of which the one ``latest`` would pick is kept, so ``latest`` is unchanged.

Crashes: a SIGKILL leaves hidden temporaries or a partly published compaction (ignored by readers); the next
run (one per manifest at a time, under a lease in ``claims/leases``) deletes them and starts again.

API for later stages: ``compact(wh, name)`` / ``compact_all(wh)`` return ``CompactResult``s;
``compact_if_needed(wh, threshold_files)`` is what flows call at the end of a run.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.atomic import atomic_path
from m2ugen_data.claim_records import describe
from m2ugen_data.claims import Lease
from m2ugen_data.errors import WarehouseError
from m2ugen_data.filesets import COMPACT_PREFIX, RECORDS_DIR, FileId, FileSet, scan, write_record
from m2ugen_data.schemas import MANIFESTS, SCHEMA_VERSION, get_manifest
from m2ugen_data.warehouse import Warehouse, _source, _to_schema, check_parquet_files, duck_connect, utc_now

# Whole-set manifests: each run *replaces* its batch (pairs of a pool, shards of a dataset, duplicate groups, a
# benchmark's contamination, a dataset's split) and readers rely on
# the replacement; merging the old batch into another file would keep its rows alive. They hold a few files.
NOT_COMPACTED = frozenset({"pairs", "shards", "duplicates", "contamination", "splits"})
DEFAULT_TARGET_ROWS = 250_000  # rows per merged part: a 1M-row manifest becomes 4 files
DEFAULT_GRACE_S = 300.0  # replaced batches stay this long for readers that listed them just before
DEFAULT_THRESHOLD_FILES = 256  # flows compact a manifest once it has this many live files
ROW_GROUP_ROWS = 65_536


@dataclass
class CompactResult:
    manifest: str
    files_before: int = 0
    files_after: int = 0
    merged_files: int = 0
    rows: int = 0
    parts: int = 0
    purged: int = 0  # replaced files deleted (their grace period was over)
    cleaned: int = 0  # temporaries and parts left by an interrupted compaction, deleted
    seconds: float = 0.0
    note: str = ""  # why nothing was merged, when nothing was
    written: list[str] = field(default_factory=list)


def compactable() -> list[str]:
    return [m for m in MANIFESTS if m not in NOT_COMPACTED]


def compact(
    wh: Warehouse, name: str, *, target_rows: int = DEFAULT_TARGET_ROWS, grace_s: float = DEFAULT_GRACE_S,
    min_files: int = 2,
) -> CompactResult:
    """Merge the small live files of manifest ``name``; see the module docstring for the guarantees."""
    t0 = time.monotonic()
    manifest = get_manifest(name)
    result = CompactResult(manifest.name)
    if manifest.name in NOT_COMPACTED:
        result.note = "whole-set manifest (each run replaces its batch): not compacted"
        return result
    if target_rows < 1:
        raise WarehouseError("target_rows must be >= 1")
    directory = wh.manifest_dir(manifest.name)
    lease = Lease(wh.root, f"compact-{manifest.name}")
    holder = lease.acquire()
    if holder is not None:
        result.note = f"another compaction holds it: {describe(holder)} (`m2ugen-data claims list` to see it)"
        return result
    try:
        result.cleaned = _clean_interrupted(directory)
        result.purged = _purge(directory, grace_s)
        fileset = scan(directory)
        result.files_before = len(fileset.live)
        if any(c.damaged for c in fileset.compactions):
            _rebuild(wh, manifest.name, fileset, target_rows, result)
            result.files_after = len(scan(directory).live)
            return result
        inputs = _inputs(directory, fileset.live, target_rows)
        if len(inputs) < max(2, min_files):
            result.files_after, result.note = result.files_before, "nothing to merge"
            return result
        check_parquet_files([p for p, _ in inputs], manifest)
        _merge(wh, manifest.name, inputs, target_rows, result)
        if grace_s <= 0:
            result.purged += _purge(directory, 0.0)
        result.files_after = len(scan(directory).live)
    finally:
        lease.release()
        result.seconds = time.monotonic() - t0
    return result


def compact_all(wh: Warehouse, names: Iterable[str] | None = None, **kwargs: float) -> list[CompactResult]:
    results = [compact(wh, n, **kwargs) for n in (names or compactable())]  # type: ignore[arg-type]
    if any(r.parts or r.purged for r in results):
        with contextlib.suppress(WarehouseError):  # e.g. the catalog open in another process: run `catalog`
            wh.refresh_catalog()
    return results


def compact_if_needed(wh: Warehouse, threshold_files: int = DEFAULT_THRESHOLD_FILES) -> list[CompactResult]:
    """Compact each manifest holding at least ``threshold_files`` live files or a damaged compaction record
    (what flows call last)."""
    due = []
    for name in compactable():
        fileset = scan(wh.manifest_dir(name))
        if len(fileset.live) >= threshold_files or any(c.damaged for c in fileset.compactions):
            due.append(name)
    return compact_all(wh, due) if due else []


def _rebuild(wh: Warehouse, name: str, fileset: FileSet, target_rows: int, result: CompactResult) -> None:
    """After a damaged record (``filesets``): merge every live file, the damaged compaction's parts and any
    batch it merged alike (exact duplicates dropped, as in every compaction), so the new record hides them
    all; then the damaged record can go. With one live file there is nothing to merge: only the record goes."""
    inputs = [(p, FileId.of(p)) for p in fileset.live]
    if len(inputs) >= 2:
        check_parquet_files([p for p, _ in inputs], get_manifest(name))
        _merge(wh, name, inputs, target_rows, result)
    for c in fileset.compactions:
        if c.damaged:
            c.record.unlink(missing_ok=True)
    result.note = "rebuilt after a damaged compaction record"


def _inputs(directory: Path, live: list[Path], target_rows: int) -> list[tuple[Path, FileId]]:
    """Live files below half the target (merged parts hold target/2..target rows), with their identity now
    (before we read them). Parts of a compaction whose record is still there are left alone: merging them
    away would un-hide the files they replace."""
    recorded = {name for c in scan(directory).compactions for name in c.parts}
    out = []
    for p in live:
        if p.name in recorded:
            continue
        try:
            if pq.read_metadata(p).num_rows < target_rows // 2:
                out.append((p, FileId.of(p)))
        except FileNotFoundError:
            continue
    return out


def _merge(wh: Warehouse, name: str, inputs: list[tuple[Path, FileId]], target_rows: int, result: CompactResult) -> None:
    manifest = get_manifest(name)
    directory = wh.manifest_dir(name)
    total = sum(pq.read_metadata(p).num_rows for p, _ in inputs)
    parts = max(1, math.ceil(total / target_rows))
    per_part = math.ceil(total / parts) if total else 0
    cid = f"{utc_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    names = [f"{COMPACT_PREFIX}{cid}-{i:04d}.parquet" for i in range(parts)]
    keys = ", ".join(f'"{k}"' for k in manifest.key)
    order = f'"{manifest.order_by}"'
    # exact ties (same key, same timestamp) keep the row `latest` would pick; everything else is kept, in key order
    sql = (
        f"SELECT * EXCLUDE (filename) FROM {_source([p for p, _ in inputs])} "
        f"QUALIFY row_number() OVER (PARTITION BY {keys}, {order} ORDER BY filename DESC) = 1 "
        f"ORDER BY {keys}, {order}"
    )
    con = duck_connect()
    reader = con.sql(sql).to_arrow_reader(ROW_GROUP_ROWS)
    schema = manifest.schema.with_metadata({
        b"m2ugen.manifest": manifest.name.encode(), b"m2ugen.schema_version": SCHEMA_VERSION.encode(),
        b"m2ugen.compaction": cid.encode(),
    })
    with contextlib.ExitStack() as stack:
        pending: pa.Table | None = None
        for i, part in enumerate(names):
            target = directory / part
            tmp = stack.enter_context(atomic_path(target))
            written = 0
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                while written < per_part or i == parts - 1:
                    if pending is None or pending.num_rows == 0:
                        batch = _next(reader)
                        if batch is None:
                            break
                        pending = _to_schema(manifest, pa.Table.from_batches([batch]))
                    take = pending.num_rows if i == parts - 1 else min(pending.num_rows, per_part - written)
                    writer.write_table(pending.slice(0, take).cast(schema), row_group_size=ROW_GROUP_ROWS)
                    pending = pending.slice(take)
                    written += take
            result.rows += written
            result.written.append(target.name)
        changed = [p.name for p, fid in inputs if not _same(p, fid)]
        if changed:
            raise WarehouseError(
                f"compaction of {name!r} abandoned: {changed[0]} was rewritten while merging; run it again"
            )
        write_record(directory, cid, names, [fid for _, fid in inputs])
        # leaving the stack renames every part into place (readers count the compaction once all are there)
    result.parts = parts
    result.merged_files = len(inputs)


def _next(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def _same(path: Path, fid: FileId) -> bool:
    try:
        return FileId.of(path) == fid
    except FileNotFoundError:
        return False


def _clean_interrupted(directory: Path) -> int:
    """Under the lease: temporaries of killed compactions, and compactions never fully published (their
    visible parts first, then their record: a part without a record would be read as an ordinary file)."""
    if not directory.is_dir():
        return 0
    n = 0
    for tmp in [*directory.glob(f".{COMPACT_PREFIX}*.tmp"), *(directory / RECORDS_DIR).glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)
        n += 1
    for c in scan(directory).compactions:
        if not c.complete:
            for part in c.present:
                part.unlink(missing_ok=True)
                n += 1
            c.record.unlink(missing_ok=True)
    return n


def _purge(directory: Path, grace_s: float) -> int:
    """Delete the files replaced by compactions published more than ``grace_s`` seconds ago, then their
    records (once none of those files is left, the parts are ordinary files)."""
    now = time.time()
    n = 0
    for c in scan(directory).compactions:
        if c.damaged or not c.complete or now - max(p.stat().st_mtime for p in c.present) < grace_s:
            continue
        for p in c.lingering:
            p.unlink(missing_ok=True)
            n += 1
    for c in scan(directory).compactions:  # a damaged record goes only when a rebuild has replaced its parts
        if c.complete and not c.damaged and not c.lingering and now - max(p.stat().st_mtime for p in c.present) >= grace_s:
            c.record.unlink(missing_ok=True)
    return n
