"""Chord recognition and chord-sequence similarity on the General-MIDI dev set, per split, and seconds per
analyser.

For each clip the expensive model outputs are computed once and cached in ``<cache>/<clip_id>.npz``
(keyed by the clip's render key and ``CACHE_VERSION``): the downbeat RNN activations and their DBN decode,
and both chord recognisers' segments. Reruns only evaluate. Rows: chord majmin accuracy per recogniser
(duration-weighted over the split), ``harmony.chord_similarity_edges`` over all clip pairs split into
siblings / tempo twins / other pairs (chords on the shipped tempo decision's beats), and seconds per 10 s
clip per analyser on one core (a few dev clips re-run, fastest of 3: the machine is shared). The tempo
decision itself is measured leave-one-source-out by ``bench/bench_hearing.py``.

    .venv/bin/python bench/bench_rhythm_harmony.py [--set .devsets/gm] [--timing-clips 10]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_VERSION = "rh2"  # bump when what is cached changes


@dataclass
class Clip:
    clip_id: str
    split: str
    truth: dict
    act: np.ndarray
    rhythm: object  # rhythm.Rhythm
    chords: dict[str, list[tuple[float, float, str]]]


# --------------------------------------------------------------------------- cached model outputs


def _pin_one_core() -> None:
    """Timings are 'seconds per clip on one core': run on one allowed core only."""
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[0]})


class Analysers:
    def __init__(self) -> None:
        from m2ugen_data.analysis import harmony, rhythm
        from m2ugen_data.analysis.quiet import quiet_libraries

        quiet_libraries()
        self.rhythm_models = rhythm.load_rhythm_models()
        self.chord_models = {m: harmony.load_chord_models(m) for m in harmony.CHORD_METHODS}
        self.run(np.random.default_rng(0).standard_normal(44100 * 10).astype(np.float32) * 0.1)  # warm-up

    def run(self, y44: np.ndarray, repeats: int = 1) -> dict[str, object]:
        """Every analyser on one clip; ``out["seconds"]``: each analyser's fastest of ``repeats`` runs (the
        machine is shared: the minimum is the least disturbed measurement)."""
        from m2ugen_data.analysis import harmony, rhythm, tempo_octave

        out: dict[str, object] = {}
        seconds: dict[str, float] = {}

        def timed(name: str, fn: Callable[[], object]) -> object:
            runs = []
            for _ in range(repeats):
                t = time.perf_counter()
                value = fn()
                runs.append(time.perf_counter() - t)
            seconds[name] = min(runs)
            return value

        act = timed("downbeat_rnn", lambda: rhythm.beat_activations(y44, self.rhythm_models))
        rh = timed("dbn", lambda: rhythm.decode_rhythm(act, self.rhythm_models))
        timed("tempo decision (evidence + logit)", lambda: tempo_octave.correct_tempo(act, rh))
        for m, models in self.chord_models.items():
            out[f"chords:{m}"] = timed(f"chords:{m}", lambda models=models: harmony.chord_segments(y44, models))
        out.update(act=act, rhythm=rh, seconds=seconds)
        return out


def _save(path: Path, key: str, res: dict[str, object], chord_methods: Iterable[str]) -> None:
    rh = res["rhythm"]
    arrays: dict[str, np.ndarray] = {
        "key": np.array(key),
        "act": res["act"],
        "rh_scalar": np.array([np.nan if rh.tempo_bpm is None else rh.tempo_bpm, rh.tempo_conf, rh.meter or 0]),
        "rh_beats": rh.beats,
        "rh_downbeats": rh.downbeats,
    }
    for m in chord_methods:
        seg = res[f"chords:{m}"]
        arrays[f"chords:{m}:times"] = np.array([(s, e) for s, e, _ in seg]).reshape(-1, 2)
        arrays[f"chords:{m}:labels"] = np.array([lab for _, _, lab in seg], dtype=str)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _load(path: Path, key: str, chord_methods: Iterable[str]) -> dict[str, object] | None:
    from m2ugen_data.analysis.rhythm import Rhythm

    if not path.is_file():
        return None
    z = np.load(path)
    if str(z["key"]) != key or any(f"chords:{m}:labels" not in z for m in chord_methods):
        return None
    tempo, conf, meter = z["rh_scalar"].tolist()
    rh = Rhythm(None if np.isnan(tempo) else tempo, conf, z["rh_beats"], z["rh_downbeats"], int(meter) or None)
    out: dict[str, object] = {
        "act": z["act"],
        "rhythm": rh,
    }
    for m in chord_methods:
        times, labels = z[f"chords:{m}:times"], z[f"chords:{m}:labels"].tolist()
        out[f"chords:{m}"] = [(float(s), float(e), str(lab)) for (s, e), lab in zip(times, labels)]
    return out


def load_clips(set_dir: Path, cache_dir: Path, limit: int | None) -> list[Clip]:
    from m2ugen_data.analysis import harmony
    from m2ugen_data.audio_io import load_audio
    from m2ugen_data.devset.truth import read_truth

    rows = read_truth(set_dir).to_pylist()[:limit]
    cache_dir.mkdir(parents=True, exist_ok=True)
    analysers: Analysers | None = None
    clips = []
    fresh = 0
    for row in rows:
        key = f"{CACHE_VERSION}|{row['render_key']}"
        path = cache_dir / f"{row['clip_id']}.npz"
        res = _load(path, key, harmony.CHORD_METHODS)
        if res is None:
            analysers = analysers or Analysers()
            y44, _ = load_audio(set_dir / row["path"], sr=44100)
            res = analysers.run(y44)
            _save(path, key, res, harmony.CHORD_METHODS)
            fresh += 1
        clips.append(
            Clip(
                clip_id=row["clip_id"],
                split=row["split"],
                truth=row,
                act=res["act"],
                rhythm=res["rhythm"],
                chords={m: res[f"chords:{m}"] for m in harmony.CHORD_METHODS},
            )
        )
    print(f"{len(clips)} clips ({fresh} analysed now, {len(clips) - fresh} from {cache_dir})")
    return clips


# --------------------------------------------------------------------------- metrics


def chord_accuracy(clips: list[Clip], method: str) -> float:
    """majmin accuracy, duration-weighted and pooled over the clips (the dev-set metrics' definition)."""
    from m2ugen_data.devset import metrics

    refs = [metrics.chord_segments(c.truth["chords"]) for c in clips]
    ests = [
        (np.array([(s, e) for s, e, _ in c.chords[method]]).reshape(-1, 2), [lab for *_, lab in c.chords[method]])
        for c in clips
    ]
    return metrics.chord_scores(refs, ests, rules=("majmin",))["majmin"]


# --------------------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", type=Path, default=Path(".devsets/gm"))
    ap.add_argument("--cache", type=Path, default=Path(".devsets/cache/rhythm_harmony"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--timing-clips", type=int, default=10, help="dev clips re-run to time the analysers")
    args = ap.parse_args()

    from m2ugen_data.analysis import harmony

    if not (args.set / "truth.parquet").is_file():
        raise SystemExit(
            f"no GM dev set at {args.set}: build it with `m2ugen-data devset build --kind gm --out {args.set.parent}`"
            " (or run bench/bench_hearing.py, which builds both sets)"
        )
    _pin_one_core()
    clips = load_clips(args.set, args.cache, args.limit)
    splits = {s: [c for c in clips if c.split == s] for s in ("dev", "test")}
    print(f"\n{'chords (majmin, duration-weighted)':<34}" + "".join(f" | {s:>6}" for s in splits))
    for m in harmony.CHORD_METHODS:
        print(f"{m:<34}" + "".join(f" | {chord_accuracy(cs, m):6.3f}" for cs in splits.values()))

    print(f"\n{'chord-sequence similarity (all pairs)':<34} |      n  median    p90  >= 0.6")
    for kind, sims in harmony_similarity(clips).items():
        stats = (np.median(sims), np.percentile(sims, 90), (sims >= 0.6).mean())
        print(f"{kind:<34} | {sims.size:6d}  " + "{:6.2f} {:6.2f}  {:6.2f}".format(*stats))

    timing_clips = [c for c in clips if c.split == "dev"][: args.timing_clips]
    seconds = measure_seconds(args.set, timing_clips)
    header = f"{'seconds per 10 s clip, one core':<34} | median    min"
    print(f"\n{header}   (fastest of 3 runs per clip, {len(timing_clips)} dev clips; min = least disturbed)")
    for k, v in seconds.items():
        print(f"{k:<34} | {np.median(v):6.3f} {np.min(v):6.3f}")
    print(f"({len(clips)} clips: dev {len(splits['dev'])}, test {len(splits['test'])})")


def harmony_similarity(clips: list[Clip]) -> dict[str, np.ndarray]:
    """``harmony.chord_similarity_edges`` (defaults) over every clip pair, by kind: siblings (same notes,
    other instruments: true MUEdit pairs), tempo twins (same groove and tempo, other song: hard negatives),
    and all other pairs. Chords from the default recogniser, on the default octave-corrected beats."""
    from m2ugen_data.analysis import harmony
    from m2ugen_data.analysis import tempo_octave as to

    beats = [to.correct_tempo(c.act, c.rhythm).beats for c in clips]
    seqs = [harmony.chord_ids(harmony.beat_chords(c.chords[harmony.CHORD_METHOD], b)) for c, b in zip(clips, beats)]
    values, offsets = harmony.pack_sequences(seqs)
    lo, hi = np.triu_indices(len(clips), k=1)
    sims = harmony.chord_similarity_edges(values, offsets, lo, hi)
    group = np.array([c.truth["group_id"] for c in clips])
    twin = np.array([c.truth["twin_id"] or "" for c in clips])
    sibling = group[lo] == group[hi]
    twins = ~sibling & (twin[lo] != "") & (twin[lo] == twin[hi])
    return {"siblings": sims[sibling], "tempo twins": sims[twins], "other pairs": sims[~sibling & ~twins]}


def measure_seconds(set_dir: Path, clips: list[Clip]) -> dict[str, list[float]]:
    """Seconds per analyser per 10 s of audio, one core, models loaded and warm."""
    from m2ugen_data.audio_io import load_audio

    analysers = Analysers()
    out: dict[str, list[float]] = {}
    for c in clips:
        y44, _ = load_audio(set_dir / c.truth["path"], sr=44100)
        for k, v in analysers.run(y44, repeats=3)["seconds"].items():
            out.setdefault(k, []).append(v / c.truth["duration_s"] * 10)
    return out


if __name__ == "__main__":
    main()
