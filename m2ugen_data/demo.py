"""``python -m m2ugen_data.demo --warehouse DIR`` (``make demo``): ``build-muedit`` on the synthetic corpus,
in this process, with the offline defaults (grounded captions, template dialogues), then a DuckDB summary.

No Prefect server is needed: with no ``PREFECT_API_URL`` Prefect starts a temporary local API for the run.
Its database goes to ``<warehouse>/.prefect`` (unless ``PREFECT_HOME`` is set), so nothing is written to the
home directory and a second run finds it ready. Running the demo again skips the finished work (the
warehouse holds it) and prints the same summary.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

DEMO_CLIPS = 48  # about a minute of analysis on 2 cores; six to ten sibling groups give the MUEdit pairs
DEMO_SEED = 0

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
console = Console()


def prefect_environment(warehouse: Path, verbose: bool) -> None:
    """Settings for an in-process run; set before Prefect is imported, and never over the user's own."""
    defaults = {
        "PREFECT_HOME": str(warehouse / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",  # a busy 2-core machine needs more than 20 s
        "PREFECT_LOGGING_LEVEL": "INFO" if verbose else "WARNING",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


@app.command()
def main(
    warehouse: Annotated[Path, typer.Option(help="Warehouse root (created if missing).")] = Path("warehouse"),
    clips: Annotated[int, typer.Option(min=2, help="Synthetic clips to render.")] = DEMO_CLIPS,
    seed: Annotated[int, typer.Option()] = DEMO_SEED,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's task logs.")] = False,
) -> None:
    """Build MUEdit from the synthetic corpus and print what the warehouse now holds."""
    from m2ugen_data.warehouse import open_warehouse

    wh = open_warehouse(warehouse)
    prefect_environment(wh.root, verbose)
    from flows.build_muedit import build_muedit
    from flows.params import SyntheticSource
    from flows.summary import example_dialogue

    console.print(f"[bold]build-muedit[/] on {clips} synthetic clips (seed {seed}) into {wh.root}")
    t0 = time.perf_counter()
    summary = build_muedit(warehouse=str(wh.root), source="synthetic", synthetic=SyntheticSource(n=clips, seed=seed))
    wall = time.perf_counter() - t0
    print_summary(summary, example_dialogue(wh, "muedit"))
    print_example_caption(wh)
    console.print(f"finished in {wall:.1f} s; query the manifests with `m2ugen-data --warehouse {warehouse} sql '...'`")
    console.print(
        f"image and video datasets into the same warehouse: `m2ugen-data --warehouse {warehouse} serve`, then "
        "`prefect deployment run build-muimage/local` (or build-muvideo/local)",
        highlight=False,
    )


def print_summary(summary: dict, example: dict | None) -> None:
    counts, run = summary["counts"], summary["run"]
    t = Table(title="warehouse (DuckDB over the latest manifest rows)")
    for col in ("clips analysed", "pairs mined", "dialogues accepted", "dialogues rejected", "shards", "shard samples", "MiB"):
        t.add_column(col, justify="right")
    analysed = counts["analysed_ok"] + counts["analysis_rejected"] + counts["analysis_failed"]
    t.add_row(
        f"{analysed} ({counts['analysed_ok']} ok)", str(counts["pairs"]), str(counts["dialogues_accepted"]),
        str(counts["dialogues_rejected"]), str(counts["shards"]), str(counts["shard_samples"]), f"{counts['shard_bytes'] / 2**20:.1f}",
    )
    console.print(t)
    a, c, d = run["analyse"], run["caption"], run["dialogue"]
    console.print(
        f"this run: analysed {a.get('analysed', 0)} clips ({a['already_done']} already done), "
        f"captioned {c.get('written', 0)} ({c.get('cached', 0)} cached), "
        f"dialogues written {d.get('accepted', 0) + d.get('rejected', 0)} ({d.get('cached', 0) + d.get('rejected_before', 0)} already done)"
    )
    if summary["failures"]:
        console.print("failures and rejections by class: " + ", ".join(f"{k}={v}" for k, v in summary["failures"].items()))
    for s in summary["shard_files"]:
        console.print(f"  {s['path']}  {s['samples']} samples  sha256 {s['sha256'][:16]}")
    if example:
        console.print(f"\n[bold]example dialogue[/] {example['sample_id']}")
        console.print(f"  human: {example['human']}", highlight=False)
        console.print(f"  gpt:   {example['gpt']}", highlight=False)


def print_example_caption(wh) -> None:
    """One grounded caption whose instruments were measured from the audio, and what backs each phrase."""
    import json

    row = wh.connect().execute(
        "SELECT item_id, text, evidence FROM captions_latest WHERE backend = 'grounded' "
        "AND evidence LIKE '%features.instruments%' ORDER BY item_id LIMIT 1"
    ).fetchone()
    if row is None:
        return
    item, text, evidence = row
    console.print(f"\n[bold]example caption[/] {item}")
    console.print(f"  {text}", highlight=False)
    backing = {slot: e.get("source") for slot, e in json.loads(evidence).items()}
    console.print("  measured by: " + ", ".join(f"{k} <- {v}" for k, v in backing.items()), highlight=False)


def run(argv: list[str] | None = None) -> None:
    from m2ugen_data.errors import M2UGenError

    try:
        app(args=argv)
    except M2UGenError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False)
        raise SystemExit(2) from None


if __name__ == "__main__":
    run()
