"""Read weight files safely and cheaply, with one line naming the file for each way they go wrong.

- ``.pth`` (released checkpoints, Meta's consolidated shards, MERT's ``pytorch_model.bin``): always
  ``torch.load(weights_only=True)``. The released M2UGen/MU-LLaMA ``checkpoint.pth`` pickles its training
  arguments as an ``argparse.Namespace`` beside the tensors, so that one class is allowed and nothing else:
  any other class in a file is named and refused before unpickling. Zip-format files are memory-mapped, so
  a multi-GB checkpoint costs only the tensors that are actually read.
- ``.safetensors``: the header is checked against the file size first, so a partial download is one line
  instead of a crash deep inside the loader.
"""

from __future__ import annotations

import argparse
import json
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

# What the published .pth files pickle besides tensors and plain containers (see the module docstring).
ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)
_ALLOWED_NAMES = {f"{g.__module__}.{g.__qualname__}" for g in ALLOWED_GLOBALS}


class WeightFileError(ValueError):
    """A weight file that cannot be read as it is: truncated, not a checkpoint, or carrying code."""


def _size(path: Path) -> int:
    if not path.is_file():
        raise WeightFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise WeightFileError(f"{path}: empty file (an interrupted download?); download it again")
    return size


def _refuse_unknown_globals(path: Path) -> None:
    """Name any class the pickle would need beyond tensors, containers and the allowlist."""
    unsafe = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) if g not in _ALLOWED_NAMES]
    if unsafe:
        raise WeightFileError(
            f"{path}: refused, it pickles {', '.join(sorted(unsafe)[:3])} (only tensors, plain containers and "
            f"argparse.Namespace are loaded); re-save its state dict with torch.save(model.state_dict(), ...)")


def is_zip_checkpoint(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as f:
        return f.read(len(magic)) == magic


def load_pth(path: str | Path, mmap: bool = True) -> Any:
    """``torch.load(weights_only=True)`` with the released checkpoints' one extra class allowed; memory-mapped
    when the file is in torch's zip format (torch >= 1.6 writes it), read whole otherwise."""
    p = Path(path)
    _size(p)
    zipped = is_zip_checkpoint(p)
    if zipped:
        try:
            _refuse_unknown_globals(p)
        except (RuntimeError, zipfile.BadZipFile) as exc:
            raise WeightFileError(f"{p}: unreadable torch checkpoint ({_first_line(exc)}); download it again") from None
    elif _starts_with(p, b"PK\x03\x04"):  # a zip signature but no central directory: the end is missing
        raise WeightFileError(f"{p}: truncated (its zip directory is missing); download it again")
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            return torch.load(str(p), map_location="cpu", weights_only=True, mmap=mmap and zipped)
    except WeightFileError:
        raise
    except Exception as exc:  # pickle, zip and EOF errors all mean the same thing to the user
        text = _first_line(exc)
        if "Unsupported global" in str(exc):
            name = str(exc).split("GLOBAL ", 1)[-1].split(" ", 1)[0]
            raise WeightFileError(f"{p}: refused, it pickles {name} (only tensors, plain containers and "
                                  "argparse.Namespace are loaded)") from None
        raise WeightFileError(f"{p}: unreadable torch checkpoint ({text}); it may be truncated, download it again") \
            from None


def read_config(directory: str | Path, expected: str = "") -> dict[str, Any]:
    """``directory/config.json`` as a dict; a missing or unparsable one is one line (``expected``: what the
    directory should have been)."""
    f = Path(directory) / "config.json"
    if not f.is_file():
        raise WeightFileError(f"{directory}: no config.json" + (f" (expected {expected})" if expected else ""))
    try:
        return json.loads(f.read_text())
    except ValueError as exc:
        raise WeightFileError(f"{f}: not JSON ({exc})") from None


def state_dict_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a loaded .pth: a bare state dict or the released wrapper's ``model`` entry."""
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightFileError(f"{path}: not a state dict (expected name -> tensor, or a dict with a 'model' entry)")
    return state


def safetensors_shapes(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) from a .safetensors header, after checking that the file holds every byte the
    header promises (a partial download is caught here, not mid-load)."""
    p = Path(path)
    size = _size(p)
    with p.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightFileError(f"{p}: truncated ({size} bytes, no safetensors header); download it again")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100_000_000:
            raise WeightFileError(f"{p}: truncated or not a safetensors file (header of {n} bytes in a "
                                  f"{size}-byte file); download it again")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise WeightFileError(f"{p}: not a safetensors file (unreadable header)") from None
    header.pop("__metadata__", None)
    end = max((int(v["data_offsets"][1]) for v in header.values()), default=0)
    if 8 + n + end > size:
        raise WeightFileError(f"{p}: truncated ({size} bytes, the header needs {8 + n + end}); download it again")
    return {k: (tuple(v["shape"]), str(v["dtype"])) for k, v in header.items()}


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of any weight file, reading no tensor data (.pth files are memory-mapped)."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return {k: shape for k, (shape, _) in safetensors_shapes(p).items()}
    return {k: tuple(v.shape) for k, v in state_dict_of(load_pth(p), p).items()}


def read_tensors(files: Iterable[Path]) -> dict[str, torch.Tensor]:
    """Every tensor of the given .safetensors/.bin/.pth files, each file checked first."""
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            safetensors_shapes(f)
            out.update(load_file(str(f)))
        else:
            out.update(state_dict_of(load_pth(f), f))
    return out


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(exc).__name__


_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE = ("model.safetensors", "pytorch_model.bin")


def hf_weight_files(directory: str | Path) -> list[Path]:
    """The weight files of a transformers-style directory: an index's shards (each must exist), else the single
    file, else every ``*.safetensors`` (preferred) or ``*.bin``. Raises naming the directory when none is there."""
    d = Path(directory)
    for index in _INDEXES:
        f = d / index
        if f.is_file():
            try:
                shards = sorted(set(json.loads(f.read_text())["weight_map"].values()))
            except (ValueError, KeyError, AttributeError):
                raise WeightFileError(f"{f}: not a weight index (no weight_map)") from None
            absent = [s for s in shards if not (d / s).is_file()]
            if absent:
                raise WeightFileError(f"{d}: {f.name} lists {absent[0]}, which is not there "
                                      f"({len(absent)} of {len(shards)} shards missing); finish the download")
            return [d / s for s in shards]
    for name in _SINGLE:
        if (d / name).is_file():
            return [d / name]
    for pattern in ("*.safetensors", "*.bin"):
        found = sorted(d.glob(pattern))
        if found:
            return found
    raise WeightFileError(f"{d}: no weights (model.safetensors, pytorch_model.bin or an index of shards)")
