"""One dataclass describes a whole M2UGen (or MU-LLaMA) model: LLM sizes, adapter placement, encoder
feature shapes, the output projector, the decoder target and where the frozen weights live on disk.

It is plain data so that it can be written next to every checkpoint (JSON) and read back without
importing torch or transformers.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODALITIES = ("audio", "image", "video")

# What each decoder's conditioning looks like: (tokens, width). MusicGen is conditioned on its T5 text
# encoder output (128 x 768 for musicgen-small/medium); AudioLDM2 on its flan-T5 prompt embeddings
# (128 x 1024) and the GPT-2 "generated" embeddings (8 x 768), flattened into one vector of
# 128*1024 + 8*768 = 137216, as in the released code.
DECODER_TARGETS = {"musicgen": (128, 768), "audioldm2": (1, 137216)}


@dataclass
class M2UGenConfig:
    # --- LLaMA-2 ---
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int = 32
    ffn_dim: int = 11008
    vocab_size: int = 32000  # base vocabulary, without the [AUD] tokens
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 4096
    # Bias tuning and LoRA on wq/wk/wv/wo and w1/w2/w3 (the released code's w_bias / w_lora).
    lora_rank: int = 16
    use_lora: bool = True
    use_bias: bool = True

    # --- understanding branch ---
    # Modalities in adapter order from the lowest adapted layer upwards. The released M2UGen code feeds
    # layers 14-19 music, 20-25 image, 26-31 video (the article words the order the other way round;
    # the checkpoints follow the code). MU-LLaMA is ("audio",) with 20 layers.
    modalities: tuple[str, ...] = MODALITIES
    adapter_layers: int = 6  # L: layers per modality, the top len(modalities) * L layers are adapted
    adapter_ffn_mult: int = 1  # hidden width of the adapter's gated blocks / dim (MU-LLaMA: 4)
    adapter_blocks: int = 3
    legacy_norm: bool = False  # LayerNorm with bias in the adapters (the released "legacy_bridge")
    # Frozen encoder output per item: (hidden states or tokens, width).
    audio_feat_shape: tuple[int, int] = (25, 1024)  # MERT-v1-330M: embeddings + 24 layers
    image_feat_shape: tuple[int, int] = (197, 768)  # ViT-B/16 at 224: CLS + 14*14 patches
    video_feat_shape: tuple[int, int] = (3137, 768)  # ViViT-B 16x2: CLS + 16*14*14 tubelets
    video_frames: int = 32
    # consecutive (as the released ViViT input: 32 frames in a row) or even (spread over the video); video_frames.py
    video_sampling: str = "consecutive"
    audio_window_s: float = 60.0  # long audio is encoded in windows of this length and averaged
    # The prompt template's "### Input:" text, None for the no-input template (M2UGen). MU-LLaMA was trained and
    # released with the with-input template whose {input} was bound to Python's built-in `input` (its
    # llama/utils.py format_prompt), so its model saw this exact text in every prompt.
    prompt_input: str | None = None

    # --- generation branch ---
    n_aud_tokens: int = 8  # [AUD0]..[AUD7]; 0 disables the generation branch (MU-LLaMA)
    decoder: str | None = "musicgen"  # "musicgen", "audioldm2" or None
    decoder_tokens: int = 128
    decoder_dim: int = 768
    projector_dim: int = 512
    projector_layers: int = 4  # encoder layers = decoder layers
    projector_heads: int = 4
    projector_ffn: int = 2048
    mse_scale: float = 10.0  # the decoder embeddings are scaled by this in the MSE target
    mse_weight: float = 1.0

    # --- where the frozen weights live (local directories; nothing is fetched from a hub) ---
    llama_dir: str | None = None
    mert_dir: str | None = None
    vit_dir: str | None = None
    vivit_dir: str | None = None
    decoder_dir: str | None = None

    # --- training ---
    # Parameter groups trained per stage (see stages.py); None means the documented default.
    stage_groups: dict[int, tuple[str, ...]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.modalities = tuple(self.modalities)
        for name in ("audio_feat_shape", "image_feat_shape", "video_feat_shape"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.stage_groups is not None:
            self.stage_groups = {int(k): tuple(v) for k, v in self.stage_groups.items()}
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; known: {MODALITIES}")
        if self.n_heads % self.n_kv_heads or self.dim % self.n_heads:
            raise ValueError("dim must divide by n_heads and n_heads by n_kv_heads")
        if self.n_adapted_layers > self.n_layers:
            raise ValueError(f"{self.n_adapted_layers} adapted layers > n_layers={self.n_layers}")
        if self.video_sampling not in ("consecutive", "even"):
            raise ValueError(f"video_sampling must be consecutive or even, not {self.video_sampling!r}")
        if self.decoder not in (None, *DECODER_TARGETS):
            raise ValueError(f"decoder must be one of {list(DECODER_TARGETS)} or None")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def n_adapted_layers(self) -> int:
        return len(self.modalities) * self.adapter_layers

    @property
    def first_adapted_layer(self) -> int:
        return self.n_layers - self.n_adapted_layers

    def layer_modality(self, layer: int) -> str | None:
        """Which modality's adapter token layer `layer` receives (None for the plain lower layers)."""
        k = layer - self.first_adapted_layer
        return None if k < 0 else self.modalities[k // self.adapter_layers]

    def feat_shape(self, modality: str) -> tuple[int, int]:
        return getattr(self, f"{modality}_feat_shape")

    @property
    def full_vocab_size(self) -> int:
        return self.vocab_size + self.n_aud_tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> M2UGenConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> M2UGenConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes: Any) -> M2UGenConfig:
        return dataclasses.replace(self, **changes)
