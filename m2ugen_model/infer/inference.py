"""Generation: text from a prompt and optional audio/image/video, and music when the model emits [AUD].

Decoding is a plain loop with a KV cache over left-padded batches. Once a sample emits [AUD0] the
remaining [AUD1..n) are forced (they carry no choice), and the hidden state that predicted each [AUD]
token is kept: projected and divided by mse_scale, they condition the music decoder, as in the released
code. A music request (`force_aud`) whose answer would end without [AUD] gets [AUD0] forced in place of
its end, so the decoder is always conditioned by the model; the result records that it was forced.

The decoder is conditioned either on the projector output (`decoder_conditioning="projector"`, masked
past the answer's length and with classifier-free guidance, see decoders.py) or, as the released code
and its demo did, on the answer text (`"text"`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from m2ugen_model.model import M2UGen

PROMPT_TEMPLATE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)
PROMPT_INPUT_TEMPLATE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
CAPTION_QUESTION = (
    "Describe the music in detail including details such as instruments used, tempo and mood of the song"
)
LogitsProcessor = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
DECODER_CONDITIONING = ("projector", "text")


class PromptTooLongError(ValueError):
    """The prompt plus the tokens to generate do not fit the model's context."""


def format_prompt(instruction: str, input_text: str | None = None) -> str:
    """The Alpaca-style template the released models were trained with: M2UGen's without an input;
    MU-LLaMA's with one (M2UGenConfig.prompt_input says which, and what the input text is)."""
    if input_text is None:
        return PROMPT_TEMPLATE.format(instruction=instruction)
    return PROMPT_INPUT_TEMPLATE.format(instruction=instruction, input=input_text)


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]
    music: np.ndarray | None = None  # (samples,) float32 when a decoder is attached
    sample_rate: int | None = None
    music_embeds: torch.Tensor | None = None  # decoder conditioning (tokens, width), when [AUD] was emitted
    aud_forced: bool = False  # [AUD0] was forced in place of the answer's end (a music request)
    conditioning: str | None = None  # "projector" or "text": what the decoder was conditioned on
    decoder_text: str | None = None  # the text prompt (text) or the text whose length set the mask (projector)
    mask_tokens: int | None = None  # conditioning tokens the decoder attended to (projector)


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
    force_aud: bool | Sequence[bool] = False,
    decoder_conditioning: str = "projector",
    guidance_scale: float | None = 3.0,
    mask_padding: bool = True,
    seed: int | None = None,
    decoder_kwargs: dict[str, Any] | None = None,
) -> list[GenerationResult]:
    """Prompts (formatted with the training template unless template=False) and encoder features
    (B, ...) per modality -> one GenerationResult per prompt. logits_processor(step, ids, logits) may
    rewrite the next-token logits (constraints, bans). force_aud (one flag, or one per prompt) marks music
    requests; decoder_conditioning, guidance_scale, mask_padding, seed and decoder_kwargs (e.g.
    num_inference_steps for AudioLDM2) control the music decoder."""
    if decoder_conditioning not in DECODER_CONDITIONING:
        raise ValueError(f"decoder_conditioning must be one of {DECODER_CONDITIONING}, not {decoder_conditioning!r}")
    if seed is not None:
        torch.manual_seed(seed)
    force = [force_aud] * len(prompts) if isinstance(force_aud, bool) else list(force_aud)
    was_training = model.training
    model.eval()
    try:
        results = _generate(model, tokenizer, prompts, feats, max_new_tokens, temperature, top_p, logits_processor,
                            stop, template, force)
        _decode_music(model, prompts, results, music_seconds, decoder_conditioning, guidance_scale, mask_padding,
                      seed, decoder_kwargs or {})
        return results
    finally:
        model.train(was_training)


def prompt_ids(tokenizer: Any, prompt: str, template: bool = True, input_text: str | None = None) -> list[int]:
    return tokenizer(format_prompt(prompt, input_text) if template else prompt).input_ids


def check_prompt_fits(model: M2UGen, n_prompt: int, max_new_tokens: int) -> None:
    """One clear error instead of silently running past the positions the model was trained on."""
    ctx = model.cfg.max_seq_len
    if n_prompt + max_new_tokens > ctx:
        raise PromptTooLongError(f"prompt is {n_prompt} tokens; with max_new_tokens {max_new_tokens} it needs "
                                 f"{n_prompt + max_new_tokens}, more than the model's context of {ctx}")


