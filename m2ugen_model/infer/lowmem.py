"""Fit the 7B model on a 24-40 GB card: 8-bit LLaMA weights (bitsandbytes LLM.int8) or CPU offloading of
LLaMA blocks (accelerate hooks that stream each block's weights to the GPU for its forward).

Arithmetic, not a measurement (no GPU was lent when this was written; `bench/gpu/run.sh` measures): the
LLaMA-2 7B base is 6.7e9 parameters, 13.5 GB in bf16 and about 7 GB in int8; MERT-330M, ViT-B/16 and
ViViT-B add about 1 GB in bf16, MusicGen-medium 3 GB (small 0.6 GB). So bf16 alone needs about 18 GB plus
activations and the KV cache; `--load-in-8bit` brings the LLaMA part to about 7 GB; `--offload-layers N`
keeps N of the 32 blocks (0.4 GB each in bf16) in CPU memory at the cost of PCIe traffic per token.
"""

from __future__ import annotations

import torch
from torch import nn

from m2ugen_model.errors import InferenceError
from m2ugen_model.llama import LoRALinear


class Int8LoRALinear(nn.Module):
    """LoRALinear whose frozen base weight is bitsandbytes int8; bias and LoRA stay in their dtype."""

    def __init__(self, lin: LoRALinear):
        super().__init__()
        import bitsandbytes as bnb

        d_out, d_in = lin.weight.shape
        self.base = bnb.nn.Linear8bitLt(d_in, d_out, bias=False, has_fp16_weights=False, threshold=6.0)
        self.base.weight = bnb.nn.Int8Params(lin.weight.data.to(torch.float16).cpu(), requires_grad=False,
                                             has_fp16_weights=False)
        self.bias, self.lora_a, self.lora_b = lin.bias, lin.lora_a, lin.lora_b

    def forward(self, x: torch.Tensor, lora: bool = True) -> torch.Tensor:
        y = self.base(x.to(torch.float16)).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        if lora and self.lora_a is not None:
            y = y + self.lora_b(self.lora_a(x))
        return y


def check_8bit(device: str) -> None:
    """Called before any loading, so a missing library or device costs a second, not a 7B load."""
    if not str(device).startswith("cuda"):
        raise InferenceError("--load-in-8bit needs a CUDA --device (bitsandbytes int8 matmuls run on GPUs)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise InferenceError("--load-in-8bit needs bitsandbytes: pip install 'm2ugen[gpu]'") from None


def quantize_llm_8bit(model: nn.Module, device: str) -> int:
    """Replace every LoRALinear of the LLaMA blocks by an int8 one (quantised when moved to the GPU), then
    move the model to `device`. Call after all weights (base + checkpoint) are loaded. Returns the count."""
    check_8bit(device)
    n = 0
    for block in model.llm.layers:
        for parent in (block.attention, block.feed_forward):
            for name, child in list(parent.named_children()):
                if isinstance(child, LoRALinear):
                    setattr(parent, name, Int8LoRALinear(child))
                    n += 1
    model.to(device)
    return n


def offload_llm_layers(model: nn.Module, n: int, device: str) -> list[int]:
    """Keep the weights of the first `n` LLaMA blocks in CPU memory; accelerate's hooks copy them to
    `device` for each forward and move the block's inputs there. Everything else moves to `device`.
    Returns the offloaded block indices."""
    from accelerate import cpu_offload

    layers = model.llm.layers
    if not 0 < n <= len(layers):
        raise InferenceError(f"--offload-layers must be between 1 and {len(layers)}, not {n}")
    kept = {i: layers[i] for i in range(n)}
    for i in kept:
        layers[i] = nn.Identity()  # placeholder so that moving the model leaves these weights on the CPU
    model.to(device)
    for i, block in kept.items():
        layers[i] = cpu_offload(block, execution_device=torch.device(device))
    return list(kept)
