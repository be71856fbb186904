"""MUImage/MUVideo sample assembly on hand-made manifest rows: what reaches a shard and what is refused."""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
from collections import Counter

import pytest
from PIL import Image
from pydantic import ValidationError
from rows import with_nulls
from shard_warehouse import T0, make_tiny_warehouse

from m2ugen_data.shards import (
    SampleSchemaError,
    UnsafeShardError,
    build_dataset_shards,
    iter_dataset_samples,
    iter_shard_keys,
    iter_shard_samples,
    parse_sample_json,
)
from m2ugen_data.shards.assemble import visual_sample_keys
from m2ugen_data.shards.samples import visual_sample
from m2ugen_data.shards.tar_writer import ShardError
from m2ugen_data.vision.media_stage import media_relpath_for

LATER = T0 + dt.timedelta(hours=1)


def _media_row(clip_id: str, status: str = "ok") -> dict:
    return {
        "clip_id": clip_id, "kind": "image", "status": status, "reason": None if status == "ok" else "black",
        "extractor_version": "frames-1", "path": str(media_relpath_for("image", clip_id)) if status == "ok" else None,
        "width": 8, "height": 6, "fps": None, "frames": 16, "duration_s": 10.0, "frame_time_s": 3.0,
        "brightness": 0.5, "sharpness": 0.1, "motion": None, "scene_cuts": None, "dominant_colors": ["red"],
        "updated_at": T0,
    }


def _dialogue(clip_id: str, status: str, at: dt.datetime = T0) -> dict:
    return with_nulls("dialogues", {
        "dataset": "muimage", "sample_id": clip_id, "input_id": clip_id, "output_id": clip_id,
        "human": f"Generate a music for the image of {clip_id}.", "gpt": f"Here is a music that is {clip_id}.",
        "input_caption": f"image of {clip_id}", "output_caption": f"music of {clip_id}", "backend": "template",
        "model": None, "prompt_hash": "h0", "status": status, "reasons": [] if status == "ok" else ["human:empty"],
        "attempts": 1, "created_at": at,
    })


@pytest.fixture
def visual(warehouse):
    """Clips 0-5 of the tiny warehouse moved to the muimage pool, each with one defect but clips 0 and 1."""
    tiny = make_tiny_warehouse(warehouse)
    c = tiny.clip_ids
    segments = [r | {"pool": "muimage", "updated_at": LATER} for r in warehouse.read("segments").to_pylist() if r["clip_id"] in c[:6]]
    warehouse.write_batch("segments", segments, "seg-visual")
    media = [_media_row(x) for x in c[:6]]
    media[4] = _media_row(c[4], "rejected")  # a black video: no frame
    warehouse.write_batch("visual_media", media, "vm-0")
    for x in c[:6]:
        if x != c[4] and x != c[5]:  # clip 5's frame is gone from disk
            path = warehouse.abspath(media_relpath_for("image", x))
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 6), (200, 30, 30)).save(path)
    warehouse.write_batch(
        "captions",
        [with_nulls("captions", {"item_id": x, "modality": "image", "backend": "grounded", "model": None,
                                 "prompt_hash": "v0", "text": f"image of {x}", "created_at": T0}) for x in c[:6]]
        + [with_nulls("captions", {"item_id": x, "modality": "audio", "backend": "grounded", "model": None,
                                   "prompt_hash": "a1", "text": f"music of {x}", "created_at": T0}) for x in c[:6]],
        "cap-visual",
    )
    dialogues = [_dialogue(x, "ok") for x in c[:6]]
    dialogues[2] = _dialogue(c[2], "rejected")  # rejected: never in a shard
    warehouse.write_batch("dialogues", dialogues, "dlg-visual")
    warehouse.write_batch("dialogues", [_dialogue(c[3], "rejected", LATER)], "dlg-visual-2")  # newest row wins
    feats = warehouse.read("features", where=f"clip_id = '{c[1]}'").to_pylist()
    warehouse.write_batch("features", [feats[0] | {"is_music": False, "updated_at": LATER}], "feat-not-music")
    return tiny


