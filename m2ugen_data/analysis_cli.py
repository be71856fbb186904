"""``m2ugen-data analyze`` and ``m2ugen-data pairs mine``: the analysis and MUEdit mining commands.

Heavy imports (madmom, librosa, the analysers' models) happen inside the commands so ``m2ugen-data --help``
stays fast; only ``PairRules`` and ``MusicFilterConfig`` are imported up front, because their defaults are the
options' defaults; ``m2ugen_data.cli`` is imported lazily too, because it imports this module to register the
commands.
"""

from __future__ import annotations

from typing import Annotated

import typer

from m2ugen_data import defaults as D
from m2ugen_data.analysis.music_filter import MusicFilterConfig
from m2ugen_data.analysis.pairs import PairRules

analyze_app = typer.Typer(
    help="Measure tempo, beats, meter, key, chords, instruments/genre/mood/voice tags, loudness, speech, timbre "
    "and music-likeness of downloaded clips.",
    invoke_without_command=True,
    no_args_is_help=False,
)
# The pair rules' defaults are PairRules' own (one definition for the CLI, the flows and the Python API).
_RULES = PairRules()
_FILTER = MusicFilterConfig()  # likewise the music filter's bounds
pairs_app = typer.Typer(help="Mine MUEdit source/target pairs from the features manifest.", no_args_is_help=True)


def _filter_options(
    max_speech: float, min_lufs: float, max_lufs: float, no_label_check: bool, min_music_score: float | None
):
    return MusicFilterConfig(
        max_speech_ratio=max_speech,
        min_loudness_lufs=min_lufs,
        max_loudness_lufs=max_lufs,
        require_music_label=not no_label_check,
        min_music_score=min_music_score,
    )


MaxSpeech = Annotated[float, typer.Option(help="Music filter: largest speech ratio that still counts as music.")]
MinLufs = Annotated[float, typer.Option(help="Music filter: quietest integrated loudness (LUFS).")]
MaxLufs = Annotated[float, typer.Option(help="Music filter: loudest integrated loudness (LUFS).")]
NoLabelCheck = Annotated[bool, typer.Option(help="Music filter: do not require a music label.")]
MinMusicScore = Annotated[
    float | None,
    typer.Option(help="Music filter: lowest measured music-likeness (0..1; default: the calibrated threshold)."),
]


