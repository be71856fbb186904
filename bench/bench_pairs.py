"""MUEdit pair mining at scale: ours (sorted-neighbourhood band join + compiled rules + greedy degree cap)
against a baseline that examines every pair of neighbouring 4% tempo bins per meter under the same rules,
score and degree cap, and against the miner as it was at a git revision (``--against-rev``, before/after).

Feature tables of 10k, 100k and 1M clips are generated with realistic distributions: log-normal tempo
around 115 BPM, 85% 4/4, popular-music key frequencies, beats on a grid from a random offset; MusiCNN-like
MTT tag vectors (instrument and voice words present with pop-music frequencies, their tags at 0.3-0.6 as
MusiCNN rates an audible instrument, every other tag near zero) and the measured instrument words derived
from them; one chord per beat (~2 beats/s x 10 s) from a common four-chord progression in the clip's key,
held 2 or 4 beats, with 12% of beats mis-recognised and 3% N; Zipf AudioSet labels and timbre vectors
clustered by the leading label. n/100 planted sibling pairs: b re-orchestrates a (same tempo, meter, key,
beat phase and chords to within measurement noise, its own chord-recognition errors, other instruments).
Planted recall says how many siblings the miner pairs among a million strangers, some of which match a
clip's tempo and beat phase better than its sibling does. Each (method, size) runs in its own subprocess,
so peak memory is that run's ``ru_maxrss``; a run is killed at the timeout, and the baseline refuses
(saying how many pairs it would examine) when its candidates would not fit in memory.

    .venv/bin/python bench/bench_pairs.py [--sizes 10000 100000 1000000] [--timeout 300] [--threads 2]
        [--methods ours baseline] [--against-rev HEAD]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from at_revision import tree_at

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAJOR = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
MINOR = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "Bb", "B"]
# Popular-music key frequencies (major keys on guitar/piano-friendly tonics are commonest).
MAJOR_W = np.array([10, 3, 9, 4, 6, 5, 3, 10, 3, 8, 4, 3], dtype=float)
MINOR_W = np.array([3, 3, 3, 1, 6, 3, 3, 3, 2, 7, 2, 4], dtype=float)
# Share of pop clips in which each instrument or voice word is heard (the words of pairs.content_tag_index).
WORD_FREQ = {
    **{"drums": 0.5, "guitar": 0.35, "piano": 0.25, "synth": 0.2, "strings": 0.12, "violin": 0.04},
    **{"cello": 0.02, "flute": 0.03, "harp": 0.02, "harpsichord": 0.01, "sitar": 0.01, "voice": 0.45},
}
# Four-chord progressions as (semitones above the tonic, minor triad) per chord.
PROGRESSIONS = {
    "major": (
        ((0, 0), (7, 0), (9, 1), (5, 0)),  # I V vi IV
        ((0, 0), (5, 0), (7, 0), (0, 0)),  # I IV V I
        ((0, 0), (9, 1), (5, 0), (7, 0)),  # I vi IV V
        ((9, 1), (5, 0), (0, 0), (7, 0)),  # vi IV I V
        ((2, 1), (7, 0), (0, 0), (0, 0)),  # ii V I I
    ),
    "minor": (
        ((0, 1), (8, 0), (3, 0), (10, 0)),  # i VI III VII
        ((0, 1), (5, 1), (7, 1), (0, 1)),  # i iv v i
        ((0, 1), (10, 0), (8, 0), (10, 0)),  # i VII VI VII
        ((0, 1), (5, 1), (10, 0), (3, 0)),  # i iv VII III
    ),
}
PROGRESSION_TABLE = np.array(PROGRESSIONS["major"] + PROGRESSIONS["minor"])  # (9, 4, 2); minor ones from 5
# The key's diatonic triads, (semitones, minor), for major and minor keys: what a recogniser confuses.
DIATONIC = np.array(
    [((0, 0), (2, 1), (4, 1), (5, 0), (7, 0), (9, 1)), ((0, 1), (3, 0), (5, 1), (7, 1), (8, 0), (10, 0))]
)
CHORD_LABELS = ["N"] + [f"{r}:maj" for r in MAJOR] + [f"{r}:min" for r in MAJOR]  # index = harmony chord id
BASELINE_MAX_EDGES = 60_000_000  # more candidate pairs than this would not fit the bench's memory


def _chord_id(tonic: np.ndarray, semis: np.ndarray, minor: np.ndarray) -> np.ndarray:
    return (1 + (tonic + semis) % 12 + 12 * minor).astype(np.int8)


def chord_tracks(
    rng: np.random.Generator, key_idx: np.ndarray, n_beats: np.ndarray, source: np.ndarray
) -> pa.Array:
    """One chord label per beat interval for every clip; clip i plays clip ``source[i]``'s progression,
    hold and start (itself, or the clip it re-orchestrates), then gets its own recognition errors."""
    n = len(key_idx)
    tonic, minor = key_idx % 12, key_idx >= 12
    prog = np.where(minor, 5 + rng.integers(0, 4, n), rng.integers(0, 5, n))[source]
    hold = np.where(rng.uniform(size=n) < 0.7, 4, 2)[source]
    start = rng.integers(0, 16, n)[source]
    chords = np.maximum(n_beats - 1, 0)
    parent = np.repeat(np.arange(n), chords)
    beat = np.arange(chords.sum()) - np.repeat(np.cumsum(chords) - chords, chords)
    slot = ((beat + start[parent]) // hold[parent]) % 4
    chord = PROGRESSION_TABLE[prog[parent], slot]
    ids = _chord_id(tonic[parent], chord[:, 0], chord[:, 1])
    u = rng.uniform(size=len(ids))
    wrong = u < 0.12  # another triad of the key instead: the typical recognition error
    dia = DIATONIC[minor[parent[wrong]].astype(int), rng.integers(0, 6, int(wrong.sum()))]
    ids[wrong] = _chord_id(tonic[parent[wrong]], dia[:, 0], dia[:, 1])
    ids[u > 0.97] = 0  # N
    offsets = np.concatenate([[0], np.cumsum(chords)]).astype(np.int32)
    values = pa.DictionaryArray.from_arrays(pa.array(ids.astype(np.int32)), pa.array(CHORD_LABELS)).cast(pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def tag_vectors(
    rng: np.random.Generator, n: int, copy_voice: np.ndarray, other: np.ndarray
) -> tuple[pa.Array, pa.Array]:
    """MTT probabilities (list<float32> of 50) and measured instrument words per clip. Clips ``other`` get
    an instrumentation that differs from clip ``copy_voice`` of the same row (a re-orchestration keeps
    the voice and changes the instruments)."""
    from m2ugen_data.pairs.clips import content_tag_index
    from m2ugen_data.analysis.tag_words import DEFAULT_RULE
    from m2ugen_data.analysis.taggers import MTT_TAGS

    index = content_tag_index()
    words = list(index)
    freq = np.array([WORD_FREQ[w] for w in words])
    present = rng.uniform(size=(n, len(words))) < freq
    inst = [i for i, w in enumerate(words) if w != "voice"]
    voice = words.index("voice")
    none = ~present[:, inst].any(axis=1)  # everything plays something
    present[none, np.array(inst)[rng.choice(len(inst), int(none.sum()), p=freq[inst] / freq[inst].sum())]] = True
    a, b = copy_voice, other
    present[b, voice] = present[a, voice]
    same = (present[a][:, inst] == present[b][:, inst]).all(axis=1)
    for row_a, row_b in zip(a[same], b[same]):  # swap the lead: drop one of a's instruments, add one a lacks
        have = [j for j in inst if present[row_a, j]]
        lack = [j for j in inst if not present[row_a, j]]
        present[row_b, have[rng.integers(len(have))]] = False
        present[row_b, lack[rng.integers(len(lack))]] = True
    tags = rng.beta(1, 20, (n, len(MTT_TAGS))).astype(np.float32)
    for j, w in enumerate(words):
        rows = np.flatnonzero(present[:, j])
        cols = list(index[w])
        tags[np.ix_(rows, cols)] = rng.beta(4, 5, (len(rows), len(cols))) * (0.8 if w == "voice" else 1.0)
    word_prob = np.stack([tags[:, list(index[w])].max(axis=1) for w in words if w != "voice"], axis=1)
    order = np.argsort(-word_prob, axis=1, kind="stable")
    heard = np.take_along_axis(word_prob, order, axis=1) >= DEFAULT_RULE.instrument
    heard &= np.cumsum(heard, axis=1) <= DEFAULT_RULE.max_instruments
    names = pa.array([w for w in words if w != "voice"])
    values = pa.DictionaryArray.from_arrays(pa.array(order[heard].astype(np.int32)), names).cast(pa.string())
    offsets = np.concatenate([[0], np.cumsum(heard.sum(axis=1))]).astype(np.int32)
    tag_list = pa.FixedSizeListArray.from_arrays(pa.array(tags.reshape(-1)), len(MTT_TAGS)).cast(pa.list_(pa.float32()))
    return tag_list, pa.ListArray.from_arrays(pa.array(offsets), values)


def generate(n: int, seed: int = 0, planted_share: float = 0.02) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """Features, AudioSet labels and the planted sibling pairs (clip ids a, b); ``planted_share`` of the
    clips are in planted pairs."""
    rng = np.random.default_rng(seed)
    planted = int(n * planted_share) // 2
    tempo = np.clip(np.exp(rng.normal(math.log(115), 0.2, n)), 55, 210)
    meter = np.where(rng.uniform(size=n) < 0.85, 4, 3).astype(np.int32)
    keys = np.array([f"{k} major" for k in MAJOR] + [f"{k} minor" for k in MINOR])
    kw = np.concatenate([MAJOR_W * 0.65 / MAJOR_W.sum(), MINOR_W * 0.35 / MINOR_W.sum()])
    key_idx = rng.choice(24, n, p=kw)
    conf = rng.beta(5, 3, n)
    loud = rng.normal(-14, 4, n)
    offset = rng.uniform(0, 1, n) * 60 / tempo
    n_labels = rng.integers(1, 4, n)
    zipf = 1 / np.arange(1, 61)
    label_ids = rng.choice(60, int(n_labels.sum()), p=zipf / zipf.sum())
    offsets = np.concatenate([[0], np.cumsum(n_labels)])
    # planted siblings: b copies a's tempo, meter, key, beat phase and chords (plus measurement noise)
    idx = rng.permutation(n)[: 2 * planted].reshape(planted, 2)
    a, b = idx[:, 0], idx[:, 1]
    tempo[b] = tempo[a] * (1 + rng.normal(0, 0.0005, planted))
    meter[b], key_idx[b], conf[a], conf[b] = meter[a], key_idx[a], 0.9, 0.9
    offset[b] = np.mod(offset[a] + rng.normal(0, 0.002, planted), 60 / tempo[b])
    loud[b] = loud[a] + rng.normal(0, 1, planted)
    label_ids[offsets[a]] = 58  # a's first label and b's are rare and different: the sets differ
    label_ids[offsets[b]] = 59
    # timbre clusters by the leading instrument, as MFCC statistics do
    centroids = rng.normal(0, 8, (60, 24))
    timbre = (centroids[label_ids[offsets[:-1]]] + rng.normal(0, 4, (n, 24))).astype(np.float32)
    n_beats = np.floor((10.0 - offset) * tempo / 60).astype(np.int64) + 1
    beat_off = np.concatenate([[0], np.cumsum(n_beats)])
    parent = np.repeat(np.arange(n), n_beats)
    beats = offset[parent] + (np.arange(beat_off[-1]) - beat_off[parent]) * (60 / tempo[parent])
    source = np.arange(n)
    source[b] = a
    tags, words = tag_vectors(rng, n, a, b)
    ytid = np.char.add("v", np.char.zfill(np.arange(n).astype(str), 10))
    clip_id = np.char.add(ytid, "_0")
    timbre_list = pa.FixedSizeListArray.from_arrays(pa.array(timbre.reshape(-1)), 24).cast(pa.list_(pa.float32()))
    features = pa.table(
        {
            "clip_id": clip_id,
            "status": pa.array(np.full(n, "ok")),
            "tempo_bpm": tempo,
            "tempo_conf": conf,
            "beats": pa.ListArray.from_arrays(pa.array(beat_off.astype(np.int32)), pa.array(beats)),
            "meter": meter,
            "key": keys[key_idx],
            "loudness_lufs": loud,
            "timbre": timbre_list,
            "is_music": np.ones(n, dtype=bool),
            "tags_mtt": tags,
            "instruments": words,
            "beat_chords": chord_tracks(rng, key_idx, n_beats, source),
        }
    )
    names = pa.array([f"/m/inst{i:02d}" for i in range(60)])
    values = pa.DictionaryArray.from_arrays(pa.array(label_ids.astype(np.int32)), names).cast(pa.string())
    labels = pa.table(
        {"clip_id": clip_id, "instruments": pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)}
    )
    return features, labels, np.stack([clip_id[a], clip_id[b]], axis=1)


# Every pair of eligible clips in the same or a neighbouring tempo bin (bin width = the tolerance) of the
# same meter: what a straightforward SQL join examines. Rules, score and degree cap are then ours.
BASELINE_SQL = """
WITH b AS (SELECT *, floor(lt / {tol}) AS bin FROM c)
SELECT least(x.id, y.id) AS lo, greatest(x.id, y.id) AS hi, 0 AS rel, abs(x.lt - y.lt) AS dlt,
       least(x.ibi, y.ibi) AS grid,
       abs(fmod(x.phase, least(x.ibi, y.ibi)) - fmod(y.phase, least(x.ibi, y.ibi))) AS dph
