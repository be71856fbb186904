"""`m2ugen-infer` on the tiny preset written in the real formats: every mode writes its audio and JSON, batch
mode records a bad request and goes on, bad input gives one line; MusicGen conditioned on projector-style
states the way MusicGen conditions itself on text (mask, classifier-free guidance); AudioLDM2 on a tiny
random diffusers pipeline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from m2ugen_model.infer.cli import app

runner = CliRunner()
FAST = ["--max-new-tokens", "10", "--seconds", "0.05"]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """Good and corrupt inputs, next to the batch file that names them by relative path."""
    from PIL import Image

    d = tmp_path_factory.mktemp("media")
    sr = 16000
    t = np.arange(int(1.2 * sr)) / sr
    sf.write(d / "song.flac", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(d / "pic.png")
    _write_video(d / "clip.mp4", rng)
    (d / "bad.flac").write_bytes(b"fLaC" + bytes(200))
    (d / "bad.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    (d / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    return d


def _write_video(path: Path, rng) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=8)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8), format="rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode(None))


def _invoke(args: list[str]):
    result = runner.invoke(app, args)
    return result, (result.stdout or "") + (result.stderr or "")


def _error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


GOOD = [
    {"id": "cap", "task": "caption", "audio": "song.flac"},
    {"id": "qa", "task": "answer", "audio": "song.flac", "prompt": "Which instruments play?"},
    {"id": "t2m", "task": "text2music", "prompt": "An upbeat jazz tune with saxophone"},
    {"id": "i2m", "task": "image2music", "image": "pic.png"},
    {"id": "v2m", "task": "video2music", "video": "clip.mp4"},
    {"id": "ed", "task": "edit", "audio": "song.flac", "prompt": "Add a violin", "seed": 3},
]
BAD = [
    {"id": "badaudio", "task": "caption", "audio": "bad.flac"},
    {"id": "badimage", "task": "image2music", "image": "bad.jpg"},
    {"id": "badvideo", "task": "video2music", "video": "bad.mp4"},
    {"id": "toolong", "task": "text2music", "prompt": "jazz " * 600},
    {"id": "noaudio", "task": "edit", "prompt": "Add a violin"},
]


@pytest.fixture(scope="module")
def batch_run(tiny_model_dir, media, tmp_path_factory):
    lines = [json.dumps(r) for r in GOOD[:3]] + ["{not json"] + [json.dumps(r) for r in GOOD[3:] + BAD]
    (media / "requests.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path_factory.mktemp("out")
    result, output = _invoke(["--weights-dir", str(tiny_model_dir), *FAST, "batch", str(media / "requests.jsonl"),
                              "--out-dir", str(out)])
    return result, output, out


def test_batch_writes_every_mode(batch_run):
    result, output, out = batch_run
    assert result.exit_code == 0, output
    for req in GOOD:
        rec = json.loads((out / f"{req['id']}.json").read_text())
        assert rec["status"] == "ok" and rec["task"] == req["task"] and isinstance(rec["answer"], str)
        if req["task"] in ("caption", "answer"):
            assert "music" not in rec and not (out / f"{req['id']}.wav").exists()
            continue
        music = rec["music"]
        audio, sr = sf.read(out / music["file"])
        assert sr == music["sample_rate"] == 8000 and audio.ndim == 1 and len(audio) > 0
        assert music["conditioning"] == "projector" and music["guidance_scale"] == 3.0
        assert rec["aud_forced"] or rec["aud_emitted"]
    assert json.loads((out / "ed.json").read_text())["generation"]["seed"] == 3
    assert set(json.loads((out / "v2m.json").read_text())["inputs"]) == {"video"}
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in results] == ["cap", "qa", "t2m", "line-4", "i2m", "v2m", "ed"] + [b["id"] for b in BAD]


def test_batch_records_each_bad_request_in_one_line(batch_run):
    _, output, out = batch_run
    errors = {r["id"]: r["error"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())
              if r["status"] == "error"}
    assert set(errors) == {"line-4", "badaudio", "badimage", "badvideo", "toolong", "noaudio"}
    assert all("\n" not in e for e in errors.values())
    assert "bad.flac" in errors["badaudio"] and "undecodable audio" in errors["badaudio"]
    assert "bad.jpg" in errors["badimage"] and "undecodable image" in errors["badimage"]
    assert "bad.mp4" in errors["badvideo"] and "undecodable video" in errors["badvideo"]
    assert "more than the model's context of 512" in errors["toolong"]
    assert "needs audio" in errors["noaudio"] and errors["line-4"].startswith("line 4:")
    assert json.loads((out / "badvideo.json").read_text())["status"] == "error"


def test_batch_rerun_skips_what_is_done(batch_run, media, tmp_path):
    _, _, out = batch_run
    (media / "done.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOOD))
    before = {r["id"]: (out / f"{r['id']}.json").stat().st_mtime_ns for r in GOOD}
    # No weights directory is touched when nothing is left to do (a missing one would fail the run).
    result, output = _invoke(["--weights-dir", str(tmp_path / "gone"), "batch", str(media / "done.jsonl"),
                              "--out-dir", str(out)])
    assert result.exit_code == 0, output
    assert "6 already done" in output
    assert before == {r["id"]: (out / f"{r['id']}.json").stat().st_mtime_ns for r in GOOD}


def test_missing_weights_dir_is_one_line(tmp_path, media):
    result, output = _invoke(["--weights-dir", str(tmp_path / "nope"), "caption", str(media / "song.flac")])
    assert result.exit_code == 2
    assert "weights directory not found" in _error_line(output) and "nope" in output


def test_batch_stops_once_when_the_model_cannot_load(tmp_path):
    """Not a failure per request (each recorded as "Exit: 2" and the run reported done): one line, exit 2."""
    reqs = tmp_path / "r.jsonl"
    reqs.write_text("".join(json.dumps({"id": f"t{i}", "task": "text2music", "prompt": "jazz"}) + "\n" for i in range(2)))
    result, output = _invoke(["--weights-dir", str(tmp_path / "nope"), "batch", str(reqs), "--out-dir", str(tmp_path / "o")])
    assert result.exit_code == 2 and "weights directory not found" in output and "Exit" not in output
    assert not (tmp_path / "o" / "t0.json").exists()


def test_missing_llama_dir_for_7b_is_one_line(media):
    result, output = _invoke(["--preset", "7b", "caption", str(media / "song.flac")])
    assert result.exit_code == 2 and "needs --llama-dir" in _error_line(output)


def test_checkpoint_of_another_preset_is_one_line(tiny_model_dir, tmp_path, media):
    """A real stage-3 checkpoint of a differently sized model, refused before the weights are loaded."""
    from m2ugen_model.checkpoint import save_trainable
    from m2ugen_model.presets import init_model, tiny
    from m2ugen_model.stages import set_stage

    other = init_model(tiny(dim=32, ffn_dim=64, lora_rank=2))
    set_stage(other, 3)
    save_trainable(other, tmp_path / "ckpt")
    result, output = _invoke(["--weights-dir", str(tiny_model_dir), "--checkpoint", str(tmp_path / "ckpt"),
                              "caption", str(media / "song.flac")])
    line = _error_line(output)
    assert result.exit_code == 2 and "does not fit this model" in line and "dim 32" in line
    result, output = _invoke(["--weights-dir", str(tiny_model_dir), "--checkpoint", str(tmp_path / "absent"),
                              "caption", str(media / "song.flac")])
    assert "checkpoint not found" in _error_line(output)


def test_corrupt_input_is_one_line_before_loading(tmp_path, media):
    for args in (["caption", str(media / "bad.flac")],
                 ["compose", "music", "--image", str(media / "bad.jpg"), "--out-dir", str(tmp_path)]):
        result, output = _invoke(["--weights-dir", str(tmp_path / "never-read"), *args])
        assert result.exit_code == 2 and "undecodable" in _error_line(output)


def test_loads_our_training_checkpoint(tiny_model_dir, tmp_path):
    """A run directory from m2ugen-train's checkpoint layout: checkpoints/latest -> step_N/trainable.safetensors."""
    from safetensors.torch import save_file

    from m2ugen_model.infer.load import ModelSpec, load_for_inference
    from m2ugen_model.presets import build_model
    from m2ugen_model.stages import trainable_parameters

    model, _ = build_model(weights_dir=tiny_model_dir, load_encoders=False)
    state = {n: torch.full_like(p, 0.125) for n, p in trainable_parameters(model, 3).items()}
    step = tmp_path / "run" / "checkpoints" / "step_0000007"
    step.mkdir(parents=True)
    save_file(state, str(step / "trainable.safetensors"))
    (step.parent / "latest").write_text("step_0000007\n")
    loaded, _, info = load_for_inference(ModelSpec(weights_dir=str(tiny_model_dir), checkpoint=str(tmp_path / "run")))
    assert info["checkpoint"].endswith("step_0000007/trainable.safetensors") and info["checkpoint_kind"] == "ours"
    gate = "llm.layers.1.attention.gate"
    assert torch.equal(dict(loaded.named_parameters())[gate], state[gate])


