"""Tiny random chat models written in the layouts their real checkpoints are published in.

A stand-in built from a library class and saved by our own code proves nothing about the real files: the
tests then load what we wrote, not what users download. These writers reproduce, at toy sizes, the file
names, config fields, tokenizer files and weight key names of:

- ``mosaicml/mpt-7b-chat``: ``config.json`` with ``model_type: mpt``, ``architectures: [MPTForCausalLM]``
  and an ``auto_map`` to the repository's own ``configuration_mpt``/``modeling_mpt`` (hub code), the
  EleutherAI/gpt-neox-20b tokenizer (``tokenizer.json``, ``GPTNeoXTokenizer``, ``<|endoftext|>`` as
  bos/eos/unk) plus its two ChatML tokens, and bf16 weights in two ``pytorch_model-0000N-of-00002.bin``
  shards with an index, keys ``transformer.wte``, ``transformer.blocks.N.{norm_1,attn.Wqkv,attn.out_proj,
  norm_2,ffn.up_proj,ffn.down_proj}``, ``transformer.norm_f`` (no biases, no ``lm_head``: tied). The hub
  code files are written too, as files that raise when executed: a load that runs them fails the test.
- ``meta-llama/Llama-3.1-8B-Instruct``: ``LlamaForCausalLM`` with ``rope_scaling.rope_type: llama3`` and
  grouped-query attention, sharded ``model-0000N-of-0000M.safetensors``, a ``tokenizer.json`` whose
  post-processor adds ``<|begin_of_text|>``, ``<|eot_id|>`` as eos, and a chat template that renders the
  published format (a system header with the knowledge-cutoff lines, ``<|start_header_id|>`` turns).
- ``Qwen/Qwen2.5-7B-Instruct``: ``Qwen2ForCausalLM``, ``vocab.json`` + ``merges.txt`` + ``tokenizer.json``
  with ``tokenizer_class: Qwen2Tokenizer``, no bos, ``<|im_end|>`` as eos, ``<|endoftext|>`` as pad, and a
  ChatML chat template with Qwen's default system line.

Where the facts come from: MPT's config fields from a verbatim copy of mosaicml's MPT-7B config.json in
public notes (the search tool did not name the repository); its weight files, key names and shapes from
ggml's CI log converting mosaicml/mpt-7b (ggml-org/ci); the two ChatML tokens from mosaicml/llm-foundry PR
#308 and nomic-ai/gpt4all-chat PR #280; the GPT-NeoX tokenizer fields from public fixtures of
EleutherAI/gpt-neox-20b and pythia; the Llama-3.1 rendering from llama.cpp's template tests of
``Meta-Llama-3.1-8B-Instruct.jinja``. The remaining Llama-3.1 and Qwen2.5 field values (rope_scaling, eos
lists, generation settings, Qwen's tokenizer_config) are written as the hub files publish them to my
knowledge; the search tool did not return those files. The chat templates are written here to render what
the published ones render for a system + user turn; they are not copies. Token ids are small (the real
vocabularies are 50k-150k); every id the configs name is the tiny tokenizer's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WORDS = (
    "system user assistant Here is a music that is slow calm fast bright and played on piano guitar violin "
    "drums bass flute Change the to a make it faster slower around 120 BPM in A minor C major Add remove "
    "Generate for image video with"
)
LLAMA31_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: ' + (date_string | default('26 Jul 2024')) + '\\n\\n' }}"
    "{{- system + '<|eot_id|>' }}"
    "{%- for m in messages %}"
    "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}{%- if not (m['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2))


def byte_bpe(specials_first: list[str], specials_last: list[str], vocab_size: int = 300) -> Any:
    """A byte-level BPE trained on ``WORDS``; ``specials_first`` take ids 0.. (GPT-NeoX's <|endoftext|> is
    0), ``specials_last`` are added after the merges (the chat tokens of MPT, Llama's and Qwen's specials)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials_first, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([WORDS] * 4, trainer)
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials_last])
    return tok


