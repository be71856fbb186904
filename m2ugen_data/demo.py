"""``python -m m2ugen_data.demo --warehouse DIR`` (``make demo``): the four dataset flows (``build-mucaps``,
``build-muedit``, ``build-muimage``, ``build-muvideo``) on the synthetic corpus, in this process, with the
offline defaults (grounded captions, template dialogues), then a DuckDB summary per dataset and the dataset
card (``m2ugen_data.report``).

Each flow renders its own synthetic corpus (its own seed namespace, so the four datasets use disjoint music;
the image and video pools also get rendered source videos) into the one warehouse, exactly as a deployment
run with ``source=synthetic`` would.

No Prefect server is needed: with no ``PREFECT_API_URL`` Prefect starts a temporary local API for the run.
Its database goes to ``<warehouse>/.prefect`` (unless ``PREFECT_HOME`` is set), so nothing is written to the
home directory and a second run finds it ready. Running the demo again skips the finished work (the
warehouse holds it) and prints the same summary.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

DATASETS = ("mucaps", "muedit", "muimage", "muvideo")
# Per dataset: MUEdit still gets a few sibling groups to pair, MUImage/MUVideo about ten clips whose video
# passes. All four: about 3 minutes on a shared 2-core machine (24 clips each: 195 s at load 4-6).
DEMO_CLIPS = 20
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
    clips: Annotated[int, typer.Option(min=2, help="Synthetic clips to render per dataset.")] = DEMO_CLIPS,
    seed: Annotated[int, typer.Option()] = DEMO_SEED,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the dataset card at the end.")] = True,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's task logs.")] = False,
) -> None:
    """Build MUCaps, MUEdit, MUImage and MUVideo from the synthetic corpus and print what the warehouse holds."""
    from m2ugen_data.warehouse import open_warehouse

    wh = open_warehouse(warehouse)
    prefect_environment(wh.root, verbose)
    from flows.prefect_api import bind_prefect_server

    bind_prefect_server()  # Prefect's temporary API as a child that dies with the demo (kill -9 included)
    started, t0 = time.time(), time.perf_counter()
    summaries = build_all(wh.root, clips, seed)
    wall = time.perf_counter() - t0
    print_summaries(summaries)
    print_examples(wh)
    if report:
        write_card(wh, started)
    console.print(f"finished in {wall:.1f} s; query the manifests with `m2ugen-data --warehouse {warehouse} sql '...'`")
    console.print(
        f"train on the shards (a CPU smoke run of the tiny model): `m2ugen-train --shards {warehouse}/`", highlight=False
    )


def build_all(root: Path, clips: int, seed: int) -> dict[str, dict[str, Any]]:
    """Run the four build flows in order; each returns its summary (warehouse counts, this run's work)."""
    from flows.build_mucaps import build_mucaps
    from flows.build_muedit import build_muedit
    from flows.build_muimage import build_muimage
    from flows.build_muvideo import build_muvideo
    from flows.params import SyntheticSource

    flows = {"mucaps": build_mucaps, "muedit": build_muedit, "muimage": build_muimage, "muvideo": build_muvideo}
    # planted contamination (labelled in each corpus' truth): a clip under a MusicCaps evaluation ID, which
    # selection rejects, and a copy of another clip, which dedup groups, so the card shows both at work
    source = SyntheticSource(n=clips, seed=seed, plant_contamination=True)
    summaries = {}
    for dataset in DATASETS:
        console.print(f"[bold]build-{dataset}[/] on {clips} synthetic clips (seed {seed}) into {root}")
        t0 = time.perf_counter()
        summaries[dataset] = flows[dataset](warehouse=str(root), source="synthetic", synthetic=source)
        console.print(f"  {time.perf_counter() - t0:.1f} s; {this_run(summaries[dataset]['run'])}", highlight=False)
    return summaries


def this_run(run: dict[str, Any]) -> str:
    """What this run did, against what the warehouse already held (a second run should be all 'done')."""
    a, c = run["analyse"], run["caption"]
    parts = [
        f"analysed {a.get('analysed', 0)} clips ({a['already_done']} already done)",
        f"captioned {c.get('written', 0)} ({c.get('cached', 0)} cached)",
    ]
    if "visual_caption" in run:
        v = run["visual_caption"]
        parts.append(f"pictures captioned {v.get('captioned', 0)} ({v.get('cached', 0)} cached)")
    if "dialogue" in run:
        d = run["dialogue"]
        written = d.get("accepted", 0) + d.get("rejected", 0)
        parts.append(f"dialogues written {written} ({d.get('cached', 0) + d.get('rejected_before', 0)} already done)")
    return ", ".join(parts)


def print_summaries(summaries: dict[str, dict[str, Any]]) -> None:
    """One row per dataset (fits 80 columns): clips analysed ok of all, music, MUEdit pairs or the frames/clips
    that passed, captions, dialogues accepted/rejected, shard samples and size; then failures and shard files."""
    t = Table(title="warehouse (DuckDB over the latest manifest rows)", box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1))
    for col in ("dataset", "analysed", "music", "pairs/media", "captions", "dialogues", "samples", "MiB"):
        t.add_column(col, justify="left" if col == "dataset" else "right")
    for dataset, summary in summaries.items():
        n = summary["counts"]
        analysed = n["analysed_ok"] + n["analysis_rejected"] + n["analysis_failed"]
        middle = str(n["pairs"]) if dataset == "muedit" else str(n["media_ok"]) if "media_ok" in n else "-"
        dialogues = "-" if dataset == "mucaps" else f"{n['dialogues_accepted']} ok/{n['dialogues_rejected']}"
        t.add_row(
            dataset, f"{n['analysed_ok']} of {analysed}", str(n["music"]), middle, str(n["captioned"]), dialogues,
            str(n["shard_samples"]), f"{n['shard_bytes'] / 2**20:.1f}",
        )
    console.print(t)
    print_contamination(summaries)
    for dataset, summary in summaries.items():
        if summary["failures"]:
            failures = ", ".join(f"{k}={v}" for k, v in summary["failures"].items())
            console.print(f"{dataset} failures and rejections by class: {failures}", highlight=False)
        for s in summary["shard_files"]:
            console.print(f"  {s['path']}  {s['samples']} samples  sha256 {s['sha256'][:16]}", highlight=False)


