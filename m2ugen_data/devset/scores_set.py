"""Build the scores dev set: excerpts of MIDI files and scores from many sources, through many soundfonts.

Per piece (one worker job): read it (``scores``: exact beats and downbeats), give a score its tempo and
instruments, pick up to ``source.excerpts`` 10 s windows where the tempo and metre hold and notes keep
sounding, choose each window's soundfont (``soundfonts.pick``), render the piece once per soundfont it
needs, cut and loudness-normalise the excerpts. A clip whose render key (MIDI bytes, window, loudness,
renderer identity) matches the previous build and whose file exists is not rendered again.

The set complements the General-MIDI (MMA) set: other origins of music (``score_sources``), slow and
compound-metre pieces, solo melodies and four-part chorales, so tempo and instrument figures can be taken
leave-one-source-out and leave-one-soundfont-out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import multiprocessing
import os
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import mido
import numpy as np

from m2ugen_data.audio_io import write_flac
from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.devset import soundfonts
from m2ugen_data.devset.gm import MUSIC_LABEL, LOUDNESS_LUFS, cut_excerpt
from m2ugen_data.devset.gm_programs import DRUM_LABEL, kit_name, program_family, program_label, program_name
from m2ugen_data.devset.midi import DRUM_CHANNEL, absolute_messages
from m2ugen_data.devset.render import (
    SAMPLE_RATE,
    RenderError,
    Tools,
    content_key,
    find_tools,
    midi_bytes,
    render_latency_s,
    render_midi,
)
from m2ugen_data.devset.score_sources import SOURCES, ScoreSource
from m2ugen_data.devset.scores import (
    Metre,
    Piece,
    TempoMap,
    note_spans,
    piece_from_midi,
    piece_from_score,
    score_metre,
    score_tempo,
    truncated,
)
from m2ugen_data.devset.truth import (
    SCORES_TRUTH,
    audio_relpath,
    devset_ytid,
    previous_keys,
    remove_stale_audio,
    split_of,
    write_readme,
    write_truth,
)
from m2ugen_data.errors import MissingDependencyError
from m2ugen_data.ids import make_clip_id

RENDER_VERSION = "scores-1"  # bump when reading, windowing or cutting changes what a render key produces
CLIP_S = 10.0
MIN_BEATS = 5  # a window with fewer beats has no measurable tempo (40 BPM gives 6-7)
TEMPO_STEADY = 0.02  # every beat interval within 2 % of the window's median: one tempo
MAX_GAP_S = 2.5  # no stretch this long without a note onset (an intro, a rest, the end)
END_GUARD_S = 0.5  # windows end this long before the last note ends (no final ring-out)
START_STEP_S = 0.25
# One GM program for a melody (solo tunes): the instruments such tunes are played on, across families.
MELODY_PROGRAMS = (0, 6, 11, 21, 22, 24, 25, 40, 41, 56, 65, 68, 71, 73, 74, 75, 105, 110)
# Four-part scores (chorales): a program per part, soprano to bass.
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "organ": (19, 19, 19, 19),
    "strings": (40, 40, 41, 42),
    "choir": (52, 52, 52, 52),
    "woodwinds": (73, 68, 71, 70),
    "brass": (56, 56, 60, 57),
    "piano": (0, 0, 0, 0),
    "guitars": (24, 24, 25, 32),
}


@dataclasses.dataclass(frozen=True)
class Job:
    source: ScoreSource
    path: Path
    number: int | None
    seed: int
    fonts: tuple[soundfonts.Soundfont, ...]
    tools: Tools
    out_dir: Path
    previous: dict[str, str]

    @property
    def item(self) -> str:
        """The piece's stable name within its source: the file's path below the source root (+ tune number)."""
        root = self.source.root()
        rel = self.path.relative_to(root).as_posix() if root else self.path.name
        return rel if self.number is None else f"{rel}#{self.number}"


def build_scores(
    out_dir: Path,
    seed: int = 0,
    workers: int | None = None,
    sources: tuple[str, ...] | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    """Render every available source's sampled pieces into ``out_dir`` (audio/, truth.parquet, README.md)."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    tools = find_tools()
    fonts = soundfonts.available()
    if not fonts:
        raise MissingDependencyError(f"no General-MIDI soundfont installed; apt-get install {soundfonts.DEFAULT.package}")
    chosen = [s for s in SOURCES if sources is None or s.name in sources]
    previous = previous_keys(out_dir)
    jobs, missing = [], []
    for src in chosen:
        items = src.items()
        if not items:
            missing.append(f"{src.name} ({src.origin})")
            continue
        for path, number in sample_items(items, max_items or src.max_items, seed, src.name):
            jobs.append(Job(src, path, number, seed, fonts, tools, out_dir, previous))
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    rows: list[dict[str, Any]] = []
    rendered = 0
    skipped: Counter[str] = Counter()
    with contextlib.ExitStack() as stack:
        if n_workers > 1:
            ctx = multiprocessing.get_context("spawn")
            results = stack.enter_context(ProcessPoolExecutor(n_workers, mp_context=ctx)).map(_job, jobs, chunksize=4)
        else:
            results = map(_job, jobs)
        for job_rows, fresh, why in results:
            rows += job_rows
            rendered += fresh
            if why:
                skipped[why] += 1
    write_truth(out_dir, rows, SCORES_TRUTH)
    removed = remove_stale_audio(out_dir, [r["clip_id"] for r in rows])
    summary = _summary(rows, seed, fonts, rendered, removed, skipped, missing, time.perf_counter() - t0)
    write_readme(out_dir, scores_readme(summary))
    return summary


