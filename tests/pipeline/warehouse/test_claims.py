"""Many writers, one warehouse: work claims divide the work between concurrent runs, nothing is lost or doubled."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import soundfile as sf

from m2ugen_data.testing.loopback_server import Faults, MediaServer
from m2ugen_data.claims import WorkClaims, bucket_of, claimed_batches
from m2ugen_data.errors import WarehouseError
from m2ugen_data.warehouse import Warehouse, open_warehouse, utc_now

KEYS = [f"clip{i:03d}" for i in range(40)]


def _drain_alternately(a, b) -> tuple[list[str], list[str]]:
    """Two runs pulling work one item at a time, turn about, until both are out of work."""
    got_a, got_b = [], []
    live = {"a": a, "b": b}
    while live:
        for name in list(live):
            try:
                (got_a if name == "a" else got_b).append(next(live[name]))
            except StopIteration:
                del live[name]
    return got_a, got_b


def test_two_runs_divide_the_work_and_each_item_goes_to_exactly_one(warehouse: Warehouse) -> None:
    a = WorkClaims(warehouse.root, "analyze")
    b = WorkClaims(warehouse.root, "analyze")
    got_a, got_b = _drain_alternately(a.take(KEYS, str), b.take(KEYS, str))
    assert sorted(got_a + got_b) == KEYS  # nothing lost, nothing twice
    assert got_a and got_b  # divided, not one run doing everything
    assert a.skipped == len(got_b) and b.skipped == len(got_a)


def test_work_finished_after_a_run_planned_is_left_alone_but_earlier_results_are_not(warehouse: Warehouse) -> None:
    early = WorkClaims(warehouse.root, "download")  # planned before the other run finished
    first = WorkClaims(warehouse.root, "download")
    assert sorted(first.take(KEYS, str)) == KEYS
    first.finish()
    first.close()
    assert list(early.take(KEYS, str)) == []  # done since it planned: its plan is stale
    later = WorkClaims(warehouse.root, "download")  # planned after: whatever it still wants is new work
    assert sorted(later.take(KEYS[:5], str)) == KEYS[:5]


def test_released_claims_are_free_at_once_and_held_ones_are_not(warehouse: Warehouse) -> None:
    holder = WorkClaims(warehouse.root, "captions-grounded")
    held = list(holder.take(KEYS[:10], str))
    other = WorkClaims(warehouse.root, "captions-grounded")
    assert list(other.take(KEYS[:10], str)) == []
    holder.close()  # interrupted: releases
    again = WorkClaims(warehouse.root, "captions-grounded")
    assert sorted(again.take(KEYS[:10], str)) == sorted(held)


def test_an_expired_lease_is_taken_over(warehouse: Warehouse) -> None:
    stuck = WorkClaims(warehouse.root, "analyze", lease_s=0.2)
    assert len(list(stuck.take(KEYS[:3], str))) == 3
    stuck._stop.set()  # its heartbeat stops: as if the machine hung
    time.sleep(0.4)
    assert sorted(WorkClaims(warehouse.root, "analyze").take(KEYS[:3], str)) == KEYS[:3]


def test_claims_of_a_killed_process_on_this_host_are_taken_over_at_once(warehouse: Warehouse) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from m2ugen_data.claims import WorkClaims
        c = WorkClaims({str(warehouse.root)!r}, "analyze")
        print(len(list(c.take({KEYS!r}, str))), flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == str(len(KEYS))
        assert list(WorkClaims(warehouse.root, "analyze").take(KEYS, str)) == []  # alive: its claims hold
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert sorted(WorkClaims(warehouse.root, "analyze").take(KEYS, str)) == KEYS  # dead: free, no lease wait


def test_runs_with_different_work_in_one_bucket_both_get_theirs(warehouse: Warehouse) -> None:
    """Sibling tasks of one flow (other batches, other pools) share buckets: a claim covers only its keys."""
    same_bucket = [k for k in (f"k{i}" for i in range(20000)) if bucket_of(k) == bucket_of("k0")]
    mine, theirs = same_bucket[:1], same_bucket[1:2]
    a, b = WorkClaims(warehouse.root, "dialogues-template"), WorkClaims(warehouse.root, "dialogues-template")
    assert list(a.take(mine, str)) == mine
    assert list(b.take(theirs + mine, str)) == theirs  # its own key; the one held by `a` left to it
    assert sorted(p.name for p in a.directory.iterdir()) == [f"{bucket_of('k0')}.0.json", f"{bucket_of('k0')}.1.json"]


def test_claimed_batches_finish_what_was_consumed_and_release_the_rest(warehouse: Warehouse) -> None:
    claims = WorkClaims(warehouse.root, "captions-x")
    for i, batch in enumerate(claimed_batches(claims, KEYS, str, 8)):
        if i == 2:
            break  # an interrupted run: batches 0 and 1 were written
    states = [json.loads(p.read_text())["state"] for p in claims.directory.glob("*.json")]
    # one key per bucket here: 2 batches written (done), the 3rd taken but not written (released), and the
    # rest never claimed at all (claims are taken as work is consumed)
    assert (states.count("done"), states.count("released"), len(states)) == (16, 8, 24)


def test_a_read_only_warehouse_refuses_claims_with_one_line(tmp_path: Path) -> None:
    wh = open_warehouse(tmp_path / "wh")
    (wh.root / "claims").mkdir()
    (wh.root / "claims").chmod(0o555)
    try:
        if os.access(wh.root / "claims", os.W_OK):
            pytest.skip("running as root without a read-only filesystem: permissions do not bind")
        with pytest.raises(WarehouseError, match="read-only"):
            WorkClaims(wh.root, "analyze")
    finally:
        (wh.root / "claims").chmod(0o755)


# -- real processes ------------------------------------------------------------------------------------------

FFMPEG = shutil.which("ffmpeg")


def _cli(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "m2ugen_data.cli", "--warehouse", str(root), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.mark.slow
@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg renders the served media")
def test_two_concurrent_download_runs_fetch_every_clip_once(tmp_path: Path) -> None:
    wh = open_warehouse(tmp_path / "wh")
    served = tmp_path / "served"
    served.mkdir()
    src = tmp_path / "tone.m4a"
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100:duration=12", "-c:a", "aac", "-b:a", "64k",
                    "-movflags", "+faststart", str(src)], check=True)
    ytids = [f"conc{i:07d}" for i in range(8)]
    for y in ytids:
        shutil.copy(src, served / f"{y}.m4a")
    wh.write_batch("segments", [
        {"clip_id": f"{y}_1000", "ytid": y, "start_s": 1.0, "end_s": 11.0, "labels": ["/m/04rlf"], "instruments": [],
         "genres": [], "moods": [], "pool": "muedit", "source": "test", "updated_at": utc_now()} for y in ytids
    ], "segments")
    # throttled, so each clip takes about a second and the two runs overlap for the whole job
    faults = Faults(bytes_per_s={f"{y}.m4a": 250_000.0 for y in ytids})
    with MediaServer(served, faults) as srv:
        args = ("audioset", "download", "--url-template", srv.url_template(), "--concurrency", "1",
                "--rate-limit", "0", "--flush-every", "1")
        runs = [_cli(wh.root, *args) for _ in range(2)]
        outs = [r.communicate(timeout=300)[0] for r in runs]
        hits = dict(srv.hits)
    assert [r.returncode for r in runs] == [0, 0], outs
    rows = wh.read("clips", latest=False).to_pylist()  # every fetch writes a row, in batches no other run names
    assert sorted(r["clip_id"] for r in rows) == sorted(f"{y}_1000" for y in ytids)  # one each: none lost, none twice
    assert {r["status"] for r in rows} == {"ok"}
    writers = {f.name.rsplit("-", 1)[0] for f in wh.manifest_files("clips")}  # batch ids: one prefix per run
    assert len(writers) == 2, "one run did everything: the work was not divided"
    assert sorted(name for name in hits if name.endswith(".m4a")) == sorted(f"{y}.m4a" for y in ytids)
    for r in rows:
        y, sr = sf.read(wh.abspath(r["audio_path"]))
        assert abs(len(y) / sr - 10.0) < 0.5  # complete, decodable files


@pytest.mark.slow
def test_two_concurrent_analyze_runs_divide_the_clips(tmp_path: Path, synth_corpus: Path) -> None:
    from m2ugen_data.audioset.synthetic_import import import_synthetic

    wh = open_warehouse(tmp_path / "wh")
    import_synthetic(wh, synth_corpus, "muedit")
    n = 8  # the first 8 clips (both runs select the same ones)
    runs = [_cli(wh.root, "analyze", "--workers", "1", "--batch-size", "1", "--limit", str(n)) for _ in range(2)]
    outs = [r.communicate(timeout=600)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outs
    rows = wh.read("features", latest=False).column("clip_id").to_pylist()
    assert sorted(rows) == sorted(set(rows)) and len(rows) == n  # every clip has its row, once
    # batches named by content replace each other, so rows alone cannot show doubled work: count analyses
    analysed = [int(re.search(r"^│ analysed\s+│\s+(\d+)", out, re.M).group(1)) for out in outs]
    assert sum(analysed) == n and min(analysed) > 0, outs  # each clip analysed by one run; both worked
    claimed = [json.loads(p.read_text()) for p in (wh.root / "claims" / "analyze").glob("*.json")]
    assert len({c["pid"] for c in claimed}) == 2, "one run analysed everything"
    assert {c["state"] for c in claimed} == {"done"}