FROM b x JOIN b y ON x.block = y.block AND y.bin BETWEEN x.bin - 1 AND x.bin + 1 AND x.id < y.id
WHERE abs(x.lt - y.lt) <= {tol}
"""
# The pairs that join enumerates, from the bin populations: within a bin, and between neighbouring bins.
BASELINE_COUNT_SQL = """
WITH b AS (SELECT block, floor(lt / {tol}) AS bin, count(*) AS c FROM c GROUP BY ALL)
SELECT coalesce(sum(x.c * (x.c - 1) / 2 + x.c * coalesce(y.c, 0)), 0)::BIGINT
FROM b x LEFT JOIN b y ON y.block = x.block AND y.bin = x.bin + 1
"""


def miner(rev: str | None, scratch: Path) -> tuple[type, Callable[..., Any]]:
    """(PairRules, mine_pairs) of the current tree, or as they were at git revision ``rev`` (the before of a
    before/after), from the module that held them then. Call before anything imports ``m2ugen_data``."""
    root = REPO
    if rev is not None:
        root = tree_at(rev, "m2ugen_data", scratch)
        sys.path.insert(0, str(root))
    for name in ("m2ugen_data.pairs.full", "m2ugen_data.pairs.mine", "m2ugen_data.analysis.pairs"):
        if (root / (name.replace(".", "/") + ".py")).is_file():
            module = importlib.import_module(name)
            return module.PairRules, module.mine_pairs
    raise SystemExit(f"no pair miner found at {rev or 'the working tree'}")


def run_child(method: str, data_dir: str, threads: int) -> None:
    """One measured run (in a subprocess): prints a JSON line with wall seconds, peak RSS and results."""
    import duckdb

    features = pq.read_table(Path(data_dir) / "features.parquet")
    labels = pq.read_table(Path(data_dir) / "labels.parquet")
    planted = pq.read_table(Path(data_dir) / "planted.parquet")
    t0 = time.perf_counter()
    if method.startswith("ours") or method.startswith("@"):
        rules, mine_pairs = miner(method[1:] if method.startswith("@") else None, Path(data_dir))
        window = int(method.split("-w")[1]) if "-w" in method else rules().window
        res = mine_pairs(features, labels, rules(window=window), threads=threads, memory_limit="4GB")
    else:
        from m2ugen_data.pairs.clips import clip_arrays, eligible_clips
        from m2ugen_data.pairs.full import select_pairs
        from m2ugen_data.pairs.rules import MiningResult, PairRules

        rules = PairRules()
        elig, clip_rej = eligible_clips(features, labels, rules)
        cand, clips = clip_arrays(elig, rules)
        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        con.execute("SET memory_limit = '4GB'")
        con.register("c", cand)
        tol = math.log1p(rules.tolerance)
        (count,) = con.sql(BASELINE_COUNT_SQL.format(tol=tol)).fetchall()[0]
        if count > BASELINE_MAX_EDGES:
            sys.exit(f"the baseline would examine {count:,} pairs (more than {BASELINE_MAX_EDGES:,} do not fit)")
        edges = con.sql(BASELINE_SQL.format(tol=tol)).to_arrow_table()
        con.close()
        res = MiningResult(pairs=pa.table({}), eligible=elig.num_rows, clips=features.num_rows)
        res.candidates, res.pair_rejections = edges.num_rows, {}
        select_pairs(res, elig, clips, edges, rules)
    wall = time.perf_counter() - t0
    src, tgt = res.pairs.column("src_id").to_pylist(), res.pairs.column("tgt_id").to_pylist()
    found = set(zip(src, tgt)) | set(zip(tgt, src))
    pa_, pb = planted.column("a").to_pylist(), planted.column("b").to_pylist()
    recall = sum((x, y) in found for x, y in zip(pa_, pb)) / max(1, len(pa_))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extra = {
        "candidates": res.candidates,
        "score_sum": round(float(pc.sum(res.pairs.column("score")).as_py() or 0), 1),
        "timings": {k: round(v, 2) for k, v in res.timings.items()},
    }
    if "harmony_sim" in res.pairs.column_names:
        extra["mean_harmony_sim"] = round(float(pc.mean(res.pairs.column("harmony_sim")).as_py() or 0), 3)
    print(json.dumps({"wall_s": wall, "peak_mb": peak_mb, "pairs": len(src), "recall": recall, **extra}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=["ours", "ours-w64", "baseline"],
                    help="ours, ours-w<N> (another window), baseline; ours-w64 runs at the smallest size only")  # fmt: skip
    ap.add_argument("--against-rev", help="also run the miner of this git revision on the same data (before/after)")
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "DIR"))
    args = ap.parse_args()
    if args.child:
        run_child(args.child[0], args.child[1], args.threads)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            d = Path(tmp) / str(n)
            d.mkdir()
            t = time.perf_counter()
            features, labels, planted = generate(n)
            pq.write_table(features, d / "features.parquet")
            pq.write_table(labels, d / "labels.parquet")
            pq.write_table(pa.table({"a": planted[:, 0], "b": planted[:, 1]}), d / "planted.parquet")
            del features, labels
            print(f"generated {n} clips ({len(planted)} planted pairs) in {time.perf_counter() - t:.1f}s", flush=True)
            # a wider window at the smallest size shows what the narrow band join leaves on the table
            methods = [m for m in args.methods if not m.startswith("ours-w") or n == min(args.sizes)]
            if args.against_rev:
                methods.insert(0, f"@{args.against_rev}")
            for method in methods:
                cmd = [sys.executable, __file__, "--threads", str(args.threads), "--child", method, str(d)]
                t = time.perf_counter()
                try:
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
                    if out.returncode != 0:
                        res = {"error": out.stderr.strip().splitlines()[-1][:120]}
                    else:
                        res = json.loads(out.stdout.strip().splitlines()[-1])
                except subprocess.TimeoutExpired:
                    res = {"error": f"timeout after {args.timeout:.0f}s"}
                res.update(method=method, clips=n, planted=len(planted), elapsed=time.perf_counter() - t)
                rows.append(res)
                print(json.dumps(res), flush=True)
    print()
    print(f"{'clips':>9} {'method':>9} {'wall s':>8} {'peak MB':>8} {'pairs':>8} {'planted recall':>15}  note")
    for r in rows:
        if "error" in r:
            print(f"{r['clips']:>9} {r['method']:>9} {'-':>8} {'-':>8} {'-':>8} {'-':>15}  {r['error']}")
        else:
            note = f"candidates {r['candidates']}, score sum {r['score_sum']}, {r['timings']}"
            print(
                f"{r['clips']:>9} {r['method']:>9} {r['wall_s']:>8.1f} {r['peak_mb']:>8.0f} {r['pairs']:>8}"
                f" {r['recall']:>15.3f}  {note}"
            )
    by = {(r["clips"], r["method"]): r for r in rows}
    for n in args.sizes:
        o, b = by.get((n, "ours")), by.get((n, "baseline"))
        if o and b and "wall_s" in o and "wall_s" in b:
            print(f"{n:>9} speed-up baseline/ours: {b['wall_s'] / o['wall_s']:.1f}x")
    print(f"machine: {os.cpu_count()} cores visible, threads={args.threads}")


if __name__ == "__main__":
    main()