def test_released_pth_checkpoint(tiny_model_dir, tmp_path, media):
    from m2ugen_model.checkpoint import ours_to_released
    from m2ugen_model.infer.cli import InferRequest, Session, Settings, run_request
    from m2ugen_model.infer.load import ModelSpec
    from m2ugen_model.presets import build_model
    from m2ugen_model.stages import set_stage

    model, _ = build_model(weights_dir=tiny_model_dir, load_encoders=False)
    set_stage(model, 3)
    # the released layout keeps [AUD] rows inside the full vocabulary tables, which stay frozen here
    state = {n: p.detach() + 0.01 for n, p in model.named_parameters()
             if p.requires_grad and not n.startswith("llm.aud_")}
    torch.save({"model": ours_to_released(state, model.cfg)}, tmp_path / "checkpoint.pth")
    session = Session(ModelSpec(weights_dir=str(tiny_model_dir), checkpoint=str(tmp_path / "checkpoint.pth")),
                      Settings(max_new_tokens=4))
    rec = run_request(session, InferRequest(id="q", task="answer", audio=str(media / "song.flac"), prompt="Tempo?"),
                      tmp_path / "out")
    assert rec["model"]["checkpoint_kind"] == "released" and (tmp_path / "out" / "q.json").is_file()
    loaded = dict(session.model()[0].named_parameters())
    assert torch.allclose(loaded["prefix_query.weight"], state["prefix_query.weight"])


