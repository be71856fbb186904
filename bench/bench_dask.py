"""Analysis throughput on a Dask cluster with 1 and 2 worker processes (target: 2 workers >= 1.8x one).

Real clips: the General-MIDI dev set's renders (``m2ugen-data devset build``, under ``--devsets``); the
synthetic corpus stands in, and the table says so, when that set is absent. Each configuration gets a fresh
process-based ``LocalCluster`` (one thread per worker, as ``dask worker --nthreads 1``), loads the models in
every worker first (timed separately), then runs the flows' own analysis task function
(``flows.tasks.analyse_batch``) on batches of clips into a fresh warehouse, the settings interleaved
``--repeats`` times (the best run of each is reported, all runs listed: other load only slows a run down). The task goes to Dask directly,
not through Prefect (which would need an API server); Prefect's per-task overhead is milliseconds against
seconds of analysis per batch.

Besides wall time it reports the CPU seconds the workers used: ``cores busy`` = CPU / wall shows how much
of the machine the workers actually got (on a shared machine, the reason for a speed-up below the target),
and ``clips per CPU s`` whether a second worker costs CPU per clip (memory bandwidth, Dask overhead).

    .venv/bin/python bench/bench_dask.py [--clips 32] [--batch 2] [--workers 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clips(devsets: Path, n: int, tmp: Path) -> tuple[dict[str, str], str]:
    """``n`` clip id -> path, and where they come from."""
    from m2ugen_data.devset.truth import TRUTH_FILE, read_truth

    gm = devsets / "gm"
    if (gm / TRUTH_FILE).is_file():
        rows = sorted(read_truth(gm).to_pylist(), key=lambda r: r["clip_id"])
        found = {r["clip_id"]: str(gm / r["path"]) for r in rows if (gm / r["path"]).is_file()}
        if len(found) >= n:
            return dict(list(found.items())[:n]), f"General-MIDI dev set renders ({gm})"
    from m2ugen_data.synth import load_truth, render_corpus

    render_corpus(n=n, seed=11, out_dir=tmp / "corpus", sibling_fraction=0.0, trouble_fraction=0.0)
    rows = load_truth(tmp / "corpus").to_pylist()
    return {r["clip_id"]: str(tmp / "corpus" / r["audio_path"]) for r in rows}, "synthetic corpus (no GM dev set found)"


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def start(n_workers: int):
    """A process-based LocalCluster with ``n_workers`` one-thread workers, models loaded in each (timed)."""
    from distributed import Client, LocalCluster

    from m2ugen_data.analysis.analyze import init_worker

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    t0 = time.perf_counter()
    client.run(init_worker)
    return cluster, client, time.perf_counter() - t0


def run(client, paths: dict[str, str], batch: int, root: Path) -> dict[str, float]:
    """Analyse every clip into a fresh warehouse at ``root``: wall time and the workers' CPU seconds."""
    from flows.tasks import analyse_batch
    from m2ugen_data.warehouse import open_warehouse

    root_s = str(open_warehouse(root).root)
    items = sorted(paths.items())
    batches = [dict(items[i : i + batch]) for i in range(0, len(items), batch)]
    cpu0 = client.run(_cpu_s)
    t0 = time.perf_counter()
    results = client.gather([client.submit(analyse_batch.fn, root_s, b, pure=False) for b in batches])
    wall = time.perf_counter() - t0
    cpu = sum(v - cpu0[w] for w, v in client.run(_cpu_s).items())
    analysed = sum(r["analysed"] for r in results)
    assert analysed == len(paths), f"{analysed} of {len(paths)} clips analysed"
    return {"clips": analysed, "wall_s": wall, "cpu_s": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devsets", type=Path, default=REPO / ".devsets")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2, help="clips per task (the flows' RunOptions.batch_size)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs per setting; the best is reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        paths, source = clips(args.devsets, args.clips, tmp)
        load0 = os.getloadavg()[0]
        clusters = {k: start(k) for k in args.workers}
        runs: dict[int, list[dict[str, float]]] = {k: [] for k in args.workers}
        try:
            for rep in range(args.repeats):  # interleaved, so a burst of load elsewhere hits every setting
                for k in args.workers:
                    runs[k].append(run(clusters[k][1], paths, args.batch, tmp / f"wh-{k}-{rep}"))
        finally:
            for cluster, client, _ in clusters.values():
                client.close()
                cluster.close()
        load1 = os.getloadavg()[0]
    best = {k: max(rs, key=lambda r: r["clips"] / r["wall_s"]) for k, rs in runs.items()}
    base = best[args.workers[0]]["clips"] / best[args.workers[0]]["wall_s"]
    print(f"clips: {len(paths)} from {source}; {args.batch} clips per task; {os.cpu_count()} cores; "
          f"best of {args.repeats} interleaved runs; load average {load0:.1f} before, {load1:.1f} after")
    print("| workers | model load s | wall s | clips/s | speed-up | CPU s | cores busy | clips per CPU s | all runs, clips/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for k in args.workers:
        r, rate = best[k], best[k]["clips"] / best[k]["wall_s"]
        every = ", ".join(f"{x['clips'] / x['wall_s']:.2f}" for x in runs[k])
        print(f"| {k} | {clusters[k][2]:.1f} | {r['wall_s']:.1f} | {rate:.2f} | {rate / base:.2f}x | {r['cpu_s']:.1f} | "
              f"{r['cpu_s'] / r['wall_s']:.2f} | {r['clips'] / r['cpu_s']:.2f} | {every} |")


if __name__ == "__main__":
    main()
