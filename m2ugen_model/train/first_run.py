"""What ``m2ugen-train --shards warehouse/`` does with nothing else given, and the checks before a 7B run.

A newcomer who has just run ``make demo`` types the command the README shows and expects it to train
something. So the tiny preset without ``--weights-dir`` is a *smoke run*: its random weights are written
once to a cache directory (``$M2UGEN_CACHE/tiny-weights``, default ``~/.cache/m2ugen/tiny-weights``), the
stage is the first one the shards have data for, and it runs a few steps with checkpoints under
``runs/tiny-smoke``. Every setting the user gave (flag or config file) still wins. With ``--preset 7b`` the
weight directories the stage needs are checked first, and all missing ones are named in one line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from m2ugen_model.train.config import DEFAULT_MIXTURES, TrainConfig
from m2ugen_model.train.errors import TrainError

CACHE_ENV = "M2UGEN_CACHE"
# A smoke run: a few steps to see the loss move and a checkpoint written. Small batches from one small
# length-bucketing pool, so it decodes ~16 examples (about half a CPU second each) instead of the 64 of the
# defaults; no worker processes to start.
SMOKE_RUN: dict[str, Any] = {"max_steps": 8, "batch_size": 2, "bucket_batches": 2, "num_workers": 0, "out": "runs/tiny-smoke"}
# The frozen encoder each dataset's input media go through (stages 1 and 3); stage 2 reads captions only.
INPUT_ENCODER = {"mucaps": "mert_dir", "muedit": "mert_dir", "muimage": "vit_dir", "muvideo": "vivit_dir"}
WEIGHT_DIRS = ("llama_dir", "mert_dir", "vit_dir", "vivit_dir", "decoder_dir")  # the order flags are listed in


def cache_dir() -> Path:
    """``$M2UGEN_CACHE``, else ``~/.cache/m2ugen``: the cache the converted MusiCNN and WordNet use too."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "m2ugen")


def tiny_weights_dir() -> Path:
    return cache_dir() / "tiny-weights"


def ensure_tiny_weights(directory: Path) -> bool:
    """Write the tiny preset's random weights to ``directory`` unless it holds them; written beside it and
    renamed, so an interrupted or concurrent first run never leaves half a model there. True if written."""
    from m2ugen_model import presets

    if (directory / presets.PRESET_FILE).is_file():
        return False
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would carry over to the final directory
        presets.write_tiny_weights(tmp)
        try:
            os.replace(tmp, directory)
        except OSError as exc:  # another run got there first, or something else is in the way
            if not (directory / presets.PRESET_FILE).is_file():
                raise TrainError(f"{directory}: exists but holds no tiny weights ({presets.PRESET_FILE}); remove it "
                                 f"or pass --weights-dir") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def default_stage(datasets: Collection[str]) -> int:
    """The first stage whose default mixture includes a dataset the shards have (stage 1 when none does, so
    the stage's own error names what it needs)."""
    for stage in sorted(DEFAULT_MIXTURES):
        if set(DEFAULT_MIXTURES[stage]) & set(datasets):
            return stage
    return 1


def is_smoke_run(values: dict[str, Any]) -> bool:
    """The tiny preset (the default) with no weights directory of the user's."""
    return values.get("preset", "tiny") == "tiny" and not values.get("weights_dir")


def fill_defaults(values: dict[str, Any], datasets: Collection[str]) -> dict[str, Any]:
    """The settings the user left out that this run fills in: the stage (from the shards) always, and for a
    smoke run the tiny weights' cache directory and ``SMOKE_RUN``."""
    filled: dict[str, Any] = {}
    if "stage" not in values:
        filled["stage"] = default_stage(datasets)
    if is_smoke_run(values):
        filled["weights_dir"] = str(tiny_weights_dir())
        filled.update({k: v for k, v in SMOKE_RUN.items() if k not in values})
    return filled


def needed_weights(stage: int, datasets: Collection[str]) -> list[str]:
    """The weight-directory settings a 7B run of ``stage`` on ``datasets`` loads: LLaMA, the encoders of the
    datasets' input media (not in stage 2, which reads captions), the music decoder (stages 2 and 3)."""
    needed = {"llama_dir"}
    if stage != 2:
        needed |= {INPUT_ENCODER[d] for d in datasets if d in INPUT_ENCODER}
    if stage > 1:
        needed.add("decoder_dir")
    return [name for name in WEIGHT_DIRS if name in needed]


def missing_weights(cfg: TrainConfig, datasets: Collection[str]) -> list[str]:
    """``--llama-dir (not given)``-style entries for every needed weight directory that is not there; none for
    the tiny preset or a ``--weights-dir`` holding a preset file (its paths are its own)."""
    from m2ugen_model.presets import PRESET_FILE

    if cfg.preset == "tiny" or (cfg.weights_dir and (Path(cfg.weights_dir) / PRESET_FILE).is_file()):
        return []
    missing = []
    for name in needed_weights(cfg.stage, datasets):
        path = getattr(cfg, name)
        flag = "--" + name.replace("_", "-")
        if not path:
            missing.append(f"{flag} (not given)")
        elif not Path(path).is_dir():
            missing.append(f"{flag} {path} (not a directory)")
    return missing


def real_run_command(cfg: TrainConfig) -> str:
    """The same training as a full 7B run on 8 GPUs (the weight directories are placeholders to fill in)."""
    dirs = " ".join(f"--{n.replace('_', '-')} /models/{n.removesuffix('_dir')}" for n in WEIGHT_DIRS)
    shards = " ".join(f"--shards {s}" for s in cfg.shards)
    return (f"torchrun --standalone --nproc_per_node 8 -m m2ugen_model.train.cli {shards} --stage {cfg.stage} "
            f"--preset 7b {dirs} --fsdp --grad-checkpointing --out runs/stage{cfg.stage}")
