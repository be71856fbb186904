"""Deterministic WebDataset tar shards, streamed from disk, rolled by sample count or size.

Why not ``webdataset.TarWriter``/``ShardWriter``: TarWriter can be made reproducible (``mtime=0``,
``user=""``, ``group=""``), but it takes every member as an in-memory ``bytes`` and copies it through
``io.BytesIO``; ShardWriter writes straight to the final file name (a crash leaves a partial ``.tar`` that
readers pick up) and rolls only *after* a shard has passed its size limit. Python's ``tarfile.addfile`` streams
from a file object but in 16 KiB steps and would need a second pass to hash the archive. So this module
builds each header with the standard library (``tarfile.TarInfo.tobuf``, ustar format, so the headers are
exactly what ``tarfile`` would write) and streams member data itself: 1 MiB ``readinto`` chunks that are
hashed (sha256) and written in the same pass while the chunk is still in the CPU cache; headers, in-memory
members and padding are gathered into one write; the files of the next 16 MiB of samples are prefetched
(``POSIX_FADV_WILLNEED``) so disk reads overlap hashing; and every 4 MiB written is handed to the disk at once
(``sync_file_range``) so the fsync before the rename finds little left instead of a whole shard.

bench/bench_shards.py measures it against ``cp`` of the same bytes (docs/BENCHMARKS.md). Tried there and
dropped: copying member data inside the kernel (``copy_file_range``) with the shard hashed by a thread that
reads it back, and a hash thread fed the same buffers. On ext4 the kernel copy costs no less CPU than a
read and a write through a cache-resident buffer (it copies page by page too), and handing work to a hash
thread added more than it saved unless a core was idle; on the shared 2-core machine both were slower.
``workers > 1`` is the way to use idle cores: whole shards in parallel, at no extra CPU per byte.

Reproducibility: members of a sample are written sorted by field name; every header has mtime 0, uid/gid
0, empty user/group names and mode 0o644; the archive ends with two zero blocks padded to the 10 KiB record
size like ``tarfile`` and GNU tar. The same samples in the same order therefore give byte-identical shards
whatever the source files' mtimes, owners or the machine's clock; the only timestamp lives in the manifest.

Shards are written through ``m2ugen_data.atomic.atomic_path`` (hidden temporary name, fsync, rename), so a
killed writer never leaves a visible partial ``.tar``. Shards are planned (rolled) in the caller's thread and
written by a small thread pool when ``workers > 1``: hashing and file I/O release the GIL, and the plan, hence
the bytes, does not depend on the number of workers.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import stat
import sys
import tarfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from m2ugen_data.atomic import atomic_path
from m2ugen_data.errors import M2UGenError

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
# WebDataset splits a member name at the first dot: "<key>.<field>", the field may hold more dots.
FIELD_RE = re.compile(r"^[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}$")
DATASET_RE = re.compile(r"^[a-z0-9_]{1,40}$")
SHARD_INDEX_DIGITS = 6

_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_CHUNK = 1 << 20  # read/hash/write step: stays in the CPU cache between the three
_PREFETCH_BYTES = 16 << 20  # read-ahead window: disk reads overlap hashing and writing
_WRITEBACK_STEP = 4 << 20  # written bytes handed to the disk at a time, so the final fsync has little left


class ShardError(M2UGenError):
    """A sample that cannot be written (unsafe key or field, missing member file, duplicate key)."""


def validate_key(key: object) -> str:
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise ShardError(
            f"invalid sample key {key!r}: expected 1-80 characters from [A-Za-z0-9_-] (no dots: WebDataset "
            "splits member names at the first dot)"
        )
    return key


def validate_field(name: object) -> str:
    if not isinstance(name, str) or not FIELD_RE.fullmatch(name):
        raise ShardError(f"invalid member field {name!r}: expected lower-case extensions such as 'flac', 'input.flac'")
    return name


def validate_dataset(name: object) -> str:
    if not isinstance(name, str) or not DATASET_RE.fullmatch(name):
        raise ShardError(f"invalid dataset name {name!r}: expected [a-z0-9_]")
    return name


def shard_name(dataset: str, index: int) -> str:
    return f"{validate_dataset(dataset)}-{index:0{SHARD_INDEX_DIGITS}d}.tar"


@dataclass(frozen=True)
class Sample:
    """One training sample: a key and its members, each a file on disk (streamed) or bytes (e.g. JSON)."""

    key: str
    members: Mapping[str, Path | bytes]


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    samples: int
    bytes: int
    sha256: str
    first_key: str | None
    last_key: str | None


@dataclass
class _Planned:
    """A sample whose member sizes are known, in the order its members will be written."""

    key: str
    members: list[tuple[str, Path | bytes, int]]

    @property
    def footprint(self) -> int:
        return sum(_BLOCK + _padded(size) for _, _, size in self.members)


def _padded(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


def _archive_size(members_footprint: int) -> int:
    return -(-(members_footprint + 2 * _BLOCK) // _RECORD) * _RECORD


def _plan(sample: Sample) -> _Planned:
    key = validate_key(sample.key)
    if not sample.members:
        raise ShardError(f"sample {key}: no members")
    members = []
    for name in sorted(sample.members):
        value = sample.members[name]
        validate_field(name)
        if len(key) + 1 + len(name) > 100:
            raise ShardError(f"sample {key}: member name {key}.{name} is longer than ustar's 100 characters")
        if isinstance(value, (bytes, bytearray, memoryview)):
            members.append((name, bytes(value), len(value)))
            continue
        path = Path(value)
        try:
            st = path.stat()
        except OSError as e:
            raise ShardError(f"sample {key}: member {name} file {path}: {e.strerror or e}") from e
        if not stat.S_ISREG(st.st_mode):
            raise ShardError(f"sample {key}: member {name} {path} is not a regular file")
        members.append((name, path, st.st_size))
    return _Planned(key, members)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    try:
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except ValueError as e:  # a name over ustar's 100 characters
        raise ShardError(f"member name {name!r} does not fit a ustar header: {e}") from e


def _prefetch(sample: _Planned) -> None:
    if not hasattr(os, "posix_fadvise"):
        return
    for _, value, _ in sample.members:
        if isinstance(value, Path):
            try:
                fd = os.open(value, os.O_RDONLY)
            except OSError:
                continue  # reported when the member is written
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range(2)``, which the ``os`` module does not wrap (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Start writing a range of the file to disk without waiting (a hint: the final fsync is what guarantees
    durability, so a failure here changes nothing). Without it the kernel keeps a whole shard dirty in memory
    and the fsync before the rename waits for all of it; with it the disk works while later members are copied."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)


def _write_tar(target: Path, samples: Sequence[_Planned]) -> ShardInfo:
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    written = flushed = 0
    pending = bytearray()  # headers, in-memory members and padding: one write before the next file's data
    with atomic_path(target) as tmp, open(tmp, "wb", buffering=0) as out:

        def emit(data: bytes | bytearray | memoryview) -> None:
            nonlocal written, flushed
            digest.update(data)
            mv = memoryview(data)
            try:
                while mv:
                    mv = mv[out.write(mv) :]
            except OSError as e:  # raised as ShardError so the read handler below cannot blame the source file
                raise _write_failed(target, e) from e
            written += len(data)
            if written - flushed >= _WRITEBACK_STEP:
                _start_writeback(out.fileno(), flushed, written - flushed)
                flushed = written

        ahead, ahead_bytes, done_bytes = 0, 0, 0
        for sample in samples:
            while ahead < len(samples) and ahead_bytes - done_bytes < _PREFETCH_BYTES:
                _prefetch(samples[ahead])
                ahead_bytes += samples[ahead].footprint
                ahead += 1
            done_bytes += sample.footprint
            for name, value, size in sample.members:
                pending += _header(f"{sample.key}.{name}", size)
                if isinstance(value, bytes):
                    pending += value
                else:
                    emit(pending)
                    pending.clear()
                    copied = 0
                    try:
                        with open(value, "rb", buffering=0) as src:
                            while copied < size and (n := src.readinto(buf)):
                                n = min(n, size - copied)
                                emit(view[:n])
                                copied += n
                    except OSError as e:
                        raise ShardError(f"sample {sample.key}: cannot read {value}: {e.strerror or e}") from e
                    if copied != size:
                        raise ShardError(f"sample {sample.key}: {value} changed size while being written")
                pending += bytes(-size % _BLOCK)
                if len(pending) >= _CHUNK:
                    emit(pending)
                    pending.clear()
        pending += bytes(_archive_size(written + len(pending)) - written - len(pending))
        emit(pending)
    return ShardInfo(
        path=target,
        samples=len(samples),
        bytes=written,
        sha256=digest.hexdigest(),
        first_key=samples[0].key if samples else None,
        last_key=samples[-1].key if samples else None,
    )


def _write_failed(target: Path, e: OSError) -> ShardError:
    return ShardError(f"{target}: cannot write the shard: {e.strerror or e}")


def _write_shard(target: Path, samples: Sequence[_Planned]) -> ShardInfo:
    """``_write_tar``; a failure of the shard file itself (disk full at the fsync, rename) names the shard."""
    try:
        return _write_tar(target, samples)
    except OSError as e:
        raise _write_failed(target, e) from e


@dataclass
class ShardWriter:
    """Roll samples into ``<out_dir>/<dataset>-NNNNNN.tar``: a new shard starts before a sample that would
    take the current one past ``max_samples`` or ``max_bytes`` (a single larger sample gets a shard alone).

    Use as a context manager; ``close()`` returns the shards in order. An exception inside the ``with``
    block abandons the shards still being written (their temporary files are removed).
    """

    out_dir: Path
    dataset: str
    max_samples: int | None = 1000
    max_bytes: int | None = 1 << 30
    workers: int = 1
    start_index: int = 0
    _current: list[_Planned] = field(default_factory=list, init=False)
    _footprint: int = field(default=0, init=False)
    _index: int = field(default=0, init=False)
    _keys: set[str] = field(default_factory=set, init=False)
    _pending: deque[Future[ShardInfo]] = field(default_factory=deque, init=False)
    _done: list[ShardInfo] = field(default_factory=list, init=False)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        validate_dataset(self.dataset)
        if self.max_samples is not None and self.max_samples < 1:
            raise ShardError(f"max_samples must be >= 1, got {self.max_samples}")
        if self.max_bytes is not None and self.max_bytes < _RECORD:
            raise ShardError(f"max_bytes must be >= {_RECORD}, got {self.max_bytes}")
        self.out_dir = Path(self.out_dir)
        self._index = self.start_index
        if self.workers > 1:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="shard-writer")

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def write(self, sample: Sample) -> None:
        planned = _plan(sample)
        if planned.key in self._keys:
            raise ShardError(f"duplicate sample key {planned.key!r} in dataset {self.dataset}")
        self._keys.add(planned.key)
        footprint = planned.footprint
        full_count = self.max_samples is not None and len(self._current) >= self.max_samples
        full_size = self.max_bytes is not None and _archive_size(self._footprint + footprint) > self.max_bytes
        if self._current and (full_count or full_size):
            self._flush()
        self._current.append(planned)
        self._footprint += footprint

    def write_all(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            self.write(sample)

    def close(self) -> list[ShardInfo]:
        if self._current:
            self._flush()
        try:
            while self._pending:
                self._done.append(self._pending.popleft().result())
        finally:
            self._shutdown()
        return list(self._done)

    def _flush(self) -> None:
        target = self.out_dir / shard_name(self.dataset, self._index)
        batch, self._current, self._footprint = self._current, [], 0
        self._index += 1
        if self._pool is None:
            self._done.append(_write_shard(target, batch))
            return
        self._pending.append(self._pool.submit(_write_shard, target, batch))
        while len(self._pending) > self.workers:  # bound memory: at most `workers` shards in flight
            self._done.append(self._pending.popleft().result())

    def _abort(self) -> None:
        for fut in self._pending:
            fut.cancel()
        for fut in self._pending:
            if not fut.cancelled():
                try:
                    fut.result()
                except Exception:  # noqa: BLE001 - the original exception is the one that matters
                    pass
        self._pending.clear()
        self._shutdown()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
