"""``build-mucaps``: select, download, analyse, filter, caption, shard."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import params, steps, tasks
from flows.params import (
    AudioSetSource,
    Pool,
    RunOptions,
    Source,
    SyntheticSource,
    TextBackends,
)
from flows.runners import make_task_runner


@flow(name="build-mucaps", task_runner=make_task_runner(), log_prints=True, persist_result=False)
def build_mucaps(
    warehouse: str = "warehouse",
    source: Source = "synthetic",
    pool: Pool = "mucaps",
    synthetic: SyntheticSource = params.SYNTHETIC,
    audioset: AudioSetSource = params.AUDIOSET,
    text: TextBackends = params.TEXT,
    run: RunOptions = params.RUN,
) -> dict[str, Any]:
    """MUCaps: music clips that pass the music filter, each with a caption.

    As the paper built it: the released MUCaps is each video's *whole* audio, not its 10 s AudioSet segment
    (21,966 files, 1,274 h, about 209 s a file; ``shared/DESIGN.md``). So with ``source="audioset"`` the default
    ``audioset.span="auto"`` downloads the whole audio of every MUCaps video (up to ``audioset.max_duration_s``,
    an hour; a longer video keeps an hour around its segment); analysis reads long audio as windows of the
    segment length and aggregates them (``analysis/windows.py``), so the features and the caption describe the
    whole file. ``audioset.span="segment"`` builds the 10 s variant instead.
    """
    root = steps.resolve_root(warehouse)
    ontology = audioset.ontology if source == "audioset" else None
    synthetic = steps.own_corpus(root, "mucaps", pool, synthetic)
    counts: dict[str, Any] = {"acquire": steps.acquire(root, source, synthetic, audioset, pool)}
    counts["analyse"] = steps.analyse(root, pool, run)
    counts["dedup"] = tasks.dedup_clips(root)
    counts["filter"] = tasks.music_filter(root)
    music = _music_clips(root)
    counts["caption"] = steps.caption_music(root, pool, text, run, only=music.__contains__, ontology=ontology)
    options = {"pool": pool, "caption_backends": [text.caption_backend]}
    return steps.finish("build-mucaps", root, "mucaps", pool, run, counts, options)


def _music_clips(root: str) -> set[str]:
    """Clips that passed the music filter: only these are captioned and sharded for MUCaps."""
    from m2ugen_data.warehouse import open_warehouse

    table = open_warehouse(root).read("features", where="status = 'ok' AND is_music")
    return set(table.column("clip_id").to_pylist())
