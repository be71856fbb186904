"""Tiny random visual captioners written in the layouts their real checkpoints are published in.

``tiny_models`` saves stand-ins with today's ``save_pretrained``; these write what a user downloads:

- ``Salesforce/blip-image-captioning-base``: ``config.json`` (``model_type: blip``,
  ``architectures: [BlipForConditionalGeneration]``, ``text_config``/``vision_config`` with BLIP's token ids:
  ``bos_token_id`` is the ``[DEC]`` token added after BERT's vocabulary, ``sep_token_id`` ``[SEP]``),
  ``preprocessor_config.json`` (``BlipImageProcessor`` with CLIP's mean/std, ``processor_class: BlipProcessor``),
  a lower-casing WordPiece tokenizer (``vocab.txt``, ``tokenizer.json``, ``tokenizer_config.json`` with
  ``tokenizer_class: BertTokenizer``, ``special_tokens_map.json``; ``[DEC]`` and ``[ENC]`` added after the
  vocabulary, as BLIP's ``init_tokenizer`` does), and both ``model.safetensors`` and ``pytorch_model.bin``.
- ``Neleac/timesformer-gpt2-video-captioning``: a ``VisionEncoderDecoderModel`` config with a TimeSformer
  encoder (8 frames, divided space-time attention) and a GPT-2 decoder with cross-attention,
  ``decoder_start_token_id``/``pad_token_id`` = GPT-2's ``<|endoftext|>``, weights, a generation config, and
  no image processor or tokenizer: the published repository has none, which is the point.
- its processor and tokenizer sources: ``MCG-NJU/videomae-base``'s ``preprocessor_config.json`` (the
  ``VideoMAEFeatureExtractor`` form of 2022, ImageNet mean/std) and ``gpt2``'s tokenizer files (``vocab.json``,
  ``merges.txt``, ``tokenizer.json``, ``tokenizer_config.json`` holding only ``model_max_length``, and
  ``config.json`` whose ``model_type: gpt2`` picks the tokenizer class), ``<|endoftext|>`` last in the vocabulary.

Config files are written in the field names of the transformers release the checkpoints were saved with
(``torch_dtype``, ``transformers_version`` 4.2x), not in the schema this transformers would write.

Where the facts come from: BLIP's file list from public download scripts of the repository; ``[DEC]``/``[ENC]``
from BLIP's ``init_tokenizer`` (salesforce/BLIP ``models/blip.py``); the prompt and the processor source from
M2UGen's ``Datasets/MUImage/03_caption_image.py``; BLIP's token-id fields from transformers' ``BlipTextConfig``
defaults. The video captioner's encoder (TimeSformer-base-k600, 8 frames), decoder (GPT-2) and its borrowed
processor/tokenizer from its model card (Neleac/SpaceTimeGPT) and M2UGen's
``Datasets/MUVideo/03_caption_video.py``; ``decoder_start_token_id``/``pad_token_id`` = GPT-2's eos from the
SpaceTimeGPT training script. The videomae-base and gpt2 file contents are written as published to my
knowledge (the search tool did not return those files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from m2ugen_data.testing.dialogue_layouts import byte_bpe
from m2ugen_data.testing.tiny_vision_models import INIT, SEED, WORDS

CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2))


def _weights(model: Any, out: Path, config: dict[str, Any], *, bin_too: bool = False) -> None:
    """The model's weights (safetensors, and the legacy .bin beside it when published so), then the
    published config.json over the one save_pretrained wrote."""
    import torch

    model.eval().save_pretrained(out)
    if bin_too:
        torch.save(model.state_dict(), out / "pytorch_model.bin")
    _json(out / "config.json", config)


def write_blip_captioning_base(out: Path | str, *, image_size: int = 32) -> Path:
    """BLIP image-captioning-base's published layout at toy size (module docstring)."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    wordpiece = BertWordPieceTokenizer({w: i for i, w in enumerate(vocab)}, lowercase=True)
    tok = BertTokenizerFast(tokenizer_object=wordpiece, do_lower_case=True, model_max_length=512, **specials)
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    tok.save_pretrained(out)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    _json(out / "special_tokens_map.json", specials)
    _json(out / "tokenizer_config.json", {
        "cls_token": "[CLS]", "do_basic_tokenize": True, "do_lower_case": True, "mask_token": "[MASK]",
        "model_max_length": 512, "name_or_path": "bert-base-uncased", "never_split": None, "pad_token": "[PAD]",
        "processor_class": "BlipProcessor", "sep_token": "[SEP]", "special_tokens_map_file": None,
        "strip_accents": None, "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer", "unk_token": "[UNK]",
    })
    _json(out / "preprocessor_config.json", {
        "do_normalize": True, "do_resize": True, "image_mean": CLIP_MEAN, "image_processor_type": "BlipImageProcessor",
        "image_std": CLIP_STD, "processor_class": "BlipProcessor", "resample": 3, "rescale_factor": 1 / 255,
        "size": {"height": image_size, "width": image_size},
    })
    dims = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2}
    config = {
        "architectures": ["BlipForConditionalGeneration"], "image_text_hidden_size": 256, "initializer_factor": 1.0,
        "initializer_range": INIT, "logit_scale_init_value": 2.6592, "model_type": "blip", "projection_dim": 32,
        "text_config": {
            "model_type": "blip_text_model", "vocab_size": len(tok), "encoder_hidden_size": 32,
            "max_position_embeddings": 512, "bos_token_id": tok.convert_tokens_to_ids("[DEC]"), "eos_token_id": 2,
            "pad_token_id": tok.pad_token_id, "sep_token_id": tok.sep_token_id, "initializer_range": INIT, **dims,
        },
        "vision_config": {"model_type": "blip_vision_model", "image_size": image_size, "patch_size": 8,
                          "initializer_range": INIT, **dims},
        "torch_dtype": "float32", "transformers_version": "4.26.0.dev0",
    }
    torch.manual_seed(SEED)
    model = BlipForConditionalGeneration(BlipConfig(**config))
    _weights(model, out, config, bin_too=True)
    (out / "generation_config.json").unlink()  # save_pretrained's, not the published repository's
    return out


