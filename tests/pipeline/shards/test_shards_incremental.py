"""Incremental shard writing: new samples go to new shards, existing shards stay byte-identical unless one
of their samples changed or went away, and the manifest says which run wrote which shard."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from shard_warehouse import make_tiny_warehouse

from m2ugen_data.shards import Sample, build_dataset_shards, iter_shard_samples, shard_paths, verify_shards
from m2ugen_data.shards.build import INDEX_NAME, shard_dir, write_dataset_shards
from m2ugen_model.train.data import discover_shards


def _sample(media: Path, key: str, text: str = "") -> Sample:
    path = media / f"{key}.bin"
    if not path.exists():
        path.write_bytes(hashlib.sha256(key.encode()).digest() * 40)
    return Sample(key, {"bin": path, "json": f'{{"key": "{key}", "text": "{text}"}}'.encode()})


def _digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _keys(path: Path) -> list[str]:
    return [s["__key__"] for s in iter_shard_samples(path)]


@pytest.fixture
def media(tmp_path: Path) -> Path:
    (tmp_path / "media").mkdir()
    return tmp_path / "media"


def test_new_samples_go_to_new_shards_and_old_shards_stay_byte_identical(warehouse, media) -> None:
    first = [_sample(media, f"k{i:02d}") for i in range(10)]
    rows1 = write_dataset_shards(warehouse, "demo", first, max_samples=3, incremental=True)
    before = _digests(shard_paths(warehouse, "demo"))
    assert len(before) == 4
    added = [_sample(media, k) for k in ("k03a", "k07b", "k20", "k21", "k22")]  # some sort between old keys
    everything = sorted(first + added, key=lambda s: s.key)
    rows2 = write_dataset_shards(warehouse, "demo", everything, max_samples=3, incremental=True)
    after = _digests(shard_paths(warehouse, "demo"))
    assert {name: after[name] for name in before} == before  # sha256 of every old shard unchanged
    new = sorted(set(after) - set(before))
    assert new == ["demo-000004.tar", "demo-000005.tar"]
    assert sorted(k for name in new for k in _keys(shard_dir(warehouse, "demo") / name)) == sorted(
        s.key for s in added
    )
    runs = {r["path"].rsplit("/", 1)[1]: r["run_id"] for r in rows2}
    assert {runs[n] for n in before} == {rows1[0]["run_id"]} and {runs[n] for n in new} != {rows1[0]["run_id"]}
    assert len({runs[n] for n in new}) == 1
    assert verify_shards(warehouse, "demo").ok
    # the trainer's discovery (manifest-vouched files) reads every sample
    found = discover_shards([str(warehouse.root / "shards")])["demo"]
    got = sorted(k for url in found for k in _keys(Path(url)))
    assert got == sorted(s.key for s in everything)
    # nothing new: nothing written
    rows3 = write_dataset_shards(warehouse, "demo", everything, max_samples=3, incremental=True)
    assert rows3 == rows2 and _digests(shard_paths(warehouse, "demo")) == after


def test_a_changed_or_removed_sample_rewrites_only_its_shard(warehouse, media) -> None:
    samples = [_sample(media, f"k{i:02d}") for i in range(9)]
    write_dataset_shards(warehouse, "demo", samples, max_samples=3, incremental=True)
    before = _digests(shard_paths(warehouse, "demo"))
    samples[4] = _sample(media, "k04", text="re-captioned")  # shard 1: same keys, new content
    del samples[7]  # shard 2 loses one sample
    rows = write_dataset_shards(warehouse, "demo", samples, max_samples=3, incremental=True)
    after = _digests(shard_paths(warehouse, "demo"))
    assert after["demo-000000.tar"] == before["demo-000000.tar"]
    assert after["demo-000001.tar"] != before["demo-000001.tar"]
    directory = shard_dir(warehouse, "demo")
    assert _keys(directory / "demo-000001.tar") == ["k03", "k04", "k05"]
    k04 = next(s for s in iter_shard_samples(directory / "demo-000001.tar") if s["__key__"] == "k04")
    assert b"re-captioned" in k04["json"]
    assert _keys(directory / "demo-000002.tar") == ["k06", "k08"]
    assert len(rows) == 3 and verify_shards(warehouse, "demo").ok
    # a re-downloaded media file (new mtime) counts as changed too
    os.utime(media / "k00.bin", ns=(1, 1))
    write_dataset_shards(warehouse, "demo", samples, max_samples=3, incremental=True)
    assert _digests(shard_paths(warehouse, "demo"))["demo-000000.tar"] == before["demo-000000.tar"]  # same bytes
    assert [r["run_id"] for r in warehouse.read("shards").to_pylist() if r["path"].endswith("000000.tar")] != [
        rows[0]["run_id"]
    ]  # ... but rewritten by this run
    # every sample of a shard gone: the shard goes
    rest = [s for s in samples if s.key not in ("k06", "k08")]
    rows = write_dataset_shards(warehouse, "demo", rest, max_samples=3, incremental=True)
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["demo-000000.tar", "demo-000001.tar"]
    assert not (directory / "demo-000002.tar").exists() and verify_shards(warehouse, "demo").ok


def test_full_rebuild_and_a_missing_index_give_todays_key_ordered_shards(warehouse, media) -> None:
    first = [_sample(media, f"k{i:02d}") for i in range(6)]
    write_dataset_shards(warehouse, "demo", first, max_samples=3, incremental=True)
    everything = sorted(first + [_sample(media, "k02a")], key=lambda s: s.key)
    write_dataset_shards(warehouse, "demo", everything, max_samples=3, incremental=True)
    assert len(shard_paths(warehouse, "demo")) == 3
    rows = write_dataset_shards(warehouse, "demo", everything, max_samples=3)  # full
    directory = shard_dir(warehouse, "demo")
    assert [k for p in shard_paths(warehouse, "demo") for k in _keys(p)] == [s.key for s in everything]
    assert len(rows) == 3 and len({r["run_id"] for r in rows}) == 1
    (directory / INDEX_NAME).unlink()  # e.g. shards written before the index existed: a full build
    grown = everything + [_sample(media, "k99")]
    write_dataset_shards(warehouse, "demo", grown, max_samples=3, incremental=True)
    assert [k for p in shard_paths(warehouse, "demo") for k in _keys(p)] == [s.key for s in grown]
    assert (directory / INDEX_NAME).is_file()  # ... which writes the index, so the next run appends
    before = _digests(shard_paths(warehouse, "demo"))
    write_dataset_shards(warehouse, "demo", [_sample(media, "k00a")] + grown, max_samples=3, incremental=True)
    after = _digests(shard_paths(warehouse, "demo"))
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 1


def test_build_dataset_shards_is_incremental_by_default(warehouse) -> None:
    tiny = make_tiny_warehouse(warehouse)
    first = build_dataset_shards(warehouse, "mucaps", max_samples=2, label_name=tiny.label_name)
    again = build_dataset_shards(warehouse, "mucaps", max_samples=2, label_name=tiny.label_name)
    assert again.shards == first.shards and again.samples == len([c for i, c in enumerate(tiny.clip_ids) if i % 2 == 0])
    full = build_dataset_shards(warehouse, "mucaps", max_samples=2, label_name=tiny.label_name, full=True)
    assert [r["sha256"] for r in full.shards] == [r["sha256"] for r in first.shards]
    assert {r["run_id"] for r in full.shards}.isdisjoint({r["run_id"] for r in first.shards})
