"""Fetch one segment through yt-dlp's Python API, straight into its final encoding, in one ffmpeg process.

With ``download_ranges`` set, yt-dlp hands the format URL to ffmpeg with ``-ss/-t`` (and, with
``force_keyframes_at_cuts``, re-encodes instead of stream-copying, so the cut is sample-accurate). We append
our output options to that same ffmpeg call (mono FLAC at the configured rate, or <= 360p H.264 MP4), so a clip
costs one ffmpeg process and no post-processor passes. The trailing ``-f`` overrides the container yt-dlp
picked from the source extension (ffmpeg keeps the last ``-f`` given for an output).

A ``Fetcher`` belongs to one worker thread: ``YoutubeDL`` is not thread-safe, but it is reusable, so each
worker builds its instances once and only swaps the per-clip options (output name, time range).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yt_dlp
from yt_dlp.extractor import gen_extractor_classes
from yt_dlp.utils import download_range_func

from m2ugen_data.audioset.failures import CORRUPT, Failure, classify
from m2ugen_data.system import require_ffmpeg

log = logging.getLogger(__name__)

AUDIO_FORMAT = "bestaudio/best"


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

    def audio(self, url: str, ytid: str, start_s: float, end_s: float, out: Path) -> None:
        args = ["-vn", "-sn", "-dn", "-map_metadata", "-1", "-ac", "1", "-ar", str(self.opts.sample_rate),
                "-c:a", "flac", "-f", "flac"]
        self._run(self._audio, url, ytid, start_s, end_s, out, args)

    def video(self, url: str, ytid: str, start_s: float, end_s: float, out: Path) -> None:
        h = self.opts.max_height
        if self._video is None:
            self._video = _YoutubeDL(self._params(f"bv*[height<=?{h}]/wv*"))
        args = ["-an", "-sn", "-dn", "-map_metadata", "-1", "-vf", f"scale=-2:'min({h},ih)'", "-c:v", "libx264",
                "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4"]
        self._run(self._video, url, ytid, start_s, end_s, out, args)

    def _run(
        self, ydl: yt_dlp.YoutubeDL, url: str, ytid: str, start_s: float, end_s: float, out: Path, args: list[str]
    ) -> None:
        ydl.params["outtmpl"] = {"default": str(out)}
        ydl.params["download_ranges"] = download_range_func(None, [(start_s, end_s)])
        ydl.params["external_downloader_args"] = {"ffmpeg_o": args}
        try:
            info = ydl.extract_info(url, download=True, ie_key=self._extractor(url, ytid))
        except yt_dlp.utils.YoutubeDLError as e:
            raise classify(e) from e
        if not info:
            raise Failure(CORRUPT, f"yt-dlp returned no result for {url}")

    def _extractor(self, url: str, ytid: str) -> str:
        """The extractor for URLs of this shape, found once: yt-dlp otherwise tries ~1,900 URL patterns per
        clip (~10 % of our Python time per clip), and every URL from one template has the same extractor."""
        shape = url.replace(ytid, "{ytid}")
        if shape not in self._extractors:
            self._extractors[shape] = next(ie.ie_key() for ie in gen_extractor_classes() if ie.suitable(url))
        return self._extractors[shape]

    def _params(self, fmt: str) -> dict[str, Any]:
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
        }
        if o.cookies is not None:
            params["cookiefile"] = str(o.cookies)
        if o.proxy:
            params["proxy"] = o.proxy
        if o.user_agent:
            params["http_headers"] = {"User-Agent": o.user_agent}
        return params
