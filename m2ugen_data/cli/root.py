"""``m2ugen-data``: the command line over the pipeline library, as a table of contents.

Each command group lives in its own module of this package (``audioset``, ``analysis``, ``pairs``, ``text``,
...), all sharing ``common`` (warehouse option, progress bar, summary table); this file registers them and
turns the user's errors (``M2UGenError``) into one line on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from m2ugen_data.cli import (
    analysis,
    audioset,
    check,
    claims,
    compact,
    contamination,
    convert,
    devset,
    eval_splits,
    pairs,
    query,
    report,
    serve,
    shards,
    synth,
    text,
    vision,
)
from m2ugen_data.cli.common import err_console
from m2ugen_data.errors import M2UGenError
from m2ugen_data.warehouse import ENV_VAR

app = typer.Typer(
    name="m2ugen-data",
    help="Build the MUCaps / MUEdit / MUImage / MUVideo datasets into a Parquet + WebDataset warehouse.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    warehouse: Annotated[
        Optional[Path],
        typer.Option("--warehouse", "-w", envvar=ENV_VAR, help="Warehouse root (default ./warehouse)."),
    ] = None,
) -> None:
    ctx.obj = {"warehouse": warehouse}


app.command("sql")(query.sql)  # DuckDB over the manifests
app.command("catalog")(query.catalog)  # row counts; catalog.duckdb for external clients
app.command("synth")(synth.synth)  # the synthetic corpus with known truth
app.add_typer(audioset.app, name="audioset")  # select, download, import-synthetic, status
app.add_typer(analysis.app, name="analyze")  # measure clips; re-apply the music filter
app.add_typer(pairs.app, name="pairs")  # mine MUEdit pairs
app.add_typer(text.app)  # caption, dialogue
app.add_typer(vision.app)  # media, caption-visual
app.add_typer(shards.app, name="shards")  # write, verify, list
app.command("export")(shards.export_cmd)  # the reference trainer's JSON layout
app.add_typer(devset.app, name="devset")  # real-music dev sets with truth
app.command("serve")(serve.serve)  # Prefect deployments
app.command("compact")(compact.compact_cmd)  # merge small manifest batches
app.add_typer(claims.app, name="claims")  # list, release (work claims and leases of concurrent runs)
app.command("report")(report.report)  # the dataset card
app.add_typer(convert.app, name="convert")  # MusicQA, Alpaca, COCO -> shards
app.command("eval-splits")(eval_splits.eval_splits_cmd)  # held-out MUCaps/MUEdit/MUImage/MUVideo
app.command("check")(check.check_cmd)  # will the chosen models load here? (preflight, no GPU)
app.command("dedup")(contamination.dedup_cmd)  # near-duplicate groups by sound
app.command("decontaminate")(contamination.decontaminate_cmd)  # evaluation sets out of training


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    import duckdb

    from m2ugen_data.warehouse import explain_duckdb_error

    try:
        try:
            app()
        except duckdb.Error as e:  # a query over the manifests choked on a corrupt file: name it, no trace
            explained = explain_duckdb_error(e)
            if explained is None:
                raise
            raise explained from e
    except M2UGenError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
