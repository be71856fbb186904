"""Tokenise examples (prompt masked out of the labels) and pad a list of them into one batch.

Tokenisation runs in the data workers, so the length of every example is known before batching; that is
what lets the stream group examples of similar length and skip (or truncate) texts longer than the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from m2ugen_model.train.examples import AUD_TOKENS, Example, SkipSample

IGNORE_INDEX = -100
MODALITIES = ("audio", "image", "video")


class Tokenizer(Protocol):
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


@dataclass
class Tokenised:
    example: Example
    input_ids: list[int]
    labels: list[int]


def tokenise(example: Example, tokenizer: Tokenizer, max_len: int, truncate: bool,
             aud_ids: list[int] | None = None) -> Tokenised:
    """BOS + prompt (labels -100) + answer + EOS (labels = ids); over-long: truncate or ``SkipSample``."""
    prompt = tokenizer.encode(example.prompt, add_special_tokens=False)
    if tokenizer.bos_token_id is not None:
        prompt = [tokenizer.bos_token_id, *prompt]
    answer = tokenizer.encode(example.answer, add_special_tokens=False)
    if tokenizer.eos_token_id is not None:
        answer = [*answer, tokenizer.eos_token_id]
    ids = prompt + answer
    labels = [IGNORE_INDEX] * len(prompt) + answer
    if len(ids) > max_len:
        if not truncate:
            raise SkipSample("too_long")
        ids, labels = ids[:max_len], labels[:max_len]
        # A cut answer must keep all [AUD] tokens (the MSE target hangs on them) and at least one label.
        if example.target_caption is not None and aud_ids and not all(a in ids for a in aud_ids):
            raise SkipSample("too_long")
        if all(lab == IGNORE_INDEX for lab in labels):
            raise SkipSample("too_long")
    return Tokenised(example, ids, labels)


def aud_token_ids(tokenizer: Tokenizer) -> list[int]:
    """Ids of [AUD0]..[AUD7]; each must be one token, or the music head would read the wrong positions."""
    ids = tokenizer.encode(AUD_TOKENS, add_special_tokens=False)
    if len(ids) != 8:
        raise ValueError(f"tokenizer splits the 8 [AUD] tokens into {len(ids)} pieces: add them as special tokens")
    return ids


def collate(items: list[Tokenised], pad_id: int) -> dict[str, Any]:
    """Right-padded ids/mask/labels, media grouped per modality with the batch rows they belong to."""
    n = len(items)
    width = max(len(t.input_ids) for t in items)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, t in enumerate(items):
        input_ids[i, : len(t.input_ids)] = torch.tensor(t.input_ids)
        labels[i, : len(t.labels)] = torch.tensor(t.labels)
        mask[i, : len(t.input_ids)] = 1
    batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask, "labels": labels,
                             "keys": [t.example.key for t in items],
                             "datasets": [t.example.dataset for t in items]}
    for m in MODALITIES:
        _stack_rows(batch, f"{m}_media", [(i, t.example.media) for i, t in enumerate(items)
                                          if t.example.modality == m and t.example.media is not None])
        _stack_rows(batch, f"{m}_feats", [(i, t.example.feats) for i, t in enumerate(items)
                                          if t.example.modality == m and t.example.feats is not None])
    _stack_rows(batch, "target_embeds", [(i, t.example.target_embeds) for i, t in enumerate(items)
                                         if t.example.target_embeds is not None])
    wanting = [(i, t.example.target_caption) for i, t in enumerate(items)
               if t.example.target_caption is not None and t.example.target_embeds is None]
    if wanting:
        batch["target_captions"] = ([i for i, _ in wanting], [c for _, c in wanting])
    return batch


def _stack_rows(batch: dict[str, Any], name: str, rows: list[tuple[int, np.ndarray]]) -> None:
    """``batch[name] = (row indices, stacked tensor)``; absent when no row has it."""
    if rows:
        batch[name] = ([i for i, _ in rows], torch.from_numpy(np.stack([a for _, a in rows])))
