"""How a (system, user) pair becomes the text a model continues: MPT's ChatML, or the tokenizer's own template.

MPT-7B-chat keeps the ChatML the released scripts wrote by hand. Current chat models (Llama-3.1-Instruct,
Qwen2.5-Instruct) ship their format as a Jinja ``chat_template`` in ``tokenizer_config.json``; rendering it
with ``apply_chat_template`` is the only way to match what they were tuned on (Llama-3.1's template, for one,
adds a knowledge-cutoff header to the system turn). Every backend sends the rendered text as a plain prompt,
so the prompt hash, the cache and the validator see exactly what the model saw.

A template that starts with the BOS token would get a second one when the prompt is tokenized (transformers,
vLLM and its server all add it), so a leading BOS is cut from the rendering when the tokenizer adds its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2ugen_data.dialogues.prompts import STOP, chatml
from m2ugen_data.errors import M2UGenError

FORMATS = ("auto", "chatml", "chat-template")


@dataclass(frozen=True)
class PromptFormat:
    name: str  # "chatml", or "chat-template:<digest of the template>" so a changed template re-generates
    stop: tuple[str, ...]
    render: Callable[[str, str], str] = field(compare=False)


CHATML = PromptFormat("chatml", STOP, chatml)


def _stop_strings(tok: Any, model_dir: Path | None) -> tuple[str, ...]:
    """The end-of-turn tokens: the tokenizer's EOS plus the generation config's ``eos_token_id`` list."""
    ids: list[int] = []
    if model_dir is not None and (model_dir / "generation_config.json").is_file():
        eos = json.loads((model_dir / "generation_config.json").read_text()).get("eos_token_id")
        ids = [eos] if isinstance(eos, int) else [i for i in eos or [] if isinstance(i, int)]
    names = [tok.eos_token] if tok.eos_token else []
    names += [t for t in tok.convert_ids_to_tokens(ids) if isinstance(t, str)]
    return tuple(dict.fromkeys(names))


def from_tokenizer(tok: Any, model_dir: Path | None = None) -> PromptFormat:
    """The tokenizer's own chat template as a prompt format."""
    template = tok.chat_template
    if not isinstance(template, str) or not template:
        raise M2UGenError(f"the tokenizer in {model_dir or 'the model'} has no chat_template; use --prompt-format chatml")
    bos = tok.bos_token
    adds_bos = bool(bos) and tok("x", add_special_tokens=True)["input_ids"][:1] == [tok.bos_token_id]

    def render(system: str, user: str) -> str:
        text = tok.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            tokenize=False, add_generation_prompt=True,
        )
        return text[len(bos):] if adds_bos and text.startswith(bos) else text

    digest = hashlib.sha256(template.encode()).hexdigest()[:12]
    return PromptFormat(f"chat-template:{digest}", _stop_strings(tok, model_dir) or STOP, render)


def is_mpt(model_dir: Path) -> bool:
    try:
        return json.loads((model_dir / "config.json").read_text()).get("model_type") == "mpt"
    except (OSError, ValueError, AttributeError):
        return False


def choose_format(requested: str, tok: Any | None, model_dir: Path | None) -> PromptFormat:
    """``auto``: ChatML for MPT (the released prompts) and for tokenizers without a template, else the
    tokenizer's template. ``chatml`` and ``chat-template`` force one."""
    if requested not in FORMATS:
        raise M2UGenError(f"unknown prompt format {requested!r}; use one of {', '.join(FORMATS)}")
    if requested == "chatml" or tok is None:
        if requested == "chat-template":
            raise M2UGenError("--prompt-format chat-template needs a tokenizer (a model directory, or --tokenizer DIR)")
        return CHATML
    if requested == "auto" and ((model_dir is not None and is_mpt(model_dir)) or not tok.chat_template):
        return CHATML
    return from_tokenizer(tok, model_dir)


def load_tokenizer(path: Path, trust_remote_code: bool = False) -> Any:
    """A tokenizer from a local directory (CPU only, no download), or a one-line error."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as e:
        raise M2UGenError(f"cannot load the tokenizer in {path}: {str(e).splitlines()[0]}") from e


def prepare_local_model(
    model_dir: str, backend: str, requested: str, params: Any, trust_remote_code: bool = False
) -> tuple[Any, PromptFormat, Any]:
    """What an in-process backend (transformers | vllm) does before loading: check the directory (one-line
    error on the first problem), read the tokenizer, pick the prompt format, and take the format's stop
    tokens into the sampling ``params`` (a ``GenerationParams``)."""
    from dataclasses import replace

    from m2ugen_data.preflight import raise_first
    from m2ugen_data.preflight.expect import check_dialogue_llm

    raise_first(check_dialogue_llm(model_dir, backend, trust_remote_code))
    tok = load_tokenizer(Path(model_dir), trust_remote_code)
    fmt = choose_format(requested, tok, Path(model_dir))
    return tok, fmt, params if fmt.name == "chatml" else replace(params, stop=fmt.stop)
