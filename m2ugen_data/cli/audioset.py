"""``m2ugen-data audioset select | download | import-synthetic | status``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from m2ugen_data import defaults as D
from m2ugen_data.cli.common import claimed_elsewhere, console, get_warehouse, print_arrow, print_summary, progress
from m2ugen_data.errors import M2UGenError

app = typer.Typer(help="AudioSet: select music segments into pools, download them, or import the synthetic corpus.",
                  no_args_is_help=True)

DEFAULT_SEGMENTS = list(D.SEGMENT_LISTS)


def _proportions(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise M2UGenError(f"--pool-proportions: expected pool=fraction pairs, got {part!r}") from None
    return out


@app.command()
def select(
    ctx: typer.Context,
    segments: Annotated[list[str] | None, typer.Option(
        "--segments", "-s", help="Segment list: a path, a URL, or balanced_train / eval / unbalanced_train "
        "(official addresses, cached in the warehouse). Repeatable; default: all three official lists.")] = None,
    ontology: Annotated[str | None, typer.Option(help="Ontology path or URL (default: the bundled copy).")] = None,
    exclude_label: Annotated[list[str] | None, typer.Option(
        "--exclude-label", help="Drop segments with this label or one below it (id or name, e.g. Speech).")] = None,
    require_instrument: Annotated[bool, typer.Option(help="Keep only segments with a musical instrument label.")] = False,
    pool_proportions: Annotated[str | None, typer.Option(
        help="e.g. 'mucaps=0.55,muedit=0.25,muimage=0.1,muvideo=0.1' (normalised to sum 1).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Keep at most N segments in all (for trial runs).")] = None,
    exclude_eval: Annotated[list[str] | None, typer.Option(
        "--exclude-eval", help="An evaluation list (CSV with ytid[,start_s,end_s]; NAME=PATH names it) whose "
        "segments training must not hold; repeatable, added to the bundled lists.")] = None,
    default_eval: Annotated[bool, typer.Option(
        "--default-eval/--no-default-eval", help="Also exclude the bundled evaluation lists (MusicCaps).")] = True,
    span: Annotated[str, typer.Option(help="The span downloads will use (auto, segment, window, full): a video "
                                           "whose kept audio could hold an evaluation segment is excluded.")] = D.DOWNLOAD_SPAN,
    window: Annotated[float, typer.Option(help="--span window: seconds kept, centred on the segment.")] = D.SPAN_WINDOW_S,
) -> None:
    """Select music segments, split them into disjoint pools by a hash of the YouTube ID, write `segments`.
    Segments whose kept audio could hold an evaluation segment (MusicCaps by default) are rejected."""
    from pydantic import ValidationError

    from m2ugen_data.audioset.ontology import load_ontology
    from m2ugen_data.audioset.selection import POOLS, SelectionPolicy, select_segments
    from m2ugen_data.audioset.eval_exclusion import make_exclusion

    wh = get_warehouse(ctx)
    exclusion = make_exclusion(exclude_eval or (), default_lists=default_eval, span=span, window_s=window)
    onto = load_ontology(ontology, cache_dir=wh.root / "cache")
    try:
        kwargs = {"exclude_labels": tuple(onto.mid(x) for x in exclude_label or ()), "require_instrument": require_instrument}
        props = _proportions(pool_proportions)
        policy = SelectionPolicy(**kwargs, **({"pool_proportions": props} if props else {}))
    except ValidationError as e:
        raise M2UGenError(f"invalid selection policy: {e.errors()[0]['msg']}") from None
    reports = select_segments(wh, segments or DEFAULT_SEGMENTS, ontology=onto, policy=policy, limit=limit,
                              exclusion=exclusion)
    t = Table(title=escape(f"segments -> {wh.root}"))
    t.add_column("")
    for r in reports:
        t.add_column(r.source, justify="right")
    metrics = {
        "rows": lambda r: r.rows, "rejected rows": lambda r: len(r.rejects), "music": lambda r: r.music,
        "excluded by policy": lambda r: r.excluded,
        **{f"excluded: {e.name} eval": (lambda r, n=e.name: r.eval_excluded.get(n, 0)) for e in exclusion.lists},
        "duplicates": lambda r: r.duplicates,
        "selected": lambda r: r.selected, **{f"pool {p}": (lambda r, p=p: r.pools.get(p, 0)) for p in POOLS},
    }
    for name, get in metrics.items():
        t.add_row(name, *(str(get(r)) for r in reports))
    t.add_row("batch", *(r.batch_id or "" for r in reports))
    console.print(t)
    if not exclusion.lists:
        console.print("[yellow]no evaluation list excluded (--no-default-eval and no --exclude-eval)[/]")
    for r in reports:
        for rej in r.rejects[:10]:
            console.print(f"[yellow]rejected[/] {escape(f'{r.source} {rej}')}", highlight=False)
        if len(r.rejects) > 10:
            console.print(f"[yellow]... and {len(r.rejects) - 10} more rejected rows in {escape(r.source)}[/] "
                          "(every one is in the segment_rejects manifest)")


@app.command()
def download(
    ctx: typer.Context,
    pool: Annotated[list[str] | None, typer.Option("--pool", help="Only these pools (repeatable; default all).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Parallel downloads.")] = D.DOWNLOAD_CONCURRENCY,
    url_template: Annotated[str, typer.Option(help="URL for an ID; must contain {ytid}.")] = D.URL_TEMPLATE,
    retry_failed: Annotated[bool, typer.Option(help="Also retry clips that failed permanently before.")] = False,
    cookies: Annotated[Path | None, typer.Option(help="Netscape cookies file for yt-dlp.")] = None,
    proxy: Annotated[str | None, typer.Option(help="Proxy URL for yt-dlp.")] = None,
    user_agent: Annotated[str | None, typer.Option(help="User-Agent header for yt-dlp.")] = None,
    sample_rate: Annotated[int, typer.Option(min=1, help="FLAC sample rate.")] = 44100,
    max_height: Annotated[int, typer.Option(min=1, help="Largest video height for the image/video pools.")] = 360,
    limit: Annotated[int | None, typer.Option(min=1, help="Attempt at most N clips in this run.")] = None,
    max_attempts: Annotated[int, typer.Option(min=1, help="Tries per clip for transient failures.")] = 3,
    rate_limit: Annotated[float, typer.Option(help="Requests per second per host (0: unlimited).")] = D.REQUESTS_PER_S,
    ffmpeg: Annotated[str | None, typer.Option(help="ffmpeg binary (default: imageio-ffmpeg's static build, else PATH).")] = None,
    flush_every: Annotated[int, typer.Option(min=1, help="Write manifest rows every N clips.")] = 200,
    span: Annotated[str, typer.Option(help="What to keep of each video: auto (as the paper: the whole audio for "
                                           "mucaps, the 10 s segment for the others), segment, window, full.")] = D.DOWNLOAD_SPAN,
    window: Annotated[float, typer.Option(help="--span window: seconds kept, centred on the segment.")] = D.SPAN_WINDOW_S,
    max_duration: Annotated[float, typer.Option(
        help="--span window/full: longest audio kept in seconds; a longer video keeps this much around the segment "
        "(0: no cap).")] = D.MAX_AUDIO_S,
) -> None:
    """Download the selected segments (audio FLAC; video MP4 for muimage/muvideo), resumably."""
    from m2ugen_data.audioset.download import DownloadConfig, DownloadSummary, download_clips
    from m2ugen_data.audioset.ytdlp_fetch import FetchOptions

    wh = get_warehouse(ctx)
    if cookies is not None and not cookies.is_file():
        raise M2UGenError(f"cookies file not found: {cookies}")
    config = DownloadConfig(
        url_template=url_template, pools=tuple(pool) if pool else None, limit=limit, concurrency=concurrency,
        fetch=FetchOptions(ffmpeg=ffmpeg, sample_rate=sample_rate, max_height=max_height, cookies=cookies,
                           proxy=proxy, user_agent=user_agent),
        max_attempts=max_attempts, requests_per_s=rate_limit or None, retry_failed=retry_failed, flush_every=flush_every,
        span=span, window_s=window, max_duration_s=max_duration or None,
    )
    counts = {"ok": 0, "transient": 0, "permanent": 0, "corrupt": 0, "invalid": 0}
    bar = progress("counts", "rate")
    task = bar.add_task("download", total=None, counts="", rate="")

    def on_plan(s: DownloadSummary) -> None:
        bar.update(task, total=s.planned)

    def on_result(row: dict) -> None:
        counts["ok" if row["status"] == "ok" else row["error_class"]] += 1
        elapsed = bar.tasks[task].elapsed or 0.0
        done = sum(counts.values())
        text = f"ok {counts['ok']} | failed: " + " ".join(f"{k} {v}" for k, v in counts.items() if k != "ok")
        bar.update(task, advance=1, counts=text, rate=f"{done / elapsed:.2f} clips/s" if elapsed else "")

    with bar:
        summary = download_clips(wh, config, on_result=on_result, on_plan=on_plan)
    print_summary("download summary", {
        "planned this run": summary.planned, "ok": summary.ok,
        **{f"failed: {k}": v for k, v in sorted(summary.failed.items())},
        "skipped: already done": summary.skipped_done, "skipped: permanent failure": summary.skipped_permanent,
        "skipped: claimed by another run": claimed_elsewhere(summary.claimed_elsewhere, summary.claimed_by),
        "attempts": summary.attempts, "clips/s": summary.clips_per_s,
        "elapsed s": round(summary.elapsed_s, 1), "manifest batches": len(summary.batches),
    })


@app.command("import-synthetic")
def import_synthetic_cmd(
    ctx: typer.Context,
    corpus: Annotated[Path, typer.Option(help="Directory written by `m2ugen-data synth` (segments.csv, audio/).")],
    pool: Annotated[str, typer.Option(help="Pool for every clip.")] = "muedit",
) -> None:
    """Import the synthetic corpus as the download step (segments + clips, audio copied into media/)."""
    from pydantic import ValidationError

    from m2ugen_data.audioset.synthetic_import import import_synthetic

    wh = get_warehouse(ctx)
    try:
        report = import_synthetic(wh, corpus, pool)
    except ValidationError as e:
        raise M2UGenError(f"invalid pool {pool!r}: {e.errors()[0]['msg']}") from None
    console.print(f"synthetic corpus {corpus}: {report.selection.selected} segments in pool {pool}, "
                  f"{report.ok} clips imported, {len(report.failed)} failed", markup=False)
    for clip_id, err in list(report.failed.items())[:10]:
        console.print(f"[yellow]failed[/] {escape(f'{clip_id}: {err}')}", highlight=False)


@app.command()
def status(ctx: typer.Context) -> None:
    """Clips per pool, status and error class (the latest row of each clip)."""
    con = get_warehouse(ctx).connect()
    table = con.sql(
        "SELECT s.pool, coalesce(c.status, 'not attempted') AS status, c.error_class, count(*) AS clips "
        "FROM segments_latest s LEFT JOIN clips_latest c USING (clip_id) GROUP BY ALL ORDER BY ALL"
    ).to_arrow_table()
    print_arrow(table, title="AudioSet clips")
