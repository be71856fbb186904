"""``m2ugen-data sql`` and ``m2ugen-data catalog``: DuckDB over the warehouse manifests."""

from __future__ import annotations

from typing import Annotated

import typer

from m2ugen_data.cli.common import OutputFormat, get_warehouse, print_arrow
from m2ugen_data.errors import M2UGenError


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


def catalog(
    ctx: typer.Context,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """List manifests with row counts and (re)write catalog.duckdb for external DuckDB clients."""
    import pyarrow as pa

    from m2ugen_data.errors import WarehouseError
    from m2ugen_data.schemas import MANIFESTS

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
