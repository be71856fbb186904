"""WebDataset shards: deterministic tar writing, per-dataset sample builders, safe reading and checks.

Public API (what flows, the export and the trainer call):

- ``build_dataset_shards(wh, dataset, max_samples=..., max_bytes=..., workers=..., **source_options)``
- ``write_dataset_shards(wh, dataset, samples, ...)`` for samples assembled elsewhere
- ``iter_dataset_samples(wh, dataset, skips=..., **options)`` and the per-dataset builders in ``samples``;
  ``visual_sample_keys(wh, dataset, pool=...)`` (MUImage/MUVideo keys, for the disjointness check)
- ``shard_paths(wh, dataset)``, ``iter_shard_samples(path)``, ``iter_shard_keys(path)``, ``check_member_name(name)``,
  ``verify_shards(wh, dataset)``, ``parse_sample_json(data)``
"""

from m2ugen_data.shards.assemble import SAMPLE_SOURCES, iter_dataset_samples, visual_sample_keys
from m2ugen_data.shards.build import ShardBuild, build_dataset_shards, shard_dir, write_dataset_shards
from m2ugen_data.shards.read import (
    ShardCheck,
    ShardFormatError,
    UnsafeShardError,
    check_member_name,
    iter_shard_keys,
    iter_shard_samples,
    shard_paths,
    verify_shards,
)
from m2ugen_data.shards.sample_schema import SAMPLE_MODELS, SampleSchemaError, parse_sample_json
from m2ugen_data.shards.tar_writer import Sample, ShardError, ShardInfo, ShardWriter

__all__ = [
    "SAMPLE_MODELS",
    "SAMPLE_SOURCES",
    "Sample",
    "SampleSchemaError",
    "ShardBuild",
    "ShardCheck",
    "ShardError",
    "ShardFormatError",
    "ShardInfo",
    "ShardWriter",
    "UnsafeShardError",
    "build_dataset_shards",
    "check_member_name",
    "iter_dataset_samples",
    "iter_shard_keys",
    "iter_shard_samples",
    "parse_sample_json",
    "shard_dir",
    "shard_paths",
    "verify_shards",
    "visual_sample_keys",
    "write_dataset_shards",
]
