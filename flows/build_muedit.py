"""``build-muedit``: select, download, analyse, mine pairs, caption both sides, write dialogues, shard."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import params, steps, tasks
from flows.params import (
    AudioSetSource,
    PairOptions,
    Pool,
    RunOptions,
    Source,
    SyntheticSource,
    TextBackends,
)
from flows.runners import make_task_runner


@flow(name="build-muedit", task_runner=make_task_runner(), log_prints=True, persist_result=False)
def build_muedit(
    warehouse: str = "warehouse",
    source: Source = "synthetic",
    pool: Pool = "muedit",
    synthetic: SyntheticSource = params.SYNTHETIC,
    audioset: AudioSetSource = params.AUDIOSET,
    text: TextBackends = params.TEXT,
    pairs: PairOptions = params.PAIRS,
    run: RunOptions = params.RUN,
) -> dict[str, Any]:
    """MUEdit: tempo- and meter-matched pairs of music clips with a two-turn edit dialogue each."""
    root = steps.resolve_root(warehouse)
    ontology = audioset.ontology if source == "audioset" else None
    synthetic = steps.own_corpus(root, "muedit", pool, synthetic)
    counts: dict[str, Any] = {"acquire": steps.acquire(root, source, synthetic, audioset, pool)}
    counts["analyse"] = steps.analyse(root, pool, run)
    counts["dedup"] = tasks.dedup_clips(root)  # before mining: MUEdit never pairs two members of a group
    counts["pairs"] = tasks.mine_pairs(root, pool, pairs)
    paired = _paired_clips(root, pool)
    counts["caption"] = steps.caption_music(root, pool, text, run, only=paired.__contains__, ontology=ontology)
    counts["dialogue"] = steps.write_dialogues(root, "muedit", text, run, ontology=ontology)
    return steps.finish("build-muedit", root, "muedit", pool, run, counts)


def _paired_clips(root: str, pool: str) -> set[str]:
    """Both sides of every mined pair of the pool: only these clips need a caption for MUEdit."""
    from m2ugen_data.warehouse import open_warehouse

    pairs = open_warehouse(root).read("pairs").to_pylist()
    return {c for p in pairs for c in (p["src_id"], p["tgt_id"])}
