"""The tar writer's byte format is pinned, its checksum is the file's, and it hands written ranges to the disk."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

from m2ugen_data.shards import Sample, ShardWriter, tar_writer

# Member sizes around the tar block (512), the record (10240) and the writer's 1 MiB chunk.
SIZES = [0, 1, 511, 512, 513, 10239, 10240, 10241, (1 << 20) + 3, 3 * (1 << 20) - 1, 70000]
# sha256 of each shard of the fixture below as written by the writer of commit 3c18270 (before the
# writeback and write-coalescing changes): the format must not drift, or existing shards stop verifying.
PINNED = [
    ("fix-000000.tar", 4, 20480, "c0c0c5f2bf1d7a576f00fd2c4ae63e698f044ccf54cf8cd42eac4232c7e04994"),
    ("fix-000001.tar", 4, 81920, "c53a4eb5dfd9d028102e3ef000b2dee05607694929f5f31c8566c9c28be31314"),
    ("fix-000002.tar", 3, 8540160, "40dc49ff6ecab2f930d73319afb3376282dc47fd34486b9b2d9fbdb66c62450d"),
]


def _content(i: int, n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{i}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def _fixture_samples(root: Path) -> list[Sample]:
    samples = []
    for i, n in enumerate(SIZES):
        path = root / f"m{i}.bin"
        path.write_bytes(_content(i, n))
        os.utime(path, (1e9 + i, 2e9 - i))  # file times must not reach the archive
        json_member = json.dumps({"i": i, "n": n}).encode()
        samples.append(Sample(f"k{i:02d}", {"flac": path, "json": json_member, "input.wav": path}))
    return samples


def test_shards_are_byte_identical_to_the_pinned_format_and_hash_to_their_manifest_sha(tmp_path):
    with ShardWriter(tmp_path / "out", "fix", max_samples=4, max_bytes=None) as w:
        w.write_all(_fixture_samples(tmp_path))
    infos = w.close()
    assert [(i.path.name, i.samples, i.bytes, i.sha256) for i in infos] == PINNED
    for info in infos:
        data = info.path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == info.sha256 and len(data) == info.bytes
    with tarfile.open(infos[2].path) as tar:  # and the content is what was given, in sorted member order
        members = tar.getmembers()
        assert [m.name for m in members[:3]] == ["k08.flac", "k08.input.wav", "k08.json"]
        assert tar.extractfile(members[0]).read() == _content(8, SIZES[8])
        assert json.loads(tar.extractfile(members[2]).read()) == {"i": 8, "n": SIZES[8]}


def test_written_ranges_are_handed_to_the_disk_in_order(tmp_path, monkeypatch):
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(tar_writer, "_start_writeback", lambda fd, offset, nbytes: calls.append((offset, nbytes)))
    with ShardWriter(tmp_path / "out", "fix", max_samples=None, max_bytes=None) as w:
        w.write_all(_fixture_samples(tmp_path))
    (info,) = w.close()
    assert calls and calls[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(calls))  # contiguous, no gaps or overlaps
    assert all(n >= tar_writer._WRITEBACK_STEP for _, n in calls)
    assert info.bytes - (calls[-1][0] + calls[-1][1]) < tar_writer._WRITEBACK_STEP + tar_writer._CHUNK


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux-only")
def test_sync_file_range_binding_works_on_linux(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 65536)
    assert tar_writer._sync_file_range is not None
    fd = os.open(path, os.O_RDONLY)
    try:
        assert tar_writer._sync_file_range(fd, 0, 65536, tar_writer._SYNC_FILE_RANGE_WRITE) == 0
        assert tar_writer._sync_file_range(-1, 0, 65536, tar_writer._SYNC_FILE_RANGE_WRITE) == -1  # EBADF
    finally:
        os.close(fd)
