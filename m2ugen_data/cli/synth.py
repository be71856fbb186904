"""``m2ugen-data synth``: render the synthetic music corpus (known tempo, meter, key, beats, instruments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from m2ugen_data import defaults as D
from m2ugen_data.cli.common import console, get_warehouse


def synth(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of clips to render.")] = D.SYNTH_CLIPS,
    seed: Annotated[int, typer.Option("--seed")] = D.SYNTH_SEED,
    out: Annotated[Optional[Path], typer.Option("--out", help="Corpus directory (default <warehouse>/synth).")] = None,
    sibling_fraction: Annotated[float, typer.Option(help="Fraction of clips rendered as sibling groups.")] = D.SYNTH_SIBLING_FRACTION,
    trouble_fraction: Annotated[float, typer.Option(help="Fraction of clips with realistic trouble.")] = D.SYNTH_TROUBLE_FRACTION,
    plant_contamination: Annotated[bool, typer.Option(
        help="Add a clip under a MusicCaps evaluation ID and a copy of another clip (labelled in the truth).")] = False,
) -> None:
    """Render a synthetic music corpus with known tempo, meter, key, beats and instruments."""
    from m2ugen_data.synth.corpus import render_corpus

    out_dir = out if out is not None else get_warehouse(ctx).root / "synth"
    summary = render_corpus(
        n=n, seed=seed, out_dir=out_dir, sibling_fraction=sibling_fraction, trouble_fraction=trouble_fraction,
        plant_contamination=plant_contamination,
    )
    console.print(summary)
