"""What every converter shares: reading the source file, counting and recording rejects, writing the shards.

A converter is a generator of ``Sample``s that calls ``Rejects.add`` for every source record it refuses (with
a short reason and the record's index), so nothing is dropped silently. ``write_converted`` writes the
samples as the dataset's complete shard set in the warehouse (``shards/<name>/<name>-NNNNNN.tar`` + the
``shards`` manifest, through the pipeline's deterministic writer: reruns give the same bytes) and a
``conversion.json`` report beside them (counts, reasons, the first rejects) for the user and for audits.
Converters read media only through ``input_file`` (no link out of the input folder) and never write over
a dataset another writer made (``refuse_overwrite``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from m2ugen_data.atomic import write_bytes_atomic
from m2ugen_data.errors import M2UGenError
from m2ugen_data.shards.build import shard_dir, shard_files, write_dataset_shards
from m2ugen_data.shards.origin import CONVERSION_REPORT, conversion_source, is_pipeline_dataset
from m2ugen_data.shards.read import MAX_MEMBER_BYTES, shard_paths
from m2ugen_data.shards.sample_schema import dump_sample_json
from m2ugen_data.shards.tar_writer import Sample
from m2ugen_data.warehouse import Warehouse

MAX_LISTED_REJECTS = 1000
OUTSIDE_INPUT = "outside_input_folder"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class ConvertError(M2UGenError):
    """A source file that cannot be converted at all (missing, not JSON, wrong layout)."""


@dataclass
class Rejects:
    """Rejected source records: counted by reason, the first ``MAX_LISTED_REJECTS`` listed with their index."""

    counts: Counter[str] = field(default_factory=Counter)
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, where: str, reason: str, detail: str = "") -> None:
        self.counts[reason] += 1
        if len(self.listed) < MAX_LISTED_REJECTS:
            self.listed.append({"record": where, "reason": reason, **({"detail": detail} if detail else {})})

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Conversion:
    dataset: str
    shards: list[dict[str, Any]]
    rejects: Rejects
    report: Path

    @property
    def samples(self) -> int:
        return sum(r["samples"] for r in self.shards)


def key_prefix(source: Path) -> str:
    """A key-safe prefix from the source file's stem (``FinetuneMusicQA.json`` -> ``FinetuneMusicQA``), so
    records from two files converted into one dataset never share a key."""
    return _KEY_UNSAFE.sub("_", source.stem)[:40].strip("_") or "src"


def safe_child(root: Path, name: Any) -> Path | None:
    """``root/name`` for a plain relative name from the source (no absolute path, no '..'), else None."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return None
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts:
        return None
    return root / rel


def input_file(root: Path, path: Path, kind: str) -> tuple[Path | None, str | None]:
    """(the regular file ``path`` names with every link resolved, None), or (None, why not):
    ``outside_input_folder`` when the resolved file is not inside ``root`` (itself resolved): a symlink in an
    input folder (``audios/x.wav -> ~/.ssh/id_rsa``, ``audios/root -> /``) must not pull a file from elsewhere
    into a shard, while a link that stays inside is fine; ``<kind>_missing``; ``file_too_large`` over the
    shard reader's member limit (a shard holding it could not be read back). Callers read the resolved path,
    so a link swapped after this check is not followed."""
    try:
        real = path.resolve()
        inside = real.is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a link loop
        return None, OUTSIDE_INPUT
    if not inside:
        return None, OUTSIDE_INPUT
    if not real.is_file():
        return None, f"{kind}_missing"
    if real.stat().st_size > MAX_MEMBER_BYTES:
        return None, "file_too_large"
    return real, None


def text_field(record: dict[str, Any], name: str) -> str | None:
    v = record.get(name)
    return v if isinstance(v, str) and v.strip() else None


def sample(key: str, model: Any, media: dict[str, Path | bytes] | None = None) -> Sample:
    return Sample(key, {"json": dump_sample_json(model), **(media or {})})


def write_converted(wh: Warehouse, dataset: str, samples: Iterable[Sample], rejects: Rejects, source: dict[str, str],
                    *, max_samples: int | None = 1000, decontaminate_against: Sequence[str] = (),
                    replace: bool = False) -> Conversion:
    """The samples as the dataset's shard set in ``wh``, and ``conversion.json`` (counts, rejects) beside them.
    Samples whose audio holds evaluation audio (``decontaminate_against``) or one of the warehouse's held-out
    clips are rejected as ``eval:<benchmark>`` (``contamination.converted``). Another writer's dataset is
    refused unless ``replace`` (``refuse_overwrite``); nothing is read from ``samples`` before that."""
    from m2ugen_data.contamination.converted import drop_matching, protected_index

    if not replace:
        refuse_overwrite(wh, dataset, source)
    index = protected_index(wh, decontaminate_against)
    if index.items:
        samples = drop_matching(samples, index, rejects)
    rows = write_dataset_shards(wh, dataset, _counted(samples), max_samples=max_samples)
    report = write_bytes_atomic(shard_dir(wh, dataset) / CONVERSION_REPORT, json.dumps({
        "dataset": dataset, "source": source, "samples": sum(r["samples"] for r in rows), "shards": len(rows),
        "rejected": rejects.total, "rejected_by_reason": dict(sorted(rejects.counts.items())),
        "rejects": rejects.listed, "decontaminated_against": list(decontaminate_against),
        "unreadable_eval_items": [list(u) for u in index.unreadable],
    }, indent=1).encode())
    return Conversion(dataset, rows, rejects, report)


def refuse_overwrite(wh: Warehouse, dataset: str, source: dict[str, str]) -> None:
    """``ConvertError`` (one line naming the dataset and ``--replace``) when writing ``dataset`` would delete
    shards another writer made. A conversion writes the whole shard set and the manifest follows it, so
    afterwards ``shards verify`` sees the files agree with the manifest: a typo in ``--name`` would silently
    swap, say, the MUEdit shards for an Alpaca sample. So a pipeline dataset is never taken, nor one holding
    shards that ``conversion.json`` does not credit to this same source (kind and file name); a rerun of
    the same conversion rewrites its own shards, as reruns must."""
    again = "choose another --name, or pass --replace to overwrite it"
    if is_pipeline_dataset(dataset):
        raise ConvertError(f"{dataset} is a pipeline dataset (its shards come from `shards write`): converting "
                           f"{source['kind']} into it would replace them; {again}")
    owner = conversion_source(wh, dataset)
    if owner == source or not _holds_shards(wh, dataset):
        return
    held = (f"the shards of `convert {owner.get('kind')}` from {owner.get('file')}" if owner
            else "shards no converter wrote (no conversion.json)")
    raise ConvertError(f"shards/{dataset} holds {held}: converting {source['kind']} {source['file']} into it "
                       f"would replace them; {again}")


def _holds_shards(wh: Warehouse, dataset: str) -> bool:
    directory = shard_dir(wh, dataset)
    return bool(shard_paths(wh, dataset)) or (directory.is_dir() and bool(shard_files(directory, dataset)))


def _counted(samples: Iterable[Sample]) -> Iterator[Sample]:
    seen: set[str] = set()
    for s in samples:
        if s.key in seen:  # a duplicate key would make two WebDataset samples collide
            raise ConvertError(f"duplicate sample key {s.key!r}")
        seen.add(s.key)
        yield s
