"""Held-out splits that stay held out: the split is warehouse state, every later shard write keeps it, and
``shards verify`` fails on a training shard holding an evaluation video, a clip of an evaluation set, a
dropped duplicate, or a duplicate group spanning train and eval."""

from __future__ import annotations

from rows import with_nulls
from shard_warehouse import make_tiny_warehouse
from typer.testing import CliRunner

from m2ugen_data.cli import app
from m2ugen_data.clean.split import Split, read_splits
from m2ugen_data.eval_splits import write_eval_splits
from m2ugen_data.shards import build_dataset_shards, iter_dataset_samples, verify_shards, write_dataset_shards
from m2ugen_data.shards.read import iter_shard_keys, shard_paths
from m2ugen_data.warehouse import utc_now

FRACTION = 0.6


def _keys(wh, dataset):
    return {k for p in shard_paths(wh, dataset) for k in iter_shard_keys(p)}


def _videos(keys):
    return {c[:11] for k in keys for c in k.split("__")}


def test_incremental_shard_write_keeps_held_out_samples_out(warehouse, tmp_path):
    """Before: after eval-splits --fraction 0.6, `shards write --dataset muedit` put every held-out sample back
    into the training shards and `shards verify` reported 0 problems."""
    make_tiny_warehouse(warehouse, n_clips=16)
    (res,) = write_eval_splits(warehouse, ["muedit"], fraction=FRACTION, export_dir=tmp_path / "eval")
    assert res.counts["eval"] > 0
    assert read_splits(warehouse)["muedit"] == Split("muedit", FRACTION)
    held = _keys(warehouse, "muedit_eval")
    build = build_dataset_shards(warehouse, "muedit")  # the routine incremental write, no split option given
    train = _keys(warehouse, "muedit")
    split = Split("muedit", FRACTION)
    assert held and not (train & held) and len(train) == res.counts["train"]  # 16 clips at 0.6: no pair is all train
    assert not any(split.held_out(v) for v in _videos(train))
    assert build.skipped["held_out"] == res.counts["eval"] + res.counts["straddling"]
    assert verify_shards(warehouse, "muedit").ok and verify_shards(warehouse, "muedit_eval").ok


def test_verify_fails_on_a_training_shard_holding_an_evaluation_video(warehouse, tmp_path):
    make_tiny_warehouse(warehouse, n_clips=16)
    write_eval_splits(warehouse, ["muedit"], fraction=FRACTION, export_dir=tmp_path / "eval")
    # shards written by something that ignores the split (an older version, another tool)
    write_dataset_shards(warehouse, "muedit", list(iter_dataset_samples(warehouse, "muedit", side="all")))
    check = verify_shards(warehouse, "muedit", deep=False)
    assert not check.ok and any("held-out (evaluation) videos" in p for p in check.problems)
    result = CliRunner().invoke(app, ["-w", str(warehouse.root), "shards", "verify", "-d", "muedit", "--quick"])
    assert result.exit_code == 1


def test_verify_fails_on_contaminated_clip_and_group_spanning_sides(warehouse, tmp_path):
    tiny = make_tiny_warehouse(warehouse, n_clips=16)
    write_eval_splits(warehouse, ["mucaps"], fraction=0.3, export_dir=tmp_path / "eval",
                      source_options={"mucaps": {"label_name": tiny.label_name}})
    assert verify_shards(warehouse, "mucaps").ok
    train, held = sorted(_keys(warehouse, "mucaps")), sorted(_keys(warehouse, "mucaps_eval"))
    now = utc_now()
    # a training clip found in an evaluation set, and another whose duplicate (canonical) is held out
    warehouse.write_batch("contamination", [with_nulls("contamination", {
        "clip_id": train[0], "benchmark": "musiccaps", "matched_by": "sound", "eval_item": "000001.wav",
        "created_at": now})], "contamination-musiccaps")
    dup = {"match": "fingerprint", "rules_version": "test", "created_at": now}
    warehouse.write_batch("duplicates", [
        with_nulls("duplicates", {"clip_id": held[0], "group_id": held[0], "canonical": True, "matched_with": train[1], **dup}),
        with_nulls("duplicates", {"clip_id": train[1], "group_id": held[0], "canonical": False, "matched_with": held[0], **dup}),
    ], "duplicates")
    problems = verify_shards(warehouse, "mucaps").problems
    assert any("evaluation set" in p and train[0] in p for p in problems)
    assert any("non-canonical near-duplicates" in p for p in problems)
    # a fresh write leaves both out
    build = build_dataset_shards(warehouse, "mucaps", label_name=tiny.label_name)
    assert build.skipped["contaminated"] == 1 and build.skipped["duplicate"] == 1
    assert verify_shards(warehouse, "mucaps").ok


def test_card_shows_contamination(warehouse, tmp_path):
    from m2ugen_data.report import write_report

    tiny = make_tiny_warehouse(warehouse, n_clips=16)
    write_eval_splits(warehouse, ["mucaps"], fraction=0.3, export_dir=tmp_path / "eval",
                      source_options={"mucaps": {"label_name": tiny.label_name}})
    now = utc_now()
    warehouse.write_batch("segment_rejects", [{"batch_id": "segments-x", "source": "x", "line": 3,
                                               "reason": "eval:musiccaps", "text": "t", "created_at": now}], "rejects-x")
    warehouse.write_batch("contamination", [with_nulls("contamination", {
        "clip_id": tiny.clip_ids[0], "benchmark": "musicqa", "matched_by": "sound", "eval_item": "000001.wav",
        "created_at": now})], "contamination-musicqa")
    html = write_report(warehouse, tmp_path / "card").read_text()
    assert "Contamination: what was kept out of training" in html
    assert "musiccaps" in html and "musicqa" in html
    assert ">0.3<" in html  # the split's fraction, with its train/eval sample counts beside it
