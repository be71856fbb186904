"""A damaged dedup cache (``cache/dedup``) is named in one warning line and rebuilt by a full search, whose
groups equal a ``--full`` run's; never a traceback, never links from a damaged file."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.feather as feather
import pytest
from test_dedup import dup_warehouse  # noqa: F401 - the fixture

from m2ugen_data.dedup.groups import find_duplicates


def _groups(wh) -> list[tuple]:
    return sorted((r["clip_id"], r["group_id"], r["canonical"], r["match"]) for r in wh.read("duplicates").to_pylist())


def _far_clip(path) -> None:  # well-formed: an index past the clips it points into
    t = feather.read_table(path)
    clip = pa.array([v + 10**6 for v in t.column("clip").to_pylist()], pa.int64())
    feather.write_feather(t.set_column(1, "clip", clip), path)


def _flipped(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_far_clip, _flipped], ids=["index", "bit"])
def test_a_damaged_dedup_cache_is_named_and_rebuilt(dup_warehouse, caplog, damage) -> None:  # noqa: F811
    wh = dup_warehouse[0]
    find_duplicates(wh)
    expected = _groups(wh)
    damage(wh.root / "cache" / "dedup" / "tokens.arrow")
    with caplog.at_level(logging.WARNING):
        again = find_duplicates(wh)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "tokens.arrow" in warnings[0], warnings
    assert not again.incremental and _groups(wh) == expected
    assert find_duplicates(wh).incremental  # rebuilt whole
