"""Read LLaMA-2 weights from a local directory into `llama.LLaMA`: HF format (config.json + safetensors
shards + tokenizer) or Meta's consolidated `.pth` shards (params.json), each through an explicit key map.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open

from .config import M2UGenConfig
from .llama import LLaMA

# HF name (after "model.layers.{i}.") -> our name (after "layers.{i}.")
_HF_LAYER_KEYS = {
    "self_attn.q_proj.weight": "attention.wq.weight",
    "self_attn.k_proj.weight": "attention.wk.weight",
    "self_attn.v_proj.weight": "attention.wv.weight",
    "self_attn.o_proj.weight": "attention.wo.weight",
    "mlp.gate_proj.weight": "feed_forward.w1.weight",
    "mlp.down_proj.weight": "feed_forward.w2.weight",
    "mlp.up_proj.weight": "feed_forward.w3.weight",
    "input_layernorm.weight": "attention_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}
_HF_TOP_KEYS = {"model.embed_tokens.weight": "tok_embeddings.weight", "model.norm.weight": "norm.weight",
                "lm_head.weight": "output.weight"}
_META_SPLIT_DIM = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1,
                   "tok_embeddings": 1}


class WeightsError(ValueError):
    """A weight directory or state dict does not fit the model (message names the keys)."""


def hf_dims(llama_dir: str | Path) -> dict:
    """The config fields an HF LLaMA config.json determines."""
    c = json.loads((Path(llama_dir) / "config.json").read_text())
    return {
        "dim": c["hidden_size"], "n_layers": c["num_hidden_layers"], "n_heads": c["num_attention_heads"],
        "n_kv_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "ffn_dim": c["intermediate_size"], "vocab_size": c["vocab_size"], "norm_eps": c["rms_norm_eps"],
        "rope_theta": c.get("rope_theta") or (c.get("rope_parameters") or {}).get("rope_theta", 10000.0),
        "max_seq_len": c.get("max_position_embeddings", 4096),
    }


def unpermute_rope(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """HF's conversion script reorders each head's wq/wk rows from Meta's interleaved pairs to two
    halves (for rotate_half); undo it so that our interleaved rotary embedding applies."""
    out, d_in = w.shape
    return w.view(n_heads, 2, out // n_heads // 2, d_in).transpose(1, 2).reshape(out, d_in)


def map_hf_key(key: str) -> str | None:
    if key in _HF_TOP_KEYS:
        return _HF_TOP_KEYS[key]
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", key)
    if m and m.group(2) in _HF_LAYER_KEYS:
        return f"layers.{m.group(1)}.{_HF_LAYER_KEYS[m.group(2)]}"
    if key.endswith("rotary_emb.inv_freq"):
        return None  # a buffer some exports carry; recomputed here
    raise WeightsError(f"unexpected key in the LLaMA checkpoint: {key}")


def _hf_tensors(llama_dir: Path):
    files = sorted(llama_dir.glob("*.safetensors"))
    if not files:
        raise WeightsError(f"no *.safetensors in {llama_dir} (HF-format LLaMA expected)")
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                yield key, st.get_tensor(key)


def _copy_into(llm: LLaMA, name: str, value: torch.Tensor, seen: set[str]) -> None:
    target = llm.get_parameter(name)
    if name in ("tok_embeddings.weight", "output.weight") and value.shape[0] != target.shape[0]:
        raise WeightsError(f"{name}: checkpoint vocabulary {value.shape[0]} != config {target.shape[0]}")
    if value.shape != target.shape:
        raise WeightsError(f"{name}: checkpoint shape {tuple(value.shape)} != model {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(value.to(target.dtype))
    seen.add(name)


def _base_names(llm: LLaMA) -> set[str]:
    """The parameters a plain LLaMA checkpoint must provide (not LoRA, biases, gates, [AUD] rows)."""
    return {n for n, _ in llm.named_parameters()
            if ".lora_" not in n and not n.endswith((".bias", ".gate")) and not n.startswith("aud_")}


def _check_complete(llm: LLaMA, seen: set[str], where: Path) -> None:
    missing = sorted(_base_names(llm) - seen)
    if missing:
        raise WeightsError(f"{where}: missing {len(missing)} LLaMA weights, e.g. {missing[:5]}")


def load_hf_llama(llm: LLaMA, llama_dir: str | Path) -> None:
    """Copy HF-format weights into `llm` (which already has the right shapes) and initialise the [AUD]
    rows as the mean of the existing rows (the released code sets the embedding rows to 1 and leaves
    the output rows random; a mean start keeps the initial [AUD] logits and states in range)."""
    d = Path(llama_dir)
    cfg = llm.cfg
    dims = hf_dims(d)
    for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "vocab_size"):
        if dims[k] != getattr(cfg, k):
            raise WeightsError(f"{d}/config.json: {k}={dims[k]} but the model config has {getattr(cfg, k)}")
    seen: set[str] = set()
    tied = None
    for key, value in _hf_tensors(d):
        name = map_hf_key(key)
        if name is None:
            continue
        if name.endswith("attention.wq.weight"):
            value = unpermute_rope(value, cfg.n_heads)
        elif name.endswith("attention.wk.weight"):
            value = unpermute_rope(value, cfg.n_kv_heads)
        if name == "tok_embeddings.weight":
            tied = value
        _copy_into(llm, name, value, seen)
    if "output.weight" not in seen and tied is not None:  # tie_word_embeddings checkpoints
        _copy_into(llm, "output.weight", tied, seen)
    _check_complete(llm, seen, d)
    init_aud_rows(llm)


def load_meta_llama(llm: LLaMA, ckpt_dir: str | Path) -> None:
    """Meta's consolidated.NN.pth shards (model-parallel slices concatenated back together)."""
    d = Path(ckpt_dir)
    shards = sorted(d.glob("consolidated.*.pth"))
    if not shards:
        raise WeightsError(f"no consolidated.*.pth in {d}")
    parts = [torch.load(s, map_location="cpu", weights_only=True, mmap=True) for s in shards]
    seen: set[str] = set()
    for key in parts[0]:
        if key == "rope.freqs":
            continue
        kind = key.split(".")[-2]
        if kind not in _META_SPLIT_DIM and not kind.endswith("norm") and key != "norm.weight":
            raise WeightsError(f"unexpected key in the Meta checkpoint: {key}")
        values = [p[key] for p in parts]
        dim = _META_SPLIT_DIM.get(kind)
        value = values[0] if dim is None or len(values) == 1 else torch.cat(values, dim=dim)
        _copy_into(llm, key, value, seen)
    _check_complete(llm, seen, d)
    init_aud_rows(llm)


