"""``m2ugen-data media frames|clips|disjoint`` and ``m2ugen-data caption-visual``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import pyarrow as pa
import typer

from m2ugen_data import defaults as D
from m2ugen_data.cli.common import OutputFormat, console, get_warehouse, print_arrow, print_summary, progress
from m2ugen_data.errors import M2UGenError

app = typer.Typer(no_args_is_help=True)
media_app = typer.Typer(no_args_is_help=True, help="Frames (MUImage) and normalised clips (MUVideo) from source videos.")
app.add_typer(media_app, name="media")


class Pool(str, Enum):
    muimage = "muimage"
    muvideo = "muvideo"


class Kind(str, Enum):
    image = "image"
    video = "video"


class Backend(str, Enum):
    grounded = "grounded"
    blip = "blip"
    video_gpt2 = "video-gpt2"
    videomae_labels = "videomae-labels"


def _run_media(ctx: typer.Context, kind: str, pool: Optional[Pool], limit: Optional[int], workers: int, redo: bool, **options) -> None:
    from m2ugen_data.vision.media_stage import pending_clips, run_media

    wh = get_warehouse(ctx)
    pool_name = pool.value if pool else None
    total = len(pending_clips(wh, kind, pool=pool_name, limit=limit, redo=redo))
    with progress() as bar:
        task = bar.add_task(f"{kind}s", total=total)
        counts = run_media(
            wh, kind, pool=pool_name, limit=limit, workers=workers, redo=redo,
            on_done=lambda _row: bar.advance(task), **options,
        )
    print_summary(f"media {'frames' if kind == 'image' else 'clips'}", dict(sorted(counts.items())))


@media_app.command("frames")
def frames_cmd(
    ctx: typer.Context,
    pool: Annotated[Optional[Pool], typer.Option(help="Pool to read (default muimage).")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1)] = None,
    workers: Annotated[int, typer.Option(min=1, help="Videos decoded at once.")] = 2,
    candidates: Annotated[int, typer.Option(min=1, help="Evenly spaced frames examined per video.")] = D.FRAME_CANDIDATES,
    redo: Annotated[bool, typer.Option(help="Redo clips already done by this extractor version.")] = False,
) -> None:
    """Choose one sharp, non-black frame per source video and save it as JPEG (MUImage)."""
    _run_media(ctx, "image", pool, limit, workers, redo, n=candidates)


@media_app.command("clips")
def clips_cmd(
    ctx: typer.Context,
    pool: Annotated[Optional[Pool], typer.Option(help="Pool to read (default muvideo).")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1)] = None,
    workers: Annotated[int, typer.Option(min=1, help="Videos encoded at once.")] = 2,
    fps: Annotated[int, typer.Option(min=1, help="Output frame rate.")] = D.VIDEO_FPS,
    short_side: Annotated[int, typer.Option(min=32, help="Bound on the shorter side in pixels.")] = D.VIDEO_SHORT_SIDE,
    redo: Annotated[bool, typer.Option(help="Redo clips already done by this extractor version.")] = False,
) -> None:
    """Normalise each source video (H.264, bounded size, fixed fps, no audio) for MUVideo; reject black/still."""
    _run_media(ctx, "video", pool, limit, workers, redo, fps=fps, short_side=short_side)


@media_app.command("disjoint")
def disjoint_cmd(
    ctx: typer.Context,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """Report MUImage/MUVideo music that also appears in another dataset (exit 1 when any)."""
    from m2ugen_data.shards.disjoint import audio_digests, music_ids_from_manifests, music_overlaps

    wh = get_warehouse(ctx)
    ids = music_ids_from_manifests(wh)
    overlaps = music_overlaps(ids, digests=audio_digests(wh))
    console.print({k: len(v) for k, v in ids.items()})
    if overlaps:
        print_arrow(pa.Table.from_pylist(overlaps), fmt, title="music overlaps")
        raise typer.Exit(1)
    console.print("no music overlap between MUImage/MUVideo and the other datasets")


@app.command("caption-visual")
def caption_visual_cmd(
    ctx: typer.Context,
    kind: Annotated[Kind, typer.Option(help="Caption frames (image) or clips (video).")],
    backend: Annotated[Backend, typer.Option(help="grounded needs no model; the others load local weights.")] = Backend(D.VISUAL_CAPTION_BACKEND),
    model_dir: Annotated[Optional[Path], typer.Option(help="A save_pretrained directory (default: the model id in the local HF cache).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = D.VISUAL_CAPTION_BATCH_SIZE,
    limit: Annotated[Optional[int], typer.Option(min=1)] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = D.VISUAL_DEVICE,
    dtype: Annotated[str, typer.Option(help="auto | float32 | float16 | bfloat16")] = D.MODEL_DTYPE,
    redo: Annotated[bool, typer.Option(help="Recaption items already captioned with this model and settings.")] = False,
    processor_dir: Annotated[Optional[Path], typer.Option(
        help="video-gpt2: the image processor's directory (default: the model's own, else MCG-NJU/videomae-base "
             "from the local HF cache, as the model card loads it).")] = None,
    tokenizer_dir: Annotated[Optional[Path], typer.Option(
        help="video-gpt2: the tokenizer's directory (default: the model's own, else gpt2 from the local HF cache).")] = None,
) -> None:
    """Caption MUImage frames or MUVideo clips into the captions manifest, batched and cached."""
    from m2ugen_data.audioset.ontology import load_ontology
    from m2ugen_data.vision.caption_stage import caption_visual, make_visual_captioner, pending_items

    wh = get_warehouse(ctx)
    options = {} if backend is Backend.grounded else {"model_dir": model_dir, "device": device, "dtype": dtype}
    if backend is Backend.video_gpt2:
        options |= {"processor_dir": processor_dir, "tokenizer_dir": tokenizer_dir}
    captioner = make_visual_captioner(backend.value, **options)
    if kind.value not in captioner.kinds:
        raise M2UGenError(f"backend {backend.value!r} captions {'/'.join(captioner.kinds)}, not {kind.value}")
    namer = load_ontology().name
    todo, _ = pending_items(wh, kind.value, captioner, limit=limit, redo=redo, label_namer=namer)
    with progress() as bar:
        task = bar.add_task(f"{backend.value} {kind.value} captions", total=len(todo))
        summary = caption_visual(
            wh, kind.value, captioner=captioner, batch_size=batch_size, limit=limit, redo=redo,
            label_namer=namer, on_batch=lambda n: bar.advance(task, n),
        )
    for err in summary.pop("errors"):
        console.print(f"[yellow]failed[/] {err}", highlight=False)
    print_summary(f"caption-visual {backend.value} ({captioner.model or 'no model'})", dict(sorted(summary.items())))
