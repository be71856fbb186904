"""The real-music dev sets: plans and ids, deterministic cached renders, truth beats against rendered onsets,
siblings, the recordings constructions, one-line errors for missing Debian packages, and the metrics on
hand-checked inputs. GM tests render one small sibling group (a few seconds) and skip when fluidsynth, the
GM soundfont or mma is absent (`make setup` runs scripts/devset-deps.sh, which installs them)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import mir_eval
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from m2ugen_data.devset import metrics, recordings, render, score_sources, soundfonts
from m2ugen_data.devset.gm import build_gm, onset_errors_ms, render_piece
from m2ugen_data.devset.gm_plan import plan_gm
from m2ugen_data.devset.gm_programs import families
from m2ugen_data.devset.rec_sources import RESERVED, RESERVED_PREFIXES, SOURCES, Source, apt_packages
from m2ugen_data.devset.truth import split_of
from m2ugen_data.errors import MissingDependencyError
from m2ugen_data.ids import validate_clip_id
from paths import REPO



def _tools_or_skip() -> render.Tools:
    try:
        return render.find_tools()
    except MissingDependencyError as e:
        pytest.skip(f"GM dev-set tools not installed: {e}")


@pytest.fixture(scope="module")
def gm_group(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One rendered sibling group of 3+ clips with drums and a melody (seed 0)."""
    tools = _tools_or_skip()
    latency = render.render_latency_s(tools)
    plan = next(
        p for p in plan_gm(200, 0)
        if len(p.clip_ids) >= 3 and p.melody_program is not None and p.groove.drums and not p.drop_drums
    )  # fmt: skip
    out = tmp_path_factory.mktemp("gm_group")
    rows, fresh = render_piece(plan, 0, tools, latency, out, {})
    return {"plan": plan, "rows": rows, "fresh": fresh, "out": out, "tools": tools, "latency": latency}


# --------------------------------------------------------------------------- GM plan (no tools needed)


def test_plan_gm_ids_splits_twins_and_tempi_are_as_promised() -> None:
    plans = plan_gm(200, 3)
    assert plans == plan_gm(200, 3)  # deterministic for a seed
    assert plan_gm(120, 3)[:5] == plans[:5]  # growing --n does not change earlier pieces
    ids = [c for p in plans for c in p.clip_ids]
    assert len(ids) == 200 and len(set(ids)) == 200
    assert len({c[:11] for c in ids}) == 200  # siblings are different "videos" (the miner skips same-video pairs)
    for p in plans:
        for c in p.clip_ids:
            assert validate_clip_id(c) == c and c.startswith("gm") and c.endswith(f"_{round(p.offset_s * 1000)}")
        assert p.split in ("dev", "test") and p.groove.tempo_lo <= p.tempo_bpm <= p.groove.tempo_hi
    twins = [p for p in plans if p.twin_id and p.twin_id != p.group_id]
    assert twins, "no tempo twins planned"
    by_id = {p.group_id: p for p in plans}
    for t in twins:
        root = by_id[t.twin_id]
        assert (t.tempo_bpm, t.groove, t.split, root.twin_id) == (
            root.tempo_bpm,
            root.groove,
            root.split,
            root.group_id,
        )
        assert (t.key, t.progression) != (root.key, root.progression)
    tempi = [p.tempo_bpm for p in plans]
    assert min(tempi) < 75 and max(tempi) > 170
    assert {p.meter for p in plans} == {3, 4} and {p.key.mode for p in plans} == {"major", "minor"}
    splits = [p.split for p in plans]
    assert 0.3 < splits.count("dev") / len(splits) < 0.7


# --------------------------------------------------------------------------- GM renders


def test_gm_render_is_deterministic_and_cached(gm_group: dict, tmp_path: Path) -> None:
    g = gm_group
    again, fresh = render_piece(g["plan"], 0, g["tools"], g["latency"], tmp_path, {})
    assert fresh == len(again) == g["fresh"]
    for a, b in zip(g["rows"], again):
        assert a == b
        ya, _ = sf.read(g["out"] / a["path"])
        yb, _ = sf.read(tmp_path / b["path"])
        np.testing.assert_array_equal(ya, yb)
    keys = {r["clip_id"]: r["render_key"] for r in again}
    _, fresh = render_piece(g["plan"], 0, g["tools"], g["latency"], tmp_path, keys)
    assert fresh == 0  # everything came from the cache


