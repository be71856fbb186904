"""Sort a failed download into transient, permanent or corrupt, so reruns retry only what can succeed.

yt-dlp reports everything as ``DownloadError`` with a message; the original exception (an HTTP status, a
network error, an extractor's "Video unavailable") rides along in ``exc_info``. We look at the exception
chain first (status codes are unambiguous) and fall back to the message text for YouTube's wording.
"""

from __future__ import annotations

import re

TRANSIENT = "transient"  # network, 5xx, throttling: retried with backoff in this run and on the next
PERMANENT = "permanent"  # unavailable, private, removed, restricted, no such format: skipped on reruns
CORRUPT = "corrupt"  # the media arrived but failed to decode or has the wrong duration: retried on reruns
INVALID = "invalid"  # an ID or time range unsafe or impossible to fetch: never attempted

PERMANENT_STATUS = frozenset({404, 410, 451})
# 403 is not here: YouTube answers 403 for expired or throttled format URLs, which a later try fixes.

_PERMANENT_TEXT = re.compile(
    r"video unavailable|private video|has been removed|no longer available|account associated with this video"
    r"|terminated|copyright|confirm your age|age[- ]restricted|inappropriate for some users"
    r"|not available in your country|not made this video available|geo[- ]?restrict|blocked it in your country"
    r"|requested format is not available|unsupported url|members[- ]only|join this channel"
    r"|this live event will begin|premieres in|is not a valid url|does not exist",
    re.IGNORECASE,
)
_TRANSIENT_TEXT = re.compile(
    r"timed? ?out|temporar|too many requests|rate[- ]?limit|try again later|not a bot|connection|reset by peer"
    r"|network is unreachable|name resolution|getaddrinfo|http error 5\d\d|http error 429|incomplete read",
    re.IGNORECASE,
)
_FFMPEG_FAILED = re.compile(r"ffmpeg exited with code", re.IGNORECASE)


class Failure(Exception):
    """A classified failure with a one-line message for the ``clips`` manifest."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(error_class, message)
        self.error_class = error_class
        self.message = message

    def __str__(self) -> str:
        return f"{self.error_class}: {self.message}"


def classify(exc: BaseException) -> Failure:
    """The class of a failed yt-dlp call (``DownloadError`` or anything it wraps)."""
    message = one_line(str(exc))
    for e in _chain(exc):
        status = getattr(e, "status", None) or getattr(getattr(e, "response", None), "status", None)
        if isinstance(status, int) and status >= 400:
            if status in PERMANENT_STATUS:
                return Failure(PERMANENT, message)
            return Failure(TRANSIENT, message)
        if type(e).__name__ == "GeoRestrictedError" or type(e).__name__ == "UnsupportedError":
            return Failure(PERMANENT, message)
    if _TRANSIENT_TEXT.search(message):
        return Failure(TRANSIENT, message)
    if _PERMANENT_TEXT.search(message):
        return Failure(PERMANENT, message)
    if _FFMPEG_FAILED.search(message):
        # ffmpeg could not read or cut what the server sent: undecodable media as far as we can tell
        # (its stderr is not ours to read); a rerun tries again in case the stream was cut short.
        return Failure(CORRUPT, message)
    for e in _chain(exc):
        if type(e).__name__ == "ExtractorError" and getattr(e, "expected", False):
            return Failure(PERMANENT, message)  # an extractor's own "this video is not available" kind
    return Failure(TRANSIENT, message)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what yt-dlp wrapped in it (exc_info, cause) and the Python cause chain."""
    out: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(out) < 16:
        e = todo.pop(0)
        if e is None or any(e is seen for seen in out):
            continue
        out.append(e)
        info = getattr(e, "exc_info", None)
        if isinstance(info, tuple) and len(info) > 1 and isinstance(info[1], BaseException):
            todo.append(info[1])
        cause = getattr(e, "cause", None)
        todo.extend(x for x in (cause if isinstance(cause, BaseException) else None, e.__cause__) if x is not None)
    return out


def one_line(text: str, limit: int = 300) -> str:
    """yt-dlp messages carry ANSI colours, 'ERROR:' prefixes and newlines; the manifest wants one line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = re.sub(r"^(?:ERROR:\s*)+", "", text.strip())
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
