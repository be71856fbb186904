"""LLaMA-2 with M2UGen's bridge: bias tuning, LoRA, and one-token zero-gated adapters on the top layers.

Read top to bottom: RMSNorm, rotary embeddings, a LoRA-capable linear, attention (with the adapter
term), SwiGLU feed-forward, the block, the model. Weights are kept in Meta's layout (the released
M2UGen LoRA weights live in it), including Meta's interleaved rotary convention; `hf_io.py` converts
HF checkpoints into it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import M2UGenConfig

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 as LLaMA does: bf16 sums of squares lose too much.
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(head_dim: int, positions: torch.Tensor, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin for `positions` (B, T) -> (B, T, 1, head_dim/2), computed in float32."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim))
    angles = positions.float()[..., None] * inv
    return angles.cos()[:, :, None, :], angles.sin()[:, :, None, :]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs (x0, x1), (x2, x3), ... of each head: Meta's convention, which is what
    the released checkpoints were trained with (HF's rotate-half layout differs by a permutation of the
    wq/wk rows, undone when loading HF weights)."""
    xf = x.float().unflatten(-1, (-1, 2))
    x0, x1 = xf[..., 0], xf[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).type_as(x)


class LoRALinear(nn.Module):
    """y = x W^T + b + B(A x). B starts at zero so a fresh LoRA changes nothing."""

    def __init__(self, d_in: int, d_out: int, bias: bool, rank: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.lora_a = nn.Linear(d_in, rank, bias=False) if rank > 0 else None
        self.lora_b = nn.Linear(rank, d_out, bias=False) if rank > 0 else None
        if self.lora_b is not None:
            nn.init.zeros_(self.lora_b.weight)

    def forward(self, x: torch.Tensor, lora: bool = True) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if lora and self.lora_a is not None:
            y = y + self.lora_b(self.lora_a(x))
        return y


def attention_mask_for(key_valid: torch.Tensor, q_len: int) -> torch.Tensor:
    """Boolean SDPA mask (B, 1, q_len, S) from a key padding mask (B, S): causal, padding hidden, and
    every query may always see itself so that rows of padding never become all-masked (NaN)."""
    s = key_valid.shape[1]
    q_pos = torch.arange(s - q_len, s, device=key_valid.device)[:, None]
    k_pos = torch.arange(s, device=key_valid.device)[None, :]
    allowed = (k_pos <= q_pos) & key_valid[:, None, None, :].bool()
    return allowed | (k_pos == q_pos)


class Attention(nn.Module):
    def __init__(self, cfg: M2UGenConfig, adapted: bool):
        super().__init__()
        rank = cfg.lora_rank if cfg.use_lora else 0
        hd, nh, nkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
        self.n_heads, self.n_kv_heads, self.head_dim = nh, nkv, hd
        # Bias placement follows the released code: wq and wo biased, wk and wv not.
        self.wq = LoRALinear(cfg.dim, nh * hd, cfg.use_bias, rank)
        self.wk = LoRALinear(cfg.dim, nkv * hd, False, rank)
        self.wv = LoRALinear(cfg.dim, nkv * hd, False, rank)
        self.wo = LoRALinear(nh * hd, cfg.dim, cfg.use_bias, rank)
        # Per-head gate on the adapter value, zero so training starts from the unmodified LLM.
        self.gate = nn.Parameter(torch.zeros(1, nh, 1, 1)) if adapted else None

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        adapter: torch.Tensor | None,
        cache: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim)
        k = self.wk(x).view(b, t, self.n_kv_heads, self.head_dim)
        v = self.wv(x).view(b, t, self.n_kv_heads, self.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, heads, T, hd)
        if cache is not None:
            k, v = torch.cat((cache[0], k), dim=2), torch.cat((cache[1], v), dim=2)
        new_cache = (k, v)
        gqa = self.n_kv_heads != self.n_heads
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1, enable_gqa=gqa)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        if adapter is not None and self.gate is not None:
            # One adapter token: its value (wv without LoRA, as in the released code) is added to every
            # position of each head, scaled by tanh(gate); with one key the softmax weight is 1.
            av = self.wv(adapter, lora=False).view(adapter.shape[0], self.n_kv_heads, 1, self.head_dim)
            av = av.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            out = out + torch.tanh(self.gate).to(out.dtype) * av.to(out.dtype)
        out = out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
        return self.wo(out), new_cache