@analyze_app.callback()
def analyze(
    ctx: typer.Context,
    pool: Annotated[str | None, typer.Option(help="Only clips of this pool (mucaps, muedit, ...).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    limit: Annotated[int | None, typer.Option(help="Analyse at most this many clips.")] = None,
    batch_size: Annotated[int, typer.Option(help="Clips per features batch file.")] = 64,
    force: Annotated[bool, typer.Option(help="Re-analyse clips already analysed by this analyser version.")] = False,
    max_speech: MaxSpeech = _FILTER.max_speech_ratio,
    min_lufs: MinLufs = _FILTER.min_loudness_lufs,
    max_lufs: MaxLufs = _FILTER.max_loudness_lufs,
    no_label_check: NoLabelCheck = not _FILTER.require_music_label,
    min_music_score: MinMusicScore = _FILTER.min_music_score,
    max_duration: Annotated[
        float, typer.Option(help="Longest input in seconds (read from the header): longer is rejected as too_long.")
    ] = D.MAX_AUDIO_S,
    max_decode: Annotated[
        float, typer.Option(help="Inputs up to this many seconds are analysed whole; longer ones in windows.")
    ] = D.MAX_DECODE_S,
    windows: Annotated[
        int, typer.Option(help="Long inputs: standard-length windows analysed and aggregated (0: reject as too_long).")
    ] = D.LONG_AUDIO_WINDOWS,
) -> None:
    """Analyse downloaded clips (clips manifest, status ok) into the features manifest."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeRemainingColumn,
    )

    from m2ugen_data.analysis.analyze import Thresholds, analyze_clips, select_clips
    from m2ugen_data.cli_common import console, get_warehouse

    wh = get_warehouse(ctx)
    clips = select_clips(wh, pool=pool, limit=limit)
    if not clips:
        console.print("no downloaded clips to analyse" + (f" in pool {pool!r}" if pool else ""))
        return
    cfg = _filter_options(max_speech, min_lufs, max_lufs, no_label_check, min_music_score)
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("analysing", total=len(clips))
        summary = analyze_clips(
            wh,
            clips,
            workers=workers,
            batch_size=batch_size,
            force=force,
            filter_config=cfg,
            thresholds=Thresholds(max_duration_s=max_duration, max_decode_s=max_decode, windows=windows),
            progress=lambda n: bar.advance(task, n),
        )
    _print_analysis_summary(summary)
    if summary.outdated:
        console.print(
            f"{summary.outdated} clip(s) had features from an older analyser version (features schema < 2: no "
            "tags, chords or music score) and were analysed again; their old rows stay in the manifest history"
        )


def _print_analysis_summary(summary) -> None:
    from rich.table import Table

    from m2ugen_data.cli_common import console

    t = Table(title="analysis summary")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("clips requested", str(summary.requested))
    t.add_row("skipped (already analysed)", str(summary.skipped))
    t.add_row("skipped (claimed by another run)", str(summary.claimed_elsewhere))
    if summary.outdated:
        t.add_row("re-analysed (older analyser version)", str(summary.outdated))
    t.add_row("analysed", str(summary.analysed))
    for status, n in sorted(summary.status.items()):
        t.add_row(f"status {status}", str(n))
    for reason, n in sorted(summary.reasons.items()):
        t.add_row(f"  reason {reason}", str(n))
    if summary.analysed:
        t.add_row("wall seconds", f"{summary.wall_s:.1f}")
        t.add_row("clips / second", f"{summary.analysed / max(summary.wall_s, 1e-9):.2f}")
        for stage, secs in sorted(summary.timings.items()):
            t.add_row(f"  mean s/clip {stage}", f"{secs / summary.analysed:.3f}")
    console.print(t)


@analyze_app.command("filter")
def refilter_cmd(
    ctx: typer.Context,
    max_speech: MaxSpeech = _FILTER.max_speech_ratio,
    min_lufs: MinLufs = _FILTER.min_loudness_lufs,
    max_lufs: MaxLufs = _FILTER.max_loudness_lufs,
    no_label_check: NoLabelCheck = not _FILTER.require_music_label,
    min_music_score: MinMusicScore = _FILTER.min_music_score,
) -> None:
    """Re-apply the MUCaps music filter with new bounds (no audio is decoded; changed rows are rewritten)."""
    import pyarrow as pa

    from m2ugen_data.analysis.music_filter import refilter
    from m2ugen_data.cli_common import get_warehouse, print_arrow

    counts = refilter(
        get_warehouse(ctx), _filter_options(max_speech, min_lufs, max_lufs, no_label_check, min_music_score)
    )
    print_arrow(pa.Table.from_pylist([counts]), title="music filter")


@pairs_app.command("mine")
def mine(
    ctx: typer.Context,
    pool: Annotated[str | None, typer.Option(help="Only clips of this pool (default: all analysed clips).")] = None,
    tolerance: Annotated[float, typer.Option(help="Largest relative tempo difference.")] = _RULES.tolerance,
    k: Annotated[int, typer.Option("--k", help="Pairs per clip at most (both directions count).")] = _RULES.k,
    key_rule: Annotated[str, typer.Option(help="Key relation required: same | relative | any.")] = _RULES.key_rule,
    allow_double: Annotated[
        bool, typer.Option("--allow-double/--no-allow-double", help="Also pair clips at half or double tempo.")
    ] = _RULES.allow_double,
    min_conf: Annotated[float, typer.Option(help="Smallest beat (tempo) confidence of both clips.")] = _RULES.min_tempo_conf,
    max_loudness_diff: Annotated[float, typer.Option(help="Largest loudness difference (LU).")] = _RULES.max_loudness_diff,
    min_content_dist: Annotated[
        float, typer.Option(help="Content differs: instrument tag vectors at least this far apart (cosine)...")
    ] = _RULES.min_content_dist,
    min_sound_dist: Annotated[
        float, typer.Option(help="...or their timbre farther apart than this (clips with tags).")
    ] = _RULES.min_sound_dist,
    min_harmony_sim: Annotated[
        float, typer.Option(help="Keep only pairs sharing at least this fraction of beat chords (0: any music).")
    ] = _RULES.min_harmony_sim,
    max_jaccard: Annotated[
        float, typer.Option(help="Clips analysed without tags: label sets differ when Jaccard is below this...")
    ] = _RULES.max_label_jaccard,
    min_timbre_dist: Annotated[float, typer.Option(help="...or timbre distance is above this.")] = _RULES.min_timbre_dist,
    any_clip: Annotated[bool, typer.Option(help="Do not require the MUCaps music filter verdict.")] = False,
    window: Annotated[int, typer.Option(help="Neighbours per clip per sort order in the band join.")] = _RULES.window,
    threads: Annotated[int | None, typer.Option(help="DuckDB threads (default: all cores).")] = None,
    memory_limit: Annotated[str | None, typer.Option(help="DuckDB memory limit, e.g. 4GB.")] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Mine every clip again instead of only new or re-analysed ones.")
    ] = False,
) -> None:
    """Mine tempo- and beat-matched pairs that differ in measured content, preferring shared harmony.

    Incremental by default: the previous run's scored edges (warehouse ``cache/pairs/``) are reused and only
    pairs involving new or re-analysed clips are searched; the pairs equal a full re-mine's."""
    import pyarrow as pa

    from m2ugen_data.analysis.pairs import PairRules, mine_warehouse
    from m2ugen_data.cli_common import console, get_warehouse, print_arrow

    rules = PairRules(
        tolerance=tolerance,
        allow_double=allow_double,
        min_tempo_conf=min_conf,
        max_loudness_diff=max_loudness_diff,
        min_content_dist=min_content_dist,
        min_sound_dist=min_sound_dist,
        min_harmony_sim=min_harmony_sim,
        max_label_jaccard=max_jaccard,
        min_timbre_dist=min_timbre_dist,
        key_rule=key_rule,
        k=k,
        require_music=not any_clip,
        window=window,
    )
    wh = get_warehouse(ctx)
    with console.status("mining pairs (DuckDB band join, greedy degree cap)"):
        result, batch = mine_warehouse(wh, rules, pool, full=full, threads=threads, memory_limit=memory_limit)
    rows = [
        {"what": "clips in features", "value": result.clips},
        {"what": "eligible clips", "value": result.eligible},
        *({"what": f"clip rejected: {r}", "value": n} for r, n in sorted(result.clip_rejections.items())),
        {"what": "candidate pairs examined", "value": result.candidates},
        *({"what": f"pair rejected: {r}", "value": n} for r, n in sorted(result.pair_rejections.items())),
        {"what": "valid pairs", "value": result.valid},
        {"what": "pairs written", "value": result.pairs.num_rows},
        *({"what": f"clips with {d} pair(s)", "value": n} for d, n in sorted(result.degree_histogram.items())),
        {"what": "seconds", "value": round(result.timings.get("total", 0.0), 2)},
    ]
    print_arrow(pa.Table.from_pylist(rows), title=f"pairs mined -> manifests/pairs/{batch}.parquet")
