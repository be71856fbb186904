"""Can the installed vLLM serve this model's architecture? Answered from a table, before vLLM is imported.

vLLM removes architectures over time and, from the release after, refuses them ("Model architecture X was
supported in vLLM until vY"). MPT-7B-chat, the paper's dialogue model, is one: a fresh ``pip install vllm``
cannot serve it. The table below says, per architecture, the first release known to serve it and the last
one that does; each row carries where that fact was read. Architectures not in the table are left for vLLM
to judge when it loads them.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from m2ugen_data.preflight import Finding
from m2ugen_data.preflight.layout import architectures, read_config

# Where the facts were read: the registry module (vllm/model_executor/models/registry.py) inside the vLLM
# wheels on PyPI. 0.28.0 still registers both MPT names; 0.29.0 and 0.34.0 list them in
# _PREVIOUSLY_SUPPORTED_MODELS with "0.28.0"; the other removals are that dict as of 0.34.0.
WHEEL_REGISTRY = "vLLM wheels 0.28.0/0.29.0/0.34.0 on PyPI: vllm/model_executor/models/registry.py"
QWEN2_ADDED = "vllm-project/vllm PR #2495 'Add qwen2' (Jan 2024); Qwen maintainers: 'Use vllm>=0.3.0' (QwenLM/Qwen3 issue #49)"
LLAMA_ORIGINAL = "LlamaForCausalLM is in vLLM's first supported-models list and still registered in 0.34.0 (wheel)"


@dataclass(frozen=True)
class VllmArch:
    """The vLLM releases that serve an architecture: from ``first`` (None: the early releases) to ``last``
    (None: still served by the newest release checked)."""

    first: str | None
    last: str | None
    source: str


def _removed(last: str) -> VllmArch:
    return VllmArch(None, last, WHEEL_REGISTRY)


VLLM_ARCHITECTURES: dict[str, VllmArch] = {
    "LlamaForCausalLM": VllmArch(None, None, LLAMA_ORIGINAL),
    "Qwen2ForCausalLM": VllmArch("0.3.0", None, QWEN2_ADDED),
    # removed causal LMs (chat models a user might pick for dialogues), with the last release serving them
    "MPTForCausalLM": _removed("0.28.0"),  # mosaicml/mpt-7b-chat's config.json
    "MptForCausalLM": _removed("0.28.0"),  # the same model converted to transformers' own class
    "RWForCausalLM": _removed("0.28.0"),
    "StableLMEpochForCausalLM": _removed("0.28.0"),
    "ArcticForCausalLM": _removed("0.28.0"),
    "Fairseq2LlamaForCausalLM": _removed("0.28.0"),
    "PersimmonForCausalLM": _removed("0.25.0"),
    "TeleChatForCausalLM": _removed("0.25.0"),
    "AquilaForCausalLM": _removed("0.24.0"),
    "QWenLMHeadModel": _removed("0.23.0"),
    "InternLMForCausalLM": _removed("0.23.0"),
    "BaichuanForCausalLM": _removed("0.23.0"),
    "BaiChuanForCausalLM": _removed("0.23.0"),
    "XverseForCausalLM": _removed("0.23.0"),
    "JAISLMHeadModel": _removed("0.22.0"),
}
CURRENT_PRESETS = "llama-3.1-8b-instruct, qwen2.5-7b-instruct"
PINNED_SERVER = {"0.28.0": "docker/vllm-mpt"}  # last release -> the recipe in this repository that pins it


def installed_vllm() -> str | None:
    """The installed vLLM's version, read from its package metadata (vLLM itself is not imported)."""
    try:
        return importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return None


def _parse(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def serves(arch: str, version: str) -> bool | None:
    """Whether vLLM ``version`` serves ``arch``: True, False, or None when the table does not know."""
    row, v = VLLM_ARCHITECTURES.get(arch), _parse(version)
    if row is None or v is None:
        return None
    v = Version(v.base_version)  # 0.28.0rc1 / dev builds count as their release
    if row.first is not None and v < Version(row.first):
        return False
    return not (row.last is not None and v > Version(row.last))


def routes(arch: str) -> str:
    """The two ways to run a model this vLLM refuses: its last vLLM as a server, or a current chat preset."""
    row = VLLM_ARCHITECTURES[arch]
    if row.last is None:
        return f"install vllm>={row.first} (`pip install -U vllm`)"
    recipe = PINNED_SERVER.get(row.last)
    server = f"serve it with vllm=={row.last} in its own environment" + (f" ({recipe})" if recipe else "")
    return f"{server} and pass --backend openai --base-url URL, or use a current chat preset ({CURRENT_PRESETS}) with --backend vllm"


def vllm_support(model_dir: Path | str, what: str = "dialogue LLM", version: str | None = None) -> Finding | None:
    """The finding that says vLLM cannot run the model in ``model_dir`` (None when it can, or cannot be told).

    ``version`` is the vLLM to judge (default: the installed one). Reads only ``config.json``.
    """
    version = version or installed_vllm()
    if version is None:
        return Finding("vllm", "vllm", "not installed",
                       "pip install 'm2ugen[gpu]' on a CUDA host, or run a vLLM server and use --backend openai")
    config, findings = read_config(Path(model_dir).expanduser(), what)
    if config is None:
        return findings[0]
    for arch in architectures(config):
        if serves(arch, version) is False:
            row = VLLM_ARCHITECTURES[arch]
            span = f"vLLM served it up to {row.last}" if row.last else f"vLLM serves it from {row.first}"
            return Finding(what, str(Path(model_dir) / "config.json"),
                           f"vLLM {version} cannot serve {arch} ({span})", routes(arch))
    return None
