"""The M2UGen model: frozen MERT/ViT/ViViT encoders, understanding adapters, an adapter-bridged
LLaMA-2 with [AUD] tokens, the output projector and MusicGen/AudioLDM2 decoders.

Entry points: `presets.build_model`, `presets.write_tiny_weights`, `stages.set_stage`,
`checkpoint.save_trainable` / `load_trainable` / `load_released`, `infer.inference.generate`,
`mu_llama.load_captioner`. Submodules import torch/transformers; this package file imports nothing heavy.
"""

from .config import M2UGenConfig

__all__ = ["M2UGenConfig"]
