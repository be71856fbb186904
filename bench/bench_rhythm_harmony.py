"""Tempo octave correction and chord recognition on the General-MIDI dev set, per split.

For each clip the expensive model outputs are computed once and cached in ``<cache>/<clip_id>.npz``
(keyed by the clip's render key and ``CACHE_VERSION``): the downbeat RNN activations and their DBN decode,
the 2019 multi-task TCN's tempo classes, both chord recognisers' segments, and the MusiCNN ``fast``/``slow``
tags when the taggers are installed. Reruns only evaluate.

Rows: the plain madmom baseline (downbeat RNN + DBN, what ``rhythm.decode_rhythm`` returns), the TCN tempo
classifier alone, every octave-correction variant (``tempo_octave.OctaveRule`` fields tuned with ``--tune``)
and the module's default rule, with tempo Acc1 / Acc2 (4 % window; Acc2 also accepts x2, x3, /2, /3), beat
F-measure and downbeat F-measure (mir_eval, 70 ms, no trimming: the clips are 10 s). Then chord majmin
accuracy per recogniser (duration-weighted over the split), ``harmony.chord_similarity_edges`` over all
clip pairs split into siblings / tempo twins / other pairs, and seconds per 10 s clip per analyser on one
core (a few dev clips re-run, fastest of 3: the machine is shared). Metrics: ``m2ugen_data.devset.metrics``. ``--tune`` searches each variant's
fields on the dev split only; the test split never chooses anything.

    .venv/bin/python bench/bench_rhythm_harmony.py [--set .devsets/gm] [--tune] [--timing-clips 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_VERSION = "rh1"  # bump when what is cached changes


@dataclass
class Clip:
    clip_id: str
    split: str
    truth: dict
    act: np.ndarray
    rhythm: object  # rhythm.Rhythm
    tcn_probs: np.ndarray | None
    chords: dict[str, list[tuple[float, float, str]]]
    tags: dict[str, float] | None


# --------------------------------------------------------------------------- cached model outputs


def _pin_one_core() -> None:
    """Timings are 'seconds per clip on one core': run on one allowed core only."""
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[0]})


class Analysers:
    def __init__(self) -> None:
        from m2ugen_data.analysis import harmony, rhythm, tempo_octave
        from m2ugen_data.analysis.quiet import quiet_libraries

        quiet_libraries()
        self.rhythm_models = rhythm.load_rhythm_models()
        self.tempo_models = tempo_octave.load_tempo_models(tcn=True)
        self.chord_models = {m: harmony.load_chord_models(m) for m in harmony.CHORD_METHODS}
        try:
            from m2ugen_data.analysis import taggers

            self.tag_models = taggers.load_taggers()
        except Exception as e:  # noqa: BLE001 - the taggers are optional evidence: report and go on
            print(f"taggers unavailable ({type(e).__name__}: {e}); tag evidence skipped")
            self.tag_models = None
        self.run(np.random.default_rng(0).standard_normal(44100 * 10).astype(np.float32) * 0.1)  # warm-up

    def run(self, y44: np.ndarray, repeats: int = 1) -> dict[str, object]:
        """Every analyser on one clip; ``out["seconds"]``: each analyser's fastest of ``repeats`` runs (the
        machine is shared: the minimum is the least disturbed measurement)."""
        import soxr

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
        probs = timed("tcn", lambda: tempo_octave.tcn_tempo_probs(y44, self.tempo_models))
        timed("octave_rule (default)", lambda: tempo_octave.correct_tempo(act, rh))  # evidence + decision
        for m, models in self.chord_models.items():
            out[f"chords:{m}"] = timed(f"chords:{m}", lambda models=models: harmony.chord_segments(y44, models))
        if self.tag_models is not None:
            from m2ugen_data.analysis import taggers

            def tag() -> dict[str, np.ndarray] | None:
                return taggers.tag_audio(soxr.resample(y44, 44100, taggers.SAMPLE_RATE), self.tag_models)

            tags = timed("musicnn_tags", tag)
            if tags is not None:
                mtt = dict(zip(taggers.MTT_TAGS, tags["mtt"].tolist()))
                out["tags"] = {"fast": mtt["fast"], "slow": mtt["slow"]}
        out.update(act=act, rhythm=rh, tcn_probs=probs, seconds=seconds)
        return out


def _save(path: Path, key: str, res: dict[str, object], chord_methods: Iterable[str]) -> None:
    rh = res["rhythm"]
    arrays: dict[str, np.ndarray] = {
        "key": np.array(key),
        "act": res["act"],
        "tcn_probs": res["tcn_probs"] if res["tcn_probs"] is not None else np.zeros(0),
        "rh_scalar": np.array([np.nan if rh.tempo_bpm is None else rh.tempo_bpm, rh.tempo_conf, rh.meter or 0]),
        "rh_beats": rh.beats,
        "rh_downbeats": rh.downbeats,
    }
    for m in chord_methods:
        seg = res[f"chords:{m}"]
        arrays[f"chords:{m}:times"] = np.array([(s, e) for s, e, _ in seg]).reshape(-1, 2)
        arrays[f"chords:{m}:labels"] = np.array([lab for _, _, lab in seg], dtype=str)
    if "tags" in res:
        arrays["tags"] = np.array([res["tags"]["fast"], res["tags"]["slow"]])
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
        "tcn_probs": z["tcn_probs"] if z["tcn_probs"].size else None,
    }
    for m in chord_methods:
        times, labels = z[f"chords:{m}:times"], z[f"chords:{m}:labels"].tolist()
        out[f"chords:{m}"] = [(float(s), float(e), str(lab)) for (s, e), lab in zip(times, labels)]
    if "tags" in z:
        out["tags"] = {"fast": float(z["tags"][0]), "slow": float(z["tags"][1])}
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
                tcn_probs=res["tcn_probs"],
                chords={m: res[f"chords:{m}"] for m in harmony.CHORD_METHODS},
                tags=res.get("tags"),
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


# --------------------------------------------------------------------------- variants


def outcome(c: Clip, tempo: float | None, beats: np.ndarray, downbeats: np.ndarray) -> np.ndarray:
    """[acc1, acc2, beat F, downbeat F] of one clip's answer."""
    from m2ugen_data.devset import metrics

    ref = c.truth["tempo_bpm"]
    return np.array(
        [
            metrics.tempo_acc1(ref, tempo),
            metrics.tempo_acc2(ref, tempo),
            metrics.beat_f(c.truth["beats"], beats),
            metrics.beat_f(c.truth["downbeats"], downbeats),
        ]
    )


