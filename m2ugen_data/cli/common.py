"""What every ``m2ugen-data`` command module shares: the warehouse option, consoles, the progress bar, the
summary table and Arrow table printing.

Kept apart from ``root.py`` so command modules never import the module that imports them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from enum import Enum

import pyarrow as pa
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from m2ugen_data.warehouse import Warehouse, open_warehouse

console = Console()
err_console = Console(stderr=True)


def get_warehouse(ctx: typer.Context) -> Warehouse:
    """The warehouse chosen by the global ``--warehouse`` option (command modules call this)."""
    root = (ctx.find_root().obj or {}).get("warehouse")
    return open_warehouse(root)


def progress(*fields: str, transient: bool = False) -> Progress:
    """The one progress bar of every long command: what, bar, done/total, elapsed, time left, then each named
    task field (``progress.update(task, info=...)``) as live text. A task with ``total=None`` just counts."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *(TextColumn(f"{{task.fields[{name}]}}") for name in fields),
    ]
    return Progress(*columns, console=console, transient=transient)


def print_summary(title: str, rows: Mapping[str, object]) -> None:
    """The one end-of-command summary: a two-column table of what happened (counts, seconds, rates).
    Text is printed as it is, never read as rich markup (a path like ``data[v2]`` would lose ``[v2]``)."""
    t = Table(title=escape(title))
    t.add_column("what")
    t.add_column("value", justify="right")
    for name, value in (rows or {"nothing to do": 0}).items():
        t.add_row(escape(name), escape(f"{value:.2f}" if isinstance(value, float) else str(value)))
    console.print(t)


def claimed_elsewhere(n: int, holders: str) -> str:
    """The summary's skip line for work left to other runs: how much, and who holds it (so a person can
    tell a live run from a dead node's claims, which ``m2ugen-data claims release`` frees)."""
    return f"{n}: {holders}" if n and holders else str(n)


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def print_arrow(table: pa.Table, fmt: OutputFormat = OutputFormat.table, title: str | None = None) -> None:
    """Print an Arrow table as a rich table, CSV or JSON lines (title and cells as they are, never as markup)."""
    if fmt is OutputFormat.csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
        return
    rows = table.to_pylist()
    if fmt is OutputFormat.json:
        for row in rows:
            sys.stdout.write(json.dumps(row, default=str) + "\n")
        return
    t = Table(title=escape(title) if title else None)
    for name in table.column_names:
        t.add_column(escape(name))
    for row in rows:
        t.add_row(*(escape(_cell(v)) for v in row.values()))
    console.print(t)


def _cell(v: object) -> str:
    s = "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
    return s if len(s) <= 120 else s[:117] + "..."
