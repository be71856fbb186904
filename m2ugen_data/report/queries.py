"""What a dataset card shows, read from the warehouse's ``*_latest`` DuckDB views.

Everything is read back from the manifests (not from a run's results), so the card is true for the
warehouse as it is now, whichever runs built it. Each dataset is its segments pool; a pool with no rows is
an absent dataset and yields empty stats (the page says so) rather than an error.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import duckdb

from m2ugen_data.report.datasets import DatasetSpec

# The clips of the dataset's pool, their download rows, their analysis rows, and the music among them.
_SCOPE = """
WITH seg AS (SELECT clip_id, ytid, source FROM segments_latest WHERE pool = $pool),
     cl AS (SELECT c.* FROM clips_latest c JOIN seg USING (clip_id)),
     fe AS (SELECT f.* FROM features_latest f JOIN seg USING (clip_id)),
     mu AS (SELECT * FROM fe WHERE status = 'ok' AND is_music),
     pr AS (SELECT p.* FROM pairs_latest p JOIN seg ON seg.clip_id = p.src_id),
     vm AS (SELECT v.* FROM visual_media_latest v JOIN seg USING (clip_id) WHERE v.kind = $kind),
     dl AS (SELECT * FROM dialogues_latest WHERE dataset = $dataset)
"""


@dataclass(frozen=True)
class Stage:
    """One step of the funnel: how many items it saw, how many it kept, and why it dropped the others.

    ``reasons`` counts rejection reasons; a clip may carry several (the music filter), so they can sum to
    more than ``entered - kept``.
    """

    name: str
    unit: str
    entered: int
    kept: int
    reasons: list[tuple[str, int]] = field(default_factory=list)
    hours: float | None = None
    note: str = ""


@dataclass(frozen=True)
class ClaimStats:
    """Claims checked against the measurements (``factcheck``) in the dataset's text: MUCaps' captions, the
    other datasets' dialogues. Records written before claims were checked are not counted."""

    texts: str  # "captions" | "dialogues"
    checked: int = 0
    rejected: int = 0  # rejected for a claim (contradicted or too many unverifiable), or unreadable text
    consistency: list[float] = field(default_factory=list)  # per record with something checkable
    contradicted: list[tuple[str, int]] = field(default_factory=list)  # most frequent contradicted claims


@dataclass
class DatasetStats:
    spec: DatasetSpec
    counts: dict[str, int]
    hours: dict[str, float]
    funnel: list[Stage]
    features: dict[str, list[Any]]  # tempo_bpm, meter, key, loudness_lufs of the music clips
    words: dict[str, list[tuple[str, int]]]  # measured instruments/genres/moods, most frequent first
    pairs: dict[str, list[float]]  # tempo_ratio, harmony_sim
    caption_words: dict[str, list[int]]  # modality -> words per caption
    dialogue_words: dict[str, list[int]]  # human | gpt -> words per turn
    claims: ClaimStats
    samples: list[dict[str, Any]]
    provenance: dict[str, Any]

    @property
    def present(self) -> bool:
        return self.counts.get("segments", 0) > 0


def _run(con: duckdb.DuckDBPyConnection, sql: str, spec: DatasetSpec) -> duckdb.DuckDBPyConnection:
    """Execute ``_SCOPE + sql`` with only the named parameters the text uses (DuckDB rejects extra ones)."""
    text = _SCOPE + sql
    values = {"pool": spec.pool, "dataset": spec.name, "kind": spec.visual_kind or ""}
    used = set(re.findall(r"\$(\w+)", text))
    return con.execute(text, {k: v for k, v in values.items() if k in used})


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, spec: DatasetSpec) -> Any:
    return _run(con, f"SELECT ({sql})", spec).fetchone()[0]


def _pairs_of(con: duckdb.DuckDBPyConnection, sql: str, spec: DatasetSpec) -> list[tuple[str, int]]:
    return [(str(k), int(n)) for k, n in _run(con, sql, spec).fetchall() if n]


