"""Synthetic corpus rendering throughput: clips per second and times real time, on one core.

Also times the one sample-recursive voice (the Karplus-Strong string) against the same recursion run by
``scipy.signal.lfilter`` with an integer delay, the obvious vectorised-library baseline, in the same run.

With ``--madmom N`` it also renders N clean clips and reports how often madmom's downbeat RNN + DBN and key
CNN recover the truth (the corpus is only useful if a good analyser can read it).

    .venv/bin/python bench/bench_synth.py [--n 24] [--seed 0] [--madmom 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import signal

from m2ugen_data.synth import render_corpus
from m2ugen_data.synth.instruments import plucked


def _lfilter_pluck(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Baseline: y[i] = x[i] + g/2 (y[i-L] + y[i-L-1]) as a direct-form IIR filter of order L+1."""
    period = round(sr / freq - 0.5)
    x = np.zeros(n)
    x[: period + 1] = rng.uniform(-1.0, 1.0, period + 1)
    a = np.zeros(period + 2)
    a[0], a[period], a[period + 1] = 1.0, -0.498, -0.498
    return signal.lfilter([1.0], a, x)


def _madmom_agreement(out: Path) -> dict[str, float]:
    """Fraction of clean clips where madmom matches the truth: tempo within 4 %, meter, key; mean beat F."""
    import mir_eval
    import onnxruntime
    from madmom.audio.signal import Signal
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor
    from madmom.features.key import CNNKeyRecognitionProcessor, key_prediction_to_label

    from m2ugen_data.audio_io import load_audio
    from m2ugen_data.synth import load_truth

    onnxruntime.set_default_logger_severity(3)
    rnn, dbn = RNNDownBeatProcessor(), DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)
    key_cnn = CNNKeyRecognitionProcessor()
    scores: dict[str, list[float]] = {"tempo": [], "beat_f": [], "downbeat_f": [], "meter": [], "key": []}
    for r in load_truth(out).to_pylist():
        if r["trouble"] != "none":
            continue
        y, _ = load_audio(out / r["audio_path"], sr=44100)  # madmom's models expect 44.1 kHz
        sig = Signal(y, sample_rate=44100)
        est = dbn(rnn(sig))
        beats, pos = est[:, 0], est[:, 1].astype(int)
        tempo = 60.0 / np.median(np.diff(beats))
        truth_beats = np.array(r["beats"])
        scores["tempo"].append(abs(tempo / r["tempo_bpm"] - 1.0) <= 0.04)
        scores["beat_f"].append(
            mir_eval.beat.f_measure(mir_eval.beat.trim_beats(truth_beats), mir_eval.beat.trim_beats(beats))
        )
        scores["downbeat_f"].append(mir_eval.beat.f_measure(np.array(r["downbeats"]), beats[pos == 1]))
        scores["meter"].append(int(pos.max()) == r["meter"])
        scores["key"].append(key_prediction_to_label(key_cnn(sig)) == r["key"])
    return {k: float(np.mean(v)) for k, v in scores.items()} | {"clips": len(scores["key"])}


def _time(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--madmom", type=int, default=0, help="also check N clean clips with madmom")
    args = ap.parse_args()

    sr, rng = 22050, np.random.default_rng(0)
    plucked(220.0, sr, sr, rng)  # compile (numba caches to disk) before timing anything
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = render_corpus(n=args.n, seed=args.seed, out_dir=Path(tmp))
        wall = time.perf_counter() - t0

    table = Table(title=f"synthetic corpus, n={args.n}, seed={args.seed}, {sr} Hz, one process")
    for col in ("measure", "ours", "baseline", "ratio"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    table.add_row("clips/s (render + FLAC + truth)", f"{args.n / wall:.1f}", "", "")
    table.add_row(
        "x real time", f"{summary['audio_seconds'] / wall:.0f}", "1", f"{summary['audio_seconds'] / wall:.0f}x"
    )
    for freq in (82.4, 440.0):
        ours = _time(lambda f=freq: plucked(f, 2 * sr, sr, rng))
        base = _time(lambda f=freq: _lfilter_pluck(f, 2 * sr, sr, rng))
        table.add_row(
            f"2 s pluck at {freq:g} Hz, ms (numba KS vs lfilter KS)",
            f"{ours * 1e3:.2f}",
            f"{base * 1e3:.2f}",
            f"{base / ours:.1f}x",
        )
    Console().print(table)
    Console().print(summary)
    if args.madmom:
        with tempfile.TemporaryDirectory() as tmp:
            render_corpus(n=args.madmom, seed=args.seed, out_dir=Path(tmp), sibling_fraction=0, trouble_fraction=0)
            agreement = _madmom_agreement(Path(tmp))
        check = Table(title=f"madmom vs synthetic truth, {agreement.pop('clips')} clean clips, seed={args.seed}")
        for col in ("tempo within 4 %", "beat F", "downbeat F", "meter", "key"):
            check.add_column(col, justify="right")
        check.add_row(*(f"{agreement[k]:.3f}" for k in ("tempo", "beat_f", "downbeat_f", "meter", "key")))
        Console().print(check)


if __name__ == "__main__":
    main()
