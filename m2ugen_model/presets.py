"""Model presets and the one way to build a model from weights on disk.

- `tiny`: random weights, same structure as 7B (GQA, bias + LoRA, top-3L adapter placement with L=1 of
  4 layers: layer 0 plain, 1 music, 2 image, 3 video), small enough for CPU tests.
- `7b`: LLaMA-2 7B with MERT-v1-330M, ViT-B/16, ViViT-B 16x2 and MusicGen (or AudioLDM2), as released.
- `mu_llama_7b`: MU-LLaMA: music only, the top 20 layers adapted, 4x wide adapter blocks, no [AUD].

`write_tiny_weights(dir)` writes a tiny preset in the real on-disk formats (HF LLaMA safetensors +
config + tokenizer, encoders and MusicGen via save_pretrained) so that `build_model` loads it through
exactly the code that loads real weights.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from .config import DECODER_TARGETS, M2UGenConfig
from .model import M2UGen

PRESET_FILE = "preset.json"
_TINY_VOCAB = 384
_TINY_CORPUS = (
    "Describe the music in detail including details such as instruments used, tempo and mood of the song. "
    "This is an upbeat rock song with electric guitar, bass, drums and a male vocalist singing. The tempo "
    "is fast, around 140 beats per minute, and the mood is energetic and joyful. A calm piano piece in a "
    "minor key with soft strings; slow tempo, melancholic and reflective mood. Generate a music for this "
    "image. Here is a music that is a jazz tune with saxophone, trumpet, upright bass and brushed drums. "
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request. ### Instruction: ### Response: Change the tempo, add a violin, remove the synthesizer. "
    "0123456789 ,.;:!?'\"()-[]#"
)


def tiny(**overrides) -> M2UGenConfig:
    cfg = M2UGenConfig(
        dim=64, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=128, vocab_size=_TINY_VOCAB, max_seq_len=512,
        lora_rank=4, adapter_layers=1,
        audio_feat_shape=(3, 32), image_feat_shape=(5, 32), video_feat_shape=(9, 32), video_frames=4,
        audio_window_s=1.0,
        decoder="musicgen", decoder_tokens=8, decoder_dim=16,
        projector_dim=32, projector_layers=1, projector_heads=2, projector_ffn=64,
    )
    return cfg.replace(**overrides)


def seven_b(llama_dir=None, mert_dir=None, vit_dir=None, vivit_dir=None, decoder_dir=None,
            decoder: str = "musicgen", **overrides) -> M2UGenConfig:
    tokens, width = DECODER_TARGETS[decoder]
    cfg = M2UGenConfig(decoder=decoder, decoder_tokens=tokens, decoder_dim=width, llama_dir=llama_dir,
                       mert_dir=mert_dir, vit_dir=vit_dir, vivit_dir=vivit_dir, decoder_dir=decoder_dir)
    return cfg.replace(**overrides)


# What MU-LLaMA's prompts carried as "### Input:" in training and in its released inference (config.prompt_input).
MU_LLAMA_PROMPT_INPUT = str(input)


def mu_llama_7b(llama_dir=None, mert_dir=None, **overrides) -> M2UGenConfig:
    cfg = M2UGenConfig(modalities=("audio",), adapter_layers=20, adapter_ffn_mult=4, n_aud_tokens=0,
                       decoder=None, llama_dir=llama_dir, mert_dir=mert_dir, prompt_input=MU_LLAMA_PROMPT_INPUT)
    return cfg.replace(**overrides)


PRESETS = {"tiny": tiny, "7b": seven_b, "mu_llama_7b": mu_llama_7b}


def get_preset(name: str, **kwargs) -> M2UGenConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name](**kwargs)


# ---------------------------------------------------------------- building
@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def init_model(cfg: M2UGenConfig, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
               seed: int | None = 0) -> M2UGen:
    """A model with random weights (LoRA B, gates and biases at zero), built directly on `device` in
    `dtype` so that a 7B model never materialises in float32 on the CPU. device="meta" allocates nothing
    (parameter counting)."""
    if seed is not None:
        torch.manual_seed(seed)
    with torch.device(device), _default_dtype(dtype):
        return M2UGen(cfg)


def _resolve(base: Path, p: str | None) -> str | None:
    return None if p is None else str(base / p) if not Path(p).is_absolute() else p


def config_from_dir(weights_dir: str | Path) -> M2UGenConfig:
    """A directory written by write_tiny_weights (or laid out the same way for real weights) carries a
    preset.json whose paths are relative to it."""
    d = Path(weights_dir)
    cfg = M2UGenConfig.load(d / PRESET_FILE)
    return cfg.replace(**{k: _resolve(d, getattr(cfg, k))
                          for k in ("llama_dir", "mert_dir", "vit_dir", "vivit_dir", "decoder_dir")})


RELEASED_PRESETS = ("7b", "mu_llama_7b")


def resolve_config(preset: str | M2UGenConfig = "tiny", weights_dir: str | Path | None = None,
                   strict_sizes: bool = True, **preset_kwargs) -> M2UGenConfig:
    """The config a run builds: a preset.json in `weights_dir` wins; the released presets take their part
    sizes from the weight directories (part_sizes.py; strict_sizes=False skips unreadable ones); a config
    object is used as it is."""
    if weights_dir is not None and (Path(weights_dir) / PRESET_FILE).exists():
        return config_from_dir(weights_dir)
    if isinstance(preset, M2UGenConfig):
        return preset
    cfg = get_preset(preset, **preset_kwargs)
    if preset in RELEASED_PRESETS:
        from .part_sizes import sizes_from_dirs

        cfg = sizes_from_dirs(cfg, strict=strict_sizes)
    return cfg


def build_model(preset: str | M2UGenConfig = "tiny", weights_dir: str | Path | None = None,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                load_encoders: bool = True, load_decoder: bool = False, seed: int = 0, **preset_kwargs):
    """-> (model, tokenizer). `weights_dir` with a preset.json overrides the preset's config and paths.
    LLaMA weights come from cfg.llama_dir (required: the tokenizer lives there); encoders and the decoder
    are attached when asked for and their directories are set."""
    from .encoders import load_encoders as _load_encoders
    from .hf_io import load_llama_weights, load_tokenizer

    cfg = resolve_config(preset, weights_dir, **preset_kwargs)
    if cfg.llama_dir is None:
        raise FileNotFoundError("no LLaMA directory: pass weights_dir or set llama_dir in the config")
    model = init_model(cfg, device, dtype, seed)
    load_llama_weights(model.llm, cfg.llama_dir)
    tokenizer = load_tokenizer(cfg.llama_dir, cfg)
    if load_encoders:
        model.encoders = _load_encoders(cfg.mert_dir, cfg.vit_dir, cfg.vivit_dir, cfg.audio_window_s,
                                        cfg.video_frames, cfg.video_sampling).to(device)
    if load_decoder and cfg.decoder and cfg.decoder_dir:
        from .decoders import load_decoder as _load_decoder

        model.decoder = _load_decoder(cfg.decoder, cfg.decoder_dir)
        model.decoder.model.to(device)
        model.decoder.max_text_tokens = cfg.decoder_tokens
    return model, tokenizer


# ---------------------------------------------------------------- tiny weights on disk
def build_tiny_tokenizer():
    """A LLaMA-style tokenizer (SentencePiece-like BPE with byte fallback, <unk>/<s>/</s> at 0/1/2, BOS
    prepended) trained offline on a fixed text, so tests need no download."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import LlamaTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    pre = pre_tokenizers.Split("▁", behavior="merged_with_next")
    # Train the merges first, then lay the vocabulary out as LLaMA does: specials, the 256 byte-fallback
    # pieces (ordinary tokens, not special ones, so decoding keeps them), then the learned pieces.
    draft = Tokenizer(models.BPE(unk_token="<unk>"))
    draft.normalizer, draft.pre_tokenizer = normalizer, pre
    trainer = trainers.BpeTrainer(vocab_size=_TINY_VOCAB - len(byte_tokens), special_tokens=specials,
                                  show_progress=False, initial_alphabet=sorted(set(_TINY_CORPUS.replace(" ", "▁"))))
    draft.train_from_iterator([_TINY_CORPUS] * 4, trainer=trainer)
    learned = json.loads(draft.to_str())["model"]
    pieces = [p for p, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]) if p not in specials]
    vocab = {p: i for i, p in enumerate(specials + byte_tokens + pieces)}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.add_special_tokens(specials)
    tok.normalizer, tok.pre_tokenizer = normalizer, pre
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    if tok.get_vocab_size() != _TINY_VOCAB:
        raise RuntimeError(f"tiny tokenizer has {tok.get_vocab_size()} tokens, expected {_TINY_VOCAB}")
    return LlamaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                              add_bos_token=True, add_eos_token=False)


