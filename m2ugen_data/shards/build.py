"""Write a dataset's shards into the warehouse and record them in the ``shards`` manifest.

Two modes. A **full** build writes the complete shard set from the samples in key order (re-running with
the same samples gives byte-identical shards). An **incremental** build (``incremental=True``; the default
of ``build_dataset_shards`` and ``m2ugen-data shards write``) keeps every existing shard byte-identical
unless one of its samples changed or disappeared, and appends the samples it has not shard yet as new
shards after the last index. What is where lives in ``shards/<dataset>/index.parquet``: per sample key its
shard and a fingerprint (per member: the bytes' sha256, or a file's path, size and mtime), and the shard
rows. The rule for a sample whose fingerprint changed (re-captioned, re-downloaded): the shard that holds it
is rewritten in place (same name, same keys, the new content); a shard that lost samples is rewritten
without them, and removed when empty. A new sample is never put into an old shard, so readers that cached
old shards by sha256 re-read only what the manifest's ``run_id`` says this run wrote. No index (shards from
before it existed) means a full build; an unusable index (``index.py``: checked before any shard is written)
is reported and rebuilt by a full build, and a shard whose file is missing or damaged is rewritten alone.

Order of operations keeps readers consistent: (1) new shards are written under temporary names and renamed
into place, (2) the ``shards`` manifest batch named after the dataset is replaced in one atomic write, (3) only
then are shard files of that dataset that the new manifest no longer lists deleted. A run killed before (2)
leaves the old manifest and possibly some already-replaced shard files (``verify_shards`` reports them); the
next run rewrites the same names with the same bytes and converges. One writer per dataset at a time: an
exclusive ``flock`` on ``shards/<dataset>/.lock`` (released by the kernel if the process dies) guards the
directory, which also makes it safe to delete temporary files a killed writer left behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any


from m2ugen_data.errors import WarehouseError
from m2ugen_data import defaults
from m2ugen_data.shards.assemble import iter_dataset_samples
from m2ugen_data.shards.index import INDEX_NAME, ShardIndex, damaged_shards, load_index, save_index, shard_number
from m2ugen_data.shards.tar_writer import (
    SHARD_INDEX_DIGITS,
    Sample,
    ShardError,
    ShardInfo,
    ShardWriter,
    validate_dataset,
)
from m2ugen_data.warehouse import Warehouse, utc_now

DEFAULT_MAX_SAMPLES = defaults.SHARD_MAX_SAMPLES
DEFAULT_MAX_BYTES = defaults.SHARD_MAX_BYTES


def shard_dir(wh: Warehouse, dataset: str) -> Path:
    return wh.root / "shards" / validate_dataset(dataset)


@contextmanager
def _dataset_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseError(f"another process is writing shards in {directory}") from None
        yield
    finally:
        os.close(fd)


def shard_files(directory: Path, dataset: str) -> list[Path]:
    pattern = re.compile(rf"^{re.escape(dataset)}-\d{{{SHARD_INDEX_DIGITS}}}\.tar$")
    return sorted(p for p in directory.iterdir() if pattern.fullmatch(p.name))


def _remove_leftover_temps(directory: Path, dataset: str) -> None:
    """Called under the dataset lock, so every shard or index temporary left here is a dead writer's
    (``atomic.temp_path_for`` names: ``.<name>.<host>~<pid>~<hex>.tmp``)."""
    names = rf"{re.escape(dataset)}-\d{{{SHARD_INDEX_DIGITS}}}\.tar|{re.escape(INDEX_NAME)}"
    pattern = re.compile(rf"^\.({names})\.[^/]+\.tmp$")
    for p in directory.iterdir():
        if pattern.fullmatch(p.name):
            p.unlink(missing_ok=True)


def write_dataset_shards(
    wh: Warehouse,
    dataset: str,
    samples: Iterable[Sample] | Callable[[], Iterable[Sample]],
    *,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    workers: int = defaults.SHARD_WORKERS,
    on_sample: Callable[[Sample], None] | None = None,
    incremental: bool = False,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Write ``samples`` (in the order given) as the dataset's shard set; return the manifest rows.

    Full (default): re-running with the same samples rewrites byte-identical shards under the same names;
    shards the new run no longer produces are removed after the manifest stops listing them. Incremental:
    see the module docstring; ``samples`` may then be a callable returning a fresh iterator, called a second
    time only when a shard must be rewritten (else the samples are held in memory for that second look).
    The rows of the shards this call wrote carry ``run_id`` (default: a new one).
    """
    directory = shard_dir(wh, dataset)
    run_id = run_id or new_run_id()
    with _dataset_lock(directory):
        _remove_leftover_temps(directory, dataset)
        limits = {"max_samples": max_samples, "max_bytes": max_bytes, "workers": workers}
        index = load_index(directory, dataset)  # checked (and an unusable one removed) before any tar is written
        if index is None or not incremental:
            source = samples() if callable(samples) else samples
            fingerprints: dict[str, str] = {}

            def remember(sample: Sample) -> None:
                fingerprints[sample.key] = sample_fingerprint(sample, wh.root)
                if on_sample is not None:
                    on_sample(sample)

            infos = _write_run(directory, dataset, source, 0, limits, remember)
            created = utc_now()
            rows = [_row(wh, dataset, info, created, run_id) for info in infos]
            entries = _entries(infos, fingerprints)
        else:
            rows, entries = _write_changes(wh, directory, dataset, samples, index, limits, on_sample, run_id)
        save_index(wh, directory, entries, rows)
        wh.write_batch("shards", rows, batch_id=f"shards-{dataset}")
        keep = {PurePosixPath(r["path"]).name for r in rows}
        for stale in shard_files(directory, dataset):
            if stale.name not in keep:
                stale.unlink()
    return rows


