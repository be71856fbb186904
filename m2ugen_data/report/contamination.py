"""The card's contamination section: what was kept out of training so the evaluations stay clean.

Read from the warehouse like the rest of the card: the evaluation lists selection applied
(``contamination/lists.json``) and the segments each rejected (``segment_rejects``, ``eval:<list>``), the
clips matched to evaluation sets by ``decontaminate`` (``contamination``, by ID and by sound), the
near-duplicate groups (``duplicates``) and the clips not fingerprinted (never counted as unique), and the
held-out splits (``splits``) with the samples on each side (``shards``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from m2ugen_data.audioset.eval_exclusion import used_lists
from m2ugen_data.warehouse import Warehouse


@dataclass
class ContaminationStats:
    lists: list[dict[str, Any]] = field(default_factory=list)  # name, source, segments, videos, excluded
    benchmarks: list[dict[str, Any]] = field(default_factory=list)  # benchmark, by_id, by_sound
    dedup: dict[str, Any] = field(default_factory=dict)
    splits: list[dict[str, Any]] = field(default_factory=list)  # dataset, fraction, train, eval samples

    @property
    def any(self) -> bool:
        return bool(self.lists or self.benchmarks or self.dedup.get("groups") or self.splits)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def contamination_stats(wh: Warehouse, con: duckdb.DuckDBPyConnection) -> ContaminationStats:
    excluded = {r["reason"].removeprefix("eval:"): r["n"] for r in _rows(
        con, "SELECT reason, count(*) AS n FROM segment_rejects_latest WHERE reason LIKE 'eval:%' GROUP BY 1")}
    lists = [{"name": name, **info, "excluded": excluded.pop(name, 0)} for name, info in sorted(used_lists(wh).items())]
    lists += [{"name": name, "source": "", "segments": None, "videos": None, "span": None, "excluded": n}
              for name, n in sorted(excluded.items())]  # rejections from a list not recorded (older warehouses)
    benchmarks = _rows(con, """SELECT benchmark, count(DISTINCT clip_id) FILTER (WHERE matched_by = 'id') AS by_id,
        count(DISTINCT clip_id) FILTER (WHERE matched_by = 'sound') AS by_sound, any_value(source) AS source
        FROM contamination_latest GROUP BY 1 ORDER BY 1""")
    dedup = _rows(con, """SELECT count(DISTINCT group_id) AS groups, count(*) AS grouped,
        count(*) FILTER (WHERE NOT canonical) AS dropped FROM duplicates_latest""")[0]
    dedup["by_match"] = [(r["match"], r["n"]) for r in _rows(
        con, "SELECT match, count(*) AS n FROM duplicates_latest WHERE NOT canonical GROUP BY 1 ORDER BY 2 DESC, 1")]
    have = {r[0] for r in con.execute("DESCRIBE features_latest").fetchall()}
    if "fp_status" in have:
        dedup["fingerprints"] = [(r["s"], r["n"]) for r in _rows(
            con, "SELECT coalesce(fp_status, 'not computed yet') AS s, count(*) AS n FROM features_latest "
                 "WHERE status = 'ok' GROUP BY 1 ORDER BY 2 DESC, 1")]
    splits = _rows(con, """SELECT s.dataset, s.fraction,
        (SELECT coalesce(sum(samples), 0) FROM shards_latest WHERE dataset = s.dataset) AS train,
        (SELECT coalesce(sum(samples), 0) FROM shards_latest WHERE dataset = s.dataset || '_eval') AS eval
        FROM splits_latest s ORDER BY 1""")
    return ContaminationStats(lists, benchmarks, dedup, splits)


__all__ = ["ContaminationStats", "contamination_stats"]
