"""Bad segment lists: a file that is not a CSV is an error (non-zero exit, nothing written); an unterminated quote
costs its own row only; every rejected row is stored in ``segment_rejects``."""

from __future__ import annotations

import gzip
import os

from typer.testing import CliRunner

from m2ugen_data.audioset.segments_csv import read_segments_csv
from m2ugen_data.audioset.selection import select_segments
from m2ugen_data.cli import app

HEADER = "# comment\n# comment\n# YTID, start_seconds, end_seconds, positive_labels\n"
GOOD = ['--PJHxphWEs, 30.000, 40.000, "/m/04rlf,/t/dd00088"\n', '-0FHUc78Gqo, 30.000, 40.000, "/m/04rlf"\n']


def test_a_binary_file_as_segments_is_an_error_and_writes_nothing(tmp_path, warehouse):
    binary = tmp_path / "balanced_train_segments.csv"
    binary.write_bytes(gzip.compress(os.urandom(1 << 16)))  # e.g. the .csv.gz saved under the .csv name
    res = CliRunner().invoke(app, ["--warehouse", str(warehouse.root), "audioset", "select", "--segments", str(binary)])
    assert res.exit_code != 0
    assert "not a CSV" in str(res.exception or res.output) and str(binary) in str(res.exception or res.output)
    assert not warehouse.manifest_files("segments") and not warehouse.manifest_files("segment_rejects")


def test_an_unterminated_quote_does_not_swallow_the_next_good_row(tmp_path):
    csv = tmp_path / "quotes_segments.csv"
    csv.write_text(HEADER + GOOD[0] + '--ZhevVpy1s, 50.000, 60.000, "/m/04rlf\n' + GOOD[1])  # line 5 unterminated
    seg = read_segments_csv(csv)
    assert seg.table.column("ytid").to_pylist() == ["--PJHxphWEs", "-0FHUc78Gqo"]
    assert seg.table.column("line").to_pylist() == [4, 6]
    assert [(r.line, r.reason) for r in seg.rejects] == [(5, "unterminated quote")]


def test_every_rejected_row_is_stored_with_its_line_and_reason(tmp_path, warehouse):
    bad = [f"bad{i:08d}!, 0.000, 10.000, \"/m/04rlf\"\n" for i in range(25)]  # '!': not a YouTube ID
    csv = tmp_path / "many_segments.csv"
    csv.write_text(HEADER + GOOD[0] + "".join(bad) + GOOD[1])
    (report,) = select_segments(warehouse, [csv])
    stored = warehouse.connect().execute(
        "SELECT batch_id, source, line, reason, text FROM segment_rejects ORDER BY line").fetchall()
    assert [r[2] for r in stored] == list(range(5, 30)) == [r.line for r in report.rejects]
    assert {r[0] for r in stored} == {report.batch_id} and {r[1] for r in stored} == {"many"}
    assert all("invalid YouTube ID" in r[3] for r in stored) and stored[0][4] == "bad00000000!"
    select_segments(warehouse, [csv])  # a rerun replaces the batch: no duplicates
    assert warehouse.connect().execute("SELECT count(*) FROM segment_rejects").fetchone()[0] == 25
