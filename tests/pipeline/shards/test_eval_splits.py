"""Held-out eval splits: deterministic by video hash, video-disjoint from training, written as their own shards
and reference JSON, and never picked up by the trainer's shard discovery."""

from __future__ import annotations

import json

from shard_warehouse import make_tiny_warehouse

from m2ugen_data.eval_splits import EVAL_SUFFIX, is_held_out, sample_videos, write_eval_splits
from m2ugen_data.shards.read import iter_shard_samples
from m2ugen_data.shards.tar_writer import Sample
from m2ugen_model.train.data import discover_shards


def _videos(wh, name: str, dataset: str) -> list[set[str]]:
    return [sample_videos(Sample(s["__key__"], {"json": s["json"]}), dataset)
            for p in sorted((wh.root / "shards" / name).glob("*.tar")) for s in iter_shard_samples(p)]


def test_held_out_rule_is_a_fixed_hash_threshold():
    ids = [f"vid{i:08d}" for i in range(2000)]
    small = {v for v in ids if is_held_out(v, 0.05)}
    large = {v for v in ids if is_held_out(v, 0.2)}
    assert small <= large  # growing the fraction only adds videos; none move back to training
    assert 0.03 < len(small) / len(ids) < 0.07 and 0.17 < len(large) / len(ids) < 0.23
    assert small == {v for v in ids if is_held_out(v, 0.05)}  # deterministic


def test_eval_splits_are_video_disjoint_shards_and_reference_json(warehouse, tmp_path):
    tiny = make_tiny_warehouse(warehouse, n_clips=16)
    opts = {"mucaps": {"label_name": tiny.label_name}}
    fraction = 0.4  # with these 16 videos: MUEdit pairs on both sides and straddling ones
    results = {r.dataset: r for r in write_eval_splits(warehouse, ["mucaps", "muedit"], fraction=fraction,
                                                       export_dir=tmp_path / "eval", source_options=opts)}
    for ds in ("mucaps", "muedit"):
        train, held = _videos(warehouse, ds, ds), _videos(warehouse, f"{ds}{EVAL_SUFFIX}", ds)
        train_v, held_v = set().union(*train), set().union(*held)
        assert train and held and not (train_v & held_v), ds  # no video on both sides
        assert all(is_held_out(v, fraction) for v in held_v) and not any(is_held_out(v, fraction) for v in train_v)
        c = results[ds].counts
        assert (len(train), len(held)) == (c["train"], c["eval"])
    total_pairs = len(tiny.ok_pairs)
    c = results["muedit"].counts
    assert c["train"] + c["eval"] + c["straddling"] == total_pairs and c["straddling"] > 0
    assert results["mucaps"].counts["train"] > 0
    # the reference layout of the held-out samples
    caps = json.loads((tmp_path / "eval" / "MUCaps" / "MUCapsCaptions.json").read_text())
    assert len(caps) == results["mucaps"].counts["eval"]
    assert all(is_held_out(name[:11], fraction) for name in caps)  # <clip_id>.flac; the clip id starts with the ytid
    edits = json.loads((tmp_path / "eval" / "MUEdit" / "MUEditInstructions.json").read_text())
    assert len(edits) == c["eval"] and all((tmp_path / "eval" / "MUEdit" / "audioset" / e["input_file"]).exists() for e in edits)
    split = json.loads((warehouse.root / "shards" / "muedit_eval" / "split.json").read_text())
    assert split["fraction"] == fraction and split["eval"] == c["eval"]

    # the trainer: scanning the warehouse never finds the eval shards; naming them gives the base dataset
    found = discover_shards([str(warehouse.root)])
    assert set(found) == {"mucaps", "muedit"}
    assert not any(f"{d}{EVAL_SUFFIX}" in u for urls in found.values() for u in urls for d in ("mucaps", "muedit"))
    explicit = discover_shards([str(warehouse.root / "shards" / "muedit_eval")])
    assert list(explicit) == ["muedit"] and all("muedit_eval" in u for u in explicit["muedit"])
