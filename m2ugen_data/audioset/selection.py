"""Choose the music segments and split them into four disjoint pools, one per dataset.

The paper builds MUCaps, MUEdit, MUImage and MUVideo from different AudioSet music; we make that split a pure
function of the YouTube ID (sha256 -> a number in [0, 1) -> cumulative proportions), so every machine and
every rerun puts a video in the same pool, and all segments of one video land in the same pool. Label
subtrees are resolved through the ontology, so "exclude Speech" also excludes its children.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from m2ugen_data.audioset.ontology import GENRE, INSTRUMENT, MOOD, MUSIC, Ontology, load_ontology
from m2ugen_data.audioset.segments_csv import Reject, SegmentList, read_segments_csv
from m2ugen_data.audioset.sources import SEGMENT_URLS, resolve_source, segments_location
from m2ugen_data.errors import M2UGenError
from m2ugen_data.schemas import SEGMENTS
from m2ugen_data.warehouse import Warehouse, conform, duck_connect, utc_now

if TYPE_CHECKING:
    from m2ugen_data.audioset.eval_exclusion import EvalExclusion

POOLS = ("mucaps", "muedit", "muimage", "muvideo")
DEFAULT_PROPORTIONS = {"mucaps": 0.55, "muedit": 0.25, "muimage": 0.10, "muvideo": 0.10}
POOL_HASH_SALT = "m2ugen-pool-v1:"  # changing the scheme must be explicit: bump the salt


class SelectionPolicy(BaseModel):
    """Which segments count as music for the datasets, and how they are split into pools."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    music_root: str = MUSIC
    exclude_labels: tuple[str, ...] = ()  # a segment with any label in these subtrees is dropped
    require_instrument: bool = False  # keep only segments with a label under Musical instrument
    pool_proportions: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PROPORTIONS))
    pool_override: str | None = None  # put every selected segment in this pool (the synthetic corpus)

    @field_validator("pool_proportions")
    @classmethod
    def _check_proportions(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(POOLS)
        if unknown:
            raise ValueError(f"unknown pools {sorted(unknown)}; expected some of {POOLS}")
        if any(p < 0 for p in v.values()) or sum(v.values()) <= 0:
            raise ValueError("pool proportions must be >= 0 with a positive sum")
        total = sum(v.values())
        return {pool: v.get(pool, 0.0) / total for pool in POOLS}

    @model_validator(mode="after")
    def _check_override(self) -> SelectionPolicy:
        if self.pool_override is not None and self.pool_override not in POOLS:
            raise ValueError(f"pool_override {self.pool_override!r} is not one of {POOLS}")
        return self


@dataclass
class SelectionReport:
    source: str
    rows: int
    rejects: list[Reject]
    music: int
    excluded: int
    duplicates: int
    selected: int
    pools: dict[str, int]
    batch_id: str | None = None
    eval_excluded: dict[str, int] = field(default_factory=dict)  # evaluation list -> segments it ruled out


def pool_of(ytid: str, proportions: dict[str, float]) -> str:
    """The pool of a YouTube ID: the first 8 bytes of sha256(salt + ID), as a fraction of 2**64, placed on
    the cumulative proportions (in ``POOLS`` order). Stable across machines, runs and library versions."""
    h = int.from_bytes(hashlib.sha256((POOL_HASH_SALT + ytid).encode()).digest()[:8], "big")
    return POOLS[int(_place(np.array([h], np.uint64), proportions)[0])]


def pool_indices(ytids: pa.Array | pa.ChunkedArray, proportions: dict[str, float]) -> np.ndarray:
    """``pool_of`` for a whole column: DuckDB hashes 2M IDs in about a second, Python's hashlib in ~4 s."""
    con = duck_connect()
    con.register("ids", pa.table({"ytid": ytids}))
    sql = f"SELECT ('0x' || substr(sha256('{POOL_HASH_SALT}' || ytid), 1, 16))::UBIGINT AS h FROM ids"
    h = con.sql(sql).to_arrow_table().column("h").to_numpy()
    return _place(h, proportions)


def _place(h: np.ndarray, proportions: dict[str, float]) -> np.ndarray:
    u = h.astype(np.float64) / 2.0**64
    cum = np.cumsum([proportions.get(p, 0.0) for p in POOLS])
    last = max(i for i, p in enumerate(POOLS) if proportions.get(p, 0.0) > 0)  # u within rounding of 1.0
    return np.minimum(np.searchsorted(cum, u, side="right"), last)


def select_music(
    seg: SegmentList, ontology: Ontology, policy: SelectionPolicy, exclusion: EvalExclusion | None = None
) -> tuple[pa.Table, SelectionReport]:
    """Rows of the ``segments`` manifest for the music segments of one list, with a report of what was dropped.
    ``exclusion``: evaluation lists whose segments the kept audio must not hold; each segment it rules out is
    a reject (``eval:<list>``, with its line) and counted per list in ``eval_excluded``."""
    t = seg.table
    labels = t.column("labels").combine_chunks() if t.num_rows else pa.array([], pa.list_(pa.string()))
    flat = pc.list_flatten(labels)
    parents = pc.list_parent_indices(labels).to_numpy()
    n = t.num_rows

    def in_subtree(roots: Sequence[str]) -> np.ndarray:
        ids = set().union(*(ontology.descendants(r) for r in roots)) if roots else set()
        return pc.is_in(flat, value_set=pa.array(sorted(ids), pa.string())).to_numpy(zero_copy_only=False)

    def any_per_row(mask: np.ndarray) -> np.ndarray:
        return np.bincount(parents[mask], minlength=n) > 0

    instrument_mask = in_subtree([INSTRUMENT])
    music = any_per_row(in_subtree([policy.music_root]))
    keep = music.copy()
    if policy.exclude_labels:
        keep &= ~any_per_row(in_subtree(policy.exclude_labels))
    if policy.require_instrument:
        keep &= any_per_row(instrument_mask)
    excluded = int(music.sum() - keep.sum())

    sub = {
        "instruments": _sublists(labels, parents, instrument_mask),
        "genres": _sublists(labels, parents, in_subtree([GENRE])),
        "moods": _sublists(labels, parents, in_subtree([MOOD])),
    }
    eval_rejects, eval_counts = _exclude_eval(t, keep, policy, exclusion)
    idx = np.flatnonzero(keep)
    ms = pc.cast(pc.round(pc.multiply(t.column("start_s"), 1000.0)), pa.int64())
    all_ids = pc.binary_join_element_wise(t.column("ytid"), pc.cast(ms, pa.string()), "_")
    # The same segment twice in one list: keep its first row (a hash aggregate, not a Python loop).
    firsts = (
        pa.table({"clip_id": all_ids.take(pa.array(idx)), "i": pa.array(idx, pa.int64())})
        .group_by("clip_id", use_threads=False)
        .aggregate([("i", "min")])
        .column("i_min")
        .to_numpy()
    )
    take = pa.array(np.sort(firsts))
    kept_ytids = t.column("ytid").take(take)
    if policy.pool_override:
        pools = pa.array([policy.pool_override] * len(take), pa.string())
    else:
        pools = pa.array(POOLS).take(pa.array(pool_indices(kept_ytids, policy.pool_proportions)))
    now = utc_now()
    table = conform(
        SEGMENTS,
        pa.table(
            {
                "clip_id": all_ids.take(take),
                "ytid": kept_ytids,
                "start_s": t.column("start_s").take(take),
                "end_s": t.column("end_s").take(take),
                "labels": labels.take(take),
                "instruments": sub["instruments"].take(take),
                "genres": sub["genres"].take(take),
                "moods": sub["moods"].take(take),
                "pool": pools,
                "source": pa.array([seg.source] * len(take), pa.string()),
                "updated_at": pa.array([now] * len(take), pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    report = SelectionReport(
        source=seg.source,
        rows=n,
        rejects=sorted([*seg.rejects, *eval_rejects], key=lambda r: r.line),
        music=int(music.sum()),
        excluded=excluded,
        duplicates=len(idx) - len(take),
        selected=len(take),
        pools=dict(sorted(Counter(pools.to_pylist()).items())),
        eval_excluded=eval_counts,
    )
    return table, report


def _exclude_eval(
    t: pa.Table, keep: np.ndarray, policy: SelectionPolicy, exclusion: EvalExclusion | None
) -> tuple[list[Reject], dict[str, int]]:
    """Clear ``keep`` for the music segments an evaluation list rules out; their rejects and counts per list.
    Only rows of videos a list names are looked at one by one (a few thousand of AudioSet's two million)."""
    if exclusion is None or not exclusion.lists or not keep.any():
        return [], {}
    ytids = t.column("ytid")
    named = pc.is_in(ytids, value_set=pa.array(sorted(exclusion.videos), pa.string())).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(keep & named)
    if not rows.size:
        return [], {}
    take = pa.array(rows)
    sub = {c: t.column(c).take(take).to_pylist() for c in ("ytid", "start_s", "end_s", "line")}
    if policy.pool_override:
        pools = [policy.pool_override] * len(rows)
    else:
        pools = [POOLS[i] for i in pool_indices(pa.array(sub["ytid"], pa.string()), policy.pool_proportions)]
    rejects, counts = [], Counter()
    for i, hit in enumerate(exclusion.match_many(sub["ytid"], sub["start_s"], sub["end_s"], pools)):
        if hit is None:
            continue
        name, why = hit
        keep[rows[i]] = False
        counts[name] += 1
        text = f"{sub['ytid'][i]},{sub['start_s'][i]:g},{sub['end_s'][i]:g} ({pools[i]}): {why}"  # pool: summaries
        rejects.append(Reject(int(sub["line"][i]), f"eval:{name}", text[:120]))
    return rejects, dict(sorted(counts.items()))


def _sublists(labels: pa.ListArray, parents: np.ndarray, mask: np.ndarray) -> pa.ListArray:
    """Per row, the labels whose flattened position is set in ``mask`` (order kept)."""
    counts = np.bincount(parents[mask], minlength=len(labels))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pc.list_flatten(labels).filter(pa.array(mask)))


def select_segments(
    wh: Warehouse,
    sources: Sequence[str | Path],
    *,
    ontology: Ontology | None = None,
    policy: SelectionPolicy | None = None,
    limit: int | None = None,
    source_names: Sequence[str] | None = None,
    exclusion: EvalExclusion | None = None,
) -> list[SelectionReport]:
    """Read each segment list, select its music, and write one ``segments`` batch per list. ``exclusion``
    (the evaluation lists; default: the bundled lists, ``contamination.default_exclusion``) drops segments
    whose kept audio could hold an evaluation segment; pass an ``EvalExclusion`` with no lists to keep them.

    The batch id is ``segments-<source>-<hash of the list's bytes>``, so selecting the same list again
    (with the same or a new policy) replaces its batch instead of adding to it.
    """
    ontology = ontology or load_ontology()
    policy = policy or SelectionPolicy()
    if exclusion is None:
        from m2ugen_data.audioset.eval_exclusion import default_exclusion

        exclusion = default_exclusion()
    from m2ugen_data.audioset.eval_exclusion import record_lists

    record_lists(wh, exclusion)
    cache = wh.root / "cache"
    reports: list[SelectionReport] = []
    written: set[str] = set()
    left = limit
    for i, src in enumerate(sources):
        if left == 0:
            break
        path = resolve_source(segments_location(str(src)), cache)
        name = source_names[i] if source_names else None
        seg = read_segments_csv(path, name or _official_name(str(src)))
        table, report = select_music(seg, ontology, policy, exclusion)
        dup = np.array([c in written for c in table.column("clip_id").to_pylist()], dtype=bool)
        if dup.any():  # the same segment in two lists: the first list keeps it
            table = table.filter(pa.array(~dup))
            report.duplicates += int(dup.sum())
        if left is not None:
            table = table.slice(0, max(left, 0))
            left -= table.num_rows
        report.selected = table.num_rows
        report.pools = dict(sorted(Counter(table.column("pool").to_pylist()).items()))
        written.update(table.column("clip_id").to_pylist())
        report.batch_id = f"segments-{seg.source}-{_file_hash(path)[:12]}"
        wh.write_batch("segments", table, report.batch_id)
        write_rejects(wh, report)
        reports.append(report)
    return reports


def write_rejects(wh: Warehouse, report: SelectionReport) -> None:
    """Every rejected row of the list into ``segment_rejects``, in a batch named after the list's segments
    batch (so a rerun replaces it, and an empty batch clears rows that a better parser no longer rejects)."""
    now = utc_now()
    rows = [{"batch_id": report.batch_id, "source": report.source, "line": r.line, "reason": r.reason,
             "text": r.text, "created_at": now} for r in report.rejects]
    wh.write_batch("segment_rejects", rows, f"rejects-{report.batch_id.removeprefix('segments-')}")


def _official_name(value: str) -> str | None:
    return value if value in SEGMENT_URLS else None


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise M2UGenError(f"cannot read {path}: {e.strerror or e}") from e
    return h.hexdigest()


__all__ = ["DEFAULT_PROPORTIONS", "POOLS", "SelectionPolicy", "SelectionReport", "pool_of", "select_music", "select_segments"]