class FeedForward(nn.Module):
    def __init__(self, cfg: M2UGenConfig):
        super().__init__()
        rank = cfg.lora_rank if cfg.use_lora else 0
        self.w1 = LoRALinear(cfg.dim, cfg.ffn_dim, cfg.use_bias, rank)  # gate
        self.w2 = LoRALinear(cfg.ffn_dim, cfg.dim, cfg.use_bias, rank)  # down
        self.w3 = LoRALinear(cfg.dim, cfg.ffn_dim, cfg.use_bias, rank)  # up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: M2UGenConfig, layer: int):
        super().__init__()
        self.modality = cfg.layer_modality(layer)
        self.attention = Attention(cfg, adapted=self.modality is not None)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(self, x, cos, sin, mask, adapter, cache):
        a, new_cache = self.attention(self.attention_norm(x), cos, sin, mask, adapter, cache)
        h = x + a
        return h + self.feed_forward(self.ffn_norm(h)), new_cache


class LLaMA(nn.Module):
    """The language model. The [AUD] tokens get their own embedding and output rows
    (`aud_embeddings`, `aud_output`) so that they can be trained while the 32000-row tables stay frozen;
    logits cover base vocabulary then [AUD0..n)."""

    def __init__(self, cfg: M2UGenConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.aud_embeddings = nn.Embedding(cfg.n_aud_tokens, cfg.dim) if cfg.n_aud_tokens else None
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.aud_output = nn.Linear(cfg.dim, cfg.n_aud_tokens, bias=False) if cfg.n_aud_tokens else None
        self.gradient_checkpointing = False

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        v = self.cfg.vocab_size
        h = self.tok_embeddings(ids.clamp(max=v - 1))
        if self.aud_embeddings is not None:
            is_aud = ids >= v
            aud = self.aud_embeddings((ids - v).clamp(min=0, max=self.cfg.n_aud_tokens - 1))
            h = torch.where(is_aud[..., None], aud.to(h.dtype), h)
        return h

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        x = self.norm(h)
        out = self.output(x)
        if self.aud_output is not None:
            out = torch.cat((out, self.aud_output(x)), dim=-1)
        return out

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        adapter_tokens: list[torch.Tensor | None] | None = None,
        cache: KVCache | None = None,
        compute_logits: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor, KVCache]:
        """input_ids (B, T); attention_mask (B, S) over cache + new tokens (1 = real, 0 = padding);
        adapter_tokens: one (B or 1, 1, dim) tensor or None per layer. Returns (logits, last hidden state
        before the final norm, new cache)."""
        b, t = input_ids.shape
        past = cache[0][0].shape[2] if cache else 0
        if attention_mask is None:
            positions = torch.arange(past, past + t, device=input_ids.device).expand(b, t)
            full = torch.ones(b, past + t, dtype=torch.bool, device=input_ids.device)
            mask = None if past == 0 else attention_mask_for(full, t)
        else:
            # Positions count real tokens only, so left- or right-padded samples see the same rotary phases.
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
            mask = attention_mask_for(attention_mask, t)
        cos, sin = rope_tables(self.cfg.head_dim, positions, self.cfg.rope_theta)
        h = self.embed(input_ids)
        new_cache: KVCache = []
        for i, layer in enumerate(self.layers):
            adapter = adapter_tokens[i] if adapter_tokens is not None else None
            layer_cache = cache[i] if cache else None
            if self.gradient_checkpointing and self.training:
                h, kv = checkpoint(layer, h, cos, sin, mask, adapter, layer_cache, use_reentrant=False)
            else:
                h, kv = layer(h, cos, sin, mask, adapter, layer_cache)
            new_cache.append(kv)
        return (self.logits(h) if compute_logits else None), h, new_cache
