"""Compaction: few large files, same rows and `latest`, exact for readers meanwhile, safe against SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from m2ugen_data.compact import compact, compact_if_needed
from m2ugen_data.filesets import FileId, scan, write_record
from m2ugen_data.warehouse import Warehouse, open_warehouse, utc_now


def clip_rows(ids: range, status: str = "ok") -> list[dict]:
    now = utc_now()
    return [
        {"clip_id": f"clip{i:07d}_0", "status": status, "error_class": None, "error": None, "attempts": 1,
         "audio_path": f"media/audio/cl/clip{i:07d}_0.flac", "video_path": None, "duration_s": 10.0,
         "sample_rate": 48000, "bytes": 1000 + i, "sha256": f"{i:064x}", "updated_at": now}
        for i in ids
    ]


def fill(wh: Warehouse, batches: int, per_batch: int, overlap: int = 0) -> None:
    """``batches`` small batches; consecutive ones share ``overlap`` clips (rewritten later: history)."""
    for b in range(batches):
        start = b * (per_batch - overlap)
        wh.write_batch("clips", _fill_rows(start, per_batch), f"download-{b:05d}")


def _fill_rows(start: int, n: int) -> list[dict]:
    from m2ugen_data.schemas import CLIPS

    rows = clip_rows(range(start, start + n))
    return [{k: r.get(k) for k in CLIPS.schema.names} for r in rows]


def _sorted(table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["clip_id"], r["updated_at"]))


def test_compaction_keeps_every_row_and_latest_in_few_files(warehouse: Warehouse) -> None:
    fill(warehouse, 40, 25, overlap=5)
    before_all, before_latest = _sorted(warehouse.read("clips", latest=False)), _sorted(warehouse.read("clips"))
    result = compact(warehouse, "clips", target_rows=400, grace_s=0)
    assert (result.files_before, result.merged_files, result.parts, result.files_after) == (40, 40, 3, 3)
    directory = warehouse.manifest_dir("clips")
    assert sorted(p.name for p in directory.glob("*.parquet")) == result.written  # old batches gone (grace 0)
    assert not list((directory / ".compactions").iterdir())  # and with them the record of what they were
    assert _sorted(warehouse.read("clips", latest=False)) == before_all
    assert _sorted(warehouse.read("clips")) == before_latest
    con = warehouse.connect()
    assert con.execute("select count(*) from clips").fetchone()[0] == len(before_all)
    again = compact(warehouse, "clips", target_rows=400, grace_s=0)
    assert again.parts == 0 and again.files_after == 3  # merged parts are not churned


def test_whole_set_manifests_are_left_alone(warehouse: Warehouse) -> None:
    assert compact(warehouse, "pairs").note.startswith("whole-set")


def test_replaced_batches_stay_readable_for_the_grace_period_then_go(warehouse: Warehouse) -> None:
    fill(warehouse, 6, 10)
    listed = warehouse.manifest_files("clips")
    compact(warehouse, "clips", grace_s=3600)
    fileset = scan(warehouse.manifest_dir("clips"))
    assert sorted(fileset.superseded) == listed and len(fileset.live) == 1  # hidden, still on disk
    assert warehouse.read("clips", latest=False).num_rows == 60
    result = compact(warehouse, "clips", grace_s=0)
    assert result.purged == 6 and not scan(warehouse.manifest_dir("clips")).superseded


def test_a_batch_rewritten_after_it_was_merged_stays_live(warehouse: Warehouse) -> None:
    fill(warehouse, 4, 10)
    compact(warehouse, "clips", grace_s=3600)
    time.sleep(0.01)
    warehouse.write_batch("clips", _fill_rows(0, 10), "download-00000")  # a rerun of batch 0, same id
    assert "download-00000.parquet" in {p.name for p in warehouse.manifest_files("clips")}
    assert warehouse.read("clips", latest=False).num_rows == 50  # the merged copy is history now
    latest = warehouse.read("clips")
    assert latest.num_rows == 40 and max(latest.column("updated_at").to_pylist()) > min(latest.column("updated_at").to_pylist())


def test_a_partly_published_compaction_is_ignored_and_cleaned_up(warehouse: Warehouse) -> None:
    fill(warehouse, 6, 10)
    directory = warehouse.manifest_dir("clips")
    # what a kill between renaming part 0 and part 1 leaves: the record, and part 0 of 2
    inputs = [FileId.of(p) for p in warehouse.manifest_files("clips")]
    write_record(directory, "x", ["compact-x-0000.parquet", "compact-x-0001.parquet"], inputs)
    pq.write_table(warehouse.read("clips", latest=False).slice(0, 30), directory / "compact-x-0000.parquet")
    assert warehouse.read("clips", latest=False).num_rows == 60  # not 30, not 90
    result = compact(warehouse, "clips", grace_s=0)
    assert result.cleaned == 1 and warehouse.read("clips", latest=False).num_rows == 60
    assert not list((directory / ".compactions").iterdir())  # records of finished, purged compactions go too


def test_flows_compact_once_a_manifest_passes_the_threshold(warehouse: Warehouse) -> None:
    fill(warehouse, 5, 4)
    assert compact_if_needed(warehouse, threshold_files=6) == []
    fill(warehouse, 6, 4)
    (result,) = compact_if_needed(warehouse, threshold_files=6)
    assert result.manifest == "clips" and result.files_after == 1


READER = textwrap.dedent("""
    import sys, time
    from m2ugen_data.warehouse import open_warehouse
    wh = open_warehouse(sys.argv[1])
    while True:
        counts = [wh.read("clips", latest=False).num_rows, wh.read("clips").num_rows]
        if sys.argv[2] == "connect":  # a snapshot of views: valid for the compaction's grace period
            con = wh.connect()
            counts += [con.execute(f"select count(*) from {v}").fetchone()[0] for v in ("clips", "clips_latest")]
        print(*counts, flush=True)