_OUTCOMES: dict[str, np.ndarray] = {}


def candidate_outcomes(c: Clip) -> np.ndarray:
    """(len(FACTORS), 4): the outcome of each candidate grid, so a rule is scored by indexing, not by
    re-running mir_eval (the grid search evaluates thousands of rules)."""
    from m2ugen_data.analysis import tempo_octave as to

    if c.clip_id not in _OUTCOMES:
        grids = [to.regrid(c.rhythm, f, c.act) for f in to.FACTORS]
        _OUTCOMES[c.clip_id] = np.stack([outcome(c, g.tempo_bpm, g.beats, g.downbeats) for g in grids])
    return _OUTCOMES[c.clip_id]


def tcn_argmax(c: Clip) -> float | None:
    """The TCN tempo classifier alone (a tempo, not a grid: reported with the DBN's beats)."""
    return float(np.argmax(c.tcn_probs)) if c.tcn_probs is not None else None


def evaluate_baseline(clips: list[Clip], tempo_of: Callable[[Clip], float | None]) -> np.ndarray:
    return np.mean([outcome(c, tempo_of(c), c.rhythm.beats, c.rhythm.downbeats) for c in clips], axis=0)


def evaluate_rule(clips: list[Clip], rule, use_tcn: bool, use_tags: bool) -> np.ndarray:
    """Mean [acc1, acc2, beat F, downbeat F] of a rule; a clip without evidence keeps the DBN's answer
    (its tempo is None in both cases, since evidence is missing only when the DBN found no tempo)."""
    from m2ugen_data.analysis import tempo_octave as to

    stacked, has, outcomes = _stacked(clips, use_tcn, use_tags)
    pick = np.full(len(clips), to.KEEP)
    if has.any():
        pick[has] = np.argmax(stacked.scores(rule), axis=1)
    return outcomes[np.arange(len(clips)), pick].mean(axis=0)


