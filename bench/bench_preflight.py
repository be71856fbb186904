"""How long the preflight takes on full-size layouts: LLaMA-2-7B (HF, two shards), MERT-v1-330M, ViT-B/16 and
ViViT-B 16x2 with their real configs, tensor names and shapes, 32000-token tokenizer files.

No real weights can be downloaded here, so the weight files are sparse: a real safetensors header followed by
the promised number of bytes as a hole (``truncate``), which is exactly what the preflight reads (headers and
sizes, never tensor data). MERT's published file is a pickle (pytorch_model.bin), which cannot be sparse; it is
written here as model.safetensors with the same names, so its header path is what is timed. The released
checkpoint.pth (a 13 GB pickle) is not part of this bench.

    python bench/bench_preflight.py            # prints one table; nothing is left behind
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table


def sparse_safetensors(path: Path, shapes: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """A safetensors file whose header lists ``shapes`` (name -> (shape, dtype)) and whose data is a hole."""
    size = {"F16": 2, "F32": 4, "BF16": 2}
    header, offset = {}, 0
    for name, (shape, dtype) in shapes.items():
        n = size[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)


def checkpoint_names(model: torch.nn.Module, dtype: str, prefix: str = "") -> dict[str, tuple[tuple[int, ...], str]]:
    from m2ugen_model.preflight.components import checkpoint_shapes

    return {prefix + k: (v, dtype) for k, v in checkpoint_shapes(model).items()}


def write_llama(d: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    d.mkdir(parents=True)
    config = {"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
              "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008,
              "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 32,
              "num_hidden_layers": 32, "num_key_value_heads": 32, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
              "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "float16", "vocab_size": 32000}
    (d / "config.json").write_text(json.dumps(config))
    with torch.device("meta"):
        names = checkpoint_names(LlamaForCausalLM(LlamaConfig(**config)), "F16")
    keys = sorted(names)
    files = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
             "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for f, ks in files.items():
        sparse_safetensors(d / f, {k: names[k] for k in ks})
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: f for f, ks in files.items() for k in ks}}))
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"<0x{i:02X}>": 3 + i for i in range(256)}
    vocab |= {f"piece{i}": len(vocab) + i for i in range(32000 - len(vocab))}
    (d / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": vocab, "merges": []},
                                                  "added_tokens": [{"id": i, "content": t} for t, i in
                                                                   list(vocab.items())[:3]]}))
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True}))


def write_hf_dir(d: Path, config: dict, model: torch.nn.Module, prefix: str = "", extra: dict | None = None) -> None:
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(config))
    (d / "preprocessor_config.json").write_text(json.dumps(extra or {}))
    sparse_safetensors(d / "model.safetensors", checkpoint_names(model, "F32", prefix))


def main() -> None:
    from transformers import HubertModel, ViTConfig, ViTModel, VivitConfig, VivitModel

    from m2ugen_model.presets import seven_b
    from m2ugen_model.testing.published_layouts import MERT_PREPROCESSOR, mert_config
    from m2ugen_model.preflight import components
    from m2ugen_model.weights.mert import hubert_config

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_llama(root / "llama")
        mert = {**mert_config(), "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                "num_hidden_layers": 24, "conv_dim": [512] * 7}
        with torch.device("meta"):
            write_hf_dir(root / "mert", mert, HubertModel(hubert_config(mert, root)), extra=MERT_PREPROCESSOR)
            vit = ViTConfig(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                            num_attention_heads=12, intermediate_size=3072)
            write_hf_dir(root / "vit", {**vit.to_dict(), "model_type": "vit"}, ViTModel(vit, add_pooling_layer=False),
                         "vit.", {"size": 224})
            vivit = VivitConfig()
            write_hf_dir(root / "vivit", {**vivit.to_dict(), "model_type": "vivit"},
                         VivitModel(vivit, add_pooling_layer=False), "vivit.", {"crop_size": 224})
        written = time.perf_counter() - t0
        cfg = seven_b(llama_dir=str(root / "llama"), mert_dir=str(root / "mert"), vit_dir=str(root / "vit"),
                      vivit_dir=str(root / "vivit"))
        for name, check in (("LLaMA-2-7B (HF, 2 shards, 32000 tokens)", components.check_llama),
                            ("MERT-v1-330M", components.check_mert), ("ViT-B/16", components.check_vit),
                            ("ViViT-B 16x2", components.check_vivit)):
            t0 = time.perf_counter()
            found = check(cfg)
            rows.append((name, f"{time.perf_counter() - t0:.2f}", "ready" if not found else found[0].line()))
        cmd = [sys.executable, "-m", "m2ugen_model.infer.cli", "--preset", "7b", *(
            a for part in ("llama", "mert", "vit", "vivit") for a in (f"--{part}-dir", str(root / part))), "check"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        rows.append(("m2ugen-infer --preset 7b ... check (the whole command: start, imports, all of the above)",
                     f"{time.perf_counter() - t0:.2f}", proc.stdout.strip().splitlines()[0] if proc.stdout else
                     proc.stderr.strip()[-200:]))
    table = Table(title=f"preflight per component on full-size sparse layouts (written in {written:.1f} s)")
    for col in ("component", "seconds", "result"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
