"""``m2ugen-data dedup`` (near-duplicate groups by sound) and ``m2ugen-data decontaminate --against PATH...``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from m2ugen_data.cli.common import console, get_warehouse, print_summary, progress


def dedup_cmd(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Search every pair again instead of only new clips'.")] = False,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Fingerprinting processes (default: the cores).")] = None,
) -> None:
    """Group the warehouse's clips that are one recording (re-encoded, cut, shifted, re-levelled, stretched,
    re-mastered); each dataset keeps one member of a group. Clips analysed before fingerprints existed are
    fingerprinted first."""
    from m2ugen_data.dedup.backfill import fingerprint_missing
    from m2ugen_data.dedup.groups import find_duplicates

    wh = get_warehouse(ctx)
    with progress(transient=True) as bar:
        task = bar.add_task("fingerprints", total=None)
        filled = fingerprint_missing(wh, workers=workers, progress=lambda n: bar.advance(task, n))
        bar.update(task, description="groups")
        s = find_duplicates(wh, full=full)
    print_summary(f"near-duplicates ({'incremental' if s.incremental else 'full'} run, {s.wall_s:.1f} s)", {
        "analysed ok": s.clips, "fingerprinted": s.fingerprinted, "fingerprinted now": filled.todo,
        **{f"not fingerprinted: {k}": v for k, v in sorted(s.not_fingerprinted.items())},
        "searched this run": s.new, "candidate pairs checked": s.candidates,
        **{f"links: {k}": v for k, v in sorted(s.links.items())},
        "groups": s.groups, "clips in groups": s.grouped, "dropped (a group keeps one)": s.dropped,
    })
    if s.not_fingerprinted:
        console.print("[yellow]clips without a fingerprint cannot be checked by sound; they are counted here and "
                      "on the card, never taken as unique[/]")


def decontaminate_cmd(
    ctx: typer.Context,
    against: Annotated[list[str], typer.Option(
        "--against", help="[NAME=]PATH: an evaluation list (.csv), audio (file or directory: MusicCaps clips, "
        "MusicQA eval wavs) or shards (e.g. shards/muedit_eval); repeatable.")],
    shards: Annotated[bool, typer.Option("--shards/--no-shards", help="Rewrite the training shards that held a "
                                                                     "matched clip.")] = True,
    report: Annotated[Optional[Path], typer.Option(help="Also write the report as JSON here.")] = None,
) -> None:
    """Find the warehouse clips an evaluation set holds (by ID and by sound), keep them out of every training
    sample, and rewrite the shards that held them. Unreadable evaluation files are listed; the run goes on."""
    from m2ugen_data.atomic import write_bytes_atomic
    from m2ugen_data.contamination.decontaminate import decontaminate

    wh = get_warehouse(ctx)
    with progress(transient=True) as bar:
        tasks: dict[str, int] = {}

        def advance(what: str, n: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=None)
            bar.advance(tasks[what], n)

        reports = decontaminate(wh, against, rewrite_shards=shards, progress=advance)
    t = Table(title="decontamination (clips kept out of every training sample)")
    for col in ("benchmark", "items", "unreadable", "by ID", "by sound", "samples removed"):
        t.add_column(col, justify="left" if col == "benchmark" else "right")
    for r in reports:
        removed = ", ".join(f"{d} {n}" for d, n in sorted(r.samples_removed.items())) or "0"
        t.add_row(r.benchmark, str(r.items), str(len(r.unreadable)), str(r.by_id), str(r.by_sound), removed)
    console.print(t)
    for r in reports:
        for item, why in r.unreadable[:5]:
            console.print(f"[yellow]{escape(f'{r.benchmark}: not checked by sound: {item} ({why})')}[/]", highlight=False)
        if len(r.unreadable) > 5:
            console.print(f"[yellow]{r.benchmark}: ... and {len(r.unreadable) - 5} more (see --report)[/]")
    if report is not None:
        data = [{**r.__dict__, "samples_removed": dict(r.samples_removed)} for r in reports]
        write_bytes_atomic(report, json.dumps(data, indent=1).encode())
        console.print(f"report: {report}", markup=False)
