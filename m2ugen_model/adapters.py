"""Understanding adapters: one frozen-encoder output per item -> one LLM-width vector.

Aggregation is a 1x1 Conv1d over the encoder's hidden states (MERT) or tokens (ViT, ViViT), then the
vector is L2-normalised (the released code normalises before projecting), projected to the LLM width
and refined by residual SwiGLU blocks `x + W2(SiLU(W1 n(x)) * W3 n(x))`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .llama import RMSNorm


class GatedResidual(nn.Module):
    def __init__(self, dim: int, hidden: int, legacy: bool):
        super().__init__()
        # The "legacy bridge" of the released code: LayerNorm and biased linears instead of RMSNorm.
        self.norm = nn.LayerNorm(dim) if legacy else RMSNorm(dim)
        self.w1 = nn.Linear(dim, hidden, bias=legacy)
        self.w2 = nn.Linear(hidden, dim, bias=legacy)
        self.w3 = nn.Linear(dim, hidden, bias=legacy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm(x)
        return x + self.w2(F.silu(self.w1(n)) * self.w3(n))


class UnderstandingAdapter(nn.Module):
    def __init__(self, n_tokens: int, feat_dim: int, dim: int, ffn_mult: int = 1, blocks: int = 3,
                 legacy: bool = False):
        super().__init__()
        self.agg = nn.Conv1d(n_tokens, 1, kernel_size=1)
        self.proj = nn.Linear(feat_dim, dim)
        self.blocks = nn.ModuleList(GatedResidual(dim, dim * ffn_mult, legacy) for _ in range(blocks))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats (B, n_tokens, feat_dim) -> (B, dim)."""
        x = self.agg(feats.to(self.agg.weight.dtype)).squeeze(1)
        x = self.proj(F.normalize(x, dim=-1))
        for block in self.blocks:
            x = block(x)
        return x
