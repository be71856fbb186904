"""Tiny checkpoints written the way the real ones are published, so tests load what users download.

Only the sizes are tiny; file names, config fields (``model_type``, ``architectures``, ``auto_map``),
state-dict key names and dtypes, tokenizer files and the pickled wrapper objects follow the published
checkpoints. Stand-ins built from the library's own classes and saved by our own code hid every first-contact
failure (hub-code MERT, ``argparse.Namespace`` in ``checkpoint.pth``, Meta's ``tokenizer.model``, legacy
weight-norm names); these do not.

Where each layout was read (public repositories and model cards, facts only):

- LLaMA-2-7B, HF: ``meta-llama/Llama-2-7b-hf`` (config.json: ``LlamaForCausalLM``, ``model_type: llama``,
  ``torch_dtype: float16``, ``rope_scaling: null``; generation_config.json; tokenizer_config.json:
  ``LlamaTokenizer``, ``add_bos_token: true``, ``legacy: false``; tokenizer.model + tokenizer.json;
  ``model-0000N-of-0000M.safetensors`` + ``model.safetensors.index.json``).
- LLaMA-2-7B, Meta: meta-llama/llama ``download.sh`` (``llama-2-7b/{consolidated.00.pth, params.json,
  checklist.chk}``, ``tokenizer.model`` and ``tokenizer_checklist.chk`` one level up; params.json fields
  ``dim, multiple_of, n_heads, n_layers, norm_eps, vocab_size: -1``); MU-LLaMA's README names the model
  folder ``7B``. Key names from Meta's ``model.py``; the shards are bf16.
- MERT-v1-330M: ``m-a-p/MERT-v1-330M`` (config.json with ``model_type: mert_model``, ``architectures:
  [MERTModel]``, ``auto_map`` to ``configuration_MERT.MERTConfig`` / ``modeling_MERT.MERTModel``,
  ``attention_relax: 32.0``, ``deepnorm: false``, ``do_stable_layer_norm: true``, ``feat_extract_norm:
  group``, ``feature_extractor_cqt: false``, ``feature_extractor_cqt_bins: 336``, ``sample_rate: 24000``;
  ``preprocessor_config.json`` of a ``Wav2Vec2FeatureExtractor`` at 24 kHz with ``do_normalize: false``
  (212 bytes, as MERT-v1-95M's); ``pytorch_model.bin`` (an OrderedDict of float32 tensors); the two .py
  files). Parameter names are HuBERT's (``modeling_MERT.py`` builds on transformers' Hubert classes), the
  positional convolution's weight norm as ``weight_g``/``weight_v`` (saved before parametrizations).
- ViT-B/16: ``google/vit-base-patch16-224`` (``ViTForImageClassification``, weights under ``vit.`` plus a
  ``classifier``; a 160-byte preprocessor_config.json with no processor type, size 224, mean/std 0.5).
- ViViT-B 16x2: ``google/vivit-b-16x2-kinetics400`` (``VivitForVideoClassification``, ``hidden_act:
  gelu_fast``, ``layer_norm_eps: 1e-06``, ``num_frames: 32``, ``tubelet_size: [2, 16, 16]``,
  ``qkv_bias: true``; pytorch_model.bin only; weights under ``vivit.``).
- MusicGen: ``facebook/musicgen-small``/``-medium`` (``MusicgenForConditionalGeneration``; config with
  ``text_encoder`` t5 / ``audio_encoder`` encodec / ``decoder`` musicgen_decoder; generation_config.json;
  preprocessor_config.json of an ``EncodecFeatureExtractor`` (``processor_class: MusicgenProcessor``);
  T5 ``spiece.model`` + tokenizer.json + tokenizer_config.json (``T5Tokenizer``, ``extra_ids: 100``);
  ``pytorch_model.bin`` float32 with EnCodec's weight norm as ``weight_g``/``weight_v``).
- AudioLDM2: ``cvssp/audioldm2-music`` (diffusers layout: model_index.json naming ``["audioldm2",
  "AudioLDM2ProjectionModel"]`` and ``["audioldm2", "AudioLDM2UNet2DConditionModel"]`` with
  ``_diffusers_version 0.20.0.dev0``, one subfolder per component).
- Released ``checkpoint.pth`` (shansongliu/M2UGen ``util/misc.py`` ``save_model`` and
  ``main_train.py``; crypto-code/MU-LLaMA ``main_finetune.py`` and ``llama/llama_adapter.py``):
  ``{"model": model_without_ddp.state_dict(), "optimizer", "epoch", "scaler", "args": argparse.Namespace}``.
  The state dict is the whole module's: the frozen encoders (``mert_model.``, ``vit_model.``,
  ``vivit_model.``) and MusicGen (``generation_model.``) included; the LLaMA built under
  ``torch.cuda.HalfTensor`` (fp16) with the trainable norms, biases, LoRA (and in M2UGen the token
  embeddings) cast to float32; a ``gate`` in every layer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from m2ugen_model.config import M2UGenConfig


@dataclass(frozen=True)
class TinySizes:
    """Sizes of the fixtures; everything else is as published."""

    dim: int = 64
    n_layers: int = 20  # MU-LLaMA adapts the top 20 layers, M2UGen the top 18: the released placements fit
    n_heads: int = 4
    vocab: int = 384
    mert_width: int = 32
    mert_layers: int = 2
    conv_dim: int = 16
    vit_width: int = 32
    image_side: int = 32  # 2 x 2 patches of 16
    video_frames: int = 4  # 2 tubelets of 2 frames
    t5_width: int = 16
    t5_vocab_pieces: int = 120


SIZES = TinySizes()


def llama_config(sizes: TinySizes = SIZES, **overrides: Any) -> M2UGenConfig:
    """The model config matching the LLaMA fixture (no GQA and Meta's SwiGLU width, as LLaMA-2-7B)."""
    hidden = int(2 * 4 * sizes.dim / 3)
    ffn = 256 * ((hidden + 255) // 256)  # params.json multiple_of 256
    return M2UGenConfig(dim=sizes.dim, n_layers=sizes.n_layers, n_heads=sizes.n_heads, n_kv_heads=sizes.n_heads,
                        ffn_dim=ffn, vocab_size=sizes.vocab, max_seq_len=512).replace(**overrides)


def _json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _md5_checklist(directory: Path, names: list[str], out: Path) -> None:
    lines = [f"{hashlib.md5((directory / n).read_bytes()).hexdigest()}  {n}" for n in names]
    out.write_text("\n".join(lines) + "\n")


def _widen(module: torch.nn.Module, std: float = 0.2, seed: int = 0) -> None:
    """Random weights wider than the libraries' init, so different inputs give visibly different outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def published_state(model: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    """A transformers model's state dict under the names its checkpoints are published with: transformers 5
    renames some modules internally (ViT's ``encoder.layer.N.attention.attention.query`` is ``layers.N...q_proj``)
    and maps the file names on load; ``revert_weight_conversion`` is its own inverse of that map (what
    ``save_pretrained`` writes). Weight norms then get their pre-parametrization names."""
    from transformers.core_model_loading import revert_weight_conversion

    return legacy_weight_norm(revert_weight_conversion(model, model.state_dict()))


def legacy_weight_norm(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """transformers' parametrized weight norm names back to the ``weight_g``/``weight_v`` names of files saved
    before parametrizations (MERT, MusicGen's EnCodec)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in state.items():
        k = k.replace(".parametrizations.weight.original0", ".weight_g")
        k = k.replace(".parametrizations.weight.original1", ".weight_v")
        out[k] = v.detach().clone().contiguous()
    return out


# ---------------------------------------------------------------- tokenizers (SentencePiece files)
def _sentencepiece_proto():
    from transformers.convert_slow_tokenizer import import_protobuf

    return import_protobuf()


def _save_sentencepiece(model, path: Path, normalizer: str, remove_extra_whitespaces: bool, **trainer: Any) -> Path:
    """Set the trainer and normaliser fields a SentencePiece model file carries, and write it."""
    for key, value in trainer.items():
        setattr(model.trainer_spec, key, value)
    ns = model.normalizer_spec
    ns.name, ns.add_dummy_prefix, ns.remove_extra_whitespaces, ns.escape_whitespaces = (
        normalizer, True, remove_extra_whitespaces, True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def write_llama_tokenizer_model(path: Path, sizes: TinySizes = SIZES) -> Path:
    """A SentencePiece BPE ``tokenizer.model`` shaped like LLaMA-2's: ``<unk>``, ``<s>``, ``</s>`` at 0/1/2, the
    256 byte-fallback pieces, then merges in order; identity normaliser with a dummy prefix."""
    from m2ugen_model.presets import build_tiny_tokenizer

    pb = _sentencepiece_proto()
    piece_type = pb.ModelProto.SentencePiece
    vocab = build_tiny_tokenizer().get_vocab()
    model = pb.ModelProto()
    for rank, (piece, _) in enumerate(sorted(vocab.items(), key=lambda kv: kv[1])):
        p = model.pieces.add()
        p.piece = piece
        if piece == "<unk>":
            p.type, p.score = piece_type.UNKNOWN, 0.0
        elif piece in ("<s>", "</s>"):
            p.type, p.score = piece_type.CONTROL, 0.0
        elif piece.startswith("<0x") and len(piece) == 6:
            p.type, p.score = piece_type.BYTE, 0.0
        else:
            p.type, p.score = piece_type.NORMAL, -float(rank)
    if len(model.pieces) != sizes.vocab:
        raise RuntimeError(f"tiny LLaMA tokenizer has {len(model.pieces)} pieces, expected {sizes.vocab}")
    return _save_sentencepiece(model, path, "identity", remove_extra_whitespaces=False,
                               model_type=model.trainer_spec.BPE, vocab_size=sizes.vocab, byte_fallback=True,
                               split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1)


_T5_CORPUS = ["a calm piano piece with soft strings and a slow tempo", "an upbeat rock song with electric guitar",
              "a jazz tune with saxophone trumpet upright bass and brushed drums", "happy energetic pop music",
              "low quality, sad ambient electronic soundscape"]


def write_t5_spiece(path: Path, sizes: TinySizes = SIZES) -> Path:
    """A SentencePiece unigram ``spiece.model`` shaped like T5's: ``<pad>``, ``</s>``, ``<unk>`` at 0/1/2."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=sizes.t5_vocab_pieces, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(_T5_CORPUS * 8, trainer)
    pb = _sentencepiece_proto()
    piece_type = pb.ModelProto.SentencePiece
    model = pb.ModelProto()
    for piece, score in json.loads(tok.to_str())["model"]["vocab"]:
        p = model.pieces.add()
        p.piece, p.score = piece, float(score)
        p.type = (piece_type.CONTROL if piece in ("<pad>", "</s>") else
                  piece_type.UNKNOWN if piece == "<unk>" else piece_type.NORMAL)
    return _save_sentencepiece(model, path, "nmt_nfkc", remove_extra_whitespaces=True,
                               model_type=model.trainer_spec.UNIGRAM, vocab_size=len(model.pieces), pad_id=0,
                               eos_id=1, unk_id=2, bos_id=-1)


# ---------------------------------------------------------------- LLaMA-2-7B
def _tiny_hf_llama(cfg: M2UGenConfig, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    hf = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.ffn_dim,
                     num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                     num_key_value_heads=cfg.n_kv_heads, rms_norm_eps=cfg.norm_eps, max_position_embeddings=4096,
                     tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(hf)
    _widen(model, 0.2, seed)
    with torch.no_grad():  # values both the HF fp16 files and Meta's bf16 shards hold exactly: the same model
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float().masked_fill(p.abs() < 1e-4, 0.0))
    return model


def _llama_hf_config(cfg: M2UGenConfig) -> dict:
    return {"_name_or_path": "meta-llama/Llama-2-7b-hf", "architectures": ["LlamaForCausalLM"], "bos_token_id": 1,
            "eos_token_id": 2, "hidden_act": "silu", "hidden_size": cfg.dim, "initializer_range": 0.02,
            "intermediate_size": cfg.ffn_dim, "max_position_embeddings": 4096, "model_type": "llama",
            "num_attention_heads": cfg.n_heads, "num_hidden_layers": cfg.n_layers,
            "num_key_value_heads": cfg.n_kv_heads, "pretraining_tp": 1, "rms_norm_eps": cfg.norm_eps,
            "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "float16",
            "transformers_version": "4.31.0.dev0", "use_cache": True, "vocab_size": cfg.vocab_size}


_LLAMA_TOKEN = {"__type": "AddedToken", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}


def write_llama2_hf(out_dir: str | Path, cfg: M2UGenConfig | None = None, seed: int = 0) -> Path:
    """``meta-llama/Llama-2-7b-hf``: two fp16 safetensors shards with their index (rotary ``inv_freq`` buffers
    included, as the conversion-era files carry them), configs, and the tokenizer in both forms."""
    from safetensors.torch import save_file
    from transformers import LlamaTokenizer

    cfg = cfg or llama_config()
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in _tiny_hf_llama(cfg, seed).state_dict().items()}
    head = cfg.dim // cfg.n_heads
    inv_freq = (1.0 / (10000.0 ** (torch.arange(0, head, 2).float() / head))).to(torch.float16)
    for i in range(cfg.n_layers):
        state[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv_freq.clone()
    names = sorted(state)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for fname, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(d / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in keys})
    total = sum(v.numel() * v.element_size() for v in state.values())
    _json(d / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    _json(d / "config.json", _llama_hf_config(cfg))
    _json(d / "generation_config.json", {"bos_token_id": 1, "do_sample": True, "eos_token_id": 2, "pad_token_id": 0,
                                         "temperature": 0.6, "max_length": 4096, "top_p": 0.9,
                                         "transformers_version": "4.31.0.dev0"})
    write_llama_tokenizer_model(d / "tokenizer.model")
    LlamaTokenizer.from_pretrained(str(d), add_bos_token=True, add_eos_token=False, legacy=False).save_pretrained(str(d))
    _json(d / "tokenizer_config.json", {
        "add_bos_token": True, "add_eos_token": False, "bos_token": {**_LLAMA_TOKEN, "content": "<s>"},
        "clean_up_tokenization_spaces": False, "eos_token": {**_LLAMA_TOKEN, "content": "</s>"}, "legacy": False,
        "model_max_length": 1000000000000000019884624838656, "pad_token": None, "padding_side": "right",
        "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer", "unk_token": {**_LLAMA_TOKEN, "content": "<unk>"}})
    _json(d / "special_tokens_map.json", {"bos_token": {**{k: v for k, v in _LLAMA_TOKEN.items() if k != "__type"},
                                                        "content": "<s>"},
                                          "eos_token": {**{k: v for k, v in _LLAMA_TOKEN.items() if k != "__type"},
                                                        "content": "</s>"},
                                          "unk_token": {**{k: v for k, v in _LLAMA_TOKEN.items() if k != "__type"},
                                                        "content": "<unk>"}})
    return d


def _hf_to_meta_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Meta's interleaved rotary row order from HF's rotate-half order. HF's conversion script permutes Meta's
    rows with ``view(heads, rows // heads // 2, 2, cols).transpose(1, 2)``; this is its inverse."""
    out, d_in = w.shape
    return w.view(n_heads, 2, out // n_heads // 2, d_in).transpose(1, 2).reshape(out, d_in)


def meta_state_from_hf(hf_state: dict[str, torch.Tensor], cfg: M2UGenConfig) -> OrderedDict[str, torch.Tensor]:
    """The consolidated.00.pth state dict (Meta's key names and row order) holding the same model as an HF
    LLaMA state dict."""
    names = {"q_proj": "attention.wq", "k_proj": "attention.wk", "v_proj": "attention.wv", "o_proj": "attention.wo",
             "gate_proj": "feed_forward.w1", "down_proj": "feed_forward.w2", "up_proj": "feed_forward.w3"}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    out["tok_embeddings.weight"] = hf_state["model.embed_tokens.weight"]
    out["norm.weight"] = hf_state["model.norm.weight"]
    out["output.weight"] = hf_state["lm_head.weight"]
    for i in range(cfg.n_layers):
        pre = f"model.layers.{i}."
        for hf_name, ours in names.items():
            sub = "self_attn" if hf_name.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
            w = hf_state[f"{pre}{sub}.{hf_name}.weight"]
            if hf_name == "q_proj":
                w = _hf_to_meta_rows(w, cfg.n_heads)
            elif hf_name == "k_proj":
                w = _hf_to_meta_rows(w, cfg.n_kv_heads)
            out[f"layers.{i}.{ours}.weight"] = w
        out[f"layers.{i}.attention_norm.weight"] = hf_state[f"{pre}input_layernorm.weight"]
        out[f"layers.{i}.ffn_norm.weight"] = hf_state[f"{pre}post_attention_layernorm.weight"]
    head = cfg.dim // cfg.n_heads
    out["rope.freqs"] = 1.0 / (10000.0 ** (torch.arange(0, head, 2).float() / head))
    return out


def write_llama2_meta(out_dir: str | Path, cfg: M2UGenConfig | None = None, seed: int = 0,
                      model_folder: str = "llama-2-7b") -> Path:
    """Meta's download: ``<out>/tokenizer.model``, ``<out>/tokenizer_checklist.chk`` and
    ``<out>/<model_folder>/{consolidated.00.pth, params.json, checklist.chk}`` (bf16), the same weights as
    ``write_llama2_hf`` with the same seed. Returns ``out_dir`` (what MU-LLaMA's --llama_dir names)."""
    cfg = cfg or llama_config()
    root = Path(out_dir)
    model_dir = root / model_folder
    model_dir.mkdir(parents=True, exist_ok=True)
    hf_state = _tiny_hf_llama(cfg, seed).state_dict()
    state = OrderedDict((k, v.detach().to(torch.bfloat16).contiguous()) for k, v in meta_state_from_hf(hf_state, cfg).items())
    torch.save(state, model_dir / "consolidated.00.pth")
    _json(model_dir / "params.json", {"dim": cfg.dim, "multiple_of": 256, "n_heads": cfg.n_heads,
                                      "n_layers": cfg.n_layers, "norm_eps": cfg.norm_eps, "vocab_size": -1})
    _md5_checklist(model_dir, ["consolidated.00.pth", "params.json"], model_dir / "checklist.chk")
    write_llama_tokenizer_model(root / "tokenizer.model")
    _md5_checklist(root, ["tokenizer.model"], root / "tokenizer_checklist.chk")
    return root


# ---------------------------------------------------------------- MERT-v1-330M
MERT_STUB = '''"""Stand-in for the file of the same name that m-a-p publishes with MERT (hub code).

m2ugen loads MERT into transformers' HubertModel and never imports this file; importing it fails loudly so a
test notices if anything (trust_remote_code, AutoModel) ever executes hub code.
"""

raise RuntimeError("hub code executed: {name}")
'''


def mert_config(sizes: TinySizes = SIZES) -> dict:
    """m-a-p/MERT-v1-330M's config.json fields with tiny sizes."""
    return {
        "_name_or_path": "m-a-p/MERT-v1-330M", "activation_dropout": 0.0, "apply_spec_augment": True,
        "architectures": ["MERTModel"], "attention_dropout": 0.0, "attention_relax": 32.0,
        "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
        "bos_token_id": 1, "classifier_proj_size": 256, "conv_bias": False, "conv_dim": [sizes.conv_dim] * 7,
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2], "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": False, "deepnorm": False, "do_stable_layer_norm": True, "eos_token_id": 2,
        "feat_extract_activation": "gelu", "feat_extract_dropout": 0.0, "feat_extract_norm": "group",
        "feat_proj_dropout": 0.0, "feat_proj_layer_norm": True, "feature_extractor_cqt": False,
        "feature_extractor_cqt_bins": 336, "final_dropout": 0.0, "gradient_checkpointing": False,
        "hidden_act": "gelu", "hidden_dropout": 0.0, "hidden_size": sizes.mert_width, "initializer_range": 0.02,
        "intermediate_size": 2 * sizes.mert_width, "layer_norm_eps": 1e-05, "layerdrop": 0.0,
        "mask_channel_length": 10, "mask_channel_min_space": 1, "mask_channel_other": 0.0, "mask_channel_prob": 0.0,
        "mask_channel_selection": "static", "mask_feature_length": 10, "mask_feature_min_masks": 0,
        "mask_feature_prob": 0.0, "mask_time_length": 10, "mask_time_min_masks": 2, "mask_time_min_space": 1,
        "mask_time_other": 0.0, "mask_time_prob": 0.05, "mask_time_selection": "static", "model_type": "mert_model",
        "num_attention_heads": 2, "num_conv_pos_embedding_groups": 16, "num_conv_pos_embeddings": 128,
        "num_feat_extract_layers": 7, "num_hidden_layers": sizes.mert_layers, "pad_token_id": 0,
        "sample_rate": 24000, "tokenizer_class": "Wav2Vec2CTCTokenizer", "torch_dtype": "float32",
        "transformers_version": "4.25.1", "use_weighted_layer_sum": False, "vocab_size": 32,
    }


MERT_PREPROCESSOR = {"do_normalize": False, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                     "padding_side": "right", "padding_value": 0, "return_attention_mask": True, "sampling_rate": 24000}


def write_mert_v1(out_dir: str | Path, sizes: TinySizes = SIZES, seed: int = 1, **config_overrides: Any) -> Path:
    """``m-a-p/MERT-v1-330M``: config.json, the two hub .py files (stand-ins that refuse to run),
    preprocessor_config.json and ``pytorch_model.bin`` with HuBERT key names and legacy weight-norm names."""
    from transformers import HubertModel

    from m2ugen_model.weights.mert import hubert_config

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    config = {**mert_config(sizes), **config_overrides}
    _json(d / "config.json", config)
    for name in ("configuration_MERT.py", "modeling_MERT.py"):
        (d / name).write_text(MERT_STUB.replace("{name}", name))
    _json(d / "preprocessor_config.json", MERT_PREPROCESSOR)
    torch.manual_seed(seed)
    hub_cfg = hubert_config({**config, "deepnorm": False, "feature_extractor_cqt": False}, d)
    model = HubertModel(hub_cfg)
    _widen(model, 0.3, seed)
    torch.save(published_state(model), d / "pytorch_model.bin")
    return d


# ---------------------------------------------------------------- ViT-B/16 and ViViT-B 16x2
def write_vit_b16(out_dir: str | Path, sizes: TinySizes = SIZES, seed: int = 2) -> Path:
    """``google/vit-base-patch16-224``: an image classifier (weights under ``vit.`` and a ``classifier``), its
    published 160-byte preprocessor_config.json (no processor type), pytorch_model.bin."""
    from transformers import ViTConfig, ViTForImageClassification

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    labels = {0: "tench, Tinca tinca", 1: "goldfish, Carassius auratus", 2: "great white shark"}
    cfg = ViTConfig(image_size=sizes.image_side, patch_size=16, hidden_size=sizes.vit_width, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=2 * sizes.vit_width, qkv_bias=True, layer_norm_eps=1e-12,
                    id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(seed)
    model = ViTForImageClassification(cfg)
    _widen(model, 0.2, seed)
    torch.save(published_state(model), d / "pytorch_model.bin")
    _json(d / "config.json", {
        "architectures": ["ViTForImageClassification"], "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "hidden_size": sizes.vit_width, "id2label": {str(k): v for k, v in labels.items()},
        "image_size": sizes.image_side, "initializer_range": 0.02, "intermediate_size": 2 * sizes.vit_width,
        "label2id": {v: k for k, v in labels.items()}, "layer_norm_eps": 1e-12, "model_type": "vit",
        "num_attention_heads": 2, "num_channels": 3, "num_hidden_layers": 1, "patch_size": 16, "qkv_bias": True,
        "transformers_version": "4.13.0.dev0"})
    _json(d / "preprocessor_config.json", {"do_normalize": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
                                           "image_std": [0.5, 0.5, 0.5], "size": sizes.image_side})
    return d


def write_vivit_b16x2(out_dir: str | Path, sizes: TinySizes = SIZES, seed: int = 3) -> Path:
    """``google/vivit-b-16x2-kinetics400``: a video classifier (weights under ``vivit.``), config with
    ``gelu_fast`` and tubelets of 2 x 16 x 16, a ViViT image processor config, pytorch_model.bin."""
    from transformers import VivitConfig, VivitForVideoClassification, VivitImageProcessor

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    labels = {0: "abseiling", 1: "air drumming", 2: "playing drums"}
    cfg = VivitConfig(image_size=sizes.image_side, num_frames=sizes.video_frames, tubelet_size=[2, 16, 16],
                      hidden_size=sizes.vit_width, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=2 * sizes.vit_width, hidden_act="gelu_fast", layer_norm_eps=1e-06,
                      qkv_bias=True, id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(seed)
    model = VivitForVideoClassification(cfg)
    _widen(model, 0.2, seed)
    torch.save(published_state(model), d / "pytorch_model.bin")
    _json(d / "config.json", {
        "architectures": ["VivitForVideoClassification"], "attention_probs_dropout_prob": 0.0,
        "hidden_act": "gelu_fast", "hidden_dropout_prob": 0.0, "hidden_size": sizes.vit_width,
        "id2label": {str(k): v for k, v in labels.items()}, "image_size": sizes.image_side,
        "initializer_range": 0.02, "intermediate_size": 2 * sizes.vit_width,
        "label2id": {v: k for k, v in labels.items()}, "layer_norm_eps": 1e-06, "model_type": "vivit",
        "num_attention_heads": 2, "num_channels": 3, "num_frames": sizes.video_frames, "num_hidden_layers": 1,
        "qkv_bias": True, "torch_dtype": "float32", "transformers_version": "4.25.0.dev0", "tubelet_size": [2, 16, 16],
        "video_size": [sizes.video_frames, sizes.image_side, sizes.image_side]})
    proc = VivitImageProcessor(size={"shortest_edge": sizes.image_side},
                               crop_size={"height": sizes.image_side, "width": sizes.image_side})
    _json(d / "preprocessor_config.json", {k: v for k, v in proc.to_dict().items() if not k.startswith("_")})
    return d


# ---------------------------------------------------------------- MusicGen
def _t5_tokenizer_files(d: Path, sizes: TinySizes):
    from transformers import T5Tokenizer

    write_t5_spiece(d / "spiece.model", sizes)
    tok = T5Tokenizer.from_pretrained(str(d), extra_ids=100, model_max_length=512)
    tok.save_pretrained(str(d))
    extra = [f"<extra_id_{i}>" for i in range(100)]
    _json(d / "tokenizer_config.json", {"additional_special_tokens": extra, "eos_token": "</s>", "extra_ids": 100,
                                        "model_max_length": 512, "pad_token": "<pad>", "sp_model_kwargs": {},
                                        "tokenizer_class": "T5Tokenizer", "unk_token": "<unk>"})
    _json(d / "special_tokens_map.json", {"additional_special_tokens": extra, "eos_token": "</s>",
                                          "pad_token": "<pad>", "unk_token": "<unk>"})
    return tok


def write_musicgen(out_dir: str | Path, sizes: TinySizes = SIZES, seed: int = 4) -> Path:
    """``facebook/musicgen-small``: MusicgenForConditionalGeneration (T5 text encoder, EnCodec, decoder) as
    pytorch_model.bin with legacy weight-norm names, its configs and the T5 tokenizer files."""
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    tok = _t5_tokenizer_files(d, sizes)
    t5 = T5Config(vocab_size=len(tok), d_model=sizes.t5_width, d_kv=8, d_ff=2 * sizes.t5_width, num_layers=1,
                  num_heads=2, decoder_start_token_id=0, pad_token_id=0)
    enc = EncodecConfig(sampling_rate=8000, audio_channels=1, num_filters=4, hidden_size=8, upsampling_ratios=[4, 4],
                        codebook_size=16, codebook_dim=8, target_bandwidths=[10.0], num_lstm_layers=1,
                        num_residual_layers=1, normalize=False)
    dec = MusicgenDecoderConfig(vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
                                num_codebooks=enc.num_quantizers, max_position_embeddings=512, pad_token_id=16,
                                bos_token_id=16, decoder_start_token_id=16)
    config = MusicgenConfig(text_encoder=t5.to_dict(), audio_encoder=enc.to_dict(), decoder=dec.to_dict())
    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(config)
    torch.save(published_state(model), d / "pytorch_model.bin")
    published = config.to_dict()
    published.update({"_name_or_path": "facebook/musicgen-small", "architectures": ["MusicgenForConditionalGeneration"],
                      "torch_dtype": "float32", "transformers_version": "4.31.0.dev0"})
    published["audio_encoder"]["_name_or_path"] = "facebook/encodec_32khz"
    published["text_encoder"]["_name_or_path"] = "t5-base"
    _json(d / "config.json", published)
    _json(d / "generation_config.json", {"_from_model_config": False, "bos_token_id": 16, "decoder_start_token_id": 16,
                                         "do_sample": True, "guidance_scale": 3.0, "max_length": 1500,
                                         "pad_token_id": 16, "transformers_version": "4.31.0.dev0"})
    _json(d / "preprocessor_config.json", {"chunk_length_s": None, "feature_extractor_type": "EncodecFeatureExtractor",
                                           "feature_size": 1, "overlap": None, "padding_side": "left",
                                           "padding_value": 0.0, "processor_class": "MusicgenProcessor",
                                           "return_attention_mask": True, "sampling_rate": 8000})
    return d


# ---------------------------------------------------------------- AudioLDM2 (diffusers layout)
AUDIOLDM2_INDEX = {
    "_class_name": "AudioLDM2Pipeline", "_diffusers_version": "0.20.0.dev0",
    "feature_extractor": ["transformers", "ClapFeatureExtractor"], "language_model": ["transformers", "GPT2Model"],
    "projection_model": ["audioldm2", "AudioLDM2ProjectionModel"], "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "ClapModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "RobertaTokenizerFast"], "tokenizer_2": ["transformers", "T5TokenizerFast"],
    "unet": ["audioldm2", "AudioLDM2UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    "vocoder": ["transformers", "SpeechT5HifiGan"],
}


def write_audioldm2(out_dir: str | Path, seed: int = 5) -> Path:
    """``cvssp/audioldm2-music``: the diffusers layout (model_index.json + one folder per component), with the
    published model_index.json (``audioldm2`` module entries) and GPT-2's ``max_new_tokens: 8``."""
    from m2ugen_model.testing.tiny_audioldm2 import write_tiny_audioldm2

    d = write_tiny_audioldm2(out_dir, seed=seed)
    _json(d / "model_index.json", AUDIOLDM2_INDEX)
    lm = d / "language_model" / "config.json"
    _json(lm, {**json.loads(lm.read_text()), "max_new_tokens": 8})
    return d


# ---------------------------------------------------------------- released checkpoint.pth
def _mu_llama_args() -> argparse.Namespace:
    """MU-LLaMA ``main_finetune.py``'s arguments as a finetune run leaves them (after init_distributed_mode)."""
    return argparse.Namespace(
        batch_size=1, epochs=20, accum_iter=1, llama_type="7B", llama_path="./ckpts/LLaMA",
        pretrained_path="./ckpts/MU-LLaMA_Pretrain/checkpoint.pth", max_words=512, weight_decay=0.05, lr=2.5e-07,
        blr=0.0001, min_lr=0.0, warmup_epochs=2, data_config="./configs/finetune.yaml", num_workers=10, pin_mem=True,
        output_dir="./ckpts/MU-LLaMA_Finetune", log_dir="./ckpts/MU-LLaMA_Finetune", device="cuda", seed=0,
        start_epoch=0, world_size=1, local_rank=-1, dist_on_itp=False, dist_url="env://", rank=0, gpu=0,
        distributed=True, dist_backend="nccl")


def _m2ugen_args(decoder: str) -> argparse.Namespace:
    """M2UGen ``main_train.py``'s arguments for the stage-3 run of ``train_musicgen.sh``."""
    return argparse.Namespace(
        batch_size=1, epochs=5, accum_iter=4, llama_type="7B", llama_path="./ckpts/LLaMA-2",
        mert_path="m-a-p/MERT-v1-330M", vit_path="google/vit-base-patch16-224-in21k",
        vivit_path="google/vivit-b-16x2-kinetics400", music_decoder=decoder,
        music_decoder_path="facebook/musicgen-medium" if decoder == "musicgen" else "cvssp/audioldm2-music",
        max_words=1024, weight_decay=0.05, lr=1e-05, blr=0.01, min_lr=0.0, warmup_epochs=0, stage=3,
        load_same_stage=False, data_config="configs/data/pretrain/EN.yaml", num_workers=5, pin_mem=False,
        output_dir="./ckpts/M2UGen-MusicGen", log_dir="./output", device="cuda", seed=420, start_epoch=0,
        world_size=1, local_rank=-1, dist_on_itp=False, dist_url="env://", split_epoch=1, rank=0, gpu=0,
        distributed=True, dist_backend="nccl")


def _optimizer_state(trainable: dict[str, torch.Tensor], lr: float) -> dict:
    """AdamW(betas (0.9, 0.95)) after one step over the trainable tensors, grouped as misc.add_weight_decay does
    (no decay for 1-D tensors and biases first, then the rest)."""
    params = {n: torch.nn.Parameter(v.detach().float().clone()) for n, v in trainable.items()}
    no_decay = [p for n, p in params.items() if p.ndim == 1 or n.endswith(".bias")]
    decay = [p for n, p in params.items() if not (p.ndim == 1 or n.endswith(".bias"))]
    opt = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 0.05}],
                            lr=lr, betas=(0.9, 0.95))
    for p in params.values():
        p.grad = torch.full_like(p, 1e-3)
    opt.step()
    return opt.state_dict()


_SCALER = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0}


def _released_llama(meta_state: dict[str, torch.Tensor], cfg: M2UGenConfig, ours: dict[str, torch.Tensor],
                    n_aud: int, trained_embeddings: bool) -> OrderedDict[str, torch.Tensor]:
    """``llama.*`` of the released state dict: the frozen base in fp16, every layer's gate (fp16, as the
    finetune phase never casts them), trainable norms/biases/LoRA in fp32 (from ``ours``)."""
    from m2ugen_model.checkpoint import ours_to_released

    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    released_trained = ours_to_released({k: v for k, v in ours.items() if not k.startswith("llm.aud_")}, cfg)
    for k, v in meta_state.items():
        if k == "rope.freqs":
            continue
        out[f"llama.{k}"] = v.to(torch.float16)
    vocab_rows = cfg.vocab_size + n_aud
    for name in ("tok_embeddings.weight", "output.weight"):
        base = out[f"llama.{name}"]
        if n_aud:  # the released tables hold the [AUD] rows after the 32000 (embedding rows set to 1)
            extra = torch.ones(n_aud, base.shape[1], dtype=base.dtype) if name.startswith("tok") else \
                torch.randn(n_aud, base.shape[1]).to(base.dtype)
            out[f"llama.{name}"] = torch.cat((base, extra))
        assert out[f"llama.{name}"].shape[0] == vocab_rows
    if trained_embeddings:
        out["llama.tok_embeddings.weight"] = out["llama.tok_embeddings.weight"].float()
    for i in range(cfg.n_layers):
        out[f"llama.layers.{i}.attention.gate"] = torch.zeros(1, cfg.n_heads, 1, 1, dtype=torch.float16)
    for k, v in released_trained.items():
        if k.startswith("llama."):
            is_gate = k.endswith(".attention.gate")
            out[k] = v.to(torch.float16 if is_gate else torch.float32)
    return out


def _module_state(prefix: str, state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((f"{prefix}.{k}", v) for k, v in state.items())


def write_released_checkpoint(path: str | Path, cfg: M2UGenConfig, llama_meta_dir: Path, mert_dir: Path,
                              vit_dir: Path | None = None, vivit_dir: Path | None = None,
                              decoder_dir: Path | None = None, seed: int = 7) -> tuple[Path, dict[str, torch.Tensor]]:
    """A released ``checkpoint.pth`` for ``cfg`` (MU-LLaMA when cfg has no decoder, else M2UGen), built around
    the given published-layout directories' weights. Returns (path, our-named trained tensors written), so a
    test can check what loads where."""
    from m2ugen_model.checkpoint import ours_to_released
    from m2ugen_model.presets import init_model
    from m2ugen_model.stages import trainable_parameters
    from m2ugen_model.weights.files import load_pth

    model = init_model(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed)
    trained = {n: (torch.randn(p.shape, generator=g) * 0.05).to(p.dtype)
               for n, p in trainable_parameters(model, 3).items()}
    if cfg.n_aud_tokens:  # the released tables keep [AUD] rows inside the 32000 + 8 rows, not apart
        trained = {k: v for k, v in trained.items() if not k.startswith("llm.aud_")}
    trained["prefix_query.weight"] = torch.randn(model.prefix_query.weight.shape, generator=g)
    meta_dir = next(p.parent for p in sorted(Path(llama_meta_dir).rglob("consolidated.00.pth")))
    meta_state = load_pth(meta_dir / "consolidated.00.pth")
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    state.update(_module_state("mert_model", {k: v for k, v in load_pth(mert_dir / "pytorch_model.bin").items()}))
    released = ours_to_released({k: v for k, v in trained.items() if not k.startswith(("llm.", "prefix_query"))}, cfg)
    state.update((k, v.float()) for k, v in released.items() if k.startswith("mu_mert"))
    if vit_dir is not None:
        state.update(_module_state("vit_model", _without_prefix(load_pth(vit_dir / "pytorch_model.bin"), "vit.")))
        state.update((k, v.float()) for k, v in released.items() if k.startswith("iu_vit_"))
    if vivit_dir is not None:
        state.update(_module_state("vivit_model", _without_prefix(load_pth(vivit_dir / "pytorch_model.bin"), "vivit.")))
        state.update((k, v.float()) for k, v in released.items() if k.startswith("iu_vivit_"))
    state.update(_released_llama(meta_state, cfg, trained, cfg.n_aud_tokens if cfg.decoder else 0,
                                 trained_embeddings=cfg.decoder is not None))
    if cfg.decoder:
        state.update((k, v.float()) for k, v in released.items() if k.startswith("output_projector."))
        if decoder_dir is not None and (decoder_dir / "pytorch_model.bin").is_file():
            state.update(_module_state("generation_model", load_pth(decoder_dir / "pytorch_model.bin")))
    state["prefix_query.weight"] = trained["prefix_query.weight"].float()
    trainable = {k: v for k, v in state.items() if v.dtype == torch.float32 and not k.startswith(
        ("mert_model.", "vit_model.", "vivit_model.", "generation_model."))}
    lr = 1e-05 if cfg.decoder else 2.5e-07
    wrapper = {"model": state, "optimizer": _optimizer_state(trainable, lr), "epoch": 4 if cfg.decoder else 19,
               "scaler": dict(_SCALER), "args": _m2ugen_args(cfg.decoder) if cfg.decoder else _mu_llama_args()}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(wrapper, p)
    return p, trained


def _without_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A base model's state dict from a task model's (``vit.``/``vivit.`` prefix off, the head dropped)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# ---------------------------------------------------------------- whole directories
def mu_llama_sizes_config(sizes: TinySizes = SIZES) -> M2UGenConfig:
    """The MU-LLaMA model the fixture directory describes (released placement: the top 20 layers, 4x adapters)."""
    from m2ugen_model.presets import mu_llama_7b

    base = llama_config(sizes)
    return mu_llama_7b().replace(
        dim=base.dim, n_layers=base.n_layers, n_heads=base.n_heads, n_kv_heads=base.n_kv_heads, ffn_dim=base.ffn_dim,
        vocab_size=base.vocab_size, max_seq_len=base.max_seq_len,
        audio_feat_shape=(sizes.mert_layers + 1, sizes.mert_width))


def write_mu_llama_release(out_dir: str | Path, sizes: TinySizes = SIZES) -> Path:
    """MU-LLaMA's ``ckpts`` folder as its README lays it out (``LLaMA/7B/...``, ``LLaMA/tokenizer.model``,
    ``checkpoint.pth``) plus the MERT-v1-330M snapshot its code fetches from the hub (``MERT-v1-330M/``)."""
    root = Path(out_dir)
    cfg = mu_llama_sizes_config(sizes)
    write_llama2_meta(root / "LLaMA", cfg, model_folder="7B")
    write_mert_v1(root / "MERT-v1-330M", sizes)
    write_released_checkpoint(root / "checkpoint.pth", cfg, root / "LLaMA", root / "MERT-v1-330M")
    return root


def m2ugen_sizes_config(sizes: TinySizes = SIZES, decoder: str = "musicgen") -> M2UGenConfig:
    """The M2UGen model the fixture directories describe: released adapter placement (top 18 layers, music then
    image then video), a small output projector, tiny encoders and decoder."""
    base = llama_config(sizes)
    side_tokens = (sizes.image_side // 16) ** 2
    if decoder == "musicgen":
        decoder_tokens, decoder_dim = 8, sizes.t5_width
    else:  # the tiny AudioLDM2: T5 prompt 16 x 32 + GPT-2 8 x 16, flattened (decoders.audioldm2_layout)
        decoder_tokens, decoder_dim = 1, 16 * 32 + 8 * 16
    return base.replace(
        audio_feat_shape=(sizes.mert_layers + 1, sizes.mert_width), image_feat_shape=(side_tokens + 1, sizes.vit_width),
        video_feat_shape=((sizes.video_frames // 2) * side_tokens + 1, sizes.vit_width),
        video_frames=sizes.video_frames, audio_window_s=1.0, decoder=decoder, decoder_tokens=decoder_tokens,
        decoder_dim=decoder_dim, projector_dim=32, projector_layers=1, projector_heads=2, projector_ffn=64)


def write_m2ugen_release(out_dir: str | Path, llama_layout: str = "hf", decoder: str = "musicgen",
                         sizes: TinySizes = SIZES) -> Path:
    """Every component M2UGen loads, each in its published layout, with a preset.json naming them and the
    released ``M2UGen-MusicGen/checkpoint.pth`` (``M2UGen-AudioLDM2`` for audioldm2)."""
    from m2ugen_model.presets import PRESET_FILE

    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    cfg = m2ugen_sizes_config(sizes, decoder)
    meta_root = write_llama2_meta(root / "llama-2", cfg)
    llama_dir = write_llama2_hf(root / "Llama-2-7b-hf", cfg) if llama_layout == "hf" else meta_root
    mert = write_mert_v1(root / "MERT-v1-330M", sizes)
    vit = write_vit_b16(root / "vit-base-patch16-224", sizes)
    vivit = write_vivit_b16x2(root / "vivit-b-16x2-kinetics400", sizes)
    dec = write_musicgen(root / "musicgen-small", sizes) if decoder == "musicgen" else \
        write_audioldm2(root / "audioldm2-music")
    release = "M2UGen-MusicGen" if decoder == "musicgen" else "M2UGen-AudioLDM2"
    write_released_checkpoint(root / release / "checkpoint.pth", cfg, meta_root, mert, vit, vivit, dec)
    paths = {"llama_dir": llama_dir, "mert_dir": mert, "vit_dir": vit, "vivit_dir": vivit, "decoder_dir": dec}
    preset = cfg.replace(**{k: str(v.relative_to(root)) for k, v in paths.items()})
    (root / PRESET_FILE).write_text(json.dumps(preset.to_dict(), indent=2, sort_keys=True))
    return root
