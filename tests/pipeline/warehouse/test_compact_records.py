"""A damaged compaction record (unreadable, a field missing, a well-formed wrong value) never stops a reader
and never hides rows: readers warn once naming the record and read the compaction's parts with nothing hidden;
the next compaction rebuilds, merging those parts with every live file, so each row is read once again."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from test_compact import _sorted, fill

from m2ugen_data.compact import compact, compact_if_needed
from m2ugen_data.filesets import RECORDS_DIR
from m2ugen_data.warehouse import Warehouse


def _garbage(record: Path) -> None:
    record.write_bytes(record.read_bytes()[:-7])


def _no_parts(record: Path) -> None:
    body = json.loads(record.read_bytes())
    del body["parts"]
    record.write_text(json.dumps(body))


def _wrong_inode(record: Path) -> None:  # still valid JSON of the right shape: a flipped bit in a number
    body = json.loads(record.read_bytes())
    body["supersedes"][0]["ino"] ^= 1
    record.write_text(json.dumps(body))


DAMAGE: dict[str, Callable[[Path], None]] = {"garbage": _garbage, "no_parts": _no_parts, "wrong_inode": _wrong_inode}


def _record(wh: Warehouse) -> Path:
    (record,) = (wh.manifest_dir("clips") / RECORDS_DIR).glob("*.json")
    return record


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_a_damaged_record_is_named_and_rebuilt_with_every_row_once(warehouse: Warehouse, caplog, name: str) -> None:
    fill(warehouse, 6, 10, overlap=2)
    before_all, before_latest = _sorted(warehouse.read("clips", latest=False)), _sorted(warehouse.read("clips"))
    compact(warehouse, "clips", grace_s=3600)  # the merged batches linger: hidden only by the record
    record = _record(warehouse)
    DAMAGE[name](record)
    with caplog.at_level(logging.WARNING):
        assert _sorted(warehouse.read("clips")) == before_latest  # exact duplicates do not change `latest`
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings and all(record.name in w and "\n" not in w for w in warnings)
    caplog.clear()
    result = compact_if_needed(warehouse)  # a damaged record makes the manifest due, whatever its file count
    assert [r.manifest for r in result] == ["clips"] and result[0].parts == 1
    assert not record.exists()
    assert _sorted(warehouse.read("clips", latest=False)) == before_all
    assert _sorted(warehouse.read("clips")) == before_latest
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_damaged_record_whose_batches_are_gone_loses_no_row(warehouse: Warehouse, caplog) -> None:
    fill(warehouse, 6, 10)
    before = _sorted(warehouse.read("clips", latest=False))
    compact(warehouse, "clips", grace_s=0)
    directory = warehouse.manifest_dir("clips")
    record = directory / RECORDS_DIR / "lost.json"  # a killed purge's record, its batches deleted already
    (part,) = directory.glob("*.parquet")
    part.rename(directory / "compact-lost-0000.parquet")
    record.write_text('{"id": "lost", "parts": ["compact-lost-0000.parquet"], "supersedes": [{"name": 1}]}')
    with caplog.at_level(logging.WARNING):
        assert _sorted(warehouse.read("clips", latest=False)) == before
    assert any("lost.json" in r.getMessage() for r in caplog.records)
    compact(warehouse, "clips", grace_s=0)
    assert not record.exists() and _sorted(warehouse.read("clips", latest=False)) == before


def test_a_damaged_record_of_no_part_on_disk_is_dropped(warehouse: Warehouse) -> None:
    fill(warehouse, 3, 10)
    directory = warehouse.manifest_dir("clips")
    (directory / RECORDS_DIR).mkdir()
    (directory / RECORDS_DIR / "stray.json").write_bytes(b"\x00\x01")
    assert warehouse.read("clips", latest=False).num_rows == 30
    compact(warehouse, "clips", grace_s=0)
    assert not (directory / RECORDS_DIR / "stray.json").exists()
    assert warehouse.read("clips", latest=False).num_rows == 30
