"""MUEdit pair mining: clips that share tempo, beat grid and (preferably) harmony while their measured
instrumentation differs, found with a DuckDB band join and scored by compiled kernels.

How it scales (never an all-pairs loop; bench/bench_pairs.py: 1M clips in 51 s and 4.1 GB on two cores
under load 5, where the schema-1 miner took 50 s and 5.3 GB on the same tables in the same run):

1. **Eligibility** (per clip, counted by rule): analysed ok, music, a tempo and a 3- or 4-beat meter,
   beat confidence above a threshold, a loudness, a key when the key rule needs one.
2. **Blocks**: clips are partitioned by meter and by key class (``tonal.key_class``: the key for ``same``,
   the relative-major tonic for ``relative``, one class for ``any``), so every clip pair inside a block
   satisfies the meter and key rules by construction.
3. **Sorted-neighbourhood band join**: inside a block the clips are sorted three times: by log-tempo, and
   by (fine log-tempo bucket, harmony class, beat phase) on two bucket grids offset by half a bucket.
   Each clip is joined with its next ``window`` clips in each order (an equi-join on (block, precomputed
   neighbour row number), so DuckDB hashes instead of joining whole blocks and filtering). Half/double
   tempo is a second copy of every clip at twice its tempo in the same sorts. The harmony class (the
   diatonic collection, i.e. key up to relative major/minor, that holds most of the clip's beat chords) is
   in the phase orders because among a million clips a tempo bucket holds thousands whose beat phase
   matches a clip's as closely as its re-orchestrated sibling's does: without it the band of ``window``
   neighbours is filled by those strangers and the sibling, the pair the score prefers, is never
   examined. A collection, not the commonest chord: a four-chord loop makes the commonest chord a near tie
   that recognition errors flip (siblings agree on it 67% of the time on the bench's corpus, on the
   collection 100%), and planted-sibling recall at 100k clips is 0.80 with it against 0.58. The plain
   tempo order still brings strangers of other harmony, so both kinds of MUEdit pair stay reachable. A
   block smaller than the window is searched exhaustively. Candidates per clip are bounded by
   ``3 x window`` whatever the density.
4. **Rules and score** on the candidate edges, compiled (numba) over dense per-clip arrays: tempo ratio
   within tolerance, loudness difference, never the same YouTube video, content differs, and (only when
   ``min_harmony_sim`` > 0) harmony shared. *Content differs* is measured: the cosine distance between
   the clips' instrument tag vectors (``content_vectors``: per instrument or voice word, the strongest of
   its MusiCNN MTT tags) is at least ``min_content_dist``; a clip analysed before tags existed (NULL
   ``tags_mtt``) falls back to the old rule, AudioSet label Jaccard below a bound or timbre (MFCC
   statistics) far apart. *Harmony* is ``harmony.chord_similarity_edges``: the fraction of beats with the
   same chord under the best beat offset. Score = tempo closeness + beat-grid alignment + harmony
   similarity + a content-difference bonus that saturates (weights in ``PairRules``): two clips of the same
   tempo and beat grid are told apart by their chords, so a re-orchestration of the same music outranks a
   stranger of the same tempo, while a stranger still pairs when nothing better is there (the MUEdit
   paper paired random same-tempo clips).
5. **Degree cap**: the valid edges, sorted by score (ties by clip ids), go through greedy b-matching
   (each clip in at most ``k`` pairs, both directions counted): a compiled linear pass over the sorted
   arrays, so the result is exactly the sequential greedy one and deterministic.

6. **Incremental re-mines** (``incremental.py``, what ``mine_warehouse`` does unless ``full``): the sort keys
   depend on each clip alone (computed in numpy by ``order_keys``, ties by clip id), so new clips insert
   into the cached orders without reordering old ones; only edges touching new or changed clips, or
   spanning removed ones, are searched and scored (on the cached per-clip kernel arrays plus the new
   clips'), cached valid edges still inside the band are kept with their scores, and step 5 is re-run over
   the merged best-first list: the same pairs as a full mine.

Rejections are counted per rule: at clip level for eligibility, and over the candidate edges examined
(not over all N^2 pairs, which are never formed) for the pair rules; harmony, the costliest measure, is
computed (and its rejections counted) only for edges that pass every other rule.
"""

