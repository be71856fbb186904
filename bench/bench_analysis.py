"""Analysis throughput on 10-second synthetic clips, with a per-analyser breakdown, and the beat trackers
compared against the corpus truth (ours: madmom downbeat RNN + DBN with 30 tempo states; madmom's default
60 tempo states; librosa's beat tracker).

    .venv/bin/python bench/bench_analysis.py [--clips 24] [--workers 2]

``--cpu DIR`` instead times the full analysis on the 10 s FLAC clips in DIR (e.g. ``.devsets/gm/audio``) in
CPU seconds per stage (``time.process_time``: on a shared machine wall time measures the neighbours), one
process, one thread per library; ``--against REV`` runs the same measurement with the package as it was at
git revision REV in a child process, rounds interleaved, and prints both with the ratio:

    .venv/bin/python bench/bench_analysis.py --cpu .devsets/gm/audio --clips 30 --against 6c7f7d5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def cpu_per_stage(files: list[str]) -> dict[str, float]:
    """CPU seconds per clip per stage of ``analyse_file`` (whatever version of the package is importable)."""
    from m2ugen_data.analysis import analyze as an

    if hasattr(an, "STAGE_CLOCK"):
        an.STAGE_CLOCK = time.process_time
    else:  # older code reads time.perf_counter directly
        an.time = type("Clock", (), {"perf_counter": staticmethod(time.process_time)})
    an.init_worker()
    totals: dict[str, float] = {}
    for f in files:
        _, timings = an.analyse_file("cpuTimeClip_0", f)
        for k, v in timings.items():
            totals[k] = totals.get(k, 0.0) + v
    return {k: v / len(files) for k, v in totals.items()}


def _child(tree: Path, files: list[str]) -> dict[str, float]:
    env = os.environ | ONE_THREAD | {"PYTHONPATH": str(tree)}
    code = f"import sys, json; sys.path.insert(0, {str(tree)!r}); sys.path.insert(1, {str(REPO / 'bench')!r});" \
           f"import bench_analysis as b; print(json.dumps(b.cpu_per_stage(json.loads(sys.argv[1]))))"
    out = subprocess.run([sys.executable, "-c", code, json.dumps(files)], env=env, cwd=tree, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def cpu_mode(audio: Path, n: int, against: str | None, rounds: int = 2) -> None:
    files = sorted(str(p.resolve()) for p in audio.glob("*.flac"))[:n]
    trees = {"now": REPO}
    with tempfile.TemporaryDirectory() as tmp:
        if against:
            old = Path(tmp) / "before"
            old.mkdir()
            archive = subprocess.run(["git", "archive", against, "m2ugen_data"], cwd=REPO, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            trees = {f"at {against}": old, "now": REPO}
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
        for _ in range(rounds):  # interleaved: drift in the machine's load hits both alike
            for name, tree in trees.items():
                runs[name].append(_child(tree, files))
    best = {name: {k: min(r[k] for r in rs if k in r) for k in rs[0]} for name, rs in runs.items()}
    stages = sorted(best["now"], key=lambda k: -best["now"][k])
    print(f"CPU seconds per 10 s clip, one process, {len(files)} clips from {audio}, best of {rounds} interleaved rounds")
    print("| stage | " + " | ".join(best) + (" | now / before |" if against else " |"))
    print("|---|" + "---|" * (len(best) + (1 if against else 0)))
    for k in stages:
        cells = [f"{best[name].get(k, float('nan')):.3f}" for name in best]
        ratio = f" | {best['now'][k] / best[f'at {against}'][k]:.2f}" if against and k in best[f"at {against}"] else (" | -" if against else "")
        print(f"| {k} | " + " | ".join(cells) + ratio + " |")
    for name, b in best.items():
        print(f"{name}: {1 / b['total']:.2f} clips/s/core (CPU)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cpu", type=Path, default=None, metavar="DIR", help="CPU time per stage on DIR/*.flac")
    ap.add_argument("--against", default=None, metavar="REV", help="with --cpu: also the package at REV")
    args = ap.parse_args()
    if args.cpu:
        cpu_mode(args.cpu, args.clips, args.against)
        return

    import mir_eval

    from m2ugen_data.analysis import analyze as an
    from m2ugen_data.analysis import rhythm
    from m2ugen_data.audio_io import load_audio
    from m2ugen_data.synth import load_truth, render_corpus
    from m2ugen_data.warehouse import open_warehouse

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        render_corpus(n=args.clips, seed=11, out_dir=corpus, sibling_fraction=0.0, trouble_fraction=0.0)
        truth = load_truth(corpus).to_pylist()
        paths = {t["clip_id"]: corpus / t["audio_path"] for t in truth}

        # 1. one process, models warm: seconds per clip per stage
        an.init_worker()
        per_stage: dict[str, list[float]] = {}
        for cid, p in paths.items():
            _, timings = an.analyse_file(cid, p)
            for k, v in timings.items():
                per_stage.setdefault(k, []).append(v)
        total = float(np.mean(per_stage["total"]))
        print(f"{'stage':<10} {'s/clip':>8} {'share':>6}")
        for k, v in sorted(per_stage.items(), key=lambda kv: -np.mean(kv[1])):
            print(f"{k:<10} {np.mean(v):>8.3f} {np.mean(v) / total:>6.0%}")
        print(f"one core, models loaded: {1 / total:.2f} clips/s/core ({10 / total:.0f}x real time)")

        # 2. the batch API with a process pool (includes worker start-up and model loading)
        wh = open_warehouse(Path(tmp) / "wh")
        s = an.analyze_clips(wh, paths, workers=args.workers)
        rate = s.analysed / s.wall_s
        print(
            f"analyze_clips, {args.workers} workers, {s.analysed} clips: {s.wall_s:.1f} s wall, "
            f"{rate:.2f} clips/s, {rate / args.workers:.2f} clips/s/core (incl. ~model load per worker)"
        )

        # 3. beat trackers against the truth
        import librosa
        from madmom.features.downbeats import DBNDownBeatTrackingProcessor

        models = an._MODELS.rhythm  # type: ignore[union-attr]
        dbn60 = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=rhythm.FPS)
        rows: dict[str, list[tuple[float, float, bool, bool]]] = {"madmom dbn30 (ours)": [], "madmom dbn60": [], "librosa": []}
        rnn_s = []
        for t in truth:
            y44, _ = load_audio(corpus / t["audio_path"], sr=44100)
            t0 = time.perf_counter()
            act = rhythm.beat_activations(y44, models)
            rnn_s.append(time.perf_counter() - t0)
            ref = np.array(t["beats"])
            for name, variant in (("madmom dbn30 (ours)", models), ("madmom dbn60", rhythm.RhythmModels(models.rnn, dbn60))):
                t0 = time.perf_counter()
                rh = rhythm.decode_rhythm(act, variant)
                dt = time.perf_counter() - t0
                tempo_ok = rh.tempo_bpm is not None and abs(rh.tempo_bpm / t["tempo_bpm"] - 1) <= 0.04
                rows[name].append((dt, mir_eval.beat.f_measure(ref, rh.beats), tempo_ok, rh.meter == t["meter"]))
            y22 = librosa.resample(y44, orig_sr=44100, target_sr=22050)
            t0 = time.perf_counter()
            tempo, frames = librosa.beat.beat_track(y=y22, sr=22050)
            dt = time.perf_counter() - t0
            beats = librosa.frames_to_time(frames, sr=22050)
            tempo = float(np.atleast_1d(tempo)[0])
            rows["librosa"].append((dt, mir_eval.beat.f_measure(ref, beats), abs(tempo / t["tempo_bpm"] - 1) <= 0.04, False))
        print(f"\nbeat trackers on {len(truth)} clips (RNN activations {np.mean(rnn_s):.3f} s/clip, shared by madmom rows)")
        print(f"{'tracker':<22} {'s/clip':>8} {'beat F':>7} {'tempo ok':>9} {'meter ok':>9}")
        for name, r in rows.items():
            a = np.array(r, dtype=float)
            meter = f"{a[:, 3].mean():>9.0%}" if name != "librosa" else f"{'n/a':>9}"
            print(f"{name:<22} {a[:, 0].mean():>8.3f} {a[:, 1].mean():>7.3f} {a[:, 2].mean():>9.0%} {meter}")
        print(f"machine: {os.cpu_count()} cores visible; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
