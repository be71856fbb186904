"""Read shards safely and check them against the ``shards`` manifest.

A shard may come from elsewhere (a download, a colleague's bucket), so every member is checked before its
bytes are used: regular files only (no symlinks, hard links, devices, directories), names of the form
``<key>.<field>`` with the writer's key and field rules, which also rules out absolute paths and ``..``.
Nothing is ever extracted to disk. ``check_member_name`` doubles as a ``select_files`` for
``webdataset.WebDataset`` so the trainer's pipeline applies the same rule (WebDataset itself silently skips
non-regular members, which is safe, and extracts nothing).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from m2ugen_data.checksums import file_sha256
from m2ugen_data.clean.gate import clip_ids_of_key, load_gate
from m2ugen_data.clean.split import DATASETS, EVAL_SUFFIX
from m2ugen_data.errors import M2UGenError
from m2ugen_data.shards.build import shard_dir, shard_files
from m2ugen_data.shards.origin import expected_sample_dataset
from m2ugen_data.shards.tar_writer import FIELD_RE, KEY_RE, validate_dataset
from m2ugen_data.warehouse import Warehouse

MAX_MEMBER_BYTES = 2 << 30


class UnsafeShardError(M2UGenError):
    """A shard member that must not be read: a link, a device, a path escape, or a malformed name."""


class ShardFormatError(M2UGenError):
    """A shard that is not a valid tar or breaks the one-sample-per-key layout."""


def check_member_name(name: str) -> bool:
    """Raise ``UnsafeShardError`` unless ``name`` is ``<key>.<field>``; returns True (usable as a predicate)."""
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        raise UnsafeShardError(f"absolute path in shard member {name!r}")
    if ".." in PurePosixPath(name).parts or "\\" in name or "\x00" in name:
        raise UnsafeShardError(f"path traversal in shard member {name!r}")
    key, _, fld = name.partition(".")
    if not KEY_RE.fullmatch(key) or not FIELD_RE.fullmatch(fld):
        raise UnsafeShardError(f"shard member {name!r} is not <key>.<field>")
    return True


def _check_member(info: tarfile.TarInfo) -> tuple[str, str]:
    if not info.isreg():
        kind = "symlink" if info.issym() else "hard link" if info.islnk() else "device" if info.isdev() else "non-file"
        raise UnsafeShardError(f"{kind} member {info.name!r} in shard")
    check_member_name(info.name)
    if info.size > MAX_MEMBER_BYTES:
        raise UnsafeShardError(f"shard member {info.name!r} is {info.size} bytes (limit {MAX_MEMBER_BYTES})")
    key, _, fld = info.name.partition(".")
    return key, fld


def iter_shard_samples(path: str | Path) -> Iterator[dict[str, bytes | str]]:
    """Yield ``{"__key__": key, field: bytes, ...}`` per sample, validating every member first."""
    path = Path(path)
    seen: set[str] = set()
    current: dict[str, bytes | str] | None = None
    try:
        with tarfile.open(path, mode="r|") as tar:
            for info in tar:
                key, fld = _check_member(info)
                if current is None or current["__key__"] != key:
                    if key in seen:
                        raise ShardFormatError(f"{path}: key {key!r} appears in two places")
                    if current is not None:
                        yield current
                    seen.add(key)
                    current = {"__key__": key}
                if fld in current:
                    raise ShardFormatError(f"{path}: duplicate member {info.name!r}")
                fh = tar.extractfile(info)
                current[fld] = fh.read() if fh is not None else b""
    except tarfile.TarError as e:
        raise ShardFormatError(f"{path}: not a readable tar ({e})") from e
    except OSError as e:
        raise ShardFormatError(f"{path}: {e.strerror or e}") from e
    if current is not None:
        yield current


def iter_shard_keys(path: str | Path) -> Iterator[str]:
    """Each sample key of a shard once, in order, from the tar headers alone (member data is seeked over,
    never read): what the music-disjointness check needs from other datasets' shards. Members are checked
    as above."""
    path = Path(path)
    last: str | None = None
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                key, _ = _check_member(info)
                if key != last:
                    last = key
                    yield key
    except tarfile.TarError as e:
        raise ShardFormatError(f"{path}: not a readable tar ({e})") from e
    except OSError as e:
        raise ShardFormatError(f"{path}: {e.strerror or e}") from e


def shard_paths(wh: Warehouse, dataset: str) -> list[Path]:
    """Absolute shard paths the manifest lists for ``dataset``, in order (hand these to ``wds.WebDataset``)."""
    validate_dataset(dataset)
    con = wh.connect()
    try:
        rels = con.execute("SELECT path FROM shards_latest WHERE dataset = $1 ORDER BY path", [dataset]).fetchall()
    finally:
        con.close()
    return [wh.root / r[0] for r in rels]


@dataclass
class ShardCheck:
    dataset: str
    shards: int = 0
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_shards(wh: Warehouse, dataset: str, *, deep: bool = True) -> ShardCheck:
    """Compare every manifest row with its file (size, sha256; with ``deep`` also sample count and keys,
    parsing every member, and that every sample is of the dataset its writer makes: ``origin.py``), report
    keys held by two shards and shard files the manifest does not list, and check the samples against the
    warehouse's state (``clean.gate.shard_problems``: held-out videos, evaluation sets, duplicates)."""
    validate_dataset(dataset)
    con = wh.connect()
    try:
        rows = con.sql(
            "SELECT * FROM shards_latest WHERE dataset = $1 ORDER BY path", params=[dataset]
        ).to_arrow_table().to_pylist()
    finally:
        con.close()
    check = ShardCheck(dataset)
    expected = expected_sample_dataset(wh, dataset)
    listed = set()
    keys_of: dict[str, list[str]] = {}
    for row in rows:
        path = wh.root / row["path"]
        listed.add(path)
        check.shards += 1
        if not path.is_file():
            check.problems.append(f"{row['path']}: listed in the manifest but missing")
            continue
        if path.stat().st_size != row["bytes"]:
            check.problems.append(f"{row['path']}: {path.stat().st_size} bytes, manifest says {row['bytes']}")
            continue
        if file_sha256(path) != row["sha256"]:
            check.problems.append(f"{row['path']}: sha256 differs from the manifest")
            continue
        try:
            samples = list(_keys_and_origins(path)) if deep else [(k, None) for k in iter_shard_keys(path)]
        except M2UGenError as e:
            check.problems.append(f"{row['path']}: {e}")
            continue
        keys = [k for k, _ in samples]
        if deep and expected is not None:
            check.problems.extend(_foreign_samples(row["path"], dataset, expected, samples))
        keys_of[row["path"]] = keys
        if not deep:
            check.samples += row["samples"]
            continue
        check.samples += len(keys)
        if len(keys) != row["samples"]:
            check.problems.append(f"{row['path']}: {len(keys)} samples, manifest says {row['samples']}")
        elif keys and (keys[0], keys[-1]) != (row["first_key"], row["last_key"]):
            check.problems.append(f"{row['path']}: first/last key differ from the manifest")
    check.problems.extend(duplicate_keys(keys_of))
    directory = shard_dir(wh, dataset)
    if directory.is_dir():
        for path in shard_files(directory, dataset):
            if path not in listed:
                check.problems.append(f"{path.relative_to(wh.root).as_posix()}: on disk but not in the manifest")
    check.problems.extend(state_problems(wh, dataset, keys_of))
    return check


