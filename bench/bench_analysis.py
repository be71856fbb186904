"""Analysis throughput on 10-second synthetic clips, with a per-analyser breakdown, and the beat trackers
compared against the corpus truth (ours: madmom downbeat RNN + DBN with 30 tempo states; madmom's default
60 tempo states; librosa's beat tracker).

    .venv/bin/python bench/bench_analysis.py [--clips 24] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

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
