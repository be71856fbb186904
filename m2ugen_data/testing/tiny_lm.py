"""A tiny randomly initialised chat LM written to a directory like real weights.

Tests and benchmarks need a causal LM that loads through exactly the same ``from_pretrained`` path as
MPT-7B-chat (and that ``transformers serve`` or vLLM can serve) without downloading anything. Its output is
noise, which is what the validator must catch.
"""

from __future__ import annotations

from pathlib import Path

CHAT_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>", "<unk>"]

_CORPUS = [
    "system user assistant Here is a music that is slow calm and played on piano",
    "Change the guitar to a violin and make it faster around 120 BPM in A minor",
    "Generate a music for the image that is bright upbeat with drums and bass",
    "You are given a description of input and target music give a single line instruction",
    "Add a flute remove the drums transpose it to C major slow it down keep the mood",
]


def build_tiny_chat_lm(
    out_dir: Path, *, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 1, seed: int = 0
) -> Path:
    """Write config, safetensors weights, tokenizer and generation config to ``out_dir``; return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    # Byte-level BPE like MPT's GPT-NeoX tokenizer: any text round-trips, stop strings work.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=CHAT_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=1024,
        bos_token_id=fast.bos_token_id,
        eos_token_id=[fast.eos_token_id, fast.convert_tokens_to_ids("<|im_end|>")],
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        do_sample=True, top_k=4, eos_token_id=config.eos_token_id, pad_token_id=fast.pad_token_id
    )
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir
