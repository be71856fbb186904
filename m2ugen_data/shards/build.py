"""Write a dataset's shards into the warehouse and record them in the ``shards`` manifest.

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
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2ugen_data.errors import WarehouseError
from m2ugen_data.shards.assemble import iter_dataset_samples
from m2ugen_data.shards.tar_writer import SHARD_INDEX_DIGITS, Sample, ShardWriter, validate_dataset
from m2ugen_data.warehouse import Warehouse, utc_now

DEFAULT_MAX_SAMPLES = 1000
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB: large enough for streaming throughput, small enough to shuffle


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
    pattern = re.compile(rf"^\.{re.escape(dataset)}-\d{{{SHARD_INDEX_DIGITS}}}\.tar\.[0-9a-f]+\.tmp$")
    for p in directory.iterdir():
        if pattern.fullmatch(p.name):
            p.unlink(missing_ok=True)


def write_dataset_shards(
    wh: Warehouse,
    dataset: str,
    samples: Iterable[Sample],
    *,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    workers: int = 1,
    on_sample: Callable[[Sample], None] | None = None,
) -> list[dict[str, Any]]:
    """Write ``samples`` (in the order given) as the dataset's complete shard set; return the manifest rows.

    Re-running with the same samples rewrites byte-identical shards under the same names; shards the new run
    no longer produces are removed after the manifest stops listing them.
    """
    directory = shard_dir(wh, dataset)
    with _dataset_lock(directory):
        _remove_leftover_temps(directory, dataset)
        with ShardWriter(directory, dataset, max_samples=max_samples, max_bytes=max_bytes, workers=workers) as w:
            for sample in samples:
                w.write(sample)
                if on_sample is not None:
                    on_sample(sample)
        infos = w.close()
        created = utc_now()
        rows = [
            {
                "dataset": dataset,
                "path": info.path.relative_to(wh.root).as_posix(),
                "samples": info.samples,
                "bytes": info.bytes,
                "sha256": info.sha256,
                "first_key": info.first_key,
                "last_key": info.last_key,
                "created_at": created,
            }
            for info in infos
        ]
        wh.write_batch("shards", rows, batch_id=f"shards-{dataset}")
        keep = {info.path.name for info in infos}
        for stale in shard_files(directory, dataset):
            if stale.name not in keep:
                stale.unlink()
    return rows


@dataclass
class ShardBuild:
    dataset: str
    shards: list[dict[str, Any]]
    skipped: Counter[str] = field(default_factory=Counter)

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
    workers: int = 1,
    on_sample: Callable[[Sample], None] | None = None,
    **source_options: Any,
) -> ShardBuild:
    """Assemble the dataset's samples from the manifests and write its shards (what flows and the CLI call)."""
    skipped: Counter[str] = Counter()
    samples = iter_dataset_samples(wh, dataset, skips=skipped, **source_options)
    rows = write_dataset_shards(
        wh, dataset, samples, max_samples=max_samples, max_bytes=max_bytes, workers=workers, on_sample=on_sample
    )
    return ShardBuild(dataset, rows, skipped)
