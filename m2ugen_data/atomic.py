"""Atomic file writes: write to a hidden temporary name in the target directory, fsync, rename.

A reader (or a crash) therefore only ever sees the old file or the complete new one. Temporary names start
with '.' and end with '.tmp' so manifest globs (``*.parquet``) never match them, and carry the writer's host
and pid, so the next writer of the same file can tell a killed writer's leftover (``remove_dead_temps``)
from a temporary another live process is still writing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


HOST = socket.gethostname().replace("~", "-")
DEAD_TEMP_AGE_S = 86_400.0  # another host's temporary this old is a leftover (we cannot see its processes)


def temp_path_for(target: Path) -> Path:
    return target.with_name(f".{target.name}.{HOST}~{os.getpid()}~{uuid.uuid4().hex[:12]}.tmp")


def _temps(target: Path) -> list[Path]:
    """The temporaries ``temp_path_for`` named for ``target`` (any writer's)."""
    return list(target.parent.glob(f".{glob_escape(target.name)}.*.tmp")) if target.parent.is_dir() else []


def remove_temps(target: Path) -> int:
    """Delete every temporary of ``target``: for a caller that owns the file (it holds its work claim), so
    any temporary there is a killed run's. Returns how many were deleted."""
    for tmp in (temps := _temps(target)):
        tmp.unlink(missing_ok=True)
    return len(temps)


def remove_dead_temps(target: Path, max_age_s: float = DEAD_TEMP_AGE_S) -> int:
    """Delete temporaries of ``target`` whose writer is gone: a process of this host that no longer runs,
    or any temporary older than ``max_age_s``. Returns how many were deleted."""
    n = 0
    for tmp in _temps(target):
        owner = tmp.name[len(target.name) + 2 : -len(".tmp")].split("~")
        try:
            old = time.time() - tmp.stat().st_mtime > max_age_s
        except FileNotFoundError:
            continue
        if old or (len(owner) == 3 and owner[0] == HOST and not _alive(int(owner[1]))):
            tmp.unlink(missing_ok=True)
            n += 1
    return n


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed over ``target``, on error removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(target: Path | str, data: bytes) -> Path:
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target

