"""What a build produced, read back from the warehouse (not from task results), plus the run's own counts.

Reading the manifests' ``*_latest`` views makes the summary true for the warehouse as it now is, whichever
runs (interrupted, resumed, repeated) contributed to it; the per-run counts (work done vs skipped) come from
the tasks. The same function feeds the Prefect artifact and the demo's printout.
"""

from __future__ import annotations

from typing import Any

from m2ugen_data.warehouse import Warehouse

_COUNTS_SQL = """
WITH seg AS (SELECT clip_id FROM segments_latest WHERE pool = $pool),
     cl AS (SELECT c.* FROM clips_latest c JOIN seg USING (clip_id)),
     fe AS (SELECT f.* FROM features_latest f JOIN seg USING (clip_id))
SELECT
    (SELECT count(*) FROM seg) AS segments,
    (SELECT count(*) FROM cl WHERE status = 'ok') AS clips_ok,
    (SELECT count(*) FROM cl WHERE status <> 'ok') AS clips_failed,
    (SELECT count(*) FROM fe WHERE status = 'ok') AS analysed_ok,
    (SELECT count(*) FROM fe WHERE status = 'rejected') AS analysis_rejected,
    (SELECT count(*) FROM fe WHERE status = 'failed') AS analysis_failed,
    (SELECT count(*) FROM fe WHERE is_music) AS music,
    (SELECT count(*) FROM pairs_latest p JOIN seg ON seg.clip_id = p.src_id) AS pairs,
    (SELECT count(DISTINCT item_id) FROM captions_latest c JOIN seg ON seg.clip_id = c.item_id
        WHERE c.modality = 'audio' AND c.text IS NOT NULL) AS captioned,
    (SELECT count(*) FROM dialogues_latest WHERE dataset = $dataset AND status = 'ok') AS dialogues_accepted,
    (SELECT count(*) FROM dialogues_latest WHERE dataset = $dataset AND status = 'rejected') AS dialogues_rejected,
    (SELECT count(*) FROM shards_latest WHERE dataset = $dataset) AS shards,
    (SELECT coalesce(sum(samples), 0) FROM shards_latest WHERE dataset = $dataset) AS shard_samples,
    (SELECT coalesce(sum(bytes), 0) FROM shards_latest WHERE dataset = $dataset) AS shard_bytes,
    (SELECT count(*) FROM segment_rejects_latest WHERE reason LIKE 'eval:%' AND text LIKE '%(' || $pool || '):%')
        AS eval_excluded,
    (SELECT count(*) FROM duplicates_latest JOIN seg USING (clip_id) WHERE NOT canonical) AS duplicates_dropped,
    (SELECT count(DISTINCT clip_id) FROM contamination_latest JOIN seg USING (clip_id)) AS contaminated
"""

# Failures and rejections by class: the stage, then the status or error class, then the stable reason code.
_FAILURES_SQL = """
WITH seg AS (SELECT clip_id FROM segments_latest WHERE pool = $pool)
SELECT cls, count(*) AS n FROM (
    SELECT 'download:' || coalesce(error_class, 'unknown') AS cls
        FROM clips_latest JOIN seg USING (clip_id) WHERE status <> 'ok'
    UNION ALL
    SELECT 'analysis:' || status || ':' || split_part(coalesce(reason, ''), ':', 1)
        FROM features_latest JOIN seg USING (clip_id) WHERE status <> 'ok'
    UNION ALL
    SELECT 'music-filter:' || r FROM (
        SELECT unnest(music_reasons) AS r FROM features_latest JOIN seg USING (clip_id) WHERE status = 'ok' AND NOT is_music)
    UNION ALL
    SELECT 'dedup:duplicate_of_another_clip' FROM duplicates_latest JOIN seg USING (clip_id) WHERE NOT canonical
    UNION ALL
    SELECT 'contamination:' || benchmark FROM contamination_latest JOIN seg USING (clip_id)
    UNION ALL
    SELECT 'selection:' || reason FROM segment_rejects_latest
        WHERE reason LIKE 'eval:%' AND text LIKE '%(' || $pool || '):%'
    UNION ALL
    SELECT 'dialogue:' || split_part(r, ':', 1) || ':' || split_part(r, ':', 2) FROM (
        SELECT unnest(reasons) AS r FROM dialogues_latest WHERE dataset = $dataset AND status = 'rejected')
)
GROUP BY cls ORDER BY cls
"""

