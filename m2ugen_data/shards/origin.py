"""Who writes a shard dataset: the pipeline or one converter.

The pipeline (``shards write`` and the flows) writes mucaps, muedit, muimage, muvideo and their ``_eval``
sets; a converter (``m2ugen-data convert``) writes any other name and leaves ``conversion.json`` beside the
shards, whose ``source`` says what it converted (``kind``: musicqa, alpaca or coco, and the file). Every
writer replaces the manifest batch with its files, so a dataset another writer took over verifies clean by
size and sha256 alone. Two uses: a converter asks ``conversion_source`` before writing and refuses a dataset
it did not write (``convert ... --replace`` overrides), and ``shards verify`` compares each sample's
``dataset`` field with ``expected_sample_dataset``.
"""

from __future__ import annotations

import json
from typing import Any

from m2ugen_data.clean.split import DATASETS, base_dataset
from m2ugen_data.shards.build import shard_dir
from m2ugen_data.warehouse import Warehouse

CONVERSION_REPORT = "conversion.json"


def is_pipeline_dataset(dataset: str) -> bool:
    return base_dataset(dataset) in DATASETS


def conversion_source(wh: Warehouse, dataset: str) -> dict[str, Any] | None:
    """The ``source`` of the dataset's ``conversion.json``; None when there is none or it is unreadable."""
    try:
        report = json.loads((shard_dir(wh, dataset) / CONVERSION_REPORT).read_bytes())
    except (OSError, ValueError):
        return None
    source = report.get("source") if isinstance(report, dict) else None
    return source if isinstance(source, dict) else None


def expected_sample_dataset(wh: Warehouse, dataset: str) -> str | None:
    """The ``dataset`` field every sample of ``dataset``'s shards carries: the pipeline dataset's own name
    (``muedit_eval`` holds muedit samples), the converter's kind, or None when neither is known."""
    if is_pipeline_dataset(dataset):
        return base_dataset(dataset)
    source = conversion_source(wh, dataset)
    kind = source.get("kind") if source else None
    return kind if isinstance(kind, str) else None
