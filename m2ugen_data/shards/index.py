"""The per-dataset sample index of incremental shard writing (``shards/<dataset>/index.parquet``): per sample
key its shard and fingerprint, and in the file's metadata the shards' manifest rows and each shard file's
identity (size, mtime, ctime, inode) when it was recorded.

It is derived state, so it is checked before it is trusted, and before any shard is written: a path that is
not a readable Parquet file, a missing column, a row that is not a shard of the dataset, a key listed twice
or a shard whose listed keys do not add up to its sample count each make the index unusable. Then one warning
line names it, it is removed, and the run is a full write, which rebuilds it from the manifests (same samples,
same order: the same bytes). A shard whose file is missing or whose bytes no longer hash to the recorded
sha256 is named in a warning and rewritten alone (``damaged_shards``). Hashing every shard on every run would
read the whole dataset, so a shard is hashed only when its file's identity differs from the recorded one: any
write through the file system changes the ctime, which no program can set back, and a copied or moved
warehouse is hashed once and then recorded again. Silent decay of the disk under an unchanged ctime is left
to ``shards verify``, which hashes everything.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.atomic import atomic_path
from m2ugen_data.checksums import file_sha256
from m2ugen_data.shards.tar_writer import SHARD_INDEX_DIGITS
from m2ugen_data.warehouse import Warehouse

log = logging.getLogger(__name__)

INDEX_NAME = "index.parquet"
_ROWS_KEY, _FILES_KEY = b"m2ugen.shards", b"m2ugen.shard_files"
_COLUMNS = {"key": pa.string(), "shard": pa.int64(), "fingerprint": pa.string()}
_ROW_TYPES = {"dataset": str, "path": str, "samples": int, "bytes": int, "sha256": str, "first_key": str,
              "last_key": str, "created_at": str, "run_id": str}  # fmt: skip


class BadIndex(ValueError):
    """An index that cannot be used as it is."""


@dataclass
class ShardIndex:
    entries: dict[str, tuple[int, str]]  # key -> (shard number, fingerprint)
    rows: list[dict[str, Any]]  # the manifest rows of the shards, as last written
    files: dict[str, list[int]]  # shard path -> [size, mtime_ns, ctime_ns, inode] when recorded


def shard_number(path: str | Path) -> int:
    return int(PurePosixPath(str(path)).stem.rsplit("-", 1)[1])


def _identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def load_index(directory: Path, dataset: str) -> ShardIndex | None:
    """The dataset's index, or None (a full write) when there is none or it is unusable (see the module
    docstring; an unusable one is reported and removed, so the full write can put a new one in its place)."""
    path = directory / INDEX_NAME
    if not path.exists() and not path.is_symlink():
        return None  # first write, or shards from before the index existed
    try:
        return _read(path, dataset)
    except BadIndex as e:
        log.warning("shard index %s: %s; rebuilding it with a full write", path, e)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return None


def _read(path: Path, dataset: str) -> ShardIndex:
    if path.is_symlink() or not path.is_file():
        raise BadIndex("not a regular file")
    try:
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        rows = json.loads(meta[_ROWS_KEY])
        files = json.loads(meta.get(_FILES_KEY, b"{}"))
    except KeyError:
        raise BadIndex("no shard rows in its metadata") from None
    except (OSError, ValueError, pa.ArrowException) as e:
        raise BadIndex(f"unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    for name, kind in _COLUMNS.items():
        if name not in table.column_names or table.schema.field(name).type != kind:
            raise BadIndex(f"no {kind} column {name!r}")
    if not isinstance(files, dict):
        raise BadIndex("shard file identities are not a mapping")
    numbers = {shard_number(r["path"]): r for r in _checked_rows(rows, dataset)}
    keys, shards, fps = (table.column(c).to_pylist() for c in _COLUMNS)
    entries = dict(zip(keys, zip(shards, fps)))
    if len(entries) != len(keys) or None in entries:
        raise BadIndex("a sample key listed twice or empty")
    counts: dict[int, int] = {}
    for shard in shards:
        if shard not in numbers:
            raise BadIndex(f"a key filed under shard {shard}, which it does not list")
        counts[shard] = counts.get(shard, 0) + 1
    for number, row in numbers.items():
        if counts.get(number, 0) != row["samples"]:
            raise BadIndex(f"{counts.get(number, 0)} keys of {row['path']}, which holds {row['samples']} samples")
    for row in numbers.values():
        row["created_at"] = datetime.fromisoformat(row["created_at"])
    return ShardIndex(entries, list(numbers.values()), files)


def _checked_rows(rows: object, dataset: str) -> list[dict[str, Any]]:
    """The shard rows of the index's metadata, each a shard file of ``dataset`` named as the writer names them."""
    name = re.compile(rf"^shards/{re.escape(dataset)}/{re.escape(dataset)}-\d{{{SHARD_INDEX_DIGITS}}}\.tar$")
    if not isinstance(rows, list):
        raise BadIndex("shard rows are not a list")
    paths = set()
    for row in rows:
        if not isinstance(row, dict) or any(not isinstance(row.get(k), t) for k, t in _ROW_TYPES.items()):
            raise BadIndex("a shard row lacks a field or has one of the wrong type")
        if row["dataset"] != dataset or not name.fullmatch(row["path"]) or row["path"] in paths:
            raise BadIndex(f"shard row {row['path']!r} is not a shard of {dataset} listed once")
        paths.add(row["path"])
        try:
            datetime.fromisoformat(row["created_at"])
        except ValueError:
            raise BadIndex(f"shard row {row['path']!r}: created_at is not a time") from None
    return rows


def damaged_shards(wh: Warehouse, index: ShardIndex) -> set[int]:
    """Numbers of the index's shards whose file is missing or no longer what was written (size, or sha256
    where the file's identity changed), each named in a warning line."""
    damaged = set()
    for row in index.rows:
        path = wh.root / row["path"]
        why = None
        if not path.is_file():
            why = "missing"
        elif path.stat().st_size != row["bytes"]:
            why = f"{path.stat().st_size} bytes, {row['bytes']} written"
        elif _identity(path) != index.files.get(row["path"]) and file_sha256(path) != row["sha256"]:
            why = "content differs from the sha256 written"
        if why is not None:
            log.warning("shard %s: %s; rewriting it", path, why)
            damaged.add(shard_number(row["path"]))
    return damaged


def save_index(wh: Warehouse, directory: Path, entries: dict[str, tuple[int, str]], rows: list[dict[str, Any]]) -> None:
    """Written before the manifest: a run killed after this converges on the next run (``build``'s docstring)."""
    meta = [{**r, "created_at": r["created_at"].isoformat()} for r in rows]
    files = {r["path"]: _identity(wh.root / r["path"]) for r in rows}
    table = pa.table(
        {
            "key": pa.array(list(entries), pa.string()),
            "shard": pa.array([v[0] for v in entries.values()], pa.int64()),
            "fingerprint": pa.array([v[1] for v in entries.values()], pa.string()),
        }
    ).replace_schema_metadata({_ROWS_KEY: json.dumps(meta).encode(), _FILES_KEY: json.dumps(files).encode()})
    with atomic_path(directory / INDEX_NAME) as tmp:
        pq.write_table(table, tmp)
