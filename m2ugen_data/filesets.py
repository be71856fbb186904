"""Which Parquet files of a manifest directory are live: the reader's side of compaction.

Why this exists: compaction (``compact.py``) merges many small batches into a few large files. Readers glob a
directory, and no filesystem can swap a set of files atomically, so for a while both the old batches and
the merged files exist. Each compaction therefore first writes a record, ``.compactions/<id>.json`` in the
manifest directory, naming its parts and the files it replaces (name, inode, size and mtime, so a batch
rewritten under the same name after it was merged is *not* hidden), and only then renames its parts into
place. A compaction counts once all its parts are visible; from then on the files it replaces are hidden from
readers until they are deleted, after which the record is deleted too and its parts are ordinary files.
Parts of a compaction not (yet) complete are hidden. Every reader that lists files through ``scan`` sees
each row exactly once, whenever it looks; the record lives in its own file, not in the parts' footers, so
readers pay for it only while it matters.

A record is derived state that readers trust to hide rows, so it carries a sha256 of its body and is checked
for shape when read. A damaged one (unreadable, a field missing or of the wrong type, a value that no longer
matches its checksum) is reported in one warning line per process, and its compaction is read as *damaged*:
its parts (``compact-<id>-*``) are live and it hides nothing, so no row is lost, though rows of batches it
merged may be read twice until the next compaction rebuilds (``compact._rebuild``: it merges those parts with
every live file, exact duplicates dropped, and deletes the record). Records without a checksum (written
before it existed) are accepted when their shape is right.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
COMPACT_PREFIX = "compact-"
RECORDS_DIR = ".compactions"
_FILE_ID_TYPES = {"name": str, "ino": int, "size": int, "mtime_ns": int}
_warned: set[Path] = set()  # damaged records already reported by this process


@dataclass(frozen=True)
class FileId:
    """What identifies one version of a file: a rewrite under the same name changes the inode and mtime."""

    name: str
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileId:
        st = path.stat()
        return cls(path.name, st.st_ino, st.st_size, st.st_mtime_ns)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "ino": self.ino, "size": self.size, "mtime_ns": self.mtime_ns}


@dataclass
class Compaction:
    """One compaction as its record describes it."""

    id: str
    record: Path
    parts: list[str]
    supersedes: list[FileId]
    present: list[Path] = field(default_factory=list)  # its part files on disk now
    lingering: list[Path] = field(default_factory=list)  # replaced files still on disk (same identity)
    damaged: bool = False  # the record could not be trusted: parts are whatever compact-<id>-* is on disk

    @property
    def complete(self) -> bool:
        return len(self.present) == len(self.parts)


@dataclass
class FileSet:
    live: list[Path]  # what readers read, sorted by name
    superseded: list[Path]  # present but replaced by a complete compaction
    incomplete: list[Path]  # parts of a compaction not (yet) fully published
    compactions: list[Compaction]


def record_path(directory: Path, compaction_id: str) -> Path:
    return directory / RECORDS_DIR / f"{compaction_id}.json"


def _digest(body: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_record(directory: Path, compaction_id: str, parts: list[str], supersedes: list[FileId]) -> Path:
    from m2ugen_data.atomic import write_bytes_atomic

    body: dict[str, object] = {"id": compaction_id, "parts": parts, "supersedes": [f.to_json() for f in supersedes]}
    body["sha256"] = _digest(body)
    return write_bytes_atomic(record_path(directory, compaction_id), json.dumps(body).encode())


def _parse(path: Path, data: bytes) -> Compaction:
    """The compaction ``data`` records; ``ValueError`` saying what is wrong unless it is whole and well-formed."""
    body = json.loads(data)
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    cid, parts, supersedes = body.get("id"), body.get("parts"), body.get("supersedes")
    if cid != path.stem:
        raise ValueError("its id is not its file's name")
    if not isinstance(parts, list) or not all(isinstance(p, str) and p.startswith(f"{COMPACT_PREFIX}{cid}-") for p in parts):
        raise ValueError("'parts' is not a list of this compaction's part names")
    if not isinstance(supersedes, list) or not all(
        isinstance(f, dict) and f.keys() == _FILE_ID_TYPES.keys()
        and all(type(f[k]) is t for k, t in _FILE_ID_TYPES.items()) for f in supersedes
    ):  # fmt: skip
        raise ValueError("'supersedes' is not a list of file identities")
    recorded = body.pop("sha256", None)
    if recorded is not None and recorded != _digest(body):
        raise ValueError("content differs from its sha256")
    return Compaction(cid, path, parts, [FileId(**f) for f in supersedes])


def _records(directory: Path) -> list[Compaction]:
    out = []
    rdir = directory / RECORDS_DIR
    if not rdir.is_dir():
        return out
    for entry in sorted(os.scandir(rdir), key=lambda e: e.name):
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # deleted by a purge while we looked: its parts are ordinary files now
        except OSError as e:
            out.append(_damaged(path, f"unreadable ({e.strerror or e})"))
            continue
        try:
            out.append(_parse(path, data))
        except (ValueError, UnicodeDecodeError) as e:
            out.append(_damaged(path, str(e).splitlines()[0]))
    return out


def _damaged(path: Path, why: str) -> Compaction:
    if path not in _warned:
        _warned.add(path)
        log.warning(
            "compaction record %s: %s; reading its parts and hiding nothing until the next compaction rebuilds it",
            path, why,
        )  # fmt: skip
    return Compaction(path.stem, path, [], [], damaged=True)


def scan(directory: Path) -> FileSet:
    """List a manifest directory and split it into live, superseded and incomplete files.

    Cheap with many batches: one directory listing, plus the records of compactions still in their grace
    period (usually none) and a stat of each file they name. The records are read before and after the
    listing, and the listing taken again if they changed: a record is written before its parts appear and
    deleted after its replaced files are gone, so with the same records on both sides the listing agrees
    with them.
    """
    if not directory.is_dir():
        return FileSet([], [], [], [])
    compactions = _records(directory)
    for _ in range(20):
        names = sorted(
            e.name for e in os.scandir(directory) if e.name.endswith(".parquet") and not e.name.startswith(".")
        )
        after = _records(directory)
        if [c.id for c in after] == [c.id for c in compactions]:
            break
        compactions = after
    present = set(names)
    hidden: set[str] = set()
    incomplete: list[Path] = []
    for c in compactions:
        if c.damaged:
            c.parts = [n for n in names if n.startswith(f"{COMPACT_PREFIX}{c.id}-")]
        c.present = [directory / p for p in c.parts if p in present]
        if not c.complete:
            incomplete.extend(c.present)
            continue
        for fid in c.supersedes:
            try:
                if fid.name in present and FileId.of(directory / fid.name) == fid:
                    hidden.add(fid.name)
                    c.lingering.append(directory / fid.name)
            except FileNotFoundError:
                pass
    skip = hidden | {p.name for p in incomplete}
    return FileSet(
        live=[directory / n for n in names if n not in skip],
        superseded=[directory / n for n in names if n in hidden],
        incomplete=sorted(incomplete),
        compactions=compactions,
    )