def write_timesformer_gpt2_captioner(out: Path | str, *, vocab_size: int, eos_id: int) -> Path:
    """Neleac/timesformer-gpt2-video-captioning's published layout at toy size: model files only."""
    import torch
    from transformers import GPT2Config, TimesformerConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # 224 px like the real encoder (so the processor's published size fits), in 32 px patches to stay tiny
    encoder = {"model_type": "timesformer", "image_size": 224, "patch_size": 32, "num_channels": 3, "num_frames": 8,
               "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
               "attention_type": "divided_space_time", "initializer_range": INIT, "qkv_bias": True}
    decoder = {"model_type": "gpt2", "vocab_size": vocab_size, "n_positions": 64, "n_embd": 32, "n_layer": 2,
               "n_head": 4, "add_cross_attention": True, "is_decoder": True, "bos_token_id": eos_id,
               "eos_token_id": eos_id, "initializer_range": INIT}
    config = {
        "architectures": ["VisionEncoderDecoderModel"], "decoder": decoder, "decoder_start_token_id": eos_id,
        "encoder": encoder, "eos_token_id": eos_id, "is_encoder_decoder": True, "model_type": "vision-encoder-decoder",
        "pad_token_id": eos_id, "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.29.2",
    }
    torch.manual_seed(SEED)
    model = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        TimesformerConfig(**{k: v for k, v in encoder.items() if k != "model_type"}),
        GPT2Config(**{k: v for k, v in decoder.items() if k != "model_type"}),
    ))
    model.config.decoder_start_token_id = model.config.pad_token_id = model.config.eos_token_id = eos_id
    _weights(model, out, config)
    _json(out / "generation_config.json", {"decoder_start_token_id": eos_id, "eos_token_id": eos_id,
                                           "pad_token_id": eos_id, "transformers_version": "4.29.2"})
    return out


def write_videomae_base_processor(out: Path | str, *, size: int = 224) -> Path:
    """MCG-NJU/videomae-base's image processor file (all the captioner takes from that repository)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _json(out / "preprocessor_config.json", {
        "do_center_crop": True, "do_normalize": True, "do_resize": True, "feature_extractor_type": "VideoMAEFeatureExtractor",
        "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "resample": 2, "size": size,
    })
    return out


def write_gpt2_tokenizer(out: Path | str) -> Path:
    """gpt2's tokenizer files: byte-level BPE with ``<|endoftext|>`` as the last id (50256 in the real one)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = byte_bpe([], ["<|endoftext|>"])
    tok.save(str(out / "tokenizer.json"))
    tok.model.save(str(out))
    _json(out / "tokenizer_config.json", {"model_max_length": 1024})
    _json(out / "config.json", {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
                                "vocab_size": tok.get_vocab_size(), "bos_token_id": tok.token_to_id("<|endoftext|>"),
                                "eos_token_id": tok.token_to_id("<|endoftext|>")})
    return out


def write_video_captioner_sources(root: Path | str) -> dict[str, Path]:
    """The captioner and the two repositories it borrows from, as three directories under ``root``."""
    root = Path(root)
    tokenizer = write_gpt2_tokenizer(root / "gpt2")
    tok = json.loads((tokenizer / "config.json").read_text())
    return {
        "model": write_timesformer_gpt2_captioner(root / "timesformer-gpt2-video-captioning",
                                                  vocab_size=tok["vocab_size"], eos_id=tok["eos_token_id"]),
        "processor": write_videomae_base_processor(root / "videomae-base"),
        "tokenizer": tokenizer,
    }
