"""Load an M2UGen for inference from local directories, with one clear line for whatever is missing.

Weights: a directory with preset.json (what `write_tiny_weights` writes; real weights can be laid out the
same way), or the 7B preset with one directory per part (LLaMA in HF or Meta layout, MERT, ViT, ViViT,
MusicGen/AudioLDM2). Trained weights on top: our own checkpoints (`runs/s3/checkpoints/step_...`, a run
directory, whose `checkpoints/latest` is used, a `save_trainable` directory, or a `.safetensors` file) or a
released `.pth`. A checkpoint is checked tensor by tensor against the built model before anything is
copied, so a checkpoint of another preset is refused in one line that says which preset it came from.

Memory: bf16/fp16 halve fp32 (the released code's OOMs on 40-48 GB cards came from fp32); `load_in_8bit`
and `offload_layers` (lowmem.py) go further for 24 GB cards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from m2ugen_model.infer.errors import InferenceError, one_line

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
PARTS = ("llama_dir", "mert_dir", "vit_dir", "vivit_dir", "decoder_dir")


@dataclass
class ModelSpec:
    weights_dir: str | None = None  # a directory with preset.json
    preset: str = "7b"  # used when weights_dir is not given
    paths: dict[str, str | None] = field(default_factory=dict)  # llama_dir, mert_dir, ... (7b preset)
    decoder: str = "musicgen"  # 7b preset: musicgen or audioldm2
    checkpoint: str | None = None
    device: str = "cpu"
    dtype: str = "fp32"
    load_in_8bit: bool = False
    offload_layers: int = 0


def resolve_checkpoint(path: str | Path) -> tuple[str, Path]:
    """-> ("released", file.pth) or ("ours", trainable.safetensors file)."""
    from m2ugen_model.checkpoint import WEIGHTS_FILE

    p = Path(path)
    if not p.exists():
        raise InferenceError(f"checkpoint not found: {p}")
    if p.is_file():
        if p.suffix == ".pth":
            return "released", p
        if p.suffix == ".safetensors":
            return "ours", p
        raise InferenceError(f"{p}: not a checkpoint (expected a .pth or .safetensors file)")
    if (p / WEIGHTS_FILE).is_file():
        return "ours", p / WEIGHTS_FILE
    latest = p / "checkpoints" / "latest"
    if latest.is_file():
        step = latest.parent / latest.read_text().strip()
        if (step / WEIGHTS_FILE).is_file():
            return "ours", step / WEIGHTS_FILE
        raise InferenceError(f"{latest} points at {step}, which has no {WEIGHTS_FILE}")
    raise InferenceError(f"{p}: no {WEIGHTS_FILE} there (nor checkpoints/latest); expected a checkpoint "
                         "directory written by m2ugen-train, a run directory or a released .pth")


def _checkpoint_origin(file: Path) -> str:
    """What the checkpoint says it was trained as (trainer.pt's preset, or config.json's sizes)."""
    trainer = file.parent / "trainer.pt"
    if trainer.is_file():
        try:
            cfg = torch.load(trainer, map_location="cpu", weights_only=True).get("config", {})
            return f"preset {cfg.get('preset')!r}" if cfg.get("preset") else ""
        except Exception:  # an unreadable trainer.pt must not hide the real error
            return ""
    config = file.parent / "config.json"
    if config.is_file():
        from m2ugen_model.config import M2UGenConfig

        try:
            c = M2UGenConfig.load(config)
            return f"dim {c.dim}, {c.n_layers} layers"
        except (ValueError, OSError):
            return ""
    return ""


def check_fits(model: torch.nn.Module, file: Path) -> None:
    """Compare names and shapes from the safetensors header with the model before copying anything."""
    from safetensors import safe_open

    params = dict(model.named_parameters())
    try:
        with safe_open(str(file), framework="pt") as st:
            shapes = {k: tuple(st.get_slice(k).get_shape()) for k in st.keys()}
    except Exception as exc:
        raise InferenceError(f"{file}: unreadable safetensors ({one_line(exc)})") from None
    unknown = sorted(k for k in shapes if k not in params)
    wrong = sorted(k for k in shapes if k in params and shapes[k] != tuple(params[k].shape))
    if unknown or wrong:
        origin = _checkpoint_origin(file)
        origin = f" (it was trained as {origin})" if origin else ""
        what = (f"{len(wrong)} tensors differ in shape, e.g. {wrong[0]} {shapes[wrong[0]]} vs the model's "
                f"{tuple(params[wrong[0]].shape)}" if wrong else
                f"{len(unknown)} tensors the model does not have, e.g. {unknown[0]}")
        raise InferenceError(f"checkpoint {file} does not fit this model{origin}: {what}")


def _check_before_loading(weights_dir: str, file: Path) -> None:
    """A checkpoint of another preset is refused before minutes of loading: shapes from a meta model."""
    from m2ugen_model.presets import config_from_dir, init_model

    try:
        cfg = config_from_dir(weights_dir)
    except (OSError, ValueError) as exc:
        raise InferenceError(f"{weights_dir}: {one_line(exc)}") from None
    check_fits(init_model(cfg, device="meta", seed=None), file)


def _check_dirs(spec: ModelSpec) -> None:
    if spec.weights_dir is not None:
        d = Path(spec.weights_dir)
        if not d.is_dir():
            raise InferenceError(f"weights directory not found: {d}")
        from m2ugen_model.presets import PRESET_FILE, config_from_dir

        if not (d / PRESET_FILE).is_file():
            raise InferenceError(f"{d}: no {PRESET_FILE} (give --weights-dir a preset directory, or use "
                                 "--llama-dir/--mert-dir/... with --preset 7b)")
        try:
            cfg = config_from_dir(d)
        except (OSError, ValueError) as exc:
            raise InferenceError(f"{d / PRESET_FILE}: {one_line(exc)}") from None
        paths = {k: getattr(cfg, k) for k in PARTS}
        where = f"(named in {d / PRESET_FILE})"
    else:
        if not spec.paths.get("llama_dir"):
            raise InferenceError(f"preset {spec.preset!r} needs --llama-dir (or --weights-dir with a preset.json)")
        paths, where = spec.paths, ""
    for name in PARTS:
        v = paths.get(name)
        if v and not Path(v).is_dir():
            raise InferenceError(f"{name.replace('_', '-')} {v}: not a directory {where}".rstrip())
    _check_tokenizer(Path(paths["llama_dir"]))


def _check_tokenizer(llama_dir: Path) -> None:
    """Meta's download has consolidated.*.pth, params.json and a SentencePiece tokenizer.model; the LLaMA
    tokenizer is read with transformers from its HF files, which must sit next to the weights."""
    if (llama_dir / "config.json").is_file():
        return
    if not list(llama_dir.glob("consolidated.*.pth")):
        raise InferenceError(f"{llama_dir}: neither an HF LLaMA directory (config.json + *.safetensors) nor "
                             "Meta shards (consolidated.*.pth)")
    if not any((llama_dir / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise InferenceError(f"{llama_dir}: Meta-layout LLaMA without tokenizer.json/tokenizer_config.json; copy "
                             "the HF LLaMA-2 tokenizer files next to consolidated.00.pth")


def load_for_inference(spec: ModelSpec) -> tuple[Any, Any, dict[str, Any]]:
    """-> (model, tokenizer, info): info says what was loaded (for the JSON records)."""
    from m2ugen_model.checkpoint import load_released, load_trainable
    from m2ugen_model.hf_io import WeightsError
    from m2ugen_model.presets import build_model

    if spec.dtype not in DTYPES:
        raise InferenceError(f"--dtype must be one of {sorted(DTYPES)}, not {spec.dtype!r}")
    dtype = DTYPES[spec.dtype]
    if spec.device.startswith("cuda") and not torch.cuda.is_available():
        raise InferenceError(f"--device {spec.device}: no CUDA device is available here")
    if spec.load_in_8bit:
        from m2ugen_model.infer.lowmem import check_8bit

        check_8bit(spec.device)
    _check_dirs(spec)
    ckpt = resolve_checkpoint(spec.checkpoint) if spec.checkpoint else None
    lowmem = spec.load_in_8bit or spec.offload_layers > 0
    build_device = "cpu" if lowmem else spec.device  # quantised/offloaded parts move to the GPU afterwards
    kwargs: dict[str, Any] = {}
    if spec.weights_dir is None:
        kwargs = {k: v for k, v in spec.paths.items() if v}
        if spec.preset == "7b":
            kwargs["decoder"] = spec.decoder
    if ckpt is not None and ckpt[0] == "ours" and spec.weights_dir is not None:
        _check_before_loading(spec.weights_dir, ckpt[1])
    try:
        model, tok = build_model(preset=spec.preset, weights_dir=spec.weights_dir, device=build_device, dtype=dtype,
                                 load_encoders=True, load_decoder=True, **kwargs)
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
        model.encoders.to(spec.device, dtype)
    if model.decoder is not None:
        model.decoder.model.to(spec.device, dtype)
    if spec.load_in_8bit:
        from m2ugen_model.infer.lowmem import quantize_llm_8bit

        quantize_llm_8bit(model, spec.device)
    if spec.offload_layers:
        from m2ugen_model.infer.lowmem import offload_llm_layers

        offload_llm_layers(model, spec.offload_layers, spec.device)
    info = {"weights_dir": spec.weights_dir, "preset": spec.preset if spec.weights_dir is None else "from preset.json",
            "checkpoint": str(ckpt[1]) if ckpt else None, "checkpoint_kind": ckpt[0] if ckpt else None,
            "dtype": spec.dtype, "device": spec.device, "load_in_8bit": spec.load_in_8bit,
            "offload_layers": spec.offload_layers, "decoder": model.cfg.decoder}
    return model.eval(), tok, info
