"""M2UGen: understanding adapters + bridged LLaMA-2 + [AUD] output projector, as one nn.Module.

The frozen encoders and the music decoder are not submodules: they are large, never trained, and
live in their own directories, so they are attached as plain attributes (`model.encoders`,
`model.decoder`) and stay out of `state_dict()` and the parameter counts. `forward` takes encoder
features (precomputed, e.g. from the shards, or produced by `model.encoders`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .adapters import UnderstandingAdapter
from .config import M2UGenConfig
from .llama import LLaMA
from .losses import IGNORE_INDEX, embedding_mse, token_cross_entropy
from .projector import OutputProjector


class M2UGen(nn.Module):
    def __init__(self, cfg: M2UGenConfig):
        super().__init__()
        self.cfg = cfg
        self.adapters = nn.ModuleDict({
            m: UnderstandingAdapter(*cfg.feat_shape(m), cfg.dim, cfg.adapter_ffn_mult, cfg.adapter_blocks,
                                    cfg.legacy_norm)
            for m in cfg.modalities
        })
        # One learned query per adapted layer; the modality vector is added to it (released layout:
        # rows 0..L-1 for the lowest block).
        self.prefix_query = nn.Embedding(cfg.n_adapted_layers, cfg.dim)
        self.llm = LLaMA(cfg)
        self.projector = OutputProjector(cfg) if cfg.n_aud_tokens and cfg.decoder else None
        self.encoders: Any = None  # encoders.Encoders, attached by the loaders
        self.decoder: Any = None  # decoders.MusicDecoder, attached by the loaders

    # ---- understanding branch ----
    def modality_vectors(self, feats: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        return {m: self.adapters[m](x) for m, x in feats.items() if x is not None and m in self.adapters}

    def adapter_tokens(self, vectors: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None],
                       batch: int) -> list[torch.Tensor | None]:
        """One (B, 1, dim) token per layer: prefix query (+ the modality vector for samples that have it);
        None for the plain lower layers. As released, a layer whose modality is absent still receives its
        prefix query alone."""
        cfg = self.cfg
        prefix = self.prefix_query.weight
        tokens: list[torch.Tensor | None] = [None] * cfg.first_adapted_layer
        for k in range(cfg.n_adapted_layers):
            m = cfg.modalities[k // cfg.adapter_layers]
            tok = prefix[k].expand(batch, -1)
            if m in vectors:
                vec = vectors[m]
                if masks.get(m) is not None:
                    vec = vec * masks[m].to(vec.dtype)[:, None]
                tok = tok + vec.to(tok.dtype)
            tokens.append(tok[:, None, :])
        return tokens

    # ---- generation branch ----
    def aud_token_ids(self) -> torch.Tensor:
        v = self.cfg.vocab_size
        return torch.arange(v, v + self.cfg.n_aud_tokens, device=self.prefix_query.weight.device)

    def project_aud(self, hidden: torch.Tensor, aud_embeds: torch.Tensor) -> torch.Tensor:
        return self.projector(hidden, aud_embeds)

    def aud_states(self, input_ids: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the batch holding [AUD0]..[AUDn-1] consecutively, and the projector input for them.

        As in the released code, the state paired with [AUDi] is the hidden state *predicting* it (one
        position earlier), which is also what generation has at hand when it samples [AUDi]."""
        n = self.cfg.n_aud_tokens
        first = input_ids == self.cfg.vocab_size
        rows = first.any(-1).nonzero().flatten()
        starts = first[rows].float().argmax(-1)
        idx = starts[:, None] + torch.arange(n, device=input_ids.device)[None, :]
        if rows.numel() and (idx.max() >= input_ids.shape[1] or idx.min() < 1):
            raise ValueError("an [AUD0] token must follow some context and be followed by all [AUD] tokens")
        ids = input_ids[rows[:, None], idx.clamp(max=input_ids.shape[1] - 1)]
        if not torch.equal(ids, self.aud_token_ids().expand_as(ids)):
            raise ValueError(f"[AUD0] must be followed by [AUD1]..[AUD{n - 1}] in order")
        states = hidden[rows[:, None], idx - 1]
        return rows, self.project_aud(states, self.llm.embed(ids))

    # ---- the whole thing ----
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        audio_feats: torch.Tensor | None = None,
        image_feats: torch.Tensor | None = None,
        video_feats: torch.Tensor | None = None,
        target_embeds: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        video_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """input_ids/attention_mask/labels (B, T), labels = IGNORE_INDEX (-100) on prompt and padding;
        *_feats: encoder outputs (B, n_tokens, width) with optional (B,) bool masks for samples that have
        the modality; target_embeds: (B, decoder_tokens, decoder_dim) decoder text embeddings (unscaled),
        used for rows whose input holds the [AUD] tokens (other rows' values are ignored)."""
        feats = {"audio": audio_feats, "image": image_feats, "video": video_feats}
        masks = {"audio": audio_mask, "image": image_mask, "video": video_mask}
        vectors = self.modality_vectors(feats)
        tokens = self.adapter_tokens(vectors, masks, input_ids.shape[0])
        logits, hidden, _ = self.llm(input_ids, attention_mask, tokens)
        out: dict[str, torch.Tensor | None] = {"logits": logits, "ce_loss": None, "mse_loss": None, "loss": None}
        if labels is not None:
            if attention_mask is not None:
                labels = labels.masked_fill(attention_mask == 0, IGNORE_INDEX)
            out["ce_loss"] = token_cross_entropy(logits, labels)
            out["loss"] = out["ce_loss"]
        if target_embeds is not None and self.projector is not None:
            rows, pred = self.aud_states(input_ids, hidden)
            if rows.numel():
                out["mse_loss"] = embedding_mse(pred, target_embeds[rows], self.cfg.mse_scale)
            else:  # no [AUD] sample in this batch: a zero that still touches the projector for DDP
                out["mse_loss"] = sum(p.sum() for p in self.projector.parameters()) * 0.0
            out["loss"] = out["mse_loss"] * self.cfg.mse_weight + (out["loss"] if out["loss"] is not None else 0.0)
        return out
