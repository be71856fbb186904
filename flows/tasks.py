"""The Prefect tasks: each one calls one ``m2ugen_data`` stage function and returns plain counts.

Why tasks look like this:
- Arguments are the warehouse root (a string) and plain data, never open handles, so the same task runs in
  a thread, a process pool or on a Dask worker that mounts the same warehouse.
- The stage functions already turn bad input (a corrupt file, an analysis that fails, a rejected dialogue)
  into manifest rows, so an exception out of a task means infrastructure trouble (a full disk, a dropped
  mount, a server that went away): those are retried with jittered exponential backoff. User errors
  (``M2UGenError``: a missing CSV, a bad option) fail at once, except warehouse I/O errors.
- Nothing relies on Prefect's result cache (``NO_CACHE``): completed work is skipped because the warehouse
  holds it, keyed by clip and stage, which also survives a lost Prefect database.
- Models (captioners, dialogue backends, the ontology) are built once per worker process and reused.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows.params import (
    AudioSetSource,
    PairOptions,
    RunOptions,
    SyntheticSource,
    TextBackends,
    VisualOptions,
)
from flows.dask_checks import visible_warehouse
from m2ugen_data.errors import M2UGenError, WarehouseError
from m2ugen_data.warehouse import Warehouse


def _retry_infrastructure(task: Any, task_run: Any, state: Any) -> bool:
    """Retry anything but a user error; a warehouse I/O error may be a passing mount or disk problem."""
    try:
        state.result()
    except WarehouseError:
        return True
    except M2UGenError:
        return False
    except BaseException:  # noqa: BLE001 - the point is to classify whatever the task raised
        return True
    return False


stage_task = functools.partial(
    task,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=_retry_infrastructure,
    cache_policy=NO_CACHE,
    persist_result=False,
)


def _wh(root: str) -> Warehouse:
    """The warehouse as this worker sees it; a worker without the shared mount fails naming path and host
    (``open_warehouse`` would create an empty one on its local disk and the batch's rows would be lost there)."""
    return visible_warehouse(root)


@functools.cache
def _ontology(location: str | None, cache_dir: str):
    from m2ugen_data.audioset.ontology import load_ontology

    return load_ontology(location, cache_dir=Path(cache_dir))


def label_namer(root: str, ontology: str | None = None):
    return _ontology(ontology, str(Path(root) / "cache")).name


# --------------------------------------------------------------------------- acquire clips


@stage_task(name="render-synthetic")
def render_synthetic(corpus_dir: str, source: SyntheticSource) -> dict[str, Any]:
    """Render the corpus unless ``corpus_dir`` already holds this one (same size and seed)."""
    from m2ugen_data.synth import load_truth, render_corpus

    out = Path(corpus_dir)
    if (out / "segments.csv").is_file() and (out / "truth.parquet").is_file():
        try:
            truth = load_truth(out)
        except M2UGenError:
            truth = None
        planted = 2 if source.plant_contamination else 0
        if truth is not None and truth.num_rows == source.n + planted and set(truth.column("seed").to_pylist()) == {source.seed}:
            return {"rendered": 0, "clips": truth.num_rows}
    summary = render_corpus(
        n=source.n, seed=source.seed, out_dir=out,
        sibling_fraction=source.sibling_fraction, trouble_fraction=source.trouble_fraction,
        plant_contamination=source.plant_contamination,
    )
    return {"rendered": summary["clips"], "clips": summary["clips"]}


@stage_task(name="import-synthetic")
def import_synthetic_clips(root: str, corpus_dir: str, pool: str) -> dict[str, Any]:
    """The "download" of the synthetic source: segments + clips rows, audio copied into the warehouse."""
    from m2ugen_data.audioset.synthetic_import import import_synthetic

    report = import_synthetic(_wh(root), corpus_dir, pool)
    return {"selected": report.selection.selected, "ok": report.ok, "failed": len(report.failed),
            "eval_excluded": report.selection.eval_excluded}


@stage_task(name="select-audioset")
def select_audioset(root: str, source: AudioSetSource) -> dict[str, Any]:
    from m2ugen_data.audioset.selection import SelectionPolicy, select_segments
    from m2ugen_data.audioset.eval_exclusion import make_exclusion

    wh = _wh(root)
    policy = SelectionPolicy(exclude_labels=tuple(source.exclude_labels), require_instrument=source.require_instrument)
    exclusion = make_exclusion(source.exclude_eval, default_lists=source.default_eval, span=source.span,
                               window_s=source.window_s)
    reports = select_segments(
        wh, source.segments, ontology=_ontology(source.ontology, str(wh.root / "cache")), policy=policy,
        limit=source.limit, exclusion=exclusion,
    )
    pools: dict[str, int] = {}
    excluded: dict[str, int] = {}
    for r in reports:
        for p, n in r.pools.items():
            pools[p] = pools.get(p, 0) + n
        for name, n in r.eval_excluded.items():
            excluded[name] = excluded.get(name, 0) + n
    return {"selected": sum(r.selected for r in reports), "rejected_rows": sum(len(r.rejects) for r in reports),
            "pools": pools, "eval_excluded": excluded}


@stage_task(name="download-audioset")
def download_audioset(root: str, source: AudioSetSource, pool: str) -> dict[str, Any]:
    """One task for the whole pool: ``download_clips`` has its own worker threads, per-host rate limit,
    per-clip retries and resumable manifest batches."""
    from m2ugen_data.audioset.download import DownloadConfig, download_clips

    config = DownloadConfig(
        url_template=source.url_template, pools=(pool,), limit=source.download_limit,
        concurrency=source.download_concurrency, requests_per_s=source.requests_per_s, retry_failed=source.retry_failed,
        span=source.span, window_s=source.window_s, max_duration_s=source.max_duration_s,
    )
    s = download_clips(_wh(root), config)
    return {
        "planned": s.planned, "skipped": s.skipped_done + s.skipped_permanent, "ok": s.ok,
        "failed": dict(s.failed), "attempts": s.attempts,
    }


# --------------------------------------------------------------------------- analyse, filter, mine


@stage_task(name="analyse-batch")
def analyse_batch(root: str, clips: dict[str, str]) -> dict[str, Any]:
    """Analyse one batch in this worker (its models load once per process) and write one features batch,
    named by its clip ids, so a batch killed midway is simply redone and a finished one is never rewritten."""
    from m2ugen_data.analysis.analyze import analyze_clips

    s = analyze_clips(_wh(root), clips, workers=0, batch_size=max(1, len(clips)))
    return {"analysed": s.analysed, "skipped": s.skipped, "status": dict(s.status), "reasons": dict(s.reasons)}


@stage_task(name="music-filter")
def music_filter(root: str) -> dict[str, Any]:
    """Re-apply the music filter bounds to analysed rows; writes only the rows whose verdict changed."""
    from m2ugen_data.analysis.music_filter import MusicFilterConfig, refilter

    return refilter(_wh(root), MusicFilterConfig())


@stage_task(name="dedup")
def dedup_clips(root: str) -> dict[str, Any]:
    """Near-duplicate groups over the whole warehouse (incremental): fingerprints missing from older analyses
    first, then the groups; every dataset keeps one member of a group (``m2ugen_data.dedup``)."""
    from m2ugen_data.dedup.backfill import fingerprint_missing
    from m2ugen_data.dedup.groups import find_duplicates

    wh = _wh(root)
    filled = fingerprint_missing(wh, workers=1)
    s = find_duplicates(wh)
    return {"fingerprinted_now": filled.todo, "not_fingerprinted": dict(s.not_fingerprinted), "searched": s.new,
            "candidates": s.candidates, "groups": s.groups, "dropped": s.dropped}


@stage_task(name="mine-pairs")
def mine_pairs(root: str, pool: str, options: PairOptions) -> dict[str, Any]:
    from m2ugen_data.pairs.mine import mine_warehouse
    from m2ugen_data.pairs.rules import PairRules

    rules = PairRules(
        tolerance=options.tolerance,
        allow_double=options.allow_double,
        key_rule=options.key_rule,
        k=options.k,
        min_harmony_sim=options.min_harmony_sim,
    )
    result, _ = mine_warehouse(_wh(root), rules, pool)
    return {
        "pairs": result.pairs.num_rows, "eligible": result.eligible, "clips": result.clips,
        "clip_rejections": dict(result.clip_rejections), "pair_rejections": dict(result.pair_rejections),
    }


# --------------------------------------------------------------------------- text


@functools.cache
def _captioner(backend: str, model_dir: str | None, device: str):
    from m2ugen_data.captions.factory import make_captioner

    opts = {"model_dir": Path(model_dir) if model_dir else None, "device": device} if backend == "mu-llama" else {}
    return make_captioner(backend, **opts)


@stage_task(name="caption-batch")
def caption_batch(root: str, items: Sequence[Any], backends: TextBackends, batch_size: int) -> dict[str, Any]:
    """Caption ``CaptionItem``s not yet captioned the same way (``write_captions`` skips the rest)."""
    from m2ugen_data.captions.writer import write_captions

    captioner = _captioner(backends.caption_backend, backends.caption_model_dir, backends.device)
    s = write_captions(_wh(root), captioner, list(items), batch_size=batch_size)
    return {"total": s.total, "cached": s.cached, "written": s.written, "failed": dict(s.failed)}


@functools.cache
def dialogue_backend(backends: TextBackends, batch_size: int):
    """The dialogue backend with the CLI's option mapping (each backend takes only its own options)."""
    from m2ugen_data import defaults
    from m2ugen_data.dialogues.backend import GenerationParams
    from m2ugen_data.dialogues.factory import backend_options, make_backend

    opts = backend_options(
        backends.dialogue_backend, model=backends.dialogue_model, base_url=backends.base_url,
        device=backends.device, dtype=backends.dtype, batch_size=batch_size, concurrency=backends.concurrency,
        timeout=backends.timeout_s, vllm_extras=defaults.OPENAI_VLLM_EXTRAS, tensor_parallel_size=defaults.VLLM_TENSOR_PARALLEL,
        max_model_len=defaults.VLLM_MAX_MODEL_LEN, params=GenerationParams(), prompt_format=backends.prompt_format,
    )
    return make_backend(backends.dialogue_backend, **opts)


@stage_task(name="dialogue-batch")
def dialogue_batch(root: str, samples: Sequence[Any], backends: TextBackends, batch_size: int) -> dict[str, Any]:
    """Generate, validate and record dialogues; samples already answered under the same prompt are skipped."""
    from m2ugen_data.dialogues.writer import write_dialogues

    wh = _wh(root)
    backend = dialogue_backend(backends, batch_size)
    s = write_dialogues(wh, list(samples), backend, batch_size=batch_size, max_attempts=backends.max_attempts,
                        base_seed=backends.seed, retry_rejected=backends.retry_rejected)
    return {
        "total": len(samples), "cached": s.cached, "rejected_before": s.rejected_before,
        "accepted": s.accepted, "rejected": s.rejected, "reasons": dict(s.reasons),
    }


# --------------------------------------------------------------------------- images and videos (MUImage, MUVideo)


def media_options(kind: str, options: VisualOptions) -> dict[str, Any]:
    """The frame or clip extractor's own options (``vision.frames.extract_frame``, ``vision.clips.normalise_clip``)."""
    return {"n": options.frame_candidates} if kind == "image" else {"fps": options.fps, "short_side": options.short_side}


@stage_task(name="media-batch")
def media_batch(root: str, kind: str, clip_ids: Sequence[str], options: VisualOptions) -> dict[str, Any]:
    """Frames (image) or normalised clips (video) for one planned batch, written as one ``visual_media``
    batch named by its clip ids: a batch killed midway is redone whole, a finished one never rewritten."""
    from m2ugen_data.vision.media_stage import run_media

    counts = run_media(_wh(root), kind, clip_ids=list(clip_ids), workers=1, chunk=max(1, len(clip_ids)), **media_options(kind, options))
    status = {k: v for k, v in counts.items() if ":" not in k}
    reasons = {k: v for k, v in counts.items() if ":" in k}
    return {"processed": sum(status.values()), "status": status, "reasons": reasons}


@functools.cache
def _visual_captioner(backend: str, model_dir: str | None, device: str, dtype: str):
    from m2ugen_data.vision.caption_stage import make_visual_captioner

    opts = {} if backend == "grounded" else {"model_dir": Path(model_dir) if model_dir else None, "device": device, "dtype": dtype}
    return make_visual_captioner(backend, **opts)


@stage_task(name="visual-caption-batch")
def visual_caption_batch(
    root: str, kind: str, clip_ids: Sequence[str], options: VisualOptions, ontology: str | None = None
) -> dict[str, Any]:
    """Caption the ok frames or clips among ``clip_ids`` not yet captioned the same way (cached ones skipped)."""
    from m2ugen_data.vision.caption_stage import caption_visual

    captioner = _visual_captioner(options.caption_backend, options.caption_model_dir, options.device, options.dtype)
    s = caption_visual(
        _wh(root), kind, captioner=captioner, batch_size=options.caption_batch_size, clip_ids=set(clip_ids),
        label_namer=label_namer(root, ontology),
    )
    return {k: s[k] for k in ("items", "cached", "captioned", "empty", "failed")}


@stage_task(name="music-disjointness")
def music_disjointness(root: str, dataset: str, pool: str) -> dict[str, Any]:
    """The music this dataset is about to shard against MUCaps and MUEdit (manifests and shards)."""
    from m2ugen_data.shards import visual_sample_keys
    from m2ugen_data.shards.disjoint import check_dataset_music

    wh = _wh(root)
    report = check_dataset_music(wh, dataset, visual_sample_keys(wh, dataset, pool=pool))
    return {
        "dataset": dataset, "checked": report.checked, "against": report.against, "overlaps": report.overlaps,
        "by_match": report.by_match, "message": report.message() if report.overlaps else None,
    }


# --------------------------------------------------------------------------- shards and summary


@stage_task(name="write-shards")
def write_shards(root: str, dataset: str, run: RunOptions, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dataset's complete shard set, rewritten byte-identically when its inputs are unchanged.
    ``options`` go to the dataset's sample source (MUCaps: ``pool``, ``caption_backends``; MUImage/MUVideo: ``pool``)."""
    from m2ugen_data.shards import build_dataset_shards

    build = build_dataset_shards(
        _wh(root),
        dataset,
        max_samples=run.shard_max_samples,
        max_bytes=run.shard_max_bytes,
        workers=run.shard_workers,
        **(options or {}),
    )
    return {
        "shards": len(build.shards), "samples": build.samples, "bytes": build.bytes, "skipped": dict(build.skipped),
        "files": [{k: r[k] for k in ("path", "samples", "bytes", "sha256")} for r in build.shards],
    }


@stage_task(name="summarise", retries=0)
def summarise(root: str, dataset: str, pool: str) -> dict[str, Any]:
    from flows.summary import warehouse_summary

    return warehouse_summary(_wh(root), dataset, pool)


@stage_task(name="refresh-catalog", retries=0)
def refresh_catalog(root: str) -> str:
    """Rewrite ``catalog.duckdb`` so DuckDB clients opened on the warehouse see every manifest after a run.

    A catalog held open by another process (DuckDB locks the file) is a warning, not a failed run: the
    manifests are complete either way, and `m2ugen-data catalog` rewrites it later.
    """
    try:
        return str(_wh(root).refresh_catalog())
    except WarehouseError as e:
        get_run_logger().warning("catalog.duckdb not refreshed: %s (run `m2ugen-data catalog` later)", e)
        return ""
