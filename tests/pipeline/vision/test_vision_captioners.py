"""Visual captioners: tiny random BLIP, VideoMAE+GPT-2 and VideoMAE classifier saved to disk and loaded
through the real loaders; batched output must equal one-at-a-time output. Grounded captions must name the
true colour and motion. The batch stage caches by (item, backend, model, prompt hash) and isolates bad items."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.errors import MissingDependencyError
from m2ugen_data.vision.blip import PROMPT, load_blip
from m2ugen_data.vision.caption_stage import caption_visual
from m2ugen_data.vision.frames import extract_frame
from m2ugen_data.vision.media_stage import run_media
from m2ugen_data.vision.models import VisualItem
from m2ugen_data.testing.tiny_vision_models import (
    KINETICS_LIKE,
    save_tiny_blip,
    save_tiny_video_gpt2,
    save_tiny_videomae_classifier,
)
from m2ugen_data.vision.video_gpt2 import load_video_gpt2
from m2ugen_data.vision.videomae_labels import load_videomae_labels
from vision_warehouse import seed_warehouse

SCENES = ("moving_box", "black_lead", "cut", "testsrc")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny models run fastest on one thread


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "blip": save_tiny_blip(root / "blip"),
        "video-gpt2": save_tiny_video_gpt2(root / "video_gpt2"),
        "videomae-labels": save_tiny_videomae_classifier(root / "videomae"),
    }


@pytest.fixture(scope="module")
def frames(synth_videos, tmp_path_factory) -> list[VisualItem]:
    out = tmp_path_factory.mktemp("frames")
    items = []
    for scene in SCENES:
        path, truth = synth_videos[scene]
        assert extract_frame(path, out / f"{scene}.jpg").status == "ok"
        items.append(VisualItem(truth.clip_id, "image", out / f"{scene}.jpg"))
    return items


@pytest.fixture(scope="module")
def videos(synth_videos) -> list[VisualItem]:
    return [VisualItem(synth_videos[s][1].clip_id, "video", synth_videos[s][0]) for s in SCENES]


def assert_batch_invariant(captioner, items) -> list[str | None]:
    batched = captioner.caption(items)
    single = [captioner.caption([it])[0] for it in items]
    assert batched == single
    assert len(set(batched)) > 1, "the tiny model ignores its input, so this check would prove nothing"
    return batched


def test_blip_batched_equals_single(tiny, frames):
    c = load_blip(str(tiny["blip"]), device="cpu", num_beams=2, max_new_tokens=8)
    texts = assert_batch_invariant(c, frames)
    assert all(t.startswith(PROMPT) and len(t) > len(PROMPT) for t in texts)
    assert (c.backend, c.model) == ("blip", str(tiny["blip"].resolve()))


def test_video_gpt2_batched_equals_single(tiny, videos):
    c = load_video_gpt2(str(tiny["video-gpt2"]), device="cpu", num_beams=2, max_new_tokens=8)
    texts = assert_batch_invariant(c, videos)
    assert all(texts)


def test_videomae_labels_batched_equals_single(tiny, videos):
    c = load_videomae_labels(str(tiny["videomae-labels"]), device="cpu", top_k=2, min_prob=0.0)
    texts = assert_batch_invariant(c, videos)
    for t in texts:
        assert t.startswith("a video of ")
        named = [k for k in KINETICS_LIKE if k in t]
        assert len(named) == 2, t


def test_missing_weights_are_one_line_errors(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(MissingDependencyError, match="config.json missing"):
        load_blip(str(tmp_path))
    with pytest.raises(MissingDependencyError, match="Salesforce/blip-image-captioning-base.*--model-dir"):
        load_blip(None)


@pytest.fixture
def captioned_warehouse(warehouse, synth_videos):
    seed_warehouse(
        warehouse,
        [("imgAAAAAAAA_0", "muimage", synth_videos["moving_box"][0]),
         ("imgBBBBBBBB_0", "muimage", synth_videos["testsrc"][0]),
         ("vidAAAAAAAA_0", "muvideo", synth_videos["moving_box"][0]),
         ("vidBBBBBBBB_0", "muvideo", synth_videos["cut"][0])],
    )
    run_media(warehouse, "image")
    run_media(warehouse, "video")
    return warehouse


def _captions(wh, backend: str) -> dict[str, dict]:
    return {r["item_id"]: r for r in wh.read("captions", where=f"backend = '{backend}'").to_pylist()}


def test_grounded_captions_name_true_colour_motion_and_labels(captioned_warehouse, synth_videos):
    wh = captioned_warehouse
    namer = load_ontology().name
    s_img = caption_visual(wh, "image", "grounded", label_namer=namer)
    s_vid = caption_visual(wh, "video", "grounded", label_namer=namer)
    assert (s_img["captioned"], s_vid["captioned"]) == (2, 2)
    caps = _captions(wh, "grounded")
    box, cut = synth_videos["moving_box"][1], synth_videos["cut"][1]
    img = caps["imgAAAAAAAA_0"]
    assert img["modality"] == "image" and img["model"] is None
    assert f"dominated by {box.dominant_color}" in img["text"] and "labelled Acoustic guitar." in img["text"]
    vid = caps["vidAAAAAAAA_0"]["text"]
    assert f"dominated by {box.dominant_color}" in vid and "motion" in vid and "no visible motion" not in vid
    assert "one continuous shot" in vid
    vcut = caps["vidBBBBBBBB_0"]["text"]
    assert "1 scene cut" in vcut and cut.dominant_color in vcut and cut.second_color in vcut


def test_caption_stage_caches_and_isolates_bad_items(captioned_warehouse, tiny):
    wh = captioned_warehouse
    # Corrupt one frame after extraction: its batch must still caption the other item.
    bad = wh.media_path("image", "imgBBBBBBBB_0", "jpg")
    bad.write_bytes(b"not a jpeg")
    c = load_blip(str(tiny["blip"]), device="cpu", num_beams=2, max_new_tokens=6)
    first = caption_visual(wh, "image", captioner=c, batch_size=8)
    assert (first["captioned"], first["failed"]) == (1, 1) and "imgBBBBBBBB_0" in first["errors"][0]
    again = caption_visual(wh, "image", captioner=c, batch_size=8)
    assert (again["cached"], again["captioned"]) == (1, 0)
    other = load_blip(str(tiny["blip"]), device="cpu", num_beams=1, max_new_tokens=6)
    assert other.prompt_hash != c.prompt_hash
    assert caption_visual(wh, "image", captioner=other)["captioned"] == 1
    rows = _captions(wh, "blip")
    assert set(rows) == {"imgAAAAAAAA_0"} and rows["imgAAAAAAAA_0"]["prompt_hash"] == other.prompt_hash


def test_cli_caption_visual_grounded(captioned_warehouse):
    from typer.testing import CliRunner

    from m2ugen_data.cli import app

    res = CliRunner().invoke(app, ["-w", str(captioned_warehouse.root), "caption-visual", "--kind", "video"])
    assert res.exit_code == 0, res.output
    assert "captioned" in res.output and len(_captions(captioned_warehouse, "grounded")) == 2
    args = ["-w", str(captioned_warehouse.root), "caption-visual", "--kind", "video", "--backend", "blip"]
    args += ["--model-dir", str(captioned_warehouse.root / "no_model_here")]
    res = CliRunner().invoke(app, args)
    assert isinstance(res.exception, MissingDependencyError) and "config.json missing" in str(res.exception)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_blip_on_gpu_batched_equals_single(tiny, frames):
    c = load_blip(str(tiny["blip"]), device="cuda", dtype="float32", num_beams=2, max_new_tokens=8)
    assert_batch_invariant(c, frames)
