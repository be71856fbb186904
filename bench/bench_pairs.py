"""MUEdit pair mining at scale: ours (sorted-neighbourhood band join + greedy degree cap) vs a baseline
(every candidate pair inside neighbouring 4% tempo bins per meter, the same rules and score, then per-clip
top-k by a window function, with no degree cap).

Feature tables of 10k, 100k and 1M clips are generated with realistic distributions (log-normal tempo
around 115 BPM, 85% 4/4, AudioSet-like key and Zipf instrument-label frequencies, loudness around -14
LUFS, a beat confidence spread, timbre vectors clustered by the leading instrument) plus a known number of
planted pairs (same tempo, meter, key and beat phase to within measurement noise, other instruments).
Planted-pair recall falls with size for both methods: among a million clips, random partners exist that
match a clip's tempo and phase as well as its planted sibling does, and the score cannot tell them apart. Each (method, size) runs in its own subprocess,
so peak memory is that run's ``ru_maxrss``; the baseline is killed at a timeout when it cannot finish.

    .venv/bin/python bench/bench_pairs.py [--sizes 10000 100000 1000000] [--timeout 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq

MAJOR = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
MINOR = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "Bb", "B"]
# Popular-music key frequencies (major keys on guitar/piano-friendly tonics are commonest).
MAJOR_W = np.array([10, 3, 9, 4, 6, 5, 3, 10, 3, 8, 4, 3], dtype=float)
MINOR_W = np.array([3, 3, 3, 1, 6, 3, 3, 3, 2, 7, 2, 4], dtype=float)


def generate(n: int, seed: int = 0) -> tuple[pa.Table, pa.Table, np.ndarray]:
    rng = np.random.default_rng(seed)
    planted = n // 100
    tempo = np.clip(np.exp(rng.normal(math.log(115), 0.2, n)), 55, 210)
    meter = np.where(rng.uniform(size=n) < 0.85, 4, 3).astype(np.int32)
    keys = np.array([f"{k} major" for k in MAJOR] + [f"{k} minor" for k in MINOR])
    kw = np.concatenate([MAJOR_W * 0.65 / MAJOR_W.sum(), MINOR_W * 0.35 / MINOR_W.sum()])
    key = keys[rng.choice(24, n, p=kw)]
    conf = rng.beta(5, 3, n)
    loud = rng.normal(-14, 4, n)
    offset = rng.uniform(0, 1, n) * 60 / tempo
    n_labels = rng.integers(1, 4, n)
    zipf = 1 / np.arange(1, 61)
    label_ids = rng.choice(60, int(n_labels.sum()), p=zipf / zipf.sum())
    offsets = np.concatenate([[0], np.cumsum(n_labels)])
    # planted pairs: b copies a's tempo, meter, key and beat phase (plus measurement noise), other labels
    idx = rng.permutation(n)[: 2 * planted].reshape(planted, 2)
    a, b = idx[:, 0], idx[:, 1]
    tempo[b] = tempo[a] * (1 + rng.normal(0, 0.0005, planted))
    meter[b], key[b], conf[a], conf[b] = meter[a], key[a], 0.9, 0.9
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
            "key": key,
            "loudness_lufs": loud,
            "timbre": timbre_list,
            "is_music": np.ones(n, dtype=bool),
        }
    )
    names = pa.array([f"/m/inst{i:02d}" for i in range(60)])
    values = pa.DictionaryArray.from_arrays(pa.array(label_ids.astype(np.int32)), names).cast(pa.string())
    labels = pa.table(
        {"clip_id": clip_id, "instruments": pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)}
    )
    return features, labels, np.stack([clip_id[a], clip_id[b]], axis=1)


BASELINE_SQL = """
WITH c AS (
    SELECT f.clip_id, f.meter, ln(f.tempo_bpm) AS lt, f.loudness_lufs AS loud, f.timbre, l.instruments,
           floor(ln(f.tempo_bpm) / {tol}) AS bin, 60 / f.tempo_bpm AS ibi, ph.phase
    FROM f JOIN l USING (clip_id) JOIN ph USING (clip_id)
    WHERE f.status = 'ok' AND f.is_music AND f.tempo_conf >= 0.3 AND f.meter IN (3, 4)
),
e AS (
    SELECT a.clip_id AS src, b.clip_id AS tgt, abs(a.lt - b.lt) AS dlt, abs(a.loud - b.loud) AS dloud,
           len(list_intersect(a.instruments, b.instruments))
               / len(list_distinct(list_concat(a.instruments, b.instruments))) AS jac,
           list_distance(a.timbre, b.timbre) / sqrt(24) AS td,
           least(a.ibi, b.ibi) AS grid,
           abs(fmod(a.phase, least(a.ibi, b.ibi)) - fmod(b.phase, least(a.ibi, b.ibi))) AS dph
    FROM c a JOIN c b ON a.meter = b.meter AND b.bin BETWEEN a.bin - 1 AND a.bin + 1 AND a.clip_id <> b.clip_id
),
v AS (
    SELECT src, tgt,
           0.4 * (1 - dlt / {tol}) + 0.3 * (1 - 2 * least(dph, grid - dph) / grid) + 0.3 * least(1, td / 20) AS score
    FROM e
    WHERE dlt <= {tol} AND dloud <= 6 AND substr(src, 1, 11) <> substr(tgt, 1, 11) AND (jac < 0.5 OR td > 8)
)
SELECT src, tgt, score FROM v QUALIFY row_number() OVER (PARTITION BY src ORDER BY score DESC, tgt) <= {k}
"""


def run_child(method: str, data_dir: str, threads: int) -> None:
    """One measured run (in a subprocess): prints a JSON line with wall seconds, peak RSS and results."""
    import duckdb

    features = pq.read_table(Path(data_dir) / "features.parquet")
    labels = pq.read_table(Path(data_dir) / "labels.parquet")
    planted = pq.read_table(Path(data_dir) / "planted.parquet")
    t0 = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if method.startswith("ours"):
        from m2ugen_data.analysis.pairs import PairRules, mine_pairs

        window = int(method.split("-w")[1]) if "-w" in method else PairRules().window
        res = mine_pairs(features, labels, PairRules(window=window), threads=threads, memory_limit="4GB")
        src, tgt = res.pairs.column("src_id").to_pylist(), res.pairs.column("tgt_id").to_pylist()
        extra = {
            "candidates": res.candidates,
            "score_sum": round(float(pa.compute.sum(res.pairs.column("score")).as_py() or 0), 1),
            "timings": {k: round(v, 2) for k, v in res.timings.items()},
        }
    else:
        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        con.execute("SET memory_limit = '4GB'")
        from m2ugen_data.analysis.pairs import beat_phase

        tempo = features.column("tempo_bpm").to_numpy()
        phase = pa.table({"clip_id": features.column("clip_id"), "phase": beat_phase(features.column("beats"), tempo)})
        con.register("f", features)
        con.register("l", labels)
        con.register("ph", phase)
        out = con.sql(BASELINE_SQL.format(tol=math.log1p(0.04), k=2)).fetchall()
        src, tgt = [r[0] for r in out], [r[1] for r in out]
        extra = {}
    wall = time.perf_counter() - t0
    found = set(zip(src, tgt)) | set(zip(tgt, src))
    pa_, pb = planted.column("a").to_pylist(), planted.column("b").to_pylist()
    recall = sum((x, y) in found for x, y in zip(pa_, pb)) / max(1, len(pa_))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_mb": peak_mb, "pairs": len(src), "recall": recall, **extra}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--threads", type=int, default=2)
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
            print(f"generated {n} clips ({len(planted)} planted pairs) in {time.perf_counter() - t:.1f}s", flush=True)
            # an 8x wider window at the smallest size shows what the narrow band join leaves on the table
            extra = ["ours-w64"] if n == min(args.sizes) else []
            for method in ("ours", *extra, "baseline"):
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
            note = f"candidates {r['candidates']}, score sum {r['score_sum']}, {r['timings']}" if "candidates" in r else ""
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
