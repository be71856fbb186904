"""Read AudioSet segment lists (``YTID, start_seconds, end_seconds, positive_labels``).

Two spellings circulate: the official files (three ``#`` comment lines, a space after every comma, the label
list quoted) and cleaned copies (a plain header, no spaces). ``csv`` with ``skipinitialspace`` reads both
with one code path. A bad row never stops the read: it becomes a ``Reject`` with its line number, so a
hostile or damaged list is reported in full and the good rows still go through. A quote never runs past its
line (no AudioSet field holds a newline), so an unterminated quote costs one row, not the rows after it.
A file that is not a text CSV at all (binary bytes, or not one usable row) is an error, not a list of rejects.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import YTID_RE

LABEL_RE = re.compile(r"^/[a-z]/[A-Za-z0-9_]+$")
MAX_SEGMENT_S = 60.0  # AudioSet segments are at most 10 s; anything far longer is a damaged row
MAX_START_S = 999_999.0  # a clip id (<YTID>_<start_ms>) holds at most 9 digits of milliseconds
_TEXT_LIMIT = 120
_SNIFF_BYTES = 1 << 20  # enough to tell a binary file from a text one without reading a 2M-row list twice

SEGMENT_LIST_SCHEMA = pa.schema(
    [
        pa.field("ytid", pa.string(), nullable=False),
        pa.field("start_s", pa.float64(), nullable=False),
        pa.field("end_s", pa.float64(), nullable=False),
        pa.field("labels", pa.list_(pa.string()), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class Reject:
    """A row that was not used, with where it was and why."""

    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text!r}"


@dataclass
class SegmentList:
    source: str
    table: pa.Table  # SEGMENT_LIST_SCHEMA
    rejects: list[Reject] = field(default_factory=list)


class SegmentsCsvError(M2UGenError):
    """The file is not a segment list at all (unreadable, wrong header)."""


def source_name(path: str | Path) -> str:
    """``balanced_train_segments.csv`` -> ``balanced_train``: the name recorded in ``segments.source``."""
    stem = Path(str(path)).name.split("?", 1)[0]
    stem = stem.removesuffix(".csv")
    stem = stem.removesuffix("_segments")
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "segments"


def read_segments_csv(path: str | Path, source: str | None = None) -> SegmentList:
    """Parse one segment list; malformed rows and unsafe IDs become ``rejects``, never exceptions."""
    path = Path(path)
    try:
        _require_text(path)
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            seg = parse_segments(fh, source or source_name(path))
    except OSError as e:
        raise SegmentsCsvError(f"cannot read segment list {path}: {e.strerror or e}") from e
    if seg.table.num_rows == 0:
        raise SegmentsCsvError(f"{path}: not a segment list: none of its {len(seg.rejects)} rows is usable "
                               f"(first: {seg.rejects[0]})")
    return seg


def _require_text(path: Path) -> None:
    """A NUL byte or invalid UTF-8 in the first MiB: an archive, an image, a Parquet file given by mistake."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    bad = head.find(b"\0")
    if bad < 0:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _SNIFF_BYTES)
        except UnicodeDecodeError as e:
            bad = e.start
    if bad >= 0:
        raise SegmentsCsvError(f"{path}: not a CSV segment list (binary data at byte {bad})")


def parse_segments(fh: io.TextIOBase, source: str) -> SegmentList:
    """Split rows in Python (the ``csv`` module is C), then validate whole columns with Arrow compute.

    A per-row Python validator took ~18 s for the 2M-row unbalanced list; columnar checks bring the whole
    read to a few seconds, and only the (rare) rejected rows are looked at one by one for their reason.
    """
    raw: tuple[list[str], ...] = ([], [], [], [])
    lines: list[int] = []
    rejects: list[Reject] = []
    for line_no, row in _rows(fh, rejects):
        if not row or row[0].startswith("#") or (row[0] == "YTID" and not lines):
            continue
        if len(row) != 4:
            rejects.append(Reject(line_no, f"expected 4 fields, got {len(row)}", _clip(",".join(row))))
            continue
        for col, value in zip(raw, row):
            col.append(value)
        lines.append(line_no)
    if not lines and not rejects:
        raise SegmentsCsvError(f"segment list {source!r} has no rows")
    table, bad = _validate(*(pa.array(c, pa.string()) for c in raw), pa.array(lines, pa.int64()))
    rejects.extend(bad)
    rejects.sort(key=lambda r: r.line)
    return SegmentList(source, table, rejects)


