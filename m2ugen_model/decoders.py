"""Music decoders conditioned on projected embeddings: MusicGen (transformers) and AudioLDM2 (diffusers,
optional). Each gives the training target for a caption (its text-encoder embedding, what the output
projector learns to produce) and generates audio either from a projector output or, as the released code
does, from a text prompt.

MusicGen from a projector output is conditioned exactly the way MusicGen conditions itself on text: the
states stand in for its T5 encoder output, positions beyond the caption are masked through the attention
mask, and classifier-free guidance pairs each sample with an unconditional copy (zero states, zero mask),
which is what `MusicgenForConditionalGeneration.generate` builds internally for text. transformers'
`generate(encoder_outputs=..., guidance_scale>1)` cannot build that half itself (it sizes the batch from
the encoder states), so `generate` adds it here and passes a dummy (B, T) `inputs` so the batch is B.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoders import _local_dir

AUDIOLDM2_PROMPT = (128, 1024)  # flan-T5 prompt embeddings, padded/truncated to 128 tokens (released layout)
AUDIOLDM2_GENERATED = (8, 768)  # GPT-2 generated embeddings
MUSICGEN_GUIDANCE = 3.0  # MusicGen's own default; the released M2UGen demo used 3.5 with text prompts


@dataclass
class MusicDecoder:
    kind: str  # "musicgen" or "audioldm2"
    model: Any  # MusicgenForConditionalGeneration or AudioLDM2Pipeline
    tokenizer: Any = None
    max_text_tokens: int = 128

    @property
    def sample_rate(self) -> int:
        if self.kind == "musicgen":
            return int(self.model.config.audio_encoder.sampling_rate)
        return int(self.model.vocoder.config.sampling_rate)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def audioldm2_layout(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((prompt tokens, width), (generated tokens, width)) of this AudioLDM2 pipeline: the released
        (128 x 1024, 8 x 768) for audioldm2-music, smaller for test pipelines."""
        p = self.model
        prompt = (min(int(p.tokenizer_2.model_max_length), AUDIOLDM2_PROMPT[0]), int(p.text_encoder_2.config.d_model))
        lm = p.language_model.config
        return prompt, (int(getattr(lm, "max_new_tokens", None) or AUDIOLDM2_GENERATED[0]), int(lm.n_embd))

    def _text_inputs(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.unk_token or tok.eos_token
        return tok(texts, padding="max_length", max_length=self.max_text_tokens, truncation=True,
                   return_tensors="pt").to(self.device)

    def text_mask(self, texts: list[str]) -> torch.Tensor:
        """(B, conditioning tokens) long: 1 where the decoder's own text encoding of `texts` has a real
        token. The projector learned T5(caption padded to max_text_tokens), so for a caption of n tokens
        the positions past n imitate T5's padding outputs, which MusicGen never attends to."""
        if self.kind == "musicgen":
            return self._text_inputs(texts)["attention_mask"].long()
        (n, _), _ = self.audioldm2_layout()
        tok = self.model.tokenizer_2
        return tok(texts, padding="max_length", max_length=n, truncation=True, return_tensors="pt")["attention_mask"]

    @torch.no_grad()
    def text_embeddings(self, captions: list[str]) -> torch.Tensor:
        """The decoder's own conditioning for `captions` (unscaled): the MSE target of stage 2."""
        if self.kind == "musicgen":
            enc = self._text_inputs(captions)
            return self.model.text_encoder(input_ids=enc["input_ids"],
                                           attention_mask=enc["attention_mask"]).last_hidden_state.float()
        # diffusers returns (prompt_embeds, attention_mask, generated_prompt_embeds)
        prompt, _, generated = self.model.encode_prompt(
            captions, device=self.model.device, num_waveforms_per_prompt=1, do_classifier_free_guidance=False,
        )
        prompt = _fit_tokens(prompt, self.audioldm2_layout()[0][0])
        return torch.cat((prompt.flatten(1), generated.flatten(1)), dim=1)[:, None, :].float()

    @torch.no_grad()
    def generate(self, conditioning: torch.Tensor, seconds: float = 10.0, attention_mask: torch.Tensor | None = None,
                 guidance_scale: float | None = MUSICGEN_GUIDANCE, seed: int | None = None,
                 **kwargs: Any) -> np.ndarray:
        """conditioning: projector output already divided by mse_scale, (B, tokens, width); attention_mask
        (B, tokens) 1 = attend (None: every token; for AudioLDM2 it masks the T5 prompt part).
        guidance_scale > 1 turns on classifier-free guidance. Returns (B, samples) float32 at sample_rate."""
        if seed is not None:
            torch.manual_seed(seed)
        if self.kind == "musicgen":
            return self._musicgen(conditioning, attention_mask, seconds, guidance_scale, **kwargs)
        (p, wp), (g, wg) = self.audioldm2_layout()
        b = conditioning.shape[0]
        flat = conditioning.reshape(b, -1).to(self.device, self.model.unet.dtype)
        if flat.shape[1] != p * wp + g * wg:
            raise ValueError(f"AudioLDM2 conditioning has {flat.shape[1]} values, this pipeline takes "
                             f"{p}x{wp} + {g}x{wg} = {p * wp + g * wg}")
        mask = None if attention_mask is None else attention_mask[:, :p].to(self.device)
        audios = self.model(
            prompt_embeds=flat[:, : p * wp].reshape(b, p, wp), generated_prompt_embeds=flat[:, p * wp:].reshape(b, g, wg),
            attention_mask=mask, audio_length_in_s=seconds, guidance_scale=guidance_scale or 1.0, output_type="np",
            num_inference_steps=kwargs.pop("num_inference_steps", 200), **kwargs,
        ).audios
        return np.asarray(audios, dtype=np.float32)

    def _musicgen(self, states: torch.Tensor, mask: torch.Tensor | None, seconds: float,
                  guidance_scale: float | None, **kwargs: Any) -> np.ndarray:
        from transformers.modeling_outputs import BaseModelOutput

        m = self.model
        states = states.to(m.device, m.dtype)
        b, t = states.shape[:2]
        mask = (torch.ones((b, t), dtype=torch.long, device=m.device) if mask is None
                else mask.to(m.device, torch.long))
        cfg = guidance_scale is not None and guidance_scale > 1
        if cfg:  # the unconditional half, as MusicGen builds it for text: zero states, nothing to attend
            states = torch.cat((states, torch.zeros_like(states)))
            mask = torch.cat((mask, torch.zeros_like(mask)))
        dummy = torch.full((b, t), -100, dtype=torch.long, device=m.device)  # sets the batch size to B
        out = m.generate(dummy, encoder_outputs=BaseModelOutput(last_hidden_state=states), attention_mask=mask,
                         max_new_tokens=self._frames(seconds), guidance_scale=guidance_scale if cfg else None,
                         do_sample=kwargs.pop("do_sample", True), **kwargs)
        return out[:, 0].float().cpu().numpy()

    def _frames(self, seconds: float) -> int:
        return max(1, int(int(self.model.config.audio_encoder.frame_rate) * seconds))

    @torch.no_grad()
    def generate_from_text(self, texts: list[str], seconds: float = 10.0,
                           guidance_scale: float | None = MUSICGEN_GUIDANCE, seed: int | None = None,
                           negative_prompt: str | None = None, **kwargs: Any) -> np.ndarray:
        """The released code's path: the decoder prompted with text (the LLM's answer), its own text
        encoder and its own classifier-free guidance. Returns (B, samples) float32."""
        if seed is not None:
            torch.manual_seed(seed)
        if self.kind == "musicgen":
            enc = self._text_inputs(texts)
            cfg = guidance_scale is not None and guidance_scale > 1
            out = self.model.generate(**enc, max_new_tokens=self._frames(seconds),
                                      guidance_scale=guidance_scale if cfg else None,
                                      do_sample=kwargs.pop("do_sample", True), **kwargs)
            return out[:, 0].float().cpu().numpy()
        audios = self.model(list(texts), negative_prompt=negative_prompt, audio_length_in_s=seconds,
                            guidance_scale=guidance_scale or 1.0, output_type="np",
                            num_inference_steps=kwargs.pop("num_inference_steps", 200), **kwargs).audios
        return np.asarray(audios, dtype=np.float32)


def _fit_tokens(x: torch.Tensor, n: int) -> torch.Tensor:
    if x.shape[1] >= n:
        return x[:, :n]
    return torch.cat((x, x.new_zeros(x.shape[0], n - x.shape[1], x.shape[2])), dim=1)


def load_musicgen(path: str | Path) -> MusicDecoder:
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    d = _local_dir(path, "MusicGen")
    model = MusicgenForConditionalGeneration.from_pretrained(str(d)).eval().requires_grad_(False)
    return MusicDecoder("musicgen", model, AutoTokenizer.from_pretrained(str(d)))


def _generate_language_model(self, inputs_embeds: torch.Tensor, max_new_tokens: int | None = 8, **model_kwargs):
    """AudioLDM2's GPT-2 step loop without the cache: diffusers (0.42) drives it through GPT2Model
    generation internals that transformers 5 removed. Same result: each step appends the last hidden
    state, positions count unmasked inputs as transformers 4's GPT-2 did."""
    n = max_new_tokens if max_new_tokens is not None else self.language_model.config.max_new_tokens
    mask = model_kwargs.get("attention_mask")
    if mask is None:
        mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
    for _ in range(n):
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
        out = self.language_model(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=positions,
                                  output_hidden_states=True, return_dict=True)
        inputs_embeds = torch.cat((inputs_embeds, out.hidden_states[-1][:, -1:, :]), dim=1)
        mask = torch.cat((mask, mask.new_ones(mask.shape[0], 1)), dim=1)
    return inputs_embeds[:, -n:, :]


def load_audioldm2(path: str | Path) -> MusicDecoder:
    try:
        from diffusers import AudioLDM2Pipeline
    except ImportError as e:  # diffusers is in the `gpu` extra
        raise ImportError("AudioLDM2 needs diffusers: pip install 'm2ugen[gpu]' (or pip install diffusers)") from e
    d = _local_dir(path, "AudioLDM2")
    pipe = AudioLDM2Pipeline.from_pretrained(str(d))
    pipe.set_progress_bar_config(disable=True)
    if not hasattr(pipe.language_model, "_update_model_kwargs_for_generation"):
        pipe.generate_language_model = types.MethodType(_generate_language_model, pipe)
    return MusicDecoder("audioldm2", pipe)


def load_decoder(kind: str, path: str | Path) -> MusicDecoder:
    loaders = {"musicgen": load_musicgen, "audioldm2": load_audioldm2}
    if kind not in loaders:
        raise ValueError(f"unknown decoder {kind!r}; known: {sorted(loaders)}")
    return loaders[kind](path)
