"""``blip``: BLIP image captions, conditioned on the prompt "the image shows", beam search, batched.

The reference captioned one image at a time; a batch shares one prompt, so no text padding is involved and
a batch yields exactly what single images would (tests check this on a tiny model).
"""

from __future__ import annotations

from collections.abc import Sequence

from m2ugen_data.preflight import raise_first
from m2ugen_data.preflight.expect import blip as expect_blip
from m2ugen_data.preflight.layout import check_model_dir
from m2ugen_data.vision.models import (
    Captioner,
    VisualItem,
    decode_texts,
    load_image_processor,
    resolve_device,
    resolve_weights,
    settings_hash,
)

DEFAULT_MODEL = "Salesforce/blip-image-captioning-base"
PROMPT = "the image shows"
RELEASED_MAX_LENGTH = 20  # transformers' default generation max_length, prompt included


def load_blip(
    model_dir: str | None = None, *, device: str = "auto", dtype: str = "auto", prompt: str = PROMPT,
    num_beams: int = 1, max_new_tokens: int | None = None,
) -> Captioner:
    """BLIP captions as the released MUImage script made them by default: the prompt "the image shows", greedy,
    at most 20 tokens including the prompt (that script built ``{"max_length": 100, "num_beams": 4}`` but never
    passed it to ``generate``, so the model's default generation settings ran). ``max_new_tokens`` replaces the
    20-token cap; ``num_beams`` > 1 searches."""
    import torch
    from PIL import Image
    from transformers import AutoTokenizer, BlipForConditionalGeneration, BlipProcessor

    path, name = resolve_weights(model_dir, DEFAULT_MODEL, "blip")
    raise_first(check_model_dir(path, "BLIP", expect_blip()))
    dev, dt = resolve_device(device, dtype)
    processor = BlipProcessor(image_processor=load_image_processor(path), tokenizer=AutoTokenizer.from_pretrained(path))
    model = BlipForConditionalGeneration.from_pretrained(path, dtype=dt).to(dev).eval()

    length = {"max_length": RELEASED_MAX_LENGTH} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}

    @torch.inference_mode()
    def caption(items: Sequence[VisualItem]) -> list[str | None]:
        images = []
        for item in items:
            with Image.open(item.path) as im:
                images.append(im.convert("RGB"))
        inputs = processor(images=images, text=[prompt] * len(images), return_tensors="pt").to(dev)
        out = model.generate(
            pixel_values=inputs["pixel_values"].to(dt), input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"], num_beams=num_beams, do_sample=False, **length,
        )
        return decode_texts(processor.tokenizer, out, strip_prefix=prompt.lower())

    return Captioner(
        backend="blip", model=name, kinds=("image",), caption=caption,
        prompt_hash=settings_hash(prompt=prompt, num_beams=num_beams, **length),
    )
