"""Converted datasets (MusicQA, ...) kept clear of evaluation audio: the converter's samples are checked by
sound against evaluation sets the user names (``convert musicqa --decontaminate-against MusicCaps/``) and
against the warehouse's own held-out clips, so a recorded split also holds for audio that arrives through a
converter. A matching sample is a recorded reject (``eval:<benchmark>``), never a silent drop.

MusicQA's pre-training part was generated from every MusicCaps row with the audio renamed to numbers: only
its sound says which of its clips is a MusicCaps evaluation clip.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from m2ugen_data.analysis import fingerprint as fp_mod
from m2ugen_data.contamination.evalindex import AUDIO_SUFFIXES, EvalIndex, EvalItem, build_index
from m2ugen_data.clean.split import read_splits
from m2ugen_data.ids import ytid_of
from m2ugen_data.warehouse import Warehouse


def held_out_items(wh: Warehouse) -> list[EvalItem]:
    """The warehouse's held-out clips (per recorded split: clips of the dataset's pool whose video is held
    out) with their stored fingerprints."""
    splits = read_splits(wh)
    if not splits:
        return []
    con = wh.connect()
    have = {r[0] for r in con.sql("DESCRIBE features_latest").fetchall()}
    if "fp_status" not in have:
        return []
    rows = con.sql(
        "SELECT f.clip_id, s.pool, f.fp_landmarks, f.fp_sketch, f.fp_seconds FROM features_latest f "
        "JOIN segments_latest s USING (clip_id) WHERE f.fp_status = 'ok' AND f.fp_version = $v",
        params={"v": fp_mod.VERSION},
    ).to_arrow_table().to_pylist()
    items = []
    for r in rows:
        split = splits.get(r["pool"])
        if split is not None and split.held_out(ytid_of(r["clip_id"])):
            fp = fp_mod.from_columns(r["fp_landmarks"], r["fp_sketch"], r["fp_seconds"])
            items.append(EvalItem(f"held_out:{r['pool']}", r["clip_id"], fp, (r["clip_id"],), (ytid_of(r["clip_id"]),)))
    return items


def protected_index(wh: Warehouse, against: Sequence[str] = ()) -> EvalIndex:
    """The evaluation audio converted samples must not hold: ``against`` ([NAME=]PATH) and the held-out clips."""
    from m2ugen_data.contamination.decontaminate import parse_against

    index = build_index([parse_against(a) for a in against])
    for item in held_out_items(wh):
        index.add(item)
    return index.freeze()


def _audio_members(members: dict[str, object]) -> Iterator[tuple[str, Path | bytes]]:
    for name, value in members.items():
        if ("." + name.rsplit(".", 1)[-1]).lower() in AUDIO_SUFFIXES:
            yield name, value  # type: ignore[misc]


def _fingerprint(value: Path | bytes, suffix: str) -> fp_mod.Fingerprint:
    if isinstance(value, bytes):
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(value)
            tmp.flush()
            return fp_mod.fingerprint_file(tmp.name)
    return fp_mod.fingerprint_file(value)


def drop_matching(samples: Iterable, index: EvalIndex, rejects) -> Iterator:
    """The samples whose audio holds no item of ``index``; the others go to ``rejects`` as
    ``eval:<benchmark>`` (an audio file is fingerprinted once however many samples share it)."""
    seen: dict[object, str | None] = {}
    for s in samples:
        hit = None
        for name, value in _audio_members(s.members):
            key = value if isinstance(value, Path) else hash(value)
            if key not in seen:
                found = index.lookup(_fingerprint(value, "." + name.rsplit(".", 1)[-1]))
                seen[key] = f"{found[0][0].benchmark}\0{found[0][0].item}" if found else None
            hit = hit or seen[key]
        if hit is None:
            yield s
        else:
            benchmark, item = hit.split("\0", 1)
            rejects.add(s.key, f"eval:{benchmark}", item)


__all__ = ["drop_matching", "held_out_items", "protected_index"]
