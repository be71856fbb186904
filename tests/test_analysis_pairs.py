"""MUEdit pair mining on generated feature tables whose every measurement is known.

The miner (DuckDB band join + greedy degree cap) is checked against a brute-force reference that forms
every pair in plain Python, applies the rules as the issue states them, and runs the sequential greedy.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from m2ugen_data.analysis.pairs import PairRules, beat_phase, mine_pairs, mine_warehouse
from m2ugen_data.analysis.tonal import parse_key
from m2ugen_data.errors import M2UGenError
from m2ugen_data.schemas import FEATURES, PAIRS

KEYS = ["C major", "A minor", "G major", "E minor", "Eb major"]
INSTRUMENTS = ["/m/piano", "/m/guitar", "/m/drums", "/m/organ", "/m/flute", "/m/brass"]


def make_features(n: int, seed: int, *, videos: int | None = None) -> tuple[pa.Table, pa.Table, dict]:
    """Random clips with known tempo, meter, key, beat offset, loudness, labels and timbre."""
    rng = np.random.default_rng(seed)
    videos = videos or n
    vid = [f"v{int(v):010d}" for v in rng.integers(0, videos, n)]
    ids = [f"{vid[i]}_{i * 10000}" for i in range(n)]
    tempo = np.exp(rng.normal(math.log(110), 0.25, n))
    offset = rng.uniform(0, 1, n) * 60 / tempo
    truth = {
        "clip_id": ids,
        "tempo": tempo,
        "offset": offset,
        "meter": rng.choice([3, 4], n, p=[0.3, 0.7]),
        "key": [KEYS[i] for i in rng.integers(0, len(KEYS), n)],
        "conf": rng.uniform(0, 1, n),
        "loud": rng.normal(-16, 4, n),
        "timbre": rng.normal(0, 12, (n, 24)).astype(np.float32),
        "instruments": [sorted(rng.choice(INSTRUMENTS, rng.integers(1, 4), replace=False).tolist()) for _ in range(n)],
        "status": np.where(rng.uniform(size=n) < 0.05, "rejected", "ok"),
        "is_music": rng.uniform(size=n) > 0.05,
    }
    beats = [np.arange(offset[i], 10.0, 60 / tempo[i]).tolist() for i in range(n)]
    features = pa.table(
        {
            "clip_id": ids,
            "status": truth["status"],
            "tempo_bpm": tempo,
            "tempo_conf": truth["conf"],
            "beats": beats,
            "meter": truth["meter"].astype(np.int32),
            "key": truth["key"],
            "loudness_lufs": truth["loud"],
            "timbre": [row.tolist() for row in truth["timbre"]],
            "is_music": truth["is_music"],
        }
    )
    labels = pa.table({"clip_id": ids, "instruments": truth["instruments"]})
    return features, labels, truth


def _key_ok(a: str, b: str, rule: str) -> bool:
    (pa_, ma), (pb, mb) = parse_key(a), parse_key(b)
    if rule == "any" or (pa_, ma) == (pb, mb):
        return True
    if rule == "relative" and ma != mb:
        major, minor = (pa_, pb) if ma == "major" else (pb, pa_)
        return (minor + 3) % 12 == major
    return False


def brute_force(truth: dict, rules: PairRules) -> set[tuple[str, str]]:
    """Every pair, every rule, sequential greedy: the reference the miner must reproduce."""
    n = len(truth["clip_id"])
    ok = [
        truth["status"][i] == "ok" and truth["is_music"][i] and truth["conf"][i] >= rules.min_tempo_conf
        for i in range(n)
    ]
    tol = math.log1p(rules.tolerance)
    edges = []
    for i in range(n):
        for j in range(i + 1, n):
            if not (ok[i] and ok[j]) or truth["meter"][i] != truth["meter"][j]:
                continue
            if not _key_ok(truth["key"][i], truth["key"][j], rules.key_rule):
                continue
            d = math.log(truth["tempo"][i] / truth["tempo"][j])
            octaves = (-1, 0, 1) if rules.allow_double else (0,)
            matches = [o for o in octaves if abs(d - o * math.log(2)) <= tol]
            if not matches:
                continue
            o = matches[0]
            if abs(truth["loud"][i] - truth["loud"][j]) > rules.max_loudness_diff:
                continue
            if truth["clip_id"][i][:11] == truth["clip_id"][j][:11]:
                continue
            si, sj = set(truth["instruments"][i]), set(truth["instruments"][j])
            jac = len(si & sj) / len(si | sj)
            tdist = float(np.linalg.norm(truth["timbre"][i] - truth["timbre"][j]) / math.sqrt(24))
            if not (jac < rules.max_label_jaccard or tdist > rules.min_timbre_dist):
                continue
            # beat grids: the slower clip's grid is halved at double tempo; offsets compared modulo the
            # faster grid's period
            pi, pj = 60 / truth["tempo"][i], 60 / truth["tempo"][j]
            if o == 1:
                pj /= 2
            elif o == -1:
                pi /= 2
            grid = min(pi, pj)
            dph = abs(truth["offset"][i] % grid - truth["offset"][j] % grid)
            beat_sim = 1 - 2 * min(dph, grid - dph) / grid
            score = (
                rules.w_tempo * max(0.0, 1 - abs(d - o * math.log(2)) / tol)
                + rules.w_beat * beat_sim
                + rules.w_timbre * min(1.0, tdist / rules.timbre_scale)
            )
            a, b = sorted((truth["clip_id"][i], truth["clip_id"][j]))
            edges.append((-score, a, b))
    edges.sort()
    degree: dict[str, int] = {}
    chosen = set()
    for _, a, b in edges:
        if degree.get(a, 0) < rules.k and degree.get(b, 0) < rules.k:
            chosen.add((a, b))
            degree[a] = degree.get(a, 0) + 1
            degree[b] = degree.get(b, 0) + 1
    return chosen


def _pairs(result) -> set[tuple[str, str]]:
    return set(zip(result.pairs.column("src_id").to_pylist(), result.pairs.column("tgt_id").to_pylist()))


@pytest.mark.parametrize(
    "rules",
    [
        PairRules(window=400),
        PairRules(window=400, key_rule="relative", allow_double=True, k=1),
        PairRules(window=400, key_rule="any", tolerance=0.02, k=3, max_label_jaccard=0.34),
    ],
    ids=["same-key", "relative-double-k1", "any-key-k3"],
)
def test_miner_equals_brute_force_when_the_window_covers_every_block(rules: PairRules) -> None:
    features, labels, truth = make_features(260, seed=1, videos=200)
    result = mine_pairs(features, labels, rules)
    expected = brute_force(truth, rules)
    assert len(expected) > 20  # the case is not trivially empty
    assert _pairs(result) == expected


def test_every_pair_satisfies_every_rule_and_the_degree_cap_with_a_small_window() -> None:
    rules = PairRules(window=4, key_rule="any", allow_double=True)
    features, labels, truth = make_features(1500, seed=2, videos=1000)
    result = mine_pairs(features, labels, rules)
    assert result.pairs.num_rows > 100
    idx = {c: i for i, c in enumerate(truth["clip_id"])}
    degree: dict[str, int] = {}
    for row in result.pairs.to_pylist():
        i, j = idx[row["src_id"]], idx[row["tgt_id"]]
        ratio = truth["tempo"][j] / truth["tempo"][i]
        assert any(abs(ratio / m - 1) <= rules.tolerance + 1e-9 for m in (0.5, 1.0, 2.0))
        assert row["tempo_ratio"] == pytest.approx(ratio)
        assert truth["meter"][i] == truth["meter"][j] == row["meter"]
        assert abs(truth["loud"][i] - truth["loud"][j]) <= rules.max_loudness_diff
        assert row["src_id"][:11] != row["tgt_id"][:11]
        si, sj = set(truth["instruments"][i]), set(truth["instruments"][j])
        assert row["label_jaccard"] == pytest.approx(len(si & sj) / len(si | sj))
        assert row["label_jaccard"] < rules.max_label_jaccard or row["timbre_dist"] > rules.min_timbre_dist
        assert set(row["labels_added"]) == sj - si and set(row["labels_removed"]) == si - sj
        assert min(truth["conf"][i], truth["conf"][j]) >= rules.min_tempo_conf
        for c in (row["src_id"], row["tgt_id"]):
            degree[c] = degree.get(c, 0) + 1
    assert max(degree.values()) <= rules.k
    assert sum(result.degree_histogram.values()) == result.eligible
    assert result.pair_rejections["degree_cap"] == result.valid - result.pairs.num_rows


def test_mining_is_deterministic_and_independent_of_row_order() -> None:
    features, labels, _ = make_features(600, seed=3)
    a = mine_pairs(features, labels, PairRules(window=8, key_rule="any"))
    perm = np.random.default_rng(0).permutation(features.num_rows)
    b = mine_pairs(features.take(perm), labels.take(perm[::-1]), PairRules(window=8, key_rule="any"))
    cols = ["src_id", "tgt_id", "score"]
    assert a.pairs.select(cols).to_pylist() == b.pairs.select(cols).to_pylist()


def test_planted_pairs_are_found_among_dense_random_clips() -> None:
    """200 planted pairs (same tempo and beat phase to within measurement noise, far-apart timbres) hidden
    in 8,000 clips of one key and meter: the band join looks at only 2 x 8 neighbours per clip, yet the
    planted pairs, the best-scoring partners, are found."""
    n, planted = 8000, 200
    features, labels, _ = make_features(n, seed=4)
    rng = np.random.default_rng(5)
    f, lab = features.to_pydict(), labels.to_pydict()
    f.update(status=["ok"] * n, is_music=[True] * n, meter=[4] * n, key=["C major"] * n, tempo_conf=[0.9] * n)
    pairs = rng.permutation(n)[: 2 * planted].reshape(planted, 2)
    for a, b in pairs:
        f["tempo_bpm"][b] = f["tempo_bpm"][a] * (1 + rng.normal(0, 1e-4))
        period = 60 / f["tempo_bpm"][b]
        f["beats"][b] = np.arange(f["beats"][a][0] % period + abs(rng.normal(0, 5e-4)), 10, period).tolist()
        f["loudness_lufs"][b] = f["loudness_lufs"][a] + rng.normal(0, 1)
        f["timbre"][b] = (np.asarray(f["timbre"][a]) + 30.0).tolist()  # timbre distance 30 > scale 20
        lab["instruments"][a], lab["instruments"][b] = ["/m/piano"], ["/m/guitar"]
    result = mine_pairs(pa.table(f, schema=features.schema), pa.table(lab), PairRules(window=8))
    found = _pairs(result)
    ids = f["clip_id"]
    hits = sum((min(ids[a], ids[b]), max(ids[a], ids[b])) in found for a, b in pairs)
    assert hits >= 0.9 * planted


def test_clip_rejections_are_counted_by_rule() -> None:
    features, labels, truth = make_features(300, seed=6)
    result = mine_pairs(features, labels, PairRules(min_tempo_conf=0.5))
    rej = result.clip_rejections
    n_bad_status = int(np.sum(truth["status"] != "ok"))
    assert rej["not_ok"] == n_bad_status
    assert rej["not_music"] == int(np.sum((truth["status"] == "ok") & ~truth["is_music"]))
    expected_low = int(np.sum((truth["status"] == "ok") & truth["is_music"] & (truth["conf"] < 0.5)))
    assert rej["low_beat_conf"] == expected_low
    assert result.eligible == 300 - sum(rej.values())


def test_clips_without_tempo_are_never_paired_and_nothing_crashes_on_nulls() -> None:
    features, labels, _ = make_features(50, seed=7)
    f = features.to_pydict()
    f.update(status=["ok"] * 50, is_music=[True] * 50)
    for i in range(0, 50, 2):
        f["tempo_bpm"][i] = None
        f["beats"][i] = []
        f["timbre"][i] = None
    result = mine_pairs(pa.table(f, schema=features.schema), labels, PairRules(key_rule="any", min_tempo_conf=0))
    assert result.clip_rejections["no_tempo"] == 25
    paired = set(result.pairs.column("src_id").to_pylist()) | set(result.pairs.column("tgt_id").to_pylist())
    assert not paired & {f["clip_id"][i] for i in range(0, 50, 2)}


def test_beat_phase_recovers_the_grid_offset() -> None:
    tempo = np.array([120.0, 90.0, 150.0])
    offsets = np.array([0.1, 0.5, 0.39])
    beats = pa.array([np.arange(o, 10, 60 / t).tolist() for o, t in zip(offsets, tempo)])
    np.testing.assert_allclose(beat_phase(beats, tempo), offsets, atol=1e-9)


def test_unknown_key_rule_is_a_user_error() -> None:
    with pytest.raises(M2UGenError, match="key rule"):
        PairRules(key_rule="parallel")


def test_mine_warehouse_writes_one_replaceable_batch(warehouse) -> None:
    from m2ugen_data.warehouse import utc_now

    features, labels, truth = make_features(200, seed=8)
    rows = []
    for r in features.to_pylist():
        row = {name: None for name in FEATURES.schema.names}
        row.update(r, analyser_version="test", updated_at=utc_now(), music_reasons=[], downbeats=[])
        rows.append(row)
    warehouse.write_batch("features", rows, "f1")
    seg = [
        dict(clip_id=c, ytid=c[:11], start_s=0.0, end_s=10.0, labels=ins, instruments=ins, genres=[], moods=[])
        | dict(pool="muedit", source="test", updated_at=utc_now())
        for c, ins in zip(truth["clip_id"], truth["instruments"])
    ]
    warehouse.write_batch("segments", seg, "s1")
    result, batch = mine_warehouse(warehouse, PairRules(key_rule="any"), pool="muedit")
    assert result.pairs.num_rows > 0
    stored = warehouse.read("pairs")
    assert stored.num_rows == result.pairs.num_rows and stored.schema.names == PAIRS.schema.names
    mine_warehouse(warehouse, PairRules(key_rule="any", k=1), pool="muedit")
    assert len(warehouse.manifest_files("pairs")) == 1  # replaced, not appended
    assert warehouse.read("pairs").num_rows < stored.num_rows
