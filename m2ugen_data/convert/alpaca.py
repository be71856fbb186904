"""Alpaca (tatsu-lab/stanford_alpaca ``alpaca_data.json``) -> ``alpaca`` shards for stage 3.

The public layout is a JSON list of ``{"instruction": str, "input": str, "output": str}`` (``input`` may be
empty). The record is kept as it is; the trainer joins instruction and input into the prompt. Rejected (and
recorded): not an object, an empty instruction or output, a non-string input.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from m2ugen_data.convert.common import ConvertError, Rejects, key_prefix, sample, text_field
from m2ugen_data.convert.json_source import MAX_JSON_MB, check_json, json_items
from m2ugen_data.shards.sample_schema import AlpacaSample, SourceRecord
from m2ugen_data.shards.tar_writer import Sample


def iter_alpaca(path: Path, rejects: Rejects, *, max_json_mb: int = MAX_JSON_MB) -> Iterator[Sample]:
    if "" not in check_json(path, [""], max_mb=max_json_mb):
        raise ConvertError(f"{path}: expected a JSON list of {{instruction, input, output}} records")
    prefix = key_prefix(path)
    for i, rec in enumerate(json_items(path, "")):
        where = f"{path.name}#{i}"
        if not isinstance(rec, dict):
            rejects.add(where, "not_an_object")
            continue
        instruction, output, extra = text_field(rec, "instruction"), text_field(rec, "output"), rec.get("input", "")
        if instruction is None or output is None:
            rejects.add(where, "empty_instruction_or_output")
            continue
        if not isinstance(extra, str):
            rejects.add(where, "bad_input_field")
            continue
        key = f"{prefix}-{i:07d}"
        yield sample(key, AlpacaSample(key=key, instruction=instruction, input=extra, output=output,
                                       source=SourceRecord(file=path.name, index=i)))
