"""Content checksums of derived state (caches, indexes), so a damaged file is found when the state is loaded
instead of crashing a compiled kernel or quietly giving a wrong result that the next save makes permanent.

A state directory records its files' checksums in ``checksums.json``, written into the directory before the
directory is renamed into place, so the record and the files are replaced together. CRC-32 for state that is
rewritten on every run (a few hundred MB at ~3 GB/s, several times sha256's speed here; it catches every
single-bit and short burst error, what disks and stray writes do; nobody able to rewrite the files is kept
out by any checksum kept beside them); sha256 where the project already records it (shards).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

CHECKSUMS_NAME = "checksums.json"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_crc32(path: Path) -> str:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def write_checksums(directory: Path) -> None:
    """Record the CRC-32 of every file in ``directory`` (not yet fsynced: the caller syncs the lot)."""
    body = {f.name: file_crc32(f) for f in sorted(directory.iterdir()) if f.is_file() and f.name != CHECKSUMS_NAME}
    (directory / CHECKSUMS_NAME).write_text(json.dumps(body, indent=0, sort_keys=True))


def damage(directory: Path) -> tuple[str, str] | None:
    """(file name, what is wrong) for the first file of ``directory`` that is missing, unrecorded or not what
    ``write_checksums`` recorded; None when every file is intact."""
    try:
        body = json.loads((directory / CHECKSUMS_NAME).read_text())
    except FileNotFoundError:
        return CHECKSUMS_NAME, "missing (written by an older version, or deleted)"
    except (OSError, ValueError) as e:
        return CHECKSUMS_NAME, f"unreadable ({e})"
    if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
        return CHECKSUMS_NAME, "not a checksum record"
    present = {f.name for f in directory.iterdir() if f.is_file() and f.name != CHECKSUMS_NAME}
    for name in sorted(present | set(body)):
        if name not in body:
            return name, "not in the checksum record"
        try:
            if file_crc32(directory / name) != body[name]:
                return name, "content differs from its recorded checksum"
        except FileNotFoundError:
            return name, "missing"
        except OSError as e:
            return name, f"unreadable ({e.strerror or e})"
    return None
