"""Training checkpoints that resume exactly: trainable weights, optimizer, scheduler, step, data position, RNGs.

Layout of ``<out>/checkpoints/step_NNNNNNN/``:
- ``trainable.safetensors``: every weight the run differs from the base model in (full tensors, also under
  FSDP): the stage's trainable parameters plus the frozen ones it was initialised with (``--init-from``), so
  a chain of stages (1 -> 2 -> 3) carries the earlier stages' weights forward, one checkpoint loads the
  whole trained model, and it stays small next to the frozen 7B LLM;
- ``trainer.pt``: optimizer and scheduler state, step, the config it was trained with;
- ``rank_R.pt``: what differs per rank: data position and RNG states (python, numpy, torch, cuda).
The directory is written under a temporary name and renamed when every rank has written its part; then
``latest`` (a one-line file, itself replaced atomically) points at it. A crash leaves the previous checkpoint
intact. Everything is read back with ``torch.load(weights_only=True)``: no pickled code from disk.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from m2ugen_model.atomic import fsync_dir, write_bytes_atomic
from m2ugen_model.train.errors import TrainError

LATEST = "latest"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"bit_generator": np_state["bit_generator"], "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"], "has_gauss": n["has_gauss"], "gauss": n["gauss"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]}})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rank() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


_OPTS = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full (gathered) trainable tensors; works the same for a plain module, DDP and FSDP."""
    return {k: v.detach().contiguous() for k, v in get_model_state_dict(model, options=_OPTS).items()}


def save_checkpoint(out: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, rank_state: dict[str, Any], config: dict[str, Any],
                    carried: dict[str, torch.Tensor] | None = None) -> Path:
    """Every rank calls this (collectives inside); returns the final directory. ``carried``: frozen tensors
    inherited from an earlier stage, saved beside the trained ones (see ``carried_weights``)."""
    rank, world = _rank()
    root = Path(out) / "checkpoints"
    final = root / f"step_{step:07d}"
    tmp = root / f".step_{step:07d}.tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    weights = trainable_state(model)
    optim = get_optimizer_state_dict(model, optimizer, options=_OPTS)
    if rank == 0:
        save_file({**(carried or {}), **weights}, str(tmp / "trainable.safetensors"))
        torch.save({"optimizer": optim, "scheduler": scheduler.state_dict(), "step": step, "world": world,
                    "config": config}, tmp / "trainer.pt")
    torch.save({**rank_state, "rng": rng_state()}, tmp / f"rank_{rank}.pt")
    _barrier()
    if rank == 0:
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        fsync_dir(root)
        write_bytes_atomic(root / LATEST, f"{final.name}\n".encode())
    _barrier()
    return final


def latest_checkpoint(out: Path) -> Path | None:
    pointer = Path(out) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text(errors="replace").strip()
    if not re.fullmatch(r"step_\d+", name):  # only ever a sibling directory, never a path elsewhere
        raise TrainError(f"{pointer}: names {name[:80]!r}, not a step_NNNNNNN checkpoint directory")
    path = pointer.parent / name
    return path if path.is_dir() else None


def _reason(exc: Exception) -> str:
    """The useful line of a load error (torch's weights-only refusal leads with advice we must not follow)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(exc).__name__


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise TrainError(f"{file}: not a readable safetensors checkpoint ({_reason(exc)})") from None


def _load_pt(file: Path) -> dict[str, Any]:
    """A ``.pt`` part of a checkpoint, plain tensors and containers only; anything else is refused in one line."""
    try:
        obj = torch.load(file, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise TrainError(f"{file}: missing (an incomplete or foreign checkpoint)") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise TrainError(f"{file}: refused, not a checkpoint of plain tensors ({_reason(exc)})") from None
    if not isinstance(obj, dict):
        raise TrainError(f"{file}: refused, holds a {type(obj).__name__}, not a checkpoint dictionary")
    return obj


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint dir (its ``trainable.safetensors``) or of a ``.safetensors`` file."""
    path = Path(path)
    file = path / "trainable.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise TrainError(f"{path}: no trainable.safetensors checkpoint there")
    return _load_tensors(file)


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """Load the tensors of a checkpoint dir or a ``.safetensors`` file and return them; names that do not exist
    in the model are an error (a checkpoint for another architecture), absent names keep their values."""
    state = read_weights(path)
    names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    unknown = sorted(k for k in state if k not in names)
    if unknown:
        raise TrainError(f"{path}: {len(unknown)} tensors the model does not have, e.g. {unknown[:3]}")
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))
    return state


def carried_weights(state: dict[str, torch.Tensor], trained: set[str]) -> dict[str, torch.Tensor]:
    """The loaded tensors this stage does not train: without them in its checkpoints, stage 3 started from
    stage 2 would lose the stage-1 adapters that stage 2 was itself started from."""
    return {k: v for k, v in state.items() if k not in trained}


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, dict[str, Any]]:
    """Restore weights, optimizer, RNGs and this rank's state saved by ``save_checkpoint``; returns ``(step, this
    rank's state)``. The learning-rate schedule is not restored: it follows from the config and the step
    (``loop.schedule``)."""
    rank, world = _rank()
    trainer = _load_pt(path / "trainer.pt")
    mine = _load_pt(path / f"rank_{rank}.pt")
    try:
        if trainer["world"] != world:
            raise TrainError(f"{path}: saved with {trainer['world']} ranks, resuming with {world}: the data "
                             "position is per rank, so an exact resume needs the same world size")
        load_weights(model, path)
        set_optimizer_state_dict(model, optimizer, trainer["optimizer"],
                                 options=StateDictOptions(full_state_dict=True, strict=False))
        set_rng_state(mine.pop("rng"))
        return int(trainer["step"]), mine
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise TrainError(f"{path}: not a checkpoint this model and optimizer can resume from "
                         f"({type(exc).__name__}: {_reason(exc)})") from None
