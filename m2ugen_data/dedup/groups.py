"""Near-duplicate groups across the warehouse: the same recording under several IDs is one group, and every
dataset keeps one member of it (the group's *canonical* clip).

A link between two clips is one of:

- ``exact``: the same audio bytes (``clips.sha256``);
- ``fingerprint``: the same recording by sound (``match.compare``: re-encoded, cut or shifted, re-levelled,
  slightly time-stretched, partly overlapping), found among the candidate pairs (``candidates``);
- ``remaster``: no landmark agreement strong enough, but the measured music is the same to a strict
  tolerance (``remaster.py``: tags, chroma, chords, tempo, key, meter).

Groups are the connected components of the links whose shared audio covers most of the shorter clip; a clip
that shares only part of itself (half of it is another recording) is attached to its strongest partner's group
and never joins two groups (``components``). The canonical member is the one with the most audio
(``fp_seconds`` to half a second), ties to the smallest clip id, so the choice is stable across runs and
machines. Every member of a group of two or more is a ``duplicates`` row (one batch per run, replaced); pools,
the disjointness check, the shard writer and pair mining read it (``m2ugen_data.clean.gate``).

Incremental like pair mining: ``cache/dedup`` keeps the previous run's clip versions, their candidate tokens
and every link found; a run searches only pairs with a new or re-analysed clip and re-derives the groups from
all links. With no token run over ``candidates.MAX_RUN`` clips (the cap applies to
the runs a search sees) it equals a full run (``--full``), which is tested.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from m2ugen_data.analysis import fingerprint as fp_mod
from m2ugen_data.checksums import damage, write_checksums
from m2ugen_data.dedup.candidates import candidate_pairs
from m2ugen_data.dedup.links import FULL_COVERAGE, MATCH_STRENGTH, Link, coverage
from m2ugen_data.dedup.match import DupRules, compare
from m2ugen_data.warehouse import Warehouse, utc_now

log = logging.getLogger(__name__)

BATCH_ID = "duplicates"
CACHE_VERSION = "3"


@dataclass
class DedupSummary:
    clips: int = 0  # clips in scope (features ok)
    fingerprinted: int = 0
    not_fingerprinted: Counter[str] = field(default_factory=Counter)  # fp_status -> clips (never "unique")
    new: int = 0  # clips searched this run (all of them on a full run)
    candidates: int = 0  # pairs checked this run
    links: Counter[str] = field(default_factory=Counter)  # match -> links (whole warehouse)
    groups: int = 0
    grouped: int = 0  # clips in groups
    dropped: int = 0  # non-canonical members: kept out of every dataset
    incremental: bool = False
    wall_s: float = 0.0
    rules_version: str = ""


@dataclass
class _Clip:
    ids: list[str]
    version: np.ndarray  # int64 per clip: the features row it was read from
    seconds: np.ndarray


def scope(wh: Warehouse) -> pa.Table:
    """Clips whose analysis is ok, with their fingerprint status, length, audio digest and a version."""
    con = wh.connect()
    have = {r[0] for r in con.sql("DESCRIBE features_latest").fetchall()}
    if "fp_status" not in have:  # a warehouse from before fingerprints: every clip is not fingerprinted yet
        return con.sql(
            "SELECT f.clip_id, NULL::VARCHAR AS fp_status, NULL::DOUBLE AS fp_seconds, c.sha256, "
            "hash(f.updated_at) AS version FROM features_latest f LEFT JOIN clips_latest c USING (clip_id) "
            "WHERE f.status = 'ok' ORDER BY f.clip_id"
        ).to_arrow_table()
    return con.sql(
        "SELECT f.clip_id, CASE WHEN f.fp_version = $v THEN f.fp_status END AS fp_status, f.fp_seconds, c.sha256, "
        "hash(f.updated_at, f.fp_version) AS version FROM features_latest f LEFT JOIN clips_latest c USING (clip_id) "
        "WHERE f.status = 'ok' ORDER BY f.clip_id",
        params={"v": fp_mod.VERSION},
    ).to_arrow_table()


def load_fingerprints(wh: Warehouse, clip_ids: Sequence[str]) -> dict[str, fp_mod.Fingerprint]:
    """The stored fingerprints (landmarks and sketch) of ``clip_ids``: what verification reads."""
    if not clip_ids:
        return {}
    con = wh.connect()
    con.register("wanted", pa.table({"clip_id": pa.array(list(clip_ids), pa.string())}))
    rows = con.sql(
        "SELECT clip_id, fp_landmarks, fp_sketch, fp_seconds FROM features_latest JOIN wanted USING (clip_id)"
    ).to_arrow_table().to_pylist()
    return {r["clip_id"]: fp_mod.from_columns(r["fp_landmarks"], r["fp_sketch"], r["fp_seconds"]) for r in rows}


def load_tokens(wh: Warehouse, clip_ids: Sequence[str], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, clip index) of ``clip_ids``' stored candidate tokens, one entry per token."""
    if not clip_ids:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    con = wh.connect()
    con.register("wanted", pa.table({"clip_id": pa.array(list(clip_ids), pa.string())}))
    toks, idx = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)]
    reader = con.sql("SELECT clip_id, fp_tokens FROM features_latest JOIN wanted USING (clip_id)").to_arrow_reader(4096)
    for batch in reader:
        for cid, blob in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            tok = fp_mod.unpack_tokens(blob)
            toks.append(tok)
            idx.append(np.full(tok.size, index[cid], np.int64))
    return np.concatenate(toks), np.concatenate(idx)