def _rows(fh: io.TextIOBase, rejects: list[Reject]) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` per physical line. One C ``csv.reader`` does the splitting (fast); when it
    pulled more than one line for a record (a quote left open), the first line is rejected and the lines it
    swallowed are parsed again one by one."""
    taken: list[tuple[int, str]] = []  # the lines the reader consumed for the current record

    def feed() -> Iterator[str]:
        for item in enumerate(fh, 1):
            taken.append(item)
            yield item[1]

    reader = csv.reader(feed(), skipinitialspace=True)
    while True:
        taken.clear()
        try:
            row = next(reader)
        except StopIteration:
            row = None
        except csv.Error as e:
            row = e
        if len(taken) > 1 or (row is None and taken):
            for line_no, line in list(taken):  # the first line opened the quote; re-read each on its own
                fields = next(csv.reader([line], skipinitialspace=True), [])
                if fields and fields[-1].endswith(("\n", "\r")):  # the quote is still open at the line end
                    rejects.append(Reject(line_no, "unterminated quote", _clip(line.rstrip("\r\n"))))
                else:
                    yield line_no, fields
        elif isinstance(row, csv.Error):
            rejects.append(Reject(taken[-1][0] if taken else reader.line_num, f"unparsable row ({row})", ""))
        elif row is not None:
            yield taken[-1][0] if taken else reader.line_num, row
        if row is None:
            return


def _validate(
    ytid: pa.Array, start: pa.Array, end: pa.Array, label_text: pa.Array, line: pa.Array
) -> tuple[pa.Table, list[Reject]]:
    n = len(ytid)
    ytid_ok = pc.match_substring_regex(ytid, YTID_RE.pattern).to_numpy(zero_copy_only=False)
    s = _to_float(start)
    e = _to_float(end)
    with np.errstate(invalid="ignore"):
        time_ok = (s >= 0.0) & (s <= MAX_START_S) & (e > s) & (e <= s + MAX_SEGMENT_S)
    parts = pc.split_pattern(label_text, ",")
    flat = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    label_bad = ~pc.match_substring_regex(flat, LABEL_RE.pattern).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(parts).to_numpy()
    labels_ok = np.bincount(parents[label_bad], minlength=n) == 0
    labels_ok &= pc.list_value_length(parts).to_numpy(zero_copy_only=False) > 0
    ok = ytid_ok & time_ok & labels_ok
    labels = pa.ListArray.from_arrays(parts.offsets, flat)
    keep = pa.array(ok)
    table = pa.Table.from_arrays(
        [ytid.filter(keep), pa.array(s[ok]), pa.array(e[ok]), labels.filter(keep), line.filter(keep)],
        schema=SEGMENT_LIST_SCHEMA,
    )
    rejects = []
    for i in np.flatnonzero(~ok):
        text = f"{ytid[i].as_py()},{start[i].as_py()},{end[i].as_py()},{label_text[i].as_py()}"
        if not ytid_ok[i]:
            reason, text = "invalid YouTube ID (expected 11 characters from [A-Za-z0-9_-])", ytid[i].as_py()
        elif not time_ok[i]:
            reason = "bad time range (numbers with 0 <= start < end <= start + 60 expected)"
        else:
            reason = "missing or malformed label ids"
        rejects.append(Reject(int(line[i].as_py()), reason, _clip(text)))
    return table, rejects


def _to_float(col: pa.Array) -> np.ndarray:
    """Strings to float64 with NaN for anything that is not a plain decimal number."""
    ok = pc.match_substring_regex(col, r"^[0-9]+(\.[0-9]*)?$")
    cleaned = pc.if_else(ok, col, pa.scalar("nan"))
    return pc.cast(cleaned, pa.float64()).to_numpy(zero_copy_only=False)


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."
