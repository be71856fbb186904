"""The dev sets as the hearing benches see them: one ``Clip`` per clip with its truth, source and soundfont,
and its analysis cached by measurement version, with what the fitted parts are re-derived from.

Three sets under the dev-set root (``m2ugen-data devset build``): ``gm`` (MMA grooves, siblings, chords),
``scores`` (MIDI files and score collections from many sources) and ``recordings`` (real music and
non-music from Debian packages). Every clip is analysed once with the pipeline (``analyse_file``) and cached
in ``<root>/cache/hearing-<set>-<measures version hash>.parquet`` with the tempo decision's inputs, the beat
tracker's own grid and the downbeat activations. The fitted parts (tempo model, instrument head, music
likeness) are re-derived from the cache under any model, which is how leave-one-source-out runs in seconds:
refitting never re-analyses audio.

The source of a clip (the leave-one-source-out unit) is where its music comes from: ``mma`` for the GM set,
the score source for the scores set (``openmsx``, ``bach-chorales``, ...), the Debian package for the
recordings set.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.devset.truth import TRUTH_FILE, read_truth

MUSIC_MID = "/m/04rlf"
SETS = ("gm", "scores", "recordings")
TEMPO_SETS = ("gm", "scores")  # sets with tempo and instrument truth
EXTRA = ("octave_inputs", "raw_tempo", "raw_conf", "raw_meter", "raw_beats", "raw_downbeats", "act_down", "chord_segments")


@dataclass
class Clip:
    set: str
    clip_id: str
    source: str
    soundfont: str | None
    split: str
    truth: dict[str, Any]
    row: dict[str, Any]  # the cached features row (measurements as analysed)
    extra: dict[str, Any]  # EXTRA columns

    @property
    def has_tempo_truth(self) -> bool:
        return self.set in TEMPO_SETS

    def octave_inputs(self):  # -> tempo_octave.OctaveInputs | None
        from m2ugen_data.analysis.tempo_octave import OctaveInputs

        raw = self.extra.get("octave_inputs")
        return None if not raw else OctaveInputs.from_json(json.loads(raw))

    def raw_rhythm(self):  # -> rhythm.Rhythm
        from m2ugen_data.analysis.rhythm import Rhythm

        e = self.extra
        return Rhythm(e.get("raw_tempo"), float(e.get("raw_conf") or 0.0), np.asarray(e.get("raw_beats") or [], np.float64),
                      np.asarray(e.get("raw_downbeats") or [], np.float64), e.get("raw_meter"))  # fmt: skip

    def on_grid(self, decision) -> dict[str, Any]:
        """The row's grid-dependent columns recomputed on a tempo decision's grid (as analysis would have)."""
        from m2ugen_data.analysis import harmony

        segs = [tuple(s) for s in json.loads(self.extra.get("chord_segments") or "[]")]
        chords = harmony.beat_chords(segs, np.asarray(decision.beats))
        return {
            "tempo_bpm": decision.tempo_bpm, "tempo_prob": decision.prob if decision.tempo_bpm else None,
            "tempo_alt_bpm": decision.alt_bpm, "tempo_method": decision.method, "meter": decision.meter,
            "beats": [float(b) for b in decision.beats], "downbeats": [float(b) for b in decision.downbeats],
            "beat_chords": chords, "chord_change_rate": harmony.chord_change_rate(chords, decision.meter),
            "harmony": harmony.harmony_descriptor(chords).tolist(),
        }  # fmt: skip

    def activations(self) -> np.ndarray | None:
        """(frames, 2) with only the downbeat column filled: what regridding reads to place bar lines."""
        down = self.extra.get("act_down")
        if not down:
            return None
        d = np.asarray(down, dtype=np.float64)
        return np.stack([np.zeros_like(d), d], axis=1)


def head_inputs(clips: list[Clip]) -> np.ndarray:
    """The instrument head's inputs per clip (stored tag probabilities and timbre)."""
    from m2ugen_data.analysis import derived, instrument_head

    return np.stack([instrument_head.features(derived.stored_tags(c.row), c.row["timbre"]) for c in clips])


def _job(job: tuple[str, str]) -> dict[str, Any]:
    from m2ugen_data.analysis.analyze import analyse_file
    from m2ugen_data.analysis.music_filter import ClipLabels

    scratch: dict[str, Any] = {}
    row, _ = analyse_file(job[0], job[1], labels=ClipLabels(labels=(MUSIC_MID,)), scratch=scratch)
    rh = scratch.get("rhythm_raw")
    act = scratch.get("act")
    return row | {
        "octave_inputs": json.dumps(scratch["octave_inputs"]) if scratch.get("octave_inputs") else None,
        "raw_tempo": None if rh is None else rh.tempo_bpm,
        "raw_conf": None if rh is None else float(rh.tempo_conf),
        "raw_meter": None if rh is None else rh.meter,
        "raw_beats": [] if rh is None else [float(b) for b in rh.beats],
        "raw_downbeats": [] if rh is None else [float(b) for b in rh.downbeats],
        "act_down": None if act is None else np.asarray(act[:, 1], np.float32).tolist(),
        "chord_segments": json.dumps(scratch["chord_segments"]) if "chord_segments" in scratch else None,
    }


