"""AudioSet ontology, segment lists, sources and pool selection, on the real files in shared/audioset."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from paths import AUDIOSET_DIR
from typer.testing import CliRunner

from m2ugen_data.testing.loopback_server import MediaServer
from m2ugen_data.audioset.ontology import GENRE, INSTRUMENT, MOOD, MUSIC, SPEECH, OntologyError, load_ontology
from m2ugen_data.audioset.segments_csv import read_segments_csv
from m2ugen_data.audioset.selection import (
    DEFAULT_PROPORTIONS,
    POOLS,
    SelectionPolicy,
    pool_of,
    select_music,
    select_segments,
)
from m2ugen_data.audioset.sources import SourceError, resolve_source
from m2ugen_data.cli import app

BALANCED = AUDIOSET_DIR / "balanced_train_segments.csv"
EVAL = AUDIOSET_DIR / "eval_segments.csv"


@pytest.fixture(scope="module")
def onto():
    return load_ontology()


@pytest.fixture(scope="module")
def balanced():
    return read_segments_csv(BALANCED)


def _official_form(src: Path, dst: Path) -> Path:
    """Rewrite a cleaned list in the official layout: 3 '#' lines, ', ' separators, quoted labels."""
    lines = src.read_text().splitlines()[1:]
    out = ["# Segments csv created Sun Mar  5 10:54:25 2017", "# num_ytids=x, num_segs=x",
           "# YTID, start_seconds, end_seconds, positive_labels"]
    for line in lines:
        ytid, start, end, labels = line.split(",", 3)
        out.append(f'{ytid}, {start}, {end}, "{labels.strip(chr(34))}"')
    dst.write_text("\n".join(out) + "\n")
    return dst


def test_bundled_ontology_matches_the_shared_copy_and_names_labels(onto):
    shared = json.loads((AUDIOSET_DIR / "ontology.json").read_text())
    assert len(onto.labels) == len(shared) == 632
    assert onto.name(MUSIC) == "Music"
    assert onto.name(SPEECH) == "Speech"
    assert onto.name("/m/042v_gx") == "Acoustic guitar"
    assert onto.name("/x/unknown") == "/x/unknown"
    assert onto.mid("speech") == SPEECH
    assert onto.is_abstract("/m/0dgw9r")  # Human sounds
    with pytest.raises(OntologyError, match="no single AudioSet label"):
        onto.mid("No such label")


def test_music_subtree_contains_instruments_genres_moods_but_not_speech(onto):
    music = onto.descendants(MUSIC)
    for root in (INSTRUMENT, GENRE, MOOD):
        assert onto.descendants(root) <= music
    assert SPEECH not in music
    assert onto.is_under("/m/042v_gx", INSTRUMENT)  # acoustic guitar, two levels down
    assert not onto.is_under("/m/042v_gx", GENRE)
    # sane sizes: the ontology has 632 labels; music is a large, not a dominant, part
    assert 150 < len(music) < 250
    assert 60 < len(onto.descendants(INSTRUMENT)) < 120
    assert MUSIC not in onto.descendants(MUSIC, include_self=False)
    with pytest.raises(OntologyError):
        onto.descendants("/m/nope")


def test_both_csv_forms_parse_to_the_same_rows(tmp_path, balanced):
    official = read_segments_csv(_official_form(BALANCED, tmp_path / "balanced_train_segments.csv"))
    assert official.source == balanced.source == "balanced_train"
    assert official.rejects == balanced.rejects == []
    cols = ["ytid", "start_s", "end_s", "labels"]
    assert official.table.select(cols).equals(balanced.table.select(cols))
    assert balanced.table.num_rows == 22160
    first = balanced.table.slice(0, 1).to_pylist()[0]
    assert first == {"ytid": "--PJHxphWEs", "start_s": 30.0, "end_s": 40.0, "labels": ["/m/09x0r", "/t/dd00088"], "line": 2}
    assert official.table.column("line")[0].as_py() == 4  # after the three comment lines


def test_malformed_rows_and_hostile_ids_are_reported_with_line_numbers(tmp_path, warehouse):
    csv = tmp_path / "hostile_segments.csv"
    csv.write_text(
        "# comment\n# comment\n# YTID, start_seconds, end_seconds, positive_labels\n"
        '--PJHxphWEs, 30.000, 40.000, "/m/04rlf,/t/dd00088"\n'  # 4: ok
        '../../etc/x, 0.000, 10.000, "/m/04rlf"\n'  # 5
        '--exec=calc, 0.000, 10.000, "/m/04rlf"\n'  # 6: 11 characters, but '=' is not allowed
        ', 0.000, 10.000, "/m/04rlf"\n'  # 7: empty
        'abcdefghijkl, 0.000, 10.000, "/m/04rlf"\n'  # 8: 12 characters
        '--ZhevVpy1s, 50.000\n'  # 9: too few fields
        '--aE2O5G5WE, ten, 10.000, "/m/04rlf"\n'  # 10: not a number
        '--aO5cdqSAg, 30.000, 20.000, "/m/04rlf"\n'  # 11: end before start
        '-0DLPzsiXXE, 30.000, 40.000, "/m/04rlf,../x"\n'  # 12: malformed label
        '-0FHUc78Gqo, 30.000, 40.000, "/m/04rlf"\n'  # 13: ok
    )
    seg = read_segments_csv(csv)
    assert seg.table.column("ytid").to_pylist() == ["--PJHxphWEs", "-0FHUc78Gqo"]
    by_line = {r.line: r for r in seg.rejects}
    assert sorted(by_line) == [5, 6, 7, 8, 9, 10, 11, 12]
    for line, text in [(5, "../../etc/x"), (6, "--exec=calc"), (7, ""), (8, "abcdefghijkl")]:
        assert "invalid YouTube ID" in by_line[line].reason and by_line[line].text == text
    assert "expected 4 fields" in by_line[9].reason
    assert "time range" in by_line[10].reason and "time range" in by_line[11].reason
    assert "label" in by_line[12].reason

    before = {p for p in tmp_path.rglob("*")}
    reports = select_segments(warehouse, [csv])
    assert len(reports[0].rejects) == 8
    assert sorted(warehouse.read("segments").column("ytid").to_pylist()) == ["--PJHxphWEs", "-0FHUc78Gqo"]
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(warehouse.root in p.parents for p in created), "selection wrote outside the warehouse"
    assert not any(p.name in ("x", "etc") for p in created)


def test_selection_follows_the_music_subtree_and_derives_label_groups(onto, balanced):
    table, report = select_music(balanced, onto, SelectionPolicy())
    music, inst, genre, mood = (onto.descendants(r) for r in (MUSIC, INSTRUMENT, GENRE, MOOD))
    expected = [r for r in balanced.table.to_pylist() if music & set(r["labels"])]
    assert report.music == report.selected == table.num_rows == len(expected)
    assert 0.3 < table.num_rows / balanced.table.num_rows < 0.5  # AudioSet's balanced list: ~40 % music
    rows = table.to_pylist()
    assert [r["ytid"] for r in rows] == [r["ytid"] for r in expected]
    for r in rows:
        assert r["clip_id"] == f"{r['ytid']}_{round(r['start_s'] * 1000)}"
        assert r["instruments"] == [x for x in r["labels"] if x in inst]
        assert r["genres"] == [x for x in r["labels"] if x in genre]
        assert r["moods"] == [x for x in r["labels"] if x in mood]
        assert r["source"] == "balanced_train"
    assert sum(bool(r["instruments"]) for r in rows) > 1000


def test_policy_excludes_speech_and_requires_instruments(onto, balanced):
    speech = onto.descendants(SPEECH)
    table, report = select_music(balanced, onto, SelectionPolicy(exclude_labels=(SPEECH,), require_instrument=True))
    rows = table.to_pylist()
    assert rows and all(not speech & set(r["labels"]) and r["instruments"] for r in rows)
    assert report.excluded == report.music - report.selected > 0


def test_pools_are_disjoint_stable_and_close_to_the_proportions(onto, balanced):
    eval_seg = read_segments_csv(EVAL)
    t1, _ = select_music(balanced, onto, SelectionPolicy())
    t2, _ = select_music(balanced, onto, SelectionPolicy())
    te, _ = select_music(eval_seg, onto, SelectionPolicy())
    assert t1.column("pool").equals(t2.column("pool"))
    pool_by_ytid: dict[str, str] = {}
    for t in (t1, te):
        for ytid, pool in zip(t.column("ytid").to_pylist(), t.column("pool").to_pylist()):
            assert pool_by_ytid.setdefault(ytid, pool) == pool  # one video, one pool, across lists
            assert pool_of(ytid, DEFAULT_PROPORTIONS) == pool  # the scalar rule the column follows
    counts = Counter(t1.column("pool").to_pylist())
    assert set(counts) == set(POOLS)
    for pool, p in DEFAULT_PROPORTIONS.items():
        assert abs(counts[pool] / t1.num_rows - p) < 0.025, (pool, counts)
    # a pinned value guards against an accidental change of the hash scheme (it would reshuffle every pool)
    assert pool_of("--aE2O5G5WE", DEFAULT_PROPORTIONS) == "muvideo"
    only, _ = select_music(balanced, onto, SelectionPolicy(pool_proportions={"muedit": 1.0}))
    assert set(only.column("pool").to_pylist()) == {"muedit"}
    forced, _ = select_music(balanced, onto, SelectionPolicy(pool_override="muimage"))
    assert set(forced.column("pool").to_pylist()) == {"muimage"}
    with pytest.raises(ValueError):
        SelectionPolicy(pool_proportions={"nope": 1.0})


def test_select_segments_rerun_replaces_its_batch_and_limit_caps_rows(warehouse):
    r1 = select_segments(warehouse, [EVAL], limit=100)
    r2 = select_segments(warehouse, [EVAL], limit=100)
    assert r1[0].batch_id == r2[0].batch_id
    assert len(warehouse.manifest_files("segments")) == 1
    assert warehouse.read("segments", latest=False).num_rows == 100


def test_sources_download_a_url_once_into_the_cache(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    (root / "eval_segments.csv").write_bytes(EVAL.read_bytes())
    cache = tmp_path / "cache"
    with MediaServer(root) as srv:
        url = f"http://127.0.0.1:{srv.port}/media/eval_segments.csv"
        p1 = resolve_source(url, cache)
        p2 = resolve_source(url, cache)
        assert p1 == p2 and p1.parent == cache and p1.read_bytes() == EVAL.read_bytes()
        assert srv.hits["eval_segments.csv"] == 1
        with pytest.raises(SourceError, match="HTTP 404"):
            resolve_source(f"http://127.0.0.1:{srv.port}/media/missing.csv", cache)
    assert sorted(p.name for p in cache.iterdir()) == [p1.name]  # nothing half-written left behind
    assert read_segments_csv(p1, "eval").table.num_rows == 20371
    with pytest.raises(SourceError, match="no such file"):
        resolve_source(tmp_path / "nope.csv")


def test_cli_select_writes_segments_and_reports(tmp_path):
    wh = tmp_path / "wh"
    result = CliRunner().invoke(
        app, ["--warehouse", str(wh), "audioset", "select", "--segments", str(EVAL), "--exclude-label", "Speech",
              "--pool-proportions", "mucaps=0.5,muedit=0.5", "--limit", "300"],
    )
    assert result.exit_code == 0, result.output
    assert "selected" in result.output and "eval" in result.output
    from m2ugen_data.warehouse import open_warehouse

    table = open_warehouse(wh).read("segments")
    assert table.num_rows == 300
    assert set(table.column("pool").to_pylist()) <= {"mucaps", "muedit"}
    assert set(table.column("source").to_pylist()) == {"eval"}
