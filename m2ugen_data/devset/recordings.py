"""Build the recordings dev set: real music and real non-music from Debian packages, for the music filter.

How each clip is made (the truth's ``construction``):
- ``excerpt``: 10 s cut from one file at least ``EXCERPT_MIN_S`` long (several per music track, at offsets
  spread over the track, never in its first or last 5 %);
- ``sequence``: short sounds of one group (one speaker, one game) joined in random order with 0.3-1.5 s
  gaps of faint noise (room tone) between them, as a recording of separate events would have;
- ``loop``: short loops of one scene (a stadium crowd, a farm) blended with 80 ms crossfades into one
  continuous 10 s ambience.

Every clip is resampled to 44.1 kHz mono and normalised to a random -26..-14 LUFS whatever its category,
so loudness tells a filter nothing. Source files are assigned to ``dev`` or ``test`` by a stable hash of
their package and path before anything is joined, so no file is heard in both splits.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from m2ugen_data.audio_io import load_audio, write_flac
from m2ugen_data.devset.rec_sources import (
    CATEGORIES,
    CATEGORY_SHARE,
    RESERVED,
    RESERVED_PREFIXES,
    SOURCES,
    Source,
    apt_packages,
)
from m2ugen_data.devset.render import content_key
from m2ugen_data.devset.truth import (
    RECORDINGS_TRUTH,
    audio_relpath,
    devset_ytid,
    previous_keys,
    remove_stale_audio,
    split_of,
    write_readme,
    write_truth,
)
from m2ugen_data.errors import M2UGenError, MissingDependencyError
from m2ugen_data.ids import make_clip_id
from m2ugen_data.synth.render import normalise_loudness

DEFAULT_N = 240
SAMPLE_RATE = 44100
CLIP_S = 10.0
EXCERPT_MIN_S = 12.0  # a file this long is cut into excerpts; shorter files are joined
MAX_EXCERPTS_PER_FILE = 3
REUSE = 3  # a short file joins at most about this many clips
GAP_S = (0.3, 1.5)
CROSSFADE_S = 0.08
LOUDNESS_LUFS = (-26.0, -14.0)
ROOM_TONE_DBFS = (-72.0, -60.0)
RENDER_VERSION = "rec-1"


@dataclass(frozen=True)
class SourceFile:
    source: Source
    path: Path
    duration_s: float
    split: str

    @property
    def unit(self) -> str:
        return file_unit(self.source, self.path)


@dataclass(frozen=True)
class ClipPlan:
    clip_id: str
    category: str
    construction: str  # excerpt | sequence | loop
    package: str
    split: str
    pieces: tuple[tuple[str, float, float], ...]  # (path, start_s, seconds) in playing order
    gaps: tuple[float, ...]  # sequence: silence after each piece; loop: empty
    lufs: float
    room_tone_dbfs: float
    stamp: str  # sizes and mtimes of the sources (part of the render key)


def check_sources() -> None:
    """Refuse a catalogue that touches a reserved package; name every apt package that is not installed."""
    bad = sorted({s.package for s in SOURCES if s.package in RESERVED or s.package.startswith(RESERVED_PREFIXES)})
    if bad:
        raise M2UGenError(f"the recordings catalogue uses packages reserved for held-out evaluation: {bad}")
    missing = sorted({s.package for s in SOURCES if not s.files()})
    if missing:
        raise MissingDependencyError(
            "the recordings dev set needs Debian packages that are missing (no files found): "
            f"{' '.join(missing)}; install them with 'apt-get install --no-install-recommends {' '.join(missing)}' "
            f"(or run scripts/devset-deps.sh as root, which installs all of: {' '.join(apt_packages())})"
        )


def scan_sources() -> list[SourceFile]:
    """Every usable file with its duration and split (unreadable or silent-length files are skipped)."""
    out = []
    for source in SOURCES:
        for path in source.files():
            try:
                duration = sf.info(str(path)).duration
            except (sf.LibsndfileError, RuntimeError):
                continue
            if duration >= 0.05:
                out.append(SourceFile(source, path, float(duration), split_of(file_unit(source, path))))
    return out


def file_unit(source: Source, path: Path) -> str:
    """The split unit of a source file: ``<package>/<path inside the source directory>``."""
    return f"{source.package}/{path.relative_to(source.directory).as_posix()}"


def plan_recordings(files: list[SourceFile], n: int, seed: int) -> list[ClipPlan]:
    """Clips per category by ``CATEGORY_SHARE``, spread round-robin over sources, files and offsets."""
    if n < len(CATEGORIES):
        raise M2UGenError(f"--n must be at least {len(CATEGORIES)} for the recordings set, got {n}")
    quotas = _quotas(n)
    plans: list[ClipPlan] = []
    for category in CATEGORIES:
        candidates = _candidates([f for f in files if f.source.category == category], seed)
        plans += _round_robin(candidates, quotas[category])
    return plans


def _quotas(n: int) -> dict[str, int]:
    raw = {c: n * CATEGORY_SHARE[c] for c in CATEGORIES}
    quotas = {c: int(v) for c, v in raw.items()}
    for c in sorted(CATEGORIES, key=lambda c: raw[c] - quotas[c], reverse=True)[: n - sum(quotas.values())]:
        quotas[c] += 1
    return quotas


def _candidates(files: list[SourceFile], seed: int) -> list[list[ClipPlan]]:
    """Per source (catalogue entry), its possible clips in the order they should be taken."""
    by_source: dict[int, list[SourceFile]] = defaultdict(list)
    for f in files:
        by_source[SOURCES.index(f.source)].append(f)
    out = []
    for idx in sorted(by_source):
        fs = by_source[idx]
        long_files = [f for f in fs if f.duration_s >= EXCERPT_MIN_S]
        short = [f for f in fs if f.duration_s < EXCERPT_MIN_S]
        clips = _excerpts(long_files, seed) + (_joined(short, seed, idx) if fs[0].source.joiner != "none" else [])
        out.append(clips)
    return out


def _excerpts(files: list[SourceFile], seed: int) -> list[ClipPlan]:
    """Up to ``MAX_EXCERPTS_PER_FILE`` per file, ordered so every file's first excerpt comes first."""
    rounds: list[list[ClipPlan]] = [[] for _ in range(MAX_EXCERPTS_PER_FILE)]
    for f in files:
        rng = np.random.default_rng([seed, 7, _stable_int(f.unit)])
        lo, hi = 0.05 * f.duration_s, 0.95 * f.duration_s - CLIP_S
        k = int(max(1, min(MAX_EXCERPTS_PER_FILE, (hi - lo) // CLIP_S)))
        edges = np.linspace(lo, max(lo, hi), k + 1)
        order = rng.permutation(k)
        for r, j in enumerate(order):
            start = round(float(rng.uniform(edges[j], edges[j + 1] if hi > lo else lo)), 3)
            ytid = devset_ytid("rc", f.unit)
            rounds[r].append(_plan(f, ytid, start, "excerpt", ((str(f.path), start, CLIP_S),), (), rng))
    return [p for r in rounds for p in r]


def _joined(files: list[SourceFile], seed: int, source_index: int) -> list[ClipPlan]:
    """Clips joined from short files of one (group, split): each file used once before any is reused."""
    pools: dict[tuple[str, str], list[SourceFile]] = defaultdict(list)
    for f in files:
        pools[(f.source.group_of(f.path), f.split)].append(f)
    per_pool: list[list[ClipPlan]] = []
    for (group, split), fs in sorted(pools.items()):
        rng = np.random.default_rng([seed, 8, source_index, _stable_int(f"{group}/{split}")])
        loop = fs[0].source.joiner == "crossfade"
        # each file may return in up to REUSE clips, always in another order and company
        n_clips = max(1, int(REUSE * sum(f.duration_s for f in fs) // CLIP_S))
        deck: list[SourceFile] = []
        clips = []
        for i in range(n_clips):
            pieces: list[tuple[str, float, float]] = []
            gaps: list[float] = []
            filled = 0.0
            while filled < CLIP_S:
                if not deck:
                    deck = [fs[int(j)] for j in rng.permutation(len(fs))]
                f = deck.pop()
                take = min(f.duration_s, CLIP_S - filled + (CROSSFADE_S if loop else 0.0))
                pieces.append((str(f.path), 0.0, round(take, 4)))
                filled += take - (CROSSFADE_S if loop and len(pieces) > 1 else 0.0)
                if not loop:
                    gap = round(float(rng.uniform(*GAP_S)), 3)
                    gaps.append(gap)
                    filled += gap
            ytid = devset_ytid("rc", fs[0].source.package, source_index, group, split, seed, i)
            kind = "loop" if loop else "sequence"
            clips.append(_plan(fs[0], ytid, 0.0, kind, tuple(pieces), tuple(gaps), rng, split))
        per_pool.append(clips)
    # alternate pools (speakers, scenes) so a small quota still covers many of them
    depth = max((len(p) for p in per_pool), default=0)
    return [pool[r] for r in range(depth) for pool in per_pool if r < len(pool)]


def _plan(
    f: SourceFile,
    ytid: str,
    start: float,
    construction: str,
    pieces: tuple[tuple[str, float, float], ...],
    gaps: tuple[float, ...],
    rng: np.random.Generator,
    split: str | None = None,
) -> ClipPlan:
    stamp = "|".join(f"{p}:{os.stat(p).st_size}:{int(os.stat(p).st_mtime)}" for p in sorted({p for p, _, _ in pieces}))
    return ClipPlan(
        clip_id=make_clip_id(ytid, start),
        category=f.source.category,
        construction=construction,
        package=f.source.package,
        split=split or f.split,
        pieces=pieces,
        gaps=gaps,
        lufs=round(float(rng.uniform(*LOUDNESS_LUFS)), 3),
        room_tone_dbfs=round(float(rng.uniform(*ROOM_TONE_DBFS)), 2),
        stamp=stamp,
    )


def _round_robin(per_source: list[list[ClipPlan]], quota: int) -> list[ClipPlan]:
    """Take clips one source at a time so every source is represented before any gives a second."""
    taken: list[ClipPlan] = []
    seen: set[str] = set()
    queues = [list(q) for q in per_source]
    while len(taken) < quota and any(queues):
        for q in queues:
            while q and q[0].clip_id in seen:
                q.pop(0)
            if q and len(taken) < quota:
                c = q.pop(0)
                taken.append(c)
                seen.add(c.clip_id)
    return taken


def _stable_int(text: str) -> int:
    return int.from_bytes(content_key(text).encode()[:8], "little")


def read_piece(path: str, start_s: float, seconds: float) -> np.ndarray:
    """Mono float32 at 44.1 kHz of ``seconds`` from ``start_s`` (seeking, so long tracks are not decoded)."""
    try:
        with sf.SoundFile(path) as fh:
            rate = fh.samplerate
            fh.seek(min(int(round(start_s * rate)), max(0, fh.frames - 1)))
            y = fh.read(int(round(seconds * rate)), dtype="float32", always_2d=True).mean(axis=1)
    except (sf.LibsndfileError, RuntimeError):
        full, rate = load_audio(path)
        y = full[int(start_s * rate) : int((start_s + seconds) * rate)]
    if rate != SAMPLE_RATE:
        y = soxr.resample(y, rate, SAMPLE_RATE).astype(np.float32)
    return y


def assemble(plan: ClipPlan, rng: np.random.Generator) -> np.ndarray:
    """The clip's samples: excerpt, gapped sequence or crossfaded loop, at its loudness."""
    n = round(CLIP_S * SAMPLE_RATE)
    out = np.zeros(n, dtype=np.float32)
    pos = 0
    fade = round(CROSSFADE_S * SAMPLE_RATE)
    for i, (path, start, seconds) in enumerate(plan.pieces):
        y = read_piece(path, start, seconds)
        if plan.construction == "loop" and i > 0:
            pos = max(0, pos - fade)
            k = min(fade, y.size, n - pos)
            ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)
            out[pos : pos + k] *= 1.0 - ramp
            y = y.copy()
            y[:k] *= ramp
        seg = y[: max(0, n - pos)]
        out[pos : pos + seg.size] += seg
        pos += seg.size
        if plan.construction == "sequence":
            pos += round(plan.gaps[i] * SAMPLE_RATE)
        if pos >= n:
            break
    if plan.construction == "sequence":
        out = normalise_loudness(out, SAMPLE_RATE, plan.lufs)
        out += rng.normal(0.0, 10 ** (plan.room_tone_dbfs / 20.0), n).astype(np.float32)
        return out
    return normalise_loudness(out, SAMPLE_RATE, plan.lufs)


def _render_job(job: tuple[ClipPlan, int, Path, str | None]) -> tuple[str, bool]:
    plan, seed, out_dir, previous_key = job
    key = render_key(plan)
    rel = audio_relpath(plan.clip_id)
    if previous_key == key and (out_dir / rel).is_file():
        return key, False
    rng = np.random.default_rng([seed, 9, _stable_int(plan.clip_id)])
    write_flac(out_dir / rel, assemble(plan, rng), SAMPLE_RATE)
    return key, True


def render_key(plan: ClipPlan) -> str:
    return content_key(
        repr((plan.pieces, plan.gaps, plan.lufs, plan.room_tone_dbfs, plan.construction)), plan.stamp, RENDER_VERSION
    )


def build_recordings(out_dir: Path, n: int = DEFAULT_N, seed: int = 0, workers: int | None = None) -> dict[str, Any]:
    """Cut and join ``n`` clips into ``out_dir`` (audio/, truth.parquet, README.md) and summarise."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    check_sources()
    plans = plan_recordings(scan_sources(), n, seed)
    previous = previous_keys(out_dir)
    jobs = [(p, seed, out_dir, previous.get(p.clip_id)) for p in plans]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if n_workers == 1:
        results = list(map(_render_job, jobs))
    else:
        with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_render_job, jobs, chunksize=4))
    rows = [_truth_row(p, key, seed) for p, (key, _) in zip(plans, results)]
    write_truth(out_dir, rows, RECORDINGS_TRUTH)
    removed = remove_stale_audio(out_dir, [p.clip_id for p in plans])
    summary = {
        "kind": "recordings",
        "clips": len(rows),
        "rendered": sum(fresh for _, fresh in results),
        "removed_stale": removed,
        "seed": seed,
        "categories": dict(sorted(Counter(r["category"] for r in rows).items())),
        "splits": dict(sorted(Counter(r["split"] for r in rows).items())),
        "category_split": dict(sorted(Counter(f"{r['category']}/{r['split']}" for r in rows).items())),
        "constructions": dict(sorted(Counter(r["construction"] for r in rows).items())),
        "packages": dict(sorted(Counter(r["package"] for r in rows).items())),
        "source_files": len({s for r in rows for s in r["sources"]}),
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    write_readme(out_dir, recordings_readme(summary))
    return summary


def _truth_row(plan: ClipPlan, key: str, seed: int) -> dict[str, Any]:
    return {
        "clip_id": plan.clip_id,
        "path": audio_relpath(plan.clip_id),
        "split": plan.split,
        "duration_s": CLIP_S,
        "sample_rate": SAMPLE_RATE,
        "is_music": plan.category == "music",
        "category": plan.category,
        "construction": plan.construction,
        "package": plan.package,
        "sources": list(dict.fromkeys(p for p, _, _ in plan.pieces)),
        "source_offset_s": plan.pieces[0][1],
        "render_key": key,
        "seed": seed,
    }


def recordings_readme(s: dict[str, Any]) -> str:
    return f"""# m2ugen recordings dev set (seed {s["seed"]})

{s["clips"]} clips of 10 s, 44.1 kHz mono FLAC in `audio/`, truth in `truth.parquet` (one row per clip), cut
from {s["source_files"]} files of Debian packages. Built by
`m2ugen-data devset build --kind recordings --n {s["clips"]} --seed {s["seed"]}` in {s["build_seconds"]} s.
For calibrating and measuring a music-vs-not-music filter: `is_music` is true exactly for `category` music.

## How it was made
- **Truth** is the packagers' own filing (a game's `music/` directory vs its `sounds/`), refined by name
  where a directory mixes kinds; files whose spectrogram contradicted their folder (a jingle among effects,
  a choir, voices, steady chords) are excluded by name in `m2ugen_data/devset/rec_sources.py`.
- **excerpt**: 10 s from one file of at least {EXCERPT_MIN_S:.0f} s (several per music track, at offsets spread
  over the track, avoiding its first and last 5 %); `source_offset_s` is where.
- **sequence**: short sounds of one group (one speaker's folder, one game's effects) in random order with
  {GAP_S[0]}-{GAP_S[1]} s gaps of faint noise ({ROOM_TONE_DBFS[0]:.0f}..{ROOM_TONE_DBFS[1]:.0f} dBFS room tone).
- **loop**: short loops of one scene (a stadium crowd, a city district) blended with {CROSSFADE_S * 1000:.0f} ms
  crossfades into one continuous ambience.
- Every clip is normalised to a random {LOUDNESS_LUFS[0]:.0f}..{LOUDNESS_LUFS[1]:.0f} LUFS whatever its category.
- **Splits**: each source file is `dev` or `test` by a stable hash of package/path before anything is
  joined, so no file is heard in both splits.
- Packages reserved for held-out evaluation are never read: {", ".join(RESERVED)}.
- Known biases: the speech comes from telephone prompts (8 kHz, one speaker) and spoken single words (many
  speakers and languages); one music source is 8 kHz music on hold; sound effects are game effects.

## Counts
- categories: {s["categories"]}
- splits: {s["splits"]}; per category: {s["category_split"]}
- constructions: {s["constructions"]}
- packages: {s["packages"]}
"""