def _hits_stop(tokenizer: Any, ids: list[int], stop: Sequence[str]) -> bool:
    if not stop:
        return False
    text = tokenizer.decode(ids)
    return any(s in text for s in stop)


def _generate(model, tokenizer, prompts, feats, max_new_tokens, temperature, top_p, logits_processor, stop,
              template, force) -> list[GenerationResult]:
    cfg = model.cfg
    dev = model.prefix_query.weight.device
    rows = [prompt_ids(tokenizer, p, template, cfg.prompt_input) for p in prompts]
    if any(force) and cfg.n_aud_tokens:
        max_new_tokens = max(max_new_tokens, cfg.n_aud_tokens)
    for r in rows:
        check_prompt_fits(model, len(r), max_new_tokens)
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
    forced = [False] * b
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    all_ids = ids
    for step in range(max_new_tokens):
        last = logits[:, -1].float()
        if logits_processor is not None:
            last = logits_processor(step, all_ids, last)
        nxt = _sample(last, temperature, top_p)
        for i in range(b):
            if done[i]:
                nxt[i] = pad
                continue
            k, tok = len(aud_states[i]), int(nxt[i])
            if 0 < k < n_aud:  # inside an [AUD] run: the next one is forced
                tok = aud0 + k
            elif k == 0 and n_aud and force[i] and tok != aud0 and (
                    tok == eos or step >= max_new_tokens - n_aud or _hits_stop(tokenizer, out_ids[i] + [tok], stop)):
                tok, forced[i] = aud0, True  # a music request about to end without [AUD]
            if n_aud and tok == aud0 + k and k < n_aud:
                aud_states[i].append(hidden[i, -1])
            nxt[i] = tok
            out_ids[i].append(tok)
            if tok == eos or _hits_stop(tokenizer, out_ids[i], stop):
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
        res = GenerationResult(text=text.strip(), token_ids=toks, aud_forced=forced[i])
        if n_aud and len(aud_states[i]) == n_aud and model.projector is not None:
            states = torch.stack(aud_states[i])[None]
            cond = model.project_aud(states, model.llm.embed(model.aud_token_ids()[None])) / cfg.mse_scale
            res.music_embeds = cond[0].float().cpu()
        results.append(res)
    return results


def _decode_music(model: M2UGen, prompts: Sequence[str], results: list[GenerationResult], seconds: float,
                  conditioning: str, guidance_scale: float | None, mask_padding: bool, seed: int | None,
                  decoder_kwargs: dict[str, Any]) -> None:
    """One decoder call for every result that emitted the [AUD] tokens."""
    dec = model.decoder
    todo = [i for i, r in enumerate(results) if r.music_embeds is not None]
    if dec is None or not todo:
        return
    if conditioning == "text":
        # The released code prompts the decoder with the generated caption; an empty answer falls back on
        # the request itself so the decoder still hears what was asked.
        texts = [results[i].text or prompts[i] for i in todo]
        audio = dec.generate_from_text(texts, seconds=seconds, guidance_scale=guidance_scale, seed=seed,
                                       **decoder_kwargs)
        masks = [None] * len(todo)
    else:
        texts = [results[i].text or None for i in todo]
        cond = torch.stack([results[i].music_embeds for i in todo])
        # Rows without an answer text attend to every conditioning token (nothing to estimate a length from).
        mask = torch.ones(cond.shape[:2], dtype=torch.long)
        with_text = [j for j, t in enumerate(texts) if t]
        if mask_padding and with_text and dec.kind == "musicgen":
            mask[with_text] = dec.text_mask([texts[j] for j in with_text]).cpu()[:, : cond.shape[1]]
        audio = dec.generate(cond, seconds=seconds, attention_mask=mask if dec.kind == "musicgen" else None,
                             guidance_scale=guidance_scale, seed=seed, **decoder_kwargs)
        masks = [int(m.sum()) for m in mask]
    for j, i in enumerate(todo):
        r = results[i]
        r.music, r.sample_rate, r.conditioning = audio[j], dec.sample_rate, conditioning
        r.decoder_text = texts[j]
        r.mask_tokens = masks[j]


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