def _write_tiny_llama(d: Path, cfg: M2UGenConfig, tokenizer, seed: int) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    hf = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.ffn_dim,
                     num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                     num_key_value_heads=cfg.n_kv_heads, rms_norm_eps=cfg.norm_eps,
                     max_position_embeddings=cfg.max_seq_len, tie_word_embeddings=False,
                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(hf)
    with torch.no_grad():  # HF's default init (std 0.02) gives near-uniform logits; widen for real tests
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.2)
    model.save_pretrained(str(d), safe_serialization=True)
    tokenizer.save_pretrained(str(d))


def _write_tiny_encoders(root: Path, cfg: M2UGenConfig, seed: int) -> None:
    from transformers import (
        HubertConfig,
        HubertModel,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
        VivitConfig,
        VivitImageProcessor,
        VivitModel,
        Wav2Vec2FeatureExtractor,
    )

    torch.manual_seed(seed)
    n_states, width = cfg.audio_feat_shape
    # MERT is a HuBERT-style model (remote code on the hub); a tiny HubertModel has the same interface.
    hub = HubertModel(HubertConfig(hidden_size=width, num_hidden_layers=n_states - 1, num_attention_heads=2,
                                   intermediate_size=2 * width, conv_dim=(16, 16), conv_kernel=(10, 3),
                                   conv_stride=(5, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                                   do_stable_layer_norm=True, feat_extract_norm="layer"))
    hub.save_pretrained(str(root / "mert"))
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=24000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(str(root / "mert"))

    tokens, width = cfg.image_feat_shape
    side = round((tokens - 1) ** 0.5) * 16
    ViTModel(ViTConfig(image_size=side, patch_size=16, hidden_size=width, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=2 * width),
             add_pooling_layer=False).save_pretrained(str(root / "vit"))
    ViTImageProcessor(size={"height": side, "width": side}).save_pretrained(str(root / "vit"))

    tokens, width = cfg.video_feat_shape
    tubelet_t = 2
    spatial = (tokens - 1) // (cfg.video_frames // tubelet_t)
    side = round(spatial ** 0.5) * 16
    VivitModel(VivitConfig(image_size=side, num_frames=cfg.video_frames, tubelet_size=[tubelet_t, 16, 16],
                           hidden_size=width, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=2 * width),
               add_pooling_layer=False).save_pretrained(str(root / "vivit"))
    VivitImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}).save_pretrained(
        str(root / "vivit"))


