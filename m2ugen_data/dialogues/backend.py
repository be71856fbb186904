"""The dialogue backend interface: a batch of prompts in, one completion per prompt out.

Every backend (template, transformers, openai, vllm) takes the same requests, so the writer's batching,
validation, retries and caching are written once. ``factory.make_backend`` builds one by name. A backend never
raises for one bad answer: a failed request comes back as a completion with an ``error`` class, and the writer
records it. A model backend also has a ``prompt_format`` (``chat_format.PromptFormat``: MPT's ChatML or its
tokenizer's template) that the writer renders the prompts with; one without it gets ChatML.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from m2ugen_data.dialogues.prompts import STOP
from m2ugen_data.dialogues.samples import DialogueSample


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
