"""Where the ontology and segment lists come from: a local path, a URL, or a short official name.

A URL is fetched once into ``<warehouse>/cache/`` (temporary name, then rename) and reused afterwards, so a
rerun works offline and every machine reads the same bytes; a local path is used in place.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from m2ugen_data.atomic import atomic_path
from m2ugen_data.errors import M2UGenError
from m2ugen_data.warehouse import default_root

ONTOLOGY_URL = "https://raw.githubusercontent.com/audioset/ontology/master/ontology.json"
_CSV_BASE = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv"
SEGMENT_URLS = {
    "balanced_train": f"{_CSV_BASE}/balanced_train_segments.csv",
    "eval": f"{_CSV_BASE}/eval_segments.csv",
    "unbalanced_train": f"{_CSV_BASE}/unbalanced_train_segments.csv",
}
_URL_RE = re.compile(r"^https?://", re.IGNORECASE)


class SourceError(M2UGenError):
    """A source file that cannot be found or fetched."""


def is_url(value: str | Path) -> bool:
    return isinstance(value, str) and bool(_URL_RE.match(value))


def segments_location(value: str) -> str:
    """An official list name (``balanced_train``, ``eval``, ``unbalanced_train``) or the value unchanged."""
    return SEGMENT_URLS.get(value, value)


def resolve_source(path_or_url: str | Path, cache_dir: Path | None = None, *, timeout_s: float = 60.0) -> Path:
    """A local file for ``path_or_url``; URLs are downloaded on first use into ``cache_dir``."""
    if not is_url(path_or_url):
        path = Path(path_or_url).expanduser()
        if not path.is_file():
            raise SourceError(f"no such file: {path}")
        return path
    url = str(path_or_url)
    cache_dir = cache_dir if cache_dir is not None else default_root() / "cache"
    target = cache_dir / cache_name(url)
    if target.is_file():
        return target
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout_s) as resp:
            if resp.status_code != 200:
                raise SourceError(f"cannot download {url}: HTTP {resp.status_code}")
            with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                fh.writelines(resp.iter_bytes(1 << 20))
    except httpx.HTTPError as e:
        raise SourceError(f"cannot download {url}: {type(e).__name__}: {e}") from e
    except OSError as e:
        raise SourceError(f"cannot write {target}: {e.strerror or e}") from e
    return target


def cache_name(url: str) -> str:
    """``<12 hex of sha256(url)>-<last path part>``: readable, and two URLs never share a file."""
    tail = re.sub(r"[^A-Za-z0-9_.-]", "_", url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]) or "download"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{tail.lstrip('.')[:80]}"
