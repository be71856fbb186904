"""The incremental miner's state between runs (``PairCache``): the previous run's clips and their content
hashes, its eligible clips with their sort keys, sort positions and kernel arrays, every valid scored edge in
best-first order and the PAIRS rows it chose; saved as raw .npy arrays and uncompressed Arrow IPC tables in a
directory replaced as a whole, with every file's checksum (``checksums.py``) so a damaged cache is found on
load (checksums, then ``cache_check``'s shapes and ranges), reported and rebuilt by a full mine, never used.
How a re-mine uses it: ``incremental.py``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from m2ugen_data.atomic import fsync_dir
from m2ugen_data.checksums import damage, write_checksums
from m2ugen_data.ids import ytids_of
from m2ugen_data.pairs.band import N_ORDERS
from m2ugen_data.pairs.cache_check import DamagedCache, check_cache
from m2ugen_data.pairs.clips import ARRAY_FIELDS, ClipArrays
from m2ugen_data.pairs.merge import index_in
from m2ugen_data.pairs.rules import FEATURE_COLUMNS, MINER_VERSION, PairRules
from m2ugen_data.pairs.select import OUTPUT_COLUMNS, ScoredEdges
from m2ugen_data.warehouse import duck_connect


log = logging.getLogger(__name__)
CACHE_FORMAT = 2
# the eligible clips' columns kept: the join's sort keys and what the output reads
CANDIDATE_COLUMNS = ("clip_id", "block", "lt", "ibi", "phase", "hc", *OUTPUT_COLUMNS[1:])
_EDGE_FIELDS = ("lo", "hi", "rel", "score", "harm", "chosen")


def rules_fingerprint(rules: PairRules) -> str:
    """What cached edges depend on: miner version and every rule but ``k`` (the cap is re-applied)."""
    fields = {k: v for k, v in dataclasses.asdict(rules).items() if k != "k"}
    return json.dumps({"format": CACHE_FORMAT, "miner": MINER_VERSION, "rules": fields}, sort_keys=True)


@dataclass
class PairCache:
    """A mining run's state, enough to re-mine incrementally (see the module docstring)."""

    fingerprint: str
    clip_ids: pa.Array  # every clip of the run's features, sorted
    versions: np.ndarray  # uint64 content hash per clip_ids entry
    eligible: pa.Table  # CANDIDATE_COLUMNS of the eligible clips; row = the run's clip row id
    elig_rows: np.ndarray  # int64 row in clip_ids of each eligible clip
    clips: ClipArrays  # the eligible clips' kernel arrays, same rows
    videos: pa.Array  # YouTube id of each ``clips.video`` code
    positions: np.ndarray  # (orders, elements) int64 sort positions, ``band.sort_positions``
    edges: ScoredEdges  # valid edges, best first
    pairs: pa.Table  # PAIRS rows of the chosen edges, in the order they were chosen (on disk: varying columns)
    rejected: pa.Table  # (clip_id, why): clips the eligibility rules rejected, so counts stay whole-set

    def save(self, directory: Path) -> None:
        """Write to ``directory`` as a whole: a sibling temporary directory renamed into place, so a killed
        run leaves the old cache or none (then the next run mines in full), never a mix. Arrays are raw
        .npy and tables uncompressed Arrow IPC: the cache is rewritten every run, so speed beats size."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex}.tmp")
        tmp.mkdir()
        try:
            arrays = {f"clips_{k}": v for k, v in self.clips.fields().items()}
            arrays |= {f"edges_{k}": getattr(self.edges, k) for k in _EDGE_FIELDS}
            arrays["edges_lo"], arrays["edges_hi"] = self.edges.lo.astype(np.int32), self.edges.hi.astype(np.int32)
            arrays |= {"positions": self.positions.astype(np.int64), "versions": self.versions}
            arrays["elig_rows"] = self.elig_rows
            for name, value in arrays.items():
                np.save(tmp / f"{name}.npy", value)
            tables = {
                "clip_ids": pa.table({"clip_id": self.clip_ids}), "eligible": self.eligible,
                "pairs": varying(self.pairs),
                "rejected": self.rejected, "labels_names": pa.table({"name": self.clips.labels[2]}),
                "words_names": pa.table({"name": self.clips.words[2]}), "videos": pa.table({"ytid": self.videos}),
            }  # fmt: skip
            for name, table in tables.items():
                feather.write_feather(table, tmp / f"{name}.arrow", compression="uncompressed")
            (tmp / "meta.json").write_text(self.fingerprint)
            write_checksums(tmp)
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            old = directory.with_name(f".{directory.name}.{uuid.uuid4().hex}.old")
            if directory.exists():
                directory.rename(old)
            tmp.rename(directory)
            fsync_dir(directory.parent)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> PairCache | None:
        """The cache in ``directory``, or None when there is none (the first run) or it is damaged: a file
        missing, not matching its checksum, unreadable or not shaped as a mine writes it (``check_cache``).
        A damaged cache is reported in one warning line naming the file; the full mine that follows
        rebuilds it."""
        directory = Path(directory)
        if not directory.exists():
            return None
        try:
            found = damage(directory)
            if found is not None:
                raise DamagedCache(*found)
            cache = cls._read(directory)
            check_cache(cache)
        except DamagedCache as e:
            log.warning("pair cache file %s: %s; mining in full to rebuild the cache", directory / e.file, e.why)
            return None
        except (TypeError, IndexError, KeyError, ValueError) as e:  # arrays of a shape no check foresaw
            log.warning("pair cache %s: arrays do not fit together (%s); mining in full to rebuild it", directory, e)
            return None
        return cache

    @classmethod
    def _read(cls, directory: Path) -> PairCache:
        def array(name: str) -> np.ndarray:
            try:
                return np.load(directory / f"{name}.npy", allow_pickle=False)
            except (OSError, ValueError, EOFError) as e:
                raise DamagedCache(f"{name}.npy", f"unreadable ({e})") from e

        def table(name: str) -> pa.Table:
            try:
                return feather.read_table(directory / f"{name}.arrow")
            except (OSError, ValueError, pa.ArrowException) as e:
                raise DamagedCache(f"{name}.arrow", f"unreadable ({e})") from e

        def column(name: str) -> pa.Array:
            t = table(name)
            if t.num_columns != 1:
                raise DamagedCache(f"{name}.arrow", f"{t.num_columns} columns, expected 1")
            return t.column(0).combine_chunks()

        eligible = table("eligible")
        missing = [c for c in CANDIDATE_COLUMNS if c not in eligible.column_names]
        if missing:
            raise DamagedCache("eligible.arrow", f"no column {missing[0]!r}")
        fields = {k: array(f"clips_{k}") for k in ARRAY_FIELDS}
        return cls(
            fingerprint=(directory / "meta.json").read_text(errors="replace"), clip_ids=column("clip_ids"), versions=array("versions"),
            eligible=eligible, elig_rows=array("elig_rows"),
            clips=ClipArrays.from_fields(fields, eligible, column("labels_names"), column("words_names")),
            videos=column("videos"), positions=array("positions"),
            edges=ScoredEdges(*(array(f"edges_{k}") for k in _EDGE_FIELDS)), pairs=table("pairs"),
            rejected=table("rejected"),
        )  # fmt: skip


def clip_versions(features: pa.Table, labels: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """(clip ids sorted, uint64 hash of each clip's mined feature columns and AudioSet labels): a clip
    whose hash changed was re-analysed (or relabelled) and is mined again."""
    cols = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS if c in features.column_names and c != "clip_id")
    con = duck_connect()
    try:
        con.register("f", features)
        con.register("l", labels.select(["clip_id", "instruments"]))
        t = con.sql(
            f"SELECT f.clip_id, hash({cols}, l.instruments) AS v FROM f LEFT JOIN l USING (clip_id) ORDER BY f.clip_id"
        ).to_arrow_table()
    finally:
        con.close()
    return t.column("clip_id").combine_chunks(), t.column("v").to_numpy()


def cache_of(
    fingerprint: str, ids: pa.Array, versions: np.ndarray, cand: pa.Table, clips: ClipArrays,
    positions: np.ndarray | None, scored: ScoredEdges | None, pairs: pa.Table, rejected: pa.Table,
) -> PairCache:  # fmt: skip
    if scored is None:  # fewer than two eligible clips
        e = np.empty(0, np.int64)
        scored = ScoredEdges(e, e, e.astype(np.int8), e.astype(np.float64), e.astype(np.float32), e.astype(bool))
    if positions is None:
        positions = np.empty((N_ORDERS, 0), np.int64)
    eligible = cand.select(list(CANDIDATE_COLUMNS))
    elig_ids = eligible.column("clip_id").combine_chunks()
    videos = pc.unique(ytids_of(elig_ids))  # first-seen order: ``clip_arrays``' codes
    return PairCache(
        fingerprint, ids, versions, eligible, index_in(elig_ids, ids), clips, videos, positions, scored, pairs,
        rejected,
    )  # fmt: skip


# PAIRS columns that hold one value per run: not cached, and added after the take that orders the rows
# (taking a 1M-row column of one 80-character string costs several times all other columns together)
_CONSTANT_PAIR_COLUMNS = ("miner_version", "created_at")


def varying(pairs: pa.Table) -> pa.Table:
    """``pairs`` without the one-value-per-run columns."""
    return pairs.drop([c for c in _CONSTANT_PAIR_COLUMNS if c in pairs.column_names])
