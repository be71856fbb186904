"""Tiny random models, saved with transformers, standing in for the evaluation's real embedders: the same
loaders read them (``from_pretrained`` on a local directory) as read roberta-large, LAION CLAP or AST."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ("the a an of with and in is calm fast slow soft loud piano guitar drums rock jazz song music tone "
         "bright dark high low sharp middle cat sat on mat").split()


def write_tiny_bert(out: Path) -> Path:
    """A 2-layer BERT with a word-level vocabulary (BERTScore's model)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = BertTokenizer(vocab_file=str(vocab))
    cfg = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _roberta_tokenizer(out: Path):
    """Character-level byte-BPE vocabulary (no merges): enough for CLAP's RoBERTa text tower."""
    from transformers import RobertaTokenizer

    chars = [chr(c) for c in range(33, 127)] + ["Ġ"]
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *chars])}
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    return RobertaTokenizer(vocab_file=str(out / "vocab.json"), merges_file=str(out / "merges.txt")), len(vocab)


def write_tiny_clap(out: Path, sample_rate: int = 16000) -> Path:
    """A tiny unfused HTSAT + RoBERTa ClapModel with its processor (16 kHz, 1 s windows)."""
    import torch
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, ClapTextConfig

    torch.manual_seed(0)
    tok, n_vocab = _roberta_tokenizer(out / "_tok")
    text = ClapTextConfig(vocab_size=n_vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=130, projection_dim=16)
    audio = ClapAudioConfig(window_size=4, num_mel_bins=16, spec_size=64, patch_size=4, patch_stride=(4, 4),
                            depths=[1, 1], num_attention_heads=[2, 2], hidden_size=16, patch_embeds_hidden_size=8,
                            projection_dim=16, enable_fusion=False)
    model = ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))
    fe = ClapFeatureExtractor(feature_size=16, sampling_rate=sample_rate, hop_length=160, max_length_s=1,
                              fft_window_size=400, truncation="rand_trunc")
    model.save_pretrained(out)
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(out)
    return out


def write_tiny_ast(out: Path, num_labels: int | None = None) -> Path:
    """A one-layer Audio Spectrogram Transformer (embedder), or an AST classifier with ``num_labels``."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification, ASTModel

    torch.manual_seed(1)
    cfg = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    num_mel_bins=32, max_length=64, frequency_stride=16, time_stride=16)
    if num_labels:
        cfg.num_labels = num_labels
        cfg.id2label = {i: f"tag{i}" for i in range(num_labels)}
        cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    model = ASTForAudioClassification(cfg) if num_labels else ASTModel(cfg)
    model.save_pretrained(out)
    ASTFeatureExtractor(num_mel_bins=32, max_length=64, sampling_rate=16000).save_pretrained(out)
    return out