def _counts(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> dict[str, int]:
    sql = """SELECT
        (SELECT count(*) FROM seg) AS segments,
        (SELECT count(DISTINCT ytid) FROM seg) AS videos,
        (SELECT count(*) FROM cl WHERE status = 'ok') AS downloaded,
        (SELECT count(*) FROM fe WHERE status = 'ok') AS analysed,
        (SELECT count(*) FROM mu) AS music,
        (SELECT count(*) FROM pr) AS pairs,
        (SELECT count(*) FROM vm WHERE status = 'ok') AS visual_ok,
        (SELECT count(DISTINCT item_id) FROM captions_latest c JOIN seg ON seg.clip_id = c.item_id
            WHERE c.text IS NOT NULL) AS captioned,
        (SELECT count(*) FROM dl WHERE status = 'ok') AS dialogues,
        (SELECT count(*) FROM shards_latest WHERE dataset = $dataset) AS shards,
        (SELECT coalesce(sum(samples), 0) FROM shards_latest WHERE dataset = $dataset) AS samples,
        (SELECT coalesce(sum(bytes), 0) FROM shards_latest WHERE dataset = $dataset) AS shard_bytes,
        (SELECT count(*) FROM mu JOIN duplicates_latest d USING (clip_id) WHERE NOT d.canonical) AS duplicates,
        (SELECT count(DISTINCT clip_id) FROM mu JOIN contamination_latest USING (clip_id)) AS contaminated
    """
    cur = _run(con, sql, spec)
    names = [d[0] for d in cur.description]
    return dict(zip(names, (int(v) for v in cur.fetchone())))


def _hours(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> dict[str, float]:
    sql = """SELECT
        (SELECT coalesce(sum(duration_s), 0) FROM cl WHERE status = 'ok') / 3600 AS downloaded,
        (SELECT coalesce(sum(duration_s), 0) FROM fe WHERE status = 'ok') / 3600 AS analysed,
        (SELECT coalesce(sum(duration_s), 0) FROM mu) / 3600 AS music
    """
    cur = _run(con, sql, spec)
    return dict(zip([d[0] for d in cur.description], (float(v) for v in cur.fetchone())))


def _funnel(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, counts: dict[str, int], hours: dict[str, float]) -> list[Stage]:
    """Selection -> download -> analysis -> music filter -> (media) -> captions/pairs -> dialogues -> shards."""
    stages = [Stage("selected segments", "clips", counts["segments"], counts["segments"], note="AudioSet segments (or synthetic clips) in the pool")]
    stages.append(Stage(
        "download", "clips", counts["segments"], counts["downloaded"], hours=hours["downloaded"],
        reasons=_pairs_of(con, """
            SELECT 'failed: ' || coalesce(error_class, 'unknown'), count(*) FROM cl WHERE status <> 'ok' GROUP BY 1
            UNION ALL SELECT 'not downloaded yet', count(*) FROM seg ANTI JOIN cl USING (clip_id)
            ORDER BY 2 DESC, 1""", spec),
    ))
    stages.append(Stage(
        "analysis", "clips", counts["downloaded"], counts["analysed"], hours=hours["analysed"],
        reasons=_pairs_of(con, """
            SELECT status || ': ' || split_part(coalesce(reason, 'unknown'), ':', 1), count(*) FROM fe
                WHERE status <> 'ok' GROUP BY 1
            UNION ALL SELECT 'not analysed yet', count(*) FROM cl ANTI JOIN fe USING (clip_id) WHERE cl.status = 'ok'
            ORDER BY 2 DESC, 1""", spec),
    ))
    stages.append(Stage(
        "music filter", "clips", counts["analysed"], counts["music"], hours=hours["music"],
        reasons=_pairs_of(con, """
            SELECT r, count(*) FROM (SELECT unnest(music_reasons) AS r FROM fe WHERE status = 'ok' AND NOT is_music)
                GROUP BY 1
            UNION ALL SELECT 'not scored', count(*) FROM fe WHERE status = 'ok' AND is_music IS NULL
            ORDER BY 2 DESC, 1""", spec),
        note="measured music score, speech, loudness; a clip may fail several rules",
    ))
    if spec.visual_kind:
        stages.append(Stage(
            f"{spec.visual_kind} extraction", "clips", counts["downloaded"], counts["visual_ok"],
            reasons=_pairs_of(con, """
                SELECT status || ': ' || coalesce(reason, 'unknown'), count(*) FROM vm WHERE status <> 'ok' GROUP BY 1
                UNION ALL SELECT 'not extracted yet', count(*) FROM cl ANTI JOIN vm USING (clip_id) WHERE cl.status = 'ok'
                ORDER BY 2 DESC, 1""", spec),
        ))
    clean = counts["music"] - counts["duplicates"] - counts["contaminated"]
    stages.append(Stage(
        "clean evaluation", "clips", counts["music"], clean,
        reasons=[(r, n) for r, n in (("near-duplicate of a kept clip (by sound)", counts["duplicates"]),
                                     ("found in an evaluation set", counts["contaminated"])) if n],
        note="evaluation lists already rejected at selection (see the index); one member kept per duplicate group",
    ))
    if spec.name == "mucaps":
        captioned = int(_scalar(con, """SELECT count(*) FROM mu WHERE clip_id IN (
            SELECT item_id FROM captions_latest WHERE modality = 'audio' AND text IS NOT NULL)""", spec))
        stages.append(Stage(
            "captions", "clips", counts["music"], captioned,
            reasons=[("no caption yet", counts["music"] - captioned)] if counts["music"] > captioned else [],
        ))
    if spec.name == "muedit":
        paired = int(_scalar(con, "SELECT count(*) FROM mu WHERE clip_id IN (SELECT src_id FROM pr UNION SELECT tgt_id FROM pr)", spec))
        stages.append(Stage(
            "pair mining", "clips", counts["music"], paired,
            reasons=[("no partner within the pair rules", counts["music"] - paired)] if counts["music"] > paired else [],
            note=f"{counts['pairs']} pairs",
        ))
    if spec.name != "mucaps":
        entered = int(_scalar(con, "SELECT count(*) FROM dl", spec))
        stages.append(Stage(
            "dialogues", "samples", entered, counts["dialogues"],
            reasons=_pairs_of(con, """
                SELECT rtrim(split_part(r, ':', 1) || ':' || split_part(r, ':', 2), ':'), count(*) FROM (
                    SELECT unnest(reasons) AS r FROM dl WHERE status = 'rejected') GROUP BY 1 ORDER BY 2 DESC, 1""", spec),
        ))
    before = stages[-1].kept
    stages.append(Stage(
        "shards", "samples", before, counts["samples"],
        note=f"{counts['shards']} shard(s), {counts['shard_bytes'] / 2**20:.1f} MiB",
    ))
    return stages


def _features(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> dict[str, list[Any]]:
    rows = _run(con, "SELECT tempo_bpm, meter, key, loudness_lufs FROM mu ORDER BY clip_id", spec).fetchall()
    names = ("tempo_bpm", "meter", "key", "loudness_lufs")
    return {n: [r[i] for r in rows if r[i] is not None and r[i] == r[i]] for i, n in enumerate(names)}


def _words(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> dict[str, list[tuple[str, int]]]:
    out = {}
    for col in ("instruments", "genres", "moods"):
        out[col] = _pairs_of(con, f"SELECT w, count(*) FROM (SELECT unnest({col}) AS w FROM mu) GROUP BY 1 ORDER BY 2 DESC, 1", spec)
    return out


def _pair_stats(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> dict[str, list[float]]:
    rows = _run(con, "SELECT tempo_ratio, harmony_sim FROM pr", spec).fetchall()
    return {n: [float(r[i]) for r in rows if r[i] is not None and r[i] == r[i]] for i, n in enumerate(("tempo_ratio", "harmony_sim"))}


def _text_lengths(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    captions: dict[str, list[int]] = {}
    rows = _run(con, """SELECT c.modality, c.text FROM captions_latest c JOIN seg ON seg.clip_id = c.item_id
        WHERE c.text IS NOT NULL ORDER BY 1, c.item_id, c.backend""", spec).fetchall()
    for modality, text in rows:
        captions.setdefault(modality, []).append(len(text.split()))
    turns = _run(con, "SELECT human, gpt FROM dl WHERE status = 'ok' ORDER BY sample_id", spec).fetchall()
    dialogues = {"human": [len((h or "").split()) for h, _ in turns], "gpt": [len((g or "").split()) for _, g in turns]}
    return captions, dialogues


# One caption per clip and modality for the sample table: the newest of its backends.
_CAPTION = """(SELECT text FROM captions_latest c WHERE c.item_id = {id} AND c.modality = '{modality}' AND c.text IS NOT NULL
    ORDER BY c.created_at DESC, c.backend LIMIT 1)"""


def _samples(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, n: int) -> list[dict[str, Any]]:
    """A few samples as a reader would meet them (first by id, so reruns show the same ones)."""
    if spec.name == "mucaps":
        sql = f"""SELECT mu.clip_id, cl.audio_path, mu.tempo_bpm, mu.meter, mu.key, mu.instruments,
                {_CAPTION.format(id='mu.clip_id', modality='audio')} AS caption
            FROM mu JOIN cl USING (clip_id)
            WHERE caption IS NOT NULL ORDER BY mu.clip_id LIMIT {int(n)}"""
    elif spec.name == "muedit":
        sql = f"""SELECT dl.sample_id, a.audio_path AS src_audio, b.audio_path AS tgt_audio, pr.tempo_ratio,
                pr.harmony_sim, pr.instruments_added, pr.instruments_removed, dl.human, dl.gpt
            FROM dl JOIN pr ON pr.src_id = dl.input_id AND pr.tgt_id = dl.output_id
            LEFT JOIN clips_latest a ON a.clip_id = dl.input_id LEFT JOIN clips_latest b ON b.clip_id = dl.output_id
            WHERE dl.status = 'ok' ORDER BY dl.sample_id LIMIT {int(n)}"""
    else:
        sql = f"""SELECT dl.sample_id, dl.input_id AS clip_id, cl.audio_path, vm.status AS media_status,
                {_CAPTION.format(id='dl.input_id', modality=spec.visual_kind)} AS visual_caption,
                {_CAPTION.format(id='dl.output_id', modality='audio')} AS music_caption, dl.human, dl.gpt
            FROM dl LEFT JOIN cl ON cl.clip_id = dl.input_id LEFT JOIN vm ON vm.clip_id = dl.input_id
            WHERE dl.status = 'ok' ORDER BY dl.sample_id LIMIT {int(n)}"""
    cur = _run(con, sql, spec)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _provenance(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> dict[str, Any]:
    """The versions, rules and sources recorded next to the rows: what a reader needs to rebuild the set."""
    models: dict[str, Counter] = {}
    for versions, n in _run(con, "SELECT model_versions, count(*) FROM fe WHERE model_versions IS NOT NULL GROUP BY 1", spec).fetchall():
        try:
            parsed = json.loads(versions)
        except ValueError:
            parsed = {"unparsed": versions}
        for analyser, version in parsed.items():
            models.setdefault(analyser, Counter())[str(version)] += int(n)
    clip_columns = {d[0] for d in con.execute("SELECT * FROM clips_latest LIMIT 0").description}
    spans = "coalesce(span, 'segment')" if "span" in clip_columns else "'segment'"  # batches before the column: segments
    return {
        "sources": _pairs_of(con, "SELECT source, count(*) FROM seg GROUP BY 1 ORDER BY 2 DESC, 1", spec),
        "audio_spans": _pairs_of(con, f"SELECT {spans}, count(*) FROM cl WHERE status = 'ok' GROUP BY 1 ORDER BY 2 DESC, 1", spec),
        "analyser_versions": _pairs_of(con, "SELECT analyser_version, count(*) FROM fe GROUP BY 1 ORDER BY 2 DESC, 1", spec),
        "model_versions": {k: sorted(v.items()) for k, v in sorted(models.items())},
        "tag_thresholds": _pairs_of(con, "SELECT tag_thresholds, count(*) FROM fe WHERE tag_thresholds IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1", spec),
        "miner_versions": _pairs_of(con, "SELECT miner_version, count(*) FROM pr GROUP BY 1 ORDER BY 2 DESC, 1", spec),
        "caption_backends": _pairs_of(con, """SELECT c.modality || ': ' || c.backend || coalesce(' (' || c.model || ')', ''),
            count(*) FROM captions_latest c JOIN seg ON seg.clip_id = c.item_id GROUP BY 1 ORDER BY 2 DESC, 1""", spec),
        "dialogue_backends": _pairs_of(con, """SELECT backend || coalesce(' (' || model || ')', ''), count(*) FROM dl
            GROUP BY 1 ORDER BY 2 DESC, 1""", spec),
        "extractor_versions": _pairs_of(con, "SELECT extractor_version, count(*) FROM vm GROUP BY 1 ORDER BY 2 DESC, 1", spec),
        "shards": [dict(zip(("path", "samples", "bytes", "sha256"), r)) for r in _run(
            con, "SELECT path, samples, bytes, sha256 FROM shards_latest WHERE dataset = $dataset ORDER BY path", spec).fetchall()],
    }


TOP_CONTRADICTED = 10


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    return {d[0] for d in con.execute(f"SELECT * FROM {view} LIMIT 0").description}


def _claim_stats(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> ClaimStats:
    """Consistency scores and the most frequent contradicted claims (a dialogue's are named per turn)."""
    if spec.name == "mucaps":
        texts, view = "captions", "captions_latest"
        rows = """(SELECT c.* FROM captions_latest c JOIN seg ON seg.clip_id = c.item_id
                   WHERE c.modality = 'audio' AND c.factcheck IS NOT NULL)"""
        claim = "regexp_extract(r, '^contradicted:(.*)$', 1)"
    else:
        texts, view, rows = "dialogues", "dialogues_latest", "(SELECT * FROM dl WHERE factcheck IS NOT NULL)"
        claim = "regexp_extract(r, '^[a-z]+:contradicted:(.*)$', 1) || ' (' || split_part(r, ':', 1) || ')'"
    if "factcheck" not in _columns(con, view):  # a warehouse written before claims were checked
        return ClaimStats(texts)
    checked, rejected = _run(con, f"SELECT count(*), count(*) FILTER (status = 'rejected') FROM {rows}", spec).fetchone()
    scores = [float(r[0]) for r in _run(con, f"SELECT consistency FROM {rows} WHERE consistency IS NOT NULL", spec).fetchall()]
    top = _pairs_of(con, f"""SELECT {claim} AS claim, count(*) FROM (SELECT unnest(reasons) AS r FROM {rows})
        WHERE r LIKE '%contradicted:%' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_CONTRADICTED}""", spec)
    return ClaimStats(texts, int(checked), int(rejected), scores, top)


def dataset_stats(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, *, samples: int = 4) -> DatasetStats:
    """Everything one dataset page shows, from a connection made by ``Warehouse.connect()``."""
    counts = _counts(con, spec)
    hours = _hours(con, spec)
    captions, dialogues = _text_lengths(con, spec)
    return DatasetStats(
        spec=spec, counts=counts, hours=hours, funnel=_funnel(con, spec, counts, hours),
        features=_features(con, spec), words=_words(con, spec), pairs=_pair_stats(con, spec),
        caption_words=captions, dialogue_words=dialogues, claims=_claim_stats(con, spec),
        samples=_samples(con, spec, samples),
        provenance=_provenance(con, spec),
    )
