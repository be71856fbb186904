"""The held-out split as warehouse state.

A YouTube video is held out of a dataset when ``sha256(salt + ytid)`` falls below the dataset's ``fraction`` of
the hash range (the same rule as the pools with its own salt: every machine splits alike, the split is
independent of the pools, and a growing warehouse never moves a video between sides). ``m2ugen-data
eval-splits`` records the fraction in the ``splits`` manifest before it writes anything, and from then on
every sample source reads it (``gate.py``): ``shards write``, the flows' shard step, the export and the
converters all leave held-out videos out of training, and ``shards verify`` fails on a training shard that
holds one. Before, the split lived only in ``split.json`` beside the eval shards, and the next routine
``shards write`` put the held-out samples back into training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from m2ugen_data.warehouse import Warehouse, utc_now

SALT = "m2ugen-eval-v1:"
DATASETS = ("mucaps", "muedit", "muimage", "muvideo")
EVAL_SUFFIX = "_eval"  # the trainer's discovery skips shards/<dataset>_eval when scanning a warehouse


@dataclass(frozen=True)
class Split:
    dataset: str
    fraction: float
    salt: str = SALT

    def held_out(self, ytid: str) -> bool:
        """The video's fixed place in [0, 1) by hash, compared with ``fraction``."""
        h = int.from_bytes(hashlib.sha256((self.salt + ytid).encode()).digest()[:8], "big")
        return h / 2**64 < self.fraction


def base_dataset(dataset: str) -> str:
    """``muedit_eval`` -> ``muedit``: the dataset whose split an eval shard set holds."""
    return dataset.removesuffix(EVAL_SUFFIX)


def record_split(wh: Warehouse, dataset: str, fraction: float) -> Split:
    """Make ``fraction`` the dataset's held-out split (one batch per dataset, replaced)."""
    split = Split(dataset, fraction)
    wh.write_batch("splits", [{"dataset": dataset, "salt": split.salt, "fraction": fraction,
                               "created_at": utc_now()}], f"splits-{dataset}")
    return split


def read_splits(wh: Warehouse) -> dict[str, Split]:
    """dataset -> its recorded split (empty when ``eval-splits`` never ran)."""
    if not wh.manifest_files("splits"):
        return {}
    rows = wh.read("splits").to_pylist()
    return {r["dataset"]: Split(r["dataset"], r["fraction"], r["salt"]) for r in rows}


__all__ = ["DATASETS", "EVAL_SUFFIX", "SALT", "Split", "base_dataset", "read_splits", "record_split"]
