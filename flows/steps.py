"""Flow building blocks shared by every ``build-*`` flow: acquire clips, fan out batches, caption, write
dialogues, finish with shards and a summary artifact.

They run inside a flow (the flow's task runner executes what they submit) and only plan work from the
warehouse and hand it to the tasks in ``flows.tasks``. Planning skips what the warehouse already holds, so
a rerun submits no task for finished batches; the stage functions check again inside each task, which keeps
two overlapping runs from duplicating work. The MUImage/MUVideo flows (``flows.visual``) are these steps plus
their media and visual-caption steps, and a music-disjointness check that ``finish`` enforces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.futures import wait

from flows import tasks
from flows.params import (
    AudioSetSource,
    RunOptions,
    Source,
    SyntheticSource,
    TextBackends,
)
from flows.summary import summary_markdown
from m2ugen_data.compact import compact_if_needed
from m2ugen_data.warehouse import Warehouse, open_warehouse

T = TypeVar("T")
LOCAL_MODEL_BACKENDS = frozenset({"mu-llama", "transformers", "vllm"})  # one model in memory: one batch at a time


def resolve_root(warehouse: str) -> str:
    """The absolute warehouse root, so tasks in other processes or working directories see the same one."""
    return str(open_warehouse(warehouse).root)


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def fan_out(task: Any, batches: Iterable[Any], batch_arg: str, *, name: str, sequential: bool = False, **kwargs: Any) -> list[dict]:
    """Run ``task`` once per batch on the flow's task runner and return the results in batch order.

    Every batch runs to its end before a failure is raised, so the batches that succeeded are written and
    a rerun only redoes the failed ones. ``sequential`` runs one batch at a time (a local GPU model).
    """
    batches = list(batches)
    named = [task.with_options(task_run_name=f"{name}-{i:05d}") for i in range(len(batches))]
    if sequential:
        return [t(**{batch_arg: b}, **kwargs) for t, b in zip(named, batches)]
    futures = [t.submit(**{batch_arg: b}, **kwargs) for t, b in zip(named, batches)]
    wait(futures)
    failed = [f for f in futures if not f.state.is_completed()]
    if failed:
        failed[0].result()  # raises the task's exception
    return [f.result() for f in futures]


def merge_counts(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the task results key by key (numbers add up, nested dicts merge the same way)."""
    out: dict[str, Any] = {}
    for r in results:
        for k, v in r.items():
            if isinstance(v, Mapping):
                out[k] = merge_counts([out.get(k, {}), v])
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
    return out


# --------------------------------------------------------------------------- steps


# Clip ids follow from the synthetic seed alone, so each dataset renders its own corpus in its own seed
# namespace: otherwise two flows on the default seed in one warehouse would import the same clips into two
# pools (the later import moving them), and MUImage/MUVideo music would overlap MUEdit's.
SYNTH_NAMESPACES = {"muedit": ("synth", 0), "muimage": ("synth-muimage", 1_000_000),
                    "muvideo": ("synth-muvideo", 2_000_000), "mucaps": ("synth-mucaps", 3_000_000)}


def own_corpus(root: str, dataset: str, pool: str, synthetic: SyntheticSource) -> SyntheticSource:
    """The synthetic source ``dataset`` renders: its own directory (unless one is given; a pool other than
    the dataset's own gets ``synth-<pool>``) and always its own seed namespace (``seed`` + a per-dataset offset)."""
    directory, offset = SYNTH_NAMESPACES[dataset]
    if pool != dataset:
        directory = f"synth-{pool}"
    return synthetic.model_copy(
        update={"corpus_dir": synthetic.corpus_dir or str(Path(root) / directory), "seed": synthetic.seed + offset}
    )


def acquire(root: str, source: Source, synthetic: SyntheticSource, audioset: AudioSetSource, pool: str) -> dict[str, Any]:
    """Segments and audio of ``pool`` into the warehouse: render + import the synthetic corpus, or select the
    AudioSet music segments (all pools, by stable hash) and download this pool's clips."""
    if source == "synthetic":
        corpus = synthetic.corpus_dir or str(Path(root) / "synth")
        return {"render": tasks.render_synthetic(corpus, synthetic), "import": tasks.import_synthetic_clips(root, corpus, pool)}
    return {"select": tasks.select_audioset(root, audioset), "download": tasks.download_audioset(root, audioset, pool)}


def analysis_todo(wh: Warehouse, pool: str) -> tuple[dict[str, str], int]:
    """Downloaded clips of ``pool`` without a current analysis (ok or rejected by this analyser version),
    and how many already have one. Failed analyses are tried again, as ``analyze_clips`` does."""
    from m2ugen_data.analysis.analyze import analysed_state, select_clips

    clips = select_clips(wh, pool)
    done_ids, _ = analysed_state(wh, list(clips))  # the same rule as analyze_clips (re-downloads included)
    todo = {cid: str(path) for cid, path in clips.items() if cid not in done_ids}
    return todo, len(clips) - len(todo)