def verify_pairs(
    pairs: Sequence[tuple[str, str]], fingerprints: Callable[[Sequence[str]], dict[str, fp_mod.Fingerprint]],
    rules: DupRules, *, batch: int = 2048,
) -> list[Link]:
    """``match.compare`` over candidate pairs (fingerprints loaded a batch at a time); the links found."""
    links = []
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        fps = fingerprints(sorted({c for p in chunk for c in p}))
        for a, b in chunk:
            if a not in fps or b not in fps:
                continue
            v = compare(fps[a], fps[b], rules)
            if v.duplicate and v.alignment is not None:
                al = v.alignment
                links.append(Link(a, b, "fingerprint", round(al.frac, 4), round(v.corr, 4),
                                  round(al.offset / fp_mod.FRAMES_PER_S, 3), round(al.ratio, 4),
                                  coverage(al.overlap_s, fps[a].seconds, fps[b].seconds)))
    return links


def exact_links(table: pa.Table) -> list[Link]:
    """Clips with byte-identical audio (same sha256), each linked to the first of its digest."""
    first: dict[str, str] = {}
    links = []
    for cid, digest in zip(table.column("clip_id").to_pylist(), table.column("sha256").to_pylist()):
        if digest is None:
            continue
        if digest in first:
            links.append(Link(first[digest], cid, "exact", 1.0, 1.0, 0.0, 1.0))
        else:
            first[digest] = cid
    return links


