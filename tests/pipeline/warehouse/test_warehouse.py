"""The warehouse's promises: atomic batches, idempotent reruns, strict schemas, readable catalog, clear errors."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from m2ugen_data.errors import InvalidIdError, SchemaError, WarehouseError
from m2ugen_data.warehouse import Warehouse, open_warehouse, utc_now


def seg_row(i: int, pool: str = "muedit") -> dict:
    ytid = f"abcdefghi{i:02d}"
    return {
        "clip_id": f"{ytid}_0",
        "ytid": ytid,
        "start_s": 0.0,
        "end_s": 10.0,
        "labels": ["/m/04rlf"],
        "instruments": [],
        "genres": [],
        "moods": [],
        "pool": pool,
        "source": "test",
        "updated_at": utc_now(),
    }


def test_rerunning_a_batch_replaces_it(warehouse: Warehouse) -> None:
    rows = [seg_row(i) for i in range(5)]
    warehouse.write_batch("segments", rows, "batch-a")
    warehouse.write_batch("segments", rows, "batch-a")
    assert warehouse.read("segments", latest=False).num_rows == 5
    assert len(warehouse.manifest_files("segments")) == 1


def test_latest_keeps_newest_row_per_key(warehouse: Warehouse) -> None:
    old = seg_row(1, pool="mucaps")
    warehouse.write_batch("segments", [old], "b1")
    time.sleep(0.01)
    new = seg_row(1, pool="muedit")
    warehouse.write_batch("segments", [new], "b2")
    assert warehouse.read("segments", latest=False).num_rows == 2
    latest = warehouse.read("segments")
    assert latest.column("pool").to_pylist() == ["muedit"]


def test_missing_column_is_named(warehouse: Warehouse) -> None:
    row = seg_row(1)
    del row["pool"]
    with pytest.raises(SchemaError, match=r"'pool'.*string"):
        warehouse.write_batch("segments", [row], "b")
    assert warehouse.manifest_files("segments") == []


def test_wrong_type_is_named_with_expected_type(warehouse: Warehouse) -> None:
    row = seg_row(1)
    row["start_s"] = "not a number"
    with pytest.raises(SchemaError, match=r"'start_s' expects double"):
        warehouse.write_batch("segments", [row], "b")
    table = pa.Table.from_pylist([seg_row(1)]).set_column(
        2, "start_s", pa.array(["x"], pa.string())
    )
    with pytest.raises(SchemaError, match=r"'start_s' expects double"):
        warehouse.write_batch("segments", table, "b")
    assert warehouse.manifest_files("segments") == []


def test_unknown_column_and_null_in_required_column(warehouse: Warehouse) -> None:
    row = seg_row(1) | {"extra": 1}
    with pytest.raises(SchemaError, match="unknown column 'extra'"):
        warehouse.write_batch("segments", [row], "b")
    with pytest.raises(SchemaError, match="'pool'.*may not be null"):
        warehouse.write_batch("segments", [seg_row(1) | {"pool": None}], "b")


def test_hostile_batch_id_rejected(warehouse: Warehouse) -> None:
    for bad in ["../x", "a/b", "", ".hidden", "a b"]:
        with pytest.raises(InvalidIdError):
            warehouse.write_batch("segments", [seg_row(1)], bad)


def _write_then_die(root: str, n: int) -> None:
    """Child: start writing a batch that replaces 'b1', but die before the rename."""
    import pyarrow.parquet as pq

    import m2ugen_data.warehouse as w

    def slow_write(table, where, **kw):  # write part of the file, then hang until killed
        Path(where).write_bytes(b"PAR1 partial")
        time.sleep(60)

    pq.write_table = slow_write
    wh = w.open_warehouse(root)
    wh.write_batch("segments", [seg_row(i, pool="mucaps") for i in range(n)], "b1")


def test_sigkill_mid_batch_leaves_previous_state(warehouse: Warehouse) -> None:
    warehouse.write_batch("segments", [seg_row(i) for i in range(3)], "b1")
    ctx = mp.get_context("spawn")
    child = ctx.Process(target=_write_then_die, args=(str(warehouse.root), 7))
    child.start()
    deadline = time.time() + 30
    tmp_seen = False
    while time.time() < deadline and not tmp_seen:
        tmp_seen = any(warehouse.manifest_dir("segments").glob(".*.tmp"))
        time.sleep(0.05)
    assert tmp_seen, "child never started writing"
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    table = warehouse.read("segments", latest=False)
    assert table.num_rows == 3
    assert set(table.column("pool").to_pylist()) == {"muedit"}
    con = warehouse.connect()
    assert con.execute("select count(*) from segments").fetchone()[0] == 3


def test_exception_mid_batch_leaves_no_temp(warehouse: Warehouse, monkeypatch) -> None:
    import pyarrow.parquet as pq

    warehouse.write_batch("segments", [seg_row(1)], "b1")

    def failing_write(table, where, **kw):
        Path(where).write_bytes(b"junk")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", failing_write)
    with pytest.raises(WarehouseError, match="No space left"):
        warehouse.write_batch("segments", [seg_row(2)], "b1")
    assert list(warehouse.manifest_dir("segments").iterdir()) == [
        warehouse.manifest_dir("segments") / "b1.parquet"
    ]
    assert warehouse.read("segments").column("clip_id").to_pylist() == ["abcdefghi01_0"]


def test_corrupt_parquet_is_a_one_line_error(warehouse: Warehouse) -> None:
    warehouse.write_batch("segments", [seg_row(1)], "good")
    bad = warehouse.manifest_dir("segments") / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(WarehouseError, match=r"corrupt Parquet file .*bad\.parquet"):
        warehouse.read("segments")
    with pytest.raises(WarehouseError, match="bad.parquet"):
        warehouse.connect()
    assert (warehouse.manifest_dir("segments") / "good.parquet").exists()


def test_unwritable_root_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WarehouseError, match="cannot create warehouse"):
        open_warehouse(blocker / "wh")


def test_catalog_file_is_readable_by_plain_duckdb(warehouse: Warehouse) -> None:
    warehouse.write_batch("segments", [seg_row(i) for i in range(4)], "b1")
    path = warehouse.refresh_catalog()
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("select count(*) from segments").fetchone()[0] == 4
    assert con.execute("select count(*) from segments_latest").fetchone()[0] == 4
    assert con.execute("select count(*) from pairs").fetchone()[0] == 0  # empty, typed view
    direct = duckdb.sql(
        f"select count(*) from read_parquet('{warehouse.manifest_dir('segments')}/*.parquet')"
    ).fetchall()[0][0]
    assert direct == 4


def test_cli_sql_and_errors(warehouse: Warehouse) -> None:
    warehouse.write_batch("segments", [seg_row(i) for i in range(3)], "b1")
    exe = [sys.executable, "-m", "m2ugen_data.cli", "--warehouse", str(warehouse.root)]
    out = subprocess.run(exe + ["sql", "select count(*) as n from segments", "-f", "csv"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "3"
    bad = subprocess.run(exe + ["sql", "select nope from segments"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
