"""Incremental pair mining (``pair_cache``): after clips are added, re-analysed or dropped, the pairs equal a
full re-mine of the new set, while only the candidate edges the change touches are searched."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from test_analysis_pairs import _features_rows, _segments, make_features

from m2ugen_data.pairs.cache import PairCache
from m2ugen_data.pairs.full import mine_pairs
from m2ugen_data.pairs.incremental import mine_incremental
from m2ugen_data.pairs.mine import mine_warehouse
from m2ugen_data.pairs.rules import PairRules
from m2ugen_data.warehouse import utc_now


def _rows(table: pa.Table) -> pa.Table:
    return table.drop(["created_at"])  # the one column a re-mine changes by design


def _replace(table: pa.Table, name: str, values) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


@pytest.mark.parametrize("seed", [3, 4])
def test_adding_clips_gives_the_pairs_of_a_full_re_mine(seed: int) -> None:
    features, labels, _ = make_features(700, seed=seed)
    rules = PairRules(key_rule="any", window=4)
    _, cache = mine_incremental(features.slice(0, 600), labels, rules)
    result, _ = mine_incremental(features, labels, rules, cache)
    full = mine_pairs(features, labels, rules)
    assert full.pairs.num_rows > 100
    assert _rows(result.pairs).equals(_rows(full.pairs))
    assert result.valid == full.valid and result.degree_histogram == full.degree_histogram
    assert result.clip_rejections == full.clip_rejections and sum(full.clip_rejections.values()) > 0
    assert result.candidates < full.candidates / 2  # searched around the new clips only


def test_re_analysed_and_dropped_clips_and_another_cap_give_the_pairs_of_a_full_re_mine() -> None:
    features, labels, _ = make_features(600, seed=5)
    rules = PairRules(key_rule="any", window=4)
    _, cache = mine_incremental(features, labels, rules)
    rng = np.random.default_rng(0)
    changed = rng.choice(600, 30, replace=False)
    tempo = features.column("tempo_bpm").to_numpy().copy()
    tempo[changed[:15]] *= rng.uniform(0.97, 1.03, 15)  # moves the clip in every sort order
    tags = features.column("tags_mtt").to_pylist()
    for i in changed[15:]:
        tags[i] = None if tags[i] is None else list(reversed(tags[i]))  # changes its content distances only
    edited = _replace(_replace(features, "tempo_bpm", tempo), "tags_mtt", tags)
    dropped = np.ones(600, bool)
    dropped[rng.choice(600, 20, replace=False)] = False
    edited = edited.filter(pa.array(dropped))
    result, cache2 = mine_incremental(edited, labels, rules, cache)
    full = mine_pairs(edited, labels, rules)
    assert _rows(result.pairs).equals(_rows(full.pairs)) and result.clip_rejections == full.clip_rejections
    # a second step from the incremental run's own cache, with another degree cap (edges are reused)
    more, more_labels, _ = make_features(80, seed=6)
    fresh_ids = [f"w{i:010d}_0" for i in range(80)]  # other videos than the first set's
    grown = pa.concat_tables([edited, _replace(more, "clip_id", fresh_ids)])
    more_labels = pa.concat_tables([labels, _replace(more_labels, "clip_id", fresh_ids)])
    rules1 = PairRules(key_rule="any", window=4, k=1)
    result, _ = mine_incremental(grown, more_labels, rules1, cache2)
    assert _rows(result.pairs).equals(_rows(mine_pairs(grown, more_labels, rules1).pairs))


def test_changed_rules_or_an_unreadable_cache_mean_a_full_mine(tmp_path) -> None:
    features, labels, _ = make_features(300, seed=7)
    rules = PairRules(key_rule="any")
    _, cache = mine_incremental(features, labels, rules)
    cache.save(tmp_path / "c")
    loaded = PairCache.load(tmp_path / "c")
    assert loaded is not None and np.array_equal(loaded.positions, cache.positions)
    other = PairRules(key_rule="any", tolerance=0.06)
    result, _ = mine_incremental(features, labels, other, loaded)
    full = mine_pairs(features, labels, other)
    assert _rows(result.pairs).equals(_rows(full.pairs)) and result.candidates == full.candidates
    for name in ("edges_score.npy", "pairs.arrow"):  # each kind of file, unreadable
        cache.save(tmp_path / name)
        (tmp_path / name / name).write_bytes(b"not an array")
        assert PairCache.load(tmp_path / name) is None
    (tmp_path / "c" / "clips_timbre.npy").unlink()
    assert PairCache.load(tmp_path / "c") is None
    assert PairCache.load(tmp_path / "missing") is None


def test_mine_warehouse_is_incremental_and_equals_a_full_rebuild(warehouse) -> None:
    features, labels, truth = make_features(260, seed=9)
    rows, segments = _features_rows(features), _segments(truth)
    warehouse.write_batch("features", rows[:200], "f1")
    warehouse.write_batch("segments", segments, "s1")
    rules = PairRules(key_rule="any")
    mine_warehouse(warehouse, rules, pool="muedit")
    warehouse.write_batch("features", rows[200:], "f2")
    incremental, batch = mine_warehouse(warehouse, rules, pool="muedit")
    assert (warehouse.root / "cache" / "pairs" / batch / "edges_score.npy").is_file()
    stored = _rows(warehouse.read("pairs").sort_by([("score", "descending"), ("src_id", "ascending")]))
    full, _ = mine_warehouse(warehouse, rules, pool="muedit", full=True)
    assert incremental.candidates < full.candidates
    assert _rows(incremental.pairs).equals(_rows(full.pairs))
    again = _rows(warehouse.read("pairs").sort_by([("score", "descending"), ("src_id", "ascending")]))
    assert stored.equals(again)
    # re-analysed clips: a newer features row (another tempo) replaces the old one in features_latest
    redone = [dict(r, tempo_bpm=r["tempo_bpm"] * 1.02, updated_at=utc_now()) for r in rows[:40:4]]
    warehouse.write_batch("features", redone, "f3")
    incremental, _ = mine_warehouse(warehouse, rules, pool="muedit")
    full, _ = mine_warehouse(warehouse, rules, pool="muedit", full=True)
    assert _rows(incremental.pairs).equals(_rows(full.pairs)) and incremental.candidates < full.candidates


def _pair_set(pairs: pa.Table) -> set[tuple[str, str]]:
    return set(zip(pairs.column("src_id").to_pylist(), pairs.column("tgt_id").to_pylist(), strict=True))


def _edge_set(cache: PairCache) -> set[tuple[str, str, int]]:
    ids = cache.eligible.column("clip_id").to_pylist()
    e = cache.edges
    return {(ids[a], ids[b], int(r)) for a, b, r in zip(e.lo, e.hi, e.rel, strict=True)}


def test_new_clips_displace_cached_pairs_and_push_cached_edges_out_of_the_band() -> None:
    """What a top-up changes among old clips, as a full re-mine does: a new edge takes a cached pair's slot
    under the cap (k=1), cached edges between unchanged clips leave the band when new clips are inserted
    between their ends (the rest are kept without a position check when an end has no change nearby), and
    new clips of an old clip's video are not paired with it (video codes shared across runs)."""
    features, labels, _ = make_features(900, seed=11, videos=400)
    rules = PairRules(key_rule="any", window=2, k=1)
    base, cache = mine_incremental(features.slice(0, 500), labels, rules)
    result, after = mine_incremental(features, labels, rules, cache)
    full = mine_pairs(features, labels, rules)
    assert _rows(result.pairs).equals(_rows(full.pairs))
    assert result.valid == full.valid and result.degree_histogram == full.degree_histogram
    assert _pair_set(base.pairs) - _pair_set(result.pairs)  # old pairs (both clips unchanged) displaced
    assert _edge_set(cache) - _edge_set(after)  # cached edges that left the band
    assert result.pair_rejections["same_video"] > 0  # new edges to old clips of the same video


def test_a_top_up_that_changes_the_compared_timbre_length_mines_in_full() -> None:
    """Timbre distances compare the commonest timbre length of the set; when new clips change it, every
    cached distance is stale, so the run is a full mine."""
    features, labels, _ = make_features(700, seed=12)
    short = [None if t is None else t[:20] for t in features.column("timbre").to_pylist()]
    short[:300] = features.column("timbre").to_pylist()[:300]  # 300 old clips of length 24, 400 new of 20
    features = _replace(features, "timbre", short)
    rules = PairRules(key_rule="any", window=4)
    _, cache = mine_incremental(features.slice(0, 300), labels, rules)
    result, _ = mine_incremental(features, labels, rules, cache)
    full = mine_pairs(features, labels, rules)
    assert _rows(result.pairs).equals(_rows(full.pairs)) and result.candidates == full.candidates
