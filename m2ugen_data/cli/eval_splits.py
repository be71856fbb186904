"""``m2ugen-data eval-splits``: held-out, video-disjoint eval splits of the four datasets (``eval_splits.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from m2ugen_data.cli.common import console, get_warehouse
from m2ugen_data.eval_splits import DATASETS, DEFAULT_FRACTION, write_eval_splits
from m2ugen_data.export import MediaMode


def eval_splits_cmd(
    ctx: typer.Context,
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", help="repeatable; default all four")] = None,
    fraction: Annotated[float, typer.Option(help="share of YouTube videos held out")] = DEFAULT_FRACTION,
    export_dir: Annotated[Optional[Path], typer.Option("--export", help="reference JSON layout (default <warehouse>/eval)")] = None,
    media: Annotated[MediaMode, typer.Option(help="how the export places media")] = MediaMode.symlink,
) -> None:
    """Write held-out eval splits (shards/<dataset>_eval + reference JSON) and training shards without them.
    The split is recorded in the warehouse: every later shard write, flow and converter keeps it, and
    `shards verify` fails on a training shard holding a held-out video."""
    results = write_eval_splits(get_warehouse(ctx), dataset or DATASETS, fraction=fraction, export_dir=export_dir,
                                media=media)
    table = Table(title=f"eval splits (fraction {fraction} of videos)")
    for col in ("dataset", "train", "eval", "straddling", "reference JSON"):
        table.add_column(col)
    for r in results:
        table.add_row(r.dataset, str(r.counts["train"]), str(r.counts["eval"]), str(r.counts["straddling"]),
                      str(r.eval_json))
    console.print(table)
