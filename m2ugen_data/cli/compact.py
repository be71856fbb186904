"""``m2ugen-data compact``: merge small manifest batches (see ``m2ugen_data/compact.py``)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from m2ugen_data.cli.common import OutputFormat, get_warehouse, print_arrow
from m2ugen_data.compact import DEFAULT_GRACE_S, DEFAULT_TARGET_ROWS


def compact_cmd(
    ctx: typer.Context,
    manifest: Annotated[
        Optional[list[str]], typer.Option("--manifest", "-m", help="Manifest to compact (repeatable; default: all).")
    ] = None,
    target_rows: Annotated[int, typer.Option(min=1, help="Rows per merged file.")] = DEFAULT_TARGET_ROWS,
    grace_s: Annotated[
        float, typer.Option(help="Keep replaced batches this long for readers that listed them (0: delete now).")
    ] = DEFAULT_GRACE_S,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """Merge each manifest's small batches into large files; readers see every row exactly once meanwhile."""
    import pyarrow as pa

    from m2ugen_data.compact import compact_all
    from m2ugen_data.errors import M2UGenError
    from m2ugen_data.schemas import MANIFESTS

    unknown = [m for m in manifest or () if m not in MANIFESTS]
    if unknown:
        raise M2UGenError(f"unknown manifest {unknown[0]!r}; known: {', '.join(MANIFESTS)}")
    wh = get_warehouse(ctx)
    names = list(manifest) if manifest else None
    results = compact_all(wh, names, target_rows=target_rows, grace_s=grace_s)
    rows = [
        {
            "manifest": r.manifest, "files_before": r.files_before, "files_after": r.files_after,
            "merged": r.merged_files, "rows": r.rows, "parts": r.parts, "purged": r.purged,
            "cleaned": r.cleaned, "seconds": round(r.seconds, 2), "note": r.note,
        }
        for r in results
    ]
    print_arrow(pa.Table.from_pylist(rows), fmt, title="compaction")
