"""A converter's source JSON, read within bounds: a size cap, a nesting cap, one record at a time.

``json.load`` builds the whole document as Python objects, about 15 times the file's size (a 200 MB file
peaked at 3 GB), and recurses once per nesting level, so 200 KB of ``[`` ended in a ``RecursionError``. The
public layouts are a few levels deep and hold their records in one or two arrays, so the file is read with
ijson's event parser (yajl, in C, no recursion) in two passes: ``check_json`` goes through the whole file
building nothing (its syntax, its depth, which of the wanted arrays are there), so a truncated or hostile
file is refused with one line before any shard is written; ``json_items`` then yields the records of one
array one at a time. The size cap stays because a file far larger than any public one is more likely a
mistake than a dataset; ``--max-json-mb`` raises it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from m2ugen_data.convert.common import ConvertError

MAX_JSON_MB = 256  # the largest public source (COCO captions_train2017.json) is about 90 MB
MAX_JSON_DEPTH = 64  # the layouts read go four levels deep (list, record, conversation, turn)
_OPEN, _CLOSE = {"start_map", "start_array"}, {"end_map", "end_array"}


def check_json(path: Path, arrays: Sequence[str], *, max_mb: int = MAX_JSON_MB) -> set[str]:
    """Which of ``arrays`` (ijson prefixes: ``""`` the top-level value, ``"images"`` a top-level key) are JSON
    arrays in ``path``, after reading it all once; ``ConvertError`` (one line) when it is over ``max_mb``,
    not JSON, or nested deeper than ``MAX_JSON_DEPTH``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConvertError(f"{path}: {exc.strerror or exc}") from None
    if size > max_mb << 20:
        raise ConvertError(f"{path}: {size / 2**20:.1f} MB is over the {max_mb} MB limit for a source JSON "
                           "(raise it with --max-json-mb)")
    wanted, found = set(arrays), set()
    with _open(path) as fh:
        for prefix, event, _ in _events(path, fh):
            if event == "start_array" and prefix in wanted:
                found.add(prefix)
    return found


def json_items(path: Path, array: str) -> Iterator[Any]:
    """The items of the array ``array`` (as in ``check_json``, which must have found it), one at a time."""
    with _open(path) as fh:
        yield from ijson.items(_events(path, fh), f"{array}.item" if array else "item")


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConvertError(f"{path}: {exc.strerror or exc}") from None


def _events(path: Path, fh: BinaryIO) -> Iterator[tuple[str, str, Any]]:
    """ijson's ``(prefix, event, value)`` events, the depth checked before any prefix is built: yajl's own
    prefixed events spell the whole path of each, which on 200 KB of ``[`` is quadratic work."""
    return ijson.parse(_bounded(path, ijson.basic_parse(fh, use_float=True)))


def _bounded(path: Path, events: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    depth = 0
    for event, value in _parse_errors(path, events):
        if event in _OPEN:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ConvertError(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH} levels (the layouts "
                                   "read go four deep)")
        elif event in _CLOSE:
            depth -= 1
        yield event, value


def _parse_errors(path: Path, items: Iterable[Any]) -> Iterator[Any]:
    try:
        yield from items
    except ijson.JSONError as exc:
        first = exc.args[0] if exc.args else exc
        if isinstance(first, bytes):
            first = first.decode("utf-8", "replace")
        raise ConvertError(f"{path}: not valid JSON ({str(first).splitlines()[0].strip()})") from None
    except OSError as exc:
        raise ConvertError(f"{path}: {exc.strerror or exc}") from None
