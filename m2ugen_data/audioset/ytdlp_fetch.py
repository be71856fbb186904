"""Fetch one segment through yt-dlp's Python API, straight into its final encoding, in one ffmpeg process.

With ``download_ranges`` set, yt-dlp hands the format URL to ffmpeg with ``-ss/-t`` (and, with
``force_keyframes_at_cuts``, re-encodes instead of stream-copying, so the cut is sample-accurate). We append
our output options to that same ffmpeg call (mono FLAC at the configured rate, or <= 360p H.264 MP4), so a clip
costs one ffmpeg process and no post-processor passes. The trailing ``-f`` overrides the container yt-dlp
picked from the source extension (ffmpeg keeps the last ``-f`` given for an output).

A ``Fetcher`` belongs to one worker thread: ``YoutubeDL`` is not thread-safe, but it is reusable, so each
worker builds its instances once and only swaps the per-clip options (output name, time range).

What is fetched of a video is its ``Span``: the AudioSet segment (``segment``), a window of ``window_s`` seconds
centred on it (``window``), or the whole audio (``full``: no section at all, so ffmpeg reads the stream to its
end). ``max_duration_s`` caps the last two: a video longer than the cap (by its metadata) gets a window of the
cap's length around the segment, and ffmpeg's ``-t`` stops the output at the cap whatever the metadata said.
The section is chosen inside yt-dlp's ``download_ranges`` callback, where the video's duration is known.
ffmpeg runs with ``-xerror``: a decoding error in the source fails the clip (``corrupt``) instead of being
concealed as a shorter or glitched file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yt_dlp
from yt_dlp.extractor import gen_extractor_classes

from m2ugen_data.audioset.failures import CORRUPT, Failure, classify
from m2ugen_data.system import require_ffmpeg

log = logging.getLogger(__name__)

AUDIO_FORMAT = "bestaudio/best"
SPANS = ("segment", "window", "full")
# span=auto: what the paper kept per pool (MUCaps the whole audio of each video, the others the 10 s segment);
# downloads plan by it and selection's evaluation exclusion asks what a download will keep
PAPER_SPANS = {"mucaps": "full", "muedit": "segment", "muimage": "segment", "muvideo": "segment"}


@dataclass(frozen=True)
class Span:
    """What to fetch of a video: its segment, a window around it, or its whole audio (see the module doc)."""

    kind: str = "segment"  # segment | window | full
    window_s: float = 30.0  # window: seconds fetched, centred on the segment
    max_duration_s: float | None = None  # window/full: never more than this many seconds

    def __post_init__(self) -> None:
        if self.kind not in SPANS:
            raise ValueError(f"unknown span {self.kind!r}; expected one of {SPANS}")
        if self.window_s <= 0 or (self.max_duration_s is not None and self.max_duration_s <= 0):
            raise ValueError("window_s and max_duration_s must be positive")


@dataclass(frozen=True)
class Section:
    """The part of the source that was fetched: ``end_s`` None means to the end of the source, whose length
    (``source_s``, from the video's metadata) may be unknown."""

    start_s: float
    end_s: float | None
    source_s: float | None = None


def plan_section(span: Span, start_s: float, end_s: float, source_s: float | None) -> Section:
    """The section of a video to fetch for the segment [start_s, end_s) (``source_s``: its length if known)."""
    if span.kind == "segment":
        return Section(start_s, end_s, source_s)
    cap = span.max_duration_s
    if span.kind == "full" and (cap is None or (source_s is not None and source_s <= cap)):
        return Section(0.0, None, source_s)
    length = span.window_s if span.kind == "window" else float(cap)  # type: ignore[arg-type]
    if cap is not None:
        length = min(length, cap)
    length = max(length, end_s - start_s)  # a window always holds the whole segment
    first = max(0.0, (start_s + end_s) / 2 - length / 2)
    if source_s is not None:
        first = max(0.0, min(first, source_s - length))
    return Section(round(first, 3), round(first + length, 3), source_s)


def fast_ffmpeg() -> str:
    """The ffmpeg binary to cut with: imageio-ffmpeg's static build when installed, else the system one.

    A clip costs one ffmpeg start, and Debian's ffmpeg links ~215 shared libraries: starting it takes
    ~0.09 s of CPU against ~0.01 s for the static build, which is most of a clip's cost (docs/BENCHMARKS.md).
    """
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return require_ffmpeg()


@dataclass(frozen=True)
class FetchOptions:
    ffmpeg: str | None = None  # None: fast_ffmpeg()
    sample_rate: int = 44100
    max_height: int = 360
    cookies: Path | None = None
    proxy: str | None = None
    user_agent: str | None = None
    socket_timeout_s: float = 30.0


class _Log:
    """yt-dlp prints errors to stderr even when quiet; we record them in the manifest instead."""

    def debug(self, msg: str) -> None:
        log.debug(msg)

    info = warning = error = debug


class _YoutubeDL(yt_dlp.YoutubeDL):
    def _forceprint(self, key: str, info_dict: dict[str, Any] | None) -> None:
        """yt-dlp renders the format, thumbnail and subtitle tables at every processing stage even when
        nothing is to be printed (--print); that was ~19 % of our Python time per clip. Skip it then."""
        if (self.params.get("forceprint") or {}).get(key) or (self.params.get("print_to_file") or {}).get(key):
            super()._forceprint(key, info_dict)


class Fetcher:
    def __init__(self, opts: FetchOptions) -> None:
        self.opts = opts
        self._ffmpeg = opts.ffmpeg or fast_ffmpeg()
        self._audio = _YoutubeDL(self._params(AUDIO_FORMAT))
        self._video: _YoutubeDL | None = None  # built on first use: most pools are audio only
        self._extractors: dict[str, str] = {}

    def audio(self, url: str, ytid: str, start_s: float, end_s: float, out: Path, span: Span | None = None) -> Section:
        """Fetch the audio of ``span`` (default: the segment) into ``out`` as mono FLAC; returns what was fetched."""
        args = ["-vn", "-sn", "-dn", "-map_metadata", "-1", "-ac", "1", "-ar", str(self.opts.sample_rate),
                "-c:a", "flac", "-f", "flac"]
        return self._run(self._audio, url, ytid, start_s, end_s, out, args, span or Span())

    def video(self, url: str, ytid: str, start_s: float, end_s: float, out: Path, span: Span | None = None) -> Section:
        h = self.opts.max_height
        if self._video is None:
            self._video = _YoutubeDL(self._params(f"bv*[height<=?{h}]/wv*"))
        args = ["-an", "-sn", "-dn", "-map_metadata", "-1", "-vf", f"scale=-2:'min({h},ih)'", "-c:v", "libx264",
                "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4"]
        return self._run(self._video, url, ytid, start_s, end_s, out, args, span or Span())

    def _run(
        self, ydl: yt_dlp.YoutubeDL, url: str, ytid: str, start_s: float, end_s: float, out: Path, args: list[str],
        span: Span,
    ) -> Section:
        chosen: list[Section] = []
        cap = ["-t", f"{span.max_duration_s:g}"] if span.kind != "segment" and span.max_duration_s else []
        ydl.params["outtmpl"] = {"default": str(out)}
        ydl.params["download_ranges"] = _ranges(span, start_s, end_s, chosen)
        ydl.params["external_downloader_args"] = {"ffmpeg_o": ["-xerror", *cap, *args]}
        try:
            info = ydl.extract_info(url, download=True, ie_key=self._extractor(url, ytid))
        except yt_dlp.utils.YoutubeDLError as e:
            raise classify(e) from e
        if not info or not chosen:
            raise Failure(CORRUPT, f"yt-dlp returned no result for {url}")
        return chosen[-1]

    def _extractor(self, url: str, ytid: str) -> str:
        """The extractor for URLs of this shape, found once: yt-dlp otherwise tries ~1,900 URL patterns per
        clip (~10 % of our Python time per clip), and every URL from one template has the same extractor."""
        shape = url.replace(ytid, "{ytid}")
        if shape not in self._extractors:
            self._extractors[shape] = next(ie.ie_key() for ie in gen_extractor_classes() if ie.suitable(url))
        return self._extractors[shape]

    def _params(self, fmt: str) -> dict[str, Any]:
        # external_downloader ffmpeg: a full-audio fetch has no section, and without one yt-dlp would use its
        # own HTTP downloader and write the source container instead of our FLAC/MP4
        o = self.opts
        params: dict[str, Any] = {
            "format": fmt,
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": _Log(),
            "noplaylist": True,
            "nopart": True,  # our output name is already a hidden temporary name
            "overwrites": True,
            "fixup": "never",
            "force_keyframes_at_cuts": True,
            "socket_timeout": o.socket_timeout_s,
            "ffmpeg_location": self._ffmpeg,
            "external_downloader": {"default": "ffmpeg"},
        }
        if o.cookies is not None:
            params["cookiefile"] = str(o.cookies)
        if o.proxy:
            params["proxy"] = o.proxy
        if o.user_agent:
            params["http_headers"] = {"User-Agent": o.user_agent}
        return params


def _ranges(
    span: Span, start_s: float, end_s: float, chosen: list[Section]
) -> Callable[[dict[str, Any], yt_dlp.YoutubeDL], Iterator[dict[str, float]]]:
    """yt-dlp's ``download_ranges`` callback: plan the section once the video's duration is known, remember it
    in ``chosen``, and yield it (nothing for a whole-audio fetch: yt-dlp then downloads without a section)."""

    def ranges(info: dict[str, Any], _ydl: yt_dlp.YoutubeDL) -> Iterator[dict[str, float]]:
        duration = info.get("duration")
        section = plan_section(span, start_s, end_s, float(duration) if duration else None)
        chosen.append(section)
        if section.end_s is None:
            yield {}
        else:
            yield {"start_time": section.start_s, "end_time": section.end_s}

    return ranges
