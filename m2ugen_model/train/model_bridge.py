"""Adapter from the model package's ``M2UGen`` (its presets, encoders, decoder, stages) to the trainer's ``Bundle``.

Only this module knows the model package's API; if that API moves, the fix is here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from m2ugen_model.train.bundle import Bundle
from m2ugen_model.train.errors import TrainError
from m2ugen_model.train.media import MediaSpec


def bundle_from_model(model, tokenizer) -> Bundle:
    """Wrap a built M2UGen: frozen encoders and the decoder's text encoder are its attached attributes."""
    from m2ugen_model.stages import trainable_parameters

    cfg = model.cfg
    enc = getattr(model, "encoders", None)
    rate = int(getattr(getattr(enc, "mert_processor", None), "sampling_rate", 24000) or 24000)
    media = MediaSpec(audio_rate=rate, video_frames=cfg.video_frames, video_sampling=cfg.video_sampling)

    def encode(modality: str, media_batch: torch.Tensor) -> torch.Tensor:
        if enc is None:
            raise TrainError(f"{modality} samples carry no precomputed features and no encoders are loaded "
                             "(--mert-dir/--vit-dir/--vivit-dir)")
        arrays = [a for a in media_batch.cpu().numpy()]
        if modality == "audio":
            return enc.encode_audio(arrays, rate)
        if modality == "image":
            return enc.encode_images([np.asarray(a, dtype=np.uint8) for a in arrays])
        return enc.encode_videos([np.asarray(a, dtype=np.uint8) for a in arrays])

    def encode_targets(captions: list[str]) -> torch.Tensor:
        dec = getattr(model, "decoder", None)
        tok = getattr(dec, "tokenizer", None)
        if tok is not None and tok.pad_token is None:  # MusicGen's text_embeddings pads to a fixed length
            tok.pad_token = tok.unk_token or tok.eos_token
        if dec is None:
            raise TrainError("music targets need target_embeds.npy members in the shards or a music decoder "
                             "(its text encoder gives the MSE target)")
        return dec.text_embeddings(captions)

    def grad_checkpointing() -> None:
        model.llm.gradient_checkpointing = True

    return Bundle(
        model=model,
        tokenizer=tokenizer,
        media=media,
        trainable_names=lambda stage: set(trainable_parameters(model, stage)),
        encode=encode,
        encode_targets=encode_targets,
        blocks=lambda: list(model.llm.layers),
        enable_grad_checkpointing=grad_checkpointing,
    )


def from_preset(preset: str, weights_dir: str | None = None, paths: dict[str, str | None] | None = None,
                device: torch.device | str = "cpu", stage: int = 1) -> Bundle:
    """``tiny``: weights written to ``weights_dir`` in the real formats (on first use) and loaded back through
    the real loaders; ``7b``: the user's local weight directories, built in bf16 on a GPU. The music decoder
    (its text encoder gives the MSE targets) is loaded for stages 2 and 3 only."""
    from m2ugen_model import presets

    dtype = torch.bfloat16 if preset != "tiny" and torch.device(device).type == "cuda" else torch.float32
    try:
        if preset == "tiny":
            if weights_dir is None:
                raise TrainError("--preset tiny needs --weights-dir (written there on first use)")
            if not (Path(weights_dir) / presets.PRESET_FILE).exists():
                presets.write_tiny_weights(weights_dir)
            model, tokenizer = presets.build_model("tiny", weights_dir=weights_dir, device=device, dtype=dtype,
                                                   load_decoder=stage > 1)
        else:
            model, tokenizer = presets.build_model(preset, weights_dir=weights_dir, device=device, dtype=dtype,
                                                   load_decoder=stage > 1,
                                                   **{k: v for k, v in (paths or {}).items() if v})
    except (OSError, ValueError) as exc:
        raise TrainError(str(exc).splitlines()[0] if str(exc) else repr(exc)) from exc
    return bundle_from_model(model, tokenizer)
