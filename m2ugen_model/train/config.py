"""The trainer's settings in one validated object, so a config file and CLI flags cannot drift apart.

A config file (YAML, JSON or TOML) gives the base values; flags given on the command line override them.
Unknown keys are an error: a typo in a config file must not silently train with a default.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from m2ugen_model.train.errors import TrainError

# Paper stages (arXiv 2311.11255, section 4): which datasets each stage reads, and how much of each.
DEFAULT_MIXTURES: dict[int, dict[str, float]] = {
    1: {"mucaps": 1.0, "muimage": 1.0, "muvideo": 1.0},
    2: {"mucaps": 1.0},
    3: {"muedit": 1.0, "muimage": 1.0, "muvideo": 1.0},
}


class TrainConfig(BaseModel):
    """Everything a run needs; saved into every checkpoint so ``--resume`` can check it continues the same run."""

    model_config = ConfigDict(extra="forbid")

    shards: list[str] = Field(default_factory=list, description="warehouse dir, shards/ dir, or shard URLs/brace patterns")
    extra_shards: list[str] = Field(default_factory=list, description="extra instruction shards, NAME=URL or URL")
    mixture: dict[str, float] = Field(default_factory=dict, description="dataset weights; empty = the stage default")
    eval_shards: list[str] = Field(default_factory=list, description="held-out shards; empty = none")
    stage: Literal[1, 2, 3] = 1
    preset: Literal["tiny", "7b"] = "tiny"
    llama_dir: str | None = None
    mert_dir: str | None = None
    vit_dir: str | None = None
    vivit_dir: str | None = None
    decoder_dir: str | None = None
    weights_dir: str | None = None
    max_steps: int = Field(100, ge=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup: int = Field(10, ge=0)
    weight_decay: float = Field(0.02, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    clip_grad: float = Field(1.0, ge=0)
    max_len: int = Field(512, ge=8)
    truncate: bool = Field(False, description="truncate over-long texts instead of skipping them")
    audio_seconds: float = Field(10.0, gt=0)
    video_frames: int = Field(32, ge=1)
    shuffle_buffer: int = Field(256, ge=1)
    bucket_batches: int = Field(8, ge=1, description="batch by length within pools of this many batches")
    resample: bool = Field(True, description="epoch-less: draw shards with replacement; else split shards by rank/worker")
    num_workers: int = Field(2, ge=0)
    seed: int = 0
    eval_every: int = Field(0, ge=0)
    eval_batches: int = Field(4, ge=1)
    save_every: int = Field(0, ge=0)
    log_every: int = Field(1, ge=1)
    out: str = "runs/m2ugen"
    resume: bool = False
    init_from: str | None = None
    compile: bool = False
    grad_checkpointing: bool = False
    fsdp: bool = False
    logger: Literal["none", "tensorboard", "wandb"] = "none"
    progress: bool = True
    dry_run: bool = False


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse YAML/JSON/TOML by extension; a broken file is a one-line error naming it."""
    path = Path(path)
    try:
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise TrainError(f"{path}: config file must end in .yaml, .yml, .json or .toml")
    except TrainError:
        raise
    except Exception as exc:  # OSError, JSON/TOML ValueErrors, yaml.YAMLError (not a ValueError)
        raise TrainError(f"{path}: unreadable config file ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise TrainError(f"{path}: config file must hold a mapping of settings")
    return data


def given_settings(config_file: str | Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """File values first, then every CLI flag the user actually gave (``None`` means 'not given')."""
    values = read_config_file(config_file) if config_file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def build_config(config_file: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    return validate_config(given_settings(config_file, overrides))


def validate_config(values: dict[str, Any]) -> TrainConfig:
    """The settings as a ``TrainConfig``; the first invalid one is a one-line error naming it."""
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TrainError(f"bad setting {where!r}: {first['msg']}") from exc
