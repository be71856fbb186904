"""Download the selected segments into the warehouse, resumably, recording every outcome in ``clips``.

Why it is shaped this way:
- One ``YoutubeDL`` per worker thread, reused for every clip (no interpreter or extractor start-up per clip);
  one ffmpeg process per clip does the cut and the encoding (see ``ytdlp_fetch``).
- Media is written under a hidden temporary name, verified, then renamed: a killed run leaves only hidden
  temporaries, which the next attempt at that clip deletes before it starts.
- Outcomes are written to the manifest in small batches (every ``flush_every`` clips or ``flush_interval_s``
  seconds), each batch its own file, so a kill loses at most the clips in flight and the unflushed rows
  (their media is re-fetched and replaced on the rerun).
- A rerun skips clips whose latest row is ok and whose files exist, and clips that failed permanently
  (unless ``retry_failed``); transient and corrupt failures are tried again. A clip fetched with another span
  than this run's (``segment`` before, ``full`` now) is fetched again.
- ``span`` picks what is kept of each video (``ytdlp_fetch.Span``): ``auto`` follows the paper per pool
  (MUCaps: the whole audio, as the released MUCaps was built; the other datasets: the 10 s segment). The
  stored length is checked against what was asked for: exactly the segment, or at least the segment and at
  most the section, the video's length and ``max_duration_s``.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from m2ugen_data import defaults
from m2ugen_data.atomic import atomic_path, remove_temps
from m2ugen_data.claims import WorkClaims
from m2ugen_data.audioset.failures import INVALID, PERMANENT, TRANSIENT, Failure, one_line
from m2ugen_data.audioset.selection import POOLS
from m2ugen_data.audioset.verify import Expected, verify_audio, verify_video
from m2ugen_data.audioset.ytdlp_fetch import PAPER_SPANS, SPANS, Fetcher, FetchOptions, Section, Span, fast_ffmpeg
from m2ugen_data.errors import InvalidIdError, M2UGenError
from m2ugen_data.ids import validate_ytid, ytid_of
from m2ugen_data.warehouse import Warehouse, unique_batch_id, utc_now

DEFAULT_URL_TEMPLATE = defaults.URL_TEMPLATE
VIDEO_POOLS = ("muimage", "muvideo")


@dataclass(frozen=True)
class DownloadConfig:
    url_template: str = DEFAULT_URL_TEMPLATE
    pools: tuple[str, ...] | None = None  # None: every pool
    limit: int | None = None  # at most this many clips attempted in this run
    concurrency: int = defaults.DOWNLOAD_CONCURRENCY
    video_pools: tuple[str, ...] = VIDEO_POOLS  # these pools also get the video stream
    fetch: FetchOptions = field(default_factory=FetchOptions)
    max_attempts: int = 3  # tries per clip per run for transient failures
    backoff_base_s: float = 2.0
    backoff_max_s: float = 60.0
    requests_per_s: float | None = defaults.REQUESTS_PER_S  # per host; None: no limit
    duration_tolerance_s: float = 0.5
    span: str = defaults.DOWNLOAD_SPAN  # auto | segment | window | full
    window_s: float = defaults.SPAN_WINDOW_S  # span=window: seconds kept around the segment
    max_duration_s: float | None = defaults.MAX_AUDIO_S  # window/full: longest audio kept (None: no cap)
    retry_failed: bool = False  # also retry clips whose latest failure is permanent
    flush_every: int = 200
    flush_interval_s: float = 30.0

    def __post_init__(self) -> None:
        if self.url_template.count("{ytid}") != 1 or self.url_template.replace("{ytid}", "").count("{"):
            raise M2UGenError(f"URL template must contain {{ytid}} exactly once and no other braces: {self.url_template!r}")
        if self.concurrency < 1 or self.max_attempts < 1:
            raise M2UGenError("concurrency and max_attempts must be >= 1")
        if self.span not in ("auto", *SPANS):
            raise M2UGenError(f"unknown span {self.span!r}; expected auto, {', '.join(SPANS)}")
        if self.window_s <= 0 or (self.max_duration_s is not None and self.max_duration_s <= 0):
            raise M2UGenError("window and max duration must be positive seconds")
        unknown = (set(self.pools or ()) | set(self.video_pools)) - set(POOLS)
        if unknown:
            raise M2UGenError(f"unknown pools {sorted(unknown)}; expected some of {POOLS}")

    def url_for(self, ytid: str) -> str:
        return self.url_template.replace("{ytid}", validate_ytid(ytid))

    def span_for(self, pool: str) -> Span:
        """What is fetched for a clip of ``pool`` (``auto``: the paper's choice for that dataset)."""
        kind = PAPER_SPANS.get(pool, "segment") if self.span == "auto" else self.span
        return Span(kind, self.window_s, self.max_duration_s)


@dataclass(frozen=True)
class Job:
    clip_id: str
    ytid: str
    start_s: float
    end_s: float
    pool: str
    prev_attempts: int


@dataclass
class DownloadSummary:
    planned: int = 0
    skipped_done: int = 0
    skipped_permanent: int = 0
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by error class
    attempts: int = 0
    elapsed_s: float = 0.0
    batches: list[str] = field(default_factory=list)
    claimed_elsewhere: int = 0  # planned, but another live run had claimed them (claims.py)
    claimed_by: str = ""  # who holds them (WorkClaims.holders_note)

    @property
    def clips_per_s(self) -> float:
        done = self.ok + sum(self.failed.values())
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0


def plan_downloads(wh: Warehouse, config: DownloadConfig) -> tuple[list[Job], DownloadSummary]:
    """The clips this run must attempt, in clip id order, and how many it skips and why."""
    where = None
    if config.pools:
        where = "pool IN (" + ", ".join(f"'{p}'" for p in config.pools if p in POOLS) + ")"
    segments = wh.read("segments", where=where).select(["clip_id", "ytid", "start_s", "end_s", "pool"])
    segments = segments.sort_by("clip_id").to_pylist()  # the same order on every run
    latest = {r["clip_id"]: r for r in wh.read("clips").to_pylist()}
    summary = DownloadSummary()
    jobs: list[Job] = []
    for seg in segments:
        prev = latest.get(seg["clip_id"])
        if prev is not None:
            same_span = (prev.get("span") or "segment") == config.span_for(seg["pool"]).kind
            if prev["status"] == "ok" and same_span and _files_present(wh, prev, seg["pool"] in config.video_pools):
                summary.skipped_done += 1
                continue
            if prev["status"] != "ok" and prev["error_class"] in (PERMANENT, INVALID) and not config.retry_failed:
                summary.skipped_permanent += 1
                continue
        if config.limit is not None and len(jobs) >= config.limit:
            break
        jobs.append(Job(seg["clip_id"], seg["ytid"], seg["start_s"], seg["end_s"], seg["pool"], prev["attempts"] if prev else 0))
    summary.planned = len(jobs)
    return jobs, summary


def download_clips(
    wh: Warehouse,
    config: DownloadConfig,
    *,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_plan: Callable[[DownloadSummary], None] | None = None,
) -> DownloadSummary:
    """Fetch every planned clip with ``config.concurrency`` workers; returns counts for the run."""
    t0 = time.monotonic()
    if config.fetch.ffmpeg is not None and shutil.which(config.fetch.ffmpeg) is None:
        raise M2UGenError(f"ffmpeg not found or not executable: {config.fetch.ffmpeg}")
    fast_ffmpeg()  # no ffmpeg at all: fail now with an install hint, not once per clip
    claims = WorkClaims(wh.root, "download")  # before the plan (claims.py): concurrent runs divide the clips
    jobs, summary = plan_downloads(wh, config)
    if on_plan is not None:
        on_plan(summary)
    limiter = HostRateLimiter(config.requests_per_s)
    local = threading.local()

    def work(job: Job) -> dict[str, Any]:
        if not hasattr(local, "fetcher"):
            local.fetcher = Fetcher(config.fetch)
        return fetch_clip(wh, job, config, local.fetcher, limiter)

    with claims, _ManifestWriter(wh, config) as writer, ThreadPoolExecutor(config.concurrency, "m2ugen-dl") as pool:
        for row in _bounded_map(pool, work, claims.take(jobs, key=lambda j: j.clip_id), 2 * config.concurrency):
            writer.add(row)
            summary.attempts += row["_attempts_now"]
            if row["status"] == "ok":
                summary.ok += 1
            else:
                summary.failed[row["error_class"]] += 1
            if on_result is not None:
                on_result(row)
        writer.flush()
        claims.finish()  # every clip taken has its row in the manifest now
        summary.batches = writer.batches
        summary.claimed_elsewhere, summary.claimed_by = claims.skipped, claims.holders_note()
    summary.elapsed_s = time.monotonic() - t0
    return summary


def fetch_clip(wh: Warehouse, job: Job, config: DownloadConfig, fetcher: Fetcher, limiter: HostRateLimiter) -> dict[str, Any]:
    """Try one clip up to ``max_attempts`` times; always returns a ``clips`` row (plus ``_attempts_now``)."""
    try:
        if validate_ytid(job.ytid) != ytid_of(job.clip_id) or not (0 <= job.start_s < job.end_s):
            raise InvalidIdError(f"segment {job.clip_id!r} does not match ytid {job.ytid!r} / {job.start_s}-{job.end_s} s")
    except InvalidIdError as e:
        return _row(job, "failed", INVALID, str(e), 0)
    url = config.url_for(job.ytid)
    audio = wh.media_path("audio", job.clip_id, "flac")
    video = wh.media_path("video", job.clip_id, "mp4") if job.pool in config.video_pools else None
    host = urlsplit(url).hostname or ""
    n = 0
    while True:
        n += 1
        try:
            return _attempt(wh, job, config, fetcher, limiter, url, host, audio, video, n)
        except Failure as f:
            failure = f
        except Exception as e:  # noqa: BLE001 - one odd clip must not stop a million-clip run
            failure = Failure(TRANSIENT, one_line(f"{type(e).__name__}: {e}"))
        if failure.error_class != TRANSIENT or n >= config.max_attempts:
            return _row(job, "failed", failure.error_class, failure.message, n)
        time.sleep(backoff_s(n, config.backoff_base_s, config.backoff_max_s))


def _attempt(
    wh: Warehouse, job: Job, config: DownloadConfig, fetcher: Fetcher, limiter: HostRateLimiter,
    url: str, host: str, audio: Path, video: Path | None, n: int,
) -> dict[str, Any]:
    span, tol = config.span_for(job.pool), config.duration_tolerance_s
    remove_temps(audio)  # this run holds the clip's claim: any temporary here is a killed run's
    if video is not None:
        remove_temps(video)
    with contextlib.ExitStack() as stack:
        a_tmp = stack.enter_context(atomic_path(audio))
        limiter.wait(host)
        section = fetcher.audio(url, job.ytid, job.start_s, job.end_s, a_tmp, span)
        info = verify_audio(a_tmp, expected_length(job, span, section, tol), config.fetch.sample_rate)
        if video is not None:
            v_tmp = stack.enter_context(atomic_path(video))
            limiter.wait(host)
            v_section = fetcher.video(url, job.ytid, job.start_s, job.end_s, v_tmp, span)
            verify_video(v_tmp, expected_length(job, span, v_section, tol), config.fetch.max_height)
    row = _row(job, "ok", None, None, n)
    row.update(
        span=span.kind,
        span_start_s=section.start_s,
        audio_path=audio.relative_to(wh.root).as_posix(),
        video_path=video.relative_to(wh.root).as_posix() if video is not None else None,
        duration_s=info.duration_s,
        sample_rate=info.sample_rate,
        bytes=info.bytes,
        sha256=info.sha256,
    )
    return row


def _row(job: Job, status: str, error_class: str | None, error: str | None, attempts_now: int) -> dict[str, Any]:
    return {
        "clip_id": job.clip_id,
        "status": status,
        "error_class": error_class,
        "error": error,
        "attempts": job.prev_attempts + attempts_now,
        "audio_path": None,
        "video_path": None,
        "duration_s": None,
        "sample_rate": None,
        "bytes": None,
        "sha256": None,
        "span": None,
        "span_start_s": None,
        "updated_at": utc_now(),
        "_attempts_now": attempts_now,
    }


def expected_length(job: Job, span: Span, section: Section, tolerance_s: float) -> Expected:
    """How long the stored file must be: the segment exactly; else everything from the section start to the
    first of the section end, the video's end and the cap when the video's length is known, or at least up to
    the segment's end when it is not (a server that states no length)."""
    if span.kind == "segment":
        return Expected.around(job.end_s - job.start_s, tolerance_s)
    cap_end = section.start_s + span.max_duration_s if span.max_duration_s else None
    ends = [e for e in (section.end_s, section.source_s, cap_end) if e is not None]
    upper = min(ends) - section.start_s if ends else math.inf
    if section.source_s is not None:
        return Expected.around(upper, tolerance_s)
    return Expected(job.end_s - section.start_s - tolerance_s, upper + tolerance_s)


def _files_present(wh: Warehouse, row: dict[str, Any], needs_video: bool) -> bool:
    if not row["audio_path"] or not wh.abspath(row["audio_path"]).is_file():
        return False
    return not needs_video or bool(row["video_path"]) and wh.abspath(row["video_path"]).is_file()


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with +-50 % jitter, so workers that failed together do not retry together."""
    return min(max_s, base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


class HostRateLimiter:
    """Space request starts to at most ``rate`` per second per host, across all worker threads."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class _ManifestWriter:
    """Buffer ``clips`` rows and write them as numbered batches of this run."""

    def __init__(self, wh: Warehouse, config: DownloadConfig) -> None:
        self.wh, self.every, self.interval = wh, config.flush_every, config.flush_interval_s
        self.run_id = unique_batch_id("download")  # host + pid + random: many downloaders, one warehouse
        self.rows: list[dict[str, Any]] = []
        self.batches: list[str] = []
        self.last = time.monotonic()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append({k: v for k, v in row.items() if not k.startswith("_")})
        if len(self.rows) >= self.every or time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            batch_id = f"{self.run_id}-{len(self.batches):05d}"
            self.wh.write_batch("clips", self.rows, batch_id)
            self.batches.append(batch_id)
            self.rows = []
        self.last = time.monotonic()

    def __enter__(self) -> _ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()  # also on Ctrl-C: what finished is kept


def _bounded_map(pool: ThreadPoolExecutor, fn: Callable[[Job], dict[str, Any]], jobs: list[Job], window: int) -> Iterator[dict[str, Any]]:
    """Results in completion order, with at most ``window`` jobs submitted at a time (a million futures
    would hold a million closures in memory)."""
    it = iter(jobs)
    pending: set[Future[dict[str, Any]]] = set()
    try:
        for job in it:
            pending.add(pool.submit(fn, job))
            if len(pending) >= window:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
    finally:
        for f in pending:
            f.cancel()
