"""The dialogue backend interface: a batch of prompts in, one completion per prompt out.

Every backend (template, transformers, openai, vllm) takes the same requests, so the writer's batching,
validation, retries and caching are written once. A backend never raises for one bad answer: a failed
request comes back as a completion with an ``error`` class, and the writer records it. A model backend also
has a ``prompt_format`` (``chat_format.PromptFormat``: MPT's ChatML or its tokenizer's template) that the
writer renders the prompts with; one without it gets ChatML.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from m2ugen_data.dialogues.prompts import STOP
from m2ugen_data.dialogues.samples import DialogueSample
from m2ugen_data.errors import M2UGenError


@dataclass(frozen=True)
class Request:
    sample: DialogueSample
    side: str  # human | gpt
    prompt: str  # the full prompt, rendered in the backend's prompt format
    seed: int  # differs per attempt, so a retry samples a new answer


@dataclass(frozen=True)
class Completion:
    text: str | None
    tokens: int = 0  # generated tokens (0 for the template backend)
    error: str | None = None  # backend failure class: timeout, http_500, malformed_json, ...


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings shared by the model backends (defaults: the reference MPT settings, bounded length)."""

    max_new_tokens: int = 96
    temperature: float = 0.5
    top_p: float = 1.0
    top_k: int = 4
    stop: tuple[str, ...] = STOP

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class Backend(Protocol):
    name: str
    model: str

    def config_key(self) -> str:
        """Everything besides the prompt that determines the text (goes into the prompt hash)."""
        ...

    def complete(self, requests: Sequence[Request]) -> list[Completion]: ...


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
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise M2UGenError(f"unknown dialogue backend {name!r}; known: {', '.join(BACKENDS)}") from None
    return factory(**opts)
