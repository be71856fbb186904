"""What every ``m2ugen-data`` sub-command module shares: the warehouse option, consoles, table printing.

Kept apart from ``cli.py`` so sub-command modules never import the module that imports them (which broke
``python -m m2ugen_data.cli``).
"""

from __future__ import annotations

import json
import sys
from enum import Enum

import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

from m2ugen_data.warehouse import Warehouse, open_warehouse

console = Console()
err_console = Console(stderr=True)


def get_warehouse(ctx: typer.Context) -> Warehouse:
    """The warehouse chosen by the global ``--warehouse`` option (sub-command modules call this)."""
    root = (ctx.find_root().obj or {}).get("warehouse")
    return open_warehouse(root)


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def print_arrow(table: pa.Table, fmt: OutputFormat = OutputFormat.table, title: str | None = None) -> None:
    """Print an Arrow table as a rich table, CSV or JSON lines."""
    if fmt is OutputFormat.csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
        return
    rows = table.to_pylist()
    if fmt is OutputFormat.json:
        for row in rows:
            sys.stdout.write(json.dumps(row, default=str) + "\n")
        return
    t = Table(title=title)
    for name in table.column_names:
        t.add_column(name)
    for row in rows:
        t.add_row(*(_cell(v) for v in row.values()))
    console.print(t)


def _cell(v: object) -> str:
    s = "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
    return s if len(s) <= 120 else s[:117] + "..."
