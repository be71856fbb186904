"""Held-out evaluation splits of MUCaps, MUEdit, MUImage and MUVideo: deterministic, video-disjoint, and
never seen by training.

A YouTube video is held out when ``sha256("m2ugen-eval-v1:" + ytid)`` falls below ``fraction`` of the hash
range: the same rule as the pools (``audioset/selection.py``) with its own salt, so every machine splits the
same way, the split is independent of the pools, and growing the warehouse never moves a video between train
and eval. A sample is *eval* when every video it uses is held out, *train* when none is; a MUEdit pair that
joins a held-out video with a training one is in neither (``straddling``, counted), so no video is on both
sides. (Pairs are mined within a pool, so MUEdit's eval share is about ``fraction``²; pass a larger
``--fraction`` for MUEdit if you need more edit pairs.)

``write_eval_splits`` writes, per dataset: the eval samples as shards of their own,
``shards/<dataset>_eval/<dataset>_eval-NNNNNN.tar`` (+ the ``shards`` manifest), the same samples in the
reference JSON layout under ``<export>/<Folder>/`` (``export.py``), and the dataset's training shards
``shards/<dataset>/`` rewritten without any held-out video. The trainer's shard discovery never picks up
``*_eval`` directories when it scans a warehouse (``m2ugen_model/train/data.py``); point ``--eval-shards``
at them for the periodic held-out loss. ``shards write`` rebuilds a dataset from the manifests with every
video, so run ``eval-splits`` again after it (the flows' shard step does not know about splits).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2ugen_data.atomic import write_bytes_atomic
from m2ugen_data.errors import M2UGenError
from m2ugen_data.export import MediaMode, export_samples
from m2ugen_data.ids import ytid_of
from m2ugen_data.shards.assemble import iter_dataset_samples
from m2ugen_data.shards.build import shard_dir, write_dataset_shards
from m2ugen_data.shards.sample_schema import InstructionSample, MUCapsSample, parse_sample_json
from m2ugen_data.shards.tar_writer import Sample
from m2ugen_data.warehouse import Warehouse

SALT = "m2ugen-eval-v1:"
EVAL_SUFFIX = "_eval"  # the trainer's discovery skips shards/<dataset>_eval when scanning a warehouse
DATASETS = ("mucaps", "muedit", "muimage", "muvideo")
DEFAULT_FRACTION = 0.05


def is_held_out(ytid: str, fraction: float) -> bool:
    """The video's fixed place in [0, 1) by hash, compared with ``fraction``."""
    h = int.from_bytes(hashlib.sha256((SALT + ytid).encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def sample_videos(sample: Sample, dataset: str) -> set[str]:
    """The YouTube IDs a shard sample's media come from (its JSON's provenance)."""
    record = parse_sample_json(sample.members["json"], dataset)
    if isinstance(record, MUCapsSample):
        clips = [record.provenance]
    elif isinstance(record, InstructionSample):
        clips = [record.input, record.output]
    else:
        raise M2UGenError(f"dataset {dataset!r}: no provenance to split by")
    return {c.ytid or ytid_of(c.clip_id) for c in clips}


def side(sample: Sample, dataset: str, fraction: float) -> str:
    """"eval", "train" or "straddling" (videos on both sides: used by neither)."""
    held = {is_held_out(v, fraction) for v in sample_videos(sample, dataset)}
    return "straddling" if len(held) == 2 else "eval" if held == {True} else "train"


@dataclass
class SplitResult:
    dataset: str
    counts: Counter[str] = field(default_factory=Counter)
    eval_json: Path | None = None


def _only(samples: Iterable[Sample], dataset: str, fraction: float, keep: str, counts: Counter[str] | None) -> Iterator[Sample]:
    for s in samples:
        where = side(s, dataset, fraction)
        if counts is not None:
            counts[where] += 1
        if where == keep:
            yield s


def write_eval_splits(wh: Warehouse, datasets: Iterable[str] = DATASETS, *, fraction: float = DEFAULT_FRACTION,
                      export_dir: Path | None = None, media: MediaMode = MediaMode.symlink,
                      source_options: Mapping[str, Mapping[str, Any]] | None = None) -> list[SplitResult]:
    """Per dataset: eval shards + reference JSON of the held-out videos, training shards without them;
    ``source_options[dataset]`` goes to that dataset's sample source (as in ``export_reference``)."""
    if not 0 < fraction < 1:
        raise M2UGenError(f"--fraction must be between 0 and 1, got {fraction}")
    out = export_dir if export_dir is not None else wh.root / "eval"
    results = []
    for dataset in datasets:
        res, opts = SplitResult(dataset), dict((source_options or {}).get(dataset, {}))
        held = list(_only(iter_dataset_samples(wh, dataset, **opts), dataset, fraction, "eval", res.counts))
        write_dataset_shards(wh, f"{dataset}{EVAL_SUFFIX}", held)
        res.eval_json = export_samples(dataset, held, out, media=media).json_path
        write_dataset_shards(wh, dataset, _only(iter_dataset_samples(wh, dataset, **opts), dataset,
                                                fraction, "train", None))
        write_bytes_atomic(shard_dir(wh, f"{dataset}{EVAL_SUFFIX}") / "split.json", json.dumps(
            {"dataset": dataset, "salt": SALT, "fraction": fraction, **dict(res.counts)}, indent=1).encode())
        results.append(res)
    return results