def duplicate_keys(keys: dict[str, list[str]]) -> list[str]:
    """One line per shard holding keys that an earlier shard (in ``keys``' order) holds too: a reader would
    train on those samples twice."""
    first: dict[str, str] = {}
    again: dict[tuple[str, str], list[str]] = {}
    for shard, ks in keys.items():
        for k in ks:
            if first.setdefault(k, shard) != shard:
                again.setdefault((shard, first[k]), []).append(k)
    return [f"{shard}: {len(ks)} sample key(s) also in {other}, e.g. {ks[0]}" for (shard, other), ks in again.items()]


def _keys_and_origins(path: Path) -> Iterator[tuple[str, object]]:
    """Each sample's key and the ``dataset`` field of its JSON (None when it has none or no JSON)."""
    for sample in iter_shard_samples(path):
        try:
            meta = json.loads(sample.get("json", b"{}"))
        except (ValueError, TypeError):
            meta = None
        yield str(sample["__key__"]), meta.get("dataset") if isinstance(meta, dict) else None


def _foreign_samples(shard: str, dataset: str, expected: str, samples: list[tuple[str, object]]) -> list[str]:
    """One line per other writer found in the shard: samples of another dataset than ``dataset`` holds
    (``origin.expected_sample_dataset``), e.g. a conversion written over a pipeline dataset."""
    found: dict[object, list[str]] = {}
    for key, origin in samples:
        if origin != expected:
            found.setdefault(origin, []).append(key)
    return [f"{shard}: {len(keys)} sample(s) of dataset {origin!r:.40} (first {keys[0]}), but {dataset} holds "
            f"{expected!r} samples: another writer replaced its shards" for origin, keys in found.items()]


_WHY = {
    "contaminated": "clips found in an evaluation set",
    "duplicate": "non-canonical near-duplicates (the dataset keeps another member of their group)",
    "duplicate_pair": "pairs of two members of one near-duplicate group",
    "held_out": "held-out (evaluation) videos",
    "not_held_out": "training videos",
    "straddling": "pairs straddling train and eval",
    "group_elsewhere": "clips whose near-duplicate group is also on the other side",
}


def state_problems(wh: Warehouse, dataset: str, keys: dict[str, list[str]]) -> list[str]:
    """What ``shards verify`` reports about the samples of ``dataset``'s shards (``keys``: shard path ->
    its sample keys) against the warehouse's state: a training shard holding an evaluation video, a clip of
    an evaluation set, a dropped duplicate, or a member of a group that also sits in an eval shard (and the
    reverse for ``<dataset>_eval``). One line per shard and reason, with the first key."""
    side = "eval" if dataset.endswith(EVAL_SUFFIX) else "train"
    gate = load_gate(wh, dataset)
    others = [f"{d}{EVAL_SUFFIX}" if side == "train" else d for d in DATASETS]
    other_groups = {gate.group_of.get(c, c) for o in others for p in shard_paths(wh, o) if p.is_file()
                    for k in iter_shard_keys(p) for c in clip_ids_of_key(o, k)}
    problems = []
    for shard, ks in keys.items():
        found: dict[str, list[str]] = {}
        for k in ks:
            clips = clip_ids_of_key(dataset, k)
            why = gate.reason(clips, side)
            if why is None and any(gate.group_of.get(c, c) in other_groups for c in clips):
                why = "group_elsewhere"
            if why is not None:
                found.setdefault(why, []).append(k)
        for why, bad in found.items():
            problems.append(f"{shard}: {len(bad)} sample(s) with {_WHY[why]} in a {side} shard, e.g. {bad[0]}")
    return problems

