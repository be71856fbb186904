"""Tiny randomly initialised stand-ins for the real captioning checkpoints, built offline.

Tests and benchmarks save them with ``save_pretrained`` (weights, processor, tokenizer) and load them back
through the same loaders as BLIP-base, a TimeSformer/VideoMAE-GPT2 captioner and VideoMAE-Kinetics, so the
whole path (files on disk, processors, batching, generation, decoding) runs without any download. Their
texts are random words; what they check is plumbing, never caption quality.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "a the image shows man woman guitar piano drums stage band people playing singing dancing red blue green "
    "yellow black white light dark room street car tree sky water crowd concert video of with and in on"
).split()
KINETICS_LIKE = ("playing guitar", "playing drums", "dancing ballet", "singing", "playing piano")
SEED = 1234
# Much larger than the 0.02 of real checkpoints: at 0.02 a tiny random decoder ignores its input and writes
# the same text for every picture, which would hide a batching mix-up.
INIT = 0.5


def _bert_tokenizer():
    """A lower-casing WordPiece tokenizer over ``WORDS`` plus BLIP's extra [DEC] token."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *WORDS]
    wordpiece = BertWordPieceTokenizer({w: i for i, w in enumerate(vocab)}, lowercase=True)
    specials = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    return BertTokenizerFast(
        tokenizer_object=wordpiece, do_lower_case=True, bos_token="[DEC]", model_max_length=64, **specials
    )


def _gpt2_tokenizer():
    """A byte-level BPE tokenizer trained on ``WORDS`` (GPT-2's scheme at a toy vocabulary size)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([" ".join(WORDS)] * 4, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    eos = "<|endoftext|>"
    return GPT2TokenizerFast(tokenizer_object=bpe, bos_token=eos, eos_token=eos, unk_token=eos, model_max_length=64)


def _videomae_config(**extra):
    from transformers import VideoMAEConfig

    return VideoMAEConfig(
        image_size=32, patch_size=8, num_channels=3, num_frames=4, tubelet_size=2, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, initializer_range=INIT, **extra,
    )


def _videomae_processor():
    from transformers import VideoMAEImageProcessor

    return VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def save_tiny_blip(directory: str | Path) -> Path:
    """A 2-layer BLIP captioner at 32 px with its BlipProcessor (BERT tokenizer)."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    directory = Path(directory)
    tok = _bert_tokenizer()
    dims = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, initializer_range=INIT)
    config = BlipConfig(
        vision_config=dict(image_size=32, patch_size=8, **dims),
        text_config=dict(
            vocab_size=len(tok), encoder_hidden_size=32, max_position_embeddings=64,
            bos_token_id=tok.convert_tokens_to_ids("[DEC]"), pad_token_id=tok.pad_token_id,
            sep_token_id=tok.sep_token_id, eos_token_id=tok.sep_token_id, **dims,
        ),
        projection_dim=32,
    )
    torch.manual_seed(SEED)
    BlipForConditionalGeneration(config).eval().save_pretrained(directory)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(directory)
    return directory


def save_tiny_video_gpt2(directory: str | Path) -> Path:
    """A VisionEncoderDecoder: 4-frame VideoMAE encoder + 2-layer GPT-2 decoder, with a VideoMAE processor
    and a GPT-2 tokenizer, laid out like the TimeSformer-GPT2 captioning checkpoints."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, VideoMAEModel, VisionEncoderDecoderModel

    directory = Path(directory)
    tok = _gpt2_tokenizer()
    torch.manual_seed(SEED)
    decoder = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=4, add_cross_attention=True,
            is_decoder=True, initializer_range=INIT, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        )
    )
    model = VisionEncoderDecoderModel(encoder=VideoMAEModel(_videomae_config()), decoder=decoder)
    model.config.decoder_start_token_id = tok.bos_token_id
    model.config.pad_token_id = tok.eos_token_id
    model.config.eos_token_id = tok.eos_token_id
    model.generation_config.decoder_start_token_id = tok.bos_token_id
    model.generation_config.pad_token_id = tok.eos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.eval().save_pretrained(directory)
    tok.save_pretrained(directory)
    _videomae_processor().save_pretrained(directory)
    return directory


def save_tiny_videomae_classifier(directory: str | Path) -> Path:
    """A 4-frame VideoMAE classifier over five Kinetics-like classes, with its processor."""
    import torch
    from transformers import VideoMAEForVideoClassification

    directory = Path(directory)
    labels = dict(enumerate(KINETICS_LIKE))
    torch.manual_seed(SEED)
    config = _videomae_config(num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()})
    VideoMAEForVideoClassification(config).eval().save_pretrained(directory)
    _videomae_processor().save_pretrained(directory)
    return directory