_STACKED: dict[tuple[tuple[str, ...], bool, bool], tuple] = {}


def _stacked(clips: list[Clip], use_tcn: bool, use_tags: bool) -> tuple:
    """The clips' evidence stacked into (clips, candidates) arrays, which clips have any, and their
    candidate outcomes (clips, candidates, 4)."""
    from m2ugen_data.analysis import tempo_octave as to

    k = (tuple(c.clip_id for c in clips), use_tcn, use_tags)
    if k not in _STACKED:
        evs = [_evidence(c, use_tcn, use_tags) for c in clips]
        has = np.array([e is not None for e in evs])
        present = [e for e in evs if e is not None]

        def stack(field: str) -> np.ndarray | None:
            vals = [getattr(e, field) for e in present]
            return None if any(v is None for v in vals) or not vals else np.stack(vals)

        stacked = to.OctaveEvidence(*(stack(f) for f in ("prior_z", "beat", "bar", "comb", "tcn", "tags")))
        _STACKED[k] = (stacked, has, np.stack([candidate_outcomes(c) for c in clips]))
    return _STACKED[k]


_EVIDENCE: dict[tuple[str, bool, bool], object] = {}


def _evidence(c: Clip, use_tcn: bool, use_tags: bool):
    from m2ugen_data.analysis import tempo_octave as to

    k = (c.clip_id, use_tcn, use_tags)
    if k not in _EVIDENCE:
        _EVIDENCE[k] = to.octave_evidence(
            c.act, c.rhythm, c.tcn_probs if use_tcn else None, c.tags if use_tags else None
        )
    return _EVIDENCE[k]


# Each variant: the rule fields tuned (the other weights stay 0) and whether it reads the TCN and the tags.
GRID = {
    "prior_bpm": (100.0, 110.0, 120.0, 130.0),
    "prior_octaves": (0.4, 0.5, 0.6, 0.8, 1.0),
    "bias_change": (0.0, 0.5, 1.0),
    "w_beat": (0.0, 2.0, 4.0, 8.0),
    "t_beat": (0.2, 0.3, 0.4, 0.5, 0.6),
    "w_bar": (0.0, 1.0, 2.0, 4.0),
    "t_bar": (0.3, 0.5, 0.7),
    "w_comb": (0.0, 0.25, 0.5, 1.0),
    "w_tcn": (0.0, 0.25, 0.5, 1.0),
    "w_tags": (0.0, 1.0, 2.0, 4.0),
    "bias_two_thirds": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 100.0),
}
PRIOR = ("prior_bpm", "prior_octaves", "bias_change", "bias_two_thirds")
BEAT = PRIOR + ("w_beat", "t_beat")
VARIANTS: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "prior": (PRIOR, False, False),
    "prior+comb": (PRIOR + ("w_comb",), False, False),
    "tcn": (("w_tcn", "bias_change", "bias_two_thirds"), True, False),
    "prior+tcn": (PRIOR + ("w_tcn",), True, False),
    "prior+beat": (BEAT, False, False),
    "prior+beat+bar": (BEAT + ("w_bar", "t_bar"), False, False),
    "prior+beat+comb": (BEAT + ("w_comb",), False, False),
    "prior+beat+tcn": (BEAT + ("w_tcn",), True, False),
    "prior+beat+bar+comb": (BEAT + ("w_bar", "t_bar", "w_comb"), False, False),
    "prior+beat+bar+tcn": (BEAT + ("w_bar", "t_bar", "w_tcn"), True, False),
    "prior+beat+tags": (BEAT + ("w_tags",), False, True),
    "all": (BEAT + ("w_bar", "t_bar", "w_comb", "w_tcn", "w_tags"), True, True),
}
EXHAUSTIVE_MAX = 150000  # larger grids are searched coordinate-wise


