"""Evaluation lists: the AudioSet segments (YouTube ID and time range) that a benchmark tests on.

A model is judged on MusicCaps (text-to-music; MuChoMusic's questions are built from it), and MusicCaps is
AudioSet music, so selecting AudioSet's music subtree would put every MusicCaps segment into training. The
public MusicCaps list ships with the package (``data/musiccaps.csv``, CC BY-SA 4.0, see ``data/NOTICE``) and is
excluded by default; users add their own lists (``--exclude-eval FILE``, the flows' ``exclude_eval``).

A list is a CSV with a header naming the ID column (``ytid``, ``YTID`` or ``youtube_id``) and, optionally, the
time range (``start_s``/``start_seconds``/``start`` and ``end_s``/``end_seconds``/``end``); a row without a
range stands for the whole video. AudioSet's own segment files (``# YTID, start_seconds, ...`` as a comment
header) are read too. A malformed list is refused in one line naming the file and line: a list that is
silently half-read would let the other half into training.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import YTID_RE

BUNDLED = {"musiccaps": "musiccaps.csv"}  # name -> file under m2ugen_data/audioset/data
_ID_COLUMNS = ("ytid", "youtube_id", "yt_id", "video_id")
_START_COLUMNS = ("start_s", "start_seconds", "start")
_END_COLUMNS = ("end_s", "end_seconds", "end")


class EvalListError(M2UGenError):
    """An evaluation list that cannot be used as it is (the message names the file and the line)."""


@dataclass(frozen=True)
class EvalSegment:
    ytid: str
    start_s: float  # NaN with end_s: the whole video
    end_s: float

    @property
    def whole_video(self) -> bool:
        return math.isnan(self.start_s)


@dataclass(frozen=True)
class EvalList:
    name: str  # what rejections and reports call it
    source: str  # the file it was read from
    segments: tuple[EvalSegment, ...]

    @property
    def videos(self) -> frozenset[str]:
        return frozenset(s.ytid for s in self.segments)


def bundled_path(name: str) -> Path:
    """The packaged copy of a bundled list (``musiccaps``)."""
    try:
        return Path(str(resources.files("m2ugen_data.audioset") / "data" / BUNDLED[name]))
    except KeyError:
        raise EvalListError(f"no bundled evaluation list {name!r}; bundled: {', '.join(BUNDLED)}") from None


def load_eval_list(spec: str | Path) -> EvalList:
    """A bundled name (``musiccaps``), ``NAME=PATH``, or a path (named after its file)."""
    text = str(spec)
    if text in BUNDLED:
        return read_eval_list(bundled_path(text), text)
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name:
        return read_eval_list(Path(path), name)
    return read_eval_list(Path(text))


def load_eval_lists(specs: Iterable[str | Path] = (), *, bundled: Sequence[str] = tuple(BUNDLED)) -> list[EvalList]:
    """The bundled lists named in ``bundled`` (default: all, the default every front door shares) plus
    ``specs``; two lists with one name are refused (their rejections could not be told apart)."""
    lists = [load_eval_list(b) for b in bundled] + [load_eval_list(s) for s in specs]
    seen: dict[str, str] = {}
    for lst in lists:
        if lst.name in seen and seen[lst.name] != lst.source:
            raise EvalListError(f"two evaluation lists are named {lst.name!r} ({seen[lst.name]}, {lst.source}); "
                                "name one with NAME=PATH")
        seen[lst.name] = lst.source
    return list({lst.name: lst for lst in lists}.values())


def read_eval_list(path: Path, name: str | None = None) -> EvalList:
    """Parse one list; any bad row is an ``EvalListError`` naming ``path`` and the line."""
    name = name or _name_of(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError:
        raise EvalListError(f"{path}: not a text CSV evaluation list (invalid UTF-8)") from None
    except OSError as e:
        raise EvalListError(f"{path}: cannot read the evaluation list ({e.strerror or e})") from None
    header_at, columns = _header(path, lines)
    segments = []
    for line_no, row in _rows(lines, header_at):
        segments.append(_segment(path, line_no, row, columns))
    if not segments:
        raise EvalListError(f"{path}: no evaluation segments after the header (line {header_at})")
    return EvalList(name, str(path), tuple(segments))


def _name_of(path: Path) -> str:
    stem = path.name.removesuffix(".csv").removesuffix("-public").removesuffix("_segments")
    return stem or "eval"


def _header(path: Path, lines: list[str]) -> tuple[int, tuple[int, int | None, int | None]]:
    """(line number of the header, column of the ID, start, end); the header may be a ``#`` comment
    (AudioSet's files), other comment lines are skipped."""
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cells = [c.strip().lower() for c in next(csv.reader([line.lstrip("#")], skipinitialspace=True), [])]
        idx = next((cells.index(c) for c in _ID_COLUMNS if c in cells), None)
        if idx is not None:
            start = next((cells.index(c) for c in _START_COLUMNS if c in cells), None)
            end = next((cells.index(c) for c in _END_COLUMNS if c in cells), None)
            if (start is None) != (end is None):
                raise EvalListError(f"{path}:{i}: the header names a start column without an end column, or "
                                    "the reverse; give both (start_s, end_s) or neither (whole videos)")
            return i, (idx, start, end)
        if not line.lstrip().startswith("#"):
            break
    raise EvalListError(f"{path}: no header naming a YouTube ID column ({', '.join(_ID_COLUMNS)}) before the "
                        "first row; add one, e.g. 'ytid,start_s,end_s'")


def _rows(lines: list[str], header_at: int) -> Iterable[tuple[int, list[str]]]:
    for i in range(header_at, len(lines)):
        line = lines[i]
        if line.strip() and not line.lstrip().startswith("#"):
            yield i + 1, next(csv.reader([line], skipinitialspace=True), [])


def _segment(path: Path, line_no: int, row: list[str], columns: tuple[int, int | None, int | None]) -> EvalSegment:
    idx, start_col, end_col = columns
    width = max(c for c in columns if c is not None) + 1
    if len(row) < width:
        raise EvalListError(f"{path}:{line_no}: expected at least {width} fields, got {len(row)}")
    ytid = row[idx].strip()
    if not YTID_RE.fullmatch(ytid):
        raise EvalListError(f"{path}:{line_no}: invalid YouTube ID {ytid[:40]!r} (expected 11 characters from "
                            "[A-Za-z0-9_-]); fix or remove the row")
    if start_col is None or end_col is None or not (row[start_col].strip() or row[end_col].strip()):
        return EvalSegment(ytid, math.nan, math.nan)
    try:
        start, end = float(row[start_col]), float(row[end_col])
    except ValueError:
        raise EvalListError(f"{path}:{line_no}: start/end {row[start_col]!r}, {row[end_col]!r} are not numbers "
                            "(leave both empty for a whole video)") from None
    if not (0 <= start < end) or not math.isfinite(end):
        raise EvalListError(f"{path}:{line_no}: bad time range {start:g}..{end:g} (0 <= start < end expected)")
    return EvalSegment(ytid, start, end)


__all__ = ["BUNDLED", "EvalList", "EvalListError", "EvalSegment", "bundled_path", "load_eval_list",
           "load_eval_lists", "read_eval_list"]
