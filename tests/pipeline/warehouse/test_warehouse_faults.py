"""Warehouse faults as a hostile user meets them: corrupt data pages, a foreign file in a manifest directory,
a read-only warehouse. Each is one line naming the file (exit 2), or, for read-only, queries still work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from m2ugen_data.errors import SchemaError, WarehouseError
from m2ugen_data.warehouse import Warehouse, open_warehouse
from shard_warehouse import make_tiny_warehouse


def _cli(root: Path, *args: str, read_only: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "m2ugen_data.cli", "--warehouse", str(root), *args]
    if read_only and os.geteuid() == 0:  # root ignores permissions: a read-only bind mount, as an ro NFS export
        cmd = ["unshare", "--mount", sys.executable, "-c", RO_MOUNT, str(root), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


# in a private mount namespace: bind the warehouse onto itself read-only, then run the command
RO_MOUNT = """
import os, subprocess, sys
subprocess.run(["mount", "--bind", "-o", "ro", sys.argv[1], sys.argv[1]], check=True)
os.execv(sys.argv[2], sys.argv[2:])
"""


def _one_line_naming(res: subprocess.CompletedProcess, path: Path) -> None:
    err = res.stderr.strip()
    assert res.returncode == 2, res.stdout + res.stderr
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(path) in err.replace("\n", ""), err


def _corrupt_pages(path: Path) -> None:
    """Scramble the data pages but keep the footer (metadata, schema, row counts) intact."""
    data = bytearray(path.read_bytes())
    footer_len = int.from_bytes(data[-8:-4], "little")
    footer_start = len(data) - 8 - footer_len
    for i in range(4, footer_start):
        data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    wh = open_warehouse(tmp_path_factory.mktemp("faults") / "wh")
    make_tiny_warehouse(wh)
    return wh.root


@pytest.fixture
def tiny(tiny_root: Path, tmp_path: Path) -> Warehouse:
    shutil.copytree(tiny_root, tmp_path / "wh")
    return open_warehouse(tmp_path / "wh")


@pytest.mark.parametrize("command", [
    ["catalog"],
    ["sql", "select * from features_latest"],
    ["pairs", "mine"],
    ["analyze", "--workers", "1"],
])
def test_corrupt_data_pages_are_one_line_naming_the_file(tiny: Warehouse, command: list[str]) -> None:
    bad = tiny.manifest_dir("features") / "feat-0.parquet"
    _corrupt_pages(bad)
    _one_line_naming(_cli(tiny.root, *command), bad)


def test_corrupt_data_pages_in_a_library_read_name_the_file(tiny: Warehouse) -> None:
    bad = tiny.manifest_dir("features") / "feat-0.parquet"
    _corrupt_pages(bad)
    with pytest.raises(WarehouseError, match=f"corrupt Parquet data in {bad}"):
        tiny.read("features")


def test_a_foreign_manifest_file_is_refused_by_schema(tiny: Warehouse) -> None:
    pairs = next(iter(tiny.manifest_files("pairs")))
    foreign = tiny.manifest_dir("features") / "dropped-in.parquet"
    shutil.copy(pairs, foreign)
    with pytest.raises(SchemaError, match=f"{foreign} is a 'pairs' file in the 'features' manifest directory"):
        tiny.read("features")
    _one_line_naming(_cli(tiny.root, "sql", "select count(*) from features"), foreign)


def test_a_file_without_the_manifest_key_is_refused(tiny: Warehouse) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    stray = tiny.manifest_dir("features") / "stray.parquet"
    pq.write_table(pa.table({"src_id": ["a"], "tgt_id": ["b"]}), stray)  # no metadata, no clip_id
    with pytest.raises(SchemaError, match=f"{stray} lacks the key column"):
        tiny.read("features")


@pytest.fixture
def read_only(tiny_root: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the tiny warehouse, with shards, that commands cannot write: a read-only bind mount when the
    tests run as root (root ignores permissions), else chmod a-w."""
    root = tmp_path / "wh"
    shutil.copytree(tiny_root, root)
    assert _cli(root, "shards", "write", "--dataset", "muedit").returncode == 0
    if os.geteuid() == 0:
        yield root
        return
    paths = [root, *root.rglob("*")]
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield root
    finally:
        for p in paths:
            p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.slow
def test_a_read_only_warehouse_still_answers_sql_and_verifies_shards(read_only: Path) -> None:
    res = _cli(read_only, "sql", "select count(*) as n from clips_latest", "--format", "csv", read_only=True)
    if os.geteuid() == 0 and res.returncode != 0 and "mount" in res.stderr:
        pytest.skip(f"running as root and cannot make a read-only mount: {res.stderr.strip()[-200:]}")
    assert res.returncode == 0 and res.stdout.split() == ['"n"', "8"], res.stdout + res.stderr
    res = _cli(read_only, "shards", "verify", "--dataset", "muedit", read_only=True)
    assert res.returncode == 0, res.stdout + res.stderr
    res = _cli(read_only, "catalog", read_only=True)  # lists what it holds, says the catalog file was not written
    assert res.returncode == 0 and "read-only" in res.stdout, res.stdout + res.stderr
    res = _cli(read_only, "analyze", "--workers", "1", read_only=True)  # a writing stage: one line, before any work
    assert res.returncode == 2 and "read-only" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


KILLED_WRITER = """
import sys, time
from pathlib import Path
import pyarrow.parquet as pq
from m2ugen_data.warehouse import open_warehouse, utc_now

def stuck(table, where, **kw):  # write part of the file, then hang until killed
    Path(where).write_bytes(b"PAR1 partial")
    time.sleep(600)

pq.write_table = stuck
open_warehouse(sys.argv[1]).write_batch("shards", [{"dataset": "muedit", "path": "shards/muedit/x.tar",
    "samples": 1, "bytes": 1, "sha256": "0" * 64, "first_key": "a", "last_key": "a", "created_at": utc_now(), "run_id": None}],
    "shards-muedit")
"""


def test_a_killed_writers_temporary_is_removed_by_the_next_write_of_that_batch(tiny: Warehouse) -> None:
    import signal
    import time

    directory = tiny.manifest_dir("shards")
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tiny.root)])
    try:
        deadline = time.monotonic() + 180
        while not list(directory.glob(".shards-muedit.parquet.*.tmp")) and time.monotonic() < deadline:
            assert child.poll() is None, "the writer exited before it could be killed"
            time.sleep(0.05)
        assert list(directory.glob(".shards-muedit.parquet.*.tmp")), "the writer never started"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    rows = tiny.read("shards", latest=False).to_pylist()
    tiny.write_batch("shards", rows, "shards-muedit")  # the rerun
    assert not list(directory.glob(".*.tmp"))