def test_gm_truth_rows_are_complete_and_consistent(gm_group: dict) -> None:
    for r in gm_group["rows"]:
        assert validate_clip_id(r["clip_id"]) == r["clip_id"]
        info = sf.info(str(gm_group["out"] / r["path"]))
        assert (info.samplerate, info.channels, info.frames) == (44100, 1, 441000) and info.format == "FLAC"
        beats = np.array(r["beats"])
        assert beats.min() >= 0 and beats.max() < 10
        np.testing.assert_allclose(np.diff(beats), 60.0 / r["tempo_bpm"], atol=1e-5)
        assert set(r["downbeats"]) <= set(r["beats"])
        np.testing.assert_allclose(np.diff(r["downbeats"]), r["meter"] * 60.0 / r["tempo_bpm"], atol=1e-5)
        chords = r["chords"]
        assert chords[0]["start"] == 0 and chords[-1]["end"] == 10
        assert all(a["end"] == b["start"] for a, b in zip(chords, chords[1:]))
        for c in chords:
            mir_eval.chord.encode(c["label"])  # raises on a label mir_eval cannot parse
        assert set(r["families"]) <= set(families()) and r["has_drums"] == ("drums" in r["families"])
        assert r["labels"][0] == "/m/04rlf" and r["split"] == gm_group["plan"].split


def test_siblings_share_timing_and_chords_but_differ_in_instruments(gm_group: dict) -> None:
    rows = gm_group["rows"]
    assert len({r["group_id"] for r in rows}) == 1 and rows[0]["variant"] == "original"
    for r in rows[1:]:
        for field in ("beats", "downbeats", "chords", "tempo_bpm", "key", "offset_s"):
            assert r[field] == rows[0][field], field
    assert len({tuple(r["parts"]) for r in rows}) == len(rows)  # every member sounds different
    assert len({r["render_key"] for r in rows}) == len(rows)


def test_truth_beats_line_up_with_rendered_onsets(gm_group: dict) -> None:
    g = gm_group
    err = onset_errors_ms(g["plan"], 0, g["tools"], g["latency"])
    assert err.size >= 4
    assert np.abs(err).max() <= 20.0, err


def test_build_gm_writes_truth_and_readme_and_reuses_renders(tmp_path: Path) -> None:
    _tools_or_skip()
    s1 = build_gm(tmp_path, n=2, seed=1, workers=1)
    assert s1["clips"] == 2 and s1["rendered"] == 2
    truth = pq.read_table(tmp_path / "truth.parquet")
    assert truth.num_rows == 2 and (tmp_path / "README.md").read_text().startswith("# m2ugen General-MIDI dev set")
    s2 = build_gm(tmp_path, n=2, seed=1, workers=1)
    assert s2["rendered"] == 0 and pq.read_table(tmp_path / "truth.parquet").equals(truth)


def test_missing_fluidsynth_or_soundfont_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_which = render.shutil.which
    monkeypatch.setattr(render.shutil, "which", lambda name: None if name == "fluidsynth" else real_which(name))
    with pytest.raises(MissingDependencyError, match=r"fluidsynth.*apt-get install fluidsynth fluid-soundfont-gm mma"):
        render.find_tools()
    monkeypatch.setattr(render.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.delenv(render.SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(render.soundfonts, "DEFAULT", dataclasses.replace(render.soundfonts.DEFAULT, path=tmp_path / "missing.sf2"))
    with pytest.raises(MissingDependencyError, match="fluid-soundfont-gm"):
        render.find_tools()


# --------------------------------------------------------------------------- recordings


@pytest.fixture
def fake_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Source, ...]:
    """Three tiny "packages": two 40 s music tracks, eight short effects, four 4 s ambience loops."""
    rng = np.random.default_rng(0)
    t = np.arange(40 * 22050) / 22050
    music, sfx, amb = tmp_path / "music", tmp_path / "sfx", tmp_path / "amb"
    for d in (music, sfx, amb):
        d.mkdir()
    for i in range(2):
        sf.write(music / f"track{i}.ogg", 0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t), 22050)
    for i in range(8):
        sf.write(sfx / f"fx{i}.wav", 0.5 * rng.standard_normal(int(22050 * (0.4 + i * 0.2))), 22050)
    for i in range(4):
        sf.write(amb / f"wind{i + 1}.wav", 0.1 * rng.standard_normal(4 * 44100), 44100)
    catalogue = (
        Source("fake-music", str(music), ("*.ogg",), "music", joiner="none"),
        Source("fake-sfx", str(sfx), ("*.wav",), "sfx"),
        Source("fake-amb", str(amb), ("*.wav",), "ambience", joiner="crossfade", group_by="stem"),
    )
    monkeypatch.setattr(recordings, "SOURCES", catalogue)
    return catalogue


