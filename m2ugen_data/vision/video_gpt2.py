"""``video-gpt2``: a VisionEncoderDecoder video captioner (VideoMAE or TimeSformer encoder, GPT-2 decoder).

The reference's captioner, ``Neleac/timesformer-gpt2-video-captioning``, is published without an image
processor or a tokenizer: its model card and M2UGen's ``Datasets/MUVideo/03_caption_video.py`` load the
processor from ``MCG-NJU/videomae-base`` and the tokenizer from ``gpt2``. Those are the defaults here
(``processor_dir`` / ``tokenizer_dir`` override them): a processor or tokenizer saved beside the model wins
over them, an explicit directory over both, and whichever is missing is named in one line.

Frames are sampled evenly to the encoder's ``num_frames``; every video in a batch yields the same tensor
shape, so batching needs no padding on the encoder side and beam search runs once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from m2ugen_data.errors import MissingDependencyError
from m2ugen_data.hub_cache import cached_snapshot
from m2ugen_data.preflight import Finding, raise_first
from m2ugen_data.preflight.expect import video_captioner
from m2ugen_data.preflight.layout import check_model_dir, check_tokenizer
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
PROCESSOR_SOURCE = "MCG-NJU/videomae-base"  # where the model card and the released script take the processor
TOKENIZER_SOURCE = "gpt2"  # ... and the tokenizer
RELEASED_LENGTH = {"min_length": 20, "max_length": 200}  # the released script's generate() settings


def has_processor(d: Path) -> bool:
    return (d / "preprocessor_config.json").is_file()


def has_tokenizer(d: Path) -> bool:
    return not check_tokenizer(d, "tokenizer")


def component_dir(
    explicit: str | Path | None, model_dir: str, present: Callable[[Path], bool], default_id: str, what: str,
    option: str,
) -> tuple[str, str] | Finding:
    """``(directory, name to record)`` of the processor or tokenizer: ``explicit``, else the model's own
    directory when it has one, else ``default_id``'s cached snapshot; or the finding that names what is missing."""
    if explicit is not None:
        d = Path(explicit).expanduser().resolve()
        if not present(d):
            return Finding(f"video {what}", str(d), f"no {what} here", f"pass {option} DIR holding {default_id}'s files")
        return str(d), str(d)
    if present(Path(model_dir)):
        return model_dir, model_dir
    d = cached_snapshot(default_id)
    if d is None or not present(d):
        return Finding(f"video {what}", default_id,
                       f"the {what} comes from {default_id} (as the model card and the released script load it) "
                       "and no copy is on this machine",
                       f"pass {option} DIR or fetch it once with `hf download {default_id}`")
    return str(d), default_id


def _component(*args: object) -> tuple[str, str]:
    found = component_dir(*args)  # type: ignore[arg-type]
    if isinstance(found, Finding):
        raise MissingDependencyError(found.line())
    return found


def encoder_frames(config) -> int:
    """Frames the video encoder expects (VideoMAE and TimeSformer both call it ``num_frames``)."""
    n = getattr(config, "num_frames", None)
    if not n:
        raise MissingDependencyError(f"encoder {config.model_type!r} has no num_frames: not a video encoder")
    return int(n)


def load_video_gpt2(
    model_dir: str | None = None, *, device: str = "auto", dtype: str = "auto", num_beams: int = 8,
    max_new_tokens: int | None = None, processor_dir: str | Path | None = None, tokenizer_dir: str | Path | None = None,
) -> Captioner:
    """Video captions as the released MUVideo script made them: the encoder's frames evenly spaced, 8 beams,
    between 20 and 200 decoder tokens (``min_length``/``max_length``, the start token included).
    ``max_new_tokens`` replaces that length range (tests and benches use short ones)."""
    import torch
    from transformers import AutoTokenizer, VisionEncoderDecoderModel

    path, name = resolve_weights(model_dir, DEFAULT_MODEL, "video-gpt2")
    raise_first(check_model_dir(path, "video captioner", video_captioner(), tokenizer=False))
    proc_path, proc_name = _component(processor_dir, path, has_processor, PROCESSOR_SOURCE, "image processor",
                                      "--processor-dir")
    tok_path, tok_name = _component(tokenizer_dir, path, has_tokenizer, TOKENIZER_SOURCE, "tokenizer", "--tokenizer-dir")
    dev, dt = resolve_device(device, dtype)
    processor = load_image_processor(proc_path)
    tokenizer = AutoTokenizer.from_pretrained(tok_path)
    model = VisionEncoderDecoderModel.from_pretrained(path, dtype=dt).to(dev).eval()
    n_frames = encoder_frames(model.config.encoder)
    gen = model.generation_config
    pad = next(t for t in (gen.pad_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if t is not None)
    start = gen.decoder_start_token_id if gen.decoder_start_token_id is not None else tokenizer.bos_token_id

    length = dict(RELEASED_LENGTH) if max_new_tokens is None else {"max_new_tokens": max_new_tokens}
    positions = getattr(model.config.decoder, "n_positions", None)  # GPT-2's 1024; never ask for more
    if positions and length.get("max_length", 0) > positions:
        length = {"min_length": min(length["min_length"], positions), "max_length": positions}

    @torch.inference_mode()
    def caption(items: Sequence[VisualItem]) -> list[str | None]:
        videos = [list(sample_evenly(item.path, n_frames).frames) for item in items]
        pixels = processor(videos, return_tensors="pt")["pixel_values"].to(dev, dt)
        out = model.generate(
            pixel_values=pixels, num_beams=num_beams, do_sample=False, **length,
            pad_token_id=pad, decoder_start_token_id=start,
        )
        return decode_texts(tokenizer, out)

    return Captioner(
        backend="video-gpt2", model=name, kinds=("video",), caption=caption,
        prompt_hash=settings_hash(frames=n_frames, num_beams=num_beams, **length,
                                  processor=proc_name, tokenizer=tok_name),
    )
