"""``build-muimage``: select, download (audio + video), choose a frame, analyse, caption music and image,
write dialogues, check the music is disjoint from MUCaps/MUEdit, shard (``input.jpg`` + ``output.flac``)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import params
from flows.params import (
    AudioSetSource,
    Pool,
    RunOptions,
    Source,
    SyntheticSource,
    TextBackends,
    VisualOptions,
)
from flows.runners import make_task_runner
from flows.visual import build_visual


@flow(name="build-muimage", task_runner=make_task_runner(), log_prints=True, persist_result=False)
def build_muimage(
    warehouse: str = "warehouse",
    source: Source = "synthetic",
    pool: Pool = "muimage",
    synthetic: SyntheticSource = params.SYNTHETIC,
    audioset: AudioSetSource = params.AUDIOSET,
    text: TextBackends = params.TEXT,
    visual: VisualOptions = params.VISUAL,
    run: RunOptions = params.RUN,
) -> dict[str, Any]:
    """MUImage: one frame per music video section with an image-to-music dialogue grounded in both captions."""
    return build_visual(
        "build-muimage", "muimage", warehouse=warehouse, source=source, pool=pool, synthetic=synthetic,
        audioset=audioset, text=text, visual=visual, run=run,
    )
