"""The dialogue LLMs the project documents, by short name: ``--model qwen2.5-7b-instruct`` instead of a path.

MPT-7B-chat is the paper's model (ChatML prompts, the reference sampling); current vLLM releases cannot serve
it, so its route is a vLLM 0.28.0 server (docker/vllm-mpt) reached with ``--backend openai``, or transformers'
own MPT class in process. The chat presets run on current vLLM and transformers and are prompted with their
tokenizer's chat template. A preset name resolves to the model's snapshot in the local Hugging Face cache
(nothing is downloaded) for in-process backends; the OpenAI backend requests it by the preset name (serve it
with ``--served-model-name <preset>``) and takes the tokenizer's chat template from the cached snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m2ugen_data.errors import MissingDependencyError
from m2ugen_data.hub_cache import cached_snapshot


@dataclass(frozen=True)
class ChatPreset:
    name: str
    hub_id: str
    architecture: str  # config.json's architectures[0]
    prompt: str  # chatml | chat-template
    vllm: str  # the vLLM releases that serve it
    note: str


PRESETS: dict[str, ChatPreset] = {
    p.name: p
    for p in (
        ChatPreset("mpt-7b-chat", "mosaicml/mpt-7b-chat", "MPTForCausalLM", "chatml", "<=0.28.0",
                   "the paper's model; serve with docker/vllm-mpt and --backend openai"),
        # Llama-3.1's rope_scaling (rope_type llama3) needs vLLM 0.5.3.post1 (vllm-project/vllm PR #6696).
        ChatPreset("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "LlamaForCausalLM",
                   "chat-template", ">=0.5.3.post1", "gated on the hub: accept the licence before `hf download`"),
        ChatPreset("qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen2ForCausalLM", "chat-template",
                   ">=0.3.0", "Apache-2.0"),
    )
}


def local_snapshot(hub_id: str) -> Path:
    """The hub model's snapshot in the local Hugging Face cache, or a one-line error saying how to get it."""
    path = cached_snapshot(hub_id)
    if path is None:
        raise MissingDependencyError(
            f"weights for {hub_id} are not on this machine: `hf download {hub_id}` once, or pass --model DIR"
        )
    return path


def resolve_model(model: str, in_process: bool) -> tuple[str, Path | None]:
    """``(model to load or name to request, local directory)`` for a preset name, a directory or a served name.

    In-process backends need a directory: a preset's or a hub id's cached snapshot. The OpenAI backend sends
    the name as given (start the server with ``--served-model-name <preset>``) and uses a local directory,
    when there is one, only for the tokenizer's chat template.
    """
    preset = PRESETS.get(model)
    path = Path(model).expanduser()
    if preset is not None:
        if in_process:
            snapshot = local_snapshot(preset.hub_id)
            return str(snapshot), snapshot
        return model, cached_snapshot(preset.hub_id)
    if path.is_dir():
        return (str(path.resolve()) if in_process else model), path.resolve()
    if not in_process:
        return model, None
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):  # a hub id: its cached snapshot
        snapshot = local_snapshot(model)
        return str(snapshot), snapshot
    raise MissingDependencyError(
        f"no model directory {path}: pass a directory, a cached hub id or a preset ({', '.join(PRESETS)})"
    )
