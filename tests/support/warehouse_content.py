"""What a flow run produced, not when: the comparison the resume and task-runner tests make between runs."""

from __future__ import annotations

from m2ugen_data.schemas import MANIFESTS
from m2ugen_data.warehouse import Warehouse

# when and by which run a row was written, not what: differs between two runs of the same inputs
VOLATILE = {"updated_at", "created_at", "run_id", "batch_id"}


def _norm(v):
    """Floats to 6 significant digits: the ONNX beat model's confidence differs in the 7th digit between
    processes (seen on tempo_conf); every other value must match exactly."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def latest_content(wh: Warehouse) -> dict[str, list[tuple]]:
    """Every manifest's latest rows without timestamps and run ids, sorted: what a run produced, not when."""
    out = {}
    for name in MANIFESTS:
        if name in ("synth_truth", "visual_media"):
            continue
        rows = wh.read(name).to_pylist()
        out[name] = sorted(tuple((k, repr(_norm(v))) for k, v in r.items() if k not in VOLATILE) for r in rows)
    return out


def file_stats(wh: Warehouse, name: str) -> dict[str, tuple[int, int]]:
    """A manifest's batch files with inode and mtime: a file rewritten (even with the same bytes) changes them."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in wh.manifest_files(name)}
