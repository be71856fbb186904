"""The MUCaps music filter: is this clip music worth captioning?

A clip passes when it sounds like music (its measured ``music_score`` clears the calibrated threshold of
``analysis.music_likeness``: AudioSet labels alone let sound effects, applause and ambience through), its
AudioSet labels say music, its speech ratio and loudness are within bounds, and it was not rejected as
silent or clipped. The verdict is two columns of the ``features`` row (``is_music`` and
``music_reasons``); nothing is ever deleted.

Where it runs: inside the analysis pass (the segment labels are looked up once per run, and the verdict
costs nothing next to the audio work), so a fresh ``features`` row is complete. ``refilter`` re-derives the
tag words and the music score from the stored measurements (``analysis.derived``), re-applies new bounds to rows already analysed
without decoding any audio, and writes only the rows whose verdict
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
    # None: the calibrated threshold stored with the music-likeness model (data/music_likeness.json)
    min_music_score: float | None = None
    # silero's VAD also fires on sung and other melodic lines: on the recordings dev set 3 of 120 music
    # clips had a speech ratio >= 0.98 while scoring >= 0.99 as music, and every speech clip scored < 0.02.
    # A clip at least this sure to be music is not rejected for "speech" (it still is for a low score).
    speech_exempt_music_score: float = 0.95


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
    score = row.get("music_score")
    if status == "ok" and score is not None and score < _score_threshold(cfg):
        reasons.append("not_music_like")
    speech = row.get("speech_ratio")
    exempt = score is not None and score >= cfg.speech_exempt_music_score
    if speech is not None and speech > cfg.max_speech_ratio and not exempt:
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


def _score_threshold(cfg: MusicFilterConfig) -> float:
    if cfg.min_music_score is not None:
        return cfg.min_music_score
    from m2ugen_data.analysis.music_likeness import load_model

    return load_model().threshold


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


_DERIVED = ("is_music", "music_reasons", "music_score", "instruments", "genres", "moods", "vocals", "tag_thresholds")


def refilter(warehouse: Warehouse, cfg: MusicFilterConfig, batch_size: int = 50_000) -> dict[str, int]:
    """Re-apply ``cfg`` to every analysed clip; write the rows whose verdict changed. Returns counts."""
    from m2ugen_data.analysis.derived import rederive

    rows = warehouse.read("features").to_pylist()
    labels = load_labels(warehouse)
    changed = []
    for row in rows:
        before = {k: row[k] for k in _DERIVED}
        rederive(row)  # current tag rule and music-likeness model, from the stored measurements
        apply_filter(row, labels.get(row["clip_id"]), cfg)
        if any(row[k] != v for k, v in before.items()):
            row["updated_at"] = utc_now()
            changed.append(row)
    tag = hashlib.sha1(repr(sorted(asdict(cfg).items())).encode()).hexdigest()[:8]
    for i in range(0, len(changed), batch_size):
        chunk = changed[i : i + batch_size]
        digest = hashlib.sha1("\n".join(r["clip_id"] for r in chunk).encode()).hexdigest()[:12]
        warehouse.write_batch("features", chunk, f"music-filter-{tag}-{digest}")
    passed = sum(1 for r in rows if r["is_music"])
    return {"clips": len(rows), "changed": len(changed), "is_music": passed, "not_music": len(rows) - passed}
