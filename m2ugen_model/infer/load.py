"""Load an M2UGen for inference from local directories, with one clear line for whatever is missing.

Weights: a directory with preset.json (what `write_tiny_weights` writes; real weights can be laid out the
same way), or the 7B preset with one directory per part, each as published (LLaMA-2 in HF or Meta layout,
MERT-v1-330M, ViT-B/16, ViViT-B 16x2, MusicGen/AudioLDM2). Before anything is loaded the preflight
(preflight/plan.py) checks every part and stops at the first blocking problem in one line. Trained weights on top: our own checkpoints (`runs/s3/checkpoints/step_...`, a run
directory, whose `checkpoints/latest` is used, a `save_trainable` directory, or a `.safetensors` file) or a
released `.pth`. A checkpoint is checked tensor by tensor against the built model before anything is
copied, so a checkpoint of another preset is refused in one line that says which preset it came from.

Memory: bf16/fp16 halve fp32 (the released code's OOMs on 40-48 GB cards came from fp32); `load_in_8bit`
and `offload_layers` (lowmem.py) go further for 24 GB cards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from m2ugen_model.errors import InferenceError, one_line
from m2ugen_model.preflight.checkpoints import check_fits, resolve_checkpoint

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class ModelSpec:
    weights_dir: str | None = None  # a directory with preset.json
    preset: str = "7b"  # used when weights_dir is not given
    paths: dict[str, str | None] = field(default_factory=dict)  # llama_dir, mert_dir, ... (7b preset)
    decoder: str = "musicgen"  # 7b preset: musicgen or audioldm2
    checkpoint: str | None = None
    device: str = "auto"  # the GPU when there is one
    dtype: str = "auto"  # bf16 on a GPU, fp32 on the CPU
    load_in_8bit: bool = False
    offload_layers: int = 0


def plan_for(spec: ModelSpec):
    """The preflight plan (preflight/plan.py) for a spec, or InferenceError when no config can be made."""
    from m2ugen_model.preflight.findings import Finding
    from m2ugen_model.preflight.plan import plan_from_options

    plan = plan_from_options(spec.preset, spec.weights_dir, spec.paths, spec.decoder, checkpoint=spec.checkpoint,
                             device=spec.device, load_in_8bit=spec.load_in_8bit, offload_layers=spec.offload_layers)
    if isinstance(plan, Finding):
        if plan.problem == "not found":
            raise InferenceError(f"weights directory not found: {spec.weights_dir}")
        raise InferenceError(plan.line())
    return plan


def preflight(spec: ModelSpec):
    """Every weight directory, tokenizer, checkpoint and library the spec loads, checked before anything is
    loaded: the first blocking problem is one line (``m2ugen-infer check`` prints them all). -> the config."""
    from m2ugen_model.preflight.plan import blocking_line

    plan = plan_for(spec)
    line = blocking_line(plan, "m2ugen-infer ... check")
    if line:
        raise InferenceError(line)
    return plan.cfg


def resolve_device(device: str) -> str:
    """``auto``: the GPU when there is one (bitsandbytes, FSDP and bf16 all want it), else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto``: bf16 on a GPU (the released code's fp32 is what ran out of memory on 40-48 GB cards), fp32 on
    the CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise InferenceError(f"--dtype must be auto or one of {sorted(DTYPES)}, not {dtype!r}")
    return DTYPES[dtype]


def load_for_inference(spec: ModelSpec) -> tuple[Any, Any, dict[str, Any]]:
    """-> (model, tokenizer, info): info says what was loaded (for the JSON records)."""
    from m2ugen_model.checkpoint import load_released, load_trainable
    from m2ugen_model.hf_io import WeightsError
    from m2ugen_model.presets import build_model

    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InferenceError(f"--device {spec.device}: no CUDA device is available here")
    if spec.load_in_8bit:
        from m2ugen_model.infer.lowmem import check_8bit

        check_8bit(device)
    ckpt = resolve_checkpoint(spec.checkpoint) if spec.checkpoint else None
    if ckpt is not None and ckpt[0] == "ours" and spec.weights_dir is not None:
        from m2ugen_model.presets import config_from_dir, init_model

        check_fits(init_model(config_from_dir(spec.weights_dir), device="meta", seed=None), ckpt[1])
    cfg = preflight(spec)
    lowmem = spec.load_in_8bit or spec.offload_layers > 0
    build_device = "cpu" if lowmem else device  # quantised/offloaded parts move to the GPU afterwards
    try:
        model, tok = build_model(cfg, device=build_device, dtype=dtype, load_encoders=True, load_decoder=True)
        if ckpt is not None and ckpt[0] == "ours":
            check_fits(model, ckpt[1])
            load_trainable(model, ckpt[1])
        elif ckpt is not None:
            load_released(model, ckpt[1])
    except InferenceError:
        raise
    except (OSError, ValueError, KeyError, WeightsError, RuntimeError) as exc:
        raise InferenceError(one_line(exc)) from exc
    if model.encoders is not None:
        model.encoders.to(device, dtype)
    if model.decoder is not None:
        model.decoder.model.to(device, dtype)
    if spec.load_in_8bit:
        from m2ugen_model.infer.lowmem import quantize_llm_8bit

        quantize_llm_8bit(model, device)
    if spec.offload_layers:
        from m2ugen_model.infer.lowmem import offload_llm_layers

        offload_llm_layers(model, spec.offload_layers, device)
    info = {"weights_dir": spec.weights_dir, "preset": spec.preset if spec.weights_dir is None else "from preset.json",
            "checkpoint": str(ckpt[1]) if ckpt else None, "checkpoint_kind": ckpt[0] if ckpt else None,
            "dtype": str(dtype).removeprefix("torch."), "device": device, "load_in_8bit": spec.load_in_8bit,
            "offload_layers": spec.offload_layers, "decoder": model.cfg.decoder}
    return model.eval(), tok, info
