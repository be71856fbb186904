"""``m2ugen-data claims list|release`` for people who know a node is gone, and the skip line that names who
holds the work a run left alone."""

from __future__ import annotations

import json
import os
import time

import pytest
from cli_main import run_main
from planted_claims import KEY, TEN_YEARS, plant
from rows import with_nulls

from m2ugen_data.claims import HOST, WorkClaims, bucket_of
from m2ugen_data.warehouse import Warehouse, utc_now


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, wh: Warehouse, *args: str) -> tuple[int, str, str]:
    return run_main(monkeypatch, capsys, wh.root, *args)


def keys_in_own_buckets(n: int) -> list[str]:
    """``n`` clip ids in ``n`` different buckets, none in KEY's."""
    found: dict[str, str] = {bucket_of(KEY): KEY}
    i = 0
    while len(found) < n + 1:
        key = f"clip{i:07d}_9"
        found.setdefault(bucket_of(key), key)
        i += 1
    return [k for k in found.values() if k != KEY]


@pytest.fixture
def planted(warehouse: Warehouse):
    """Another host's live claim, a lease from the future, a malformed claim, another host's compaction lease,
    and a live claim of this very process."""
    live_key, future_key, bad_key, own_key = keys_in_own_buckets(4)
    paths = {
        "live": plant(warehouse, "analyze", live_key, claimed_at=time.time() - 7200),
        "future": plant(warehouse, "analyze", future_key, host="node-c", expires_at=time.time() + TEN_YEARS),
        "malformed": plant(warehouse, "analyze", bad_key, body=[]),
    }
    lease = plant(warehouse, "leases", "compact-clips")
    paths["lease"] = lease.rename(lease.with_name("compact-clips.json"))
    own = WorkClaims(warehouse.root, "analyze")
    assert list(own.take([own_key], str)) == [own_key]
    paths["own"] = own.directory / f"{bucket_of(own_key)}.0.json"
    yield paths
    own.close()


def test_list_shows_every_claim_with_its_holder_and_state(warehouse, planted, monkeypatch, capsys) -> None:
    code, out, _ = cli(monkeypatch, capsys, warehouse, "claims", "list", "--format", "json")
    assert code == 0
    rows = {(r["stage"], r["bucket"]): r for r in map(json.loads, out.splitlines())}
    by_path = {name: rows[(p.parent.name, p.name.removesuffix(".json"))] for name, p in planted.items()}
    assert {name: r["state"] for name, r in by_path.items()} == {
        "live": "live", "future": "stale", "malformed": "malformed", "lease": "live", "own": "live"}
    live = by_path["live"]
    assert (live["host"], live["pid"], live["age"], live["keys"]) == ("node-b", 4242, "2.0 h", 1)
    assert live["expires"].startswith("in ")
    assert "far beyond" in by_path["future"]["note"] and "dictionary" in by_path["malformed"]["note"]
    assert (by_path["own"]["host"], by_path["own"]["pid"]) == (HOST, os.getpid())


def test_list_of_a_warehouse_without_claims(warehouse, monkeypatch, capsys) -> None:
    code, out, _ = cli(monkeypatch, capsys, warehouse, "claims", "list")
    assert code == 0 and "no claims" in out


def test_release_a_bucket_frees_it_for_the_next_run(warehouse, planted, monkeypatch, capsys) -> None:
    bucket = planted["live"].name.split(".")[0]
    code, out, err = cli(monkeypatch, capsys, warehouse, "claims", "release", bucket)
    assert code == 0, err
    assert not planted["live"].exists() and all(p.exists() for n, p in planted.items() if n != "live")
    assert "node-b" in out


def test_release_by_host_takes_every_claim_and_lease_of_that_host(warehouse, planted, monkeypatch, capsys) -> None:
    code, _, err = cli(monkeypatch, capsys, warehouse, "claims", "release", "--host", "node-b")
    assert code == 0, err
    assert {n for n, p in planted.items() if not p.exists()} == {"live", "lease"}


def test_release_stale_takes_stale_and_malformed_claims_only(warehouse, planted, monkeypatch, capsys) -> None:
    code, _, err = cli(monkeypatch, capsys, warehouse, "claims", "release", "--stale")
    assert code == 0, err
    assert {n for n, p in planted.items() if not p.exists()} == {"future", "malformed"}


def test_a_live_claim_of_a_running_process_here_needs_force(warehouse, planted, monkeypatch, capsys) -> None:
    bucket = f"analyze/{planted['own'].name.removesuffix('.json')}"
    code, _, err = cli(monkeypatch, capsys, warehouse, "claims", "release", bucket)
    assert code == 2 and "--force" in err and str(os.getpid()) in err
    assert planted["own"].exists()
    code, _, err = cli(monkeypatch, capsys, warehouse, "claims", "release", bucket, "--force")
    assert code == 0, err
    assert not planted["own"].exists()


@pytest.mark.parametrize("args", [(), ("fff999",)], ids=["nothing-named", "no-such-bucket"])
def test_release_says_what_it_needs(warehouse, planted, monkeypatch, capsys, args) -> None:
    code, _, err = cli(monkeypatch, capsys, warehouse, "claims", "release", *args)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert all(p.exists() for p in planted.values())


def test_analyze_names_who_holds_the_clips_it_skipped(warehouse, monkeypatch, capsys) -> None:
    warehouse.write_batch("clips", [with_nulls("clips", {
        "clip_id": KEY, "status": "ok", "attempts": 1, "audio_path": "media/audio/cl/clip.flac", "duration_s": 10.0,
        "updated_at": utc_now()})], "clips-0")
    plant(warehouse, "analyze", claimed_at=time.time() - 7200)
    code, out, err = cli(monkeypatch, capsys, warehouse, "analyze", "--workers", "1")
    assert code == 0, err
    (line,) = [x for x in out.splitlines() if "claimed by another run" in x]
    assert "1: pid 4242 on node-b (claimed 2.0 h ago" in line