def analyse(root: str, pool: str, run: RunOptions, *, only: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Analyse the pool's clips not analysed yet (those accepted by ``only``, e.g. clips whose video passed)."""
    todo, done = analysis_todo(open_warehouse(root), pool)
    if only is not None:
        todo = {c: p for c, p in todo.items() if only(c)}
    batches = [dict(b) for b in chunked(sorted(todo.items()), run.batch_size)]
    results = fan_out(tasks.analyse_batch, batches, "clips", name="analyse", root=root)
    return {"planned": len(todo), "already_done": done, "batches": len(batches), **merge_counts(results)}


def caption_music(
    root: str, pool: str, backends: TextBackends, run: RunOptions, *, only: Callable[[str], bool] | None = None,
    ontology: str | None = None,
) -> dict[str, Any]:
    """Caption the analysed clips of ``pool`` accepted by ``only`` (clips already captioned the same way are
    skipped by ``write_captions``)."""
    from m2ugen_data.captions.inputs import caption_items

    items = caption_items(open_warehouse(root), tasks.label_namer(root, ontology), pool)
    items = [i for i in items if only is None or only(i.item_id)]
    results = fan_out(
        tasks.caption_batch, chunked(items, run.caption_batch_size), "items", name="caption",
        sequential=backends.caption_backend in LOCAL_MODEL_BACKENDS,
        root=root, backends=backends, batch_size=run.caption_batch_size,
    )
    return {"items": len(items), **merge_counts(results)}


def write_dialogues(root: str, dataset: str, backends: TextBackends, run: RunOptions, *, ontology: str | None = None) -> dict[str, Any]:
    """Dialogues for every sample of ``dataset`` whose captions exist; samples without them are counted."""
    from m2ugen_data.dialogues.samples import load_samples

    samples, skipped = load_samples(open_warehouse(root), dataset, tasks.label_namer(root, ontology), backends.caption_backend)
    results = fan_out(
        tasks.dialogue_batch, chunked(list(samples), run.dialogue_batch_size), "samples", name="dialogue",
        sequential=backends.dialogue_backend in LOCAL_MODEL_BACKENDS,
        root=root, backends=backends, batch_size=run.dialogue_batch_size,
    )
    return {"samples": len(samples), "not_buildable": dict(skipped), **merge_counts(results)}


def finish(
    flow_name: str, root: str, dataset: str, pool: str, run: RunOptions, run_counts: dict[str, Any],
    shard_options: dict[str, Any] | None = None, *, music_check: dict[str, Any] | None = None,
    allow_music_overlap: bool = False,
) -> dict[str, Any]:
    """Write the shards, summarise the warehouse, publish the summary as Prefect artifacts and return it.

    ``music_check`` (the ``music_disjointness`` task's result) goes into the summary; when it found overlaps
    and ``allow_music_overlap`` is off, no shard is written, the summary is still published (so the overlaps
    can be read in the artifact), and the flow fails with ``MusicOverlapError``.
    """
    blocked = bool(music_check and music_check["overlaps"]) and not allow_music_overlap
    if blocked:
        shards: dict[str, Any] = {"shards": 0, "samples": 0, "bytes": 0, "skipped": {}, "files": []}
    else:
        shards = tasks.write_shards(root, dataset, run, shard_options)
    summary = tasks.summarise(root, dataset, pool)
    compact_if_needed(open_warehouse(root))  # merge small batches once a manifest has many (compact.py)
    tasks.refresh_catalog(root)
    summary["failures"].update({f"shard:{k}": v for k, v in shards["skipped"].items()})
    summary.update(
        flow=flow_name, warehouse=root,
        run={**run_counts, "shards": {k: shards[k] for k in ("shards", "samples", "bytes")}},
        shard_files=shards["files"],
    )
    if music_check is not None:
        summary["music_check"] = {**music_check, "allowed": allow_music_overlap, "blocked": blocked}
        summary["failures"].update({f"music-overlap:{k}": v for k, v in music_check["by_match"].items()})
    publish(summary)
    if blocked:
        from m2ugen_data.shards.disjoint import MusicOverlapError

        raise MusicOverlapError(
            f"{music_check['message']}; {dataset} shards not written (set allow_music_overlap to write them anyway)"
        )
    return summary


def publish(summary: dict[str, Any]) -> None:
    """A table artifact (counts by stage and failures by class) and a Markdown report, keyed by flow."""
    rows = [{"kind": "count", "name": k, "value": v} for k, v in summary["counts"].items()]
    rows += [{"kind": "failure", "name": k, "value": v} for k, v in summary["failures"].items()]
    key = summary["flow"].lower()
    create_table_artifact(rows, key=f"{key}-summary", description=f"{summary['flow']}: warehouse counts and failures by class")
    create_markdown_artifact(summary_markdown(summary), key=f"{key}-report", description=f"{summary['flow']} run report")
    publish_card(summary["warehouse"], key)


def publish_card(root: str, key: str) -> Path | None:
    """Rewrite the warehouse's dataset card (``<warehouse>/report``) and link it as the ``<key>-card`` artifact.

    The datasets are written by now, so a card that cannot be written (a user error such as a foreign
    ``report`` directory) is said in the artifact instead of failing the run.
    """
    from m2ugen_data.errors import M2UGenError
    from m2ugen_data.report import write_report  # matplotlib and Jinja load only when a flow finishes

    try:
        index = write_report(Warehouse(Path(root)))
    except M2UGenError as e:
        create_markdown_artifact(f"Dataset card not written: {e}", key=f"{key}-card", description="dataset card")
        return None
    create_link_artifact(index.as_uri(), link_text=f"dataset card: {index}", key=f"{key}-card", description="dataset card (open in a browser)")
    return index
