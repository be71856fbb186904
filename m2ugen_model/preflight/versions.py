"""Which installed library versions the chosen models need, checked without importing the libraries.

The floors are the APIs the code uses: torch >= 2.6 (``weights_only`` loading with ``safe_globals`` and
``get_unsafe_globals_in_checkpoint``, SDPA's ``enable_gqa``, FSDP2's ``fully_shard``); transformers >= 5
(``dtype=``, ``rope_parameters``, image processors with ``backend=``, per-layer hidden states collected by
the model classes, which is also why MERT goes through HubertModel); diffusers >= 0.30 for AudioLDM2
(decoders.py adapts its GPT-2 loop to transformers 5); accelerate for CPU offloading; bitsandbytes for int8
LLaMA weights; sentencepiece to read a SentencePiece ``tokenizer.model``/``spiece.model`` that has no
``tokenizer.json`` beside it. docs/OPERATIONS.md ("GPU hosts") lists which model needs which.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from .findings import Finding


@dataclass(frozen=True)
class Requirement:
    package: str
    spec: str  # a PEP 440 specifier, "" = any version
    why: str


CORE = [Requirement("torch", ">=2.6", "safe checkpoint loading (weights_only + safe_globals), SDPA with GQA"),
        Requirement("transformers", ">=5.0", "the encoder/decoder classes and tokenizers as this code calls them"),
        Requirement("safetensors", ">=0.4", "reading weight files")]
EXTRA = {
    "audioldm2": Requirement("diffusers", ">=0.30", "the AudioLDM2 pipeline"),
    "offload": Requirement("accelerate", ">=0.30", "--offload-layers (CPU offloading of LLaMA blocks)"),
    "int8": Requirement("bitsandbytes", ">=0.43", "--load-in-8bit (LLM.int8 LLaMA weights)"),
    "sentencepiece": Requirement("sentencepiece", "", "reading a SentencePiece tokenizer.model without tokenizer.json"),
}


def installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check(requirements: list[Requirement]) -> list[Finding]:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    out = []
    for r in requirements:
        have = installed(r.package)
        want = f"{r.package}{r.spec}" if r.spec else r.package
        if have is None:
            out.append(Finding(r.package, r.package, f"not installed (needed for {r.why})", f"pip install '{want}'"))
        elif r.spec and Version(have) not in SpecifierSet(r.spec, prereleases=True):
            out.append(Finding(r.package, f"{r.package} {have}", f"needs {r.spec} for {r.why}",
                               f"pip install -U '{want}'"))
    return out
