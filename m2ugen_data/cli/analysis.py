"""``m2ugen-data analyze`` and ``m2ugen-data analyze filter``: measure downloaded clips, re-apply the music filter.

Heavy imports (madmom, librosa, the analysers' models) happen inside the commands so ``m2ugen-data --help``
stays fast; only ``MusicFilterConfig`` is imported up front, because its defaults are the options' defaults.
"""

from __future__ import annotations

from typing import Annotated

import typer

from m2ugen_data import defaults as D
from m2ugen_data.analysis.music_filter import MusicFilterConfig
from m2ugen_data.cli.common import claimed_elsewhere, console, get_warehouse, print_arrow, print_summary, progress

app = typer.Typer(
    help="Measure tempo, beats, meter, key, chords, instruments/genre/mood/voice tags, loudness, speech, timbre "
    "and music-likeness of downloaded clips.",
    invoke_without_command=True,
    no_args_is_help=False,
)
# The music filter's defaults are MusicFilterConfig's own (one definition for the CLI, the flows and the Python API).
_FILTER = MusicFilterConfig()


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


@app.callback()
def analyze(
    ctx: typer.Context,
    pool: Annotated[str | None, typer.Option(help="Only clips of this pool (mucaps, muedit, ...).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: all cores; 1: in this process).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Analyse at most this many clips.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Clips per features batch file.")] = 64,
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
        int, typer.Option(min=0, help="Long inputs: standard-length windows analysed and aggregated (0: reject as too_long).")
    ] = D.LONG_AUDIO_WINDOWS,
) -> None:
    """Analyse downloaded clips (clips manifest, status ok) into the features manifest."""
    if ctx.invoked_subcommand is not None:
        return
    from m2ugen_data.analysis.analyze import Thresholds, analyze_clips, select_clips

    wh = get_warehouse(ctx)
    clips = select_clips(wh, pool=pool, limit=limit)
    if not clips:
        console.print("no downloaded clips to analyse" + (f" in pool {pool!r}" if pool else ""))
        return
    cfg = _filter_options(max_speech, min_lufs, max_lufs, no_label_check, min_music_score)
    with progress() as bar:
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
    rows: dict[str, object] = {
        "clips requested": summary.requested,
        "skipped (already analysed)": summary.skipped,
        "skipped (claimed by another run)": claimed_elsewhere(summary.claimed_elsewhere, summary.claimed_by),
    }
    if summary.outdated:
        rows["re-analysed (older analyser version)"] = summary.outdated
    rows["analysed"] = summary.analysed
    rows |= {f"status {status}": n for status, n in sorted(summary.status.items())}
    rows |= {f"  reason {reason}": n for reason, n in sorted(summary.reasons.items())}
    if summary.analysed:
        rows["wall seconds"] = f"{summary.wall_s:.1f}"
        rows["clips / second"] = f"{summary.analysed / max(summary.wall_s, 1e-9):.2f}"
        rows |= {f"  mean s/clip {stage}": f"{secs / summary.analysed:.3f}" for stage, secs in sorted(summary.timings.items())}
    print_summary("analysis summary", rows)


@app.command("filter")
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

    counts = refilter(
        get_warehouse(ctx), _filter_options(max_speech, min_lufs, max_lufs, no_label_check, min_music_score)
    )
    print_arrow(pa.Table.from_pylist([counts]), title="music filter")