from __future__ import annotations

import pyarrow as pa

from m2ugen_data.pairs.cache import PairCache
from m2ugen_data.pairs.incremental import mine_all, mine_changes, usable
from m2ugen_data.pairs.rules import FEATURE_COLUMNS, MiningResult, PairRules
from m2ugen_data.warehouse import Warehouse


def mine_warehouse(
    warehouse: Warehouse,
    rules: PairRules = PairRules(),
    pool: str | None = None,
    *,
    full: bool = False,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> tuple[MiningResult, str | None]:
    """Mine pairs over the analysed clips (of one pool) and write them as one ``pairs`` batch.

    The batch id names the pool only, so mining again (new rules, more clips) replaces the previous pairs
    of that pool instead of mixing two runs' pairs in the manifest. Columns a warehouse of old analyses
    lacks altogether are left out here and read as NULL by the  Mining is incremental
    (``incremental.py``: only edges of new or re-analysed clips are searched, same pairs as a full mine) when
    the previous run's cache under ``cache/pairs/`` fits the rules; ``full`` ignores it and mines all.
    """
    con = warehouse.connect()
    have = {row[0] for row in con.sql("DESCRIBE features_latest").fetchall()}
    cols = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS if c in have)
    params = [pool] if pool else None
    pool_join = "JOIN segments_latest s USING (clip_id) WHERE s.pool = ?" if pool else ""
    batch_id = f"pairs-{pool or 'all'}"
    cache_dir = warehouse.root / "cache" / "pairs" / batch_id
    cache = None if full else PairCache.load(cache_dir)
    # a clip changed when its features row (updated_at) or its AudioSet labels did
    # a dropped near-duplicate (its group's canonical clip stays) or a clip of an evaluation set is never
    # mined: so MUEdit never pairs two members of one group (clean.gate skips such pairs as well)
    kept = ("f.clip_id NOT IN (SELECT clip_id FROM duplicates_latest WHERE NOT canonical) "
            "AND f.clip_id NOT IN (SELECT clip_id FROM contamination_latest)")
    versions = con.sql(
        f"""SELECT f.clip_id, hash(f.updated_at, l.instruments) AS version FROM features_latest f
            LEFT JOIN segments_latest l USING (clip_id) WHERE {kept} {"AND l.pool = ?" if pool else ""}
            ORDER BY f.clip_id""",
        params=params,
    ).to_arrow_table()
    ids, version = versions.column("clip_id").combine_chunks(), versions.column("version").to_numpy()
    if usable(cache, rules):

        def fetch(wanted: pa.Array) -> tuple[pa.Table, pa.Table]:  # only the clips asked for
            con.register("wanted", pa.table({"clip_id": wanted}))
            rows = con.sql(f"SELECT {cols} FROM features_latest f JOIN wanted USING (clip_id)").to_arrow_table()
            lab = con.sql("SELECT clip_id, instruments FROM segments_latest JOIN wanted USING (clip_id)")
            return rows, lab.to_arrow_table()

        result, cache = mine_changes(ids, version, fetch, rules, cache)
    else:
        features = con.sql(f"SELECT {cols} FROM features_latest f {pool_join} {'AND' if pool else 'WHERE'} {kept}",
                           params=params).to_arrow_table()
        labels = con.sql("SELECT clip_id, instruments FROM segments_latest").to_arrow_table()
        result, cache = mine_all(
            features, labels, rules, ids, version, threads=threads, memory_limit=memory_limit
        )
    warehouse.write_batch("pairs", result.pairs, batch_id)
    cache.save(cache_dir)  # after the batch: a run killed in between re-mines against the older cache
    return result, batch_id
