"""Read LLaMA-2 weights from a local directory into `llama.LLaMA`, in either published layout:

- HF (``meta-llama/Llama-2-7b-hf``): ``config.json`` + ``model-0000N-of-0000M.safetensors`` shards with
  ``model.safetensors.index.json`` (or the ``pytorch_model-*.bin`` twins) + tokenizer files;
- Meta (``download.sh`` from meta-llama/llama): ``llama-2-7b/consolidated.00.pth`` + ``params.json``, with
  ``tokenizer.model`` (SentencePiece) one level up; MU-LLaMA and M2UGen point at that upper directory and
  rename the model folder ``7B``. Either directory may be given.

Each goes through an explicit key map; sizes are checked against the model config before any tensor is read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import M2UGenConfig
from .llama import LLaMA
from .weights.files import WeightFileError, hf_weight_files, load_pth, read_tensors

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
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class WeightsError(ValueError):
    """A weight directory or state dict does not fit the model (message names the keys)."""


@dataclass(frozen=True)
class LlamaLayout:
    """Where one LLaMA checkpoint's pieces are: its kind, the weights, and the tokenizer source."""

    kind: str  # "hf" or "meta"
    weights_dir: Path
    tokenizer_dir: Path | None  # HF tokenizer files (tokenizer.json / tokenizer_config.json)
    tokenizer_model: Path | None  # SentencePiece tokenizer.model (Meta's download; also in HF snapshots)


def _meta_dir(d: Path) -> Path | None:
    """``d`` itself when it holds consolidated shards, else its one subfolder that does (``7B``, ``llama-2-7b``)."""
    if list(d.glob("consolidated.*.pth")):
        return d
    subs = [s for s in sorted(d.iterdir()) if s.is_dir() and list(s.glob("consolidated.*.pth"))] if d.is_dir() else []
    if len(subs) > 1:
        names = ", ".join(s.name for s in subs)
        raise WeightsError(f"{d}: several LLaMA checkpoints ({names}); give the one to use, e.g. --llama-dir {subs[0]}")
    return subs[0] if subs else None


def llama_layout(llama_dir: str | Path) -> LlamaLayout:
    d = Path(llama_dir)
    if not d.is_dir():
        raise WeightsError(f"LLaMA directory not found: {d}")
    if (d / "config.json").is_file():
        tok_model = d / "tokenizer.model"
        has_hf_tok = any((d / f).is_file() for f in HF_TOKENIZER_FILES)
        return LlamaLayout("hf", d, d if has_hf_tok else None, tok_model if tok_model.is_file() else None)
    meta = _meta_dir(d)
    if meta is None:
        raise WeightsError(f"{d}: neither an HF LLaMA directory (config.json + *.safetensors) nor Meta's download "
                           "(consolidated.00.pth + params.json)")
    tok_dir = next((p for p in (meta, d) if any((p / f).is_file() for f in HF_TOKENIZER_FILES)), None)
    tok_model = next((p / "tokenizer.model" for p in (meta, d, meta.parent) if (p / "tokenizer.model").is_file()),
                     None)
    return LlamaLayout("meta", meta, tok_dir, tok_model)


