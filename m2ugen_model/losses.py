"""Losses: next-token cross-entropy on the answer, MSE of the projector output to the decoder embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """labels (B, T) aligned with input_ids, IGNORE_INDEX on the prompt and padding; position t predicts
    labels[t + 1]. reduction="none" gives one mean loss per sample (0 for a sample without answer tokens)."""
    pred = logits[:, :-1].float()
    target = labels[:, 1:]
    if reduction == "mean":
        if (target != IGNORE_INDEX).sum() == 0:
            return pred.sum() * 0.0  # keeps the graph alive for samples with nothing to predict
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX)
    per_token = F.cross_entropy(pred.transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="none")
    counts = (target != IGNORE_INDEX).sum(-1)
    return per_token.sum(-1) / counts.clamp(min=1)


def embedding_mse(pred: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
    """MSE between the projector output and `scale` x the decoder's text-encoder embedding (the released
    code scales the target by 10 and divides the projector output by 10 at generation time)."""
    return F.mse_loss(pred.float(), scale * target.float().reshape(pred.shape))
