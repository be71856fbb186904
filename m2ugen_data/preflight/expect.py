"""What each pipeline model's config.json must say, so a directory of another model is refused by name.

The pipeline loads three kinds of checkpoint: a chat LLM (dialogues), BLIP (image captions) and a video
VisionEncoderDecoder (video captions). A BLIP directory passed as the dialogue model, or a hub-code-only
model without ``--trust-remote-code``, fails here in one line instead of deep inside ``from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from m2ugen_data.preflight import Finding
from m2ugen_data.preflight.layout import architectures, check_model_dir

Expect = Callable[[dict[str, Any], Path], list[Finding]]
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def _transformers_causal_types() -> tuple[str, frozenset[str]]:
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return transformers.__version__, frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def causal_lm(what: str, *, in_transformers: bool, trust_remote_code: bool = False) -> Expect:
    """A chat LLM; with ``in_transformers``, one that transformers can build without the repository's code
    (MPT-7B-chat can: its ``model_type: mpt`` is transformers' own ``MptForCausalLM``)."""

    def check(config: dict[str, Any], path: Path) -> list[Finding]:
        archs = architectures(config)
        if not archs:
            return [Finding(what, str(path), "config.json names no architecture", "pass a chat LLM's directory")]
        if not any(a.endswith(CAUSAL_SUFFIXES) for a in archs):
            return [Finding(what, str(path), f"{archs[0]} is not a causal language model",
                            "pass a chat LLM's directory (docs/OPERATIONS.md: dialogue presets)")]
        if not in_transformers:
            return []
        version, known = _transformers_causal_types()
        model_type = str(config.get("model_type"))
        if model_type in known:
            return []
        hub_class = (config.get("auto_map") or {}).get("AutoModelForCausalLM")
        if hub_class and not trust_remote_code:
            return [Finding(what, str(path),
                            f"published as hub code ({hub_class}) and transformers {version} has no class for "
                            f"model_type {model_type!r}",
                            "pass --trust-remote-code only if you trust that repository's Python code")]
        if not hub_class:
            return [Finding(what, str(path), f"transformers {version} does not know model_type {model_type!r}",
                            "upgrade transformers (pip install -U transformers)")]
        return []

    return check


def blip(what: str = "BLIP") -> Expect:
    def check(config: dict[str, Any], path: Path) -> list[Finding]:
        if config.get("model_type") == "blip" and "BlipForConditionalGeneration" in architectures(config):
            return []
        found = (architectures(config) or [config.get("model_type")])[0]
        return [Finding(what, str(path), f"expected BlipForConditionalGeneration, found {found}",
                        "pass Salesforce/blip-image-captioning-base (or another BLIP captioner) as --model-dir")]

    return check


def video_captioner(what: str = "video captioner") -> Expect:
    def check(config: dict[str, Any], path: Path) -> list[Finding]:
        if config.get("model_type") != "vision-encoder-decoder":
            found = (architectures(config) or [config.get("model_type")])[0]
            return [Finding(what, str(path), f"expected a VisionEncoderDecoderModel, found {found}",
                            "pass Neleac/timesformer-gpt2-video-captioning (or a save_pretrained copy) as --model-dir")]
        if not (config.get("encoder") or {}).get("num_frames"):
            encoder = (config.get("encoder") or {}).get("model_type")
            return [Finding(what, str(path), f"its encoder ({encoder}) has no num_frames: not a video encoder",
                            "pass a video captioner (TimeSformer or VideoMAE encoder)")]
        return []

    return check


def check_dialogue_llm(
    model_dir: Path | str, backend: str, trust_remote_code: bool = False, vllm_version: str | None = None
) -> list[Finding]:
    """Every problem that would stop ``backend`` (transformers | vllm) from loading the dialogue LLM
    (``vllm_version``: judge that vLLM release instead of the installed one)."""
    from m2ugen_data.preflight.vllm_support import vllm_support

    what = "dialogue LLM"
    findings = check_model_dir(
        model_dir, what, causal_lm(what, in_transformers=backend == "transformers", trust_remote_code=trust_remote_code)
    )
    if backend == "vllm" and not findings:
        refused = vllm_support(model_dir, what, vllm_version)
        findings += [refused] if refused else []
    return findings