def test_recordings_constructions_splits_and_cache(fake_catalogue: tuple[Source, ...], tmp_path: Path) -> None:
    out = tmp_path / "rec"
    s = recordings.build_recordings(out, n=10, seed=0, workers=1)
    rows = pq.read_table(out / "truth.parquet").to_pylist()
    assert s["clips"] == len(rows) and {r["category"] for r in rows} == {"music", "sfx", "ambience"}
    expected = {"music": "excerpt", "sfx": "sequence", "ambience": "loop"}
    for r in rows:
        assert validate_clip_id(r["clip_id"]) == r["clip_id"] and r["clip_id"].startswith("rc")
        assert r["construction"] == expected[r["category"]] and r["is_music"] == (r["category"] == "music")
        info = sf.info(str(out / r["path"]))
        assert (info.samplerate, info.channels, info.frames) == (44100, 1, 441000)
        src = next(x for x in fake_catalogue if x.package == r["package"])
        for p in r["sources"]:  # no source file is heard in both splits
            assert split_of(recordings.file_unit(src, Path(p))) == r["split"]
    music = [r for r in rows if r["category"] == "music"]
    assert len({r["clip_id"][:11] for r in music}) <= 2 < len(music)  # several excerpts per track
    assert all(2.0 - 1e-9 <= r["source_offset_s"] <= 28.0 for r in music)  # not in a track's first/last 5 %
    seq = next(r for r in rows if r["construction"] == "sequence")
    y, _ = sf.read(out / seq["path"])
    frames = np.sqrt(np.mean(y[: len(y) // 2205 * 2205].reshape(-1, 2205) ** 2, axis=1))
    assert (frames < 10 ** (-55 / 20)).any()  # the gaps between events are (room-tone) quiet
    assert recordings.build_recordings(out, n=10, seed=0, workers=1)["rendered"] == 0


def test_recordings_missing_package_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(recordings, "SOURCES", (Source("warzone2100-music", str(tmp_path / "none"), ("*",), "music"),))
    with pytest.raises(MissingDependencyError, match=r"warzone2100-music.*apt-get install"):
        recordings.check_sources()


def test_catalogue_never_touches_reserved_packages() -> None:
    packages = [s.package for s in SOURCES] + [s.package for s in score_sources.SOURCES] + list(soundfonts.apt_packages())
    for p in packages:
        assert p not in RESERVED and not p.startswith(RESERVED_PREFIXES), p


def test_deps_script_installs_exactly_the_catalogue_packages() -> None:
    text = (REPO / "scripts" / "devset-deps.sh").read_text()

    def array(name: str) -> set[str]:
        m = re.search(rf"^{name}=\(([^)]*)\)", text, re.M)
        assert m, name
        return set(m.group(1).split())

    assert array("GM_PACKAGES") == set(render.APT_PACKAGES)
    assert array("SCORES_PACKAGES") == (set(soundfonts.apt_packages()) | set(score_sources.apt_packages())) - set(render.APT_PACKAGES)
    assert array("RECORDINGS_PACKAGES") == set(apt_packages())


def test_devset_cli_builds_a_set(fake_catalogue: tuple[Source, ...], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from m2ugen_data.cli import app

    res = CliRunner().invoke(app, ["devset", "build", "--out", str(tmp_path / "sets"), "--kind", "recordings",
                                   "--n", "6", "--workers", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sets" / "recordings" / "truth.parquet").is_file()


# --------------------------------------------------------------------------- metrics


def test_tempo_octave_errors_count_in_acc2_not_acc1() -> None:
    s = metrics.tempo_scores([120.0, 60.0, 180.0, 100.0, 90.0], [121.0, 120.0, 60.0, None, 100.0])
    # 121: within 4 %; 120 for 60: double; 60 for 180: a third; None: a miss; 100 for 90: 11 % off
    assert s == {"acc1": 0.2, "acc2": 0.6, "n": 5, "missing": 1}
    assert metrics.tempo_acc1(100.0, 104.0) and not metrics.tempo_acc1(100.0, 104.5)
    assert metrics.tempo_acc2(100.0, 49.0) and not metrics.tempo_acc2(100.0, 75.0)
    assert not metrics.tempo_acc2(100.0, float("nan"))


def test_beat_f_measure_on_hand_checked_beats() -> None:
    ref = [0.5, 1.0, 1.5, 2.0]
    assert metrics.beat_f(ref, ref) == 1.0
    assert metrics.beat_f(ref, [0.55, 1.05, 1.55, 2.05]) == 1.0  # 50 ms late: inside the 70 ms window
    assert metrics.beat_f(ref, [0.6, 1.1, 1.6, 2.1]) == 0.0  # 100 ms late: outside
    assert metrics.beat_f(ref, [0.5, 1.5]) == pytest.approx(2 / 3)  # P=1, R=1/2 (half tempo)
    assert metrics.beat_f(ref, []) == 0.0
    assert metrics.beat_f([1.0, 6.0, 7.0], [6.0, 7.0], skip_s=5.0) == 1.0
    assert metrics.beat_scores([ref, ref], [ref, []]) == {"f_measure": 0.5, "n": 2}


def test_chord_scores_are_duration_weighted_over_clips() -> None:
    ref = metrics.chord_segments([{"start": 0, "end": 2, "label": "C:maj"}, {"start": 2, "end": 4, "label": "G:7"}])
    est = (np.array([[0.0, 1.0], [1.0, 4.0]]), ["C:maj", "G:maj"])  # wrong for 1 s of C, right for all of G
    s = metrics.chord_scores([ref], [est])
    assert s["root"] == pytest.approx(3 / 4) and s["majmin"] == pytest.approx(3 / 4)
    assert s["sevenths"] == pytest.approx(1 / 4)  # G:maj is not G:7 under the sevenths rule
    short = (np.array([[0.0, 2.0]]), ["C:maj"])  # estimate stops at 2 s: the rest is "N", wrong
    assert metrics.chord_scores([ref, ref], [short, ref])["majmin"] == pytest.approx(6 / 8)
    assert metrics.chord_scores([ref], [(np.zeros((0, 2)), [])])["root"] == 0.0


def test_instrument_music_filter_and_pair_scores() -> None:
    s = metrics.instrument_scores([["piano", "drums"], ["flute"]], [["piano"], ["flute", "violin"]])
    assert (s["precision"], s["recall"]) == (2 / 3, 2 / 3)
    assert s["per_family"]["drums"]["recall"] == 0.0 and s["per_family"]["violin"]["precision"] == 0.0
    assert (
        metrics.instrument_scores([["piano", "drums"]], [["piano", "bass"]], vocabulary={"piano"})["precision"] == 1.0
    )

    f = metrics.music_filter_scores(
        [True, True, False, False], [True, None, False, True], ["music", "music", "sfx", "speech"]
    )
    assert f["accuracy"] == 0.5 and f["abstained"] == 1 and f["recall"] == 0.5 and f["precision"] == 0.5
    assert f["per_category"] == {"music": 0.5, "sfx": 1.0, "speech": 0.0} and f["balanced_accuracy"] == 0.5

    groups = {"a": "g1", "b": "g1", "c": "g1", "d": "g2", "e": "g3", "x": None}
    twins = {"a": "t", "b": "t", "c": "t", "d": "t"}
    p = metrics.pair_scores(groups, [("a", "b"), ("b", "a"), ("c", "d"), ("e", "x"), ("a", "zz")], twins)
    # true pairs ab, ac, bc; predicted {ab, cd, ex} (the pair with an unknown clip is ignored)
    assert (p["precision"], p["recall"], p["twin_pairs_predicted"]) == (1 / 3, 1 / 3, 1)
