"""Shard writing vs ``cp`` of the same bytes on the same disk, and shard reading through WebDataset.

The ``cp`` baseline copies the finished shards themselves: exactly the same bytes in the same number of
files (the writer additionally opens one source file per member). Writing is measured twice, because the
two situations have different bottlenecks:
- warm: sources in the page cache, no fsync for cp. ``cp`` (coreutils 9 uses copy_file_range, an in-kernel
  copy) is then a memory copy, while the shard writer must also sha256 every byte for the manifest and
  fsync each shard before its rename; this ratio is bounded by the hash speed of one core.
- cold + durable: sources (FLAC files for the writer, shards for cp) evicted from the page cache first
  (``POSIX_FADV_DONTNEED`` on our own files only) and every output fsynced, as the writer does (an atomic
  rename needs it). This is the real pipeline case:
  shards are written from freshly downloaded media that must survive a crash.
Reading: samples/s through ``wds.WebDataset`` with FLAC decode (soundfile) and JSON parse, against loading
the same FLAC files one by one from disk.

    .venv/bin/python bench/bench_shards.py [--clips 120] [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import webdataset as wds

from m2ugen_data.audio_io import write_flac
from m2ugen_data.shards import Sample, ShardWriter

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


def run_cp(sources: list[Path], dst: Path, durable: bool) -> float:
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    t = time.perf_counter()
    subprocess.run(["cp", "--", *map(str, sources), str(dst)], check=True)
    if durable:
        for p in dst.iterdir():
            fd = os.open(p, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        fd = os.open(dst, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - t


def run_shards(sources: list[Path], dst: Path, workers: int) -> float:
    shutil.rmtree(dst, ignore_errors=True)
    samples = [Sample(p.stem, {"flac": p, "json": json.dumps({"key": p.stem}).encode()}) for p in sources]
    t = time.perf_counter()
    with ShardWriter(dst, "bench", max_samples=None, max_bytes=16 << 20, workers=workers) as w:
        w.write_all(samples)
    w.close()
    return time.perf_counter() - t


def hash_only(shards: list[Path]) -> float:
    """The floor the warm case cannot beat: sha256 of the same bytes, already in memory."""
    data = [p.read_bytes() for p in shards]
    t = time.perf_counter()
    for d in data:
        hashlib.sha256(d).digest()
    return time.perf_counter() - t


def read_wds(shards: list[Path]) -> tuple[float, int]:
    t = time.perf_counter()
    n = 0
    for s in wds.WebDataset([str(p) for p in shards], shardshuffle=False):
        y, _ = sf.read(io.BytesIO(s["flac"]), dtype="float32")
        json.loads(s["json"])
        n += 1
    return time.perf_counter() - t, n


def read_files(sources: list[Path]) -> tuple[float, int]:
    t = time.perf_counter()
    for p in sources:
        y, _ = sf.read(p, dtype="float32")
    return time.perf_counter() - t, len(sources)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=120)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="Scratch directory on the disk to test (default: /tmp).")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_shards_", dir=args.dir))
    try:
        sources = make_sources(scratch / "src", args.clips, args.seconds)
        total = sum(p.stat().st_size for p in sources)
        print(f"{len(sources)} FLAC clips of {args.seconds:g} s, {total / 1e6:.1f} MB, scratch {scratch}")
        run_shards(sources, scratch / "sh", 1)
        shards: list[Path] = []
        rows = []
        for mode in ("warm", "cold+durable"):
            cold = mode != "warm"
            cases = {
                "cp": lambda: run_cp(shards, scratch / "cp", durable=cold),
                "shards (1 thread)": lambda: run_shards(sources, scratch / "sh", 1),
                "shards (2 threads)": lambda: run_shards(sources, scratch / "sh", 2),
            }
            if not cold:
                cases["sha256 only, in memory"] = lambda: hash_only(shards)
            times: dict[str, list[float]] = {k: [] for k in cases}
            for _ in range(args.repeats):
                for name, fn in cases.items():  # interleaved so background load hits every case alike
                    shards = sorted((scratch / "sh").glob("*.tar"))
                    if name.startswith("sha256"):
                        pass
                    elif cold:
                        evict(shards if name == "cp" else sources)
                    else:
                        run_cp(shards if name == "cp" else sources, scratch / "warm", durable=False)
                    times[name].append(fn())
            nbytes = sum(p.stat().st_size for p in shards)
            base = nbytes / 1e6 / statistics.median(times["cp"])
            for name, ts in times.items():
                mbs = nbytes / 1e6 / statistics.median(ts)
                rows.append((f"write {mode}", name, f"{mbs:,.0f} MB/s", f"{mbs / base:.2f}"))
        shards = sorted((scratch / "sh").glob("*.tar"))
        for label, fn, base_fn in (("read warm", lambda: read_wds(shards), lambda: read_files(sources)),):
            wt = [fn() for _ in range(args.repeats)]
            ft = [base_fn() for _ in range(args.repeats)]
            w_rate = wt[0][1] / statistics.median(t for t, _ in wt)
            f_rate = ft[0][1] / statistics.median(t for t, _ in ft)
            rows.append((label, "files + soundfile", f"{f_rate:,.0f} samples/s", "1.00"))
            rows.append((label, "wds + soundfile + json", f"{w_rate:,.0f} samples/s", f"{w_rate / f_rate:.2f}"))
        width = [max(len(r[i]) for r in rows) for i in range(4)]
        head = ("case", "variant", "throughput (median)", "ratio")
        width = [max(w, len(h)) for w, h in zip(width, head)]
        print(" | ".join(h.ljust(w) for h, w in zip(head, width)))
        print("-|-".join("-" * w for w in width))
        for r in rows:
            print(" | ".join(c.ljust(w) for c, w in zip(r, width)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
