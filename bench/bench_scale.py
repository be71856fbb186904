"""Scale benchmark: a simulated AudioSet (no audio) through selection and pool assignment, pair mining (full
and an incremental top-up), compaction and shard writing, each stage a task on a Dask ``LocalCluster`` of
1 and 2 worker processes (one thread each). Prints wall time per stage, peak RSS per worker, files per
manifest, and the top-up against a full rebuild.

Data (all generated, seeded):
- segment lists: ``--n`` rows with 11-character YouTube ids and 1-4 ontology labels, about half under Music
  (AudioSet's share); selection is ``select_music`` (ontology subtrees, exclusions, dedupe, pool hash).
- features for pair mining: ``bench_pairs.generate`` (tempo log-normal around 115 BPM, 85% in 4, popular-music
  key frequencies, MTT tag vectors, beat chords; 2% planted siblings), plus an octave structure: 8% of clips
  at double and 4% at half tempo, as trackers report. Mined with ``--pairs-n`` clips (default ``--n``'s
  music share), then ``--topup`` new clips incrementally (``m2ugen_data.pairs.incremental``) against a full re-mine.
- compaction: a ``clips`` manifest of ``--n`` rows written as batches of 500 rows (one per download task).
- shards: ``--shard-n`` samples of in-memory members (a 1 KiB stand-in for the audio, the JSON record), a full
  write, then ``--topup`` new samples written incrementally against a full rewrite.

    .venv/bin/python bench/bench_scale.py [--n 2100000] [--workers 1 2] [--topup 10000]
    .venv/bin/python bench/bench_scale.py --pairs-only --pairs-n 1000000 --topup 10000   # the 1% target

Run stages one after another in each configuration; with 2 workers the selection is split in two halves and
the other three stages run side by side (they are independent), so the 2-worker wall is the pipeline's.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
SEGMENTS_PER_BATCH = 500


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def segment_lists(n: int, seed: int) -> pa.Table:
    from m2ugen_data.audioset.ontology import load_ontology

    onto = load_ontology()
    rng = np.random.default_rng(seed)
    music = sorted(onto.descendants("/m/04rlf"))
    other = sorted(set(onto.labels) - set(music))
    k = rng.integers(1, 5, n)
    is_music = rng.uniform(size=n) < 0.5
    offsets = np.concatenate([[0], np.cumsum(k)])
    pick_music = np.repeat(is_music, k) & (rng.uniform(size=offsets[-1]) < 0.8)
    labels = np.where(
        pick_music, np.array(music)[rng.integers(0, len(music), offsets[-1])],
        np.array(other)[rng.integers(0, len(other), offsets[-1])],
    )  # fmt: skip
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    ytid = ["".join(row) for row in alphabet[rng.integers(0, 64, (n, 11))]]
    start = rng.integers(0, 300, n).astype(np.float64)
    return pa.table(
        {
            "ytid": ytid, "start_s": start, "end_s": start + 10.0,
            "labels": pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(labels)),
            "line": np.arange(n, dtype=np.int64) + 4,
        }
    )  # fmt: skip


def stage_select(n: int, seed: int) -> dict:
    from m2ugen_data.audioset.ontology import load_ontology
    from m2ugen_data.audioset.segments_csv import SegmentList
    from m2ugen_data.audioset.selection import SelectionPolicy, select_music

    table = segment_lists(n, seed)
    t0 = time.perf_counter()
    rows, report = select_music(SegmentList(f"sim{seed}", table), load_ontology(), SelectionPolicy())
    return {"seconds": time.perf_counter() - t0, "selected": rows.num_rows, "pools": report.pools, "rss": peak_rss_mb()}


def pair_features(n: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """``bench_pairs.generate`` with tempo-octave errors (the beats stay on the true grid, so some octave
    clips pair only through the half/double rule, as measured ones do)."""
    from bench_pairs import generate

    features, labels, _ = generate(n, seed=seed)
    rng = np.random.default_rng(seed + 7)
    tempo = features.column("tempo_bpm").to_numpy().copy()
    u = rng.uniform(size=n)
    tempo[u < 0.08] *= 2
    tempo[(u >= 0.08) & (u < 0.12)] /= 2
    i = features.schema.get_field_index("tempo_bpm")
    return features.set_column(i, "tempo_bpm", pa.array(tempo)), labels


def stage_pairs(n: int, topup: int, seed: int) -> dict:
    """Full mine of ``n`` clips, then ``topup`` more: incremental (from the full mine's cache on disk) and a
    full re-mine of the same ``n + topup`` (pairs must be equal). Both are timed as ``mine_warehouse`` runs
    them, cache I/O included: the incremental run loads the cache, mines and saves the new cache; the full
    re-mine mines and saves its cache (its time without the save is reported too). Versions are given, as
    the warehouse path takes them from ``updated_at``; the content-hash alternative is timed separately."""
    from m2ugen_data.pairs.cache import PairCache, clip_versions
    from m2ugen_data.pairs.incremental import mine_incremental
    from m2ugen_data.pairs.rules import PairRules

    features, labels = pair_features(n + topup, seed)
    rules = PairRules()
    ids = features.column("clip_id")
    versions = pa.table({"clip_id": ids, "version": np.arange(n + topup, dtype=np.uint64)}).sort_by("clip_id")
    old = features.slice(0, n)
    with tempfile.TemporaryDirectory(prefix="bench-pairs-") as tmp:
        t0 = time.perf_counter()
        base, cache = mine_incremental(old, labels, rules, versions=versions.filter(pc.is_in(
            versions.column("clip_id"), value_set=old.column("clip_id"))))  # fmt: skip
        t_full_n = time.perf_counter() - t0
        cache.save(Path(tmp) / "inc")
        del cache
        t0 = time.perf_counter()
        cache = PairCache.load(Path(tmp) / "inc")
        t_load = time.perf_counter() - t0
        inc, cache = mine_incremental(features, labels, rules, cache, versions=versions)
        t_mine = time.perf_counter() - t0 - t_load
        cache.save(Path(tmp) / "inc")
        t_inc = time.perf_counter() - t0
        del cache
        t0 = time.perf_counter()
        full, cache = mine_incremental(features, labels, rules, versions=versions)  # no cache: a full mine
        t_full_mine = time.perf_counter() - t0
        cache.save(Path(tmp) / "full")
        t_full = time.perf_counter() - t0
        cache_mb = sum(f.stat().st_size for f in (Path(tmp) / "full").iterdir()) / 2**20
        del cache
    t0 = time.perf_counter()
    clip_versions(features, labels)
    t_hash = time.perf_counter() - t0
    same = inc.pairs.drop(["created_at"]).equals(full.pairs.drop(["created_at"]))
    return {
        "n": n, "topup": topup, "full_n_s": t_full_n, "incremental_s": t_inc, "inc_load_s": t_load,
        "inc_mine_s": t_mine, "inc_save_s": t_inc - t_load - t_mine, "full_s": t_full, "full_mine_s": t_full_mine,
        "cache_mb": cache_mb, "hash_s": t_hash, "same_pairs": same, "pairs": full.pairs.num_rows,
        "inc_candidates": inc.candidates, "full_candidates": full.candidates, "inc_timings": inc.timings,
        "rss": peak_rss_mb(), "base_pairs": base.pairs.num_rows, "valid": full.valid,
    }  # fmt: skip


def stage_compact(root: str, rows: int) -> dict:
    from bench_compact import build

    from m2ugen_data.compact import compact
    from m2ugen_data.warehouse import open_warehouse

    wh = open_warehouse(root)
    batches = max(2, rows // SEGMENTS_PER_BATCH)
    t0 = time.perf_counter()
    build(wh, rows, batches, overlap=0.1)
    t_write = time.perf_counter() - t0
    before = len(wh.manifest_files("clips"))
    t0 = time.perf_counter()
    result = compact(wh, "clips", grace_s=0)
    return {"write_s": t_write, "seconds": time.perf_counter() - t0, "files_before": before,
            "files_after": len(wh.manifest_files("clips")), "rows": rows, "rss": peak_rss_mb(), "parts": result.parts}


def stage_shards(root: str, n: int, topup: int) -> dict:
    from m2ugen_data.shards import Sample
    from m2ugen_data.shards.build import write_dataset_shards
    from m2ugen_data.warehouse import open_warehouse

    wh = open_warehouse(root)
    blob = bytes(1024)

    def samples(count: int) -> list[Sample]:
        keys = sorted(f"s{i * 7919 % 10_000_019:09d}" for i in range(count))  # new keys interleave old ones
        return [Sample(k, {"bin": blob, "json": f'{{"key": "{k}"}}'.encode()}) for k in keys]

    first, grown = samples(n), samples(n + topup)
    t0 = time.perf_counter()
    rows = write_dataset_shards(wh, "bench", first, max_samples=1000, incremental=True)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows_inc = write_dataset_shards(wh, "bench", grown, max_samples=1000, incremental=True)
    t_inc = time.perf_counter() - t0
    run = rows_inc[-1]["run_id"]
    t0 = time.perf_counter()
    rows_full = write_dataset_shards(wh, "bench", grown, max_samples=1000)
    t_full = time.perf_counter() - t0
    return {"first_s": t_first, "incremental_s": t_inc, "full_s": t_full, "shards": len(rows),
            "written_inc": sum(r["run_id"] == run for r in rows_inc), "shards_full": len(rows_full), "rss": peak_rss_mb()}


def run_config(workers: int, args: argparse.Namespace, tmp: Path) -> dict:
    from distributed import Client, LocalCluster
    from m2ugen_data.warehouse import open_warehouse

    roots = [str(open_warehouse(tmp / f"w{workers}-{s}").root) for s in ("compact", "shards")]
    out: dict = {"workers": workers}
    t_all = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster) as client:  # fmt: skip
        names = sorted(client.scheduler_info()["workers"])
        t0 = time.perf_counter()
        parts = [args.n // workers + (i < args.n % workers) for i in range(workers)]
        futs = [client.submit(stage_select, p, i, workers=[names[i]], pure=False) for i, p in enumerate(parts)]
        sel = client.gather(futs)
        out["select"] = {"wall_s": time.perf_counter() - t0, "selected": sum(s["selected"] for s in sel)}
        jobs = {
            "pairs": (stage_pairs, (args.pairs_n, args.topup, 1)),
            "compact": (stage_compact, (roots[0], args.n)),
            "shards": (stage_shards, (roots[1], args.shard_n, args.topup)),
        }
        t0 = time.perf_counter()
        futs = {
            k: client.submit(fn, *a, workers=[names[i % workers]], pure=False)
            for i, (k, (fn, a)) in enumerate(jobs.items())
        }
        starts = {k: time.perf_counter() for k in futs}
        for k, f in futs.items():
            out[k] = f.result()
            out[k]["done_s"] = time.perf_counter() - starts[k]
        out["rest_wall_s"] = time.perf_counter() - t0
        out["rss_per_worker_mb"] = client.run(peak_rss_mb)
    out["wall_s"] = time.perf_counter() - t_all
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2_100_000, help="segments in the simulated AudioSet")
    ap.add_argument("--pairs-n", type=int, default=None, help="clips mined (default: half of --n, the music)")
    ap.add_argument("--shard-n", type=int, default=None, help="samples sharded (default: --pairs-n)")
    ap.add_argument("--topup", type=int, default=10_000, help="new clips / samples of the top-up")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pairs-only", action="store_true", help="only the pair-mining top-up, in this process")
    args = ap.parse_args()
    args.pairs_n = args.pairs_n or args.n // 2
    args.shard_n = args.shard_n or args.pairs_n
    if args.pairs_only:
        r = stage_pairs(args.pairs_n, args.topup, 1)
        share = 100 * args.topup / args.pairs_n
        print(f"pair mining, {args.pairs_n:,} clips + {args.topup:,} new ({share:.1f}%): "
              f"full mine {r['full_n_s']:.1f} s; top-up incremental {r['incremental_s']:.2f} s (cache load "
              f"{r['inc_load_s']:.2f} + mine {r['inc_mine_s']:.2f} + save {r['inc_save_s']:.2f}) vs full re-mine "
              f"{r['full_s']:.1f} s (mine {r['full_mine_s']:.1f} + save its cache) "
              f"= {100 * r['incremental_s'] / r['full_s']:.1f}% (same pairs: {r['same_pairs']}); cache "
              f"{r['cache_mb']:.0f} MB, {r['valid']:,} valid edges, {r['pairs']:,} pairs; content hash of all "
              f"clips {r['hash_s']:.2f} s; candidates {r['inc_candidates']:,} vs {r['full_candidates']:,}; "
              f"peak {r['rss']:.0f} MB; incremental stages "
              + ", ".join(f"{k} {v:.2f}" for k, v in r["inc_timings"].items()))
        return
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        results = [run_config(w, args, Path(tmp)) for w in args.workers]
    print(f"\nsimulated AudioSet: {args.n:,} segments; pairs on {args.pairs_n:,} clips, "
          f"shards of {args.shard_n:,} samples, top-up {args.topup:,}\n")
    print("| workers | total wall s | selection s (selected) | pairs: full / top-up incr. / full re-mine s | compaction s (files) "
          "| shards: first / top-up incr. / full s (shards written) | peak RSS per worker MB |")
    print("|---:|---:|---|---|---|---|---|")
    for r in results:
        p, c, s = r["pairs"], r["compact"], r["shards"]
        print(f"| {r['workers']} | {r['wall_s']:.1f} | {r['select']['wall_s']:.1f} ({r['select']['selected']:,}) "
              f"| {p['full_n_s']:.1f} / {p['incremental_s']:.2f} / {p['full_s']:.1f} (same pairs: {p['same_pairs']}) "
              f"| {c['seconds']:.1f} ({c['files_before']:,} -> {c['files_after']}) "
              f"| {s['first_s']:.1f} / {s['incremental_s']:.2f} / {s['full_s']:.1f} ({s['written_inc']} of {s['shards_full']}) "
              f"| {', '.join(f'{v:.0f}' for v in r['rss_per_worker_mb'].values())} |")
    print("\nper-stage walls with 2 workers run side by side; ratios: "
          + "; ".join(f"{r['workers']}w pairs top-up/full {r['pairs']['incremental_s'] / r['pairs']['full_s']:.3f}, "
                      f"shards top-up/full {r['shards']['incremental_s'] / r['shards']['full_s']:.3f}" for r in results))


if __name__ == "__main__":
    main()
