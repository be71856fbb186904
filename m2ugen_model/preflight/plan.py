"""The preflight: every weight directory, tokenizer, checkpoint and library a run will load, checked in
seconds without a GPU, before anything is loaded. ``m2ugen-infer check`` and ``m2ugen-train --check`` print
it; both commands also run it before loading and stop at the first blocking finding (one line).

Components are checked independently (components.py): one broken directory never hides another, and the
data pipeline adds its own rows by returning ``Finding`` lists from its own check functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from m2ugen_model.config import M2UGenConfig

from . import components, versions
from .findings import Finding, blocking, guarded


@dataclass
class Plan:
    """What a run will load: the model config (paths included) and the options that pull in libraries."""

    cfg: M2UGenConfig
    checkpoint: str | None = None
    encoders: bool = True  # False: a run fed precomputed features needs no encoder directories
    decoder: bool = True
    device: str = "auto"
    load_in_8bit: bool = False
    offload_layers: int = 0
    extra: list[tuple[str, Callable[[], list[Finding]]]] = field(default_factory=list)  # more (name, check) rows


def component_checks(plan: Plan) -> list[tuple[str, str | None, Callable[[], list[Finding]]]]:
    """(name, path, check) for every part the plan loads, in load order."""
    cfg = plan.cfg
    checks: list[tuple[str, str | None, Callable[[], list[Finding]]]] = [
        ("LLaMA-2", cfg.llama_dir, lambda: components.check_llama(cfg))]
    if plan.encoders:
        wanted = {"audio": ("MERT", cfg.mert_dir, components.check_mert),
                  "image": ("ViT", cfg.vit_dir, components.check_vit),
                  "video": ("ViViT", cfg.vivit_dir, components.check_vivit)}
        for m in cfg.modalities:
            name, path, fn = wanted[m]
            if path:  # an encoder left out is a run without that modality, not an error
                checks.append((name, path, lambda fn=fn: fn(cfg)))
    if plan.decoder and cfg.decoder and cfg.decoder_dir:
        name = "MusicGen" if cfg.decoder == "musicgen" else "AudioLDM2"
        checks.append((name, cfg.decoder_dir, lambda: components.check_decoder(cfg)))
    if plan.checkpoint:
        checks.append(("checkpoint", plan.checkpoint, lambda: components.check_checkpoint(cfg, plan.checkpoint)))
    return checks


def library_requirements(plan: Plan) -> list[versions.Requirement]:
    reqs = list(versions.CORE)
    if plan.decoder and plan.cfg.decoder == "audioldm2" and plan.cfg.decoder_dir:
        reqs.append(versions.EXTRA["audioldm2"])
    if plan.offload_layers:
        reqs.append(versions.EXTRA["offload"])
    if plan.load_in_8bit:
        reqs.append(versions.EXTRA["int8"])
    return reqs


def device_findings(plan: Plan) -> list[Finding]:
    import torch

    out = []
    if str(plan.device).startswith("cuda") and not torch.cuda.is_available():
        out.append(Finding("device", plan.device, "no CUDA device here", "run on a GPU node, or --device auto/cpu"))
    if plan.load_in_8bit and not (str(plan.device).startswith("cuda") or
                                  (plan.device == "auto" and torch.cuda.is_available())):
        out.append(Finding("device", plan.device, "--load-in-8bit needs a CUDA device (bitsandbytes int8 matmuls)",
                           "run on a GPU node, or drop --load-in-8bit", blocking=plan.device != "auto"))
    return out


def run(plan: Plan) -> tuple[list[Finding], list[str]]:
    """(findings, names of the parts found ready)."""
    rows = [("libraries", versions.check(library_requirements(plan))), ("device", device_findings(plan))]
    for name, path, check in component_checks(plan) + [(n, None, c) for n, c in plan.extra]:
        rows.append((name, guarded(name, path, components.FIXES.get(name, "see the message"), check)))
    return [f for _, found in rows for f in found], [name for name, found in rows if not found]


def blocking_line(plan: Plan, command: str) -> str | None:
    """The first blocking finding as the one line a command stops with (None: nothing blocks); ``command`` is
    what prints them all."""
    stop = blocking(run(plan)[0])
    if not stop:
        return None
    return stop[0].line() + (f" ({len(stop) - 1} more: run {command})" if len(stop) > 1 else "")


def plan_from_options(preset: str, weights_dir: str | None, paths: dict[str, str | None], decoder: str = "musicgen",
                      **options) -> Plan | Finding:
    """The Plan for CLI options (a preset name, or a weights dir with preset.json), or the Finding that says why
    no config can be made (a preset.json that does not parse, a missing --llama-dir)."""
    from m2ugen_model.presets import PRESET_FILE, resolve_config

    kwargs = {k: v for k, v in paths.items() if v}
    if preset == "7b" and weights_dir is None:
        kwargs["decoder"] = decoder
    where = str(Path(weights_dir) / PRESET_FILE) if weights_dir else f"--preset {preset}"
    if weights_dir is not None and not (Path(weights_dir) / PRESET_FILE).is_file():
        return Finding("preset", where, "no preset.json there" if Path(weights_dir).is_dir() else "not found",
                       "give --weights-dir a directory with preset.json, or --preset 7b with --llama-dir/--mert-dir/...")
    if weights_dir is None and not kwargs.get("llama_dir"):
        return Finding("LLaMA-2", "", f"--preset {preset} needs --llama-dir", components.FIXES["LLaMA-2"])
    try:
        return Plan(cfg=resolve_config(preset, weights_dir, strict_sizes=False, **kwargs), **options)
    except Exception as exc:  # noqa: BLE001 - any reason a config cannot be made is one row
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return Finding("preset", where, lines[0] if lines else type(exc).__name__,
                       "fix the directory it names (m2ugen-infer check lists every problem)")
