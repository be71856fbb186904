"""Which checkpoint a path names and whether it fits a model, read from the file headers before anything is
copied: shared by loading (``infer/load.py``) and the preflight (``preflight/components.py``)."""

from __future__ import annotations

from pathlib import Path

import torch

from m2ugen_model.errors import InferenceError, one_line


def resolve_checkpoint(path: str | Path) -> tuple[str, Path]:
    """-> ("released", file.pth) or ("ours", trainable.safetensors file)."""
    from m2ugen_model.checkpoint import WEIGHTS_FILE

    p = Path(path)
    if not p.exists():
        raise InferenceError(f"checkpoint not found: {p}")
    if p.is_file():
        if p.suffix == ".pth":
            return "released", p
        if p.suffix == ".safetensors":
            return "ours", p
        raise InferenceError(f"{p}: not a checkpoint (expected a .pth or .safetensors file)")
    if (p / WEIGHTS_FILE).is_file():
        return "ours", p / WEIGHTS_FILE
    latest = p / "checkpoints" / "latest"
    if latest.is_file():
        step = latest.parent / latest.read_text().strip()
        if (step / WEIGHTS_FILE).is_file():
            return "ours", step / WEIGHTS_FILE
        raise InferenceError(f"{latest} points at {step}, which has no {WEIGHTS_FILE}")
    raise InferenceError(f"{p}: no {WEIGHTS_FILE} there (nor checkpoints/latest); expected a checkpoint "
                         "directory written by m2ugen-train, a run directory or a released .pth")


def _checkpoint_origin(file: Path) -> str:
    """What the checkpoint says it was trained as (trainer.pt's preset, or config.json's sizes)."""
    trainer = file.parent / "trainer.pt"
    if trainer.is_file():
        try:
            cfg = torch.load(trainer, map_location="cpu", weights_only=True).get("config", {})
            return f"preset {cfg.get('preset')!r}" if cfg.get("preset") else ""
        except Exception:  # an unreadable trainer.pt must not hide the real error
            return ""
    config = file.parent / "config.json"
    if config.is_file():
        from m2ugen_model.config import M2UGenConfig

        try:
            c = M2UGenConfig.load(config)
            return f"dim {c.dim}, {c.n_layers} layers"
        except (ValueError, OSError):
            return ""
    return ""


def check_fits(model: torch.nn.Module, file: Path) -> None:
    """Compare names and shapes from the safetensors header with the model before copying anything."""
    from safetensors import safe_open

    params = dict(model.named_parameters())
    try:
        with safe_open(str(file), framework="pt") as st:
            shapes = {k: tuple(st.get_slice(k).get_shape()) for k in st.keys()}
    except Exception as exc:
        raise InferenceError(f"{file}: unreadable safetensors ({one_line(exc)})") from None
    unknown = sorted(k for k in shapes if k not in params)
    wrong = sorted(k for k in shapes if k in params and shapes[k] != tuple(params[k].shape))
    if unknown or wrong:
        origin = _checkpoint_origin(file)
        origin = f" (it was trained as {origin})" if origin else ""
        what = (f"{len(wrong)} tensors differ in shape, e.g. {wrong[0]} {shapes[wrong[0]]} vs the model's "
                f"{tuple(params[wrong[0]].shape)}" if wrong else
                f"{len(unknown)} tensors the model does not have, e.g. {unknown[0]}")
        raise InferenceError(f"checkpoint {file} does not fit this model{origin}: {what}")
