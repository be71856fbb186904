"""Every real checkpoint the model side loads, written tiny in its published layout
(m2ugen_model/testing/published_layouts.py) and loaded through the commands users run: m2ugen-infer,
m2ugen-train and m2ugen-data caption --backend mu-llama. Also: MERT without hub code equals a re-derivation
of its published forward, released checkpoint.pth loads safely, MU-LLaMA gets the prompt it was trained
with, ViViT gets consecutive frames."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from m2ugen_model.infer.cli import app as infer_app
from m2ugen_model.testing import published_layouts as pl

runner = CliRunner()
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def release(published_m2ugen) -> Path:
    """M2UGen with every part as published (LLaMA-2 HF layout named in preset.json; Meta's download beside it)."""
    return published_m2ugen


@pytest.fixture(scope="module")
def meta_preset(release, tmp_path_factory) -> Path:
    """The same model with LLaMA-2 from Meta's download (llama-2-7b/ + tokenizer.model one level up)."""
    d = tmp_path_factory.mktemp("meta_preset")
    preset = json.loads((release / "preset.json").read_text())
    preset = {**preset, **{k: str(release / preset[k]) for k in ("mert_dir", "vit_dir", "vivit_dir", "decoder_dir")},
              "llama_dir": str(release / "llama-2")}
    (d / "preset.json").write_text(json.dumps(preset))
    return d


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("media") / "song.wav"
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    sf.write(p, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)
    return p


def _invoke(args: list[str]):
    result = runner.invoke(infer_app, args)
    return result, (result.stdout or "") + (result.stderr or "")


def _error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


# ---------------------------------------------------------------- LLaMA-2, both layouts
def test_llama_hf_and_meta_layouts_give_transformers_logits(release, meta_preset, song):
    """Both published LLaMA-2 layouts load through m2ugen-infer's loader to a model whose logits equal
    transformers' LlamaForCausalLM reading the HF snapshot; both tokenizers (tokenizer.json, and Meta's
    tokenizer.model one level up) give the same ids with <s> first; m2ugen-infer answers from each."""
    from transformers import LlamaForCausalLM

    from m2ugen_model.infer.load import ModelSpec, load_for_inference

    hf = LlamaForCausalLM.from_pretrained(str(release / "Llama-2-7b-hf"), dtype=torch.float32).eval()
    text = "Describe the music in detail including details such as instruments used"
    for weights in (release, meta_preset):
        model, tok, _ = load_for_inference(ModelSpec(weights_dir=str(weights), device="cpu"))
        ids = torch.tensor([tok(text).input_ids])
        assert ids[0, 0].item() == tok.bos_token_id == 1
        with torch.no_grad():
            ours = model.llm(ids)[0][..., : model.cfg.vocab_size]
            ref = hf(ids).logits
        torch.testing.assert_close(ours, ref, rtol=2e-3, atol=2e-3)  # weights are fp16 (HF) / bf16 (Meta) on disk
        if weights is release:
            hf_ids = ids
        else:
            assert torch.equal(ids, hf_ids)
        result, output = _invoke(["--weights-dir", str(weights), "--max-new-tokens", "3", "answer", str(song),
                                  "Which instruments play?"])
        assert result.exit_code == 0, output


def test_meta_layout_without_a_tokenizer_is_one_line(release, tmp_path, song):
    meta = tmp_path / "llama-2"
    shutil.copytree(release / "llama-2" / "llama-2-7b", meta / "llama-2-7b")  # no tokenizer.model anywhere
    preset = json.loads((release / "preset.json").read_text())
    preset = {**preset, **{k: str(release / preset[k]) for k in ("mert_dir", "vit_dir", "vivit_dir", "decoder_dir")},
              "llama_dir": str(meta)}
    (tmp_path / "preset.json").write_text(json.dumps(preset))
    result, output = _invoke(["--weights-dir", str(tmp_path), "caption", str(song)])
    line = _error_line(output)
    assert result.exit_code == 2 and "no tokenizer" in line and "tokenizer.model" in line


# ---------------------------------------------------------------- MERT without hub code
def test_mert_hidden_states_equal_the_published_forward(release):
    """MERT-v1 in transformers' HubertModel: the hub .py files are never imported (they raise if they are),
    and the 25-style hidden states equal tests/support/mert_reference.py, which writes MERT's published forward out in
    plain tensor operations on the raw pytorch_model.bin (weight_g/weight_v included)."""
    from mert_reference import hidden_states as reference

    from m2ugen_model.encoders import load_mert
    from m2ugen_model.weights.mert import hidden_states

    d = release / "MERT-v1-330M"
    model, processor = load_mert(d)
    assert type(model).__name__ == "HubertModel" and processor.sampling_rate == 24000
    wave = np.random.default_rng(0).standard_normal(9600).astype(np.float32) * 0.2
    values = processor(wave, sampling_rate=24000, return_tensors="pt")["input_values"]
    assert torch.equal(values[0], torch.from_numpy(wave))  # do_normalize: false, as published
    ours = hidden_states(model, values)
    ref = reference(torch.load(d / "pytorch_model.bin", weights_only=True), json.loads((d / "config.json").read_text()),
                    values)
    assert len(ours) == len(ref) == pl.SIZES.mert_layers + 1
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # transformers 5's own last hidden state is the pre-LayerNorm one: the published state differs from it
    assert not torch.allclose(model(values, output_hidden_states=True).hidden_states[-1], ref[-1], atol=1e-3)


@pytest.mark.parametrize("switch", ["feature_extractor_cqt", "deepnorm"])
def test_mert_that_needs_its_hub_code_is_one_line(tmp_path, switch, song, release):
    d = pl.write_mert_v1(tmp_path / "mert", **{switch: True})
    preset = json.loads((release / "preset.json").read_text())
    preset = {**preset, **{k: str(release / preset[k]) for k in ("llama_dir", "vit_dir", "vivit_dir", "decoder_dir")},
              "mert_dir": str(d)}
    (tmp_path / "preset.json").write_text(json.dumps(preset))
    result, output = _invoke(["--weights-dir", str(tmp_path), "caption", str(song)])
    line = _error_line(output)
    assert "only its hub code" in line and "does not execute hub code" in line and str(d) in line


# ---------------------------------------------------------------- ViT, ViViT, MusicGen as published
def test_vision_encoders_read_the_base_model_out_of_the_classifiers(release):
    """google/vit-base-patch16-224 and google/vivit-b-16x2-kinetics400 are classifiers: the encoders are their
    base models, loaded with every weight (equal to the classifier's own base model's outputs)."""
    from transformers import ViTForImageClassification, VivitForVideoClassification

    from m2ugen_model.encoders import load_vit, load_vivit

    vit, vit_proc = load_vit(release / "vit-base-patch16-224")
    img = np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    pv = vit_proc(images=[img], return_tensors="pt")["pixel_values"]
    assert pv.shape[-1] == pl.SIZES.image_side  # the 160-byte published preprocessor config, size as an int
    ref = ViTForImageClassification.from_pretrained(str(release / "vit-base-patch16-224")).vit
    with torch.no_grad():
        torch.testing.assert_close(vit(pixel_values=pv).last_hidden_state, ref(pixel_values=pv).last_hidden_state)
    vivit, vivit_proc = load_vivit(release / "vivit-b-16x2-kinetics400")
    clip = list(np.random.default_rng(2).integers(0, 255, (pl.SIZES.video_frames, 36, 36, 3), dtype=np.uint8))
    pv = vivit_proc([clip], return_tensors="pt")["pixel_values"]
    ref = VivitForVideoClassification.from_pretrained(str(release / "vivit-b-16x2-kinetics400")).vivit
    with torch.no_grad():
        torch.testing.assert_close(vivit(pixel_values=pv).last_hidden_state, ref(pixel_values=pv).last_hidden_state)


def test_musicgen_legacy_weight_norm_and_t5_tokenizer_load(release):
    """facebook/musicgen-*'s pytorch_model.bin stores EnCodec's weight norm as weight_g/weight_v: the loaded
    convolutions use exactly those tensors (none left at random init); the T5 tokenizer from spiece.model."""
    from m2ugen_model.decoders import load_musicgen

    d = release / "musicgen-small"
    dec = load_musicgen(d)
    state = torch.load(d / "pytorch_model.bin", weights_only=True)
    g_keys = [k for k in state if k.endswith(".weight_g")]
    assert g_keys
    for k in g_keys:
        g, v = state[k], state[k[: -len("g")] + "v"]
        module = dec.model.get_submodule(k[: -len(".weight_g")])
        torch.testing.assert_close(module.weight, v * (g / v.norm(dim=tuple(range(1, v.ndim)), keepdim=True)))
    ids = dec.tokenizer("a calm piano piece").input_ids
    assert ids[-1] == 1 and len(dec.tokenizer) == 100 + len(pl_pieces(d))  # </s> last; spiece pieces + 100 extra ids


def pl_pieces(d: Path) -> list:
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    proto.ParseFromString((d / "spiece.model").read_bytes())
    return list(proto.pieces)


def test_audioldm2_published_index_composes_music(release, tmp_path):
    """cvssp/audioldm2-music's model_index.json (``audioldm2`` module entries) through m2ugen-infer compose."""
    pytest.importorskip("diffusers")
    dec = pl.write_audioldm2(tmp_path / "audioldm2-music")
    assert json.loads((dec / "model_index.json").read_text())["unet"] == ["audioldm2", "AudioLDM2UNet2DConditionModel"]
    cfg = pl.m2ugen_sizes_config(decoder="audioldm2")
    preset = json.loads((release / "preset.json").read_text())
    paths = {k: str(release / preset[k]) for k in ("llama_dir", "mert_dir", "vit_dir", "vivit_dir")}
    (tmp_path / "preset.json").write_text(json.dumps(cfg.replace(**paths, decoder_dir=str(dec)).to_dict()))
    result, output = _invoke(["--weights-dir", str(tmp_path), "--max-new-tokens", "4", "--seconds", "0.032",
                              "--steps", "2", "compose", "calm piano", "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, output
    rec = json.loads((tmp_path / "out" / "music.json").read_text())
    assert rec["music"]["decoder"] == "audioldm2" and (tmp_path / "out" / "music.wav").is_file()


# ---------------------------------------------------------------- released checkpoint.pth
def test_released_m2ugen_checkpoint_loads_safely_through_m2ugen_infer(release, song, tmp_path):
    """The released {"model","optimizer","scaler","epoch","args": Namespace} loads with weights_only (its
    Namespace allowed), skipping the frozen encoders and MusicGen it carries; the adapters, LoRA, gates and
    projector end up where the key map says."""
    from m2ugen_model.checkpoint import read_released, released_to_ours
    from m2ugen_model.infer.cli import InferRequest, Session, Settings, run_request
    from m2ugen_model.infer.load import ModelSpec
    from m2ugen_model.weights.files import load_pth

    ckpt = release / "M2UGen-MusicGen" / "checkpoint.pth"
    raw = load_pth(ckpt)
    assert set(raw) == {"model", "optimizer", "scaler", "epoch", "args"} and isinstance(raw["args"], argparse.Namespace)
    assert raw["model"]["llama.layers.0.attention.wq.weight"].dtype == torch.float16  # frozen base, as released
    assert any(k.startswith(("mert_model.", "vit_model.", "vivit_model.", "generation_model.")) for k in raw["model"])
    session = Session(ModelSpec(weights_dir=str(release), checkpoint=str(ckpt), device="cpu"), Settings(max_new_tokens=3))
    rec = run_request(session, InferRequest(id="q", task="answer", audio=str(song), prompt="Tempo?"), tmp_path)
    assert rec["model"]["checkpoint_kind"] == "released"
    model = session.model()[0]
    mapped, _ = released_to_ours(read_released(ckpt), model.cfg)
    params = dict(model.named_parameters())
    for name in ("adapters.audio.blocks.0.w1.weight", "adapters.video.proj.weight", "prefix_query.weight",
                 "llm.layers.3.attention.wq.lora_b.weight", "llm.layers.19.attention.gate", "projector.fc_out.weight"):
        torch.testing.assert_close(params[name], mapped[name].to(params[name].dtype))


def test_pth_refusals_are_one_line_naming_the_file(release, tmp_path, song):
    """A pickled class beyond the allowlist is refused before unpickling; a truncated file is named."""
    import pathlib

    from m2ugen_model.weights.files import WeightFileError, load_pth

    evil = tmp_path / "checkpoint.pth"
    torch.save({"model": {}, "args": pathlib.PurePosixPath("/x")}, evil)
    with pytest.raises(WeightFileError, match="refused, it pickles pathlib.PurePosixPath"):
        load_pth(evil)
    cut = tmp_path / "cut.pth"
    data = (release / "M2UGen-MusicGen" / "checkpoint.pth").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightFileError, match=r"cut\.pth: truncated"):
        load_pth(cut)
    result, output = _invoke(["--weights-dir", str(release), "--checkpoint", str(cut), "caption", str(song)])
    assert "cut.pth" in _error_line(output) and "download it again" in output


# ---------------------------------------------------------------- MU-LLaMA as released
@pytest.fixture(scope="module")
def mu_llama_ckpts(published_mu_llama) -> Path:
    return published_mu_llama


def test_mu_llama_release_uses_the_prompt_it_was_trained_with(mu_llama_ckpts):
    """MU-LLaMA's ckpts folder (LLaMA/7B Meta shards + tokenizer.model, MERT-v1-330M, checkpoint.pth) loads
    with sizes from its directories; the prompt carries "### Input:\\n<built-in function input>", and the
    generated first token is the one the model gives that prompt (not the no-input template)."""
    from m2ugen_model.infer.inference import format_prompt, generate_batch
    from m2ugen_model.mu_llama import load_mu_llama

    model, tok = load_mu_llama(mu_llama_ckpts, device="auto")
    assert model.cfg.n_layers == pl.SIZES.n_layers and model.cfg.adapter_layers == 20
    assert model.cfg.prompt_input == "<built-in function input>"
    q = "Describe the music in detail"
    assert "### Input:\n<built-in function input>\n\n### Response:" in format_prompt(q, model.cfg.prompt_input)
    feats = {"audio": torch.randn(1, *model.cfg.audio_feat_shape)}
    first = generate_batch(model, tok, [q], feats, max_new_tokens=1, stop=())[0].token_ids[0]
    with torch.no_grad():
        tokens = model.adapter_tokens(model.modality_vectors(feats), {}, 1)
        logits = {t: model.llm(torch.tensor([tok(format_prompt(q, inp)).input_ids]), None, tokens)[0][0, -1]
                  for t, inp in (("released", model.cfg.prompt_input), ("no_input", None))}
    assert first == int(logits["released"].argmax())
    assert not torch.allclose(logits["released"], logits["no_input"])


@pytest.mark.slow
def test_mu_llama_release_captions_through_m2ugen_data(mu_llama_ckpts, synth_corpus, warehouse):
    """m2ugen-data caption --backend mu-llama --model-dir ckpts: the released layout end to end."""
    from rows import with_nulls
    from synth_text import fill_warehouse, musical_truth

    from m2ugen_data.cli import app as data_app
    from m2ugen_data.warehouse import utc_now

    truth = musical_truth(synth_corpus)[:2]
    fill_warehouse(warehouse, truth)
    audio = {p.stem: p for p in (synth_corpus / "audio").glob("*")}
    warehouse.write_batch("clips", [with_nulls("clips", {"clip_id": r["clip_id"], "status": "ok", "attempts": 1,
                                                         "audio_path": str(audio[r["clip_id"]]),
                                                         "updated_at": utc_now()}) for r in truth], "test")
    res = CliRunner().invoke(data_app, ["-w", str(warehouse.root), "caption", "--backend", "mu-llama",
                                        "--model-dir", str(mu_llama_ckpts)])
    assert res.exit_code == 0, res.output
    rows = warehouse.read("captions").to_pylist()
    assert {r["item_id"] for r in rows} == {r["clip_id"] for r in truth}
    assert all(r["backend"] == "mu-llama" and isinstance(r["text"], str) for r in rows)


# ---------------------------------------------------------------- ViViT frames, image and video through the command
def test_vivit_takes_consecutive_frames_by_default(release):
    """The released input: a window of consecutive frames (here the middle 4 of 10), not frames spread out."""
    from m2ugen_model.encoders import Encoders, load_vivit
    from m2ugen_model.video_frames import clip_indices

    assert clip_indices(100, 32).tolist() == list(range(34, 66))  # 32 in a row, centred
    assert clip_indices(10, 4, "even").tolist() == [0, 3, 6, 9]
    assert clip_indices(3, 5).tolist() == [0, 1, 2, 2, 2]
    vivit, proc = load_vivit(release / "vivit-b-16x2-kinetics400")
    enc = Encoders(vivit=vivit, vivit_processor=proc, video_frames=pl.SIZES.video_frames)
    video = np.random.default_rng(3).integers(0, 255, (10, 36, 36, 3), dtype=np.uint8)
    torch.testing.assert_close(enc.encode_videos([video]), enc.encode_videos([video[3:7]]))
    assert not torch.allclose(enc.encode_videos([video]), enc.encode_videos([video[[0, 3, 6, 9]]]))


@pytest.mark.slow
def test_image_and_video_to_music_through_m2ugen_infer(release, tmp_path):
    """ViT, ViViT and MusicGen as published, with the released M2UGen checkpoint, from the command line."""
    import av
    from PIL import Image

    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "pic.png")
    with av.open(str(tmp_path / "clip.mp4"), "w") as c:
        s = c.add_stream("mpeg4", rate=8)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        for _ in range(12):
            c.mux(s.encode(av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8),
                                                      format="rgb24")))
        c.mux(s.encode(None))
    ckpt = str(release / "M2UGen-MusicGen" / "checkpoint.pth")
    for flag, media in (("--image", "pic.png"), ("--video", "clip.mp4")):
        result, output = _invoke(["--weights-dir", str(release), "--checkpoint", ckpt, "--max-new-tokens", "4",
                                  "--seconds", "0.02", "compose", flag, str(tmp_path / media), "--id", flag[2:],
                                  "--out-dir", str(tmp_path / "out")])
        assert result.exit_code == 0, output
        rec = json.loads((tmp_path / "out" / f"{flag[2:]}.json").read_text())
        assert rec["model"]["checkpoint_kind"] == "released" and rec["music"]["decoder"] == "musicgen"


# ---------------------------------------------------------------- m2ugen-train on published weights
def test_m2ugen_train_runs_on_the_published_layouts(release, tmp_path):
    """m2ugen-train --preset 7b --weights-dir <published layouts>: the preflight passes, one step trains."""
    from train_fixtures import write_mucaps

    from m2ugen_model.train.cli import app as train_app

    write_mucaps(tmp_path, 2, 2)
    args = ["--shards", str(tmp_path), "--stage", "1", "--preset", "7b", "--weights-dir", str(release),
            "--max-steps", "1", "--batch-size", "2", "--num-workers", "0", "--max-len", "256",
            "--out", str(tmp_path / "run"), "--no-progress"]
    res = CliRunner().invoke(train_app, [*args, "--check"])
    assert res.exit_code == 0 and "nothing missing" in res.output, res.output
    res = CliRunner().invoke(train_app, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "checkpoints" / "latest").is_file()
