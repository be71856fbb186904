"""MUEdit pair mining on generated feature tables whose every measurement is known.

The miner (DuckDB band join + compiled rules + greedy degree cap) is checked against a brute-force
reference that forms every pair in plain Python, applies the rules as ``PairRules`` documents them, and runs the
sequential greedy. Two measures are taken from their definitions rather than re-derived: which MTT tags
name each instrument word (``content_tag_index``) and the chord-sequence similarity
(``harmony.chord_sequence_similarity``); the reference computes everything else itself.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m2ugen_data.analysis.harmony import chord_ids, chord_sequence_similarity
from m2ugen_data.pairs.clips import (
    beat_phase,
    chord_sequences,
    content_tag_index,
    content_vectors,
    every_other_beat,
    harmony_class,
)
from m2ugen_data.pairs.full import mine_pairs
from m2ugen_data.pairs.mine import mine_warehouse
from m2ugen_data.pairs.rules import MINER_VERSION, PairRules
from m2ugen_data.analysis.taggers import MTT_TAGS
from m2ugen_data.analysis.tonal import parse_key
from m2ugen_data.errors import M2UGenError
from m2ugen_data.schemas import FEATURES, PAIRS

KEYS = ["C major", "A minor", "G major", "E minor", "Eb major"]
INSTRUMENTS = ["/m/piano", "/m/guitar", "/m/drums", "/m/organ", "/m/flute", "/m/brass"]  # AudioSet-like labels
WORDS = ["piano", "guitar", "drums", "flute", "strings", "voice"]  # measured instrument words used here
PROGRESSIONS = (
    ("C:maj", "G:maj", "A:min", "F:maj"),
    ("A:min", "F:maj", "C:maj", "G:maj"),
    ("D:min", "G:maj", "C:maj", "A:min"),
    ("E:min", "C:maj", "G:maj", "D:maj"),
    ("F:maj", "Bb:maj", "C:maj", "G:min"),
)
TAGS_TYPE = pa.list_(pa.float32())


def tag_vector(rng: np.random.Generator, words: list[str]) -> list[float]:
    """50 MTT probabilities: the words' tags clearly up (0.3-0.8, where MusiCNN puts an audible instrument),
    every other tag near zero. float32 values, so the reference sees exactly what the miner reads."""
    v = rng.uniform(0, 0.06, len(MTT_TAGS)).astype(np.float32)
    for w in words:
        for i in content_tag_index()[w]:
            v[i] = rng.uniform(0.3, 0.8)
    return [float(x) for x in v]


def chord_track(rng: np.random.Generator, beats: int) -> list[str]:
    """One chord per beat interval: a four-chord progression, each chord held 2 or 4 beats, random start."""
    prog = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    hold = int(rng.choice([2, 4]))
    start = int(rng.integers(0, len(prog) * hold))
    return [prog[((i + start) // hold) % len(prog)] for i in range(beats)]


def make_features(
    n: int, seed: int, *, videos: int | None = None, tagged: float = 0.85, chorded: float = 0.9
) -> tuple[pa.Table, pa.Table, dict]:
    """Random clips with known tempo, meter, key, beat offset, loudness, labels, timbre, instrument tags
    (NULL for a share of clips, as for analyses older than tags) and beat chords (NULL for a share)."""
    rng = np.random.default_rng(seed)
    videos = videos or n
    vid = [f"v{int(v):010d}" for v in rng.integers(0, videos, n)]
    ids = [f"{vid[i]}_{i * 10000}" for i in range(n)]
    tempo = np.exp(rng.normal(math.log(110), 0.25, n))
    offset = rng.uniform(0, 1, n) * 60 / tempo
    beats = [np.arange(offset[i], 10.0, 60 / tempo[i]).tolist() for i in range(n)]
    words = [sorted(rng.choice(WORDS[:4], rng.integers(1, 3), replace=False).tolist()) for _ in range(n)]
    has_tags, has_chords = rng.uniform(size=n) < tagged, rng.uniform(size=n) < chorded
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
        "tags": [tag_vector(rng, w) if t else None for w, t in zip(words, has_tags)],
        "words": [w if t else None for w, t in zip(words, has_tags)],
        "chords": [chord_track(rng, len(b) - 1) if c else None for b, c in zip(beats, has_chords)],
    }
    return table_of(truth, beats), pa.table({"clip_id": ids, "instruments": truth["instruments"]}), truth


def table_of(truth: dict, beats: list[list[float]]) -> pa.Table:
    return pa.table(
        {
            "clip_id": truth["clip_id"],
            "status": truth["status"],
            "tempo_bpm": truth["tempo"],
            "tempo_conf": truth["conf"],
            "beats": beats,
            "meter": np.asarray(truth["meter"]).astype(np.int32),
            "key": truth["key"],
            "loudness_lufs": truth["loud"],
            "timbre": [row.tolist() for row in truth["timbre"]],
            "is_music": truth["is_music"],
            "tags_mtt": pa.array(truth["tags"], TAGS_TYPE),
            "instruments": pa.array(truth["words"], pa.list_(pa.string())),
            "beat_chords": pa.array(truth["chords"], pa.list_(pa.string())),
        }
    )


def _key_ok(a: str, b: str, rule: str) -> bool:
    (pa_, ma), (pb, mb) = parse_key(a), parse_key(b)
    if rule == "any" or (pa_, ma) == (pb, mb):
        return True
    if rule == "relative" and ma != mb:
        major, minor = (pa_, pb) if ma == "major" else (pb, pa_)
        return (minor + 3) % 12 == major
    return False


def content_distance(a: list[float] | None, b: list[float] | None) -> float | None:
    """Cosine distance of the instrument-word vectors (each word: its strongest MTT tag); None when a clip
    has no tags."""
    if a is None or b is None:
        return None
    va = [max(np.float32(a[i]) for i in idx) for idx in content_tag_index().values()]
    vb = [max(np.float32(b[i]) for i in idx) for idx in content_tag_index().values()]
    dot = sum(float(x) * float(y) for x, y in zip(va, vb))
    na, nb = sum(float(x) ** 2 for x in va), sum(float(y) ** 2 for y in vb)
    return max(0.0, 1 - dot / math.sqrt(na * nb))


def harmony_similarity(a: list[str] | None, b: list[str] | None, octave: int) -> float | None:
    """Chord-sequence similarity; at half/double tempo the faster clip (a when octave is 1) on every other
    beat. None when a clip has no chords."""
    if a is None or b is None:
        return None
    ia, ib = chord_ids(a), chord_ids(b)
    ia, ib = (ia[::2] if octave == 1 else ia), (ib[::2] if octave == -1 else ib)
    return float(np.float32(chord_sequence_similarity(ia, ib)))


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
            tdist = float(np.linalg.norm(truth["timbre"][i] - truth["timbre"][j]) / math.sqrt(24))
            cdist = content_distance(truth["tags"][i], truth["tags"][j])
            if cdist is not None:  # measured instrumentation or sound must differ
                if cdist < rules.min_content_dist and not tdist > rules.min_sound_dist:
                    continue
                bonus = min(1.0, cdist / rules.content_scale)
            else:  # no tags: AudioSet labels or timbre
                si, sj = set(truth["instruments"][i]), set(truth["instruments"][j])
                if not (len(si & sj) / len(si | sj) < rules.max_label_jaccard or tdist > rules.min_timbre_dist):
                    continue
                bonus = min(1.0, tdist / rules.timbre_scale)
            hsim = harmony_similarity(truth["chords"][i], truth["chords"][j], o)
            if rules.min_harmony_sim > 0 and (hsim is None or hsim < np.float32(rules.min_harmony_sim)):
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
                + rules.w_harmony * (hsim or 0.0)
                + rules.w_content * bonus
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
        PairRules(window=400, min_harmony_sim=0.4, min_content_dist=0.4),
    ],
    ids=["any-key", "relative-double-k1", "any-key-k3", "harmony-rule"],
)
def test_miner_equals_brute_force_when_the_window_covers_every_block(rules: PairRules) -> None:
    features, labels, truth = make_features(260, seed=1, videos=200)
    result = mine_pairs(features, labels, rules)
    expected = brute_force(truth, rules)
    assert len(expected) > 20  # the case is not trivially empty
    assert _pairs(result) == expected


def test_every_pair_satisfies_every_rule_and_the_degree_cap_with_a_small_window() -> None:
    rules = PairRules(window=4, key_rule="any", allow_double=True, min_sound_dist=1e9)  # tags alone decide
    features, labels, truth = make_features(1500, seed=2, videos=1000)
    result = mine_pairs(features, labels, rules)
    assert result.pairs.num_rows > 100
    idx = {c: i for i, c in enumerate(truth["clip_id"])}
    degree: dict[str, int] = {}
    kinds = {"tags": 0, "fallback": 0}
    for row in result.pairs.to_pylist():
        i, j = idx[row["src_id"]], idx[row["tgt_id"]]
        ratio = truth["tempo"][j] / truth["tempo"][i]
        octave = [o for o, m in ((-1, 0.5), (0, 1.0), (1, 2.0)) if abs(ratio / m - 1) <= rules.tolerance + 1e-9]
        assert octave
        assert row["tempo_ratio"] == pytest.approx(ratio)
        assert truth["meter"][i] == truth["meter"][j] == row["meter"]
        assert abs(truth["loud"][i] - truth["loud"][j]) <= rules.max_loudness_diff
        assert row["src_id"][:11] != row["tgt_id"][:11]
        si, sj = set(truth["instruments"][i]), set(truth["instruments"][j])
        assert row["label_jaccard"] == pytest.approx(len(si & sj) / len(si | sj))
        assert set(row["labels_added"]) == sj - si and set(row["labels_removed"]) == si - sj
        cdist = content_distance(truth["tags"][i], truth["tags"][j])
        if cdist is None:
            kinds["fallback"] += 1
            assert row["content_dist"] is None and row["instruments_added"] is None
            assert row["label_jaccard"] < rules.max_label_jaccard or row["timbre_dist"] > rules.min_timbre_dist
        else:
            kinds["tags"] += 1
            assert row["content_dist"] == pytest.approx(cdist, abs=1e-9)
            assert row["content_dist"] >= rules.min_content_dist or row["timbre_dist"] > rules.min_sound_dist
            wi, wj = set(truth["words"][i]), set(truth["words"][j])
            assert set(row["instruments_added"]) == wj - wi and set(row["instruments_removed"]) == wi - wj
        # octave 1: tgt (j) at twice the src tempo, the faster clip, compared on every other beat
        hsim = harmony_similarity(truth["chords"][j], truth["chords"][i], octave[0])
        assert row["harmony_sim"] == (None if hsim is None else pytest.approx(hsim))
        assert min(truth["conf"][i], truth["conf"][j]) >= rules.min_tempo_conf
        assert row["miner_version"] == MINER_VERSION
        for c in (row["src_id"], row["tgt_id"]):
            degree[c] = degree.get(c, 0) + 1
    assert min(kinds.values()) > 0  # both content rules were exercised
    assert max(degree.values()) <= rules.k
    assert sum(result.degree_histogram.values()) == result.eligible
    assert result.pair_rejections["degree_cap"] == result.valid - result.pairs.num_rows
    assert result.pair_rejections["too_similar"] > 0 and result.pair_rejections["harmony"] == 0


def test_mining_is_deterministic_and_independent_of_row_order() -> None:
    features, labels, _ = make_features(600, seed=3)
    a = mine_pairs(features, labels, PairRules(window=8, key_rule="any"))
    perm = np.random.default_rng(0).permutation(features.num_rows)
    b = mine_pairs(features.take(perm), labels.take(perm[::-1]), PairRules(window=8, key_rule="any"))
    cols = ["src_id", "tgt_id", "score"]
    assert a.pairs.select(cols).to_pylist() == b.pairs.select(cols).to_pylist()


def _siblings_and_strangers(n: int, groups: int, seed: int) -> tuple[pa.Table, pa.Table, np.ndarray, np.ndarray]:
    """``n`` clips of one key and meter; ``groups`` triples (a, b, s): b is a re-orchestration of a (same
    chords, other instrument tags, tempo and beat phase equal to within measurement noise), s a stranger
    whose tempo and beat phase equal a's exactly (other chords, other instruments)."""
    features, labels, _ = make_features(n, seed=seed, tagged=1.0, chorded=1.0)
    rng = np.random.default_rng(seed + 1)
    f = features.to_pydict()
    f.update(status=["ok"] * n, is_music=[True] * n, meter=[4] * n, key=["C major"] * n, tempo_conf=[0.9] * n)
    triples = rng.permutation(n)[: 3 * groups].reshape(groups, 3)
    for a, b, s in triples:
        for c, noise in ((b, 1e-4), (s, 0.0)):
            f["tempo_bpm"][c] = f["tempo_bpm"][a] * (1 + rng.normal(0, noise))
            period = 60 / f["tempo_bpm"][c]
            shift = abs(rng.normal(0, 5e-4)) if noise else 0.0
            f["beats"][c] = np.arange(f["beats"][a][0] % period + shift, 10, period).tolist()
            f["loudness_lufs"][c] = f["loudness_lufs"][a] + rng.normal(0, 1)
        sib = f["beat_chords"][a][: len(f["beats"][b]) - 1]
        f["beat_chords"][b] = sib + [sib[-1]] * (len(f["beats"][b]) - 1 - len(sib))
        prog = [p for p in PROGRESSIONS if p[0] != f["beat_chords"][a][0]][0]
        f["beat_chords"][s] = [prog[(i // 4) % 4] for i in range(len(f["beats"][s]) - 1)]
        f["tags_mtt"][a] = tag_vector(rng, ["piano"])
        f["tags_mtt"][b] = tag_vector(rng, ["flute"])
        f["tags_mtt"][s] = tag_vector(rng, ["guitar", "drums"])
        f["instruments"][a], f["instruments"][b], f["instruments"][s] = ["piano"], ["flute"], ["drums", "guitar"]
    return pa.table(f, schema=features.schema), labels, triples, np.array(f["clip_id"])


def test_re_orchestrations_outrank_same_tempo_strangers() -> None:
    """Each stranger matches a's tempo and beat phase better than a's sibling does; only the shared chords
    speak for the sibling. With one pair per clip, a pairs with its sibling; without the harmony term (the
    v1 score) the stranger wins."""
    features, labels, triples, ids = _siblings_and_strangers(600, 60, seed=11)

    def partner_share(rules: PairRules, member: int) -> float:
        found = _pairs(mine_pairs(features, labels, rules))
        return np.mean([tuple(sorted((ids[t[0]], ids[t[member]]))) in found for t in triples])

    assert partner_share(PairRules(k=1), member=1) >= 0.95
    assert partner_share(PairRules(k=1, w_harmony=0.0), member=2) >= 0.8


def test_siblings_are_found_among_dense_random_clips() -> None:
    """60 sibling triples hidden in 8,000 clips of one key and meter, where a tempo bucket holds hundreds
    of strangers as well aligned as the sibling: the harmony-class sort orders still bring the sibling into
    the 2 x 8 neighbours a clip is compared with."""
    features, labels, triples, ids = _siblings_and_strangers(8000, 60, seed=4)
    found = _pairs(mine_pairs(features, labels, PairRules(window=8)))
    hits = sum(tuple(sorted((ids[a], ids[b]))) in found for a, b, _ in triples)
    assert hits >= 0.9 * len(triples)


def _two_clips(
    tags: tuple[list[float] | None, list[float] | None], labels: tuple[list[str], list[str]]
) -> tuple[pa.Table, pa.Table]:
    """Two clips that match in every way (tempo, beat grid, loudness, chords, timbre) but the given tags
    and AudioSet labels."""
    beats = np.arange(0.1, 10, 0.5).tolist()
    chords = [PROGRESSIONS[0][(i // 4) % 4] for i in range(len(beats) - 1)]
    ids = ["aaaaaaaaaaa_0", "bbbbbbbbbbb_0"]
    truth = {
        "clip_id": ids,
        "status": ["ok", "ok"],
        "tempo": [120.0, 120.0],
        "conf": [0.9, 0.9],
        "meter": [4, 4],
        "key": ["C major"] * 2,
        "loud": [-14.0, -14.0],
        "timbre": np.zeros((2, 24), np.float32),
        "is_music": [True, True],
        "tags": list(tags),
        "words": [None, None],
        "chords": [chords, chords],
    }
    return table_of(truth, [beats, beats]), pa.table({"clip_id": ids, "instruments": list(labels)})


def test_clips_with_the_same_measured_instruments_are_too_similar_whatever_their_labels() -> None:
    rng = np.random.default_rng(12)
    piano = tag_vector(rng, ["piano", "strings"])
    louder = [min(1.0, 1.3 * x) for x in piano]  # the same instruments, the tagger more confident
    features, labels = _two_clips((piano, louder), (["/m/piano"], ["/m/guitar"]))  # labels disagree
    result = mine_pairs(features, labels)
    assert result.pairs.num_rows == 0 and result.pair_rejections["too_similar"] == 1
    features, labels = _two_clips((piano, tag_vector(rng, ["flute"])), (["/m/piano"], ["/m/piano"]))
    pair = mine_pairs(features, labels).pairs.to_pylist()
    assert len(pair) == 1 and pair[0]["content_dist"] > 0.5 and pair[0]["label_jaccard"] == 1.0
    assert pair[0]["harmony_sim"] == 1.0


def test_clips_without_tags_fall_back_to_audioset_labels() -> None:
    features, labels = _two_clips((None, None), (["/m/piano"], ["/m/guitar"]))
    pair = mine_pairs(features, labels).pairs.to_pylist()
    assert len(pair) == 1 and pair[0]["content_dist"] is None and pair[0]["label_jaccard"] == 0.0
    assert pair[0]["instruments_added"] is None  # not measured, not "none"
    features, labels = _two_clips((None, tag_vector(np.random.default_rng(0), ["flute"])), (["/m/piano"], ["/m/piano"]))
    result = mine_pairs(features, labels)  # one clip untagged: labels (equal) and timbre (equal) decide
    assert result.pairs.num_rows == 0 and result.pair_rejections["too_similar"] == 1


def test_the_harmony_rule_keeps_only_pairs_that_share_chords() -> None:
    rules = PairRules(window=400, min_harmony_sim=0.5)
    features, labels, truth = make_features(400, seed=13)
    result = mine_pairs(features, labels, rules)
    assert result.pairs.num_rows > 0 and result.pair_rejections["harmony"] > 0
    assert min(result.pairs.column("harmony_sim").to_pylist()) >= 0.5
    unchorded = {c for c, ch in zip(truth["clip_id"], truth["chords"]) if ch is None}
    assert not unchorded & {c for pair in _pairs(result) for c in pair}


def test_chord_sequences_keep_unanalysed_apart_from_silent_and_halve_for_double_tempo() -> None:
    values, offsets, measured = chord_sequences(pa.array([["C:maj", "N", "A:min"], None, [], ["G:maj"] * 5]))
    assert measured.tolist() == [True, False, True, True]
    assert offsets.tolist() == [0, 3, 3, 3, 8] and values.tolist() == [1, 0, 22, 8, 8, 8, 8, 8]
    # C and Am: the C-major collection; none; none; G alone: the lowest collection holding it, C major
    assert harmony_class(values, offsets).tolist() == [0, -1, -1, 0]
    ids, bounds, _ = chord_sequences(pa.array([["E:min", "A:maj", "D:maj", "B:min"], ["G:min", "F:maj", "Bb:maj"]]))
    assert harmony_class(ids, bounds).tolist() == [2, 5]  # D major; F major (= D minor)
    half, half_offsets = every_other_beat(values, offsets)
    assert half_offsets.tolist() == [0, 2, 2, 2, 5] and half.tolist() == [1, 22, 8, 8, 8]


def test_content_words_cover_the_instrument_and_voice_tags() -> None:
    index = content_tag_index()
    named = {MTT_TAGS[i] for idx in index.values() for i in idx}
    assert {"piano", "flute", "harpsichord", "sitar", "cello", "drums", "synth"} <= set(index)
    assert {"vocal", "female", "male voice", "choir"} <= set(MTT_TAGS[i] for i in index["voice"])
    assert not named & {"classical", "rock", "fast", "no vocals", "techno"}  # genre, tempo, negations


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


def test_bad_rules_are_user_errors() -> None:
    with pytest.raises(M2UGenError, match="key rule"):
        PairRules(key_rule="parallel")
    with pytest.raises(M2UGenError, match="fractions"):
        PairRules(min_harmony_sim=1.5)


def _features_rows(features: pa.Table) -> list[dict]:
    from m2ugen_data.warehouse import utc_now

    rows = []
    for r in features.to_pylist():
        row = {name: None for name in FEATURES.schema.names}
        row.update(r, analyser_version="test", updated_at=utc_now(), music_reasons=[], downbeats=[])
        rows.append(row)
    return rows


def _segments(truth: dict) -> list[dict]:
    from m2ugen_data.warehouse import utc_now

    return [
        dict(clip_id=c, ytid=c[:11], start_s=0.0, end_s=10.0, labels=ins, instruments=ins, genres=[], moods=[])
        | dict(pool="muedit", source="test", updated_at=utc_now())
        for c, ins in zip(truth["clip_id"], truth["instruments"])
    ]


@pytest.mark.slow
def test_mine_warehouse_writes_one_replaceable_batch(warehouse) -> None:
    features, labels, truth = make_features(200, seed=8)
    warehouse.write_batch("features", _features_rows(features), "f1")
    warehouse.write_batch("segments", _segments(truth), "s1")
    result, batch = mine_warehouse(warehouse, PairRules(key_rule="any"), pool="muedit")
    assert result.pairs.num_rows > 0
    stored = warehouse.read("pairs")
    assert stored.num_rows == result.pairs.num_rows and stored.schema.names == PAIRS.schema.names
    assert stored.column("content_dist").null_count < stored.num_rows
    assert stored.column("harmony_sim").null_count < stored.num_rows
    mine_warehouse(warehouse, PairRules(key_rule="any", k=1), pool="muedit")
    assert len(warehouse.manifest_files("pairs")) == 1  # replaced, not appended
    assert warehouse.read("pairs").num_rows < stored.num_rows


def test_mine_warehouse_reads_a_warehouse_analysed_before_tags_and_chords(warehouse) -> None:
    features, labels, truth = make_features(200, seed=9)
    schema2 = ["tags_mtt", "instruments", "beat_chords"]
    old = pa.Table.from_pylist(_features_rows(features.drop_columns(schema2))).drop_columns(schema2)
    warehouse.manifest_dir("features").mkdir(parents=True)
    pq.write_table(old, warehouse.manifest_dir("features") / "old.parquet")  # a batch from before schema 2
    warehouse.write_batch("segments", _segments(truth), "s1")
    result, _ = mine_warehouse(warehouse, PairRules(key_rule="any"), pool="muedit")
    assert result.pairs.num_rows > 0
    assert result.pairs.column("content_dist").null_count == result.pairs.num_rows
    assert result.pairs.column("harmony_sim").null_count == result.pairs.num_rows


# --------------------------------------------------------------------------- evaluation against sibling truth


def make_devset(groups: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """A General-MIDI-like dev set in miniature: sibling groups of 2-3 clips play one chord track on one
    beat grid (each with its own chord-recognition errors) in different instrumentations; every other group
    has a twin group (same tempo and beat grid, other chords), the hard negatives; groups alternate between
    the dev and test splits."""
    rng = np.random.default_rng(seed)
    kits = [["piano"], ["flute"], ["guitar", "drums"], ["strings"], ["synth", "voice"]]
    rows, truth = [], []
    for g in range(groups):
        tempo = float(np.exp(rng.normal(math.log(110), 0.2)))
        offset = float(rng.uniform(0, 60 / tempo))
        beats = np.arange(offset, 10, 60 / tempo).tolist()
        for kind, song in (("group", g), ("twin", g)) if g % 2 == 0 else (("group", g),):
            track = chord_track(rng, len(beats) - 1)
            size = int(rng.integers(2, 4)) if kind == "group" else 1
            for j, kit in enumerate(rng.permutation(len(kits))[:size]):
                cid = f"{kind[0]}{song:04d}{j}xxxxx_0"
                noisy = [c if rng.uniform() > 0.1 else "N" for c in track]
                rows.append(
                    dict(clip_id=cid, status="ok", tempo_bpm=tempo * (1 + rng.normal(0, 1e-4)), tempo_conf=0.9)
                    | dict(beats=beats, meter=4, key="C major", loudness_lufs=-14 + rng.normal(0, 1))
                    | dict(timbre=rng.normal(0, 12, 24).tolist(), is_music=True, tags_mtt=tag_vector(rng, kits[kit]))
                    | dict(instruments=kits[kit], beat_chords=noisy)
                )
                truth.append(
                    dict(clip_id=cid, group_id=f"{kind}{song}", split="dev" if g % 4 < 2 else "test")
                    | dict(twin_id=f"t{song:04d}0xxxxx_0" if kind == "group" and g % 2 == 0 else None)
                )
    features = pa.Table.from_pylist(rows).cast(
        pa.schema([FEATURES.schema.field(c) for c in rows[0]])
    )  # fmt: skip
    return features, pa.Table.from_pylist(truth)


def test_evaluation_pairs_siblings_before_twins_and_checks_every_rule() -> None:
    from m2ugen_data.pairs.evaluation import evaluate

    features, truth = make_devset(40, seed=21)
    default = evaluate(features, truth, split="dev")
    assert default.true_pairs > 20 and default.clips < features.num_rows  # the split was applied
    assert default.violations == []
    assert default.recall_at_k >= 0.9 and default.misses.get("too_similar", 0) == 0
    # only siblings share chords: one pair per clip, or the harmony rule, leaves (almost) only siblings
    strict = evaluate(features, truth, PairRules(k=1, min_harmony_sim=0.5), split="dev")
    assert strict.violations == [] and strict.precision >= 0.9 and strict.twin_pairs == 0
    assert strict.pair_rejections["harmony"] > 0
    assert default.precision < strict.precision  # the default also pairs strangers (MUEdit's other kind)


def test_pair_reason_names_the_first_broken_rule() -> None:
    from m2ugen_data.pairs.evaluation import content_distance, pair_reason

    features, _ = make_devset(2, seed=23)
    a, b = features.slice(0, 2).to_pylist()  # two siblings
    for row in (a, b):
        row.update(labels=[], content=content_vectors(pa.array([row["tags_mtt"]], TAGS_TYPE))[0])
    rules = PairRules()
    assert pair_reason(a, b, rules) is None
    assert pair_reason(a, b | {"meter": 3}, rules) == "meter"
    assert pair_reason(a, b | {"tempo_bpm": a["tempo_bpm"] * 1.1}, rules) == "tempo"
    assert pair_reason(a, b | {"clip_id": a["clip_id"][:11] + "_5000"}, rules) == "same_video"
    assert pair_reason(a, b | {"content": a["content"], "timbre": a["timbre"]}, rules) == "too_similar"
    assert pair_reason(a, b | {"tempo_conf": 0.05}, rules) == "clip:low_beat_conf"
    assert pair_reason(a, b | {"beat_chords": None}, PairRules(min_harmony_sim=0.5)) == "harmony"
    assert content_distance(a["content"], None) is None and content_distance(a["content"], a["content"]) < 1e-6


def test_evaluation_cli_prints_one_report_per_rule_set(tmp_path, capsys) -> None:
    import json

    from m2ugen_data.pairs.evaluation import main

    features, truth = make_devset(8, seed=24)
    pq.write_table(features, tmp_path / "features.parquet")
    pq.write_table(truth, tmp_path / "truth.parquet")
    main([str(tmp_path / "features.parquet"), str(tmp_path / "truth.parquet"), "--split", "all", "--k", "1"])
    (report,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert report["split"] is None and report["rules"]["k"] == 1 and report["violations"] == []
    assert report["sibling_pairs"] > 0


def test_mining_never_pairs_two_members_of_a_duplicate_group(warehouse) -> None:
    """Before: pools and pairs were disjoint by ID only, so one recording under two IDs could be paired with
    itself. A dropped group member (and a clip of an evaluation set) is not mined at all."""
    from rows import with_nulls

    from m2ugen_data.warehouse import utc_now

    features, _, truth = make_features(200, seed=8)
    warehouse.write_batch("features", _features_rows(features), "f1")
    warehouse.write_batch("segments", _segments(truth), "s1")
    first, _ = mine_warehouse(warehouse, PairRules(key_rule="any"), pool="muedit", full=True)
    src, tgt = first.pairs.column("src_id")[0].as_py(), first.pairs.column("tgt_id")[0].as_py()
    now = utc_now()
    dup = {"match": "fingerprint", "rules_version": "test", "created_at": now}
    warehouse.write_batch("duplicates", [
        with_nulls("duplicates", {"clip_id": src, "group_id": src, "canonical": True, **dup}),
        with_nulls("duplicates", {"clip_id": tgt, "group_id": src, "canonical": False, **dup}),
    ], "duplicates")
    again, _ = mine_warehouse(warehouse, PairRules(key_rule="any"), pool="muedit")  # incremental
    pairs = set(zip(again.pairs.column("src_id").to_pylist(), again.pairs.column("tgt_id").to_pylist()))
    assert tgt not in {c for p in pairs for c in p} and src in {c for p in pair_set(first) for c in p}
    full, _ = mine_warehouse(warehouse, PairRules(key_rule="any"), pool="muedit", full=True)
    assert pair_set(full) == pairs  # the incremental re-mine equals a full one


def pair_set(result) -> set[tuple[str, str]]:
    return set(zip(result.pairs.column("src_id").to_pylist(), result.pairs.column("tgt_id").to_pylist()))