def _extra_schema() -> list[pa.Field]:
    f64s = pa.list_(pa.float64())
    return [
        pa.field("octave_inputs", pa.string()), pa.field("raw_tempo", pa.float64()), pa.field("raw_conf", pa.float64()),
        pa.field("raw_meter", pa.int32()), pa.field("raw_beats", f64s), pa.field("raw_downbeats", f64s),
        pa.field("act_down", pa.list_(pa.float32())), pa.field("chord_segments", pa.string()),
    ]  # fmt: skip


def _run(jobs: list[tuple[str, str]], workers: int) -> list[dict[str, Any]]:
    if workers <= 1 or len(jobs) <= 1:
        return list(map(_job, jobs))
    from m2ugen_data.analysis.analyze import init_worker

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker) as pool:
        return list(pool.map(_job, jobs, chunksize=2))


def cached_rows(root: Path, name: str, truth: list[dict], workers: int) -> dict[str, dict[str, Any]]:
    """Analysed rows (features + EXTRA) per clip, analysing only what the cache lacks; written every 64
    clips, so an interrupted run resumes."""
    from m2ugen_data.analysis.analyze import MEASURES_VERSION
    from m2ugen_data.atomic import write_bytes_atomic
    from m2ugen_data.schemas import FEATURES
    from m2ugen_data.warehouse import utc_now

    digest = hashlib.sha1(MEASURES_VERSION.encode()).hexdigest()[:12]
    cache = root / "cache" / f"hearing-{name}-{digest}.parquet"
    rows: dict[str, dict[str, Any]] = {}
    if cache.is_file():
        rows = {r["clip_id"]: r for r in pq.read_table(cache).to_pylist()}
    todo = [(t["clip_id"], str(root / name / t["path"])) for t in truth if t["clip_id"] not in rows]
    schema = pa.schema(list(FEATURES.schema) + _extra_schema())
    step = 64
    for i in range(0, len(todo), step):
        print(f"analysing {name}: {i}/{len(todo)} clips ...", flush=True)
        for r in _run(todo[i : i + step], workers):
            r["updated_at"] = r.get("updated_at") or utc_now()
            rows[r["clip_id"]] = r
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(list(rows.values()), schema=schema), sink)
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(cache, sink.getvalue().to_pybytes())
    return rows



def feature_rows(root: Path, name: str, truth: list[dict], workers: int) -> dict[str, dict[str, Any]]:
    """Features rows per clip as the pipeline stores them (the bench-only EXTRA columns dropped), with the tag
    words and music score re-derived by today's rules: what the text writers and the claim checker read."""
    from m2ugen_data.analysis.derived import rederive

    rows = cached_rows(root, name, truth, workers)
    return {c: rederive({k: v for k, v in r.items() if k not in EXTRA}) for c, r in rows.items()}


def _source(name: str, t: dict[str, Any]) -> str:
    if name == "recordings":
        return t["package"]
    return t.get("source") or "mma"


def per_source_cap(truth: list[dict], name: str, cap: int | None) -> list[dict]:
    """At most ``cap`` clips per source (a stable hash order), for --quick runs."""
    if cap is None:
        return truth
    by: dict[str, list[dict]] = {}
    for t in sorted(truth, key=lambda t: hashlib.sha1(t["clip_id"].encode()).hexdigest()):
        by.setdefault(_source(name, t), []).append(t)
    return [t for ts in by.values() for t in ts[:cap]]


def load_clips(root: Path, workers: int, build: bool = True, cap: int | None = None, sets: tuple[str, ...] = SETS) -> list[Clip]:
    """Every clip of the sets under ``root`` with its cached analysis (building a missing set if ``build``)."""
    ensure_sets(root, build, sets)
    clips: list[Clip] = []
    for name in sets:
        truth = per_source_cap(read_truth(root / name).to_pylist(), name, cap)
        rows = cached_rows(root, name, truth, workers)
        for t in truth:
            r = rows[t["clip_id"]]
            extra = {k: r.get(k) for k in EXTRA}
            row = {k: v for k, v in r.items() if k not in EXTRA}
            clips.append(Clip(name, t["clip_id"], _source(name, t), t.get("soundfont"), t["split"], t, row, extra))
    return clips


def ensure_sets(root: Path, build: bool, sets: tuple[str, ...] = SETS) -> None:
    from m2ugen_data.devset.gm import build_gm
    from m2ugen_data.devset.recordings import build_recordings
    from m2ugen_data.devset.scores_set import build_scores

    builders = {"gm": build_gm, "scores": build_scores, "recordings": build_recordings}
    for name in sets:
        if not (root / name / TRUTH_FILE).is_file():
            if not build:
                raise SystemExit(f"no {name} dev set under {root} (run without --no-build)")
            print(f"building the {name} dev set in {root / name} ...", flush=True)
            builders[name](root / name)