def tune(dev: list[Clip], name: str, tuned: dict[str, object]):
    """Best rule of a variant on the dev clips by (Acc1, Acc2, beat F). Grids up to EXHAUSTIVE_MAX rules
    are searched exhaustively; larger ones pairwise-coordinate-wise (sweeps until nothing improves), starting from
    the best rule already tuned for a variant whose fields are a subset of this one's."""
    from m2ugen_data.analysis import tempo_octave as to

    params, use_tcn, use_tags = VARIANTS[name]
    zero = {f: 0.0 for f in ("w_beat", "w_bar", "w_comb", "w_tcn", "w_tags")}
    base = dataclasses.replace(to.OctaveRule(), w_prior=1.0 if "prior_bpm" in params else 0.0, **zero)

    def key(rule) -> tuple[float, ...]:
        m = evaluate_rule(dev, rule, use_tcn, use_tags)
        return round(m[0], 6), round(m[1], 6), round(m[2], 6)

    if np.prod([len(GRID[p]) for p in params]) <= EXHAUSTIVE_MAX:
        grid = itertools.product(*(GRID[p] for p in params))
        return max((dataclasses.replace(base, **dict(zip(params, v))) for v in grid), key=key)  # first best wins
    seeds = [r for n, r in tuned.items() if set(VARIANTS[n][0]) <= set(params)] or [base]
    best = max(seeds, key=key)
    best_key = key(best)
    improved = True
    while improved:  # moves along every pair of fields at once: evidence often needs its weight and a bias
        improved = False
        for p, q in itertools.combinations(params, 2):
            for v, w in itertools.product(GRID[p], GRID[q]):
                rule = dataclasses.replace(best, **{p: v, q: w})
                k = key(rule)
                if k > best_key:
                    best, best_key, improved = rule, k, True
    return best


# --------------------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", type=Path, default=Path(".devsets/gm"))
    ap.add_argument("--cache", type=Path, default=Path(".devsets/cache/rhythm_harmony"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--tune", action="store_true", help="grid-search each variant's weights on dev")
    ap.add_argument("--timing-clips", type=int, default=10, help="dev clips re-run to time the analysers")
    args = ap.parse_args()

    from m2ugen_data.analysis import harmony
    from m2ugen_data.analysis import tempo_octave as to

    if not (args.set / "truth.parquet").is_file():
        raise SystemExit(
            f"no GM dev set at {args.set}: build it with `m2ugen-data devset build --kind gm --out {args.set.parent}`"
            " (or run bench/bench_hearing.py, which builds both sets)"
        )
    _pin_one_core()
    clips = load_clips(args.set, args.cache, args.limit)
    splits = {s: [c for c in clips if c.split == s] for s in ("dev", "test")}
    has_tags = all(c.tags is not None for c in clips)

    rows: list[tuple[str, Callable[[list[Clip]], np.ndarray]]] = [
        ("baseline: downbeat RNN + DBN", lambda cs: evaluate_baseline(cs, lambda c: c.rhythm.tempo_bpm)),
        ("TCN tempo classes argmax (+DBN beats)", lambda cs: evaluate_baseline(cs, tcn_argmax)),
    ]
    tuned: dict[str, object] = {}
    if args.tune:
        for name, (_, use_tcn, use_tags) in VARIANTS.items():
            if use_tags and not has_tags:
                continue
            t = time.perf_counter()
            rule = tune(splits["dev"], name, tuned)
            tuned[name] = rule
            print(f"tuned {name:<20} in {time.perf_counter() - t:5.1f} s: {rule}")
            label = f"{name} (tuned on dev)"
            rows.append((label, lambda cs, r=rule, a=use_tcn, b=use_tags: evaluate_rule(cs, r, a, b)))
    uses_tcn, uses_tags = to.DEFAULT_RULE.w_tcn > 0, to.DEFAULT_RULE.w_tags > 0 and has_tags
    rows.append(("default rule (tempo_octave)", lambda cs: evaluate_rule(cs, to.DEFAULT_RULE, uses_tcn, uses_tags)))

    print(f"\n{'tempo / beats':<38}" + "".join(f" | {s:^29}" for s in splits))
    print(f"{'':<38}" + " | acc1   acc2   beatF  dbeatF" * len(splits))
    for label, fn in rows:
        cells = [" | {:.3f}  {:.3f}  {:.3f}  {:.3f}".format(*fn(cs)) for cs in splits.values()]
        print(f"{label:<38}" + "".join(cells))

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
