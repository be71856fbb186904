"""``videomae-labels``: the top Kinetics-400 classes of VideoMAE as a short phrase.

A classifier cannot describe a scene, but its classes ("playing guitar", "dancing ballet") are the part of
a video that matters most for music, and they are reliable where a small captioner rambles.
"""

from __future__ import annotations

from collections.abc import Sequence

from m2ugen_data.vision.decode import sample_evenly
from m2ugen_data.vision.models import Captioner, VisualItem, load_image_processor, resolve_device, resolve_weights, settings_hash
from m2ugen_data.vision.video_gpt2 import encoder_frames

DEFAULT_MODEL = "MCG-NJU/videomae-base-finetuned-kinetics"


def labels_phrase(labels: Sequence[str]) -> str:
    """'a video of playing guitar', 'a video of playing guitar or drumming', 'a video of a, b or c'."""
    names = [" ".join(x.replace("_", " ").split()) for x in labels]
    body = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"a video of {body}"


def load_videomae_labels(
    model_dir: str | None = None, *, device: str = "auto", dtype: str = "auto", top_k: int = 3,
    min_prob: float = 0.1,
) -> Captioner:
    """Classes among the ``top_k`` with probability >= ``min_prob`` (the best class always) name the video."""
    import torch
    from transformers import VideoMAEForVideoClassification

    path, name = resolve_weights(model_dir, DEFAULT_MODEL, "videomae-labels")
    dev, dt = resolve_device(device, dtype)
    processor = load_image_processor(path)
    model = VideoMAEForVideoClassification.from_pretrained(path, dtype=dt).to(dev).eval()
    n_frames = encoder_frames(model.config)
    id2label = model.config.id2label

    @torch.inference_mode()
    def caption(items: Sequence[VisualItem]) -> list[str | None]:
        videos = [list(sample_evenly(item.path, n_frames).frames) for item in items]
        pixels = processor(videos, return_tensors="pt")["pixel_values"].to(dev, dt)
        probs = model(pixel_values=pixels).logits.float().softmax(-1)
        top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        texts = []
        for p_row, i_row in zip(top.values.tolist(), top.indices.tolist()):
            keep = [id2label[i] for k, (p, i) in enumerate(zip(p_row, i_row)) if k == 0 or p >= min_prob]
            texts.append(labels_phrase(keep))
        return texts

    return Captioner(
        backend="videomae-labels", model=name, kinds=("video",), caption=caption,
        prompt_hash=settings_hash(frames=n_frames, top_k=top_k, min_prob=min_prob),
    )
