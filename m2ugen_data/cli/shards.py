"""``m2ugen-data shards write|verify|list`` and ``m2ugen-data export``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import pyarrow as pa
import typer
from rich.markup import escape

from m2ugen_data import defaults as D
from m2ugen_data.cli.common import OutputFormat, console, get_warehouse, print_arrow, progress
from m2ugen_data.export import MediaMode, export_reference
from m2ugen_data.shards import build_dataset_shards, verify_shards

app = typer.Typer(help="Write, verify and list the WebDataset shards.", no_args_is_help=True)


@app.command("write")
def write_cmd(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset to shard: mucaps, muedit, ...")],
    max_samples: Annotated[Optional[int], typer.Option(min=1, help="Samples per shard (at most).")] = D.SHARD_MAX_SAMPLES,
    max_bytes: Annotated[
        Optional[int], typer.Option(min=1, help="Bytes per shard (at most, unless one sample is larger).")
    ] = D.SHARD_MAX_BYTES,
    workers: Annotated[int, typer.Option(min=1, help="Shards written in parallel (threads).")] = D.SHARD_WORKERS,
    caption_backend: Annotated[
        Optional[list[str]],
        typer.Option(help="MUCaps: caption backends in order of preference (default: newest caption of any)."),
    ] = None,
    pool: Annotated[str, typer.Option(help="MUCaps: segment pool to draw from ('any' for all).")] = "mucaps",
    full: Annotated[
        bool, typer.Option("--full", help="Rewrite the whole shard set in key order instead of appending.")
    ] = False,
) -> None:
    """Assemble a dataset's samples from the manifests and write its shards.

    Incremental by default: samples not yet in a shard are appended as new shards, existing shards stay
    byte-identical unless one of their samples changed or went away (then that shard is rewritten); the
    manifest's run_id column tells which shards this run wrote. --full rewrites the whole set."""
    wh = get_warehouse(ctx)
    options: dict = {}
    if dataset == "mucaps":
        options = {"caption_backends": caption_backend or None, "pool": None if pool == "any" else pool}
    with progress(transient=True) as bar:
        task = bar.add_task(f"shards {dataset}", total=None)
        build = build_dataset_shards(
            wh,
            dataset,
            max_samples=max_samples,
            max_bytes=max_bytes,
            workers=workers,
            on_sample=lambda _s: bar.advance(task),
            full=full,
            **options,
        )
    title = f"{dataset}: {build.samples} samples in {len(build.shards)} shards"
    title += f" ({len(build.written)} written by this run)"
    print_arrow(_shard_table(build.shards), title=title)
    if build.skipped:
        console.print("skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(build.skipped.items())))


def _shard_table(rows: list[dict]) -> pa.Table:
    cols = ["path", "samples", "bytes", "sha256", "first_key", "last_key", "run_id"]
    return pa.Table.from_pylist([{c: r[c] for c in cols} for r in rows]) if rows else pa.table({c: [] for c in cols})


@app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", "-d")],
    quick: Annotated[bool, typer.Option(help="Check sizes and sha256 only, without parsing members.")] = False,
) -> None:
    """Compare the shard files with the ``shards`` manifest; exit 1 if anything differs."""
    check = verify_shards(get_warehouse(ctx), dataset, deep=not quick)
    for problem in check.problems:
        console.print(f"[red]{escape(problem)}[/]", highlight=False)
    console.print(f"{dataset}: {check.shards} shards, {check.samples} samples, {len(check.problems)} problems")
    if not check.ok:
        raise typer.Exit(1)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """List shards from the manifest."""
    wh = get_warehouse(ctx)
    con = wh.connect()
    where, params = ("WHERE dataset = $1", [dataset]) if dataset else ("", [])
    table = con.sql(
        f"SELECT dataset, path, samples, bytes, sha256, first_key, last_key, created_at FROM shards_latest {where} "
        "ORDER BY dataset, path",
        params=params,
    ).to_arrow_table()
    print_arrow(table, fmt)


class ExportFormat(str, Enum):
    m2ugen_json = "m2ugen-json"


def export_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory that stands in for the reference Datasets/.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f")] = ExportFormat.m2ugen_json,
    dataset: Annotated[
        Optional[list[str]], typer.Option("--dataset", "-d", help="Dataset(s) to export (default: all).")
    ] = None,
    media: Annotated[MediaMode, typer.Option(help="How media get into the export.")] = MediaMode.copy,
) -> None:
    """Write the reference trainer's JSON files (MUCapsCaptions.json, MUEditInstructions.json, ...) and media."""
    wh = get_warehouse(ctx)
    with progress(transient=True) as bar:
        task = bar.add_task("export", total=None)
        results = export_reference(
            wh, out, datasets=dataset or None, media=media, on_sample=lambda _s: bar.advance(task)
        )
    rows = [
        {
            "dataset": r.dataset,
            "json": str(r.json_path),
            "records": r.records,
            "media_written": r.media_written,
            "media_kept": r.media_kept,
        }
        for r in results
    ]
    print_arrow(pa.Table.from_pylist(rows), title=f"export ({fmt.value})")
