"""``m2ugen-data claims list|release``: see who holds which work, and free what a dead node held
(``m2ugen_data/claims_admin.py``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from m2ugen_data.cli.common import OutputFormat, console, err_console, get_warehouse, print_arrow

if TYPE_CHECKING:
    from m2ugen_data.claims_admin import ClaimEntry

app = typer.Typer(help="Work claims and leases of concurrent runs: list them, release a dead node's.", no_args_is_help=True)

Stage = Annotated[str | None, typer.Option(help="Only claims of this stage (analyze, download, leases, ...).")]


def _row(e: ClaimEntry, now: float) -> dict[str, object]:
    from m2ugen_data.claim_records import relative, span

    r = e.record
    return {
        "stage": e.stage, "bucket": e.bucket, "holder": r.token[:12] if r else None, "host": r.host if r else None,
        "pid": r.pid if r else None, "age": span(now - r.since) if r else None,
        "expires": relative(r.expires_at, now) if r else None,
        "state": e.state, "keys": len(r.keys) if r else None, "note": e.why,
    }


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    stage: Stage = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """Every claim and lease: stage, bucket, holder, host, pid, age, expiry, state (live/done/released/stale/malformed)."""
    import pyarrow as pa

    from m2ugen_data.claims_admin import list_claims

    wh = get_warehouse(ctx)
    entries = list_claims(wh.root, stage)
    if not entries:
        console.print(f"no claims in {escape(str(wh.root / 'claims'))}", highlight=False)
        return
    now = time.time()
    print_arrow(pa.Table.from_pylist([_row(e, now) for e in entries]), fmt, title=f"claims in {wh.root}")


@app.command("release")
def release_cmd(
    ctx: typer.Context,
    buckets: Annotated[list[str] | None, typer.Argument(
        help="Buckets to release: a bucket (all its slots), bucket.slot, or a lease's name; prefix stage/ to pick one stage.")] = None,
    host: Annotated[str | None, typer.Option(help="Release every claim and lease held by this host.")] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Release every stale or malformed claim.")] = False,
    stage: Stage = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Also release live claims of processes still running on this host.")] = False,
) -> None:
    """Free claims a dead node still holds, so the next run does their work now, not when their lease expires."""
    from m2ugen_data.claims_admin import release_claims
    from m2ugen_data.errors import M2UGenError

    wh = get_warehouse(ctx)
    done = release_claims(wh.root, buckets or (), host=host, stale=stale, stage=stage, force=force)
    for e in done.released:
        held = f" of pid {e.record.pid} on {e.record.host}" if e.record else ""
        console.print(f"released {escape(e.stage)}/{escape(e.bucket)} ({e.state}{escape(held)})", highlight=False)
    for e in done.changed:
        err_console.print(f"left {escape(e.stage)}/{escape(e.bucket)}: it changed since it was read (a run renewed or took it)",
                          highlight=False)
    if not done.released and not done.refused:
        console.print("nothing to release", highlight=False)
    if done.refused:
        pids = ", ".join(sorted({str(e.record.pid) for e in done.refused if e.record}))
        raise M2UGenError(
            f"refused to release {len(done.refused)} live claim(s) of process(es) still running on this host (pid {pids}): "
            "stop that run, or pass --force"
        )