def print_contamination(summaries: dict[str, dict[str, Any]]) -> None:
    """What was kept out of training: segments an evaluation list names (each corpus plants one under a
    MusicCaps ID) and near-duplicates by sound (each corpus plants a copy of one of its clips)."""
    counts = {d: s["counts"] for d, s in summaries.items()}
    per = lambda key: ", ".join(f"{d} {c.get(key, 0)}" for d, c in counts.items())  # noqa: E731
    console.print(f"clean evaluation: segments rejected by evaluation lists (MusicCaps by default): {per('eval_excluded')}; "
                  f"near-duplicates dropped by sound: {per('duplicates_dropped')}; "
                  f"clips matched to an evaluation set: {per('contaminated')}", highlight=False)


def print_examples(wh) -> None:
    from flows.summary import example_dialogue

    for dataset in ("muedit", "muimage"):
        example = example_dialogue(wh, dataset)
        if example:
            console.print(f"\n[bold]example {dataset} dialogue[/] {example['sample_id']}")
            console.print(f"  human: {example['human']}", highlight=False)
            console.print(f"  gpt:   {example['gpt']}", highlight=False)
    print_example_caption(wh)


def print_example_caption(wh) -> None:
    """One grounded caption whose instruments were measured from the audio, and what backs each phrase."""
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


def write_card(wh, since: float) -> None:
    """The dataset card (``m2ugen_data.report``). Each build flow rewrites it as it finishes, so when the
    card is newer than ``since`` (the demo's start, epoch seconds) only its path is printed; else it is
    written here (a flow that did not or could not write it)."""
    index = wh.root / "report" / "index.html"
    if not index.is_file() or index.stat().st_mtime < since:
        try:
            from m2ugen_data.report import write_report
        except ImportError as e:  # a checkout without the card, or one of its dependencies missing: say which
            console.print(f"dataset card: not written ({e})", highlight=False)
            return
        index = write_report(wh)
    console.print(f"\n[bold]dataset card[/] {index}", highlight=False)


def run(argv: list[str] | None = None) -> None:
    from m2ugen_data.errors import M2UGenError

    try:
        app(args=argv)
    except M2UGenError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False)
        raise SystemExit(2) from None


if __name__ == "__main__":
    run()