def _write_tiny_musicgen(d: Path, cfg: M2UGenConfig, tokenizer, seed: int) -> None:
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    torch.manual_seed(seed)
    t5 = T5Config(vocab_size=len(tokenizer), d_model=cfg.decoder_dim, d_kv=8, d_ff=2 * cfg.decoder_dim,
                  num_layers=1, num_heads=2, decoder_start_token_id=0, pad_token_id=0)
    enc = EncodecConfig(sampling_rate=8000, audio_channels=1, num_filters=4, hidden_size=8,
                        upsampling_ratios=[4, 4], codebook_size=16, codebook_dim=8, target_bandwidths=[10.0],
                        num_lstm_layers=1, num_residual_layers=1, normalize=False)
    dec = MusicgenDecoderConfig(vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                ffn_dim=32, num_codebooks=enc.num_quantizers, max_position_embeddings=512,
                                pad_token_id=16, bos_token_id=16, decoder_start_token_id=16)
    model = MusicgenForConditionalGeneration(
        MusicgenConfig(text_encoder=t5.to_dict(), audio_encoder=enc.to_dict(), decoder=dec.to_dict()))
    model.save_pretrained(str(d))
    t5_tokenizer = copy.deepcopy(tokenizer)
    t5_tokenizer.pad_token = "<unk>"  # id 0, T5's pad id
    t5_tokenizer.save_pretrained(str(d))


def write_tiny_weights(out_dir: str | Path, seed: int = 0, variant: str = "m2ugen") -> Path:
    """Write a complete tiny preset under out_dir (llama/, mert/, vit/, vivit/, musicgen/, preset.json)
    and return out_dir; variant="mu_llama" writes the music-only MU-LLaMA shape (llama/, mert/)."""
    from transformers.utils import logging as hf_logging

    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if variant == "m2ugen":
        cfg = tiny(llama_dir="llama", mert_dir="mert", vit_dir="vit", vivit_dir="vivit", decoder_dir="musicgen")
    elif variant == "mu_llama":
        cfg = tiny(modalities=("audio",), adapter_layers=3, adapter_ffn_mult=4, n_aud_tokens=0, decoder=None,
                   llama_dir="llama", mert_dir="mert", prompt_input=MU_LLAMA_PROMPT_INPUT)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = build_tiny_tokenizer()
        _write_tiny_llama(root / "llama", cfg, tokenizer, seed)
        _write_tiny_encoders(root, cfg, seed + 1)
        if cfg.decoder:
            _write_tiny_musicgen(root / "musicgen", cfg, tokenizer, seed + 2)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    (root / PRESET_FILE).write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    return root