""")


@pytest.mark.parametrize("grace_s, mode", [(0.0, "read"), (60.0, "connect")])
def test_readers_see_every_row_exactly_once_during_compaction(warehouse: Warehouse, grace_s: float, mode: str) -> None:
    fill(warehouse, 60, 50, overlap=10)
    expected = (warehouse.read("clips", latest=False).num_rows, warehouse.read("clips").num_rows)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(warehouse.root), mode], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline()  # reading before the first compaction starts
        for round_ in range(3):  # merge, then merge the merged parts into larger ones, twice
            fill_more = [f"extra-{round_}-{i}" for i in range(5)]  # fresh small batches, same rows again
            for i, batch in enumerate(fill_more):
                warehouse.write_batch("clips", _fill_rows(i * 40, 40), batch)
                expected = (expected[0] + 40, expected[1])
            time.sleep(0.5)  # let the reader see the new batches before they are merged
            compact(warehouse, "clips", target_rows=300 + 600 * round_, grace_s=grace_s)
        time.sleep(0.5)
    finally:
        reader.send_signal(signal.SIGTERM)
        out = reader.communicate()[0]
    counts = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    assert len(counts) >= 3
    # every count taken is one the warehouse really had at some moment: never a merged row twice or missing
    totals = [c[0] for c in counts]
    assert totals == sorted(totals) and totals[-1] == expected[0], sorted(set(totals))
    possible = {expected[0] - 40 * k for k in range(16)}  # before/after each batch write
    assert set(totals) <= possible
    assert {c[1] for c in counts} == {expected[1]}
    if mode == "connect":  # taken a moment after the first two: a batch may have landed in between
        assert all(c[2] in possible and c[3] == expected[1] for c in counts), counts


def test_sigkill_mid_compaction_loses_nothing_and_a_rerun_finishes(tmp_path: Path) -> None:
    wh = open_warehouse(tmp_path / "wh")
    fill(wh, 120, 100)
    expected = wh.read("clips", latest=False).num_rows
    directory = wh.manifest_dir("clips")
    cmd = [sys.executable, "-m", "m2ugen_data.cli", "--warehouse", str(wh.root), "compact", "--manifest", "clips",
           "--target-rows", "400", "--grace-s", "0"]
    killed = False
    for _ in range(3):  # kill it while it writes parts (it writes 30 of them)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if len(list(directory.glob(".compact-*.tmp"))) >= 3:  # writing its parts
                break
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed = True
        proc.wait()
        if killed:
            break
    assert killed, "the compaction finished before it could be killed"
    assert wh.read("clips", latest=False).num_rows == expected  # the half-done compaction is invisible
    assert wh.read("clips").num_rows == expected
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert wh.read("clips", latest=False).num_rows == expected
    live = wh.manifest_files("clips")
    assert len(live) == 30 and all(p.name.startswith("compact-") for p in live)
    assert sorted(p.name for p in directory.iterdir() if p.suffix == ".parquet") == [p.name for p in live]
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == [".compactions"]  # no temporaries
    assert not list((directory / ".compactions").iterdir())  # no record of a half-done compaction


def test_unknown_manifest_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "m2ugen_data.cli", "--warehouse", str(tmp_path), "compact", "-m", "nope"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "unknown manifest 'nope'" in out.stderr and len(out.stderr.strip().splitlines()) == 1
