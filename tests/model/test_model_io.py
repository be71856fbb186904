"""The tiny preset on disk in the real formats, loaded through the same code as real weights: HF/Meta
LLaMA parity, the zero-init property, encoders, decoder targets, generation and the MU-LLaMA captioner."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from m2ugen_model.hf_io import load_meta_llama
from m2ugen_model.infer.inference import generate, generate_batch
from m2ugen_model.presets import build_model, init_model, write_tiny_weights


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return build_model(weights_dir=tiny_model_dir, load_decoder=True)


@pytest.fixture(scope="module")
def hf_llama(tiny_model_dir):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(str(tiny_model_dir / "llama")).eval()


def media(seed: int = 0):
    rng = np.random.default_rng(seed)
    sr = 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(2.2 * sr)) / sr) + 0.05 * rng.standard_normal(int(2.2 * sr)))
    image = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
    video = rng.integers(0, 255, (7, 36, 36, 3), dtype=np.uint8)
    return audio.astype(np.float32), sr, image, video


def test_hf_llama_logits_match_transformers(loaded, hf_llama):
    model, tok = loaded
    ids = torch.tensor([tok("This is an upbeat rock song with electric guitar").input_ids])
    with torch.no_grad():
        ours, _, _ = model.llm(ids)
        ref = hf_llama(ids).logits
    torch.testing.assert_close(ours[..., : model.cfg.vocab_size], ref, rtol=1e-4, atol=1e-4)


def test_zero_init_gives_the_plain_llama(loaded, hf_llama):
    """Gates 0, LoRA B 0, biases 0: modality inputs change nothing; once a gate opens they do."""
    model, tok = loaded
    audio, sr, image, video = media()
    enc = model.encoders
    feats = {"audio_feats": enc.encode_audio([audio], sr), "image_feats": enc.encode_images([image]),
             "video_feats": enc.encode_videos([video])}
    ids = torch.tensor([tok("A calm piano piece").input_ids])
    with torch.no_grad():
        ref = hf_llama(ids).logits
        for kw in ({}, feats):
            out = model(ids, **kw)["logits"][..., : model.cfg.vocab_size]
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        model.llm.layers[2].attention.gate.fill_(0.5)
        try:
            assert (model(ids, **feats)["logits"][..., : model.cfg.vocab_size] - ref).abs().max() > 1e-3
        finally:
            model.llm.layers[2].attention.gate.zero_()


def _hf_to_meta(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Meta layout from HF's: invert the rotate-half permutation of the HF conversion script."""
    out, d_in = w.shape
    return w.view(n_heads, 2, out // n_heads // 2, d_in).transpose(1, 2).reshape(out, d_in)


def test_meta_consolidated_shards_load(loaded, hf_llama, tmp_path):
    model, tok = loaded
    cfg = model.cfg
    names = {"q_proj": "attention.wq", "k_proj": "attention.wk", "v_proj": "attention.wv", "o_proj": "attention.wo",
             "gate_proj": "feed_forward.w1", "down_proj": "feed_forward.w2", "up_proj": "feed_forward.w3"}
    full = {"tok_embeddings.weight": hf_llama.model.embed_tokens.weight, "norm.weight": hf_llama.model.norm.weight,
            "output.weight": hf_llama.lm_head.weight}
    for i, layer in enumerate(hf_llama.model.layers):
        for mod in (layer.self_attn, layer.mlp):
            for hf_name, ours in names.items():
                if hasattr(mod, hf_name):
                    w = getattr(mod, hf_name).weight
                    if hf_name == "q_proj":
                        w = _hf_to_meta(w, cfg.n_heads)
                    if hf_name == "k_proj":
                        w = _hf_to_meta(w, cfg.n_kv_heads)
                    full[f"layers.{i}.{ours}.weight"] = w
        full[f"layers.{i}.attention_norm.weight"] = layer.input_layernorm.weight
        full[f"layers.{i}.ffn_norm.weight"] = layer.post_attention_layernorm.weight
    # two model-parallel shards, split the way Meta splits them
    row_split = ("wq", "wk", "wv", "w1", "w3", "output")
    shards = [{}, {}]
    for k, v in full.items():
        v = v.detach().clone()
        kind = k.split(".")[-2]
        dim = 0 if kind in row_split else 1 if kind in ("wo", "w2", "tok_embeddings") else None
        for s in range(2):
            shards[s][k] = v if dim is None else v.chunk(2, dim=dim)[s].clone()
    for s in range(2):
        torch.save(shards[s], tmp_path / f"consolidated.0{s}.pth")
    fresh = init_model(cfg, seed=3)
    load_meta_llama(fresh.llm, tmp_path)
    ids = torch.tensor([tok("jazz tune with saxophone").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(fresh.llm(ids)[0][..., : cfg.vocab_size], hf_llama(ids).logits, rtol=1e-4, atol=1e-4)


def test_encoders_shapes_resampling_and_windows(loaded):
    model, _ = loaded
    enc, cfg = model.encoders, model.cfg
    audio, sr, image, video = media()
    assert enc.mert_processor.sampling_rate == 24000  # MERT's rate; input is 16 kHz
    a = enc.encode_audio([audio, audio[: sr]], sr)
    assert a.shape == (2, *cfg.audio_feat_shape) and a.dtype == torch.float32
    # 2.2 s with 1 s windows: the mean of the two full windows (the 0.2 s scrap is dropped)
    halves = enc.encode_audio([audio[:sr], audio[sr: 2 * sr]], sr)
    torch.testing.assert_close(a[0], halves.mean(0), rtol=1e-4, atol=1e-5)
    assert enc.encode_images([image, image]).shape == (2, *cfg.image_feat_shape)
    assert enc.encode_videos([video]).shape == (1, *cfg.video_feat_shape)  # 7 frames sampled to 4


def test_decoder_targets_train_the_projector(loaded):
    model, tok = loaded
    target = model.decoder.text_embeddings(["an upbeat rock song", "a calm piano piece"])
    assert target.shape == (2, model.cfg.decoder_tokens, model.cfg.decoder_dim)
    aud = "".join(f"[AUD{i}]" for i in range(8))
    enc = tok(["Here is a music " + aud, "Here is a jazz tune with saxophone " + aud], padding=True,
              return_tensors="pt")
    out = model(enc["input_ids"], enc["attention_mask"], labels=enc["input_ids"], target_embeds=target)
    assert torch.isfinite(out["mse_loss"]) and out["mse_loss"] > 0


def test_generate_text_with_every_modality(loaded):
    model, tok = loaded
    audio, sr, image, video = media()
    res = generate(model, tok, "Describe this", audio=audio, sr=sr, image=image, video=video, max_new_tokens=6)
    assert isinstance(res.text, str) and 1 <= len(res.token_ids) <= 6 and res.music is None


def test_generate_music_when_aud_is_emitted(loaded):
    model, tok = loaded
    aud0 = model.cfg.vocab_size

    def emit_aud_at_step_2(step, ids, logits):
        if step == 2:
            logits[:, aud0] = 1e9
        return logits

    res = generate(model, tok, "Compose a happy tune", max_new_tokens=12, logits_processor=emit_aud_at_step_2,
                   music_seconds=0.02)
    assert res.token_ids[2:10] == list(range(aud0, aud0 + 8))  # [AUD1..7] forced after [AUD0]
    assert res.music_embeds.shape == (model.cfg.decoder_tokens, model.cfg.decoder_dim)
    assert res.music.ndim == 1 and res.music.size > 0 and res.sample_rate == 8000


def test_batched_left_padded_generation_equals_single(loaded):
    model, tok = loaded
    prompts = ["Describe the music", "Write a response that appropriately completes the request about jazz"]
    batch = generate_batch(model, tok, prompts, max_new_tokens=5)
    single = [generate_batch(model, tok, [p], max_new_tokens=5)[0] for p in prompts]
    assert [r.token_ids for r in batch] == [r.token_ids for r in single]


def test_mu_llama_captioner(tmp_path):
    from m2ugen_model.checkpoint import ours_to_released
    from m2ugen_model.mu_llama import load_captioner
    from m2ugen_model.stages import set_stage

    d = write_tiny_weights(tmp_path / "mu", variant="mu_llama")
    cfg = json.loads((d / "preset.json").read_text())
    assert cfg["modalities"] == ["audio"] and cfg["n_aud_tokens"] == 0
    # a released-layout adapter checkpoint next to the weights, as the real MU-LLaMA directory has
    model, _ = build_model(weights_dir=d, load_encoders=False)
    set_stage(model, 3)
    torch.save({"model": ours_to_released({n: p.detach() for n, p in model.named_parameters() if p.requires_grad},
                                          model.cfg)}, d / "checkpoint.pth")
    captioner = load_captioner(d, device="cpu", max_new_tokens=4)
    audio, sr, _, _ = media()
    caps = captioner([audio, audio[: sr // 2]], sr)
    assert len(caps) == 2 and all(isinstance(c, str) for c in caps)