# MUImage/MUVideo only: the frames or clips of the pool and their captions.
VISUAL_KINDS = {"muimage": "image", "muvideo": "video"}
_VISUAL_COUNTS_SQL = """
WITH seg AS (SELECT clip_id FROM segments_latest WHERE pool = $pool),
     vm AS (SELECT v.* FROM visual_media_latest v JOIN seg USING (clip_id) WHERE v.kind = $kind)
SELECT
    (SELECT count(*) FROM vm WHERE status = 'ok') AS media_ok,
    (SELECT count(*) FROM vm WHERE status = 'rejected') AS media_rejected,
    (SELECT count(*) FROM vm WHERE status = 'failed') AS media_failed,
    (SELECT count(DISTINCT item_id) FROM captions_latest c JOIN seg ON seg.clip_id = c.item_id
        WHERE c.modality = $kind AND c.text IS NOT NULL) AS media_captioned
"""
_VISUAL_FAILURES_SQL = """
SELECT 'media:' || v.status || ':' || coalesce(v.reason, 'unknown') AS cls, count(*) AS n
FROM visual_media_latest v JOIN segments_latest s USING (clip_id)
WHERE s.pool = $pool AND v.kind = $kind AND v.status <> 'ok'
GROUP BY cls ORDER BY cls
"""


def warehouse_summary(wh: Warehouse, dataset: str, pool: str) -> dict[str, Any]:
    """Counts by stage and failures by class for one dataset and its pool, from the latest manifest rows."""
    con = wh.connect()
    try:
        params = {"pool": pool, "dataset": dataset}
        counts = _one_row(con.execute(_COUNTS_SQL, params))
        failures = {cls: int(n) for cls, n in con.execute(_FAILURES_SQL, params).fetchall()}
        kind = VISUAL_KINDS.get(dataset)
        if kind is not None:
            vparams = {"pool": pool, "kind": kind}
            counts.update(_one_row(con.execute(_VISUAL_COUNTS_SQL, vparams)))
            failures.update({cls: int(n) for cls, n in con.execute(_VISUAL_FAILURES_SQL, vparams).fetchall()})
    finally:
        con.close()
    return {"dataset": dataset, "pool": pool, "counts": counts, "failures": dict(sorted(failures.items()))}


def _one_row(cur: Any) -> dict[str, int]:
    names = [d[0] for d in cur.description]
    return dict(zip(names, (int(v) for v in cur.fetchone())))


def example_dialogue(wh: Warehouse, dataset: str) -> dict[str, Any] | None:
    """The first accepted dialogue of the dataset (by sample id), for a human to look at."""
    con = wh.connect()
    try:
        row = con.execute(
            "SELECT sample_id, human, gpt FROM dialogues_latest WHERE dataset = ? AND status = 'ok' ORDER BY sample_id LIMIT 1",
            [dataset],
        ).fetchone()
    finally:
        con.close()
    return dict(zip(("sample_id", "human", "gpt"), row)) if row else None


def summary_markdown(summary: dict[str, Any]) -> str:
    """The run summary as Markdown (the Prefect artifact's body)."""
    lines = [f"# {summary['flow']}: {summary['dataset']} (pool {summary['pool']})", "", f"Warehouse: `{summary['warehouse']}`", ""]
    lines += ["## Warehouse counts", "", "| stage | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in summary["counts"].items()]
    lines += ["", "## This run", "", "| step | counts |", "|---|---|"]
    lines += [f"| {k} | {_flat(v)} |" for k, v in summary["run"].items()]
    lines += ["", "## Failures and rejections by class", ""]
    if summary["failures"]:
        lines += ["| class | clips or samples |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in summary["failures"].items()]
    else:
        lines.append("none")
    if "music_check" in summary:
        lines += ["", *music_check_markdown(summary["music_check"])]
    lines += ["", "## Shards", "", "| path | samples | bytes | sha256 |", "|---|---:|---:|---|"]
    lines += [f"| {s['path']} | {s['samples']} | {s['bytes']} | `{s['sha256'][:16]}` |" for s in summary["shard_files"]]
    return "\n".join(lines) + "\n"


def music_check_markdown(check: dict[str, Any], limit: int = 50) -> list[str]:
    """The disjointness section: what was compared, and every overlap (up to ``limit``) with its level."""
    against = ", ".join(f"{k} ({v} clips)" for k, v in check["against"].items())
    lines = ["## Music disjointness", "", f"{check['checked']} {check['dataset']} music clips checked against {against}.", ""]
    if not check["overlaps"]:
        return [*lines, "No overlap."]
    verdict = "shards NOT written (overlap not allowed)" if check.get("blocked") else "shards written (overlap allowed)"
    lines += [f"**{len(check['overlaps'])} overlap(s)**: {verdict}.", ""]
    lines += ["| clip | other dataset | other clip | match |", "|---|---|---|---|"]
    lines += [f"| {o['clip_id']} | {o['other_dataset']} | {o['other_clip_id']} | {o['match']} |" for o in check["overlaps"][:limit]]
    if len(check["overlaps"]) > limit:
        lines.append(f"| ... {len(check['overlaps']) - limit} more | | | |")
    return lines


def _flat(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_flat(x)}" for k, x in v.items() if x not in ({}, None))
    return str(v)