# ---------------------------------------------------------------- sizes
def _ffn_from_params(p: dict) -> int:
    """The feed-forward width Meta's model.py derives from params.json (SwiGLU 2/3 of 4*dim, rounded up)."""
    hidden = int(2 * 4 * p["dim"] / 3)
    if p.get("ffn_dim_multiplier") is not None:
        hidden = int(p["ffn_dim_multiplier"] * hidden)
    m = p.get("multiple_of", 256)
    return m * ((hidden + m - 1) // m)


def hf_dims(llama_dir: str | Path) -> dict:
    """The config fields an HF LLaMA config.json determines (refusing a config of another architecture)."""
    f = Path(llama_dir) / "config.json"
    c = json.loads(f.read_text())
    if c.get("model_type") != "llama":
        arch = (c.get("architectures") or [c.get("model_type")])[0]
        raise WeightsError(f"{f}: a {arch} config (model_type {c.get('model_type')!r}), not LLaMA; "
                           "give --llama-dir a LLaMA-2 directory")
    rope = c.get("rope_theta") or (c.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    return {
        "dim": c["hidden_size"], "n_layers": c["num_hidden_layers"], "n_heads": c["num_attention_heads"],
        "n_kv_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "ffn_dim": c["intermediate_size"], "vocab_size": c["vocab_size"], "norm_eps": c["rms_norm_eps"],
        "rope_theta": rope, "max_seq_len": c.get("max_position_embeddings", 4096),
    }


def meta_dims(meta_dir: str | Path) -> dict:
    """The config fields Meta's params.json determines (vocab_size -1 means: the tokenizer's)."""
    f = Path(meta_dir) / "params.json"
    if not f.is_file():
        raise WeightsError(f"{meta_dir}: consolidated shards without params.json; copy it from the download")
    p = json.loads(f.read_text())
    absent = [k for k in ("dim", "n_layers", "n_heads") if k not in p]
    if absent:
        raise WeightsError(f"{f}: no {absent[0]} (not Meta's params.json for LLaMA)")
    out = {"dim": p["dim"], "n_layers": p["n_layers"], "n_heads": p["n_heads"],
           "n_kv_heads": p.get("n_kv_heads") or p["n_heads"], "ffn_dim": _ffn_from_params(p),
           "norm_eps": p.get("norm_eps", 1e-5), "rope_theta": p.get("rope_theta", 10000.0)}
    if p.get("vocab_size", -1) > 0:
        out["vocab_size"] = p["vocab_size"]
    return out


def llama_dims(llama_dir: str | Path) -> dict:
    layout = llama_layout(llama_dir)
    return hf_dims(layout.weights_dir) if layout.kind == "hf" else meta_dims(layout.weights_dir)


def check_dims(cfg: M2UGenConfig, llama_dir: str | Path) -> None:
    """The checkpoint's sizes against the model config: a LLaMA of another size is one line, before loading."""
    layout = llama_layout(llama_dir)
    dims = llama_dims(llama_dir)
    source = layout.weights_dir / ("config.json" if layout.kind == "hf" else "params.json")
    for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "vocab_size"):
        if k in dims and dims[k] != getattr(cfg, k):
            raise WeightsError(f"{source}: {k}={dims[k]} but the model config has {getattr(cfg, k)} "
                               "(a LLaMA of another size, or the wrong --llama-dir)")


# ---------------------------------------------------------------- weights
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
        return None  # a buffer the conversion-era checkpoints carry; recomputed here
    raise WeightsError(f"unexpected key in the LLaMA checkpoint: {key}")


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
    check_dims(cfg, d)
    seen: set[str] = set()
    tied = None
    try:
        files = hf_weight_files(d)
    except WeightFileError as exc:
        raise WeightsError(str(exc)) from None
    for f in files:
        for key, value in _file_tensors(f):
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


def _file_tensors(f: Path):
    """One shard at a time, so a 7B load holds one shard besides the model."""
    try:
        yield from read_tensors([f]).items()
    except WeightFileError as exc:
        raise WeightsError(str(exc)) from None


def load_meta_llama(llm: LLaMA, ckpt_dir: str | Path) -> None:
    """Meta's consolidated.NN.pth shards (model-parallel slices concatenated back together), memory-mapped."""
    d = Path(ckpt_dir)
    shards = sorted(d.glob("consolidated.*.pth"))
    if not shards:
        raise WeightsError(f"no consolidated.*.pth in {d}")
    if (d / "params.json").is_file():
        check_dims(llm.cfg, d)
    try:
        parts = [load_pth(s) for s in shards]
    except WeightFileError as exc:
        raise WeightsError(str(exc)) from None
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
    layout = llama_layout(llama_dir)
    (load_hf_llama if layout.kind == "hf" else load_meta_llama)(llm, layout.weights_dir)


# ---------------------------------------------------------------- tokenizer
def _read_tokenizer(layout: LlamaLayout):
    from transformers import AutoTokenizer, LlamaTokenizer

    if layout.tokenizer_dir is not None:
        return AutoTokenizer.from_pretrained(str(layout.tokenizer_dir))
    if layout.tokenizer_model is None:
        raise WeightsError(f"{layout.weights_dir}: no tokenizer (tokenizer.model next to the weights or one level up, "
                           "or the HF files tokenizer.json + tokenizer_config.json); copy Meta's tokenizer.model there")
    try:
        import sentencepiece  # noqa: F401  transformers needs it to read a SentencePiece model file
    except ImportError:
        raise WeightsError(f"{layout.tokenizer_model}: reading a SentencePiece tokenizer.model needs the sentencepiece "
                           "package: pip install sentencepiece") from None
    # The released code encodes with bos=True, eos=False (Meta's Tokenizer.encode); HF's Llama-2 config says so too.
    return LlamaTokenizer.from_pretrained(str(layout.tokenizer_model.parent), add_bos_token=True, add_eos_token=False,
                                          legacy=False)


def load_tokenizer(llama_dir: str | Path, cfg: M2UGenConfig):
    """The LLaMA tokenizer from the weights directory (HF files, else Meta's tokenizer.model), with
    [AUD0]..[AUDn-1] appended as ids vocab_size..vocab_size+n-1 (checked: the embedding rows are addressed
    by those ids), and a BOS token in front of every prompt as the released code encodes them."""
    layout = llama_layout(llama_dir)
    tok = _read_tokenizer(layout)
    base = len(tok)
    if base != cfg.vocab_size:
        raise WeightsError(f"tokenizer in {llama_dir} has {base} tokens, the config says {cfg.vocab_size}")
    if tok("a").input_ids[:1] != [tok.bos_token_id]:
        raise WeightsError(f"tokenizer in {llama_dir} does not start prompts with <s> (add_bos_token is off in its "
                           "tokenizer_config.json); LLaMA-2 and the released checkpoints expect it")
    if cfg.n_aud_tokens:
        tok.add_tokens([f"[AUD{i}]" for i in range(cfg.n_aud_tokens)])
        ids = tok.convert_tokens_to_ids([f"[AUD{i}]" for i in range(cfg.n_aud_tokens)])
        if ids != list(range(cfg.vocab_size, cfg.full_vocab_size)):
            raise WeightsError(f"[AUD] tokens got ids {ids}, expected {cfg.vocab_size}..")
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    return tok
