"""Damage to shards or to their index is repaired by the next incremental ``shards write``, and what it
cannot see ``verify`` reports: a shard whose bytes changed (same size) is rewritten, an index that lost a key
never puts that key in a second shard, and an index that cannot be read is named in one warning line and
rebuilt before any shard is touched."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shard_warehouse import make_tiny_warehouse
from test_shards_incremental import _sample

from m2ugen_data.shards import (
    ShardWriter,
    build_dataset_shards,
    iter_dataset_samples,
    iter_shard_keys,
    shard_paths,
    verify_shards,
)
from m2ugen_data.shards.build import INDEX_NAME, _row, sample_fingerprint, shard_dir, write_dataset_shards
from m2ugen_data.warehouse import open_warehouse, utc_now


def _digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _build(warehouse, tiny):
    return build_dataset_shards(warehouse, "mucaps", max_samples=2, label_name=tiny.label_name)


def test_a_byte_flipped_inside_a_shard_is_rewritten_by_the_next_write(warehouse) -> None:
    tiny = make_tiny_warehouse(warehouse)
    first = _build(warehouse, tiny)
    before = _digests(shard_paths(warehouse, "mucaps"))
    damaged = shard_paths(warehouse, "mucaps")[0]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside a member's audio: same size, a tar that still reads
    damaged.write_bytes(bytes(data))
    assert not verify_shards(warehouse, "mucaps").ok
    again = _build(warehouse, tiny)
    assert [Path(r["path"]).name for r in again.written] == [damaged.name]
    assert _digests(shard_paths(warehouse, "mucaps")) == before
    assert verify_shards(warehouse, "mucaps").ok and len(again.shards) == len(first.shards)
    assert _build(warehouse, tiny).written == []  # repaired: nothing more to do


def test_verify_reports_a_key_held_by_two_shards(warehouse, tmp_path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    samples = [_sample(media, f"k{i:02d}") for i in range(6)]
    rows = write_dataset_shards(warehouse, "demo", samples, max_samples=3)
    with ShardWriter(shard_dir(warehouse, "demo"), "demo", start_index=2) as w:
        w.write(samples[1])
    rows.append(_row(warehouse, "demo", w.close()[0], utc_now(), rows[0]["run_id"]))
    warehouse.write_batch("shards", rows, batch_id="shards-demo")
    for deep in (True, False):
        problems = verify_shards(warehouse, "demo", deep=deep).problems
        assert len(problems) == 1 and "k01" in problems[0] and "demo-000000.tar" in problems[0], problems


def _drop_first_key(index: Path) -> None:
    table = pq.read_table(index)
    pq.write_table(table.slice(1), index)  # keeps the schema's metadata (the shard rows)


def _directory(index: Path) -> None:
    index.unlink()
    index.mkdir()
    (index / "part-0.parquet").write_bytes(b"not parquet")


def _garbage(index: Path) -> None:
    index.write_bytes(b"PAR1 not really")


@pytest.mark.parametrize("damage", [_drop_first_key, _directory, _garbage], ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_index_is_named_and_rebuilt_and_no_key_lands_in_two_shards(warehouse, caplog, damage) -> None:
    tiny = make_tiny_warehouse(warehouse)
    first = _build(warehouse, tiny)
    before = _digests(shard_paths(warehouse, "mucaps"))
    index = shard_dir(warehouse, "mucaps") / INDEX_NAME
    damage(index)
    with caplog.at_level(logging.WARNING):
        again = _build(warehouse, tiny)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and INDEX_NAME in warnings[0] and "\n" not in warnings[0], warnings
    keys = [k for p in shard_paths(warehouse, "mucaps") for k in iter_shard_keys(p)]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == first.samples
    assert _digests(shard_paths(warehouse, "mucaps")) == before  # the same shards, byte for byte
    assert index.is_file() and verify_shards(warehouse, "mucaps").ok
    caplog.clear()
    assert _build(warehouse, tiny).written == [] and not caplog.records



def test_a_copied_warehouse_stays_incremental(warehouse, tmp_path) -> None:
    """Fingerprints name media relative to the warehouse, so a copy (times preserved, as ``cp -a`` does) rewrites
    no shard: each is hashed once, as its file is another file now, and found intact."""
    tiny = make_tiny_warehouse(warehouse)
    first = _build(warehouse, tiny)
    copy = open_warehouse(tmp_path / "elsewhere")
    shutil.copytree(warehouse.root, copy.root, dirs_exist_ok=True)
    again = build_dataset_shards(copy, "mucaps", max_samples=2, label_name=tiny.label_name)
    assert again.written == [] and [r["sha256"] for r in again.shards] == [r["sha256"] for r in first.shards]
    assert verify_shards(copy, "mucaps").ok


def test_an_index_of_absolute_fingerprints_is_still_read(warehouse) -> None:
    """Indexes written before fingerprints were relative hold absolute media paths: they still match."""
    tiny = make_tiny_warehouse(warehouse)
    _build(warehouse, tiny)
    index = shard_dir(warehouse, "mucaps") / INDEX_NAME
    table = pq.read_table(index)
    legacy = {s.key: sample_fingerprint(s) for s in iter_dataset_samples(warehouse, "mucaps", label_name=tiny.label_name)}
    column = pa.array([legacy[k] for k in table.column("key").to_pylist()], pa.string())
    pq.write_table(table.set_column(2, "fingerprint", column), index)
    assert _build(warehouse, tiny).written == []
    assert pq.read_table(index).column("fingerprint").to_pylist() != column.to_pylist()  # rewritten relative
