"""``m2ugen-data``: the command line over the pipeline library.

Each area registers its own sub-commands (``audioset``, ``analyze``, ``pairs``, ...) from a ``*_cli`` module so
this file stays a table of contents. Errors that are the user's (``M2UGenError``) print as one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from m2ugen_data import analysis_cli, audioset_cli, compact_cli, devset_cli, serve_cli, shards_cli, text_cli, vision_cli
from m2ugen_data import defaults as D
from m2ugen_data import check_cli, report_cli
from m2ugen_data.convert import cli as convert_cli
from m2ugen_data.eval_splits import eval_splits_cmd
from m2ugen_data.cli_common import OutputFormat, console, err_console, get_warehouse, print_arrow
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


@app.command()
def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="SQL over the manifest views, e.g. 'select count(*) from segments'.")],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """Run a DuckDB query over the warehouse manifests."""
    import duckdb

    from m2ugen_data.warehouse import explain_duckdb_error

    wh = get_warehouse(ctx)
    con = wh.connect()
    try:
        relation = con.sql(query)
    except duckdb.Error as e:
        raise M2UGenError(f"query failed: {str(e).splitlines()[0]}") from e
    if relation is not None:  # statements such as CREATE return no relation
        try:
            table = relation.to_arrow_table()
        except duckdb.Error as e:  # bound fine, failed running: a corrupt file (named), or the query's own error
            raise explain_duckdb_error(e) or M2UGenError(f"query failed: {str(e).splitlines()[0]}") from e
        print_arrow(table, fmt)


@app.command()
def catalog(
    ctx: typer.Context,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """List manifests with row counts and (re)write catalog.duckdb for external DuckDB clients."""
    import pyarrow as pa

    from m2ugen_data.schemas import MANIFESTS

    from m2ugen_data.errors import WarehouseError

    wh = get_warehouse(ctx)
    try:
        title = f"catalog: {wh.refresh_catalog()}"
    except WarehouseError as e:  # e.g. a read-only warehouse: still list what it holds
        title = f"catalog not written ({e})"
    con = wh.connect()
    rows = []
    for name, m in MANIFESTS.items():
        rows.append(
            {
                "manifest": name,
                "files": len(wh.manifest_files(name)),
                "rows": con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0],
                "latest_rows": con.execute(f'SELECT count(*) FROM "{name}_latest"').fetchone()[0],
                "description": m.doc,
            }
        )
    print_arrow(pa.Table.from_pylist(rows), fmt, title=title)


@app.command()
def synth(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("--n", help="Number of clips to render.")] = D.SYNTH_CLIPS,
    seed: Annotated[int, typer.Option("--seed")] = D.SYNTH_SEED,
    out: Annotated[Optional[Path], typer.Option("--out", help="Corpus directory (default <warehouse>/synth).")] = None,
    sibling_fraction: Annotated[float, typer.Option(help="Fraction of clips rendered as sibling groups.")] = D.SYNTH_SIBLING_FRACTION,
    trouble_fraction: Annotated[float, typer.Option(help="Fraction of clips with realistic trouble.")] = D.SYNTH_TROUBLE_FRACTION,
) -> None:
    """Render a synthetic music corpus with known tempo, meter, key, beats and instruments."""
    from m2ugen_data.synth.corpus import render_corpus

    out_dir = out if out is not None else get_warehouse(ctx).root / "synth"
    summary = render_corpus(
        n=n, seed=seed, out_dir=out_dir, sibling_fraction=sibling_fraction, trouble_fraction=trouble_fraction
    )
    console.print(summary)


app.add_typer(audioset_cli.app, name="audioset")
app.add_typer(analysis_cli.analyze_app, name="analyze")
app.add_typer(analysis_cli.pairs_app, name="pairs")
app.add_typer(text_cli.app)  # caption, dialogue
app.add_typer(vision_cli.app)  # media, caption-visual
app.add_typer(shards_cli.app, name="shards")
app.add_typer(devset_cli.app, name="devset")
app.command("export")(shards_cli.export_cmd)
app.command("serve")(serve_cli.serve)  # Prefect deployments
app.command("compact")(compact_cli.compact_cmd)  # merge small manifest batches
app.command("report")(report_cli.report)  # the dataset card
app.add_typer(convert_cli.app, name="convert")  # MusicQA, Alpaca, COCO -> shards
app.command("eval-splits")(eval_splits_cmd)  # held-out MUCaps/MUEdit/MUImage/MUVideo
app.command("check")(check_cli.check_cmd)  # will the chosen models load here? (preflight, no GPU)


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


if __name__ == "__main__":
    main()
