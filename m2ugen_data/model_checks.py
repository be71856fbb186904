"""The data pipeline's preflight: every model a run would load, and the installed libraries, checked from
files and package metadata in seconds, on a login node without a GPU, before hours in a GPU queue.

Each check gives a ``Check`` row: what was checked, where, and its findings (none: ok). ``m2ugen-data check``
prints them as one table; the loaders run the same per-model checks themselves before loading.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

from m2ugen_data.errors import M2UGenError
from m2ugen_data.preflight import Finding
from m2ugen_data.preflight.expect import blip, check_dialogue_llm, video_captioner
from m2ugen_data.preflight.layout import check_model_dir

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
VERSION_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "huggingface-hub")


@dataclass(frozen=True)
class Check:
    what: str
    path: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def project_requirements() -> list[Requirement]:
    """This package's declared requirements: from its installed metadata, else from pyproject.toml (a bare
    checkout run with PYTHONPATH)."""
    try:
        lines = importlib.metadata.requires("m2ugen") or []
    except importlib.metadata.PackageNotFoundError:
        project = tomllib.loads(PYPROJECT.read_text())["project"]
        lines = list(project["dependencies"])
        lines += [f"{r}; extra == '{x}'" for x, reqs in project.get("optional-dependencies", {}).items() for r in reqs]
    return [Requirement(line) for line in lines]


def check_versions(packages: tuple[str, ...] = VERSION_PACKAGES) -> list[Check]:
    """Installed versions of the model libraries against the ranges this project declares for them (in its
    dependencies or an extra)."""
    wanted = {p.lower().replace("_", "-") for p in packages}
    rows = []
    for req in project_requirements():
        name = req.name.lower().replace("_", "-")
        if name not in wanted:
            continue
        wanted.discard(name)  # the first declaration counts (a package may appear in several extras)
        try:
            have = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            rows.append(Check(req.name, "not installed",
                              [Finding(req.name, req.name, "not installed", f"pip install '{req.name}{req.specifier}'")]))
            continue
        ok = req.specifier.contains(have, prereleases=True)
        problem = [] if ok else [Finding(req.name, f"{req.name} {have}", f"this project needs {req.name}{req.specifier}",
                                         f"pip install '{req.name}{req.specifier}'")]
        rows.append(Check(req.name, f"{req.name} {have} ({req.specifier or 'any'})", problem))
    return rows


def check_openai_server(base_url: str, model: str, timeout_s: float = 3.0) -> Check:
    """Does a server answer at ``base_url`` and serve ``model``? (GET /models, a few seconds at most.)"""
    import httpx

    url = base_url.rstrip("/") + "/models"
    try:
        resp = httpx.get(url, timeout=timeout_s)
        served = [m.get("id") for m in resp.json().get("data", [])] if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError) as e:
        return Check("dialogue server", url, [Finding("dialogue server", url, f"no OpenAI-compatible server answers ({type(e).__name__})",
                                                      "start it (docs/OPERATIONS.md: serving the dialogue LLM) or fix --base-url")])
    if served is None:
        return Check("dialogue server", url, [Finding("dialogue server", url, f"GET /models answered HTTP {resp.status_code}",
                                                      "check --base-url and the server's API key")])
    if model not in served:
        return Check("dialogue server", url, [Finding("dialogue server", url, f"serves {served}, not {model!r}",
                                                      "pass --model as the server names it (vllm serve --served-model-name)")])
    return Check("dialogue server", url)


def check_dialogue(
    backend: str, model: str, base_url: str, trust_remote_code: bool = False, vllm_version: str | None = None
) -> list[Check]:
    from m2ugen_data.dialogues.presets import resolve_model

    if backend == "openai":
        name, _ = resolve_model(model, in_process=False)
        return [check_openai_server(base_url, name)]
    try:
        path, _ = resolve_model(model, in_process=True)
    except M2UGenError as e:
        return [Check("dialogue LLM", model, [Finding("dialogue LLM", model, str(e), "see the message")])]
    return [Check(f"dialogue LLM ({backend})", path, check_dialogue_llm(path, backend, trust_remote_code, vllm_version))]


def _model_dir(value: str, default_id: str, what: str) -> tuple[str, list[Finding]]:
    """``value`` as a directory; ``default`` means ``default_id``'s snapshot in the local HF cache."""
    from m2ugen_data.hub_cache import cached_snapshot

    if value != "default":
        return value, []
    path = cached_snapshot(default_id)
    if path is None:
        return default_id, [Finding(what, default_id, "not in the local Hugging Face cache",
                                    f"`hf download {default_id}`, or pass the directory")]
    return str(path), []


def check_blip(value: str) -> Check:
    from m2ugen_data.vision.blip import DEFAULT_MODEL

    path, missing = _model_dir(value, DEFAULT_MODEL, "BLIP")
    return Check("BLIP", path, missing or check_model_dir(path, "BLIP", blip()))


def check_video_captioner(value: str, processor_dir: str | None, tokenizer_dir: str | None) -> list[Check]:
    """The captioner's model directory, and where its processor and tokenizer would come from."""
    from m2ugen_data.vision.video_gpt2 import (
        DEFAULT_MODEL, PROCESSOR_SOURCE, TOKENIZER_SOURCE, component_dir, has_processor, has_tokenizer,
    )

    path, missing = _model_dir(value, DEFAULT_MODEL, "video captioner")
    rows = [Check("video captioner", path, missing or check_model_dir(path, "video captioner", video_captioner(),
                                                                      tokenizer=False))]
    for what, explicit, present, source, option in (
        ("image processor", processor_dir, has_processor, PROCESSOR_SOURCE, "--processor-dir"),
        ("tokenizer", tokenizer_dir, has_tokenizer, TOKENIZER_SOURCE, "--tokenizer-dir"),
    ):
        found = component_dir(explicit, path, present, source, what, option)
        rows.append(Check(f"video {what}", found.path, [found]) if isinstance(found, Finding)
                    else Check(f"video {what}", found[0]))
    return rows


def check_mu_llama(model_dir: str) -> Check:
    """Existence only: the MU-LLaMA layout is checked by the model package's own preflight."""
    d = Path(model_dir).expanduser()
    if d.is_dir():
        return Check("MU-LLaMA", str(d))
    return Check("MU-LLaMA", str(d), [Finding("MU-LLaMA", str(d), "no such directory",
                                              "pass the directory holding MU-LLaMA's checkpoint and LLaMA weights")])
