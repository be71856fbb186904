"""One check per weight component: is the directory the model it should be, complete, and readable?

Each function returns ``Finding`` rows (empty: ready) and reads only configs, tokenizer files, safetensors
headers and memory-mapped ``.pth`` metadata: names and shapes are compared with a model built on the meta
device, so nothing is allocated and a 7B layout is checked in seconds on a login node.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

from m2ugen_model.config import M2UGenConfig

from m2ugen_model.weights.files import WeightFileError, hf_weight_files, load_pth, safetensors_shapes, state_dict_of
from .findings import Finding

FIXES = {
    "LLaMA-2": "give --llama-dir meta-llama/Llama-2-7b-hf, or Meta's download (llama-2-7b/ + tokenizer.model)",
    "MERT": "give --mert-dir the m-a-p/MERT-v1-330M snapshot (config.json, preprocessor_config.json, "
            "pytorch_model.bin)",
    "ViT": "give --vit-dir the google/vit-base-patch16-224 snapshot",
    "ViViT": "give --vivit-dir the google/vivit-b-16x2-kinetics400 snapshot",
    "MusicGen": "give --decoder-dir the facebook/musicgen-medium (or -small) snapshot",
    "AudioLDM2": "give --decoder-dir the cvssp/audioldm2-music snapshot (model_index.json and its folders)",
    "checkpoint": "give --checkpoint a released checkpoint.pth or a checkpoint directory written by m2ugen-train",
}
REDOWNLOAD = "download it again (the file is incomplete or corrupt)"


def _shapes(files: Iterable[Path]) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for f in files:
        if f.suffix == ".safetensors":
            out.update({k: shape for k, (shape, _) in safetensors_shapes(f).items()})
        else:
            out.update({k: tuple(v.shape) for k, v in state_dict_of(load_pth(f), f).items()})
    return out


def checkpoint_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Names and shapes a transformers model's checkpoint files use (transformers 5 renames some modules
    internally and maps file names on load; revert_weight_conversion is that map's inverse). Works on meta."""
    from transformers.core_model_loading import revert_weight_conversion

    return {k: tuple(v.shape) for k, v in revert_weight_conversion(model, model.state_dict()).items()}


def _compare(what: str, where: Path, expected: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]],
             fix: str) -> list[Finding]:
    """Missing, unexpected and resized tensors, one row each kind (with a count and the first name)."""
    out = []
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if tuple(expected[k]) != tuple(got[k]))
    if missing:
        out.append(Finding(what, str(where), f"{len(missing)} tensors missing, e.g. {missing[0]}", fix))
    if unexpected:
        out.append(Finding(what, str(where), f"{len(unexpected)} tensors it should not have, e.g. {unexpected[0]}",
                           fix))
    if wrong:
        k = wrong[0]
        out.append(Finding(what, str(where), f"{len(wrong)} tensors of another size, e.g. {k} {got[k]} "
                                             f"(expected {expected[k]})", fix))
    return out


def _relative(message: str, d: Path) -> str:
    """A message about a directory, without repeating the directory in front of it."""
    return message.removeprefix(f"{d}: ").removeprefix(f"{d}/")


def _directory(what: str, path: str | None, flag: str) -> tuple[Path | None, list[Finding]]:
    if not path:
        return None, [Finding(what, "", f"no directory given ({flag})", FIXES[what])]
    d = Path(path)
    if not d.is_dir():
        return None, [Finding(what, str(d), "not a directory", FIXES[what])]
    return d, []


def _weight_shapes(what: str, d: Path) -> tuple[dict[str, tuple[int, ...]] | None, list[Finding]]:
    try:
        return _shapes(hf_weight_files(d)), []
    except WeightFileError as exc:
        return None, [Finding(what, str(d), _relative(str(exc), d), REDOWNLOAD
                              if "truncated" in str(exc) or "unreadable" in str(exc) else FIXES[what])]


# ---------------------------------------------------------------- LLaMA-2
def _llama_expected(cfg: M2UGenConfig) -> dict[str, tuple[int, ...]]:
    from m2ugen_model.hf_io import _base_names
    from m2ugen_model.llama import LLaMA

    with torch.device("meta"):
        llm = LLaMA(cfg)
    base = _base_names(llm)
    return {n: tuple(p.shape) for n, p in llm.named_parameters() if n in base}


