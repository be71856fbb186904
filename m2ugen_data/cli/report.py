"""``m2ugen-data report``: write the dataset card (HTML pages, PNG figures, Hugging Face READMEs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from m2ugen_data.cli.common import console, get_warehouse


def report(
    ctx: typer.Context,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Card directory (default <warehouse>/report); replaced on every run.")
    ] = None,
    samples: Annotated[int, typer.Option("--samples", min=0, max=50, help="Samples (with media) shown per dataset.")] = 4,
) -> None:
    """Write the dataset card of every dataset in the warehouse: counts, hours, rejection funnel, distributions,
    samples with audio players and provenance. Open <out>/index.html in a browser."""
    from m2ugen_data.report import write_report

    wh = get_warehouse(ctx)
    with console.status("writing the dataset card"):
        index = write_report(wh, out, samples=samples)
    console.print(f"dataset card: {index}", highlight=False, soft_wrap=True, markup=False)
    for page in sorted(index.parent.glob("*/index.html")):
        console.print(f"  {page.parent.name}: {page}  (README: {page.parent / 'README.md'})", highlight=False, soft_wrap=True,
                      markup=False)