def sample_items(items: list[tuple[Path, int | None]], n: int, seed: int, source: str) -> list[tuple[Path, int | None]]:
    """``n`` pieces spread over the source (a fixed random order, so a larger ``n`` keeps the smaller's)."""
    order = np.random.default_rng([seed, 0x5C, *source.encode()]).permutation(len(items))
    return [items[int(i)] for i in order[:n]]


def _job(job: Job) -> tuple[list[dict[str, Any]], int, str | None]:
    """Rows and renders for one piece; a piece that cannot be read or has no usable window is skipped with
    a reason (counted in the summary), never an error that stops the build."""
    try:
        piece, tempo_origin = load_piece(job)
    except (RenderError, ValueError, KeyError, IndexError, ZeroDivisionError, AttributeError, TypeError) as e:
        return [], 0, f"unreadable: {type(e).__name__}"
    except Exception as e:  # noqa: BLE001 - music21 raises its own exception types on malformed tunes
        return [], 0, f"unreadable: {type(e).__name__}"
    rng = np.random.default_rng([job.seed, 0x5D, *job.source.name.encode(), *job.item.encode()])
    starts = choose_windows(piece, job.source.excerpts, rng)
    if not starts:
        return [], 0, "no_steady_window"
    rows, fresh = [], 0
    data = midi_bytes(truncated(piece.midi, max(starts) + CLIP_S + 1.0))
    renders: dict[str, np.ndarray] = {}
    for j, start in enumerate(starts):
        font = soundfonts.pick(job.fonts, "scores", job.seed, job.source.name, job.item, j)
        tools = dataclasses.replace(job.tools, soundfont=font.path)
        latency = render_latency_s(tools)
        lufs = float(np.random.default_rng([job.seed, 0x5E, *job.item.encode(), j]).uniform(*LOUDNESS_LUFS))
        clip_id = make_clip_id(devset_ytid("sc", job.seed, job.source.name, job.item, j), start)
        key = content_key(data, f"{start:.3f}|{latency:.5f}|{lufs:.4f}", tools.identity, RENDER_VERSION)
        rel = audio_relpath(clip_id)
        if job.previous.get(clip_id) != key or not (job.out_dir / rel).is_file():
            if font.name not in renders:
                renders[font.name] = render_midi(tools, data)
            write_flac(job.out_dir / rel, cut_excerpt(renders[font.name], start + latency, lufs), SAMPLE_RATE)
            fresh += 1
        rows.append(truth_row(job, piece, tempo_origin, start, clip_id, rel, key, font.name))
    return rows, fresh, None


def load_piece(job: Job) -> tuple[Piece, str]:
    """The piece with its truth grid, and where its tempo came from (file | score | drawn)."""
    src = job.source
    if src.kind == "midi":
        return piece_from_midi(mido.MidiFile(str(job.path))), "file"
    if src.kind == "midge":
        return piece_from_midi(compile_midge(job.path, job.seed)), "file"
    from music21 import converter, stream

    score = converter.parse(job.path, number=job.number) if job.number is not None else converter.parse(job.path)
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    metre = score_metre(score)
    bpm = score_tempo(score, metre)
    origin = "score"
    if bpm is None or not 30.0 <= bpm <= 220.0:
        rng = np.random.default_rng([job.seed, 0x5F, *src.name.encode(), *job.item.encode()])
        lo, hi = src.drawn_bpm
        bpm, origin = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), "drawn"
    n_parts = len(score.parts) if isinstance(score, stream.Score) and score.parts else 1
    return piece_from_score(score, bpm, score_programs(src, job.item, job.seed, n_parts)), origin


