"""``build-muimage`` and ``build-muvideo`` end to end on synthetic corpora with rendered videos.

One warehouse holds all four datasets: MUCaps and MUEdit from the hand-made tiny warehouse (sharded
directly), MUImage and MUVideo from their flows (7 clips each, grounded captions, template dialogues). The
synthetic videos' truth (scene, colours; ``vision.synth_video.plan_video``) and the corpus truth (a silent
clip) say which clips must reach the shards and what their pictures look like. The seeds are chosen so each
corpus has clips the media stage must reject (MUImage: a black and a uniform video; MUVideo: still ones) and
a silent clip with a usable video that the music filter must reject.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import webdataset as wds
from PIL import Image
from shard_warehouse import make_tiny_warehouse

from m2ugen_data.shards import (
    build_dataset_shards,
    check_member_name,
    parse_sample_json,
    verify_shards,
)
from m2ugen_data.synth import load_truth
from m2ugen_data.shards.disjoint import MusicOverlapError, music_ids_from_keys
from m2ugen_data.vision.synth_video import PALETTE, plan_video
from m2ugen_data.warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.slow

N = 7
SEEDS = {"muimage": 3, "muvideo": 0}
REJECTED_SCENES = {"muimage": {"black", "plain"}, "muvideo": {"black", "plain", "static_box"}}
MEDIA = {"muimage": "input.jpg", "muvideo": "input.mp4"}


def run_flow(dataset: str, root: Path, **kwargs):
    from flows.build_muimage import build_muimage
    from flows.build_muvideo import build_muvideo
    from flows.params import RunOptions, SyntheticSource

    flow = build_muimage if dataset == "muimage" else build_muvideo
    return flow(
        warehouse=str(root),
        synthetic=SyntheticSource(n=N, seed=SEEDS[dataset], sibling_fraction=0.0, trouble_fraction=0.15),
        run=RunOptions(batch_size=4),
        **kwargs,
    )


@pytest.fixture(scope="module")
def built(flow_api, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("visual") / "wh"
    wh = open_warehouse(root)
    tiny = make_tiny_warehouse(wh)
    build_dataset_shards(wh, "mucaps", label_name=tiny.label_name)
    build_dataset_shards(wh, "muedit")
    summaries = {ds: run_flow(ds, root) for ds in ("muimage", "muvideo")}
    return {"root": root, "wh": wh, "tiny": tiny, "summary": summaries}


def shard_samples(wh: Warehouse, dataset: str) -> list[dict]:
    paths = [str(wh.abspath(p)) for p in wh.read("shards", where=f"dataset = '{dataset}'").column("path").to_pylist()]
    return list(wds.WebDataset(sorted(paths), shardshuffle=False, empty_check=False, select_files=check_member_name))


def corpus_truth(root: Path, dataset: str) -> dict[str, dict]:
    return {r["clip_id"]: r for r in load_truth(root / f"synth-{dataset}").to_pylist()}


def expected_keys(root: Path, dataset: str) -> set[str]:
    """From the truth alone: clips whose music is music and whose video the media stage keeps."""
    return {
        c for c, t in corpus_truth(root, dataset).items()
        if t["trouble"] == "none" and plan_video(c).scene not in REJECTED_SCENES[dataset]
    }


def median_rgb(pixels: np.ndarray) -> np.ndarray:
    return np.median(pixels.reshape(-1, 3), axis=0)


def palette_rgb(name: str) -> np.ndarray:
    h = PALETTE[name][2:]
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)])


@pytest.mark.parametrize("dataset", ["muimage", "muvideo"])
def test_shards_hold_the_right_clips_and_decode(built, dataset):
    wh, root = built["wh"], built["root"]
    samples = shard_samples(wh, dataset)
    keys = [s["__key__"] for s in samples]
    assert keys == sorted(expected_keys(root, dataset)) and len(keys) >= 4
    # the corpus had clips of every kind the stages must turn away
    truth = corpus_truth(root, dataset)
    assert {plan_video(c).scene for c in truth} & REJECTED_SCENES[dataset]
    assert any(t["trouble"] != "none" for t in truth.values())
    shas = {r["clip_id"]: r["sha256"] for r in wh.read("clips").to_pylist()}
    for s in samples:
        key = s["__key__"]
        assert {k for k in s if not k.startswith("__")} == {MEDIA[dataset], "output.flac", "json"}
        record = parse_sample_json(s["json"], dataset)
        human, gpt = record.conversation
        assert human.input_modality == dataset[2:] and gpt.output_modality == "audio"
        assert record.input_file == f"{key}.{MEDIA[dataset].split('.')[1]}" and record.output_file == f"{key}.flac"
        assert record.input.clip_id == record.output.clip_id == key and record.input.pool == dataset
        assert record.captions.input.backend == "grounded" and record.dialogue.backend == "template"
        # the music is this clip's own audio, and it decodes
        assert hashlib.sha256(s["output.flac"]).hexdigest() == shas[key] == record.output.audio_sha256
        y, sr = sf.read(io.BytesIO(s["output.flac"]))
        assert sr > 0 and len(y) > 5 * sr
        scene = plan_video(key)
        if dataset == "muimage":
            with Image.open(io.BytesIO(s["input.jpg"])) as img:
                pixels = np.asarray(img.convert("RGB"))
            assert pixels.shape == (240, 320, 3)
            colors = [c for c in (scene.dominant_color, scene.second_color) if c]
            if colors:  # the picture belongs to this key: its background is the scene's colour, named in the caption
                assert min(np.abs(median_rgb(pixels) - palette_rgb(c)).max() for c in colors) < 40
                assert any(f"dominated by {c}" in human.caption for c in colors)
        else:
            with av.open(io.BytesIO(s["input.mp4"])) as container:
                assert not container.streams.audio  # the music travels as output.flac only
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            assert abs(len(frames) - record.visual.fps * 10) <= 2 and record.visual.motion > 0
            first = median_rgb(frames[0])
            if scene.scene == "black_lead":
                assert first.max() < 30
            elif scene.dominant_color in PALETTE:
                assert np.abs(first - palette_rgb(scene.dominant_color)).max() < 40
    assert verify_shards(wh, dataset).ok


def test_synthetic_import_gives_visual_pools_their_videos(built):
    wh = built["wh"]
    segs = {r["clip_id"]: r["pool"] for r in wh.read("segments").to_pylist()}
    for clip in wh.read("clips").to_pylist():
        if segs[clip["clip_id"]] in ("muimage", "muvideo"):
            assert clip["video_path"] == wh.media_path("video", clip["clip_id"], "mp4").relative_to(wh.root).as_posix()
            with av.open(str(wh.abspath(clip["video_path"]))) as c:
                assert c.streams.video and c.streams.audio  # a downloaded section carries its soundtrack
        else:
            assert clip["video_path"] is None


def test_no_music_is_shared_across_datasets(built):
    wh, summary = built["wh"], built["summary"]
    used = {ds: music_ids_from_keys(ds, [s["__key__"] for s in shard_samples(wh, ds)]) for ds in ("mucaps", "muedit", "muimage", "muvideo")}
    assert all(used.values())
    for a, b in itertools.combinations(used, 2):
        if a in ("mucaps", "muedit") and b in ("mucaps", "muedit"):
            continue  # the tiny warehouse pairs MUCaps clips into MUEdit: the visual datasets' rule only
        assert not used[a] & used[b], (a, b)
        assert not {c[:11] for c in used[a]} & {c[:11] for c in used[b]}, (a, b)  # not even another section of a video
    for ds in ("muimage", "muvideo"):
        check = summary[ds]["music_check"]
        assert check["overlaps"] == [] and not check["blocked"] and check["checked"] == len(used[ds])
        assert check["against"]["mucaps"] >= len(used["mucaps"]) and check["against"]["muedit"] >= len(used["muedit"])


def test_summary_counts_match_the_warehouse(built):
    for ds in ("muimage", "muvideo"):
        s = built["summary"][ds]
        rejected = sum(plan_video(c).scene in REJECTED_SCENES[ds] for c in corpus_truth(built["root"], ds))
        assert s["counts"]["media_ok"] == N - rejected and s["counts"]["media_rejected"] == rejected
        # only clips whose video passed are analysed; the silent one among them is no music
        assert s["counts"]["analysed_ok"] + s["counts"]["analysis_rejected"] == N - rejected
        assert s["failures"]["analysis:rejected:silent"] == 1
        assert sum(v for k, v in s["failures"].items() if k.startswith("media:rejected:")) == rejected
        assert s["counts"]["shard_samples"] == len(expected_keys(built["root"], ds)) == s["counts"]["dialogues_accepted"]


def test_forced_overlap_fails_the_shard_step_and_is_reported(built, flow_api, tmp_path):
    """A MUEdit pair that uses a MUImage clip's music (and a MUCaps clip from another section of the same
    video): the flow refuses to write shards, says why, and the artifact lists both; allowing it writes them."""
    import httpx

    root = tmp_path / "wh"
    shutil.copytree(built["root"], root)
    wh = open_warehouse(root)
    before = wh.read("shards", where="dataset = 'muimage'").to_pylist()
    victim, other = sorted(expected_keys(root, "muimage"))[:2]
    pair = wh.read("pairs").to_pylist()[0] | {"src_id": built["tiny"].clip_ids[1], "tgt_id": victim}
    wh.write_batch("pairs", [pair], "forced-overlap")
    seg = wh.read("segments", where=f"clip_id = '{other}'").to_pylist()[0]
    same_video = f"{other[:11]}_999000"
    wh.write_batch("segments", [seg | {"clip_id": same_video, "start_s": 999.0, "end_s": 1009.0, "pool": "mucaps"}], "forced-video")

    with pytest.raises(MusicOverlapError) as exc:
        run_flow("muimage", root)
    assert "2 music overlap(s)" in str(exc.value) and victim in str(exc.value) and "not written" in str(exc.value)
    assert wh.read("shards", where="dataset = 'muimage'").to_pylist() == before  # the old shard set stands

    body = {"artifacts": {"key": {"any_": ["build-muimage-report"]}}, "sort": "CREATED_DESC", "limit": 1, "offset": 0}
    resp = httpx.post(f"{flow_api['url']}/artifacts/filter", json=body, timeout=10)
    resp.raise_for_status()
    report = resp.json()[0]["data"]
    assert "shards NOT written" in report and f"| {victim} | muedit | {victim} | clip |" in report
    assert f"| {other} | mucaps | {same_video} | video |" in report

    from flows.params import VisualOptions

    summary = run_flow("muimage", root, visual=VisualOptions(allow_music_overlap=True))
    check = summary["music_check"]
    assert check["by_match"] == {"clip": 1, "video": 1} and check["allowed"] and not check["blocked"]
    assert summary["failures"]["music-overlap:clip"] == 1
    assert summary["counts"]["shard_samples"] == len(expected_keys(root, "muimage"))


def test_trainer_streams_visual_shards(built):
    """The trainer's data pipeline reads the shards: image-to-music dialogues (stage 3) and video captioning
    (stage 1), media decoded to the encoders' shapes, the music caption as the MSE target's text."""
    from train_fixtures import tiny_tokenizer

    from m2ugen_model.train.data import (
        ShardStream,
        StreamSpec,
        discover_shards,
        stage_mixture,
    )
    from m2ugen_model.train.media import MediaSpec

    tok = tiny_tokenizer()
    media = MediaSpec(audio_rate=8000, audio_seconds=0.5, image_size=32, video_frames=4, video_size=32)
    found = discover_shards([str(built["root"])])
    meta = {
        s["__key__"]: json.loads(s["json"]) for ds in ("muimage", "muvideo") for s in shard_samples(built["wh"], ds)
    }
    for stage, dataset, modality in ((3, "muimage", "image"), (1, "muvideo", "video")):
        sources = stage_mixture(stage, found, {dataset: 1.0})
        spec = StreamSpec(stage=stage, batch_size=2, max_len=2048, truncate=False, media=media, shuffle_buffer=4, pool_batches=1)
        batch = next(iter(ShardStream(sources, spec, tok)))
        assert batch["datasets"] == [dataset] * 2 and batch["skips"] == {}
        rows, pixels = batch[f"{modality}_media"]
        assert rows == [0, 1]
        assert tuple(pixels.shape) == ((2, 32, 32, 3) if modality == "image" else (2, 4, 32, 32, 3))
        turns = [meta[k]["conversation"] for k in batch["keys"]]
        if stage == 3:
            assert batch["target_captions"] == ([0, 1], [t[1]["caption"] for t in turns])
        else:  # captioning: the answer is the video's caption
            answers = [tok.decode([i for i in row if i != -100], skip_special_tokens=True) for row in batch["labels"].tolist()]
            assert [" ".join(a.split()) for a in answers] == [" ".join(t[0]["caption"].split()) for t in turns]


def test_export_writes_reference_muimage_and_muvideo(built, tmp_path):
    from m2ugen_data.export import MediaMode, export_reference

    out = tmp_path / "Datasets"
    results = export_reference(built["wh"], out, datasets=["muimage", "muvideo"], media=MediaMode.symlink)
    for r, (folder, media_dir, ext) in zip(results, (("MUImage", "audioset_images", "jpg"), ("MUVideo", "audioset_video", "mp4"))):
        keys = sorted(expected_keys(built["root"], r.dataset))
        records = json.loads((out / folder / f"{folder}Instructions.json").read_text())
        assert [(x["input_file"], x["output_file"]) for x in records] == [(f"{k}.{ext}", f"{k}.flac") for k in keys]
        for x in records:
            assert set(x) == {"input_file", "output_file", "conversation"}
            assert x["conversation"][0]["input_modality"] == r.dataset[2:]
            assert (out / folder / media_dir / x["input_file"]).is_file() and (out / folder / "audioset" / x["output_file"]).is_file()