def _tokenizer_size(layout) -> int:
    """The vocabulary a tokenizer file defines, read from the file (no tokenizer is built)."""
    if layout.tokenizer_dir is not None and (layout.tokenizer_dir / "tokenizer.json").is_file():
        t = json.loads((layout.tokenizer_dir / "tokenizer.json").read_text())
        ids = set(t["model"]["vocab"].values()) | {a["id"] for a in t.get("added_tokens", [])}
        return len(ids)
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    proto.ParseFromString(layout.tokenizer_model.read_bytes())
    return len(proto.pieces)


def check_llama(cfg: M2UGenConfig) -> list[Finding]:
    from m2ugen_model.hf_io import _META_SPLIT_DIM, WeightsError, check_dims, llama_layout, map_hf_key

    what = "LLaMA-2"
    d, out = _directory(what, cfg.llama_dir, "--llama-dir")
    if d is None:
        return out
    try:
        layout = llama_layout(d)
        check_dims(cfg, d)
    except (WeightsError, KeyError, ValueError) as exc:
        return [Finding(what, str(d), _relative(str(exc), d), FIXES[what])]
    out += _llama_tokenizer(cfg, layout)
    expected = _llama_expected(cfg)
    if layout.kind == "hf":
        got, problems = _weight_shapes(what, layout.weights_dir)
        if got is None:
            return out + problems
        mapped = {}
        for k, shape in got.items():
            try:
                name = map_hf_key(k)
            except WeightsError:
                name = k  # reported below as a tensor it should not have
            if name is not None:
                mapped[name] = shape
        if "output.weight" not in mapped and "tok_embeddings.weight" in mapped:
            mapped["output.weight"] = mapped["tok_embeddings.weight"]  # tied embeddings
        got = mapped
    else:
        shards = sorted(layout.weights_dir.glob("consolidated.*.pth"))
        try:
            parts = [{k: tuple(v.shape) for k, v in state_dict_of(load_pth(s), s).items()} for s in shards]
        except WeightFileError as exc:
            return out + [Finding(what, str(layout.weights_dir), str(exc), REDOWNLOAD)]
        got = {}
        for k, shape in parts[0].items():
            if k == "rope.freqs":
                continue
            dim = _META_SPLIT_DIM.get(k.split(".")[-2])
            total = sum(p.get(k, shape)[dim] for p in parts) if dim is not None and len(parts) > 1 else None
            got[k] = shape if total is None else tuple(total if i == dim else s for i, s in enumerate(shape))
    return out + _compare(what, layout.weights_dir, expected, got, FIXES[what])


def _llama_tokenizer(cfg: M2UGenConfig, layout) -> list[Finding]:
    from .versions import EXTRA, check as check_versions

    what = "LLaMA-2 tokenizer"
    if layout.tokenizer_dir is None and layout.tokenizer_model is None:
        return [Finding(what, str(layout.weights_dir), "no tokenizer (tokenizer.json, or tokenizer.model next to the "
                        "weights or one level up)", "copy Meta's tokenizer.model (or the HF tokenizer files) there")]
    out = []
    if layout.tokenizer_dir is None:
        out += check_versions([EXTRA["sentencepiece"]])
    size = _tokenizer_size(layout)
    if size != cfg.vocab_size:
        src = layout.tokenizer_dir or layout.tokenizer_model
        out.append(Finding(what, str(src), f"{size} tokens, the LLaMA weights have {cfg.vocab_size}",
                           "use the tokenizer that came with these weights"))
    return out


# ---------------------------------------------------------------- encoders
def _model_type(what: str, d: Path, expected: tuple[str, ...]) -> list[Finding]:
    f = d / "config.json"
    if not f.is_file():
        return [Finding(what, str(d), "no config.json", FIXES[what])]
    kind = json.loads(f.read_text()).get("model_type")
    if kind not in expected:
        return [Finding(what, str(f), f"model_type {kind!r}: another model's directory", FIXES[what])]
    return []


