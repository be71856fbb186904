"""``device="auto"``, the default of every model stage: the GPU when there is one, else the CPU."""

from __future__ import annotations


def torch_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a CUDA device, else ``cpu``; any other name is kept as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
