"""``video-gpt2``: a VisionEncoderDecoder video captioner (VideoMAE or TimeSformer encoder, GPT-2 decoder).

This is the layout of the TimeSformer-GPT2 captioning checkpoint the reference used, with the VideoMAE image
processor. Frames are sampled evenly to the encoder's ``num_frames``; every video in a batch yields the same
tensor shape, so batching needs no padding on the encoder side and beam search runs once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from m2ugen_data.errors import MissingDependencyError
from m2ugen_data.vision.decode import sample_evenly
from m2ugen_data.vision.models import (
    Captioner,
    VisualItem,
    decode_texts,
    load_image_processor,
    resolve_device,
    resolve_weights,
    settings_hash,
)

DEFAULT_MODEL = "Neleac/timesformer-gpt2-video-captioning"


def encoder_frames(config) -> int:
    """Frames the video encoder expects (VideoMAE and TimeSformer both call it ``num_frames``)."""
    n = getattr(config, "num_frames", None)
    if not n:
        raise MissingDependencyError(f"encoder {config.model_type!r} has no num_frames: not a video encoder")
    return int(n)


def load_video_gpt2(
    model_dir: str | None = None, *, device: str = "auto", dtype: str = "auto", num_beams: int = 4,
    max_new_tokens: int = 32,
) -> Captioner:
    import torch
    from transformers import AutoTokenizer, VisionEncoderDecoderModel

    path, name = resolve_weights(model_dir, DEFAULT_MODEL, "video-gpt2")
    dev, dt = resolve_device(device, dtype)
    processor = load_image_processor(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = VisionEncoderDecoderModel.from_pretrained(path, dtype=dt).to(dev).eval()
    n_frames = encoder_frames(model.config.encoder)
    gen = model.generation_config
    pad = next(t for t in (gen.pad_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if t is not None)
    start = gen.decoder_start_token_id if gen.decoder_start_token_id is not None else tokenizer.bos_token_id

    @torch.inference_mode()
    def caption(items: Sequence[VisualItem]) -> list[str | None]:
        videos = [list(sample_evenly(item.path, n_frames).frames) for item in items]
        pixels = processor(videos, return_tensors="pt")["pixel_values"].to(dev, dt)
        out = model.generate(
            pixel_values=pixels, num_beams=num_beams, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=pad, decoder_start_token_id=start,
        )
        return decode_texts(tokenizer, out)

    return Captioner(
        backend="video-gpt2", model=name, kinds=("video",), caption=caption,
        prompt_hash=settings_hash(frames=n_frames, num_beams=num_beams, max_new_tokens=max_new_tokens),
    )
