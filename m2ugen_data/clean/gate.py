"""Which samples a dataset may use, from the warehouse's state: the one rule every sample source, the shard
verifier and the disjointness check share.

A sample (named by its key: a clip id, or ``src__tgt`` for MUEdit) is kept out when one of its clips

- was found in an evaluation set (``contamination``: by ID or by sound) -> ``contaminated``;
- is a non-canonical member of a near-duplicate group (``duplicates``): the dataset keeps the canonical one
  -> ``duplicate``; a MUEdit pair of two members of one group -> ``duplicate_pair``;
- and, for the dataset's ``train`` side, its video (the group's canonical video, so a group is on one side)
  is held out (``splits``) -> ``held_out``; on the ``eval`` side, a sample whose videos are not all held out
  is ``not_held_out`` (``straddling`` when some are).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from m2ugen_data.clean.split import Split, base_dataset, read_splits
from m2ugen_data.ids import CLIP_ID_RE, ytid_of
from m2ugen_data.warehouse import Warehouse

SIDES = ("train", "eval", "all")


def clip_ids_of_key(dataset: str, key: str) -> list[str]:
    """The warehouse clips a sample key names: ``src__tgt`` for MUEdit, the clip id otherwise; nothing for a
    key that is not a clip id (converted datasets)."""
    parts = key.split("__") if base_dataset(dataset) == "muedit" else [key]
    return [p for p in parts if CLIP_ID_RE.fullmatch(p)]


@dataclass
class Gate:
    split: Split | None = None
    group_of: dict[str, str] = field(default_factory=dict)  # clip -> its group's canonical clip
    dropped: set[str] = field(default_factory=set)  # non-canonical group members
    contaminated: dict[str, str] = field(default_factory=dict)  # clip -> benchmark

    def video(self, clip_id: str) -> str:
        return ytid_of(self.group_of.get(clip_id, clip_id))

    def held_out(self, clip_id: str) -> bool:
        return self.split is not None and self.split.held_out(self.video(clip_id))

    def reason(self, clip_ids: Iterable[str], side: str = "train") -> str | None:
        """Why a sample using ``clip_ids`` is kept out of ``side``, or None when it may be used."""
        clips = list(clip_ids)
        if any(c in self.contaminated for c in clips):
            return "contaminated"
        if any(c in self.dropped for c in clips):
            return "duplicate"
        groups = [self.group_of.get(c, c) for c in clips]
        if len(set(groups)) < len(groups):
            return "duplicate_pair"
        if side == "all" or not clips:
            return None
        held = [self.held_out(c) for c in clips]
        if side == "train":
            return "held_out" if any(held) else None
        if all(held):
            return None
        return "straddling" if any(held) else "not_held_out"


def load_gate(wh: Warehouse, dataset: str) -> Gate:
    """The gate of ``dataset`` (or of its eval side, ``<dataset>_eval``) from the warehouse's manifests."""
    gate = Gate(split=read_splits(wh).get(base_dataset(dataset)))
    if wh.manifest_files("duplicates"):
        for r in wh.read("duplicates").select(["clip_id", "group_id", "canonical"]).to_pylist():
            gate.group_of[r["clip_id"]] = r["group_id"]
            if not r["canonical"]:
                gate.dropped.add(r["clip_id"])
    if wh.manifest_files("contamination"):
        for r in wh.read("contamination").select(["clip_id", "benchmark"]).to_pylist():
            gate.contaminated.setdefault(r["clip_id"], r["benchmark"])
    return gate


def filter_samples(samples: Iterable, dataset: str, gate: Gate, side: str, skips=None) -> Iterator:
    """The samples ``gate`` lets into ``side``; the others counted by reason in ``skips``."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    for s in samples:
        why = gate.reason(clip_ids_of_key(dataset, s.key), side)
        if why is None:
            yield s
        elif skips is not None:
            skips[why] += 1


__all__ = ["Gate", "SIDES", "clip_ids_of_key", "filter_samples", "load_gate"]
