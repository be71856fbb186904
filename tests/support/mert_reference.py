"""MERT-v1's forward written out from its published config and weights, for checking our HubertModel route.

This is an independent re-derivation, not the hub code: plain tensor operations on the raw state dict (as
``pytorch_model.bin`` stores it, ``weight_g``/``weight_v`` included) following what the published
``modeling_MERT.py`` composes for ``feature_extractor_cqt: false, deepnorm: false`` (read as facts: a HuBERT
conv feature encoder with a GroupNorm after the first convolution when ``feat_extract_norm`` is "group",
the feature projection LayerNorm + Linear, and for ``do_stable_layer_norm: true`` a pre-norm encoder: a
grouped positional convolution with weight norm and one trailing frame dropped for an even kernel, GELU,
added to the input; per layer ``h + attn(LN(h))`` then ``h + FFN(LN(h))``; the hidden states are the input
of every layer plus the final LayerNorm of the last output). transformers' classes are not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _weight_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """torch weight_norm with dim=2: v scaled per kernel position by g / ||v|| over the other two dims."""
    return v * (g / v.norm(dim=(0, 1), keepdim=True))


def _attention(x: torch.Tensor, s: dict, pre: str, heads: int) -> torch.Tensor:
    b, t, d = x.shape
    hd = d // heads

    def proj(name: str) -> torch.Tensor:
        return F.linear(x, s[f"{pre}.{name}.weight"], s[f"{pre}.{name}.bias"]).view(b, t, heads, hd).transpose(1, 2)

    q, k, v = proj("q_proj") * hd ** -0.5, proj("k_proj"), proj("v_proj")
    w = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
    out = (w @ v).transpose(1, 2).reshape(b, t, d)
    return F.linear(out, s[f"{pre}.out_proj.weight"], s[f"{pre}.out_proj.bias"])


def hidden_states(state: dict[str, torch.Tensor], config: dict, wave: torch.Tensor) -> list[torch.Tensor]:
    """(1, samples) float32 -> the num_hidden_layers + 1 hidden states, each (1, frames, hidden_size)."""
    if config["feature_extractor_cqt"] or config["deepnorm"] or not config["do_stable_layer_norm"]:
        raise NotImplementedError("only the released MERT-v1 configuration is written out here")
    s = {k: v.float() for k, v in state.items()}
    eps = config["layer_norm_eps"]
    x = wave[:, None, :]
    for i, (stride, channels) in enumerate(zip(config["conv_stride"], config["conv_dim"])):
        x = F.conv1d(x, s[f"feature_extractor.conv_layers.{i}.conv.weight"], stride=stride)
        if i == 0 and config["feat_extract_norm"] == "group":
            x = F.group_norm(x, channels, s["feature_extractor.conv_layers.0.layer_norm.weight"],
                             s["feature_extractor.conv_layers.0.layer_norm.bias"], eps=1e-5)
        x = F.gelu(x)
    h = x.transpose(1, 2)
    width = h.shape[-1]
    h = F.layer_norm(h, (width,), s["feature_projection.layer_norm.weight"], s["feature_projection.layer_norm.bias"],
                     eps)
    h = F.linear(h, s["feature_projection.projection.weight"], s["feature_projection.projection.bias"])
    kernel = config["num_conv_pos_embeddings"]
    w = _weight_norm(s["encoder.pos_conv_embed.conv.weight_g"], s["encoder.pos_conv_embed.conv.weight_v"])
    pos = F.conv1d(h.transpose(1, 2), w, s["encoder.pos_conv_embed.conv.bias"], padding=kernel // 2,
                   groups=config["num_conv_pos_embedding_groups"])
    if kernel % 2 == 0:
        pos = pos[:, :, :-1]
    h = h + F.gelu(pos).transpose(1, 2)
    d = config["hidden_size"]
    states = []
    for i in range(config["num_hidden_layers"]):
        states.append(h)
        pre = f"encoder.layers.{i}"
        a = F.layer_norm(h, (d,), s[f"{pre}.layer_norm.weight"], s[f"{pre}.layer_norm.bias"], eps)
        h = h + _attention(a, s, f"{pre}.attention", config["num_attention_heads"])
        f = F.layer_norm(h, (d,), s[f"{pre}.final_layer_norm.weight"], s[f"{pre}.final_layer_norm.bias"], eps)
        f = F.linear(F.gelu(F.linear(f, s[f"{pre}.feed_forward.intermediate_dense.weight"],
                                     s[f"{pre}.feed_forward.intermediate_dense.bias"])),
                     s[f"{pre}.feed_forward.output_dense.weight"], s[f"{pre}.feed_forward.output_dense.bias"])
        h = h + f
    states.append(F.layer_norm(h, (d,), s["encoder.layer_norm.weight"], s["encoder.layer_norm.bias"], eps))
    return states
