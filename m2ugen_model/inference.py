"""Generation: text from a prompt and optional audio/image/video, and music when the model emits [AUD].

Decoding is a plain loop with a KV cache over left-padded batches. Once a sample emits [AUD0] the
remaining [AUD1..n) are forced (they carry no choice), and the hidden state that predicted each [AUD]
token is kept: projected and divided by mse_scale, they condition the music decoder, as in the released
code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .model import M2UGen

PROMPT_TEMPLATE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)
CAPTION_QUESTION = (
    "Describe the music in detail including details such as instruments used, tempo and mood of the song"
)
LogitsProcessor = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def format_prompt(instruction: str) -> str:
    """The Alpaca-style template M2UGen and MU-LLaMA were trained with."""
    return PROMPT_TEMPLATE.format(instruction=instruction)


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]
    music: np.ndarray | None = None  # (samples,) float32 when a decoder is attached
    sample_rate: int | None = None
    music_embeds: torch.Tensor | None = None  # decoder conditioning (tokens, width), when [AUD] was emitted


def _sample(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p <= top_p
    sorted_p = sorted_p * keep
    pick = torch.multinomial(sorted_p / sorted_p.sum(-1, keepdim=True), 1)
    return order.gather(-1, pick).squeeze(-1)


def encode_inputs(model: M2UGen, audio=None, sr: int | None = None, image=None, video=None) -> dict:
    """Raw media -> encoder features through model.encoders (lists, one item per sample)."""
    feats: dict[str, torch.Tensor | None] = {"audio": None, "image": None, "video": None}
    if audio is not None:
        if sr is None:
            raise ValueError("audio needs its sample rate (sr)")
        feats["audio"] = model.encoders.encode_audio(list(audio), sr)
    if image is not None:
        feats["image"] = model.encoders.encode_images(list(image))
    if video is not None:
        feats["video"] = model.encoders.encode_videos(list(video))
    return feats


@torch.no_grad()
def generate_batch(
    model: M2UGen,
    tokenizer: Any,
    prompts: Sequence[str],
    feats: dict[str, torch.Tensor | None] | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 0.75,
    logits_processor: LogitsProcessor | None = None,
    stop: Sequence[str] = ("\n###",),
    music_seconds: float = 10.0,
    template: bool = True,
) -> list[GenerationResult]:
    """Prompts (formatted with the training template unless template=False) and encoder features
    (B, ...) per modality -> one GenerationResult per prompt. logits_processor(step, ids, logits) may
    rewrite the next-token logits (constraints, bans)."""
    was_training = model.training
    model.eval()
    try:
        return _generate(model, tokenizer, prompts, feats, max_new_tokens, temperature, top_p, logits_processor,
                         stop, music_seconds, template)
    finally:
        model.train(was_training)


def _generate(model, tokenizer, prompts, feats, max_new_tokens, temperature, top_p, logits_processor, stop,
              music_seconds, template) -> list[GenerationResult]:
    cfg = model.cfg
    dev = model.prefix_query.weight.device
    texts = [format_prompt(p) if template else p for p in prompts]
    rows = [tokenizer(t).input_ids for t in texts]
    b, width = len(rows), max(len(r) for r in rows)
    pad = tokenizer.pad_token_id or 0
    ids = torch.full((b, width), pad, dtype=torch.long, device=dev)
    mask = torch.zeros((b, width), dtype=torch.long, device=dev)
    for i, r in enumerate(rows):  # left padding: every prompt ends at the same column
        ids[i, width - len(r):] = torch.tensor(r, device=dev)
        mask[i, width - len(r):] = 1
    feats = {k: (v.to(dev) if v is not None else None) for k, v in (feats or {}).items()}
    adapters = model.adapter_tokens(model.modality_vectors(feats), {}, b)
    logits, hidden, cache = model.llm(ids, mask, adapters)

    n_aud, aud0 = cfg.n_aud_tokens, cfg.vocab_size
    eos = tokenizer.eos_token_id
    out_ids: list[list[int]] = [[] for _ in range(b)]
    aud_states: list[list[torch.Tensor]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    all_ids = ids
    for step in range(max_new_tokens):
        last = logits[:, -1].float()
        if logits_processor is not None:
            last = logits_processor(step, all_ids, last)
        nxt = _sample(last, temperature, top_p)
        for i in range(b):
            k = len(aud_states[i])
            if 0 < k < n_aud:  # inside an [AUD] run: the next one is forced
                nxt[i] = aud0 + k
            if n_aud and not done[i] and int(nxt[i]) == aud0 + len(aud_states[i]) and len(aud_states[i]) < n_aud:
                aud_states[i].append(hidden[i, -1])
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        for i in range(b):
            if not done[i]:
                out_ids[i].append(int(nxt[i]))
                if int(nxt[i]) == eos or any(s in tokenizer.decode(out_ids[i]) for s in stop):
                    done[i] = True
        if bool(done.all()):
            break
        mask = torch.cat((mask, torch.ones((b, 1), dtype=mask.dtype, device=dev)), dim=1)
        all_ids = torch.cat((all_ids, nxt[:, None]), dim=1)
        logits, hidden, cache = model.llm(nxt[:, None], mask, adapters, cache=cache)

    results = []
    for i in range(b):
        toks = [t for t in out_ids[i] if t != eos]
        text = tokenizer.decode([t for t in toks if t < aud0], skip_special_tokens=True)
        for s in stop:
            text = text.split(s)[0]
        res = GenerationResult(text=text.strip(), token_ids=toks)
        if n_aud and len(aud_states[i]) == n_aud and model.projector is not None:
            states = torch.stack(aud_states[i])[None]
            cond = model.project_aud(states, model.llm.embed(model.aud_token_ids()[None])) / cfg.mse_scale
            res.music_embeds = cond[0].float().cpu()
            if model.decoder is not None:
                res.music = model.decoder.generate(cond, seconds=music_seconds)[0]
                res.sample_rate = model.decoder.sample_rate
        results.append(res)
    return results


def generate(model: M2UGen, tokenizer: Any, prompt: str, audio: np.ndarray | None = None, sr: int | None = None,
             image: Any = None, video: np.ndarray | None = None, **kwargs: Any) -> GenerationResult:
    """One prompt with at most one item per modality (raw media, encoded by model.encoders)."""
    feats = encode_inputs(model, None if audio is None else [audio], sr,
                          None if image is None else [image], None if video is None else [video])
    return generate_batch(model, tokenizer, [prompt], feats, **kwargs)[0]


def caption(model: M2UGen, tokenizer: Any, audios: Sequence[np.ndarray], sr: int,
            question: str = CAPTION_QUESTION, batch_size: int = 4, **kwargs: Any) -> list[str]:
    """Describe each clip (the MU-LLaMA captioning use)."""
    texts: list[str] = []
    for start in range(0, len(audios), batch_size):
        chunk = list(audios[start:start + batch_size])
        feats = encode_inputs(model, chunk, sr)
        texts += [r.text for r in generate_batch(model, tokenizer, [question] * len(chunk), feats, **kwargs)]
    return texts


def load_m2ugen(preset_or_dir: str | Path, checkpoint: str | Path | None = None, device: str = "cpu",
                dtype: torch.dtype = torch.float32, load_decoder: bool = True, **preset_kwargs: Any):
    """(model, tokenizer) from a preset name (+ weight paths) or a directory with preset.json, then an
    optional checkpoint: a released `.pth` or a directory/file written by checkpoint.save_trainable."""
    from .checkpoint import load_released, load_trainable
    from .presets import PRESETS, build_model

    is_preset = str(preset_or_dir) in PRESETS
    model, tok = build_model(preset=str(preset_or_dir) if is_preset else "tiny",
                             weights_dir=None if is_preset else preset_or_dir, device=device, dtype=dtype,
                             load_decoder=load_decoder, **preset_kwargs)
    if checkpoint is not None:
        c = Path(checkpoint)
        (load_released if c.suffix == ".pth" else load_trainable)(model, c)
    return model.eval(), tok
