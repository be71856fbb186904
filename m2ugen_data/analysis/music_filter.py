"""The MUCaps music filter: is this clip music worth captioning?

A clip passes when its AudioSet labels say music, its speech ratio and loudness are within bounds, and it
was not rejected as silent or clipped. The verdict is two columns of the ``features`` row (``is_music`` and
``music_reasons``); nothing is ever deleted.

Where it runs: inside the analysis pass (the segment labels are looked up once per run, and the verdict
costs nothing next to the audio work), so a fresh ``features`` row is complete. ``refilter`` re-applies
new bounds to rows already analysed without decoding any audio and writes only the rows whose verdict
changed, so tuning the bounds is cheap and the analysis is never repeated for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from m2ugen_data.warehouse import Warehouse, utc_now

MUSIC_MID = "/m/04rlf"  # AudioSet "Music"


@dataclass(frozen=True)
class MusicFilterConfig:
    max_speech_ratio: float = 0.5
    min_loudness_lufs: float = -45.0
    max_loudness_lufs: float = -3.0
    require_music_label: bool = True


@dataclass(frozen=True)
class ClipLabels:
    labels: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()

    def says_music(self) -> bool:
        return MUSIC_MID in self.labels or bool(self.instruments) or bool(self.genres)


def music_reasons(row: Mapping[str, object], labels: ClipLabels | None, cfg: MusicFilterConfig) -> list[str]:
    """Every reason the clip fails the filter (empty list: it passes). Reasons are stable codes."""
    reasons: list[str] = []
    status, reason = row.get("status"), str(row.get("reason") or "")
    if status != "ok":
        reasons.append(reason.split(":")[0] or str(status))  # silent, clipped, too_short, undecodable, ...
    if cfg.require_music_label and (labels is None or not labels.says_music()):
        reasons.append("no_music_label")
    speech = row.get("speech_ratio")
    if speech is not None and speech > cfg.max_speech_ratio:
        reasons.append("speech")
    lufs = row.get("loudness_lufs")
    if status == "ok":
        if lufs is None:
            reasons.append("no_loudness")
        elif lufs < cfg.min_loudness_lufs:
            reasons.append("too_quiet")
        elif lufs > cfg.max_loudness_lufs:
            reasons.append("too_loud")
    return reasons


def apply_filter(row: dict, labels: ClipLabels | None, cfg: MusicFilterConfig) -> dict:
    """Set ``is_music`` and ``music_reasons`` on a features row (in place) and return it."""
    reasons = music_reasons(row, labels, cfg)
    row["is_music"] = not reasons
    row["music_reasons"] = reasons
    return row


def load_labels(warehouse: Warehouse, clip_ids: Sequence[str] | None = None) -> dict[str, ClipLabels]:
    """Segment labels per clip from the ``segments`` manifest (latest row per clip)."""
    table = warehouse.read("segments")
    wanted = set(clip_ids) if clip_ids is not None else None
    out: dict[str, ClipLabels] = {}
    for cid, lab, ins, gen in zip(
        table.column("clip_id").to_pylist(),
        table.column("labels").to_pylist(),
        table.column("instruments").to_pylist(),
        table.column("genres").to_pylist(),
    ):
        if wanted is None or cid in wanted:
            out[cid] = ClipLabels(tuple(lab or ()), tuple(ins or ()), tuple(gen or ()))
    return out


def refilter(warehouse: Warehouse, cfg: MusicFilterConfig, batch_size: int = 50_000) -> dict[str, int]:
    """Re-apply ``cfg`` to every analysed clip; write the rows whose verdict changed. Returns counts."""
    rows = warehouse.read("features").to_pylist()
    labels = load_labels(warehouse)
    changed = []
    for row in rows:
        before = (row["is_music"], list(row["music_reasons"] or []))
        apply_filter(row, labels.get(row["clip_id"]), cfg)
        if (row["is_music"], row["music_reasons"]) != before:
            row["updated_at"] = utc_now()
            changed.append(row)
    tag = hashlib.sha1(repr(sorted(asdict(cfg).items())).encode()).hexdigest()[:8]
    for i in range(0, len(changed), batch_size):
        chunk = changed[i : i + batch_size]
        digest = hashlib.sha1("\n".join(r["clip_id"] for r in chunk).encode()).hexdigest()[:12]
        warehouse.write_batch("features", chunk, f"music-filter-{tag}-{digest}")
    passed = sum(1 for r in rows if r["is_music"])
    return {"clips": len(rows), "changed": len(changed), "is_music": passed, "not_music": len(rows) - passed}