def check_mert(cfg: M2UGenConfig) -> list[Finding]:
    from transformers import HubertModel

    from m2ugen_model.weights.mert import MertLayoutError, hubert_config, read_config, rename

    what = "MERT"
    d, out = _directory(what, cfg.mert_dir, "--mert-dir")
    if d is None:
        return out
    out = _model_type(what, d, ("mert_model", "hubert"))
    if out:
        return out
    try:
        hub = hubert_config(read_config(d), d)
    except MertLayoutError as exc:
        return [Finding(what, str(d), _relative(str(exc), d), "use MERT-v1-330M or MERT-v1-95M")]
    pre = d / "preprocessor_config.json"
    if not pre.is_file():
        out.append(Finding(what, str(pre), "missing (MERT's feature extractor settings: 24 kHz input)", FIXES[what]))
    elif json.loads(pre.read_text()).get("sampling_rate") != 24000:
        out.append(Finding(what, str(pre), f"sampling_rate {json.loads(pre.read_text()).get('sampling_rate')}, "
                                           "MERT-v1 takes 24000", "use the preprocessor_config.json published with "
                                                                  "MERT-v1", blocking=False))
    if (hub.num_hidden_layers + 1, hub.hidden_size) != tuple(cfg.audio_feat_shape):
        out.append(Finding(what, str(d / "config.json"), f"{hub.num_hidden_layers + 1} hidden states x "
                           f"{hub.hidden_size}, the model expects {cfg.audio_feat_shape[0]} x {cfg.audio_feat_shape[1]}",
                           "use MERT-v1-330M (25 x 1024) as released"))
    with torch.device("meta"):
        expected = checkpoint_shapes(HubertModel(hub))
    got, problems = _weight_shapes(what, d)
    if got is None:
        return out + problems
    return out + _compare(what, d, expected, {rename(k): v for k, v in got.items()}, FIXES[what])


def _vision(what: str, path: str | None, flag: str, kind: str, model_cls: str, prefix: str, shape: tuple[int, int],
            size) -> list[Finding]:
    """ViT/ViViT: a published classifier checkpoint whose base model (``prefix``) is the encoder."""
    import transformers

    d, out = _directory(what, path, flag)
    if d is None:
        return out
    out = _model_type(what, d, (kind,))
    if out:
        return out
    if not (d / "preprocessor_config.json").is_file():
        out.append(Finding(what, str(d / "preprocessor_config.json"), "missing (the image processor settings)",
                           FIXES[what]))
    got_shape = size(d)
    if tuple(got_shape) != tuple(shape):
        out.append(Finding(what, str(d / "config.json"), f"{got_shape[0]} tokens x {got_shape[1]}, the model "
                           f"expects {shape[0]} x {shape[1]}", FIXES[what]))
    config = getattr(transformers, f"{model_cls}Config").from_pretrained(str(d))
    with torch.device("meta"):
        expected = checkpoint_shapes(getattr(transformers, f"{model_cls}Model")(config, add_pooling_layer=False))
    got, problems = _weight_shapes(what, d)
    if got is None:
        return out + problems
    base = {k.removeprefix(prefix): v for k, v in got.items() if not k.startswith(("classifier.", "pooler."))}
    return out + _compare(what, d, expected, base, FIXES[what])


def check_vit(cfg: M2UGenConfig) -> list[Finding]:
    from m2ugen_model.part_sizes import vit_shape

    return _vision("ViT", cfg.vit_dir, "--vit-dir", "vit", "ViT", "vit.", cfg.image_feat_shape, vit_shape)


def check_vivit(cfg: M2UGenConfig) -> list[Finding]:
    from m2ugen_model.part_sizes import vivit_shape

    return _vision("ViViT", cfg.vivit_dir, "--vivit-dir", "vivit", "Vivit", "vivit.", cfg.video_feat_shape,
                   lambda d: vivit_shape(d)[0])


# ---------------------------------------------------------------- decoders
def check_musicgen(cfg: M2UGenConfig) -> list[Finding]:
    from transformers import MusicgenConfig, MusicgenForConditionalGeneration

    from m2ugen_model.weights.mert import rename
    from .versions import EXTRA, check as check_versions

    what = "MusicGen"
    d, out = _directory(what, cfg.decoder_dir, "--decoder-dir")
    if d is None:
        return out
    out = _model_type(what, d, ("musicgen",))
    if out:
        return out
    if not (d / "tokenizer.json").is_file():
        if not (d / "spiece.model").is_file():
            out.append(Finding(what, str(d), "no tokenizer (tokenizer.json or spiece.model)", FIXES[what]))
        else:
            out += check_versions([EXTRA["sentencepiece"]])
    with torch.device("meta"):
        expected = checkpoint_shapes(MusicgenForConditionalGeneration(MusicgenConfig.from_pretrained(str(d))))
    got, problems = _weight_shapes(what, d)
    if got is None:
        return out + problems
    got = {rename(k): v for k, v in got.items()}
    tied = {k for k in set(expected) - set(got) if k.endswith("embed_tokens.weight")}  # saved once, tied to shared
    return out + _compare(what, d, {k: v for k, v in expected.items() if k not in tied}, got, FIXES[what])


