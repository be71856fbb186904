"""What every converter shares: reading the source file, counting and recording rejects, writing the shards.

A converter is a generator of ``Sample``s that calls ``Rejects.add`` for every source record it refuses (with
a short reason and the record's index), so nothing is dropped silently. ``write_converted`` writes the
samples as the dataset's complete shard set in the warehouse (``shards/<name>/<name>-NNNNNN.tar`` + the
``shards`` manifest, through the pipeline's deterministic writer: reruns give the same bytes) and a
``conversion.json`` report beside them (counts, reasons, the first rejects) for the user and for audits.
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
from m2ugen_data.shards.build import shard_dir, write_dataset_shards
from m2ugen_data.shards.sample_schema import dump_sample_json
from m2ugen_data.shards.tar_writer import Sample
from m2ugen_data.warehouse import Warehouse

MAX_LISTED_REJECTS = 1000
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


def load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise ConvertError(f"{path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConvertError(f"{path}: not valid JSON ({exc})") from None


def safe_child(root: Path, name: Any) -> Path | None:
    """``root/name`` for a plain relative name from the source (no absolute path, no '..'), else None."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return None
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts:
        return None
    return root / rel


def text_field(record: dict[str, Any], name: str) -> str | None:
    v = record.get(name)
    return v if isinstance(v, str) and v.strip() else None


def sample(key: str, model: Any, media: dict[str, Path | bytes] | None = None) -> Sample:
    return Sample(key, {"json": dump_sample_json(model), **(media or {})})


def write_converted(wh: Warehouse, dataset: str, samples: Iterable[Sample], rejects: Rejects, source: dict[str, str],
                    *, max_samples: int | None = 1000, decontaminate_against: Sequence[str] = ()) -> Conversion:
    """The samples as the dataset's shard set in ``wh``, and ``conversion.json`` (counts, rejects) beside them.
    Samples whose audio holds evaluation audio (``decontaminate_against``) or one of the warehouse's held-out
    clips are rejected as ``eval:<benchmark>`` (``contamination.converted``)."""
    from m2ugen_data.contamination.converted import drop_matching, protected_index

    index = protected_index(wh, decontaminate_against)
    if index.items:
        samples = drop_matching(samples, index, rejects)
    rows = write_dataset_shards(wh, dataset, _counted(samples), max_samples=max_samples)
    report = write_bytes_atomic(shard_dir(wh, dataset) / "conversion.json", json.dumps({
        "dataset": dataset, "source": source, "samples": sum(r["samples"] for r in rows), "shards": len(rows),
        "rejected": rejects.total, "rejected_by_reason": dict(sorted(rejects.counts.items())),
        "rejects": rejects.listed, "decontaminated_against": list(decontaminate_against),
        "unreadable_eval_items": [list(u) for u in index.unreadable],
    }, indent=1).encode())
    return Conversion(dataset, rows, rejects, report)


def _counted(samples: Iterable[Sample]) -> Iterator[Sample]:
    seen: set[str] = set()
    for s in samples:
        if s.key in seen:  # a duplicate key would make two WebDataset samples collide
            raise ConvertError(f"duplicate sample key {s.key!r}")
        seen.add(s.key)
        yield s
