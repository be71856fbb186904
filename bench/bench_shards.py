"""Shard writing vs ``cp`` of the same bytes on the same disk, and shard reading through WebDataset.

The ``cp`` baseline copies the finished shards themselves: exactly the same bytes in the same number of
files (the writer additionally opens one source file per member and sha256-hashes every byte for the
manifest). coreutils 9 ``cp`` copies with ``copy_file_range``, inside the kernel; the writer reads, hashes
and writes through a 1 MiB buffer (on ext4 the kernel copy was measured no cheaper, see tar_writer.py).
Writing is measured in three situations, each comparing like with like:
- warm, no fsync: sources in the page cache and no fsync on either side (the writer's ``os.fsync`` is
  patched out for this case only). Pure CPU work: a page-cache copy for both, plus sha256 for the writer,
  which is then the ceiling (one stream hashes on one core).
- warm, durable: sources in the page cache, every output fsynced (``cp`` then ``fsync`` of each copy and of
  the directory, as the writer's atomic rename does).
- cold, durable: the same with the sources (FLAC files for the writer, shards for ``cp``) evicted from the
  page cache first (``POSIX_FADV_DONTNEED`` on our own files only): freshly downloaded media on disk.
Before every timed case the previous outputs are removed and ``sync`` is called, so no case pays for another's
writeback. Cases are interleaved within each repeat (background load hits all alike); medians are reported,
with the CPU time (this process and its children) per GB as a view that depends less on the machine's load.
``--against-rev REV`` adds the writer as it was at git revision REV (loaded with ``git show``), measured in
the same run, for before/after comparisons.
Reading: samples/s through ``wds.WebDataset`` with FLAC decode (soundfile) and JSON parse, against loading
the same FLAC files one by one from disk.

    .venv/bin/python bench/bench_shards.py [--clips 200] [--seconds 10] [--repeats 5] [--shard-mib 16]
        [--against-rev REV]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import webdataset as wds

from m2ugen_data.audio_io import write_flac
from m2ugen_data.shards import Sample, ShardWriter
from at_revision import module_at

SR = 44100


def make_sources(root: Path, clips: int, seconds: float) -> list[Path]:
    """Noisy chords: FLAC barely compresses them, like real music (~0.7-0.9 of raw PCM)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(SR * seconds)) / SR
    paths = []
    for i in range(clips):
        y = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, 4)) * 0.1 + rng.normal(0, 0.1, t.size)
        paths.append(write_flac(root / f"clip{i:05d}.flac", y, SR))
    return paths


def evict(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.read(1 << 20):
                pass


def fsync_tree(directory: Path) -> None:
    for p in directory.iterdir():
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    fd = os.open(directory, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


@contextlib.contextmanager
def fsync_disabled() -> Iterator[None]:
    """For the no-fsync case only: the writer's fsyncs (its own and ``atomic_path``'s) become no-ops."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def run_cp(shards: list[Path], dst: Path, durable: bool) -> float:
    t = time.perf_counter()
    subprocess.run(["cp", "--", *map(str, shards), str(dst)], check=True)
    if durable:
        fsync_tree(dst)
    return time.perf_counter() - t


def run_shards(writer: type, sources: list[Path], dst: Path, workers: int, durable: bool, shard_bytes: int) -> float:
    samples = [Sample(p.stem, {"flac": p, "json": json.dumps({"key": p.stem}).encode()}) for p in sources]
    with contextlib.nullcontext() if durable else fsync_disabled():
        t = time.perf_counter()
        with writer(dst, "bench", max_samples=None, max_bytes=shard_bytes, workers=workers) as w:
            w.write_all(samples)
        w.close()
        return time.perf_counter() - t


def writer_at(rev: str, scratch: Path) -> type:
    """``ShardWriter`` as it was at git revision ``rev`` (the before of a before/after comparison)."""
    return module_at(rev, "m2ugen_data/shards/tar_writer.py", scratch).ShardWriter


def measured(fn: Callable[..., float], *args: object) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children): a second, load-independent view."""
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    wall = fn(*args)
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before))
    return wall, cpu


def hash_only(data: list[bytes]) -> float:
    """The ceiling of the warm no-fsync case: sha256 of the same bytes, already in memory, on one core."""
    t = time.perf_counter()
    for d in data:
        hashlib.sha256(d).digest()
    return time.perf_counter() - t


