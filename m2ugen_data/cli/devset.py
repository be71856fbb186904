"""``m2ugen-data devset build``: the real-music development sets with known truth.

``--out DIR`` is a root; each kind builds into ``DIR/<kind>`` (``gm``: General-MIDI renders with tempo,
beats, chords, instruments and siblings; ``scores``: excerpts of MIDI files and score collections from many
sources through several soundfonts, with exact beats and instruments; ``recordings``: real music and
non-music from Debian packages for the music filter). Rebuilding reuses every clip whose inputs did not change.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from m2ugen_data.cli.common import console

app = typer.Typer(help="Real-music development sets with known truth.", no_args_is_help=True)


class Kind(str, Enum):
    gm = "gm"
    scores = "scores"
    recordings = "recordings"
    all = "all"


@app.command("build")
def build_cmd(
    out: Annotated[Path, typer.Option("--out", help="Root directory; each kind is written to <out>/<kind>.")],
    kind: Annotated[Kind, typer.Option("--kind", help="Which set to build.")] = Kind.all,
    n: Annotated[
        Optional[int],
        typer.Option("--n", help="Clips per set (default: gm 200, recordings 240; scores: pieces per source).", min=1),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Everything random derives from this.")] = 0,
    workers: Annotated[Optional[int], typer.Option(help="Render processes (default: the cores).", min=1)] = None,
) -> None:
    """Build (or refresh) dev sets: audio/, truth.parquet and README.md per kind."""
    from m2ugen_data.devset.gm import build_gm
    from m2ugen_data.devset.recordings import DEFAULT_N, build_recordings
    from m2ugen_data.devset.scores_set import build_scores

    if kind in (Kind.gm, Kind.all):
        summary = build_gm(out / "gm", n=n or 200, seed=seed, workers=workers)
        console.print_json(json.dumps(summary))
    if kind in (Kind.scores, Kind.all):
        summary = build_scores(out / "scores", seed=seed, workers=workers, max_items=n)
        console.print_json(json.dumps(summary))
    if kind in (Kind.recordings, Kind.all):
        summary = build_recordings(out / "recordings", n=n or DEFAULT_N, seed=seed, workers=workers)
        console.print_json(json.dumps(summary))
