"""What a download keeps of each video (segment | window | full), through the real yt-dlp + ffmpeg on loopback,
and long audio analysed in windows and captioned as a whole."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from test_audioset_download import FFMPEG, _config, _dominant_hz, _ffmpeg, _latest, _segments, _serve_dir

from m2ugen_data.audio_io import load_audio
from m2ugen_data.audioset.download import DownloadConfig, Job, download_clips, expected_length
from m2ugen_data.testing.loopback_server import MediaServer
from m2ugen_data.audioset.ytdlp_fetch import Section, Span, plan_section
from m2ugen_data.errors import M2UGenError

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is needed to render test media")


@pytest.fixture(scope="module")
def steps60(tmp_path_factory):
    """60 s whose pitch says the time: 300 Hz in [0, 10), 400 Hz in [10, 20), ... 800 Hz in [50, 60)."""
    path = tmp_path_factory.mktemp("span_media") / "steps.m4a"
    _ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*(300+100*floor(t/10))*t):s=44100:d=60",
            "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", str(path))
    return path


def _pitch_at(y: np.ndarray, sr: int, t: float) -> float:
    return _dominant_hz(y, sr, t - 0.25, t + 0.25)


def test_sections_for_each_span():
    seg = (25.0, 35.0)
    assert plan_section(Span("segment"), *seg, None) == Section(25.0, 35.0, None)
    # window: centred on the segment, never before 0, kept inside a video of known length, never shorter
    # than the segment, never longer than the cap
    assert plan_section(Span("window", 20.0), *seg, None) == Section(20.0, 40.0, None)
    assert plan_section(Span("window", 20.0), 2.0, 12.0, None) == Section(0.0, 20.0, None)
    assert plan_section(Span("window", 20.0), 50.0, 60.0, 60.0) == Section(40.0, 60.0, 60.0)
    assert plan_section(Span("window", 4.0), *seg, None) == Section(25.0, 35.0, None)
    assert plan_section(Span("window", 40.0, max_duration_s=30.0), *seg, None) == Section(15.0, 45.0, None)
    # full: no section when the video fits the cap (or there is no cap); else the cap around the segment
    assert plan_section(Span("full", max_duration_s=3600.0), *seg, 200.0) == Section(0.0, None, 200.0)
    assert plan_section(Span("full", max_duration_s=None), *seg, None) == Section(0.0, None, None)
    assert plan_section(Span("full", max_duration_s=30.0), *seg, 7200.0) == Section(15.0, 45.0, 7200.0)
    assert plan_section(Span("full", max_duration_s=30.0), *seg, None) == Section(15.0, 45.0, None)


def test_expected_length_of_each_span():
    job = Job("aaaaaaaaaaa_25000", "aaaaaaaaaaa", 25.0, 35.0, "mucaps", 0)
    seg = expected_length(job, Span("segment"), Section(25.0, 35.0), 0.5)
    assert (seg.min_s, seg.max_s) == (9.5, 10.5)
    known = expected_length(job, Span("full", max_duration_s=3600.0), Section(0.0, None, 200.0), 0.5)
    assert (known.min_s, known.max_s) == (199.5, 200.5)  # the whole video, exactly
    unknown = expected_length(job, Span("full", max_duration_s=3600.0), Section(0.0, None, None), 0.5)
    assert (unknown.min_s, unknown.max_s) == (34.5, 3600.5)  # at least up to the segment's end, at most the cap
    window = expected_length(job, Span("window", 20.0), Section(20.0, 40.0, None), 0.5)
    assert (window.min_s, window.max_s) == (14.5, 20.5)


def test_config_rejects_unknown_spans():
    with pytest.raises(M2UGenError, match="unknown span"):
        DownloadConfig(span="whole")
    with pytest.raises(M2UGenError, match="positive"):
        DownloadConfig(span="window", window_s=0)


def test_mucaps_full_audio_on_loopback_media_longer_than_the_segment(tmp_path, warehouse, steps60):
    """span=auto: the MUCaps clip keeps the whole 60 s (as the released MUCaps did), the MUEdit clip its 10 s."""
    root = _serve_dir(tmp_path, {"fullAAAAAAA": steps60, "segAAAAAAAA": steps60})
    _segments(warehouse, [("fullAAAAAAA", 20.0, 30.0, "mucaps"), ("segAAAAAAAA", 20.0, 30.0, "muedit")])
    with MediaServer(root) as srv:
        summary = download_clips(warehouse, _config(srv, span="auto"))  # the default of every front door
    assert summary.ok == 2 and not summary.failed, _latest(warehouse)
    rows = _latest(warehouse)
    full, seg = rows["fullAAAAAAA_20000"], rows["segAAAAAAAA_20000"]
    assert (full["span"], full["span_start_s"], seg["span"], seg["span_start_s"]) == ("full", 0.0, "segment", 20.0)
    assert abs(full["duration_s"] - 60.0) < 0.1 and abs(seg["duration_s"] - 10.0) < 0.05
    y, sr = load_audio(warehouse.abspath(full["audio_path"]))
    assert sf.info(warehouse.abspath(full["audio_path"])).format == "FLAC"
    for t in (1.0, 25.0, 58.5):  # the stored audio is the source from its first to its last second
        assert abs(_pitch_at(y, sr, t) - (300 + 100 * (t // 10))) < 10, t
    y, sr = load_audio(warehouse.abspath(seg["audio_path"]))
    assert abs(_pitch_at(y, sr, 5.0) - 500) < 10  # 20-30 s of the source

    # span=segment for every pool now: the MUCaps clip was fetched with another span, so it is fetched again
    with MediaServer(root) as srv:
        again = download_clips(warehouse, _config(srv, span="segment"))
        assert set(srv.hits) == {"fullAAAAAAA.m4a"}
    assert (again.planned, again.ok, again.skipped_done) == (1, 1, 1)
    assert abs(_latest(warehouse)["fullAAAAAAA_20000"]["duration_s"] - 10.0) < 0.05


def test_window_and_cap_on_loopback(tmp_path, warehouse, steps60):
    root = _serve_dir(tmp_path, {"windowAAAAA": steps60, "cappedAAAAA": steps60})
    _segments(warehouse, [("windowAAAAA", 25.0, 35.0, "muedit"), ("cappedAAAAA", 45.0, 55.0, "mucaps")])
    with MediaServer(root) as srv:
        window = download_clips(warehouse, _config(srv, span="window", window_s=20.0, pools=("muedit",)))
        capped = download_clips(warehouse, _config(srv, span="full", max_duration_s=30.0, pools=("mucaps",)))
    assert window.ok == 1 and capped.ok == 1, _latest(warehouse)
    rows = _latest(warehouse)
    w, c = rows["windowAAAAA_25000"], rows["cappedAAAAA_45000"]
    assert (w["span"], w["span_start_s"]) == ("window", 20.0) and abs(w["duration_s"] - 20.0) < 0.05
    y, sr = load_audio(warehouse.abspath(w["audio_path"]))
    assert abs(_pitch_at(y, sr, 5.0) - 500) < 10 and abs(_pitch_at(y, sr, 15.0) - 600) < 10  # seconds 25 and 35
    # full audio over the cap (a server that states no length): the cap's 30 s around the segment
    assert (c["span"], c["span_start_s"]) == ("full", 35.0) and abs(c["duration_s"] - 25.0) < 0.1
    y, sr = load_audio(warehouse.abspath(c["audio_path"]))
    assert abs(_pitch_at(y, sr, 12.0) - 700) < 10  # second 47 of the source


def test_features_of_audio_fetched_again_with_another_length_are_outdated(warehouse):
    """A MUCaps clip analysed as its 10 s segment, then fetched again as its whole audio: analysed again."""
    from rows import with_nulls

    from m2ugen_data.analysis.analyze import ANALYSER_VERSION, analysed_state
    from m2ugen_data.warehouse import utc_now

    ids = ["sameAAAAAAA_0", "longerAAAAA_0"]
    warehouse.write_batch("features", [
        with_nulls("features", {"clip_id": c, "status": "ok", "analyser_version": ANALYSER_VERSION, "duration_s": 10.0,
                                "beats": [], "downbeats": [], "music_reasons": [], "updated_at": utc_now()})
        for c in ids], "feat")
    assert analysed_state(warehouse, ids) == (set(ids), 0)
    warehouse.write_batch("clips", [
        with_nulls("clips", {"clip_id": c, "status": "ok", "attempts": 1, "duration_s": d, "span": s,
                             "updated_at": utc_now()})
        for c, d, s in [("sameAAAAAAA_0", 10.0, "segment"), ("longerAAAAA_0", 212.5, "full")]], "clips")
    assert analysed_state(warehouse, ids) == ({"sameAAAAAAA_0"}, 1)


def test_cli_span_options(tmp_path, steps60):
    from typer.testing import CliRunner

    from m2ugen_data.cli import app
    from m2ugen_data.warehouse import open_warehouse

    wh = open_warehouse(tmp_path / "wh")
    root = _serve_dir(tmp_path, {"cliwinAAAAA": steps60})
    _segments(wh, [("cliwinAAAAA", 25.0, 35.0, "muedit")])
    runner = CliRunner()
    with MediaServer(root) as srv:
        ok = runner.invoke(app, ["--warehouse", str(wh.root), "audioset", "download", "--url-template", srv.url_template(),
                                 "--rate-limit", "0", "--span", "window", "--window", "20", "--max-duration", "0"])
    assert ok.exit_code == 0, ok.output
    row = _latest(wh)["cliwinAAAAA_25000"]
    assert (row["span"], row["span_start_s"]) == ("window", 20.0) and abs(row["duration_s"] - 20.0) < 0.05
    bad = runner.invoke(app, ["--warehouse", str(wh.root), "audioset", "download", "--span", "whole"])
    assert bad.exit_code != 0 and isinstance(bad.exception, M2UGenError) and "unknown span" in str(bad.exception)
