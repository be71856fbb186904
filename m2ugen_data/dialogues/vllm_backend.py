"""Offline batched generation on GPUs with ``vllm.LLM`` (the ``gpu`` extra).

vLLM schedules a whole batch of prompts with continuous batching and paged attention, which is what makes
hundreds of thousands of dialogues affordable. ``vllm`` is imported only when this backend runs; the mapping
from our config to vLLM's keyword arguments is a pure function so it is tested without a GPU.

Before anything loads, the model directory is checked and the installed vLLM's release is compared with the
releases that serve the model's architecture (``preflight.vllm_support``): current vLLM refuses
MPT-7B-chat, and saying so in one line with the two routes that work beats a refusal after minutes of
engine start-up. vLLM keeps special tokens in the text here (``skip_special_tokens=False``), as the
transformers backend does, so a leaked ``<|im_start|>`` reaches the validator instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from m2ugen_data.dialogues.backend import Completion, GenerationParams, Request
from m2ugen_data.dialogues.chat_format import prepare_local_model
from m2ugen_data.errors import MissingDependencyError


class VllmConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    tensor_parallel_size: int = Field(1, ge=1)
    dtype: str = "auto"
    max_model_len: int | None = Field(2048, ge=16)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    trust_remote_code: bool = False
    enforce_eager: bool = False
    seed: int = 0


def llm_kwargs(cfg: VllmConfig) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM``."""
    kw = cfg.model_dump()
    if kw["max_model_len"] is None:
        del kw["max_model_len"]
    return kw


def sampling_kwargs(params: GenerationParams, seed: int) -> dict[str, Any]:
    """Keyword arguments for one request's ``vllm.SamplingParams`` (vLLM disables top-k with -1)."""
    return {
        "n": 1,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,
        "max_tokens": params.max_new_tokens,
        "stop": list(params.stop),
        "seed": seed,
        "skip_special_tokens": False,
    }


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise MissingDependencyError(
            f"the vllm dialogue backend needs vLLM and a CUDA GPU: pip install 'm2ugen[gpu]' ({e})"
        ) from e
    return vllm


class VllmBackend:
    name = "vllm"

    def __init__(
        self, model: str, params: GenerationParams = GenerationParams(), prompt_format_name: str = "auto",
        **engine: Any,
    ) -> None:
        self.config = VllmConfig(model=model, **engine)
        _, self.prompt_format, self.params = prepare_local_model(
            model, "vllm", prompt_format_name, params, self.config.trust_remote_code
        )
        self.model = model
        self._llm: Any = None

    def config_key(self) -> str:
        return self.params.key()

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        vllm = import_vllm()
        if self._llm is None:
            self._llm = vllm.LLM(**llm_kwargs(self.config))
        sampling = [vllm.SamplingParams(**sampling_kwargs(self.params, r.seed)) for r in requests]
        outputs = self._llm.generate([r.prompt for r in requests], sampling, use_tqdm=False)
        return [Completion(text=o.outputs[0].text, tokens=len(o.outputs[0].token_ids)) for o in outputs]