def test_offloaded_layers_give_the_same_logits(tiny_model_dir):
    """accelerate's offload hooks around LLaMA blocks (weights kept in CPU memory, streamed to the
    execution device per forward): same logits. On a GPU the execution device is the card."""
    pytest.importorskip("accelerate")
    from m2ugen_model.infer.lowmem import offload_llm_layers
    from m2ugen_model.presets import build_model

    model, tok = build_model(weights_dir=tiny_model_dir, load_encoders=False)
    ids = torch.tensor([tok("A calm piano piece").input_ids])
    with torch.no_grad():
        ref = model.llm(ids)[0]
        assert offload_llm_layers(model, 2, "cpu") == [0, 1]
        assert model.llm.layers[0].attention.wq.weight.device.type == "meta"  # held by the hook's weights map
        torch.testing.assert_close(model.llm(ids)[0], ref)


def test_8bit_without_cuda_is_one_line(tiny_model_dir, media):
    result, output = _invoke(["--weights-dir", str(tiny_model_dir), "--load-in-8bit", "caption",
                              str(media / "song.flac")])
    assert result.exit_code == 2 and "needs a CUDA --device" in _error_line(output)


def test_music_request_forces_aud_in_place_of_the_end(tiny_model_dir):
    """A music request whose answer ends (EOS at step 2) gets [AUD0..7] there and music; a question does not."""
    from m2ugen_model.infer.inference import generate_batch
    from m2ugen_model.presets import build_model

    model, tok = build_model(weights_dir=tiny_model_dir, load_encoders=False, load_decoder=True)
    aud0, eos = model.cfg.vocab_size, tok.eos_token_id

    def eos_at_step_2(step, ids, logits):
        logits[:, aud0:] = -1e9  # the model never chooses [AUD] itself here
        if step == 2:
            logits[:, eos] = 1e9
        return logits

    music, question = generate_batch(model, tok, ["Compose a calm piano piece", "What is the tempo?"],
                                     max_new_tokens=16, logits_processor=eos_at_step_2, force_aud=[True, False],
                                     music_seconds=0.01)
    assert music.aud_forced and music.token_ids[2:10] == list(range(aud0, aud0 + 8))
    assert music.music is not None and music.conditioning == "projector"
    assert not question.aud_forced and len(question.token_ids) == 2 and question.music is None  # EOS dropped


def test_console_script_is_installed():
    exe = shutil.which("m2ugen-infer", path=str(Path(sys.executable).parent))
    assert exe, "pip install -e . registers m2ugen-infer"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "compose" in out.stdout and "batch" in out.stdout


# ---------------------------------------------------------------- decoder conditioning
@pytest.fixture(scope="module")
def musicgen(tiny_model_dir):
    from m2ugen_model.decoders import load_musicgen

    dec = load_musicgen(tiny_model_dir / "musicgen")
    dec.max_text_tokens = 16
    # HF's default init (std 0.02) leaves the tiny decoder deaf to its conditioning; widen it so that
    # guidance and masking change what it samples (as they do in a trained MusicGen)
    with torch.no_grad():
        for p in dec.model.decoder.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.5)
        for name, b in dec.model.audio_encoder.named_buffers():
            if name.endswith("codebook.embed"):  # zeros in a fresh Encodec: every code would sound the same
                b.normal_()
    return dec


