"""The sizes a model config takes from the weight directories the user has (their config files, no tensors).

The ``7b`` and ``mu_llama_7b`` presets describe the released architecture: which layers are adapted, how wide
the adapters are, the projector. The sizes of the parts come from the published checkpoints themselves
(LLaMA-2-7B: 4096 x 32 layers; MERT-v1-330M: 25 states x 1024; ViT-B/16: 197 x 768; ViViT-B 16x2: 3137 x 768),
so reading them from the directories gives the released numbers for the released weights, and a directory of
another size builds a model that fits it (a released checkpoint then refuses it, naming the tensor).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from m2ugen_model.config import M2UGenConfig

from m2ugen_model.weights.files import read_config


def _meta_vocab(weights_dir: Path) -> int:
    """Meta's params.json says vocab_size -1 (the tokenizer's); the embedding table says it exactly."""
    from m2ugen_model.weights.files import load_pth

    return int(load_pth(sorted(weights_dir.glob("consolidated.*.pth"))[0])["tok_embeddings.weight"].shape[0])


def llm_sizes(llama_dir: str | Path) -> dict[str, Any]:
    from m2ugen_model.hf_io import llama_dims, llama_layout

    dims = llama_dims(llama_dir)
    if "vocab_size" not in dims:
        dims["vocab_size"] = _meta_vocab(llama_layout(llama_dir).weights_dir)
    dims.pop("max_seq_len", None)
    return dims


def mert_shape(d: str | Path) -> tuple[int, int]:
    c = read_config(d)
    return c["num_hidden_layers"] + 1, c["hidden_size"]  # embeddings + every layer


def vit_shape(d: str | Path) -> tuple[int, int]:
    c = read_config(d)
    return (c["image_size"] // c["patch_size"]) ** 2 + 1, c["hidden_size"]  # CLS + patches


def vivit_shape(d: str | Path) -> tuple[tuple[int, int], int]:
    c = read_config(d)
    t, h, w = c["tubelet_size"]
    tokens = (c["num_frames"] // t) * (c["image_size"] // h) * (c["image_size"] // w) + 1
    return (tokens, c["hidden_size"]), c["num_frames"]


def decoder_target(kind: str, d: str | Path, tokens: int) -> tuple[int, int]:
    """(tokens, width) of the decoder conditioning the projector produces (config.DECODER_TARGETS)."""
    if kind == "musicgen":
        return tokens, read_config(d)["text_encoder"]["d_model"]
    # AudioLDM2: the T5 prompt (at most 128 tokens, its tokenizer's limit) and GPT-2's generated states, flattened
    from m2ugen_model.decoders import AUDIOLDM2_PROMPT

    t5 = read_config(Path(d) / "text_encoder_2")["d_model"]
    lm = read_config(Path(d) / "language_model")
    tok = Path(d) / "tokenizer_2" / "tokenizer_config.json"
    limit = json.loads(tok.read_text()).get("model_max_length", AUDIOLDM2_PROMPT[0]) if tok.is_file() else \
        AUDIOLDM2_PROMPT[0]
    return 1, min(int(limit), AUDIOLDM2_PROMPT[0]) * t5 + lm.get("max_new_tokens", 8) * lm["n_embd"]


def sizes_from_dirs(cfg: M2UGenConfig, strict: bool = True) -> M2UGenConfig:
    """``cfg`` with every size its directories determine. strict=False (the preflight) skips a part whose
    config cannot be read, keeping the preset's size: that part's own check says what is wrong with it."""
    def part(read) -> dict[str, Any]:
        try:
            return read()
        except Exception:
            if strict:
                raise
            return {}

    changes: dict[str, Any] = {}
    if cfg.llama_dir:
        changes.update(part(lambda: llm_sizes(cfg.llama_dir)))
    if cfg.mert_dir and "audio" in cfg.modalities:
        changes.update(part(lambda: {"audio_feat_shape": mert_shape(cfg.mert_dir)}))
    if cfg.vit_dir and "image" in cfg.modalities:
        changes.update(part(lambda: {"image_feat_shape": vit_shape(cfg.vit_dir)}))
    if cfg.vivit_dir and "video" in cfg.modalities:
        changes.update(part(lambda: dict(zip(("video_feat_shape", "video_frames"), vivit_shape(cfg.vivit_dir)))))
    if cfg.decoder and cfg.decoder_dir:
        changes.update(part(lambda: dict(zip(("decoder_tokens", "decoder_dim"), decoder_target(
            cfg.decoder, cfg.decoder_dir, cfg.decoder_tokens)))))
    return cfg.replace(**changes)