def new_run_id() -> str:
    """UTC time and a random suffix: sorts by time, unique across machines."""
    return f"{utc_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def sample_fingerprint(sample: Sample, root: Path | None = None) -> str:
    """What identifies a sample's content without reading its media: per member (sorted by name) the sha256
    of in-memory bytes, or a file's path, size and modification time (warehouse media are replaced by
    atomic renames, so new content means a new mtime). A path under ``root`` (the warehouse) counts relative
    to it, so a copied or moved warehouse keeps its fingerprints; without ``root``, the absolute path: the
    fingerprints of indexes written before they were relative (``_unchanged``)."""
    h = hashlib.sha256()
    for name in sorted(sample.members):
        value = sample.members[name]
        h.update(name.encode() + b"\0")
        if isinstance(value, bytes):
            h.update(b"b" + hashlib.sha256(value).digest())
        else:
            try:
                st = os.stat(value)
            except OSError as e:
                raise ShardError(f"{value}: member {name!r} of sample {sample.key!r}: {e.strerror}") from e
            where = Path(value)
            if root is not None and where.is_relative_to(root):
                where = PurePosixPath(where.relative_to(root).as_posix())
            h.update(f"f{where}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _unchanged(sample: Sample, recorded: str, fingerprint: str) -> bool:
    """Whether ``sample`` is the one ``recorded`` fingerprints, in today's form or the older absolute one."""
    return recorded == fingerprint or recorded == sample_fingerprint(sample)


def _write_run(
    directory: Path, dataset: str, samples: Iterable[Sample], start: int, limits: dict[str, Any],
    on_sample: Callable[[Sample], None] | None,
) -> list[ShardInfo]:  # fmt: skip
    with ShardWriter(directory, dataset, start_index=start, **limits) as w:
        for sample in samples:
            w.write(sample)
            if on_sample is not None:
                on_sample(sample)
    return w.close()


def _row(wh: Warehouse, dataset: str, info: ShardInfo, created: Any, run_id: str) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "path": info.path.relative_to(wh.root).as_posix(),
        "samples": info.samples,
        "bytes": info.bytes,
        "sha256": info.sha256,
        "first_key": info.first_key,
        "last_key": info.last_key,
        "created_at": created,
        "run_id": run_id,
    }


def _entries(infos: list[ShardInfo], fingerprints: dict[str, str]) -> dict[str, tuple[int, str]]:
    """key -> (shard number, fingerprint) of the samples of ``infos``, which hold them in the order they
    were given (``fingerprints``' insertion order), each shard a contiguous run."""
    keys = iter(fingerprints)
    out: dict[str, tuple[int, str]] = {}
    for info in infos:
        number = shard_number(info.path)
        for _ in range(info.samples):
            key = next(keys)
            out[key] = (number, fingerprints[key])
    return out