def read_wds(shards: list[Path]) -> tuple[float, int]:
    t = time.perf_counter()
    n = 0
    for s in wds.WebDataset([str(p) for p in shards], shardshuffle=False):
        sf.read(io.BytesIO(s["flac"]), dtype="float32")
        json.loads(s["json"])
        n += 1
    return time.perf_counter() - t, n


def read_files(sources: list[Path]) -> tuple[float, int]:
    t = time.perf_counter()
    for p in sources:
        sf.read(p, dtype="float32")
    return time.perf_counter() - t, len(sources)


MODES = {  # name: (sources cold, outputs fsynced)
    "warm, no fsync": (False, False),
    "warm, durable": (False, True),
    "cold, durable": (True, True),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="Scratch directory on the disk to test (default: /tmp).")
    ap.add_argument("--shard-mib", type=int, default=16, help="Shard size (the pipeline's default is 1024).")
    ap.add_argument("--against-rev", default=None, help="Also time the writer of this git revision (before/after).")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_shards_", dir=args.dir))
    try:
        sources = make_sources(scratch / "src", args.clips, args.seconds)
        total = sum(p.stat().st_size for p in sources)
        print(f"{len(sources)} FLAC clips of {args.seconds:g} s, {total / 1e6:.1f} MB, scratch {scratch}, "
              f"load average {os.getloadavg()[0]:.1f}")
        out = scratch / "out"
        size = args.shard_mib << 20
        run_shards(ShardWriter, sources, scratch / "sh", 1, True, size)
        shards = sorted((scratch / "sh").glob("*.tar"))
        nbytes = sum(p.stat().st_size for p in shards)
        versions = {"": ShardWriter}
        if args.against_rev:
            versions[f" @{args.against_rev}"] = writer_at(args.against_rev, scratch)
        writers: dict[str, Callable[[bool], float]] = {
            f"shards{label}, {n} thread{'s' * (n > 1)}": functools.partial(run_shards, cls, sources, out, n, shard_bytes=size)
            for label, cls in versions.items()
            for n in (1, 2)
        }
        rows = []
        for mode, (cold, durable) in MODES.items():
            cases = {"cp": functools.partial(run_cp, shards, out), **writers}
            runs: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
            for _ in range(args.repeats):
                for name, fn in cases.items():  # interleaved so background load hits every case alike
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    inputs = shards if name == "cp" else sources
                    evict(inputs) if cold else warm(inputs)
                    os.sync()
                    runs[name].append(measured(fn, durable))
            if mode == "warm, no fsync":
                data = [p.read_bytes() for p in shards]
                runs["sha256 alone, in memory"] = [measured(hash_only, data) for _ in range(args.repeats)]
                del data
            base = statistics.median(wall for wall, _ in runs["cp"])
            for name, rs in runs.items():
                wall = statistics.median(w for w, _ in rs)
                cpu = statistics.median(c for _, c in rs)
                rows.append((f"write, {mode}", name, f"{nbytes / 1e6 / wall:,.0f} MB/s", f"{base / wall:.2f}",
                             f"{cpu / (nbytes / 1e9):.2f}"))
        for label, fn, base_fn in (("read, warm", lambda: read_wds(shards), lambda: read_files(sources)),):
            wt = [fn() for _ in range(args.repeats)]
            ft = [base_fn() for _ in range(args.repeats)]
            w_rate = wt[0][1] / statistics.median(t for t, _ in wt)
            f_rate = ft[0][1] / statistics.median(t for t, _ in ft)
            rows.append((label, "files + soundfile", f"{f_rate:,.0f} samples/s", "1.00", ""))
            rows.append((label, "wds + soundfile + json", f"{w_rate:,.0f} samples/s", f"{w_rate / f_rate:.2f}", ""))
        head = ("case", "variant", "throughput (median)", "ratio to cp / files", "CPU s per GB")
        width = [max(len(r[i]) for r in [*rows, head]) for i in range(len(head))]
        print(f"{nbytes / 1e6:.1f} MB of shards; load average at the end {os.getloadavg()[0]:.1f}")
        print(" | ".join(h.ljust(w) for h, w in zip(head, width)))
        print("-|-".join("-" * w for w in width))
        for r in rows:
            print(" | ".join(c.ljust(w) for c, w in zip(r, width)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
