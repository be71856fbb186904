"""System binaries the pipeline shells out to (never through a shell)."""

from __future__ import annotations

import functools
import shutil

from m2ugen_data.errors import MissingDependencyError


@functools.cache
def require_ffmpeg() -> str:
    """Path of the ffmpeg binary, or a one-line error saying how to install it."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise MissingDependencyError(
            "ffmpeg not found on PATH: yt-dlp and media cutting need it "
            "(Debian/Ubuntu: 'apt-get install ffmpeg'; `make setup` installs it when run as root)"
        )
    return path
