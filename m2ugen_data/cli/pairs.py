"""``m2ugen-data pairs mine``: mine MUEdit source/target pairs from the features manifest.

Only ``PairRules`` is imported up front, because its defaults are the options' defaults (one definition for
the CLI, the flows and the Python API); the mining itself (DuckDB, numba) is imported when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from m2ugen_data.pairs.rules import PairRules
from m2ugen_data.cli.common import console, get_warehouse, print_summary

app = typer.Typer(help="Mine MUEdit source/target pairs from the features manifest.", no_args_is_help=True)
_RULES = PairRules()


@app.command("mine")
def mine(
    ctx: typer.Context,
    pool: Annotated[str | None, typer.Option(help="Only clips of this pool (default: all analysed clips).")] = None,
    tolerance: Annotated[float, typer.Option(help="Largest relative tempo difference.")] = _RULES.tolerance,
    k: Annotated[int, typer.Option("--k", min=1, help="Pairs per clip at most (both directions count).")] = _RULES.k,
    key_rule: Annotated[str, typer.Option(help="Key relation required: same | relative | any.")] = _RULES.key_rule,
    allow_double: Annotated[
        bool, typer.Option("--allow-double/--no-allow-double", help="Also pair clips at half or double tempo.")
    ] = _RULES.allow_double,
    min_conf: Annotated[float, typer.Option(help="Smallest beat (tempo) confidence of both clips.")] = _RULES.min_tempo_conf,
    max_loudness_diff: Annotated[float, typer.Option(help="Largest loudness difference (LU).")] = _RULES.max_loudness_diff,
    min_content_dist: Annotated[
        float, typer.Option(help="Content differs: instrument tag vectors at least this far apart (cosine)...")
    ] = _RULES.min_content_dist,
    min_sound_dist: Annotated[
        float, typer.Option(help="...or their timbre farther apart than this (clips with tags).")
    ] = _RULES.min_sound_dist,
    min_harmony_sim: Annotated[
        float, typer.Option(help="Keep only pairs sharing at least this fraction of beat chords (0: any music).")
    ] = _RULES.min_harmony_sim,
    max_jaccard: Annotated[
        float, typer.Option(help="Clips analysed without tags: label sets differ when Jaccard is below this...")
    ] = _RULES.max_label_jaccard,
    min_timbre_dist: Annotated[float, typer.Option(help="...or timbre distance is above this.")] = _RULES.min_timbre_dist,
    any_clip: Annotated[bool, typer.Option(help="Do not require the MUCaps music filter verdict.")] = False,
    window: Annotated[int, typer.Option(min=1, help="Neighbours per clip per sort order in the band join.")] = _RULES.window,
    threads: Annotated[int | None, typer.Option(min=1, help="DuckDB threads (default: all cores).")] = None,
    memory_limit: Annotated[str | None, typer.Option(help="DuckDB memory limit, e.g. 4GB.")] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Mine every clip again instead of only new or re-analysed ones.")
    ] = False,
) -> None:
    """Mine tempo- and beat-matched pairs that differ in measured content, preferring shared harmony.

    Incremental by default: the previous run's scored edges (warehouse ``cache/pairs/``) are reused and only
    pairs involving new or re-analysed clips are searched; the pairs equal a full re-mine's."""
    from m2ugen_data.pairs.mine import mine_warehouse

    rules = PairRules(
        tolerance=tolerance,
        allow_double=allow_double,
        min_tempo_conf=min_conf,
        max_loudness_diff=max_loudness_diff,
        min_content_dist=min_content_dist,
        min_sound_dist=min_sound_dist,
        min_harmony_sim=min_harmony_sim,
        max_label_jaccard=max_jaccard,
        min_timbre_dist=min_timbre_dist,
        key_rule=key_rule,
        k=k,
        require_music=not any_clip,
        window=window,
    )
    wh = get_warehouse(ctx)
    with console.status("mining pairs (DuckDB band join, greedy degree cap)"):
        result, batch = mine_warehouse(wh, rules, pool, full=full, threads=threads, memory_limit=memory_limit)
    rows: dict[str, object] = {"clips in features": result.clips, "eligible clips": result.eligible}
    rows |= {f"clip rejected: {r}": n for r, n in sorted(result.clip_rejections.items())}
    rows["candidate pairs examined"] = result.candidates
    rows |= {f"pair rejected: {r}": n for r, n in sorted(result.pair_rejections.items())}
    rows |= {"valid pairs": result.valid, "pairs written": result.pairs.num_rows}
    rows |= {f"clips with {d} pair(s)": n for d, n in sorted(result.degree_histogram.items())}
    rows["seconds"] = round(result.timings.get("total", 0.0), 2)
    print_summary(f"pairs mined -> manifests/pairs/{batch}.parquet", rows)
