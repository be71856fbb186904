"""Claims a run cannot believe: leases from the future or far beyond their term, records of the wrong shape,
files that are not regular files. None may block a bucket forever, hang a run or kill it with a traceback."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
from planted_claims import KEY, TEN_YEARS, plant

from m2ugen_data.claims import WorkClaims
from m2ugen_data.compact import compact
from m2ugen_data.warehouse import Warehouse, utc_now


def warnings_about(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and path.name in r.getMessage()]


def test_a_live_claim_of_another_host_is_left_to_it_and_its_holder_is_named(warehouse: Warehouse) -> None:
    plant(warehouse, "analyze", claimed_at=time.time() - 7200)
    claims = WorkClaims(warehouse.root, "analyze")
    assert list(claims.take([KEY], str)) == []
    note = claims.holders_note()
    assert "pid 4242 on node-b" in note and "claimed 2.0 h ago" in note


@pytest.mark.parametrize("fields", [
    {"expires_at": time.time() + TEN_YEARS},  # a lease ten years out
    {"updated_at": time.time() + TEN_YEARS, "expires_at": time.time() + TEN_YEARS + 600},  # written in the future
    {"state": "done", "done_at": time.time() + TEN_YEARS},  # finished in the future: would block every later plan
], ids=["lease-ten-years-out", "written-in-the-future", "done-in-the-future"])
def test_a_claim_stamped_beyond_belief_is_taken_over_with_a_warning(
    warehouse: Warehouse, caplog: pytest.LogCaptureFixture, fields: dict
) -> None:
    path = plant(warehouse, "analyze", **fields)
    with caplog.at_level(logging.WARNING):
        claims = WorkClaims(warehouse.root, "analyze")
        assert list(claims.take([KEY], str)) == [KEY]
    assert json.loads(path.read_text())["token"] == claims.token
    (warning,) = warnings_about(caplog, path)
    assert "stale" in warning and "node-b" in warning


@pytest.mark.parametrize("body", [
    [],
    "x",
    {"state": "active", "host": "node-b", "pid": 1, "token": "t", "updated_at": 0.0, "expires_at": "soon", "keys": [KEY]},
    {"state": "active", "host": "node-b", "pid": "abc", "token": "t", "updated_at": 0.0, "expires_at": 9e9, "keys": [KEY]},
    {"state": "active", "host": "node-b", "pid": 1, "token": "t", "updated_at": 0.0, "expires_at": float("nan"), "keys": [KEY]},
    {"state": "sleeping", "host": "node-b", "pid": 1, "token": "t", "updated_at": 0.0, "expires_at": 9e9, "keys": [KEY]},
], ids=["list", "string", "expires-soon", "pid-abc", "expires-nan", "unknown-state"])
def test_a_claim_of_the_wrong_shape_is_replaced_with_a_warning_not_a_traceback(
    warehouse: Warehouse, caplog: pytest.LogCaptureFixture, body: object
) -> None:
    path = plant(warehouse, "analyze", body=body)
    with caplog.at_level(logging.WARNING):
        claims = WorkClaims(warehouse.root, "analyze")
        assert list(claims.take([KEY], str)) == [KEY]
    (warning,) = warnings_about(caplog, path)
    assert "malformed" in warning


@pytest.mark.timeout(60)
def test_a_fifo_in_place_of_a_claim_is_never_opened(warehouse: Warehouse, caplog: pytest.LogCaptureFixture) -> None:
    path = plant(warehouse, "analyze")
    path.unlink()
    os.mkfifo(path)
    with caplog.at_level(logging.WARNING):
        claims = WorkClaims(warehouse.root, "analyze")
        assert list(claims.take([KEY], str)) == [KEY]  # before: blocked for ever in open()
    assert path.is_file() and json.loads(path.read_text())["token"] == claims.token
    assert "not a regular file" in warnings_about(caplog, path)[0]


def test_a_symlink_in_place_of_a_claim_is_not_followed(warehouse: Warehouse, tmp_path: Path) -> None:
    live = tmp_path / "elsewhere.json"
    path = plant(warehouse, "analyze")
    path.rename(live)  # a live claim, but reached only through a link: not a claim file of this directory
    path.symlink_to(live)
    claims = WorkClaims(warehouse.root, "analyze")
    assert list(claims.take([KEY], str)) == [KEY]
    assert not path.is_symlink() and json.loads(live.read_text())["token"] == "f" * 32  # the target untouched


def _small_batches(wh: Warehouse) -> None:
    for b in range(3):
        wh.write_batch("segments", [{
            "clip_id": f"y{b:010d}_1000", "ytid": f"y{b:010d}", "start_s": 1.0, "end_s": 11.0, "labels": [],
            "instruments": [], "genres": [], "moods": [], "pool": "muedit", "source": "test", "updated_at": utc_now(),
        }], f"segments-{b}")


@pytest.mark.parametrize("body", ["x", None], ids=["string", "lease-ten-years-out"])
def test_compaction_takes_over_an_unbelievable_lease_with_a_warning(
    warehouse: Warehouse, caplog: pytest.LogCaptureFixture, body: object
) -> None:
    _small_batches(warehouse)
    path = plant(warehouse, "leases", "compact-segments", body=body, expires_at=time.time() + TEN_YEARS)
    path.rename(path.with_name("compact-segments.json"))
    with caplog.at_level(logging.WARNING):
        result = compact(warehouse, "segments", grace_s=0)
    assert (result.merged_files, result.files_after) == (3, 1), result.note
    assert any("compact-segments.json" in w for w in (r.getMessage() for r in caplog.records))


def test_a_live_compaction_lease_is_reported_with_its_holder_and_age(warehouse: Warehouse) -> None:
    _small_batches(warehouse)
    path = plant(warehouse, "leases", "compact-segments", claimed_at=time.time() - 1800)
    path.rename(path.with_name("compact-segments.json"))
    result = compact(warehouse, "segments", grace_s=0)
    assert result.merged_files == 0
    assert "pid 4242 on node-b" in result.note and "claimed 30 min ago" in result.note