def score_programs(src: ScoreSource, item: str, seed: int, n_parts: int) -> dict[int, int]:
    """Part index -> GM program: one melody instrument for every part of a tune, an ensemble for a chorale."""
    rng = np.random.default_rng([seed, 0x60, *item.encode()])
    if src.ensemble == "choir":
        names = sorted(ENSEMBLES)
        progs = ENSEMBLES[names[int(rng.integers(len(names)))]]
        return {i: progs[min(i, len(progs) - 1)] for i in range(n_parts)}
    prog = MELODY_PROGRAMS[int(rng.integers(len(MELODY_PROGRAMS)))]
    return dict.fromkeys(range(n_parts), prog)


def compile_midge(path: Path, seed: int) -> mido.MidiFile:
    """midge's MIDI for a .mg source (gzipped ones unpacked first), with a fixed random seed."""
    with tempfile.TemporaryDirectory(prefix="m2ugen-midge-") as tmp:
        src = Path(tmp) / path.name.removesuffix(".gz")
        src.write_bytes(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
        out = Path(tmp) / "out.mid"
        proc = subprocess.run(
            ["midge", "-q", "-s", str(seed + 1), "-o", str(out), str(src)],
            capture_output=True, text=True, cwd=tmp, check=False, timeout=60,
        )  # fmt: skip
        if proc.returncode != 0 or not out.is_file():
            raise RenderError(f"midge failed on {path.name}: {proc.stderr.strip()[-200:]}")
        return mido.MidiFile(str(out))


def choose_windows(piece: Piece, k: int, rng: np.random.Generator) -> list[float]:
    """Up to ``k`` non-overlapping window starts (ms-rounded seconds) where the tempo and metre hold, at
    least MIN_BEATS beats fall, and no MAX_GAP_S stretch lacks a note onset."""
    last = piece.end_s - END_GUARD_S - CLIP_S
    if last < 0:
        return []
    valid = [round(float(t), 3) for t in np.arange(0.0, last + 1e-9, START_STEP_S) if _steady(piece, float(t))]
    chosen: list[float] = []
    for i in rng.permutation(len(valid)):
        t = valid[int(i)]
        if all(abs(t - c) >= CLIP_S for c in chosen):
            chosen.append(t)
        if len(chosen) == k:
            break
    return sorted(chosen)


def _steady(piece: Piece, t: float) -> bool:
    """One tempo, one countable metre, enough beats and notes that keep starting (see ``choose_windows``)."""
    inside = (piece.beats >= t) & (piece.beats < t + CLIP_S)
    beats = piece.beats[inside]
    metres = {m for m, keep in zip(piece.metres, inside) if keep}
    if beats.size < MIN_BEATS or len(metres) != 1 or not Metre(*map(int, metres.pop().split("/"))).countable:
        return False
    ibi = np.diff(beats)
    if np.abs(ibi / np.median(ibi) - 1.0).max() > TEMPO_STEADY:
        return False
    onsets = piece.note_onsets[(piece.note_onsets >= t) & (piece.note_onsets < t + CLIP_S)]
    edges = np.concatenate([[t], onsets, [t + CLIP_S]])
    return bool(onsets.size and np.diff(edges).max() <= MAX_GAP_S)


def programs_at(mid: mido.MidiFile, tick: float) -> dict[int, int]:
    """Channel -> the program in force at ``tick`` (its first program change if it has none before)."""
    current: dict[int, int] = {}
    first: dict[int, int] = {}
    for t, msg in absolute_messages(mid):
        if msg.type == "program_change":
            first.setdefault(msg.channel, msg.program)
            if t <= tick:
                current[msg.channel] = msg.program
    return first | current


def truth_row(
    job: Job, piece: Piece, tempo_origin: str, start: float, clip_id: str, rel: str, key: str, font: str
) -> dict[str, Any]:
    end = start + CLIP_S
    inside = (piece.beats >= start) & (piece.beats < end)
    beats = piece.beats[inside]
    metre = next(m for m, keep in zip(piece.metres, inside) if keep)
    downbeats = piece.downbeats[(piece.downbeats >= start) & (piece.downbeats < end)]
    tmap = TempoMap(piece.midi)
    heard = {
        ch for ch, on, off in note_spans(piece.midi) if tmap.seconds(on) < end and tmap.seconds(off) > start
    }
    mid_tick = float(np.interp(start + CLIP_S / 2, tmap.seconds(tmap.ticks), tmap.ticks)) if tmap.ticks.size > 1 else 0.0
    progs = programs_at(piece.midi, mid_tick)
    onto = load_ontology()
    parts, names, labels, families, pitched = [], [], {onto.mid(MUSIC_LABEL)}, set(), set()
    for ch in sorted(heard):
        prog = progs.get(ch, 0)
        if ch == DRUM_CHANNEL:
            name, fam, label = kit_name(prog), "drums", DRUM_LABEL
        else:
            name, fam, label = program_name(prog), program_family(prog), program_label(prog)
            pitched.add(prog)
        parts.append(f"{'drums' if ch == DRUM_CHANNEL else 'part'}:ch{ch}:{prog}:{name}")
        names.append(name)
        labels.add(onto.mid(label))
        families.add(fam)
    return {
        "clip_id": clip_id,
        "path": rel,
        "split": split_of(f"{job.source.name}/{job.item}"),
        "source": job.source.name,
        "soundfont": font,
        "item": job.item,
        "duration_s": CLIP_S,
        "sample_rate": SAMPLE_RATE,
        "tempo_bpm": round(60.0 / float(np.median(np.diff(beats))), 4),
        "tempo_origin": tempo_origin,
        "meter": int(piece.beats_per_bar[inside][0]),
        "time_signature": metre,
        "beats": [round(float(b - start), 6) for b in beats],
        "downbeats": [round(float(b - start), 6) for b in downbeats],
        "programs": sorted(pitched),
        "instrument_names": names,
        "families": sorted(families),
        "labels": sorted(labels),
        "parts": parts,
        "has_drums": DRUM_CHANNEL in heard,
        "offset_s": start,
        "render_key": key,
        "seed": job.seed,
    }


def _summary(
    rows: list[dict[str, Any]],
    seed: int,
    fonts: tuple[soundfonts.Soundfont, ...],
    rendered: int,
    removed: int,
    skipped: Counter[str],
    missing: list[str],
    wall_s: float,
) -> dict[str, Any]:
    tempi = np.array([r["tempo_bpm"] for r in rows]) if rows else np.zeros(0)
    return {
        "kind": "scores",
        "clips": len(rows),
        "rendered": rendered,
        "removed_stale": removed,
        "seed": seed,
        "sources": dict(sorted(Counter(r["source"] for r in rows).items())),
        "soundfonts": dict(sorted(Counter(r["soundfont"] for r in rows).items())),
        "soundfont_files": {f.name: str(f.path) for f in fonts},
        "splits": dict(sorted(Counter(r["split"] for r in rows).items())),
        "time_signatures": dict(sorted(Counter(r["time_signature"] for r in rows).items())),
        "tempo_origin": dict(sorted(Counter(r["tempo_origin"] for r in rows).items())),
        "with_drums": sum(r["has_drums"] for r in rows),
        "tempo_range": [float(tempi.min()), float(tempi.max())] if rows else [],
        "tempo_below_80": int((tempi < 80).sum()),
        "tempo_above_160": int((tempi > 160).sum()),
        "pieces_skipped": dict(sorted(skipped.items())),
        "sources_missing": missing,
        "build_seconds": round(wall_s, 1),
    }


def scores_readme(s: dict[str, Any]) -> str:
    """How the set was made, for whoever finds the directory without this code at hand."""
    return f"""# m2ugen scores dev set (seed {s["seed"]})

{s["clips"]} clips of 10 s, 44.1 kHz mono FLAC in `audio/`, truth in `truth.parquet` (one row per clip).
Built by `m2ugen-data devset build --kind scores --seed {s["seed"]}` in {s["build_seconds"]} s
({s["rendered"]} clips rendered this run, the rest reused from the render cache).

## How it was made
- **Sources** (`source`; see `m2ugen_data/devset/score_sources.py` for packages and licences): {s["sources"]}.
  Not installed, so not used: {s["sources_missing"] or "none"}.
- **Truth grid**: MIDI files' tempo maps and time signatures; scores' measures (pickups, repeats expanded)
  read by music21. The beat is the metre's beat unit (quarters in 4/4, halves in 2/2, dotted quarters in
  6/8); `tempo_bpm` is beats of that unit per minute in the excerpt. Tempo from (`tempo_origin`):
  {s["tempo_origin"]} (`drawn`: a score without a metronome mark played at a tempo drawn for it).
- **Instruments**: MIDI files keep their programs; a tune is played on one instrument drawn per tune, a
  chorale on an ensemble (organ, strings, choir, woodwinds, brass, piano, guitars).
- **Rendering**: `fluidsynth` through one of {len(s["soundfont_files"])} General-MIDI soundfonts per excerpt
  ({s["soundfonts"]}), cut at `offset_s` plus that soundfont's measured latency, -20..-16 LUFS.
- **Windows**: up to a source's `excerpts` per piece, where every beat interval is within 2 % of the
  median, one time signature with a single beat convention holds (not 3/8 or 6/4), a note starts at least every 2.5 s, and the piece has not ended.
- **Splits**: `dev`/`test` by a stable hash of the piece (source + file + tune).

## Counts
- splits: {s["splits"]}; time signatures: {s["time_signatures"]}; with drums: {s["with_drums"]}
- tempo: {s["tempo_range"]} BPM; below 80 BPM: {s["tempo_below_80"]}; above 160 BPM: {s["tempo_above_160"]}
- pieces skipped: {s["pieces_skipped"]}
"""
