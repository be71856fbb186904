"""Checkpoints: our own (trainable parameters only, safetensors + config.json, written atomically) and
the released M2UGen / MU-LLaMA `checkpoint.pth` through an explicit key map.

A released file is ``{"model", "optimizer", "scaler", "epoch", "args"}`` with the whole module's state dict
(frozen encoders and MusicGen included) and the training arguments as an ``argparse.Namespace``; it is read
with weights/files.load_pth (weights_only with that one class allowed, memory-mapped), so only the tensors
that are copied are ever read from disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .atomic import write_atomic
from .config import M2UGenConfig
from .hf_io import WeightsError
from .model import M2UGen
from .weights.files import WeightFileError, load_pth, state_dict_of

WEIGHTS_FILE = "trainable.safetensors"
CONFIG_FILE = "config.json"


# ---------------------------------------------------------------- our format
def trainable_state_dict(model: M2UGen) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_trainable(model: M2UGen, out_dir: str | Path) -> Path:
    """Write `out_dir/trainable.safetensors` (parameters that require grad) and `out_dir/config.json`,
    each via a temporary name then rename, so a crash never leaves a half-written checkpoint."""
    out = Path(out_dir)
    state = trainable_state_dict(model)
    if not state:
        raise ValueError("no parameter requires grad: call stages.set_stage first")
    write_atomic(out / WEIGHTS_FILE, lambda tmp: save_file(state, tmp, metadata={"format": "m2ugen"}))
    write_atomic(out / CONFIG_FILE, lambda tmp: model.cfg.save(tmp))
    return out


def _apply(model: M2UGen, state: dict[str, torch.Tensor], source: str) -> list[str]:
    params = dict(model.named_parameters())
    unexpected = sorted(set(state) - set(params))
    if unexpected:
        raise WeightsError(f"{source}: {len(unexpected)} unexpected keys: {unexpected[:10]}")
    wrong = [f"{n} {tuple(v.shape)} != {tuple(params[n].shape)}" for n, v in state.items()
             if v.shape != params[n].shape]
    if wrong:
        raise WeightsError(f"{source}: shape mismatch: {wrong[:10]}")
    with torch.no_grad():
        for n, v in state.items():
            params[n].copy_(v.to(params[n].dtype))
    return sorted(state)


def load_trainable(model: M2UGen, path: str | Path) -> list[str]:
    """Load a `save_trainable` checkpoint (directory or .safetensors file) into `model`; returns the
    names loaded. Keys the model lacks, or shapes that differ, raise naming them."""
    p = Path(path)
    f = p / WEIGHTS_FILE if p.is_dir() else p
    return _apply(model, load_file(str(f)), str(f))


# ---------------------------------------------------------------- released layout
_RELEASED_PREFIX = {"audio": "mu_mert", "image": "iu_vit", "video": "iu_vivit"}
# Frozen parts a released state dict may carry; they load from their own directories instead.
_SKIPPED_PREFIXES = ("mert_model.", "vit_model.", "vivit_model.", "generation_model.")


def _key_table(cfg: M2UGenConfig) -> list[tuple[str, str]]:
    """(released name pattern, our name pattern); {i} a layer number, {p} the parameter suffix."""
    t: list[tuple[str, str]] = [("prefix_query.weight", "prefix_query.weight")]
    for m in cfg.modalities:
        r, o = _RELEASED_PREFIX[m], f"adapters.{m}"
        t += [(f"{r}_agg.{{p}}", f"{o}.agg.{{p}}"), (f"{r}_proj.{{p}}", f"{o}.proj.{{p}}")]
        for b in range(cfg.adapter_blocks):
            t.append((f"{r}_norm_{b + 1}.{{p}}", f"{o}.blocks.{b}.norm.{{p}}"))
            t += [(f"{r}_f{j}_{b + 1}.{{p}}", f"{o}.blocks.{b}.w{j}.{{p}}") for j in (1, 2, 3)]
    layer = "llama.layers.{i}", "llm.layers.{i}"
    for w in ("wq", "wk", "wv", "wo"):
        # LoRA first: the generic "{w}.{p}" entry would otherwise claim "{w}.lora_a.weight" on export.
        t += [(f"{layer[0]}.attention.lora_{w}_l{k}.weight", f"{layer[1]}.attention.{w}.lora_{ab}.weight")
              for k, ab in ((1, "a"), (2, "b"))]
        t.append((f"{layer[0]}.attention.{w}.{{p}}", f"{layer[1]}.attention.{w}.{{p}}"))
    for w in ("w1", "w2", "w3"):
        t += [(f"{layer[0]}.feed_forward.lora_{w}_l{k}.weight", f"{layer[1]}.feed_forward.{w}.lora_{ab}.weight")
              for k, ab in ((1, "a"), (2, "b"))]
        t.append((f"{layer[0]}.feed_forward.{w}.{{p}}", f"{layer[1]}.feed_forward.{w}.{{p}}"))
    t += [(f"{layer[0]}.attention.gate", f"{layer[1]}.attention.gate"),
          (f"{layer[0]}.attention_norm.weight", f"{layer[1]}.attention_norm.weight"),
          (f"{layer[0]}.ffn_norm.weight", f"{layer[1]}.ffn_norm.weight"),
          ("llama.norm.weight", "llm.norm.weight")]
    if cfg.n_aud_tokens and cfg.decoder:
        t += [("output_projector.fc.{p}", "projector.fc_in.{p}"),
              ("output_projector.tfm.{p}", "projector.transformer.{p}"),
              ("output_projector.model.{p}", "projector.fc_out.{p}"),
              ("output_projector.query_embs", "projector.queries")]
    return t


def _regex(fmt: str) -> re.Pattern:
    rx = re.escape(fmt).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>[\w.]+)")
    return re.compile(rx)


def _translate(name: str, table: list[tuple[str, str]], reverse: bool) -> str | None:
    for released, ours in table:
        src, dst = (ours, released) if reverse else (released, ours)
        m = _regex(src).fullmatch(name)
        if m:
            return dst.format(**m.groupdict())
    return None


def _split_vocab(value: torch.Tensor, cfg: M2UGenConfig, base: str, aud: str) -> Iterator[tuple[str, torch.Tensor]]:
    """The released tables have 32000 + 8 rows; ours keep the [AUD] rows apart."""
    if value.shape[0] not in (cfg.vocab_size, cfg.full_vocab_size):
        raise WeightsError(f"{base}: {value.shape[0]} rows, expected {cfg.vocab_size} or {cfg.full_vocab_size}")
    yield base, value[: cfg.vocab_size]
    if value.shape[0] == cfg.full_vocab_size and cfg.n_aud_tokens:
        yield aud, value[cfg.vocab_size:]


def released_to_ours(state: dict[str, torch.Tensor], cfg: M2UGenConfig) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map a released state dict to our names. Returns (mapped, skipped keys); unknown keys raise."""
    table = _key_table(cfg)
    out: dict[str, torch.Tensor] = {}
    skipped, unexpected = [], []
    for key, value in state.items():
        if key.startswith(_SKIPPED_PREFIXES):
            skipped.append(key)
        elif key == "llama.tok_embeddings.weight":
            out.update(_split_vocab(value, cfg, "llm.tok_embeddings.weight", "llm.aud_embeddings.weight"))
        elif key == "llama.output.weight":
            out.update(_split_vocab(value, cfg, "llm.output.weight", "llm.aud_output.weight"))
        else:
            name = _translate(key, table, reverse=False)
            if name is None:
                unexpected.append(key)
                continue
            m = re.fullmatch(r"llm\.layers\.(\d+)\.attention\.gate", name)
            if m and cfg.layer_modality(int(m.group(1))) is None:
                # The released model has a gate in every layer; only the adapted layers ever use it.
                skipped.append(key)
                continue
            out[name] = value
    if unexpected:
        raise WeightsError(f"{len(unexpected)} unexpected keys in the released checkpoint: {unexpected[:10]}")
    return out, skipped


