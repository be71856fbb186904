"""What every visual captioner shares: where its weights come from, which device and dtype it runs on,
and the item/captioner shapes the batch stage speaks.

Weights are only ever read from disk: a ``--model-dir`` written by ``save_pretrained``, or the model id's
snapshot already in the local Hugging Face cache. Nothing is downloaded, so a machine without weights gets
one line that says what to pass instead of a hub traceback.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2ugen_data.errors import MissingDependencyError


@dataclass(frozen=True)
class VisualItem:
    """One image or video to caption; ``media`` is its ``visual_media`` row (measurements)."""

    clip_id: str
    kind: str  # image | video
    path: Path
    media: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()  # AudioSet label names of the source video


@dataclass(frozen=True)
class Captioner:
    """A loaded backend: ``caption`` maps a batch of items to one text (or None when empty) each."""

    backend: str
    model: str | None  # what the manifest records: a model id or a resolved directory
    prompt_hash: str  # digest of everything besides the model that changes the text
    kinds: tuple[str, ...]  # which item kinds it can caption
    caption: Callable[[Sequence[VisualItem]], list[str | None]]


def settings_hash(**settings: Any) -> str:
    """A short stable digest of the generation settings (prompt, beams, lengths, versions)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def resolve_weights(model_dir: str | Path | None, default_id: str, backend: str) -> tuple[str, str]:
    """``(directory to load, name to record)`` from ``model_dir``, else the local cache of ``default_id``."""
    from m2ugen_data.hub_cache import cached_snapshot

    if model_dir is not None:
        p = Path(model_dir).expanduser().resolve()
        if not (p / "config.json").is_file():
            raise MissingDependencyError(
                f"{backend}: no model in {p} (config.json missing); pass a directory written by save_pretrained"
            )
        return str(p), str(p)
    path = cached_snapshot(default_id)
    if path is None:
        raise MissingDependencyError(
            f"{backend}: weights for {default_id} are not on this machine; pass --model-dir DIR "
            f"(a save_pretrained directory) or fetch them once with `hf download {default_id}`"
        )
    return str(path), default_id


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """``auto`` picks CUDA when present; ``auto`` dtype is float16 on CUDA and float32 on CPU."""
    import torch

    from m2ugen_data.devices import torch_device

    dev = torch.device(torch_device(device))
    if dtype == "auto":
        dt = torch.float16 if dev.type == "cuda" else torch.float32
    else:
        try:
            dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        except KeyError:
            raise MissingDependencyError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16") from None
    return dev, dt


def load_image_processor(path: str) -> Any:
    """The PIL image processor: it is what the checkpoints were trained with, and needs no torchvision."""
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(path, backend="pil")


def decode_texts(tokenizer: Any, ids: Any, strip_prefix: str = "") -> list[str | None]:
    """Token ids to stripped texts; an empty generation (beyond ``strip_prefix``) becomes None."""
    out: list[str | None] = []
    for text in tokenizer.batch_decode(ids, skip_special_tokens=True):
        text = " ".join(text.split())
        body = text[len(strip_prefix) :].strip() if strip_prefix and text.lower().startswith(strip_prefix) else text
        out.append(text if body else None)
    return out
