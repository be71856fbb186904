"""A tiny random AudioLDM2 pipeline written to a directory like the real `cvssp/audioldm2-music`.

The AudioLDM2 decoder path (projector output -> T5 prompt + GPT-2 "generated" embeddings -> latent
diffusion -> vocoder) must be tested without downloading gigabytes, so this builds every component at toy
size (the shapes follow diffusers' own AudioLDM2 test components) with tokenizers trained offline, and saves
it with `save_pretrained`, so `decoders.load_audioldm2` reads it through the same `from_pretrained` path as
the real weights. Needs diffusers (the `gpu` extra; the dev extra installs it for this test).
"""

from __future__ import annotations

from pathlib import Path

_CORPUS = ["a calm piano piece with soft strings", "an upbeat rock song with electric guitar and drums",
           "a jazz tune with saxophone trumpet upright bass and brushed drums", "low quality"]


def _bpe(specials: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=specials[-1]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer)
    return tok


def _unigram(specials: list[str], vocab_size: int):
    """T5's tokenizer is a SentencePiece unigram model; transformers rebuilds it as one when loading."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=specials[-1],
                                      show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer)
    return tok


def write_tiny_audioldm2(out_dir: str | Path, seed: int = 0, prompt_tokens: int = 16) -> Path:
    """Save a random AudioLDM2Pipeline under out_dir; its T5 prompt is `prompt_tokens` x 32 and its GPT-2
    generates 8 x 16 embeddings, so the M2UGen conditioning is one vector of prompt_tokens*32 + 8*16."""
    import torch
    from diffusers import AudioLDM2Pipeline, AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel, AutoencoderKL
    from diffusers import DDIMScheduler
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        GPT2Config,
        GPT2Model,
        RobertaTokenizerFast,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        T5Config,
        T5EncoderModel,
        T5TokenizerFast,
    )

    torch.manual_seed(seed)
    unet = AudioLDM2UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 32], [None, 16, 32]))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=1, out_channels=1,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4)
    roberta = _bpe(["<s>", "<pad>", "</s>", "<unk>"], 300)
    tokenizer = RobertaTokenizerFast(tokenizer_object=roberta, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                     unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<unk>",
                                     model_max_length=77)
    text = ClapTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=16, intermediate_size=37, num_attention_heads=2,
                          num_hidden_layers=1, pad_token_id=1, vocab_size=len(tokenizer), projection_dim=16)
    audio = ClapAudioConfig(spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=37, depths=[1, 1],
                            num_attention_heads=[2, 2], num_hidden_layers=2, hidden_size=192, projection_dim=16,
                            patch_size=2, patch_stride=2, patch_embed_input_channels=4)
    text_encoder = ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))
    feature_extractor = ClapFeatureExtractor(feature_size=64, hop_length=7900)
    t5_tok = T5TokenizerFast(tokenizer_object=_unigram(["<pad>", "</s>", "<unk>"], 120), pad_token="<pad>",
                             eos_token="</s>", unk_token="<unk>", extra_ids=0, model_max_length=prompt_tokens)
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=32, d_ff=37, d_kv=8, num_heads=2,
                                             num_layers=1))
    language_model = GPT2Model(GPT2Config(n_embd=16, n_head=2, n_layer=1, vocab_size=1000, n_ctx=99, n_positions=99))
    language_model.config.max_new_tokens = 8
    projection_model = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32, langauge_model_dim=16)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[2, 2],
        upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
        normalize_before=False))
    pipe = AudioLDM2Pipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                             projection_model=projection_model, language_model=language_model, tokenizer=tokenizer,
                             tokenizer_2=t5_tok, feature_extractor=feature_extractor, unet=unet, scheduler=scheduler,
                             vocoder=vocoder)
    out = Path(out_dir)
    pipe.save_pretrained(str(out))
    return out