AUDIOLDM2_PARTS = ("feature_extractor", "language_model", "projection_model", "scheduler", "text_encoder",
                   "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae", "vocoder")


def check_audioldm2(cfg: M2UGenConfig) -> list[Finding]:
    from .versions import EXTRA, check as check_versions

    what = "AudioLDM2"
    d, out = _directory(what, cfg.decoder_dir, "--decoder-dir")
    if d is None:
        return out
    out = check_versions([EXTRA["audioldm2"]])
    index = d / "model_index.json"
    if not index.is_file():
        return out + [Finding(what, str(d), "no model_index.json (not a diffusers pipeline directory)", FIXES[what])]
    name = json.loads(index.read_text()).get("_class_name")
    if name != "AudioLDM2Pipeline":
        return out + [Finding(what, str(index), f"a {name}, not an AudioLDM2Pipeline", FIXES[what])]
    for part in AUDIOLDM2_PARTS:
        sub = d / part
        if not sub.is_dir():
            out.append(Finding(what, str(sub), "missing", "finish the download (every folder of the snapshot)"))
        elif part not in ("scheduler", "feature_extractor", "tokenizer", "tokenizer_2"):
            try:
                for f in hf_weight_files(sub):
                    if f.suffix == ".safetensors":
                        safetensors_shapes(f)
            except WeightFileError as exc:
                out.append(Finding(what, str(sub), _relative(str(exc), sub), REDOWNLOAD))
    return out


def check_decoder(cfg: M2UGenConfig) -> list[Finding]:
    return check_musicgen(cfg) if cfg.decoder == "musicgen" else check_audioldm2(cfg)


# ---------------------------------------------------------------- trained checkpoints
def check_checkpoint(cfg: M2UGenConfig, path: str | Path) -> list[Finding]:
    """A released ``checkpoint.pth`` or one of ours, against a meta-device model of ``cfg``."""
    from m2ugen_model.checkpoint import (
        WEIGHTS_FILE,
        WeightsError,
        check_released_fits,
        read_released,
        released_to_ours,
        required_released,
    )
    from m2ugen_model.presets import init_model

    what = "checkpoint"
    p = Path(path)
    if not p.exists():
        return [Finding(what, str(p), "not found", FIXES[what])]
    model = init_model(cfg, device="meta", seed=None)
    expected = {n: tuple(t.shape) for n, t in model.named_parameters()}
    if p.suffix == ".pth":
        try:
            state = read_released(p)
            check_released_fits(state, cfg, p)
            mapped, _ = released_to_ours(state, cfg)
        except WeightsError as exc:
            fix = REDOWNLOAD if "truncated" in str(exc) or "unreadable" in str(exc) else FIXES[what]
            return [Finding(what, str(p), _relative(str(exc), p), fix)]
        got = {k: tuple(v.shape) for k, v in mapped.items()}
        missing = sorted(set(required_released(model)) - set(got))
        out = [Finding(what, str(p), f"{len(missing)} adapter weights missing, e.g. {missing[0]}", FIXES[what])] \
            if missing else []
        return out + _compare(what, p, {k: expected[k] for k in got if k in expected}, got, FIXES[what])
    from m2ugen_model.errors import InferenceError

    from .checkpoints import check_fits, resolve_checkpoint

    try:
        _, file = resolve_checkpoint(p)
        safetensors_shapes(file)
        check_fits(model, file)
    except WeightFileError as exc:
        return [Finding(what, str(p), str(exc), REDOWNLOAD)]
    except InferenceError as exc:
        return [Finding(what, str(p), str(exc).removeprefix(f"checkpoint {file} "),
                        f"run with the preset the checkpoint was trained with (its {WEIGHTS_FILE} fits another model)")]
    return []