def test_only_ok_dialogues_of_music_clips_with_media_become_samples(warehouse, visual):
    c = visual.clip_ids
    skips: Counter[str] = Counter()
    samples = list(iter_dataset_samples(warehouse, "muimage", skips=skips))
    # 1: not music; 2 and 3: rejected dialogue; 4: rejected frame; 5: frame missing on disk
    assert [s.key for s in samples] == [c[0]]
    assert skips == Counter({"image_missing": 1})
    assert visual_sample_keys(warehouse, "muimage", pool="muimage") == [c[0], c[5]]
    assert list(iter_dataset_samples(warehouse, "muvideo")) == []
    record = parse_sample_json(samples[0].members["json"], "muimage")
    assert record.conversation[0].caption == f"image of {c[0]}" and record.conversation[1].caption == f"music of {c[0]}"
    assert record.captions.input.prompt_hash == "v0" and record.captions.output.prompt_hash == "a1"
    assert record.visual.dominant_colors == ["red"] and record.features.tempo_bpm == 100.0
    assert set(samples[0].members) == {"input.jpg", "output.flac", "json"}


def test_shards_and_their_json_round_trip(warehouse, visual):
    build = build_dataset_shards(warehouse, "muimage")
    assert build.samples == 1 and build.skipped == Counter({"image_missing": 1})
    (s,) = list(iter_shard_samples(warehouse.abspath(build.shards[0]["path"])))
    with Image.open(io.BytesIO(s["input.jpg"])) as img:
        assert img.size == (8, 6)
    data = json.loads(s["json"])
    assert data["members"] == {"input": "input.jpg", "output": "output.flac"} and data["dataset"] == "muimage"
    assert list(iter_shard_keys(warehouse.abspath(build.shards[0]["path"]))) == [visual.clip_ids[0]]


def test_shard_keys_refuse_unsafe_members(tmp_path):
    path = tmp_path / "evil-000000.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("k1.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
        link = tarfile.TarInfo("k2.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    keys = iter_shard_keys(path)
    assert next(keys) == "k1"
    with pytest.raises(UnsafeShardError, match="symlink"):
        next(keys)


def test_the_sample_model_refuses_a_mismatched_record(warehouse, visual):
    (sample,) = list(iter_dataset_samples(warehouse, "muimage"))
    data = json.loads(sample.members["json"])
    video = data | {"conversation": [data["conversation"][0] | {"input_modality": "video"}, data["conversation"][1]]}
    with pytest.raises(SampleSchemaError, match="image input"):
        parse_sample_json(video, "muimage")
    with pytest.raises(SampleSchemaError, match="one clip"):
        parse_sample_json(data | {"output": data["output"] | {"clip_id": visual.clip_ids[1]}}, "muimage")
    with pytest.raises(SampleSchemaError):
        parse_sample_json(data, "muvideo")


def test_builder_refuses_a_rejected_dialogue_or_a_foreign_one(warehouse, visual):
    c = visual.clip_ids
    clip = warehouse.read("clips", where=f"clip_id = '{c[0]}'").to_pylist()[0]
    feats = warehouse.read("features", where=f"clip_id = '{c[0]}'").to_pylist()[0]
    args = {
        "dataset": "muimage", "media": _media_row(c[0]), "media_file": warehouse.abspath(media_relpath_for("image", c[0])),
        "audio": warehouse.abspath(clip["audio_path"]), "clip": clip, "features": feats,
    }
    assert visual_sample(dialogue=_dialogue(c[0], "ok"), **args).key == c[0]
    with pytest.raises(ShardError, match="not 'ok'"):
        visual_sample(dialogue=_dialogue(c[0], "rejected"), **args)
    with pytest.raises(ShardError, match="belongs to"):
        visual_sample(dialogue=_dialogue(c[1], "ok"), **args)
    with pytest.raises(ShardError, match="dataset"):
        visual_sample(dialogue=_dialogue(c[0], "ok") | {"dataset": "muvideo"}, **args)
    with pytest.raises(ShardError, match="visual media"):
        visual_sample(dialogue=_dialogue(c[0], "ok"), **(args | {"media": _media_row(c[0]) | {"kind": "video"}}))
    with pytest.raises((ShardError, ValidationError)):
        visual_sample(dialogue=_dialogue(c[0], "ok") | {"human": "  "}, **args)
