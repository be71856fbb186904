"""Atomic file writes for the model side: a hidden temporary beside the target is filled, fsynced and renamed
over it, then the directory is fsynced, so a crash leaves the old file or the complete new one.

The pipeline has its own (``m2ugen_data.atomic``, with leftover bookkeeping for many writers of one
warehouse); ``m2ugen_model`` does not import the pipeline, so this is the model's one writer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename (or a new file) in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, write: Callable[[str], object]) -> None:
    """``write(tmp)`` fills a temporary file named beside ``path`` (any writer that takes a file name:
    safetensors, soundfile, ...); it is fsynced and renamed over ``path``. On an error the temporary goes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(str(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: Path(tmp).write_bytes(data))
