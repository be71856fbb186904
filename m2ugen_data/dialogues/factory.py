"""Dialogue backends by name: ``make_backend(name, **options)`` and which options each one takes.

Kept apart from ``backend.py`` (the interface every backend implements) so the interface never imports
the backends that import it; each backend module is imported only when it is asked for, since the model
backends pull in torch, vllm or httpx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from m2ugen_data.dialogues.backend import Backend, GenerationParams
from m2ugen_data.errors import M2UGenError


def _template(**opts: Any) -> Backend:
    from m2ugen_data.dialogues.template import TemplateBackend

    return TemplateBackend(**opts)


def _transformers(**opts: Any) -> Backend:
    from m2ugen_data.dialogues.transformers_backend import TransformersBackend

    return TransformersBackend(**opts)


def _openai(**opts: Any) -> Backend:
    from m2ugen_data.dialogues.openai_backend import OpenAIBackend

    return OpenAIBackend(**opts)


def _vllm(**opts: Any) -> Backend:
    from m2ugen_data.dialogues.vllm_backend import VllmBackend

    return VllmBackend(**opts)


BACKENDS: dict[str, Callable[..., Backend]] = {
    "template": _template,
    "transformers": _transformers,
    "openai": _openai,
    "vllm": _vllm,
}


def make_backend(name: str, **opts: Any) -> Backend:
    """Build the backend registered as ``name``; options go to its constructor (see ``backend_options``)."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise M2UGenError(f"unknown dialogue backend {name!r}; known: {', '.join(BACKENDS)}") from None
    return factory(**opts)


def backend_options(
    backend: str,
    *,
    model: str | None,
    base_url: str,
    device: str,
    dtype: str,
    batch_size: int,
    concurrency: int,
    timeout: float,
    vllm_extras: bool,
    tensor_parallel_size: int,
    max_model_len: int,
    params: GenerationParams,
    prompt_format: str = "auto",
    tokenizer: str | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Constructor options of the named backend out of every backend's settings (each takes only its own), so
    the CLI and the flows map their flags the same way; an unknown name is ``make_backend``'s error.

    ``model`` may be a preset name (``dialogues.presets``): in-process backends get its local snapshot; the
    OpenAI backend requests the preset name (``--served-model-name``) and, for the prompt template, uses the
    snapshot's tokenizer when one is on this machine."""
    from m2ugen_data.dialogues.presets import PRESETS, resolve_model

    if backend == "template":
        return {}
    if not model:
        raise M2UGenError(f"the {backend} backend needs --model (a preset, a local directory or a served model name)")
    common = {"params": params, "prompt_format_name": prompt_format}
    if backend == "openai":
        name, local = resolve_model(model, in_process=False)
        tokenizer = tokenizer or (str(local) if local else None)
        preset = PRESETS.get(model)
        if preset and preset.prompt == "chat-template" and tokenizer is None and prompt_format != "chatml":
            raise M2UGenError(
                f"{model} is prompted with its tokenizer's chat template, and no copy of its tokenizer is on this "
                f"machine: `hf download {preset.hub_id} --include 'tokenizer*'` or pass --tokenizer DIR"
            )
        return {
            "model": name,
            "base_url": base_url,
            "concurrency": concurrency,
            "timeout_s": timeout,
            "vllm_extras": vllm_extras,
            "tokenizer": tokenizer,
            **common,
        }
    path, _ = resolve_model(model, in_process=True)
    if backend == "transformers":
        return {"model": path, "device": device, "dtype": dtype, "batch_size": batch_size,
                "trust_remote_code": trust_remote_code, **common}
    return {
        "model": path,
        "dtype": dtype,
        "tensor_parallel_size": tensor_parallel_size,
        "max_model_len": max_model_len,
        "trust_remote_code": trust_remote_code,
        **common,
    }
