"""A warehouse whose path holds glob characters (``[v2]``, ``*``, ``?``) or a backslash: ``catalog``, ``compact``
and ``sql`` read exactly its own files (never a sibling's that the path matches as a pattern), print the path
as it is (not as rich markup), and write a catalog an external DuckDB client can query."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from cli_main import run_main

from m2ugen_data.warehouse import Warehouse, open_warehouse, utc_now


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, wh: Warehouse, *args: str) -> tuple[int, str, str]:
    return run_main(monkeypatch, capsys, wh.root, *args)


def fill(wh: Warehouse, n: int, prefix: str = "y") -> None:
    for b in range(n):
        wh.write_batch("segments", [{
            "clip_id": f"{prefix}{b:010d}_1000", "ytid": f"{prefix}{b:010d}", "start_s": 1.0, "end_s": 11.0,
            "labels": [], "instruments": [], "genres": [], "moods": [], "pool": "muedit", "source": "test",
            "updated_at": utc_now(),
        }], f"segments-{b}")


def external_count(wh: Warehouse, tmp_path: Path) -> int:
    """Rows of ``segments`` as any DuckDB client sees them through catalog.duckdb (opened from a plain path:
    DuckDB cannot open a database whose own path holds '?' or a backslash)."""
    copy = tmp_path / "client" / "catalog.duckdb"
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(wh.root / "catalog.duckdb", copy)
    con = duckdb.connect(str(copy), read_only=True)
    try:
        return con.execute("select count(*) from segments").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize(("name", "sibling"), [
    ("wh[v2]", "whv"),  # [v2] as a pattern matches "whv" and "wh2", never "wh[v2]" itself
    ("wh*", "whX"),
    ("wh?", "whX"),
    ("w\\h", None),
])
def test_catalog_and_compact_in_a_warehouse_whose_path_is_a_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, name: str, sibling: str | None
) -> None:
    wh = open_warehouse(tmp_path / name)
    fill(wh, 3)
    if sibling:
        fill(open_warehouse(tmp_path / sibling), 5, prefix="s")  # rows a pattern-read of wh's path would add

    code, out, err = cli(monkeypatch, capsys, wh, "catalog")
    assert code == 0, err
    assert f"catalog: {wh.root / 'catalog.duckdb'}" in out  # the path as it is, not eaten as markup
    assert external_count(wh, tmp_path) == 3

    code, out, err = cli(monkeypatch, capsys, wh, "compact", "-m", "segments", "--grace-s", "0", "--format", "json")
    assert code == 0, err
    assert '"files_after": 1' in out and '"merged": 3' in out
    assert len(list((wh.root / "manifests" / "segments").glob("*.parquet"))) == 1
    assert external_count(wh, tmp_path) == 3

    code, out, err = cli(monkeypatch, capsys, wh, "sql", "select count(*) as n from segments", "--format", "json")
    assert (code, out.strip()) == (0, '{"n": 3}'), err


def test_catalog_views_see_batches_written_after_it_under_a_bracketed_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The catalog's views read the manifest directory as a (now escaped) pattern, so later batches show up."""
    wh = open_warehouse(tmp_path / "wh[v2]")
    fill(wh, 2)
    code, _, err = cli(monkeypatch, capsys, wh, "catalog")
    assert code == 0, err
    fill(wh, 4)  # rewrites the two batches, adds two
    assert external_count(wh, tmp_path) == 4
