"""What the trainer needs from a model, in one place: the module, its tokenizer, what its encoders take,
which parameters a stage trains, and how frozen encoders and the decoder's text encoder are called.

Keeping this narrow means the loop never reaches into model internals, and tests can hand the loop a small
stand-in module through the same door as the real M2UGen preset (``model_bridge.from_preset``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from m2ugen_model.train.collate import Tokenizer
from m2ugen_model.train.media import MediaSpec


@dataclass
class Bundle:
    model: torch.nn.Module
    tokenizer: Tokenizer
    media: MediaSpec
    trainable_names: Callable[[int], set[str]]
    encode: Callable[[str, torch.Tensor], torch.Tensor] | None = None  # (modality, media) -> encoder features
    encode_targets: Callable[[list[str]], torch.Tensor] | None = None  # captions -> decoder text embeddings
    blocks: Callable[[], list[torch.nn.Module]] = field(default=lambda: [])  # units FSDP shards separately
    enable_grad_checkpointing: Callable[[], None] | None = None
    forward_kwargs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.forward_kwargs:
            self.forward_kwargs = frozenset(inspect.signature(self.model.forward).parameters)

    def set_stage(self, stage: int) -> list[torch.nn.Parameter]:
        """Freeze everything but the stage's set; returns the trainable parameters in a stable order."""
        names = self.trainable_names(stage)
        params = []
        for name, p in self.model.named_parameters():
            p.requires_grad_(name in names)
            if name in names:
                params.append(p)
        if not params:
            raise ValueError(f"stage {stage} trains no parameters of this model")
        return params
