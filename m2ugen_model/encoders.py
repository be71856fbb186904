"""Frozen encoders through transformers, loaded from local directories only, never running hub code.

MERT (music) is published as hub code; weights/mert.py loads it into transformers' own HubertModel (a
HuBERT directory loads the same way). ViT and ViViT are published as image/video classifiers; their base
models are read out of them. Each directory's config is checked to be the model it should be first, so a
swapped directory is one line. Each `encode_*` returns what the adapters aggregate: MERT's hidden states
averaged over time (B, n_states, width), ViT's and ViViT's last hidden state tokens (B, n_tokens, width).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .weights.mert import hidden_states as mert_hidden_states


def _local_dir(path: str | Path | None, what: str) -> Path:
    if path is None:
        raise FileNotFoundError(f"no directory given for the {what} weights")
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{what} weights must be a local directory; {p} is not one")
    return p


def resample(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Mono float32 at target_sr (soxr, high quality)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:  # (channels, samples) or (samples, channels): average the shorter axis
        x = x.mean(axis=0 if x.shape[0] < x.shape[1] else 1)
    if sr == target_sr:
        return x
    import soxr

    return soxr.resample(x, sr, target_sr).astype(np.float32)


@dataclass
class Encoders:
    """Whichever of the three encoders are loaded, each with its preprocessor; not an nn.Module on
    purpose (never trained, never checkpointed with the model)."""

    mert: Any = None
    mert_processor: Any = None
    vit: Any = None
    vit_processor: Any = None
    vivit: Any = None
    vivit_processor: Any = None
    audio_window_s: float = 60.0
    video_frames: int = 32
    video_sampling: str = "consecutive"  # video_frames.py

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Encoders:
        for m in (self.mert, self.vit, self.vivit):
            if m is not None:
                m.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        for m in (self.mert, self.vit, self.vivit):
            if m is not None:
                return next(m.parameters()).device
        return torch.device("cpu")

    @torch.no_grad()
    def encode_audio(self, audios: list[np.ndarray], sr: int) -> torch.Tensor:
        """Each clip resampled to MERT's rate, cut into windows of audio_window_s, every window's hidden
        states (embeddings + each layer) averaged over time, then the windows averaged."""
        if self.mert is None:
            raise RuntimeError("no music encoder loaded (mert_dir)")
        target = self.mert_processor.sampling_rate
        dev, dtype = self.device, next(self.mert.parameters()).dtype
        out = []
        for audio in audios:
            x = resample(audio, sr, target)
            if x.size == 0:
                raise ValueError("empty audio clip")
            win = int(self.audio_window_s * target)
            starts = range(0, max(len(x), 1), win)
            # A trailing scrap shorter than a second carries little and MERT's convolutions need input.
            windows = [x[s:s + win] for s in starts if len(x[s:s + win]) >= min(target, len(x))]
            acc = []
            for w in windows:
                inputs = self.mert_processor(w, sampling_rate=target, return_tensors="pt")
                hs = mert_hidden_states(self.mert, inputs["input_values"].to(dev, dtype))
                acc.append(torch.stack(hs, dim=1)[0].float().mean(1))  # (n_states, width)
            out.append(torch.stack(acc).mean(0))
        return torch.stack(out)

    @torch.no_grad()
    def encode_images(self, images: list[Any]) -> torch.Tensor:
        """PIL images or HxWx3 uint8 arrays -> (B, tokens, width)."""
        if self.vit is None:
            raise RuntimeError("no image encoder loaded (vit_dir)")
        inputs = self.vit_processor(images=list(images), return_tensors="pt")
        pv = inputs["pixel_values"].to(self.device, next(self.vit.parameters()).dtype)
        return self.vit(pixel_values=pv).last_hidden_state.float()

    @torch.no_grad()
    def encode_videos(self, videos: list[np.ndarray]) -> torch.Tensor:
        """Each video (T, H, W, 3) uint8 -> (B, tokens, width): `video_frames` of its frames, chosen by
        `video_sampling` (a video already cut to `video_frames` is used as it is)."""
        from .video_frames import clip_indices

        if self.vivit is None:
            raise RuntimeError("no video encoder loaded (vivit_dir)")
        clips = []
        for v in videos:
            v = np.asarray(v)
            idx = clip_indices(len(v), self.video_frames, self.video_sampling)
            clips.append(list(v[idx]))
        inputs = self.vivit_processor(clips, return_tensors="pt")
        pv = inputs["pixel_values"].to(self.device, next(self.vivit.parameters()).dtype)
        return self.vivit(pixel_values=pv).last_hidden_state.float()


def load_mert(path: str | Path) -> tuple[Any, Any]:
    """MERT-v1 (hub layout) or HuBERT weights in transformers' HubertModel, and MERT's feature extractor."""
    from transformers import Wav2Vec2FeatureExtractor

    from .weights.mert import load_mert_model

    d = _local_dir(path, "MERT")
    model = load_mert_model(d)
    if not (d / "preprocessor_config.json").is_file():
        raise FileNotFoundError(f"{d}: no preprocessor_config.json (MERT's feature extractor: 24 kHz input)")
    return model, Wav2Vec2FeatureExtractor.from_pretrained(str(d))


def check_model_type(d: Path, expected: str, what: str, flag: str) -> None:
    """A directory of another model is one line naming it, before any weight is read."""
    import json

    f = d / "config.json"
    if not f.is_file():
        raise FileNotFoundError(f"{d}: no config.json (expected the {what} directory)")
    kind = json.loads(f.read_text()).get("model_type")
    if kind != expected:
        raise ValueError(f"{f}: model_type {kind!r}, not {expected!r}; give {flag} the {what} directory")


def load_vit(path: str | Path) -> tuple[Any, Any]:
    """ViT's base model (read out of google/vit-base-patch16-224's classifier checkpoint) and its processor."""
    from transformers import ViTImageProcessor, ViTModel

    d = _local_dir(path, "ViT")
    check_model_type(d, "vit", "ViT-B/16 (google/vit-base-patch16-224)", "--vit-dir")
    model = ViTModel.from_pretrained(str(d), add_pooling_layer=False).eval().requires_grad_(False)
    return model, ViTImageProcessor.from_pretrained(str(d))


def load_vivit(path: str | Path) -> tuple[Any, Any]:
    from transformers import VivitImageProcessor, VivitModel

    d = _local_dir(path, "ViViT")
    check_model_type(d, "vivit", "ViViT-B 16x2 (google/vivit-b-16x2-kinetics400)", "--vivit-dir")
    model = VivitModel.from_pretrained(str(d), add_pooling_layer=False).eval().requires_grad_(False)
    return model, VivitImageProcessor.from_pretrained(str(d))


def load_encoders(mert_dir=None, vit_dir=None, vivit_dir=None, audio_window_s: float = 60.0,
                  video_frames: int = 32, video_sampling: str = "consecutive") -> Encoders:
    enc = Encoders(audio_window_s=audio_window_s, video_frames=video_frames, video_sampling=video_sampling)
    if mert_dir:
        enc.mert, enc.mert_processor = load_mert(mert_dir)
    if vit_dir:
        enc.vit, enc.vit_processor = load_vit(vit_dir)
    if vivit_dir:
        enc.vivit, enc.vivit_processor = load_vivit(vivit_dir)
    return enc
