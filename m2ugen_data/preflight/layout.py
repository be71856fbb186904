"""Is a model directory whole and the model it claims to be? Read from its files only: config.json, the
tokenizer files, the weight files' headers. Nothing is imported from the model and no tensor is read, so a
login node answers in milliseconds for a 7B checkpoint.

Truncation is what an interrupted copy leaves: a safetensors file whose header promises more bytes than the
file holds, a zip-format ``.bin`` whose central directory (written last) is missing, an index that names a
shard that is not there.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from m2ugen_data.preflight import Finding

# Tokenizer files, by scheme: any one complete group makes a tokenizer (fast JSON, GPT-2 BPE, WordPiece,
# SentencePiece).
TOKENIZER_FILE_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("vocab.txt",), ("tokenizer.model",))
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_config(model_dir: Path, what: str) -> tuple[dict[str, Any] | None, list[Finding]]:
    """``config.json`` as a dict, or the finding that says why there is none."""
    path = Path(model_dir) / "config.json"
    if not Path(model_dir).is_dir():
        return None, [Finding(what, str(model_dir), "no such directory", "pass the directory that holds config.json")]
    if not path.is_file():
        return None, [Finding(what, str(path), "config.json missing: not a model directory",
                              "pass a directory written by save_pretrained or downloaded with `hf download`")]
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, [Finding(what, str(path), f"config.json unreadable ({str(e).splitlines()[0]})",
                              "copy the file again from the model's repository")]
    if not isinstance(config, dict):
        return None, [Finding(what, str(path), "config.json is not a JSON object", "copy the file again")]
    return config, []


def architectures(config: dict[str, Any]) -> list[str]:
    return [a for a in config.get("architectures") or [] if isinstance(a, str)]


def check_tokenizer(model_dir: Path, what: str) -> list[Finding]:
    d = Path(model_dir)
    if any(all((d / f).is_file() for f in group) for group in TOKENIZER_FILE_SETS):
        return []
    wanted = " or ".join("+".join(g) for g in TOKENIZER_FILE_SETS)
    return [Finding(what, str(d), f"no tokenizer ({wanted} missing)",
                    "copy the tokenizer files from the model's repository into this directory")]


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be whole, from its header and size (None when it can)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"truncated safetensors: {size} bytes, shorter than its header"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return f"truncated safetensors: header of {n} bytes in a {size}-byte file"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return "corrupt safetensors: the header is not JSON"
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        return f"truncated safetensors: {size} bytes, its header needs {8 + n + end}"
    return None


def _bin_problem(path: Path) -> str | None:
    """A zip-format torch file must have its central directory; the legacy pickle format is not checked."""
    with path.open("rb") as f:
        magic = f.read(4)
    if magic == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        return f"truncated torch file: {path.stat().st_size} bytes and no zip directory at its end"
    return None


def weight_file_problem(path: Path) -> str | None:
    if path.suffix == ".safetensors":
        return _safetensors_problem(path)
    if path.suffix in (".bin", ".pt", ".pth"):
        return _bin_problem(path)
    return None


def weight_files(model_dir: Path) -> tuple[list[Path], list[Finding], str | None]:
    """The weight files a loader would read (from the index when sharded), findings for listed shards that
    are missing, and the index (or file) name used."""
    d = Path(model_dir)
    for index in WEIGHT_INDEXES:
        if (d / index).is_file():
            try:
                shards = sorted(set(json.loads((d / index).read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError) as e:
                return [], [Finding("weights", str(d / index), f"unreadable index ({type(e).__name__})",
                                    "copy the index file again")], index
            missing = [s for s in shards if not (d / s).is_file()]
            found = [Finding("weights", str(d / s), f"shard listed in {index} is missing",
                             "copy the missing shard") for s in missing]
            return [d / s for s in shards if s not in missing], found, index
    for name in WEIGHT_FILES:
        if (d / name).is_file():
            return [d / name], [], name
    return [], [], None


def check_weights(model_dir: Path, what: str) -> list[Finding]:
    d = Path(model_dir)
    files, findings, source = weight_files(d)
    if source is None:
        return [Finding(what, str(d), f"no weights ({' / '.join(WEIGHT_INDEXES + WEIGHT_FILES)} missing)",
                        "copy the weight files from the model's repository")]
    findings = [Finding(what, f.path, f.problem, f.fix) for f in findings]
    for path in files:
        problem = weight_file_problem(path)
        if problem:
            findings.append(Finding(what, str(path), problem, "the copy was interrupted: copy this file again"))
    return findings


def check_model_dir(
    model_dir: Path | str, what: str, expect: Callable[[dict[str, Any], Path], list[Finding]],
    *, tokenizer: bool = True, weights: bool = True,
) -> list[Finding]:
    """Every problem with one model directory: the config, what ``expect`` asks of it, tokenizer, weights."""
    d = Path(model_dir).expanduser()
    config, findings = read_config(d, what)
    if config is None:
        return findings
    findings = expect(config, d / "config.json")
    if tokenizer:
        findings += check_tokenizer(d, what)
    if weights:
        findings += check_weights(d, what)
    return findings
