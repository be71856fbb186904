"""MU-LLaMA as a music captioner for the data pipeline.

`load_captioner(model_dir)` returns a function `(list of mono float arrays, sample_rate) -> list of
captions`. model_dir is either a directory with preset.json (e.g. from
`presets.write_tiny_weights(dir, variant="mu_llama")`), or the released layout, MU-LLaMA's ``ckpts`` folder:

    model_dir/LLaMA/            Meta's LLaMA-2 download: 7B/consolidated.00.pth + 7B/params.json and
                                tokenizer.model (as MU-LLaMA's README lays it out); an HF-format
                                LLaMA-2-7B directory works too. ``llama/`` is accepted as the name.
    model_dir/MERT-v1-330M/     m-a-p/MERT-v1-330M as published (``mert/`` accepted); no hub code runs
    model_dir/checkpoint.pth    the released MU-LLaMA checkpoint

A checkpoint written by checkpoint.save_trainable (trainable.safetensors) may stand in for checkpoint.pth.
The model sizes come from those directories; the prompt is the one MU-LLaMA was trained with
(presets.MU_LLAMA_PROMPT_INPUT).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import WEIGHTS_FILE, load_released, load_trainable
from .infer.inference import CAPTION_QUESTION, caption
from .presets import PRESET_FILE, build_model, resolve_config
from .preflight.plan import Plan, blocking_line

Captioner = Callable[[Sequence[np.ndarray], int], list[str]]
LLAMA_NAMES = ("LLaMA", "llama", "LLaMA-2", "llama-2")
MERT_NAMES = ("MERT-v1-330M", "mert", "MERT")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): the GPU when there is one, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _part(d: Path, names: tuple[str, ...], what: str) -> Path:
    for n in names:
        if (d / n).is_dir():
            return d / n
    raise FileNotFoundError(f"{d}: no {what} folder (looked for {', '.join(names)})")


def released_dirs(model_dir: str | Path) -> dict[str, Path]:
    """llama_dir, mert_dir and checkpoint of a MU-LLaMA ``ckpts`` folder (module docstring)."""
    d = Path(model_dir)
    paths = {"llama_dir": _part(d, LLAMA_NAMES, "LLaMA-2"), "mert_dir": _part(d, MERT_NAMES, "MERT-v1-330M")}
    ckpt = d / "checkpoint.pth"
    paths["checkpoint"] = ckpt if ckpt.is_file() else d / WEIGHTS_FILE
    if not paths["checkpoint"].is_file():
        raise FileNotFoundError(f"{d}: no checkpoint.pth (released MU-LLaMA) or {WEIGHTS_FILE}")
    return paths


def load_mu_llama(model_dir: str | Path, device: str | torch.device | None = "auto",
                  dtype: torch.dtype | None = None):
    """(model, tokenizer) for MU-LLaMA from model_dir (layout in the module docstring); bf16 on a GPU."""
    d = Path(model_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"MU-LLaMA directory not found: {d}")
    dev = resolve_device(device)
    dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    if (d / PRESET_FILE).exists():
        model, tok = build_model(weights_dir=d, device=dev, dtype=dtype)
        ckpt = d / "checkpoint.pth" if (d / "checkpoint.pth").exists() else d / WEIGHTS_FILE
    else:
        paths = released_dirs(d)
        ckpt = paths.pop("checkpoint")
        cfg = resolve_config("mu_llama_7b", **{k: str(v) for k, v in paths.items()})
        line = blocking_line(Plan(cfg, checkpoint=str(ckpt), decoder=False, device=str(dev)), "m2ugen-infer ... check")
        if line:  # the preflight, before anything loads: one line naming the file and the fix
            raise ValueError(line)
        model, tok = build_model(cfg, device=dev, dtype=dtype)
    if ckpt.suffix == ".pth":
        load_released(model, ckpt)
    elif ckpt.exists():
        load_trainable(model, d)
    return model.eval(), tok


def load_captioner(model_dir: str | Path, device: str | torch.device | None = "auto",
                   question: str = CAPTION_QUESTION, max_new_tokens: int = 256, batch_size: int = 4,
                   **generate_kwargs: Any) -> Captioner:
    """-> captioner(audios, sr) -> captions; greedy decoding unless temperature is given."""
    model, tok = load_mu_llama(model_dir, device)

    def captioner(audios: Sequence[np.ndarray], sr: int) -> list[str]:
        return caption(model, tok, audios, sr, question=question, batch_size=batch_size,
                       max_new_tokens=max_new_tokens, **generate_kwargs)

    return captioner