def ours_to_released(state: dict[str, torch.Tensor], cfg: M2UGenConfig) -> dict[str, torch.Tensor]:
    """The inverse map, for exporting to the released code's layout."""
    table = _key_table(cfg)
    out: dict[str, torch.Tensor] = {}
    vocab = {"llm.tok_embeddings.weight": ("llama.tok_embeddings.weight", "llm.aud_embeddings.weight"),
             "llm.output.weight": ("llama.output.weight", "llm.aud_output.weight")}
    for name, value in state.items():
        if name in vocab:
            key, aud = vocab[name]
            out[key] = torch.cat((value, state[aud])) if aud in state else value
        elif name in ("llm.aud_embeddings.weight", "llm.aud_output.weight"):
            base = "llm.tok_embeddings.weight" if "embeddings" in name else "llm.output.weight"
            if base not in state:  # the released layout keeps [AUD] rows inside the full table
                raise WeightsError(f"{name} can only be exported together with {base}")
        else:
            key = _translate(name, table, reverse=True)
            if key is None:
                raise WeightsError(f"{name} has no released counterpart")
            out[key] = value
    return out


def required_released(model: M2UGen) -> list[str]:
    """Our names that any released adapter checkpoint must provide: the understanding branch."""
    return sorted(n for n, _ in model.named_parameters() if n.startswith(("adapters.", "prefix_query.")))