def _padded(n: int, multiple: int = 64) -> int:
    return -(-n // multiple) * multiple


def write_mpt_7b_chat(out: Path | str, *, d_model: int = 32, n_layers: int = 2, n_heads: int = 4, seed: int = 0) -> Path:
    """MPT-7B-chat's published layout at toy size (module docstring)."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = byte_bpe(["<|endoftext|>", "<|padding|>"], ["<|im_start|>", "<|im_end|>"])
    tok.save(str(out / "tokenizer.json"))
    eot = "<|endoftext|>"
    _json(out / "tokenizer_config.json", {
        "add_prefix_space": False, "bos_token": eot, "clean_up_tokenization_spaces": True, "eos_token": eot,
        "model_max_length": 2048, "tokenizer_class": "GPTNeoXTokenizer", "unk_token": eot,
    })
    _json(out / "special_tokens_map.json", {"bos_token": eot, "eos_token": eot, "unk_token": eot})
    vocab = _padded(tok.get_vocab_size())  # MPT pads its embedding past the tokenizer (50432 for 50279 tokens)
    _json(out / "config.json", {
        "architectures": ["MPTForCausalLM"],
        "attn_config": {"alibi": True, "alibi_bias_max": 8, "attn_impl": "torch", "attn_pdrop": 0,
                        "attn_type": "multihead_attention", "attn_uses_sequence_id": False, "clip_qkv": None,
                        "prefix_lm": False, "qk_ln": False, "softmax_scale": None},
        "auto_map": {"AutoConfig": "configuration_mpt.MPTConfig", "AutoModelForCausalLM": "modeling_mpt.MPTForCausalLM"},
        "d_model": d_model, "emb_pdrop": 0, "embedding_fraction": 1.0, "expansion_ratio": 4,
        "init_config": {"emb_init_std": None, "emb_init_uniform_lim": None, "fan_mode": "fan_in",
                        "init_div_is_residual": True, "init_gain": 0, "init_nonlinearity": "relu", "init_std": 0.02,
                        "name": "kaiming_normal_", "verbose": 0},
        "init_device": "cpu", "learned_pos_emb": True, "logit_scale": None, "max_seq_len": 2048, "model_type": "mpt",
        "n_heads": n_heads, "n_layers": n_layers, "no_bias": True, "norm_type": "low_precision_layernorm",
        "resid_pdrop": 0, "tokenizer_name": "EleutherAI/gpt-neox-20b", "torch_dtype": "bfloat16",
        "transformers_version": "4.28.1", "use_cache": False, "verbose": 0, "vocab_size": vocab,
    })
    for hub_file in ("configuration_mpt.py", "modeling_mpt.py"):
        (out / hub_file).write_text("raise RuntimeError('the repository code of this checkpoint was executed')\n")
    g = torch.Generator().manual_seed(seed)

    def w(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * 0.3).to(torch.bfloat16)

    state = {"transformer.wte.weight": w(vocab, d_model)}
    for i in range(n_layers):
        p = f"transformer.blocks.{i}."
        state |= {
            p + "norm_1.weight": torch.ones(d_model, dtype=torch.bfloat16),
            p + "attn.Wqkv.weight": w(3 * d_model, d_model),
            p + "attn.out_proj.weight": w(d_model, d_model),
            p + "norm_2.weight": torch.ones(d_model, dtype=torch.bfloat16),
            p + "ffn.up_proj.weight": w(4 * d_model, d_model),
            p + "ffn.down_proj.weight": w(d_model, 4 * d_model),
        }
    state["transformer.norm_f.weight"] = torch.ones(d_model, dtype=torch.bfloat16)
    keys = list(state)
    half = len(keys) // 2
    shards = {"pytorch_model-00001-of-00002.bin": keys[:half], "pytorch_model-00002-of-00002.bin": keys[half:]}
    for name, names in shards.items():
        torch.save({k: state[k] for k in names}, out / name)
    total = sum(t.numel() * t.element_size() for t in state.values())
    _json(out / "pytorch_model.bin.index.json", {
        "metadata": {"total_size": total}, "weight_map": {k: n for n, ks in shards.items() for k in ks},
    })
    return out


def _save_published(model: Any, out: Path, config: dict[str, Any], generation: dict[str, Any]) -> None:
    """Weights by save_pretrained in bf16, in shards small enough that the index and the
    ``model-0000N-of-0000M`` naming of the real multi-GB checkpoints appear; then config.json and
    generation_config.json as published (transformers 4.4x field names: ``torch_dtype``, ``rope_theta``,
    ``rope_scaling``), not in the schema this transformers would write."""
    import torch

    model.to(torch.bfloat16).save_pretrained(out, max_shard_size="10KB")
    _json(out / "config.json", config)
    _json(out / "generation_config.json", generation)


def write_llama31_instruct(out: Path | str, *, hidden: int = 16, layers: int = 2, seed: int = 0) -> Path:
    """Llama-3.1-8B-Instruct's published layout at toy size (module docstring)."""
    import torch
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    tok = byte_bpe([], specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)],
    )
    tok.save(str(out / "tokenizer.json"))
    _json(out / "tokenizer_config.json", {
        "bos_token": "<|begin_of_text|>", "chat_template": LLAMA31_TEMPLATE, "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>", "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast",
    })
    _json(out / "special_tokens_map.json", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})
    eos = [tok.token_to_id(t) for t in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")]
    config = {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": bos, "eos_token_id": eos, "hidden_act": "silu", "hidden_size": hidden,
        "initializer_range": 0.02, "intermediate_size": 2 * hidden, "max_position_embeddings": 131072,
        "mlp_bias": False, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": layers,
        "num_key_value_heads": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": tok.get_vocab_size(),
    }
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**config))
    _save_published(model, out, config, {
        "bos_token_id": bos, "do_sample": True, "eos_token_id": eos, "temperature": 0.6, "top_p": 0.9,
        "transformers_version": "4.43.0.dev0",
    })
    return out


def write_qwen25_instruct(out: Path | str, *, hidden: int = 16, layers: int = 2, seed: int = 0) -> Path:
    """Qwen2.5-7B-Instruct's published layout at toy size (module docstring)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = byte_bpe([], ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.save(str(out / "tokenizer.json"))
    tok.model.save(str(out))  # vocab.json + merges.txt, as Qwen publishes beside tokenizer.json
    _json(out / "tokenizer_config.json", {
        "add_prefix_space": False, "bos_token": None, "chat_template": QWEN25_TEMPLATE,
        "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace",
        "model_max_length": 131072, "pad_token": "<|endoftext|>", "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    })
    eot, im_end = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
    config = {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": eot,
        "eos_token_id": im_end, "hidden_act": "silu", "hidden_size": hidden, "initializer_range": 0.02,
        "intermediate_size": 2 * hidden, "max_position_embeddings": 32768, "max_window_layers": 28,
        "model_type": "qwen2", "num_attention_heads": 4, "num_hidden_layers": layers, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": True,
        "use_sliding_window": False, "vocab_size": tok.get_vocab_size(),
    }
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**config))
    _save_published(model, out, config, {
        "bos_token_id": eot, "pad_token_id": eot, "do_sample": True, "eos_token_id": [im_end, eot],
        "repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "transformers_version": "4.37.0",
    })
    return out
