"""Music decoders conditioned on projected embeddings: MusicGen (transformers) and AudioLDM2 (diffusers,
optional). Each gives the training target for a caption (its text-encoder embedding, what the output
projector learns to produce) and generates audio from a projector output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoders import _local_dir

AUDIOLDM2_PROMPT = (128, 1024)  # flan-T5 prompt embeddings, padded/truncated to 128 tokens
AUDIOLDM2_GENERATED = (8, 768)  # GPT-2 generated embeddings


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

    @torch.no_grad()
    def text_embeddings(self, captions: list[str]) -> torch.Tensor:
        """The decoder's own conditioning for `captions` (unscaled): the MSE target of stage 2."""
        if self.kind == "musicgen":
            dev = self.model.device
            enc = self.tokenizer(captions, padding="max_length", max_length=self.max_text_tokens,
                                 truncation=True, return_tensors="pt").to(dev)
            return self.model.text_encoder(input_ids=enc["input_ids"],
                                           attention_mask=enc["attention_mask"]).last_hidden_state.float()
        # diffusers returns (prompt_embeds, attention_mask, generated_prompt_embeds)
        prompt, _, generated = self.model.encode_prompt(
            captions, device=self.model.device, num_waveforms_per_prompt=1, do_classifier_free_guidance=False,
        )
        prompt = _fit_tokens(prompt, AUDIOLDM2_PROMPT[0])
        return torch.cat((prompt.flatten(1), generated.flatten(1)), dim=1)[:, None, :].float()

    @torch.no_grad()
    def generate(self, conditioning: torch.Tensor, seconds: float = 10.0, **kwargs: Any) -> np.ndarray:
        """conditioning: projector output already divided by mse_scale, (B, tokens, width).
        Returns (B, samples) float32 at `sample_rate`."""
        if self.kind == "musicgen":
            from transformers.modeling_outputs import BaseModelOutput

            frame_rate = int(self.model.config.audio_encoder.frame_rate)
            cond = conditioning.to(self.model.device, self.model.dtype)
            out = self.model.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=cond),
                attention_mask=torch.ones(cond.shape[:2], dtype=torch.long, device=cond.device),
                max_new_tokens=max(1, int(frame_rate * seconds)), guidance_scale=kwargs.pop("guidance_scale", None),
                do_sample=kwargs.pop("do_sample", True), **kwargs,
            )
            return out[:, 0].float().cpu().numpy()
        n_prompt = AUDIOLDM2_PROMPT[0] * AUDIOLDM2_PROMPT[1]
        flat = conditioning.reshape(conditioning.shape[0], -1).to(self.model.device, self.model.unet.dtype)
        audios = self.model(
            prompt_embeds=flat[:, :n_prompt].reshape(-1, *AUDIOLDM2_PROMPT),
            generated_prompt_embeds=flat[:, n_prompt:].reshape(-1, *AUDIOLDM2_GENERATED),
            audio_length_in_s=seconds, guidance_scale=kwargs.pop("guidance_scale", 1.0), output_type="np", **kwargs,
        ).audios
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


def load_audioldm2(path: str | Path) -> MusicDecoder:
    try:
        from diffusers import AudioLDM2Pipeline
    except ImportError as e:  # diffusers is in the `gpu` extra
        raise ImportError("AudioLDM2 needs diffusers: pip install 'm2ugen[gpu]' (or pip install diffusers)") from e
    d = _local_dir(path, "AudioLDM2")
    return MusicDecoder("audioldm2", AudioLDM2Pipeline.from_pretrained(str(d)))


def load_decoder(kind: str, path: str | Path) -> MusicDecoder:
    loaders = {"musicgen": load_musicgen, "audioldm2": load_audioldm2}
    if kind not in loaders:
        raise ValueError(f"unknown decoder {kind!r}; known: {sorted(loaders)}")
    return loaders[kind](path)
