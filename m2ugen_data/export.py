"""Export datasets in the reference M2UGen layout for users of the reference trainer.

The reference ``FinetuneDataset`` reads ``Datasets/<Name>/<Name>Captions.json`` (MUCaps: file name ->
caption) and ``Datasets/<Name>/<Name>Instructions.json`` (a list of ``input_file``, ``output_file``,
``conversation``), joining file names onto fixed media folders (``MUCaps/audios``, ``MUEdit/audioset``,
``MUImage/audioset_images`` + ``audioset``, ``MUVideo/audioset_video`` + ``audioset``). ``export_reference``
writes exactly that under ``out`` so ``out`` can stand in for the reference ``Datasets`` folder.

Records come from the same sample builders as the shards (the JSON member projected onto the reference
fields), so the export and the shards cannot disagree. Media are copied, hard-linked or symlinked (absolute
links into the warehouse); every file, JSON included, is written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from m2ugen_data.atomic import atomic_path, temp_path_for, write_bytes_atomic
from m2ugen_data.errors import M2UGenError
from m2ugen_data.shards.assemble import SAMPLE_SOURCES, iter_dataset_samples
from m2ugen_data.shards.sample_schema import InstructionSample, MUCapsSample, parse_sample_json
from m2ugen_data.shards.tar_writer import Sample
from m2ugen_data.warehouse import Warehouse


class MediaMode(str, Enum):
    copy = "copy"
    hardlink = "hardlink"
    symlink = "symlink"


@dataclass(frozen=True)
class ReferenceLayout:
    folder: str
    json_name: str
    kind: Literal["captions", "instructions"]
    input_dir: str
    output_dir: str | None = None


REFERENCE_LAYOUTS: dict[str, ReferenceLayout] = {
    "mucaps": ReferenceLayout("MUCaps", "MUCapsCaptions.json", "captions", "audios"),
    "muedit": ReferenceLayout("MUEdit", "MUEditInstructions.json", "instructions", "audioset", "audioset"),
    "muimage": ReferenceLayout("MUImage", "MUImageInstructions.json", "instructions", "audioset_images", "audioset"),
    "muvideo": ReferenceLayout("MUVideo", "MUVideoInstructions.json", "instructions", "audioset_video", "audioset"),
}


@dataclass
class ExportResult:
    dataset: str
    json_path: Path
    records: int
    media_written: int
    media_kept: int


def place_media(src: Path, dst: Path, mode: MediaMode) -> bool:
    """Put ``src`` at ``dst``; False when an equivalent file is already there (reruns do no work)."""
    if dst.is_symlink() or dst.exists():
        if mode is MediaMode.symlink and dst.is_symlink() and os.readlink(dst) == str(src):
            return False
        if mode is not MediaMode.symlink and not dst.is_symlink() and dst.stat().st_size == src.stat().st_size:
            return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode is MediaMode.copy:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        return True
    tmp = temp_path_for(dst)
    try:
        if mode is MediaMode.symlink:
            os.symlink(src, tmp)
        else:
            os.link(src, tmp)
        os.replace(tmp, dst)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
    return True


def export_samples(
    dataset: str,
    samples: Iterable[Sample],
    out: Path,
    *,
    media: MediaMode = MediaMode.copy,
    on_sample: Callable[[Sample], None] | None = None,
) -> ExportResult:
    """Write one dataset's reference JSON and media under ``out/<Folder>/``."""
    layout = REFERENCE_LAYOUTS.get(dataset)
    if layout is None:
        raise M2UGenError(f"no reference layout for dataset {dataset!r}; known: {', '.join(REFERENCE_LAYOUTS)}")
    root = Path(out) / layout.folder
    captions: dict[str, str] = {}
    instructions: list[dict[str, Any]] = []
    written = kept = 0
    for sample in samples:
        record = parse_sample_json(sample.members["json"], dataset)
        if isinstance(record, MUCapsSample):
            captions[record.audio_file] = record.caption
            placements = [(record.members["audio"], root / layout.input_dir / record.audio_file)]
        elif isinstance(record, InstructionSample):
            instructions.append(record.reference_record())
            placements = [
                (record.members["input"], root / layout.input_dir / record.input_file),
                (record.members["output"], root / (layout.output_dir or layout.input_dir) / record.output_file),
            ]
        else:  # a new dataset model must say how it exports
            raise M2UGenError(f"dataset {dataset!r}: no reference export for {type(record).__name__}")
        for field, dst in placements:
            src = sample.members[field]
            if not isinstance(src, Path):
                raise M2UGenError(f"sample {sample.key}: member {field} is not a file")
            if place_media(src.resolve(), dst, media):
                written += 1
            else:
                kept += 1
        if on_sample is not None:
            on_sample(sample)
    data: Any = captions if layout.kind == "captions" else instructions
    json_path = write_bytes_atomic(
        root / layout.json_name, json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8")
    )
    return ExportResult(dataset, json_path, len(data), written, kept)


def export_reference(
    wh: Warehouse,
    out: Path,
    *,
    datasets: Iterable[str] | None = None,
    media: MediaMode = MediaMode.copy,
    on_sample: Callable[[Sample], None] | None = None,
    source_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ExportResult]:
    """Export the given datasets (default: every dataset with a sample source) from the warehouse;
    ``source_options[dataset]`` goes to that dataset's sample source (e.g. MUCaps ``caption_backends``)."""
    names = list(datasets) if datasets is not None else [d for d in SAMPLE_SOURCES if d in REFERENCE_LAYOUTS]
    results = []
    for name in names:
        samples = iter_dataset_samples(wh, name, **(source_options or {}).get(name, {}))
        results.append(export_samples(name, samples, out, media=media, on_sample=on_sample))
    return results
