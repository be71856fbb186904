"""Output projector: the LLM's states at the [AUD] positions -> the music decoder's conditioning."""

from __future__ import annotations

import torch
from torch import nn

from .config import M2UGenConfig


class OutputProjector(nn.Module):
    """Linear down to a small width, an encoder-decoder transformer whose decoder reads learned output
    queries (so 8 [AUD] states can become 128 conditioning tokens), and a linear up to the decoder's
    width. The input is the hidden state plus the input embedding of each [AUD] token, as released."""

    def __init__(self, cfg: M2UGenConfig):
        super().__init__()
        d = cfg.projector_dim
        self.fc_in = nn.Linear(cfg.dim, d)
        self.transformer = nn.Transformer(
            d_model=d, nhead=cfg.projector_heads, num_encoder_layers=cfg.projector_layers,
            num_decoder_layers=cfg.projector_layers, dim_feedforward=cfg.projector_ffn, dropout=0.0,
            batch_first=True, norm_first=False,
        )
        self.queries = nn.Parameter(torch.randn(1, cfg.decoder_tokens, d))
        self.fc_out = nn.Linear(d, cfg.decoder_dim)

    def forward(self, hidden: torch.Tensor, input_embeds: torch.Tensor) -> torch.Tensor:
        """(B, n_aud, dim) x 2 -> (B, decoder_tokens, decoder_dim)."""
        x = self.fc_in((hidden + input_embeds).to(self.fc_in.weight.dtype))
        x = self.transformer(x, self.queries.expand(x.shape[0], -1, -1))
        return self.fc_out(x)
