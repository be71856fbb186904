"""The visual captioners in their published layouts, loaded through ``m2ugen-data caption-visual``.

BLIP-base is published whole; the video captioner (Neleac/timesformer-gpt2-video-captioning) is published
without processor or tokenizer and borrows them from MCG-NJU/videomae-base and gpt2, as its model card does:
by default they come from those repositories' snapshots in the local Hugging Face cache (a fake cache here),
an explicit directory overrides them, and a missing one is named in one line. Fixtures are random: they
prove the files load and run, not caption quality.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hf_cache import hf_cache, install_in_hf_cache  # noqa: F401  (hf_cache: a fixture)
from typer.testing import CliRunner

from m2ugen_data.cli import app
from m2ugen_data.errors import MissingDependencyError
from m2ugen_data.preflight import PreflightError
from m2ugen_data.vision.blip import PROMPT, load_blip
from m2ugen_data.testing.vision_layouts import write_blip_captioning_base, write_video_captioner_sources
from m2ugen_data.vision.media_stage import run_media
from m2ugen_data.vision.video_gpt2 import PROCESSOR_SOURCE, TOKENIZER_SOURCE, load_video_gpt2
from vision_warehouse import seed_warehouse

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny models run fastest on one thread


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published_vision")
    return {"blip": write_blip_captioning_base(root / "blip-image-captioning-base")} | write_video_captioner_sources(root)


@pytest.fixture
def media_wh(warehouse, synth_videos):
    seed_warehouse(warehouse, [("imgAAAAAAAA_0", "muimage", synth_videos["moving_box"][0]),
                               ("imgBBBBBBBB_0", "muimage", synth_videos["testsrc"][0]),
                               ("vidAAAAAAAA_0", "muvideo", synth_videos["moving_box"][0]),
                               ("vidBBBBBBBB_0", "muvideo", synth_videos["cut"][0])])
    run_media(warehouse, "image")
    run_media(warehouse, "video")
    return warehouse


def _caption_visual(wh, *args: str):
    return CliRunner().invoke(app, ["-w", str(wh.root), "caption-visual", "--device", "cpu", *args])


def _captions(wh, backend: str) -> dict[str, dict]:
    return {r["item_id"]: r for r in wh.read("captions", where=f"backend = '{backend}'").to_pylist()}


def test_blip_published_layout_through_the_cli(published, media_wh):
    res = _caption_visual(media_wh, "--kind", "image", "--backend", "blip", "--model-dir", str(published["blip"]))
    assert res.exit_code == 0, (res.output, res.exception)
    caps = _captions(media_wh, "blip")
    assert set(caps) == {"imgAAAAAAAA_0", "imgBBBBBBBB_0"}
    assert all(c["text"].startswith(PROMPT) and c["model"] == str(published["blip"].resolve()) for c in caps.values())


def test_blip_reads_the_legacy_bin_when_it_is_the_only_weights(published, tmp_path):
    d = shutil.copytree(published["blip"], tmp_path / "blip")
    (d / "model.safetensors").unlink()
    assert load_blip(str(d), device="cpu", num_beams=1, max_new_tokens=4).backend == "blip"


def test_video_captioner_takes_processor_and_tokenizer_from_their_repositories(published, media_wh, hf_cache):
    """Default sources: MCG-NJU/videomae-base and gpt2 from the (fake) local HF cache."""
    model = published["model"]
    assert not (model / "preprocessor_config.json").exists() and not (model / "tokenizer.json").exists()
    install_in_hf_cache(hf_cache, PROCESSOR_SOURCE, published["processor"])
    install_in_hf_cache(hf_cache, TOKENIZER_SOURCE, published["tokenizer"])
    res = _caption_visual(media_wh, "--kind", "video", "--backend", "video-gpt2", "--model-dir", str(model))
    assert res.exit_code == 0, (res.output, res.exception)
    caps = _captions(media_wh, "video-gpt2")
    assert set(caps) == {"vidAAAAAAAA_0", "vidBBBBBBBB_0"} and all(c["text"] for c in caps.values())
    # explicit directories give the same captioner settings apart from the recorded sources
    explicit = load_video_gpt2(str(model), device="cpu", processor_dir=published["processor"],
                               tokenizer_dir=published["tokenizer"])
    cached = load_video_gpt2(str(model), device="cpu")
    assert explicit.prompt_hash != cached.prompt_hash  # sources are part of the caption cache key
    assert next(iter(caps.values()))["prompt_hash"] == cached.prompt_hash


def test_video_captioner_batched_equals_single(published, synth_videos):
    from m2ugen_data.vision.models import VisualItem

    c = load_video_gpt2(str(published["model"]), device="cpu", processor_dir=published["processor"],
                        tokenizer_dir=published["tokenizer"], num_beams=2, max_new_tokens=6)
    items = [VisualItem(t.clip_id, "video", p) for p, t in synth_videos.values()]
    batched = c.caption(items)
    assert batched == [c.caption([it])[0] for it in items] and len(set(batched)) > 1


def test_missing_processor_or_tokenizer_is_named_in_one_line(published, hf_cache, tmp_path):
    model = str(published["model"])
    with pytest.raises(MissingDependencyError) as e:
        load_video_gpt2(model, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "MCG-NJU/videomae-base" in msg and "--processor-dir" in msg
    install_in_hf_cache(hf_cache, PROCESSOR_SOURCE, published["processor"])
    with pytest.raises(MissingDependencyError, match=r"tokenizer comes from gpt2 .*--tokenizer-dir"):
        load_video_gpt2(model, device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingDependencyError, match=rf"no tokenizer here \({empty}\)"):
        load_video_gpt2(model, device="cpu", tokenizer_dir=empty)


def test_wrong_architecture_and_truncated_weights_are_refused(published, tmp_path, media_wh):
    res = _caption_visual(media_wh, "--kind", "video", "--backend", "video-gpt2", "--model-dir", str(published["blip"]))
    assert isinstance(res.exception, PreflightError)
    assert "expected a VisionEncoderDecoderModel, found BlipForConditionalGeneration" in str(res.exception)
    res = _caption_visual(media_wh, "--kind", "image", "--backend", "blip", "--model-dir", str(published["model"]))
    assert "expected BlipForConditionalGeneration, found VisionEncoderDecoderModel" in str(res.exception)
    d = shutil.copytree(published["blip"], tmp_path / "blip")
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(PreflightError) as e:
        load_blip(str(d), device="cpu")
    assert "\n" not in str(e.value) and "truncated safetensors" in str(e.value) and str(weights) in str(e.value)
