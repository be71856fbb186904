"""MU-LLaMA as a music captioner for the data pipeline.

`load_captioner(model_dir)` returns a function `(list of mono float arrays, sample_rate) -> list of
captions`. model_dir is either a directory with preset.json (e.g. from
`presets.write_tiny_weights(dir, variant="mu_llama")`), or the released layout:

    model_dir/llama/        HF-format LLaMA-2 7B (config.json, *.safetensors, tokenizer files)
                            or Meta's consolidated.00.pth + params.json + tokenizer files
    model_dir/mert/         MERT-v1-330M (config.json, weights, preprocessor_config.json, its .py files)
    model_dir/checkpoint.pth    the released MU-LLaMA adapter checkpoint ({"model": state_dict})

A checkpoint written by checkpoint.save_trainable (trainable.safetensors) may stand in for checkpoint.pth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import WEIGHTS_FILE, load_released, load_trainable
from .infer.inference import CAPTION_QUESTION, caption
from .presets import PRESET_FILE, build_model, mu_llama_7b

Captioner = Callable[[Sequence[np.ndarray], int], list[str]]


def load_mu_llama(model_dir: str | Path, device: str | torch.device | None = None,
                  dtype: torch.dtype | None = None):
    """(model, tokenizer) for MU-LLaMA from model_dir (layout in the module docstring)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"MU-LLaMA directory not found: {d}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    if (d / PRESET_FILE).exists():
        model, tok = build_model(weights_dir=d, device=device, dtype=dtype)
    else:
        cfg = mu_llama_7b(llama_dir=str(d / "llama"), mert_dir=str(d / "mert"))
        model, tok = build_model(cfg, device=device, dtype=dtype)
    if (d / "checkpoint.pth").exists():
        load_released(model, d / "checkpoint.pth")
    elif (d / WEIGHTS_FILE).exists():
        load_trainable(model, d)
    elif not (d / PRESET_FILE).exists():
        raise FileNotFoundError(f"{d}: no checkpoint.pth (released MU-LLaMA) or {WEIGHTS_FILE}")
    return model.eval(), tok


def load_captioner(model_dir: str | Path, device: str | torch.device | None = None,
                   question: str = CAPTION_QUESTION, max_new_tokens: int = 256, batch_size: int = 4,
                   **generate_kwargs: Any) -> Captioner:
    """-> captioner(audios, sr) -> captions; greedy decoding unless temperature is given."""
    model, tok = load_mu_llama(model_dir, device)

    def captioner(audios: Sequence[np.ndarray], sr: int) -> list[str]:
        return caption(model, tok, audios, sr, question=question, batch_size=batch_size,
                       max_new_tokens=max_new_tokens, **generate_kwargs)

    return captioner