def test_projector_path_equals_musicgen_text_conditioning_with_cfg(musicgen):
    """MusicGen fed its own T5 states through our encoder-states path (mask + unconditional half built
    here) samples exactly what MusicGen's text path samples, guidance included; and guidance matters."""
    texts = ["upbeat rock song with guitar", "calm piano"]
    enc = musicgen._text_inputs(texts)
    assert int(enc["attention_mask"].sum()) < enc["attention_mask"].numel()  # some padding to mask
    states = musicgen.model.text_encoder(**enc).last_hidden_state

    seconds = 12 / musicgen.model.config.audio_encoder.frame_rate
    torch.manual_seed(5)
    ref = musicgen.model.generate(**enc, max_new_tokens=12, do_sample=True, guidance_scale=3.0)[:, 0].numpy()
    mask = enc["attention_mask"]
    ours = musicgen.generate(states, seconds=seconds, attention_mask=mask, guidance_scale=3.0, seed=5)
    np.testing.assert_array_equal(ours, ref)
    no_cfg = musicgen.generate(states, seconds=seconds, attention_mask=mask, guidance_scale=1.0, seed=5)
    assert not np.array_equal(no_cfg, ref)
    unmasked = musicgen.generate(states, seconds=seconds, guidance_scale=3.0, seed=5)
    assert not np.array_equal(unmasked, ref)


def test_masked_positions_are_ignored(musicgen):
    torch.manual_seed(0)
    cond = torch.randn(1, 16, 16)
    mask = torch.zeros(1, 16, dtype=torch.long)
    mask[0, :6] = 1
    noisy = cond.clone()
    noisy[0, 6:] += 5 * torch.randn(10, 16)
    a = musicgen.generate(cond, seconds=0.04, attention_mask=mask, seed=1)
    b = musicgen.generate(noisy, seconds=0.04, attention_mask=mask, seed=1)
    np.testing.assert_array_equal(a, b)


def test_text_conditioning_prompts_the_decoder_with_the_answer(tiny_model_dir, tmp_path, media):
    from m2ugen_model.infer.cli import InferRequest, Session, Settings, run_request
    from m2ugen_model.infer.load import ModelSpec

    session = Session(ModelSpec(weights_dir=str(tiny_model_dir)),
                      Settings(max_new_tokens=10, seconds=0.02, decoder_conditioning="text"))
    rec = run_request(session, InferRequest(id="t", task="text2music", prompt="A calm piano piece"), tmp_path)
    m = rec["music"]
    assert m["conditioning"] == "text" and m["decoder_text"] == (rec["answer"] or "A calm piano piece")
    model, tok, _ = session.model()
    enc = model.decoder._text_inputs([m["decoder_text"]])
    torch.manual_seed(0)
    ref = model.decoder.model.generate(**enc, max_new_tokens=model.decoder._frames(0.02), guidance_scale=3.0,
                                       do_sample=True)[0, 0].numpy()
    audio, _ = sf.read(tmp_path / "t.wav", dtype="float32")
    np.testing.assert_allclose(audio, ref, atol=1e-6)


def test_audioldm2_decoder_on_a_tiny_pipeline(tiny_model_dir, tmp_path):
    pytest.importorskip("diffusers")
    from m2ugen_model.infer.cli import InferRequest, Session, Settings, run_request
    from m2ugen_model.infer.load import ModelSpec
    from m2ugen_model.testing.tiny_audioldm2 import write_tiny_audioldm2

    write_tiny_audioldm2(tmp_path / "audioldm2")
    preset = json.loads((tiny_model_dir / "preset.json").read_text())
    for k in ("llama_dir", "mert_dir", "vit_dir", "vivit_dir"):
        preset[k] = str(tiny_model_dir / preset[k])
    preset.update(decoder="audioldm2", decoder_dir="audioldm2", decoder_tokens=1, decoder_dim=16 * 32 + 8 * 16)
    (tmp_path / "preset.json").write_text(json.dumps(preset))
    for mode in ("projector", "text"):
        session = Session(ModelSpec(weights_dir=str(tmp_path)),
                          Settings(max_new_tokens=10, seconds=0.032, decoder_conditioning=mode, steps=2))
        rec = run_request(session, InferRequest(id=mode, task="text2music", prompt="A calm piano piece"), tmp_path)
        audio, sr = sf.read(tmp_path / f"{mode}.wav")
        assert rec["music"]["decoder"] == "audioldm2" and rec["music"]["steps"] == 2
        assert sr == 16000 and len(audio) == 512 and np.isfinite(audio).all()
    # the stage-2 target of a caption has the width the projector produces
    target = session.model()[0].decoder.text_embeddings(["a calm piano piece"])
    assert target.shape == (1, 1, 640)
