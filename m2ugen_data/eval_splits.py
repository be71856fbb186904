"""Held-out evaluation splits of MUCaps, MUEdit, MUImage and MUVideo: deterministic, video-disjoint, and
never seen by training.

A YouTube video is held out when ``sha256("m2ugen-eval-v1:" + ytid)`` falls below ``fraction`` of the hash
range: the same rule as the pools (``audioset/selection.py``) with its own salt, so every machine splits the
same way, the split is independent of the pools, and growing the warehouse never moves a video between train
and eval. A sample is *eval* when every video it uses is held out, *train* when none is; a MUEdit pair that
joins a held-out video with a training one is in neither (``straddling``, counted), so no video is on both
sides. (Pairs are mined within a pool, so MUEdit's eval share is about ``fraction``²; pass a larger
``--fraction`` for MUEdit if you need more edit pairs.)

``write_eval_splits`` records the split in the warehouse (the ``splits`` manifest,
``clean/split.py``) and writes, per dataset: the eval samples as shards of their own,
``shards/<dataset>_eval/<dataset>_eval-NNNNNN.tar`` (+ the ``shards`` manifest), the same samples in the
reference JSON layout under ``<export>/<Folder>/`` (``export.py``), and the dataset's training shards
``shards/<dataset>/`` rewritten without any held-out video. Because the split is warehouse state, every
later ``shards write``, flow and export keeps the held-out videos out of training, and ``shards verify``
fails on a training shard that holds one. A near-duplicate group is on one side (its canonical clip's video
decides). The trainer's shard discovery never picks up ``*_eval`` directories when it scans a warehouse
(``m2ugen_model/train/data.py``); point ``--eval-shards`` at them for the periodic held-out loss.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2ugen_data.atomic import write_bytes_atomic
from m2ugen_data.clean.split import EVAL_SUFFIX, SALT, Split, record_split
from m2ugen_data.errors import M2UGenError
from m2ugen_data.export import MediaMode, export_samples
from m2ugen_data.ids import ytid_of
from m2ugen_data.shards.assemble import iter_dataset_samples
from m2ugen_data.shards.build import shard_dir, write_dataset_shards
from m2ugen_data.shards.sample_schema import InstructionSample, MUCapsSample, parse_sample_json
from m2ugen_data.shards.tar_writer import Sample
from m2ugen_data.warehouse import Warehouse

DATASETS = ("mucaps", "muedit", "muimage", "muvideo")
DEFAULT_FRACTION = 0.05


def is_held_out(ytid: str, fraction: float) -> bool:
    """The video's fixed place in [0, 1) by hash, compared with ``fraction`` (``heldout.Split``)."""
    return Split("", fraction).held_out(ytid)


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


@dataclass
class SplitResult:
    dataset: str
    counts: Counter[str] = field(default_factory=Counter)  # train, eval, straddling (+ other skip reasons)
    eval_json: Path | None = None


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
        record_split(wh, dataset, fraction)  # first: from now on every sample source keeps it
        skipped: Counter[str] = Counter()
        held = list(iter_dataset_samples(wh, dataset, skips=skipped, side="eval", **opts))
        res.counts.update(eval=len(held), train=skipped.pop("not_held_out", 0), **skipped)
        write_dataset_shards(wh, f"{dataset}{EVAL_SUFFIX}", held)
        res.eval_json = export_samples(dataset, held, out, media=media).json_path
        write_dataset_shards(wh, dataset, iter_dataset_samples(wh, dataset, side="train", **opts))
        write_bytes_atomic(shard_dir(wh, f"{dataset}{EVAL_SUFFIX}") / "split.json", json.dumps(
            {"dataset": dataset, "salt": SALT, "fraction": fraction, **dict(res.counts)}, indent=1).encode())
        results.append(res)
    return results