def init_aud_rows(llm: LLaMA) -> None:
    with torch.no_grad():
        if llm.aud_embeddings is not None:
            llm.aud_embeddings.weight.copy_(llm.tok_embeddings.weight.float().mean(0).to(llm.aud_embeddings.weight.dtype))
        if llm.aud_output is not None:
            llm.aud_output.weight.copy_(llm.output.weight.float().mean(0).to(llm.aud_output.weight.dtype))


def load_llama_weights(llm: LLaMA, llama_dir: str | Path) -> None:
    d = Path(llama_dir)
    if (d / "config.json").exists():
        load_hf_llama(llm, d)
    elif list(d.glob("consolidated.*.pth")):
        load_meta_llama(llm, d)
    else:
        raise WeightsError(f"{d}: neither an HF LLaMA directory (config.json) nor Meta shards (consolidated.*.pth)")


def load_tokenizer(llama_dir: str | Path, cfg: M2UGenConfig):
    """The LLaMA tokenizer from the weights directory, with [AUD0]..[AUDn-1] appended as ids
    vocab_size..vocab_size+n-1 (checked: the embedding rows are addressed by those ids)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(llama_dir))
    base = len(tok)
    if base != cfg.vocab_size:
        raise WeightsError(f"tokenizer in {llama_dir} has {base} tokens, the config says {cfg.vocab_size}")
    if cfg.n_aud_tokens:
        tok.add_tokens([f"[AUD{i}]" for i in range(cfg.n_aud_tokens)])
        ids = tok.convert_tokens_to_ids([f"[AUD{i}]" for i in range(cfg.n_aud_tokens)])
        if ids != list(range(cfg.vocab_size, cfg.full_vocab_size)):
            raise WeightsError(f"[AUD] tokens got ids {ids}, expected {cfg.vocab_size}..")
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    return tok