def _write_changes(
    wh: Warehouse, directory: Path, dataset: str, samples: Iterable[Sample] | Callable[[], Iterable[Sample]],
    index: ShardIndex, limits: dict[str, Any], on_sample: Callable[[Sample], None] | None, run_id: str,
) -> tuple[list[dict[str, Any]], dict[str, tuple[int, str]]]:  # fmt: skip
    """The incremental build: (manifest rows, index entries) after appending new samples and rewriting the
    shards whose samples changed or went away."""
    replay = samples if callable(samples) else (lambda held=list(samples): held)
    fresh: list[Sample] = []
    fingerprints: dict[str, str] = {}
    dirty = damaged_shards(wh, index)
    for sample in replay():
        fp = sample_fingerprint(sample, wh.root)
        if sample.key in fingerprints:
            raise ShardError(f"duplicate sample key {sample.key!r} in dataset {dataset}")
        fingerprints[sample.key] = fp
        old = index.entries.get(sample.key)
        if old is None:
            fresh.append(sample)
        elif not _unchanged(sample, old[1], fp):
            dirty.add(old[0])
        if on_sample is not None:
            on_sample(sample)
    dirty |= {shard for key, (shard, _) in index.entries.items() if key not in fingerprints}
    created = utc_now()
    entries = {k: (v[0], fingerprints[k]) for k, v in index.entries.items() if k in fingerprints and v[0] not in dirty}
    rows = {shard_number(r["path"]): r for r in index.rows if shard_number(r["path"]) not in dirty}
    if dirty:  # a second look at the samples, keeping only those of the shards to rewrite
        by_shard: dict[int, list[Sample]] = {n: [] for n in dirty}
        for sample in replay():
            old = index.entries.get(sample.key)
            if old is not None and old[0] in dirty and sample.key in fingerprints:
                by_shard[old[0]].append(sample)
        whole = {**limits, "max_samples": None, "max_bytes": None}  # a rewritten shard keeps its samples together
        for number, members in sorted(by_shard.items()):
            for info in _write_run(directory, dataset, members, number, whole, None):
                rows[number] = _row(wh, dataset, info, created, run_id)
                entries.update({s.key: (number, fingerprints[s.key]) for s in members})
    start = max([shard_number(r["path"]) for r in index.rows] + [-1]) + 1
    infos = _write_run(directory, dataset, fresh, start, limits, None)
    for info in infos:
        rows[shard_number(info.path)] = _row(wh, dataset, info, created, run_id)
    entries.update(_entries(infos, {s.key: fingerprints[s.key] for s in fresh}))
    return [rows[n] for n in sorted(rows)], entries


@dataclass
class ShardBuild:
    dataset: str
    shards: list[dict[str, Any]]
    skipped: Counter[str] = field(default_factory=Counter)
    run_id: str | None = None

    @property
    def written(self) -> list[dict[str, Any]]:
        """The shards this build wrote (the others were kept byte-identical)."""
        return [r for r in self.shards if r["run_id"] == self.run_id]

    @property
    def samples(self) -> int:
        return sum(r["samples"] for r in self.shards)

    @property
    def bytes(self) -> int:
        return sum(r["bytes"] for r in self.shards)


def build_dataset_shards(
    wh: Warehouse,
    dataset: str,
    *,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    workers: int = defaults.SHARD_WORKERS,
    on_sample: Callable[[Sample], None] | None = None,
    full: bool = False,
    **source_options: Any,
) -> ShardBuild:
    """Assemble the dataset's samples from the manifests and write its shards (what flows and the CLI call):
    incremental (new samples appended as new shards, unchanged shards untouched) unless ``full``."""
    skipped: Counter[str] = Counter()
    passes = 0

    def samples() -> Iterator[Sample]:  # skips are counted on the first pass only
        nonlocal passes
        passes += 1
        return iter_dataset_samples(wh, dataset, skips=skipped if passes == 1 else Counter(), **source_options)

    run_id = new_run_id()
    rows = write_dataset_shards(
        wh, dataset, samples, max_samples=max_samples, max_bytes=max_bytes, workers=workers, on_sample=on_sample,
        incremental=not full, run_id=run_id,
    )  # fmt: skip
    return ShardBuild(dataset, rows, skipped, run_id)