def released_kind(keys: Iterator[str] | list[str]) -> str:
    """"m2ugen" (image/video adapters or the output projector present), "mu_llama" (music adapter only) or
    "unknown" (neither: not a released checkpoint of either model)."""
    keys = list(keys)
    if any(k.startswith(("iu_vit_", "iu_vivit_", "output_projector.")) for k in keys):
        return "m2ugen"
    return "mu_llama" if any(k.startswith("mu_mert_") for k in keys) else "unknown"


def read_released(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a released ``checkpoint.pth`` (memory-mapped; a DDP ``module.`` prefix removed)."""
    p = Path(path)
    try:
        state = state_dict_of(load_pth(p), p)
    except WeightFileError as exc:
        raise WeightsError(str(exc)) from None
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_released_fits(state: dict[str, torch.Tensor], cfg: M2UGenConfig, path: str | Path) -> None:
    """A MU-LLaMA checkpoint for an M2UGen model (or the other way round) is named as such, in one line."""
    kind = released_kind(state)
    want = "m2ugen" if cfg.n_aud_tokens and cfg.decoder else "mu_llama"
    if kind == "unknown":
        raise WeightsError(f"{path}: no mu_mert_/iu_vit_/output_projector weights: not a released M2UGen or "
                           "MU-LLaMA checkpoint.pth")
    if kind != want:
        preset = "--preset mu_llama_7b" if kind == "mu_llama" else "--preset 7b"
        raise WeightsError(f"{path}: a released {'MU-LLaMA' if kind == 'mu_llama' else 'M2UGen'} checkpoint, but "
                           f"the model is {'M2UGen' if want == 'm2ugen' else 'MU-LLaMA'}; use {preset}")


def load_released(model: M2UGen, path: str | Path) -> dict[str, list[str]]:
    """Load a released M2UGen or MU-LLaMA checkpoint (`checkpoint.pth`: {"model": state_dict, ...} or a bare
    state dict) safely (read_released). Unknown keys, or a missing adapter/prefix weight, raise naming them.
    Returns {"loaded": [...], "skipped": [...]}: frozen encoder/decoder weights and unused gates are
    skipped; parameters the file lacks keep their current values (e.g. the LLaMA base weights)."""
    state = read_released(path)
    check_released_fits(state, model.cfg, path)
    mapped, skipped = released_to_ours(state, model.cfg)
    missing = sorted(set(required_released(model)) - set(mapped))
    if missing:
        raise WeightsError(f"{path}: {len(missing)} missing keys (ours): {missing[:10]}")
    return {"loaded": _apply(model, mapped, str(path)), "skipped": sorted(skipped)}
