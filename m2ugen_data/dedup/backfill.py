"""Fingerprint analysed clips whose features row has none (analysed before fingerprints existed, or by an
older fingerprint version), without analysing them again: the newest row is written again with the
fingerprint columns filled. A clip whose audio cannot be read gets ``fp_status = failed`` and its reason in
the summary; the run goes on.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from m2ugen_data.analysis import fingerprint as fp_mod
from m2ugen_data.lifecycle import process_pool
from m2ugen_data.warehouse import Warehouse, utc_now

BATCH = 256


@dataclass
class BackfillSummary:
    todo: int = 0
    status: Counter[str] = field(default_factory=Counter)
    batches: list[str] = field(default_factory=list)


def missing(wh: Warehouse) -> pa.Table:
    """Latest features rows (ok or rejected) without a fingerprint of this version, with the audio path."""
    con = wh.connect()
    have = {r[0] for r in con.sql("DESCRIBE features_latest").fetchall()}
    version = "f.fp_version IS DISTINCT FROM $v" if "fp_version" in have else "true"
    return con.sql(
        f"SELECT f.*, c.audio_path AS _audio FROM features_latest f JOIN clips_latest c USING (clip_id) "
        f"WHERE f.status IN ('ok', 'rejected') AND c.status = 'ok' AND {version} ORDER BY f.clip_id",
        params={"v": fp_mod.VERSION} if "fp_version" in have else None,
    ).to_arrow_table()


def _one(path: str) -> dict[str, object]:
    return fp_mod.feature_columns(fp_mod.fingerprint_file(path))


def fingerprint_missing(
    wh: Warehouse, *, workers: int | None = None, progress: Callable[[int], None] | None = None
) -> BackfillSummary:
    """Fill the fingerprint of every row ``missing`` finds, ``BATCH`` rows per features batch."""
    from m2ugen_data.schemas import FEATURES

    table = missing(wh)
    summary = BackfillSummary(todo=table.num_rows)
    if not table.num_rows:
        return summary
    paths = [str(wh.abspath(p)) for p in table.column("_audio").to_pylist()]
    keep = [n for n in table.column_names if n in FEATURES.schema.names]
    rows = table.select(keep).to_pylist()
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    parallel = n_workers > 1 and len(paths) > 1
    with process_pool(min(n_workers, len(paths))) if parallel else contextlib.nullcontext(None) as pool:
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            cols = list(pool.map(_one, paths[start : start + BATCH])) if pool else [_one(p) for p in paths[start : start + BATCH]]
            now = utc_now()
            for row, fp in zip(chunk, cols):
                row.update(fp, updated_at=now)
                summary.status[str(fp["fp_status"])] += 1
            batch_id = f"features-fp-{chunk[0]['clip_id']}-{len(chunk)}-{fp_mod.VERSION}"
            wh.write_batch("features", chunk, batch_id)
            summary.batches.append(batch_id)
            if progress:
                progress(len(chunk))
    return summary


__all__ = ["BackfillSummary", "fingerprint_missing", "missing"]
