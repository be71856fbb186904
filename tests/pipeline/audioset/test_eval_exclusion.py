"""Evaluation lists kept out of training: the bundled MusicCaps list by default, users' lists added, the whole
video for whole-audio pools and overlap otherwise, every exclusion a recorded rejection with the list's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.audioset.selection import DEFAULT_PROPORTIONS, pool_of, select_segments
from m2ugen_data.cli import app
from m2ugen_data.audioset.evallists import EvalListError, load_eval_list, read_eval_list
from m2ugen_data.audioset.eval_exclusion import EvalExclusion, make_exclusion

MUSIC = "/m/04rlf"


@pytest.fixture(scope="module")
def musiccaps():
    return load_eval_list("musiccaps")


def _video_in(musiccaps, pool: str, nth: int = 0):
    """The nth MusicCaps segment whose video the pool hash puts in ``pool``."""
    found = [s for s in musiccaps.segments if pool_of(s.ytid, DEFAULT_PROPORTIONS) == pool]
    return found[nth]


def _segment_list(path: Path, rows: list[tuple[str, float, float]]) -> Path:
    lines = ["# YTID, start_seconds, end_seconds, positive_labels"]
    lines += [f'{y}, {s:.3f}, {e:.3f}, "{MUSIC}"' for y, s, e in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bundled_list_is_musiccaps_with_its_licence(musiccaps):
    assert musiccaps.name == "musiccaps" and len(musiccaps.segments) == 5521
    notice = Path(musiccaps.source).with_name("NOTICE").read_text()
    assert "CC BY-SA 4.0" in notice and "MusicCaps" in notice and "Google" in notice


def test_selection_excludes_musiccaps_by_default(warehouse, musiccaps, tmp_path):
    """Before: every MusicCaps segment was selected into a training pool (and MUCaps kept its whole video)."""
    cap = _video_in(musiccaps, "mucaps")  # whole audio kept: another segment of the same video goes too
    edit = _video_in(musiccaps, "muedit")  # 10 s kept: only an overlapping segment goes
    clean = ("AAAAAAAAAAA", 0.0, 10.0)
    rows = [(cap.ytid, cap.start_s, cap.end_s), (cap.ytid, cap.end_s + 100, cap.end_s + 110),
            (edit.ytid, edit.start_s + 5, edit.end_s + 5), (edit.ytid, edit.end_s + 20, edit.end_s + 30), clean]
    csv = _segment_list(tmp_path / "mine_segments.csv", rows)
    (report,) = select_segments(warehouse, [csv], ontology=load_ontology())
    kept = set(warehouse.read("segments").column("ytid").to_pylist())
    assert kept == {edit.ytid, clean[0]}
    assert report.selected == 2 and report.eval_excluded == {"musiccaps": 3}
    rejects = warehouse.read("segment_rejects").to_pylist()
    assert sorted(r["line"] for r in rejects) == [2, 3, 4]
    assert {r["reason"] for r in rejects} == {"eval:musiccaps"}
    assert any("whole audio kept" in r["text"] for r in rejects)


def test_no_default_lists_keeps_them_and_user_lists_add(warehouse, musiccaps, tmp_path):
    seg = _video_in(musiccaps, "muedit")
    csv = _segment_list(tmp_path / "x_segments.csv", [(seg.ytid, seg.start_s, seg.end_s), ("BBBBBBBBBBB", 0, 10)])
    mine = tmp_path / "mybench.csv"
    mine.write_text("ytid\nBBBBBBBBBBB\n")  # no time range: the whole video
    (report,) = select_segments(warehouse, [csv], exclusion=make_exclusion([str(mine)], default_lists=False))
    assert report.eval_excluded == {"mybench": 1}
    assert warehouse.read("segments").column("ytid").to_pylist() == [seg.ytid]


def test_span_decides_what_overlaps(musiccaps):
    seg = _video_in(musiccaps, "muedit")
    lists = (musiccaps,)
    later = (seg.ytid, seg.end_s + 5, seg.end_s + 15, "muedit")
    assert EvalExclusion(lists, span="segment").match(*later) is None
    assert EvalExclusion(lists, span="window", window_s=40).match(*later) is not None
    assert EvalExclusion(lists, span="full").match(*later) is not None


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("ytid,start_s,end_s\nAAAAAAAAAAA,0,10\nnot-an-id,0,10\n", 3, "invalid YouTube ID"),
        ("ytid,start_s,end_s\nAAAAAAAAAAA,ten,20\n", 2, "not numbers"),
        ("ytid,start_s,end_s\nAAAAAAAAAAA,20,10\n", 2, "bad time range"),
        ("ytid,start_s,end_s\nAAAAAAAAAAA\n", 2, "expected at least 3 fields"),
    ],
)
def test_malformed_list_is_one_line_naming_file_and_line(tmp_path, text, line, what):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(EvalListError) as err:
        read_eval_list(path)
    msg = str(err.value)
    assert f"{path}:{line}:" in msg and what in msg and "\n" not in msg


def test_cli_malformed_list_exits_with_one_line(tmp_path, musiccaps):
    bad = tmp_path / "bad.csv"
    bad.write_text("video,start\nx,1\n")
    csv = _segment_list(tmp_path / "s_segments.csv", [("CCCCCCCCCCC", 0, 10)])
    result = CliRunner().invoke(app, ["-w", str(tmp_path / "wh"), "audioset", "select", "-s", str(csv),
                                      "--exclude-eval", str(bad)])
    assert result.exit_code != 0
    assert isinstance(result.exception, EvalListError) and str(bad) in str(result.exception)


def test_cli_counts_exclusions(tmp_path, musiccaps):
    seg = _video_in(musiccaps, "muedit")
    csv = _segment_list(tmp_path / "s_segments.csv", [(seg.ytid, seg.start_s, seg.end_s), ("CCCCCCCCCCC", 0, 10)])
    result = CliRunner().invoke(app, ["-w", str(tmp_path / "wh"), "audioset", "select", "-s", str(csv)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "excluded: musiccaps eval" in result.output
