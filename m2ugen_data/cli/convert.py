"""``m2ugen-data convert``: public datasets the paper mixes in -> shards the trainer takes by name.

    m2ugen-data convert musicqa FinetuneMusicQA.json --audio-dir MusicQA/audios      # or a .parquet export
    m2ugen-data convert alpaca alpaca_data.json
    m2ugen-data convert coco annotations/captions_train2014.json --images-dir train2014
    m2ugen-train ... --stage 3 --extra-shards musicqa=warehouse/shards/musicqa --extra-shards alpaca=warehouse/shards/alpaca
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from m2ugen_data.cli.common import get_warehouse, print_summary
from m2ugen_data.convert.common import Conversion, Rejects, write_converted
from m2ugen_data.convert.json_source import MAX_JSON_MB

app = typer.Typer(help="Convert MusicQA, Alpaca and COCO captions into trainer shards.", no_args_is_help=True)

NameOpt = Annotated[Optional[str], typer.Option("--name", help="shard dataset name (default: the source's)")]
PerShard = Annotated[int, typer.Option("--max-samples", min=1, help="samples per shard")]
ReplaceOpt = Annotated[bool, typer.Option(
    "--replace", help="overwrite the dataset even when its shards come from the pipeline or another source")]
JsonCap = Annotated[int, typer.Option(
    "--max-json-mb", min=1, help=f"refuse a source JSON larger than this (default {MAX_JSON_MB} MB)")]


def _summary(conv: Conversion) -> None:
    print_summary(f"convert -> {conv.dataset}", {
        "samples": conv.samples, "shards": len(conv.shards), "rejected": conv.rejects.total,
        **{f"  rejected: {k}": v for k, v in sorted(conv.rejects.counts.items())},
        "report": conv.report,
    })


@app.command()
def musicqa(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="MusicQA JSON (Pretrain/Finetune/EvalMusicQA.json) or Parquet")],
    audio_dir: Annotated[Optional[Path], typer.Option(help="the unpacked audios/ folder (JSON layout)")] = None,
    name: NameOpt = None,
    max_samples: PerShard = 1000,
    decontaminate_against: Annotated[Optional[list[str]], typer.Option(
        "--decontaminate-against", help="[NAME=]PATH of evaluation audio (e.g. the MusicCaps clips): MusicQA "
        "samples whose audio holds one are rejected (MusicQA's pre-training part was made from every MusicCaps "
        "clip, renamed to numbers). Repeatable.")] = None,
    max_json_mb: JsonCap = MAX_JSON_MB,
    replace: ReplaceOpt = False,
) -> None:
    """MusicQA question/answer pairs about music -> stage-3 shards (never audio of an evaluation set or of the
    warehouse's held-out split)."""
    from m2ugen_data.convert.musicqa import iter_musicqa

    rejects = Rejects()
    samples = iter_musicqa(source, audio_dir, rejects, max_json_mb=max_json_mb)
    _summary(write_converted(get_warehouse(ctx), name or "musicqa", samples, rejects,
                             {"kind": "musicqa", "file": source.name}, max_samples=max_samples,
                             decontaminate_against=decontaminate_against or (), replace=replace))


@app.command()
def alpaca(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="alpaca_data.json")],
    name: NameOpt = None,
    max_samples: PerShard = 10000,
    max_json_mb: JsonCap = MAX_JSON_MB,
    replace: ReplaceOpt = False,
) -> None:
    """Alpaca instruction records -> stage-3 shards (text only)."""
    from m2ugen_data.convert.alpaca import iter_alpaca

    rejects = Rejects()
    samples = iter_alpaca(source, rejects, max_json_mb=max_json_mb)
    _summary(write_converted(get_warehouse(ctx), name or "alpaca", samples, rejects,
                             {"kind": "alpaca", "file": source.name}, max_samples=max_samples, replace=replace))


@app.command()
def coco(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="captions_train2014.json (or any COCO captions file)")],
    images_dir: Annotated[Path, typer.Option(help="the images folder (train2014/)")],
    captions_per_image: Annotated[Optional[int], typer.Option(min=1, help="keep the first N captions per image (default all)")] = None,
    name: NameOpt = None,
    max_samples: PerShard = 1000,
    max_image_pixels: Annotated[Optional[int], typer.Option(
        min=1, help="reject an image whose header claims more pixels (default: Pillow's MAX_IMAGE_PIXELS)")] = None,
    max_json_mb: JsonCap = MAX_JSON_MB,
    replace: ReplaceOpt = False,
) -> None:
    """COCO image captions -> stage-1 shards (image captioning)."""
    from m2ugen_data.convert.coco import MAX_IMAGE_PIXELS, iter_coco

    rejects = Rejects()
    samples = iter_coco(source, images_dir, rejects, captions_per_image, max_json_mb=max_json_mb,
                        max_image_pixels=max_image_pixels or MAX_IMAGE_PIXELS)
    _summary(write_converted(get_warehouse(ctx), name or "coco", samples, rejects,
                             {"kind": "coco", "file": source.name}, max_samples=max_samples, replace=replace))