def components(ids: Sequence[str], links: Sequence[Link]) -> list[tuple[list[str], list[str]]]:
    """Groups as (anchors, attached): anchors are connected by links whose shared audio covers most of the
    shorter clip (``FULL_COVERAGE``: copies, shifts, a clip inside a longer one); a clip linked only partly
    (half of it is another recording's) is attached to the group of its strongest such partner and never
    joins two groups. Connected components over partial links chained distinct recordings through clips
    holding a part of each (a mashup holds two songs; the songs are not one recording)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pos = {c: i for i, c in enumerate(ids)}
    full = [lk for lk in links if lk.a in pos and lk.b in pos and lk.coverage >= FULL_COVERAGE]
    a = np.array([pos[lk.a] for lk in full], np.int64)
    b = np.array([pos[lk.b] for lk in full], np.int64)
    _, label = connected_components(coo_matrix((np.ones(a.size), (a, b)), shape=(len(ids), len(ids))), directed=False)
    anchors: dict[int, list[str]] = {}
    for i in np.unique(np.concatenate([a, b])):
        anchors.setdefault(int(label[i]), []).append(ids[i])
    group_of = {c: g for g, members in anchors.items() for c in members}
    attached: dict[int, list[str]] = {}
    partial = sorted((lk for lk in links if lk.a in pos and lk.b in pos and lk.coverage < FULL_COVERAGE),
                     key=lambda lk: (-lk.coverage, -(lk.frac or 0.0), lk.a, lk.b))
    for lk in partial:
        for clip, partner in ((lk.a, lk.b), (lk.b, lk.a)):
            if clip in group_of or any(clip in v for v in attached.values()):
                continue
            if partner not in group_of:  # two clips with no group yet: the partner founds one
                if any(partner in v for v in attached.values()):
                    continue
                g = int(label[pos[partner]])
                anchors[g] = [partner]
                group_of[partner] = g
            attached.setdefault(group_of[partner], []).append(clip)
            break
    return [(anchors[g], attached.get(g, [])) for g in anchors]


def group_rows(ids: Sequence[str], seconds: dict[str, float], links: Sequence[Link], rules_version: str) -> list[dict]:
    """The ``duplicates`` rows: one per member of every group of two or more (``components``)."""
    best: dict[str, Link] = {}  # per clip, its strongest link (for the row's evidence)
    for lk in sorted(links, key=lambda x: (MATCH_STRENGTH[x.match], -x.coverage)):
        best.setdefault(lk.a, lk)
        best.setdefault(lk.b, lk)
    now = utc_now()
    rows = []
    for anchors, attached in components(ids, links):
        if len(anchors) + len(attached) < 2:
            continue
        # the most audio (to half a second: codec padding does not count), then the smallest clip id
        canonical = min(anchors, key=lambda c: (-round(2 * (seconds.get(c) or 0.0)), c))
        for cid in sorted(anchors + attached):
            lk = best[cid]
            other = lk.b if lk.a == cid else lk.a
            rows.append({
                "clip_id": cid, "group_id": canonical, "canonical": cid == canonical, "match": lk.match,
                "matched_with": other, "frac": lk.frac, "corr": lk.corr,
                "offset_s": lk.offset_s if lk.a == cid else (-lk.offset_s if lk.offset_s is not None else None),
                "stretch": lk.stretch, "rules_version": rules_version, "created_at": now,
            })
    return rows


# --------------------------------------------------------------------------- incremental cache


@dataclass
class _Cache:
    rules_version: str
    ids: list[str]  # clips searched, in the order ``clips`` refers to
    versions: list[int]  # the version of each (DuckDB hash, unsigned), when searched
    tokens: np.ndarray  # uint64
    clips: np.ndarray  # int64 position in ``ids`` per token
    links: list[Link]


def _cache_dir(wh: Warehouse) -> Path:
    return wh.root / "cache" / "dedup"


def _load_cache(wh: Warehouse, rules: DupRules) -> _Cache | None:
    """The previous run's search state, or None (a full search): none yet, other rules, or damaged (a file
    that fails its checksum or its shape: named in one warning line, and the full search rebuilds it)."""
    d = _cache_dir(wh)
    if not d.exists():
        return None
    try:
        found = damage(d)
        if found is not None:
            raise _Damaged(*found)
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("cache_version") != CACHE_VERSION or meta.get("rules_version") != rules.version or \
                meta.get("fp_version") != fp_mod.VERSION:
            return None
        clips = _table(d, "clips.arrow", pa.schema([("clip_id", pa.string()), ("version", pa.uint64())]))
        tok = _table(d, "tokens.arrow", pa.schema([("token", pa.uint64()), ("clip", pa.int64())]))
        links = _table(d, "links.arrow", _LINK_SCHEMA).to_pylist()
        index = tok.column("clip").to_numpy()
        if index.size and (index.min() < 0 or index.max() >= clips.num_rows):
            raise _Damaged("tokens.arrow", "clip positions outside the cached clips")
    except _Damaged as e:
        log.warning("dedup cache file %s: %s; searching every clip to rebuild the cache", d / e.args[0], e.args[1])
        return None
    except (OSError, ValueError, AttributeError):  # meta.json of another shape
        log.warning("dedup cache file %s: unreadable; searching every clip to rebuild the cache", d / "meta.json")
        return None
    return _Cache(
        rules.version, clips.column("clip_id").to_pylist(), clips.column("version").to_pylist(),
        tok.column("token").to_numpy(), index, [Link(**lk) for lk in links],
    )


class _Damaged(Exception):
    """(file name, what is wrong) of a cache file that cannot be used."""


def _table(d: Path, name: str, schema: pa.Schema) -> pa.Table:
    try:
        table = feather.read_table(d / name)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise _Damaged(name, f"unreadable ({str(e).splitlines()[0]})") from None
    if not table.schema.equals(schema):
        raise _Damaged(name, "not the columns a run writes")
    return table


def _save_cache(wh: Warehouse, cache: _Cache) -> None:
    """Written to a fresh directory and swapped in, so a killed run leaves the old cache or the new one."""
    d = _cache_dir(wh)
    tmp = d.with_name(f".{d.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    feather.write_feather(pa.table({"clip_id": pa.array(cache.ids, pa.string()),
                                    "version": pa.array(cache.versions, pa.uint64())}), tmp / "clips.arrow")
    feather.write_feather(pa.table({"token": pa.array(cache.tokens, pa.uint64()),
                                    "clip": pa.array(cache.clips, pa.int64())}), tmp / "tokens.arrow")
    feather.write_feather(pa.Table.from_pylist([lk.__dict__ for lk in cache.links],
                                               schema=_LINK_SCHEMA), tmp / "links.arrow")
    (tmp / "meta.json").write_text(json.dumps({"cache_version": CACHE_VERSION, "rules_version": cache.rules_version,
                                               "fp_version": fp_mod.VERSION}))
    write_checksums(tmp)
    old = d.with_name(f".{d.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if d.exists():
        d.rename(old)
    tmp.rename(d)
    shutil.rmtree(old, ignore_errors=True)


_LINK_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("match", pa.string()), ("frac", pa.float64()),
                          ("corr", pa.float64()), ("offset_s", pa.float64()), ("stretch", pa.float64()),
                          ("coverage", pa.float64())])


def find_duplicates(
    wh: Warehouse, rules: DupRules = DupRules(), *, full: bool = False, min_shared: int = 2,
    progress: Callable[[str, int, int], None] | None = None,
) -> DedupSummary:
    """Group the warehouse's analysed clips by sound and write the ``duplicates`` batch (module docstring).
    Clips without a current fingerprint are counted by status (``fingerprint_missing`` fills them first)."""
    from m2ugen_data.dedup import remaster

    t0 = time.perf_counter()
    summary = DedupSummary(rules_version=rules.version)
    table = scope(wh)
    summary.clips = table.num_rows
    status = table.column("fp_status").to_pylist()
    ok = np.array([s == "ok" for s in status], bool)
    summary.not_fingerprinted = Counter(s or "missing" for s in status if s != "ok")
    fp_table = table.filter(pa.array(ok))
    ids = fp_table.column("clip_id").to_pylist()
    versions = dict(zip(ids, fp_table.column("version").to_pylist()))
    seconds = dict(zip(ids, fp_table.column("fp_seconds").to_pylist()))
    summary.fingerprinted = len(ids)
    index = {c: i for i, c in enumerate(ids)}

    cache = None if full else _load_cache(wh, rules)
    summary.incremental = cache is not None
    if cache is None:
        cache = _Cache(rules.version, [], [], np.zeros(0, np.uint64), np.zeros(0, np.int64), [])
    # old position -> current index, or -1 for a clip gone or changed since it was searched
    moved = np.array([index[c] if versions.get(c) == v else -1 for c, v in zip(cache.ids, cache.versions)], np.int64)
    kept_old = {c for c, m in zip(cache.ids, moved.tolist()) if m >= 0}
    new = [c for c in ids if c not in kept_old]
    summary.new = len(new)
    now_idx = moved[cache.clips] if cache.clips.size else np.zeros(0, np.int64)
    keep_tok = now_idx >= 0
    old_tok, old_idx = cache.tokens[keep_tok], now_idx[keep_tok]
    links = [lk for lk in cache.links if lk.match == "fingerprint" and lk.a in kept_old and lk.b in kept_old]

    if progress:
        progress("tokens", 0, len(new))
    new_tok, new_idx = load_tokens(wh, new, index)
    all_tok = np.concatenate([old_tok, new_tok])
    all_idx = np.concatenate([old_idx, new_idx])
    is_new = np.zeros(len(ids), bool)
    is_new[[index[c] for c in new]] = True
    a, b = candidate_pairs(all_tok, all_idx, len(ids), min_shared=min_shared, new=is_new)
    pairs = [(ids[i], ids[j]) for i, j in zip(a.tolist(), b.tolist())]
    summary.candidates = len(pairs)
    if progress:
        progress("verify", 0, len(pairs))
    links += verify_pairs(pairs, lambda cs: load_fingerprints(wh, cs), rules)
    links += exact_links(fp_table) + remaster.remaster_links(wh, ids, links, rules)

    cache = _Cache(rules.version, ids, [versions[c] for c in ids], all_tok, all_idx,
                   [lk for lk in links if lk.match == "fingerprint"])
    rows = group_rows(ids, seconds, links, rules.version)
    wh.write_batch("duplicates", rows, BATCH_ID)
    _save_cache(wh, cache)  # after the batch: a run killed in between searches its new clips again
    summary.links = Counter(lk.match for lk in links)
    summary.groups = len({r["group_id"] for r in rows})
    summary.grouped = len(rows)
    summary.dropped = sum(not r["canonical"] for r in rows)
    summary.wall_s = time.perf_counter() - t0
    return summary


__all__ = ["DedupSummary", "components", "exact_links", "find_duplicates", "group_rows", "load_fingerprints",
           "verify_pairs"]
